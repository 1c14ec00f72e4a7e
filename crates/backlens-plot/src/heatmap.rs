//! Heatmaps: a grid of coloured cells over two labelled axes, with a colour bar.

use plotters::style::text_anchor::HPos;

use crate::color::{text_color, ColorMap, NO_VALUE};
use crate::render::{
    checked_size, figure_methods, format_tick, format_value, max_text_width, nice_stride, nice_ticks, ColorBar,
    ColorBarLayout, Figure, Painter, ANNOTATION_EM, CELL_EM, GRID_LINE, INK, LEGEND_EM, TITLE_EM,
};
use crate::text::{BundledFont, TextBackend};
use crate::PlotError;

/// How a [`Heatmap`] maps values to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorScale {
    /// White at the low end of the range to dark red at the high end: the ramp of
    /// [`crate::TokenTable`]. For magnitudes such as norms.
    #[default]
    Sequential,
    /// Dark blue at the low end (below 0), white at 0, dark red at the high end (above 0). For
    /// signed quantities such as cosines.
    Diverging,
}

/// A heatmap: one coloured cell per value, rows top to bottom, columns left to right.
///
/// Handles small maps (cells about 24 pixels, optionally annotated with their values) as well
/// as very wide or tall ones: the grid is at most about 1200 x 1000 SVG units, so cells may get
/// narrower than a pixel, and only every k-th row or column label (k = 1, 2, 5, 10, 20, ...) is
/// drawn so that labels never overlap. Column labels are written vertically when that lets all
/// of them show.
///
/// When there are more columns (or rows) than pixels, neighbouring cells share a pixel and only
/// one of them shows; at [`crate::PNG_SCALE`] every one of up to about 2400 columns still gets
/// its own pixel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// Title drawn above the map; may be empty.
    pub title: String,
    /// One label per row, top row first.
    pub row_labels: Vec<String>,
    /// One label per column, left to right.
    pub col_labels: Vec<String>,
    /// Values indexed `[row][col]`; NaN means "no value" and is drawn light grey (the colour
    /// bar then gets a "no value" swatch). Infinite values are an error.
    pub values: Vec<Vec<f32>>,
    /// Caption of the horizontal axis (the columns), drawn below the map; may be empty.
    pub x_label: String,
    /// Caption of the vertical axis (the rows), drawn left of the row labels, reading bottom
    /// to top; may be empty.
    pub y_label: String,
    /// Caption of the colour bar.
    pub value_label: String,
    /// How values map to colours.
    pub scale: ColorScale,
    /// Values given the extreme colours, `(low, high)`; values outside are clamped. `None`
    /// derives it from the finite values: `(min(0, min), max)` for
    /// [`ColorScale::Sequential`], `(-m, m)` with `m` the largest `|value|` for
    /// [`ColorScale::Diverging`]. A diverging range must have `low < 0 < high`; an asymmetric
    /// one keeps white at 0 and scales each side separately.
    pub range: Option<(f32, f32)>,
    /// Print each value (at most 3 significant digits) inside its cell. Meant for small maps:
    /// cells widen to fit the numbers, and the numbers are left out when the cells cannot fit
    /// them within the size cap.
    pub annotate: bool,
}

/// Largest grid size at scale 1; beyond this cells shrink instead (so the whole picture stays
/// within about 1400 units).
const MAX_GRID_W: f64 = 1200.0;
const MAX_GRID_H: f64 = 1000.0;
/// Cell size at scale 1 when there is room.
const CELL: f64 = 24.0;

