//! Layout and drawing of a [`TokenTable`], shared by the SVG and PNG outputs.
//!
//! One generic [`draw`] works on any [`TextBackend`] (a plotters backend that can also draw
//! text with the bundled font); the two outputs only differ in the backend they hand it and in
//! the pixel scale of the [`Layout`].

use plotters::backend::{BitMapBackend, DrawingBackend, RGBPixel, SVGBackend};
use plotters::style::text_anchor::HPos;
use plotters::style::{Color as _, RGBColor};

use crate::color::{fill_color, scale_color, text_color, Rgb};
use crate::text::{BundledFont, Label, TextBackend};
use crate::{PlotError, TokenTable};

/// Largest picture (width x height, in pixels) we agree to render; a PNG buffer of this size
/// is 192 MiB, beyond which a table is unreadable anyway.
const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Widest text of `texts` in whole pixels, rounded up.
fn max_text_width<'a>(
    font: &BundledFont,
    texts: impl IntoIterator<Item = &'a str>,
    em: f64,
) -> i32 {
    let widest = texts
        .into_iter()
        .map(|t| font.width(t, em))
        .fold(0.0, f64::max);
    // Saturates for absurd inputs; Layout::new then reports TooLarge.
    widest.ceil().min(f64::from(i32::MAX / 4)) as i32
}

/// Compact number for legend ticks: at most three significant digits (no trailing zeros),
/// scientific when very large or small.
pub(crate) fn format_value(v: f32) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let a = v.abs();
    if !(1e-2..1e4).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    let fixed = format!("{v:.decimals$}");
    if fixed.contains('.') {
        fixed.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        fixed
    }
}

/// Pixel geometry of one rendering. All lengths already include the scale factor.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pad: i32,
    margin: i32,
    /// Font sizes, pixels per em.
    cell_em: f64,
    title_em: f64,
    legend_em: f64,
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
    legend_line_h: i32,
    bar_w: i32,
    bar_h: i32,
    /// Largest cell value, which the darkest colour stands for.
    max_value: f32,
}

/// Font sizes at scale 1, pixels per em. Chosen among sizes that plotters' SVG backend can
/// write exactly (13 would come out as `font-size="13.000000000000002"`).
pub(crate) const CELL_EM: f64 = 14.0;
pub(crate) const TITLE_EM: f64 = 18.0;
pub(crate) const LEGEND_EM: f64 = 12.0;

/// Caption of the row-label column.
const ROW_AXIS_CAPTION: &str = "layer";

impl Layout {
    /// Sizes the picture from the table's text; `scale` multiplies every length (1.0 for SVG).
    ///
    /// Expects a validated table.
    pub(crate) fn new(
        table: &TokenTable,
        font: &BundledFont,
        scale: f64,
    ) -> Result<Self, PlotError> {
        let px = |v: f64| (v * scale).round() as i32;
        let cell_em = CELL_EM * scale;
        let title_em = TITLE_EM * scale;
        let legend_em = LEGEND_EM * scale;
        let pad = px(8.0);
        let margin = px(16.0);

        // One width for all columns keeps the grid regular; sized for the widest text but
        // never narrower than a few characters, so short tokens don't give slivers.
        let widest = max_text_width(
            font,
            table
                .cells
                .iter()
                .flatten()
                .map(|c| c.text.as_str())
                .chain(table.col_labels.iter().map(String::as_str)),
            cell_em,
        );
        let cell_w = (widest + 2 * pad).max(px(56.0));
        let cell_h = px(26.0);
        let row_label_w = max_text_width(
            font,
            table
                .row_labels
                .iter()
                .map(String::as_str)
                .chain([ROW_AXIS_CAPTION]),
            cell_em,
        ) + 2 * pad;

        let title_h = if table.title.is_empty() { 0 } else { px(36.0) };
        let title_y = margin + px(10.0);
        let table_x = margin;
        let table_y = margin + title_h;
        let rows = i64::try_from(table.row_labels.len()).unwrap_or(i64::MAX / 4);
        let cols = i64::try_from(table.col_labels.len()).unwrap_or(i64::MAX / 4);
        let grid_w = i64::from(row_label_w) + cols.saturating_mul(i64::from(cell_w));
        let grid_bottom = i64::from(table_y) + (rows + 1).saturating_mul(i64::from(cell_h));

        let max_value = table
            .cells
            .iter()
            .flatten()
            .map(|c| c.value)
            .fold(0.0f32, f32::max);
        let legend_gap = px(18.0);
        let legend_line_h = px(20.0);
        let bar_h = px(14.0);
        let ticks = [
            format_value(0.0),
            format_value(max_value / 2.0),
            format_value(max_value),
        ];
        let ticks_w = max_text_width(font, ticks.iter().map(String::as_str), legend_em);
        let bar_w = px(240.0).max(3 * ticks_w + 2 * pad);
        let caption_w = max_text_width(font, [table.value_label.as_str()], legend_em);
        let title_w = max_text_width(font, [table.title.as_str()], title_em);
        let legend_h = legend_gap + 2 * legend_line_h + bar_h;

        let content_w = grid_w
            .max(i64::from(title_w))
            .max(i64::from(bar_w))
            .max(i64::from(caption_w));
        let width = content_w.saturating_add(2 * i64::from(margin));
        let height = grid_bottom.saturating_add(i64::from(legend_h + margin));
        let too_large = || PlotError::TooLarge {
            width: width.max(0) as u64,
            height: height.max(0) as u64,
            limit: MAX_PIXELS,
        };
        if width.saturating_mul(height) > MAX_PIXELS as i64 {
            return Err(too_large());
        }
        Ok(Self {
            width: u32::try_from(width).map_err(|_| too_large())?,
            height: u32::try_from(height).map_err(|_| too_large())?,
            pad,
            margin,
            cell_em,
            title_em,
            legend_em,
            title_y,
            table_x,
            table_y,
            row_label_w,
            cell_w,
            cell_h,
            // In range: the picture, which contains it, passed the size check.
            legend_y: (grid_bottom + i64::from(legend_gap)) as i32,
            legend_line_h,
            bar_w,
            bar_h,
            max_value,
        })
    }
}

