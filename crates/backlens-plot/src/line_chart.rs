//! Line charts: series of (x, y) points over numeric axes, with a legend and dashed reference
//! lines.

use plotters::style::text_anchor::HPos;

use crate::color::{Rgb, SERIES_PALETTE};
use crate::render::{
    checked_size, figure_methods, format_tick, max_text_width, nice_ticks, Figure, Painter, CELL_EM, INK, LEGEND_EM,
    MUTED_INK, TITLE_EM, WHITE,
};
use crate::text::{BundledFont, TextBackend};
use crate::PlotError;

/// One line of a [`LineChart`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Name shown in the legend; a series with an empty name is left out of the legend.
    pub name: String,
    /// Points `(x, y)`, joined in the order given. A NaN `y` is a gap: the line stops before
    /// it and starts again after it. `x` must be finite.
    pub points: Vec<(f64, f64)>,
}

/// A dashed horizontal line across a [`LineChart`], such as a random baseline.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReferenceLine {
    /// Height of the line, in data units; must be finite.
    pub y: f64,
    /// Text written on the line at the right edge of the plot; may be empty.
    pub label: String,
}

/// A line chart: one or more [`Series`] over numeric x and y axes.
///
/// Series get distinct colours from the Okabe-Ito colour-blind-safe palette (cycled after 7)
/// and distinct marker shapes (cycled after 4); markers are drawn on every point unless a
/// series is too dense for them to stay apart. The legend, right of the plot, lists the
/// series names. Parts of lines outside the axis ranges are clipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    /// Title drawn above the chart; may be empty.
    pub title: String,
    /// Caption of the x axis; may be empty.
    pub x_label: String,
    /// Caption of the y axis, reading bottom to top; may be empty.
    pub y_label: String,
    /// The lines, drawn in order (later ones on top).
    pub series: Vec<Series>,
    /// Shown x range; `None` spans the points' x values with a small margin.
    pub x_range: Option<(f64, f64)>,
    /// Shown y range; `None` spans the finite y values and the reference lines with a small
    /// margin.
    pub y_range: Option<(f64, f64)>,
    /// Dashed horizontal lines, e.g. a chance level.
    pub reference_lines: Vec<ReferenceLine>,
}

/// Plot area at scale 1.
const PLOT_W: f64 = 560.0;
const PLOT_H: f64 = 340.0;
/// Marker radius at scale 1.
const MARKER_R: f64 = 3.5;
/// Series with more visible points than this many per plot pixel of width get no markers.
const MARKER_SPACING: f64 = 4.0 * MARKER_R;
const GRID: Rgb = [232, 232, 232];
const FRAME: Rgb = [150, 150, 150];
const REFERENCE: Rgb = [90, 90, 90];

/// Marker shapes, cycled over series.
#[derive(Debug, Clone, Copy)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
}

const MARKERS: [Marker; 4] = [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond];

impl LineChart {
    /// Checks that every point has a finite x and a finite or NaN y, that reference lines are
    /// finite, that given ranges are finite with `min < max`, and that some point has a finite
    /// y.
    ///
    /// Every rendering method calls this first.
    pub fn validate(&self) -> Result<(), PlotError> {
        for (s, series) in self.series.iter().enumerate() {
            for (index, &(x, y)) in series.points.iter().enumerate() {
                if !x.is_finite() || y.is_infinite() {
                    return Err(PlotError::InvalidPoint { series: s, index, x, y });
                }
            }
        }
        for (index, line) in self.reference_lines.iter().enumerate() {
            if !line.y.is_finite() {
                return Err(PlotError::InvalidReferenceLine { index, y: line.y });
            }
        }
        for (what, range) in [("x range", self.x_range), ("y range", self.y_range)] {
            if let Some((min, max)) = range {
                if !(min.is_finite() && max.is_finite() && min < max) {
                    return Err(PlotError::InvalidRange {
                        what,
                        min,
                        max,
                        requirement: "both ends must be finite with min < max",
                    });
                }
            }
        }
        if !self.points().any(|(_, y)| y.is_finite()) {
            return Err(PlotError::NoData);
        }
        Ok(())
    }

    fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series.iter().flat_map(|s| s.points.iter().copied())
    }

    /// The x and y ranges the axes show: the given ones, or ones derived from the data (x: all
    /// points; y: finite values and reference lines) widened by a small margin.
    #[allow(clippy::type_complexity)]
    pub fn ranges(&self) -> Result<((f64, f64), (f64, f64)), PlotError> {
        self.validate()?;
        let x = self.x_range.unwrap_or_else(|| padded(self.points().map(|(x, _)| x), 0.03));
        let y = self.y_range.unwrap_or_else(|| {
            let ys =
                self.points().map(|(_, y)| y).filter(|y| y.is_finite()).chain(self.reference_lines.iter().map(|l| l.y));
            padded(ys, 0.05)
        });
        Ok((x, y))
    }
}