impl Heatmap {
    /// Checks that the map is non-empty, rectangular and labelled, that no value is infinite,
    /// and that a given `range` is usable.
    ///
    /// Every rendering method calls this first.
    pub fn validate(&self) -> Result<(), PlotError> {
        let rows = self.values.len();
        let cols = self.col_labels.len();
        if self.row_labels.len() != rows {
            return Err(PlotError::RowLabelCount { labels: self.row_labels.len(), rows });
        }
        for (row, values) in self.values.iter().enumerate() {
            if values.len() != cols {
                return Err(PlotError::RaggedRow { row, len: values.len(), expected: cols });
            }
            if let Some(col) = values.iter().position(|v| v.is_infinite()) {
                return Err(PlotError::InfiniteValue { row, col, value: values[col] });
            }
        }
        if rows == 0 || cols == 0 {
            return Err(PlotError::Empty { rows, cols });
        }
        if let Some((lo, hi)) = self.range {
            let bad = |requirement| PlotError::InvalidRange {
                what: "colour range",
                min: f64::from(lo),
                max: f64::from(hi),
                requirement,
            };
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(bad("both ends must be finite with low < high"));
            }
            if self.scale == ColorScale::Diverging && !(lo < 0.0 && hi > 0.0) {
                return Err(bad("a diverging scale needs low < 0 < high"));
            }
        }
        Ok(())
    }

    /// The values that get the extreme colours, `(low, high)`: [`Self::range`] if given,
    /// otherwise derived from the finite values as described there. A degenerate derived range
    /// (all values equal, or none finite) is widened to a unit-sized one.
    pub fn color_range(&self) -> Result<(f32, f32), PlotError> {
        self.validate()?;
        Ok(self.color_map().range())
    }

    fn finite_values(&self) -> impl Iterator<Item = f32> + '_ {
        self.values.iter().flatten().copied().filter(|v| v.is_finite())
    }

    fn has_missing(&self) -> bool {
        self.values.iter().flatten().any(|v| v.is_nan())
    }

    /// Expects a validated map.
    fn color_map(&self) -> ColorMap {
        match self.scale {
            ColorScale::Sequential => {
                let (lo, hi) = self.range.unwrap_or_else(|| {
                    let (min, max) =
                        self.finite_values().fold((0.0f32, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
                    if max > min {
                        (min, max)
                    } else {
                        (min, min + 1.0)
                    }
                });
                ColorMap::Sequential { lo, hi }
            }
            ColorScale::Diverging => {
                let (lo, hi) = self.range.unwrap_or_else(|| {
                    let m = self.finite_values().fold(0.0f32, |m, v| m.max(v.abs()));
                    let m = if m > 0.0 { m } else { 1.0 };
                    (-m, m)
                });
                ColorMap::Diverging { lo, hi }
            }
        }
    }

    fn color_bar(&self) -> ColorBar {
        let map = self.color_map();
        let (lo, hi) = map.range();
        let (ticks, step) = nice_ticks(f64::from(lo), f64::from(hi), 6);
        ColorBar {
            caption: self.value_label.clone(),
            map,
            ticks: ticks
                .into_iter()
                .map(|v| {
                    let t = ((v - f64::from(lo)) / f64::from(hi - lo)) as f32;
                    (t, format_tick(v, step))
                })
                .collect(),
            no_value: self.has_missing(),
        }
    }
}

figure_methods!(Heatmap, "heatmap");

/// Where the y-axis caption goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum YLabel {
    None,
    /// Reading bottom to top, centred on this x.
    Vertical {
        x: i32,
        y: i32,
    },
    /// On its own line above the map (when it is longer than the map is tall), centred on `y`.
    Above {
        y: i32,
    },
}

/// Pixel geometry of one rendering of a heatmap. All lengths already include the scale.
pub(crate) struct HeatmapLayout {
    width: u32,
    height: u32,
    margin: i32,
    title_em: f64,
    axis_em: f64,
    label_em: f64,
    annotation_em: f64,
    title_y: i32,
    y_label: YLabel,
    row_label_right: i32,
    grid_x: i32,
    grid_y: i32,
    grid_w: i32,
    grid_h: i32,
    /// Cell size, fractional: cell edges are rounded positions along the grid.
    cell_w: f64,
    cell_h: f64,
    tick_len: i32,
    row_stride: usize,
    col_stride: usize,
    col_vertical: bool,
    /// Top of the column labels (vertical ones) or their centre line (horizontal ones).
    col_label_y: i32,
    /// Centre line of the x-axis caption and its horizontal centre.
    x_label_at: (i32, i32),
    annotate: bool,
    map: ColorMap,
    bar: ColorBar,
    legend: ColorBarLayout,
    legend_y: i32,
}

impl HeatmapLayout {
    fn x_edge(&self, c: usize) -> i32 {
        self.grid_x + (c as f64 * self.cell_w).round() as i32
    }

    fn y_edge(&self, r: usize) -> i32 {
        self.grid_y + (r as f64 * self.cell_h).round() as i32
    }

    fn col_center(&self, c: usize) -> i32 {
        self.grid_x + ((c as f64 + 0.5) * self.cell_w).round() as i32
    }

    fn row_center(&self, r: usize) -> i32 {
        self.grid_y + ((r as f64 + 0.5) * self.cell_h).round() as i32
    }
}