const WHITE: Rgb = [255, 255, 255];
const HEADER_FILL: Rgb = [236, 236, 236];
const GRID_LINE: Rgb = [200, 200, 200];
const INK: Rgb = [20, 20, 20];
const MUTED_INK: Rgb = [110, 110, 110];

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// A backend plus the font, with the few primitives the table is made of.
struct Painter<'b, B: TextBackend> {
    backend: &'b mut B,
    font: &'b BundledFont,
}

impl<B: TextBackend> Painter<'_, B> {
    /// Draws `text` with its vertical centre at `y`, anchored horizontally at `x` by `h`.
    fn text(
        &mut self,
        text: &str,
        (x, y): (i32, i32),
        em: f64,
        h: HPos,
        color: Rgb,
    ) -> Result<(), PlotError> {
        if text.is_empty() {
            return Ok(());
        }
        let label = Label {
            text,
            x,
            y,
            em,
            h,
            color,
        };
        self.backend.draw_label(self.font, &label).map_err(draw_err)
    }

    fn fill(
        &mut self,
        (x, y): (i32, i32),
        (w, h): (i32, i32),
        color: Rgb,
    ) -> Result<(), PlotError> {
        self.backend
            .draw_rect((x, y), (x + w, y + h), &rgb(color).filled(), true)
            .map_err(draw_err)
    }

    fn outline(
        &mut self,
        (x, y): (i32, i32),
        (w, h): (i32, i32),
        color: Rgb,
    ) -> Result<(), PlotError> {
        self.backend
            .draw_rect((x, y), (x + w, y + h), &rgb(color), false)
            .map_err(draw_err)
    }

    /// A filled box with a thin outline, so white cells stay visible on the white page.
    fn cell(&mut self, pos: (i32, i32), size: (i32, i32), fill: Rgb) -> Result<(), PlotError> {
        self.fill(pos, size, fill)?;
        self.outline(pos, size, GRID_LINE)
    }
}