figure_methods!(LineChart, "chart");

/// `[min, max]` of `values` widened by `margin` of its span on each side; a single value gets
/// a span of its own.
fn padded(values: impl Iterator<Item = f64>, margin: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi > lo {
        let d = (hi - lo) * margin;
        (lo - d, hi + d)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    }
}

/// Clips the segment `a`-`b` to the rectangle `x` x `y` (Liang-Barsky).
fn clip(a: (f64, f64), b: (f64, f64), (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a.0 - x0), (dx, x1 - a.0), (-dy, a.1 - y0), (dy, y1 - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| {
        if t == 0.0 {
            a
        } else if t == 1.0 {
            b
        } else {
            (a.0 + t * dx, a.1 + t * dy)
        }
    };
    Some((at(t0), at(t1)))
}

/// Pixel geometry of one rendering of a chart. All lengths already include the scale.
pub(crate) struct ChartLayout {
    width: u32,
    height: u32,
    title_em: f64,
    axis_em: f64,
    tick_em: f64,
    title_y: i32,
    plot_x: i32,
    plot_y: i32,
    plot_w: i32,
    plot_h: i32,
    x_range: (f64, f64),
    y_range: (f64, f64),
    /// Ticks with their labels.
    x_ticks: Vec<(f64, String)>,
    y_ticks: Vec<(f64, String)>,
    tick_len: i32,
    pad: i32,
    /// Centre of the y caption's line.
    y_label_x: i32,
    /// Centre line of the x caption.
    x_label_y: i32,
    x_tick_label_y: i32,
    line_w: u32,
    reference_w: u32,
    marker_r: f64,
    /// Which series get markers.
    markers: Vec<bool>,
    legend_x: i32,
    legend_y: i32,
    legend_line_h: i32,
    swatch_w: i32,
}

impl ChartLayout {
    fn to_px(&self, (x, y): (f64, f64)) -> (i32, i32) {
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        let fx = (x - x0) / (x1 - x0);
        let fy = (y - y0) / (y1 - y0);
        (
            self.plot_x + (fx * f64::from(self.plot_w)).round() as i32,
            self.plot_y + self.plot_h - (fy * f64::from(self.plot_h)).round() as i32,
        )
    }

    fn contains(&self, (x, y): (f64, f64)) -> bool {
        (self.x_range.0..=self.x_range.1).contains(&x) && (self.y_range.0..=self.y_range.1).contains(&y)
    }
}

fn tick_labels(ticks: (Vec<f64>, f64)) -> Vec<(f64, String)> {
    let (ticks, step) = ticks;
    ticks.into_iter().map(|v| (v, format_tick(v, step))).collect()
}

impl Figure for LineChart {
    type Layout = ChartLayout;

    fn check(&self) -> Result<(), PlotError> {
        self.validate()
    }

    fn layout(&self, font: &BundledFont, scale: f64) -> Result<ChartLayout, PlotError> {
        let px = |v: f64| (v * scale).round() as i32;
        let (title_em, axis_em, tick_em) = (TITLE_EM * scale, CELL_EM * scale, LEGEND_EM * scale);
        let margin = px(16.0);
        let pad = px(6.0);
        let tick_len = px(4.0);
        let (plot_w, plot_h) = (px(PLOT_W), px(PLOT_H));
        let (x_range, y_range) = self.ranges()?;

        // As many x ticks as fit with their labels apart.
        let mut x_ticks = Vec::new();
        for max_ticks in (2..=11).rev() {
            x_ticks = tick_labels(nice_ticks(x_range.0, x_range.1, max_ticks));
            let widest = max_text_width(font, x_ticks.iter().map(|(_, t)| t.as_str()), tick_em);
            if x_ticks.len() as i32 * (widest + px(16.0)) <= plot_w {
                break;
            }
        }
        let y_ticks = tick_labels(nice_ticks(y_range.0, y_range.1, 8));
        let y_tick_w = max_text_width(font, y_ticks.iter().map(|(_, t)| t.as_str()), tick_em);

        let title_h = if self.title.is_empty() { 0 } else { px(36.0) };
        let title_y = margin + px(10.0);
        let plot_y = margin + title_h + px(8.0);
        let x_tick_label_y = plot_y + plot_h + tick_len + px(10.0);
        let x_label_y = x_tick_label_y + px(24.0);
        let bottom = if self.x_label.is_empty() { x_tick_label_y + px(10.0) } else { x_label_y + px(10.0) };

        let mut x = margin;
        let y_label_x = x + px(9.0);
        if !self.y_label.is_empty() {
            x += px(18.0) + pad;
        }
        let plot_x = x + y_tick_w + pad + tick_len;

        let names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).filter(|n| !n.is_empty()).collect();
        let legend_x = plot_x + plot_w + px(24.0);
        let legend_line_h = px(20.0);
        let swatch_w = px(28.0);
        let legend_w =
            if names.is_empty() { 0 } else { swatch_w + pad + max_text_width(font, names.iter().copied(), tick_em) };
        // Room for the last x tick label, centred on the plot's right edge.
        let right = i64::from(plot_x + plot_w + px(16.0)).max(i64::from(legend_x) + i64::from(legend_w));
        let title_w = max_text_width(font, [self.title.as_str()], title_em);
        let x_label_w = max_text_width(font, [self.x_label.as_str()], axis_em);
        let width = right.max(i64::from(margin) + i64::from(title_w)).max(i64::from(plot_x) + i64::from(x_label_w))
            + i64::from(margin);
        let legend_bottom = i64::from(plot_y) + names.len() as i64 * i64::from(legend_line_h);
        let height = i64::from(bottom).max(legend_bottom) + i64::from(margin);
        let (width, height) = checked_size(width, height)?;

        let markers = self
            .series
            .iter()
            .map(|s| {
                let shown = s
                    .points
                    .iter()
                    .filter(|&&(x, y)| {
                        y.is_finite() && (x_range.0..=x_range.1).contains(&x) && (y_range.0..=y_range.1).contains(&y)
                    })
                    .count();
                shown as f64 <= PLOT_W / MARKER_SPACING
            })
            .collect();
        Ok(ChartLayout {
            width,
            height,
            title_em,
            axis_em,
            tick_em,
            title_y,
            plot_x,
            plot_y,
            plot_w,
            plot_h,
            x_range,
            y_range,
            x_ticks,
            y_ticks,
            tick_len,
            pad,
            y_label_x,
            x_label_y,
            x_tick_label_y,
            line_w: px(2.0).max(1) as u32,
            reference_w: px(1.5).max(1) as u32,
            marker_r: MARKER_R * scale,
            markers,
            legend_x,
            legend_y: plot_y + legend_line_h / 2,
            legend_line_h,
            swatch_w,
        })
    }

    fn size(l: &ChartLayout) -> (u32, u32) {
        (l.width, l.height)
    }

    fn draw<B: TextBackend>(&self, p: &mut Painter<'_, B>, l: &ChartLayout) -> Result<(), PlotError> {
        p.text(&self.title, (l.width as i32 / 2, l.title_y), l.title_em, HPos::Center, INK)?;
        let (left, top) = (l.plot_x, l.plot_y);
        let (right, bottom) = (l.plot_x + l.plot_w, l.plot_y + l.plot_h);

        // Grid lines and ticks.
        for (v, label) in &l.x_ticks {
            let (x, _) = l.to_px((*v, l.y_range.0));
            p.line((x, top), (x, bottom), GRID, 1)?;
            p.line((x, bottom), (x, bottom + l.tick_len), INK, 1)?;
            p.text(label, (x, l.x_tick_label_y), l.tick_em, HPos::Center, INK)?;
        }
        for (v, label) in &l.y_ticks {
            let (_, y) = l.to_px((l.x_range.0, *v));
            p.line((left, y), (right, y), GRID, 1)?;
            p.line((left - l.tick_len, y), (left, y), INK, 1)?;
            p.text(label, (left - l.tick_len - l.pad, y), l.tick_em, HPos::Right, INK)?;
        }
        p.outline((left, top), (l.plot_w, l.plot_h), FRAME)?;

        // Reference lines under the data; their labels come last, on top.
        let mut reference_labels = Vec::new();
        for line in &self.reference_lines {
            if !(l.y_range.0..=l.y_range.1).contains(&line.y) {
                continue;
            }
            let (_, y) = l.to_px((l.x_range.0, line.y));
            let dash = (l.line_w as i32 * 3, l.line_w as i32 * 2);
            p.dashed_hline((left, right), y, dash, REFERENCE, l.reference_w)?;
            reference_labels.push((line.label.as_str(), y));
        }

        for (i, series) in self.series.iter().enumerate() {
            let color = SERIES_PALETTE[i % SERIES_PALETTE.len()];
            draw_series(p, l, series, color)?;
            if l.markers[i] {
                let marker = MARKERS[i % MARKERS.len()];
                for &pt in &series.points {
                    if pt.1.is_finite() && l.contains(pt) {
                        draw_marker(p, l.to_px(pt), l.marker_r, marker, color)?;
                    }
                }
            }
        }

        // Reference labels at the right end, above the line (below it near the top), on a
        // white box so that lines under them do not garble them.
        for (label, y) in reference_labels {
            if label.is_empty() {
                continue;
            }
            let offset = l.legend_line_h / 2;
            let label_y = if y - 2 * offset < top { y + offset } else { y - offset };
            let w = p.text_width(label, l.tick_em);
            let box_h = l.legend_line_h - 2 * l.reference_w as i32;
            let x = right - l.pad;
            p.fill((x - w - l.pad / 2, label_y - box_h / 2), (w + l.pad, box_h), WHITE)?;
            p.text(label, (x, label_y), l.tick_em, HPos::Right, MUTED_INK)?;
        }

        // Axis captions.
        p.text(&self.x_label, (left + l.plot_w / 2, l.x_label_y), l.axis_em, HPos::Center, INK)?;
        p.vertical_text(&self.y_label, (l.y_label_x, top + l.plot_h / 2), l.axis_em, HPos::Center, INK)?;

        // Legend.
        let named = self.series.iter().enumerate().filter(|(_, s)| !s.name.is_empty());
        for (row, (i, series)) in named.enumerate() {
            let color = SERIES_PALETTE[i % SERIES_PALETTE.len()];
            let y = l.legend_y + row as i32 * l.legend_line_h;
            let x = l.legend_x;
            p.line((x, y), (x + l.swatch_w, y), color, l.line_w)?;
            if l.markers[i] {
                draw_marker(p, (x + l.swatch_w / 2, y), l.marker_r, MARKERS[i % MARKERS.len()], color)?;
            }
            p.text(&series.name, (x + l.swatch_w + l.pad, y), l.tick_em, HPos::Left, INK)?;
        }
        Ok(())
    }
}