impl Figure for Heatmap {
    type Layout = HeatmapLayout;

    fn check(&self) -> Result<(), PlotError> {
        self.validate()
    }

    fn layout(&self, font: &BundledFont, scale: f64) -> Result<HeatmapLayout, PlotError> {
        let px = |v: f64| (v * scale).round() as i32;
        let (title_em, axis_em) = (TITLE_EM * scale, CELL_EM * scale);
        let (label_em, annotation_em) = (LEGEND_EM * scale, ANNOTATION_EM * scale);
        let margin = px(16.0);
        let pad = px(6.0);
        let tick_len = px(4.0);
        let rows = self.values.len();
        let cols = self.col_labels.len();

        // Cell size at scale 1 (so that the PNG is the SVG scaled), capped by the grid size.
        let annotation_w = if self.annotate {
            let texts: Vec<String> = self.finite_values().map(format_value).collect();
            f64::from(max_text_width(font, texts.iter().map(String::as_str), ANNOTATION_EM)) + 8.0
        } else {
            0.0
        };
        let cell_w1 = CELL.max(annotation_w).min(MAX_GRID_W / cols as f64);
        let cell_h1 = CELL.min(MAX_GRID_H / rows as f64);
        let annotate = self.annotate && cell_w1 >= annotation_w && cell_h1 >= 1.2 * ANNOTATION_EM;
        let (cell_w, cell_h) = (cell_w1 * scale, cell_h1 * scale);
        let grid_w = (cell_w * cols as f64).round() as i32;
        let grid_h = (cell_h * rows as f64).round() as i32;

        // Labels: every k-th, k chosen so that neighbours never overlap.
        let line_pitch = label_em * 1.3;
        let row_stride = nice_stride(line_pitch / cell_h);
        let row_label_w =
            max_text_width(font, self.row_labels.iter().step_by(row_stride).map(String::as_str), label_em);
        let widest_col = max_text_width(font, self.col_labels.iter().map(String::as_str), label_em);
        let horizontal_stride = nice_stride(f64::from(widest_col + px(6.0)) / cell_w);
        let vertical_stride = nice_stride(line_pitch / cell_w);
        // Vertical text only when it shows every label and horizontal text would not.
        let col_vertical = horizontal_stride > 1 && vertical_stride == 1;
        let col_stride = if col_vertical { 1 } else { horizontal_stride };
        let col_label_h = if col_vertical { widest_col + pad } else { px(18.0) };
        // How far horizontal column labels stick out past the grid's ends.
        let (mut over_left, mut over_right) = (0, 0);
        if !col_vertical {
            for (c, label) in self.col_labels.iter().enumerate().step_by(col_stride) {
                let half = (font.width(label, label_em) / 2.0).ceil() as i32;
                let center = ((c as f64 + 0.5) * cell_w).round() as i32;
                over_left = over_left.max(half - center);
                over_right = over_right.max(center + half - grid_w);
            }
        }

        // Vertical layout.
        let title_h = if self.title.is_empty() { 0 } else { px(36.0) };
        let title_y = margin + px(10.0);
        let mut y = margin + title_h;
        let y_label_w = max_text_width(font, [self.y_label.as_str()], axis_em);
        let y_label_above = !self.y_label.is_empty() && y_label_w > grid_h + col_label_h;
        let y_label_above_y = y + px(10.0);
        if y_label_above {
            y += px(26.0);
        }
        let grid_y = y;
        let col_label_y =
            if col_vertical { grid_y + grid_h + tick_len + px(3.0) } else { grid_y + grid_h + tick_len + px(10.0) };
        let mut y = grid_y + grid_h + tick_len + px(2.0) + col_label_h;
        let x_label_y = y + px(14.0);
        if !self.x_label.is_empty() {
            y += px(28.0);
        }
        let legend_y = y + px(14.0);
        let bar = self.color_bar();
        let legend = bar.layout(font, scale, 280.0);

        // Horizontal layout.
        let mut x = margin;
        let y_label_x = x + px(9.0);
        if !self.y_label.is_empty() && !y_label_above {
            x += px(18.0) + pad;
        }
        let row_label_right = x + row_label_w;
        let grid_x = (row_label_right + pad + tick_len).max(margin + over_left);
        let grid_right = i64::from(grid_x) + i64::from(grid_w);
        let x_label_w = max_text_width(font, [self.x_label.as_str()], axis_em);
        let content_right = (grid_right + i64::from(over_right))
            .max(i64::from(grid_x) + i64::from(x_label_w))
            .max(i64::from(margin) + i64::from(max_text_width(font, [self.title.as_str()], title_em)))
            .max(i64::from(margin) + i64::from(legend.width))
            .max(i64::from(margin) + i64::from(y_label_w));
        let width = content_right + i64::from(margin);
        let height = i64::from(legend_y) + i64::from(legend.height) + i64::from(margin);
        let (width, height) = checked_size(width, height)?;

        // The x caption is centred under the grid unless that would push it off the page.
        let x_label_cx = (grid_x + grid_w / 2).max(margin + x_label_w / 2).min(width as i32 - margin - x_label_w / 2);
        let y_label = if self.y_label.is_empty() {
            YLabel::None
        } else if y_label_above {
            YLabel::Above { y: y_label_above_y }
        } else {
            // Centred on the grid, or from its top edge down when it is longer than the grid.
            YLabel::Vertical { x: y_label_x, y: grid_y + grid_h.max(y_label_w) / 2 }
        };
        Ok(HeatmapLayout {
            width,
            height,
            margin,
            title_em,
            axis_em,
            label_em,
            annotation_em,
            title_y,
            y_label,
            row_label_right,
            grid_x,
            grid_y,
            grid_w,
            grid_h,
            cell_w,
            cell_h,
            tick_len,
            row_stride,
            col_stride,
            col_vertical,
            col_label_y,
            x_label_at: (x_label_cx, x_label_y),
            annotate,
            map: self.color_map(),
            bar,
            legend,
            legend_y,
        })
    }