/// Draws the whole table; the single drawing routine behind both SVG and PNG.
pub(crate) fn draw<B: TextBackend>(
    backend: &mut B,
    font: &BundledFont,
    table: &TokenTable,
    l: &Layout,
) -> Result<(), PlotError> {
    let mut p = Painter { backend, font };
    let (width, height) = (l.width as i32, l.height as i32);
    p.fill((0, 0), (width, height), WHITE)?;
    let half = l.cell_h / 2;

    p.text(
        &table.title,
        (width / 2, l.title_y),
        l.title_em,
        HPos::Center,
        INK,
    )?;

    // Header row: the row-axis caption in the corner, then the column labels.
    let label_right = l.table_x + l.row_label_w - l.pad;
    p.text(
        ROW_AXIS_CAPTION,
        (label_right, l.table_y + half),
        l.cell_em,
        HPos::Right,
        MUTED_INK,
    )?;
    let grid_x = l.table_x + l.row_label_w;
    for (c, label) in table.col_labels.iter().enumerate() {
        let x = grid_x + c as i32 * l.cell_w;
        p.cell((x, l.table_y), (l.cell_w, l.cell_h), HEADER_FILL)?;
        p.text(
            label,
            (x + l.cell_w / 2, l.table_y + half),
            l.cell_em,
            HPos::Center,
            INK,
        )?;
    }

    for (r, (label, row)) in table.row_labels.iter().zip(&table.cells).enumerate() {
        let y = l.table_y + (r as i32 + 1) * l.cell_h;
        p.text(label, (label_right, y + half), l.cell_em, HPos::Right, INK)?;
        for (c, cell) in row.iter().enumerate() {
            let x = grid_x + c as i32 * l.cell_w;
            let fill = fill_color(cell.value, l.max_value);
            p.cell((x, y), (l.cell_w, l.cell_h), fill)?;
            p.text(
                &cell.text,
                (x + l.cell_w / 2, y + half),
                l.cell_em,
                HPos::Center,
                text_color(fill),
            )?;
        }
    }

    draw_legend(&mut p, table, l)
}

/// Colour bar with its caption above and 0 / middle / max ticks below.
fn draw_legend<B: TextBackend>(
    p: &mut Painter<'_, B>,
    table: &TokenTable,
    l: &Layout,
) -> Result<(), PlotError> {
    let x0 = l.margin;
    let line_mid = l.legend_line_h / 2;
    p.text(
        &table.value_label,
        (x0, l.legend_y + line_mid),
        l.legend_em,
        HPos::Left,
        INK,
    )?;

    let bar_y = l.legend_y + l.legend_line_h;
    // Enough slices that neighbouring ones differ by about one colour step.
    let slices = l.bar_w.clamp(1, 128);
    for i in 0..slices {
        let xa = x0 + l.bar_w * i / slices;
        let xb = x0 + l.bar_w * (i + 1) / slices;
        let color = scale_color((i as f32 + 0.5) / slices as f32);
        p.fill((xa, bar_y), (xb - xa, l.bar_h), color)?;
    }
    p.outline((x0, bar_y), (l.bar_w, l.bar_h), GRID_LINE)?;

    let tick_y = bar_y + l.bar_h + line_mid;
    let ticks = [
        (0.0, x0, HPos::Left),
        (l.max_value / 2.0, x0 + l.bar_w / 2, HPos::Center),
        (l.max_value, x0 + l.bar_w, HPos::Right),
    ];
    for (v, x, h) in ticks {
        p.text(&format_value(v), (x, tick_y), l.legend_em, h, INK)?;
    }
    Ok(())
}

/// Width and height of the picture at `scale`.
pub(crate) fn pixel_size(table: &TokenTable, scale: f64) -> Result<(u32, u32), PlotError> {
    let layout = Layout::new(table, &BundledFont::load()?, scale)?;
    Ok((layout.width, layout.height))
}

/// Renders to an SVG document at scale 1 (one SVG user unit per layout pixel).
pub(crate) fn render_svg(table: &TokenTable) -> Result<String, PlotError> {
    let font = BundledFont::load()?;
    let layout = Layout::new(table, &font, 1.0)?;
    let mut out = String::new();
    {
        let mut backend = SVGBackend::with_string(&mut out, (layout.width, layout.height));
        draw(&mut backend, &font, table, &layout)?;
        backend.present().map_err(draw_err)?;
    }
    Ok(out)
}

/// Renders to encoded PNG bytes at `scale` pixels per layout pixel.
pub(crate) fn render_png(table: &TokenTable, scale: f64) -> Result<Vec<u8>, PlotError> {
    let font = BundledFont::load()?;
    let layout = Layout::new(table, &font, scale)?;
    let (w, h) = (layout.width, layout.height);
    let mut rgb_buf = vec![255u8; w as usize * h as usize * 3];
    {
        let mut backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb_buf, (w, h))
            .map_err(draw_err)?;
        draw(&mut backend, &font, table, &layout)?;
        backend.present().map_err(draw_err)?;
    }
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let png_err = |e: png::EncodingError| PlotError::Png(e.to_string());
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&rgb_buf).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(png_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_compactly() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(12.345), "12.3");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(9.2), "9.2");
        assert_eq!(format_value(10.0), "10");
        assert_eq!(format_value(123.4), "123");
        assert_eq!(format_value(1234.0), "1234");
        assert_eq!(format_value(123456.0), "1.23e5");
        assert_eq!(format_value(0.001234), "1.23e-3");
    }
}
