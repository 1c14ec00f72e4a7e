//! Layout and drawing of a [`TokenTable`].

use plotters::style::text_anchor::HPos;

use crate::color::{fill_color, text_color, ColorMap};
use crate::render::{
    checked_size, format_value, max_text_width, ColorBar, ColorBarLayout, Figure, Painter, CELL_EM, HEADER_FILL, INK,
    MUTED_INK, TITLE_EM,
};
use crate::text::{BundledFont, TextBackend};
use crate::{PlotError, TokenTable};

/// Pixel geometry of one rendering of a table. All lengths already include the scale factor.
#[derive(Debug, Clone)]
pub(crate) struct TableLayout {
    width: u32,
    height: u32,
    pad: i32,
    margin: i32,
    /// Font sizes, pixels per em.
    cell_em: f64,
    title_em: f64,
    /// Vertical centre of the title line.
    title_y: i32,
    /// Left edge of the row-label column.
    table_x: i32,
    /// Top edge of the column-label (header) row.
    table_y: i32,
    row_label_w: i32,
    cell_w: i32,
    cell_h: i32,
    /// Top of the legend caption line.
    legend_y: i32,
    legend: ColorBarLayout,
    /// Largest cell value, which the darkest colour stands for.
    max_value: f32,
}

impl TokenTable {
    fn max_value(&self) -> f32 {
        self.cells.iter().flatten().map(|c| c.value).fold(0.0f32, f32::max)
    }

    /// The legend: white (0) to dark red (the largest value), ticks at 0, middle and max.
    fn color_bar(&self) -> ColorBar {
        let max = self.max_value();
        ColorBar {
            caption: self.value_label.clone(),
            map: ColorMap::Sequential { lo: 0.0, hi: max },
            ticks: [(0.0, 0.0), (0.5, max / 2.0), (1.0, max)].into_iter().map(|(t, v)| (t, format_value(v))).collect(),
            no_value: false,
        }
    }
}

impl Figure for TokenTable {
    type Layout = TableLayout;

    fn check(&self) -> Result<(), PlotError> {
        self.validate()
    }

    fn layout(&self, font: &BundledFont, scale: f64) -> Result<TableLayout, PlotError> {
        let px = |v: f64| (v * scale).round() as i32;
        let cell_em = CELL_EM * scale;
        let title_em = TITLE_EM * scale;
        let pad = px(8.0);
        let margin = px(16.0);

        // One width for all columns keeps the grid regular; sized for the widest text but
        // never narrower than a few characters, so short tokens don't give slivers.
        let widest = max_text_width(
            font,
            self.cells.iter().flatten().map(|c| c.text.as_str()).chain(self.col_labels.iter().map(String::as_str)),
            cell_em,
        );
        let cell_w = (widest + 2 * pad).max(px(56.0));
        let cell_h = px(26.0);
        let row_label_w = max_text_width(
            font,
            self.row_labels.iter().map(String::as_str).chain([self.row_caption.as_str()]),
            cell_em,
        ) + 2 * pad;

        let title_h = if self.title.is_empty() { 0 } else { px(36.0) };
        let title_y = margin + px(10.0);
        let table_x = margin;
        let table_y = margin + title_h;
        let rows = i64::try_from(self.row_labels.len()).unwrap_or(i64::MAX / 4);
        let cols = i64::try_from(self.col_labels.len()).unwrap_or(i64::MAX / 4);
        let grid_w = i64::from(row_label_w) + cols.saturating_mul(i64::from(cell_w));
        let grid_bottom = i64::from(table_y) + (rows + 1).saturating_mul(i64::from(cell_h));

        let legend_gap = px(18.0);
        let legend = self.color_bar().layout(font, scale, 240.0);
        let title_w = max_text_width(font, [self.title.as_str()], title_em);

        let content_w = grid_w.max(i64::from(title_w)).max(i64::from(legend.width));
        let width = content_w.saturating_add(2 * i64::from(margin));
        let height = grid_bottom.saturating_add(i64::from(legend_gap + legend.height + margin));
        let (width, height) = checked_size(width, height)?;
        Ok(TableLayout {
            width,
            height,
            pad,
            margin,
            cell_em,
            title_em,
            title_y,
            table_x,
            table_y,
            row_label_w,
            cell_w,
            cell_h,
            // In range: the picture, which contains it, passed the size check.
            legend_y: (grid_bottom + i64::from(legend_gap)) as i32,
            legend,
            max_value: self.max_value(),
        })
    }

    fn size(l: &TableLayout) -> (u32, u32) {
        (l.width, l.height)
    }

    fn draw<B: TextBackend>(&self, p: &mut Painter<'_, B>, l: &TableLayout) -> Result<(), PlotError> {
        let half = l.cell_h / 2;
        p.text(&self.title, (l.width as i32 / 2, l.title_y), l.title_em, HPos::Center, INK)?;

        // Header row: the row-axis caption (if any) in the corner, then the column labels.
        let label_right = l.table_x + l.row_label_w - l.pad;
        p.text(&self.row_caption, (label_right, l.table_y + half), l.cell_em, HPos::Right, MUTED_INK)?;
        let grid_x = l.table_x + l.row_label_w;
        for (c, label) in self.col_labels.iter().enumerate() {
            let x = grid_x + c as i32 * l.cell_w;
            p.cell((x, l.table_y), (l.cell_w, l.cell_h), HEADER_FILL)?;
            p.text(label, (x + l.cell_w / 2, l.table_y + half), l.cell_em, HPos::Center, INK)?;
        }

        for (r, (label, row)) in self.row_labels.iter().zip(&self.cells).enumerate() {
            let y = l.table_y + (r as i32 + 1) * l.cell_h;
            p.text(label, (label_right, y + half), l.cell_em, HPos::Right, INK)?;
            for (c, cell) in row.iter().enumerate() {
                let x = grid_x + c as i32 * l.cell_w;
                let fill = fill_color(cell.value, l.max_value);
                p.cell((x, y), (l.cell_w, l.cell_h), fill)?;
                p.text(&cell.text, (x + l.cell_w / 2, y + half), l.cell_em, HPos::Center, text_color(fill))?;
            }
        }

        self.color_bar().draw(p, &l.legend, (l.margin, l.legend_y))
    }
}