    fn size(l: &HeatmapLayout) -> (u32, u32) {
        (l.width, l.height)
    }

    fn draw<B: TextBackend>(&self, p: &mut Painter<'_, B>, l: &HeatmapLayout) -> Result<(), PlotError> {
        p.text(&self.title, (l.width as i32 / 2, l.title_y), l.title_em, HPos::Center, INK)?;

        for (r, row) in self.values.iter().enumerate() {
            let (ya, yb) = (l.y_edge(r), l.y_edge(r + 1));
            if yb <= ya {
                continue; // shares its pixel row with a neighbour
            }
            for (c, &v) in row.iter().enumerate() {
                let (xa, xb) = (l.x_edge(c), l.x_edge(c + 1));
                if xb <= xa {
                    continue;
                }
                let fill = if v.is_nan() { NO_VALUE } else { l.map.color(v) };
                p.fill((xa, ya), (xb - xa, yb - ya), fill)?;
                if l.annotate && !v.is_nan() {
                    p.text(
                        &format_value(v),
                        ((xa + xb) / 2, (ya + yb) / 2),
                        l.annotation_em,
                        HPos::Center,
                        text_color(fill),
                    )?;
                }
            }
        }
        p.outline((l.grid_x, l.grid_y), (l.grid_w, l.grid_h), GRID_LINE)?;

        // Row labels with ticks, right-aligned left of the grid.
        for (r, label) in self.row_labels.iter().enumerate().step_by(l.row_stride) {
            let y = l.row_center(r);
            p.line((l.grid_x - l.tick_len, y), (l.grid_x, y), INK, 1)?;
            p.text(label, (l.row_label_right, y), l.label_em, HPos::Right, INK)?;
        }
        // Column labels with ticks, below the grid.
        let grid_bottom = l.grid_y + l.grid_h;
        for (c, label) in self.col_labels.iter().enumerate().step_by(l.col_stride) {
            let x = l.col_center(c);
            p.line((x, grid_bottom), (x, grid_bottom + l.tick_len), INK, 1)?;
            if l.col_vertical {
                p.vertical_text(label, (x, l.col_label_y), l.label_em, HPos::Right, INK)?;
            } else {
                p.text(label, (x, l.col_label_y), l.label_em, HPos::Center, INK)?;
            }
        }

        p.text(&self.x_label, l.x_label_at, l.axis_em, HPos::Center, INK)?;
        match l.y_label {
            YLabel::None => {}
            YLabel::Vertical { x, y } => p.vertical_text(&self.y_label, (x, y), l.axis_em, HPos::Center, INK)?,
            YLabel::Above { y } => p.text(&self.y_label, (l.margin, y), l.axis_em, HPos::Left, INK)?,
        }

        l.bar.draw(p, &l.legend, (l.margin, l.legend_y))
    }
}