/// The series' line: runs of consecutive finite points, clipped to the plot.
fn draw_series<B: TextBackend>(
    p: &mut Painter<'_, B>,
    l: &ChartLayout,
    series: &Series,
    color: Rgb,
) -> Result<(), PlotError> {
    let mut run: Vec<(i32, i32)> = Vec::new();
    let flush = |p: &mut Painter<'_, B>, run: &mut Vec<(i32, i32)>| {
        let result = if run.len() >= 2 { p.path(run, color, l.line_w) } else { Ok(()) };
        run.clear();
        result
    };
    for pair in series.points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if !(a.1.is_finite() && b.1.is_finite()) {
            flush(p, &mut run)?;
            continue;
        }
        match clip(a, b, l.x_range, l.y_range) {
            None => flush(p, &mut run)?,
            Some((ca, cb)) => {
                if ca != a || run.is_empty() {
                    flush(p, &mut run)?;
                    run.push(l.to_px(ca));
                }
                run.push(l.to_px(cb));
                if cb != b {
                    flush(p, &mut run)?;
                }
            }
        }
    }
    flush(p, &mut run)
}

fn draw_marker<B: TextBackend>(
    p: &mut Painter<'_, B>,
    (x, y): (i32, i32),
    r: f64,
    marker: Marker,
    color: Rgb,
) -> Result<(), PlotError> {
    let at = |dx: f64, dy: f64| (x + (dx * r).round() as i32, y + (dy * r).round() as i32);
    match marker {
        Marker::Circle => p.disc((x, y), r.round().max(1.0) as u32, color),
        Marker::Square => p.polygon(&[at(-0.9, -0.9), at(0.9, -0.9), at(0.9, 0.9), at(-0.9, 0.9)], color),
        Marker::Triangle => p.polygon(&[at(0.0, -1.2), at(1.1, 0.8), at(-1.1, 0.8)], color),
        Marker::Diamond => p.polygon(&[at(0.0, -1.25), at(1.1, 0.0), at(0.0, 1.25), at(-1.1, 0.0)], color),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_inside_parts() {
        let r = ((0.0, 1.0), (0.0, 1.0));
        let inside = ((0.2, 0.2), (0.8, 0.5));
        assert_eq!(clip(inside.0, inside.1, r.0, r.1), Some(inside));
        assert_eq!(clip((0.5, 0.5), (0.5, 2.0), r.0, r.1), Some(((0.5, 0.5), (0.5, 1.0))));
        assert_eq!(clip((2.0, 0.0), (3.0, 1.0), r.0, r.1), None);
        let (a, b) = clip((-1.0, 0.5), (2.0, 0.5), r.0, r.1).unwrap();
        assert_eq!((a, b), ((0.0, 0.5), (1.0, 0.5)));
    }

    #[test]
    fn ranges_pad_the_data() {
        assert_eq!(padded([0.0, 10.0].into_iter(), 0.05), (-0.5, 10.5));
        assert_eq!(padded([2.0].into_iter(), 0.05), (1.8, 2.2));
        assert_eq!(padded([0.0].into_iter(), 0.05), (-1.0, 1.0));
    }
}
