//! The bundled font: measuring text and putting it on a backend.
//!
//! SVG keeps text as `<text>` elements for the viewer to render; bitmaps need it rasterized.
//! We rasterize with `ab_glyph` ourselves instead of through plotters' `ab_glyph` feature:
//! plotters 0.3.7 places each glyph at its bounding box rather than at its origin (side bearings
//! are dropped, so "VJP" renders with J on top of V) and puts the baseline at a size-dependent
//! offset that does not match the SVG. Doing it here also avoids plotters' global font registry,
//! whose statics are per cell in evcxr notebooks.

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters::backend::{BitMapBackend, DrawingBackend, PixelFormat, SVGBackend};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontDesc, FontFamily, FontStyle, FontTransform, RGBColor, TextStyle};
use plotters_backend::{BackendColor, DrawingErrorKind};

use crate::color::Rgb;
use crate::PlotError;

/// DejaVu Sans: permissively licensed, broad coverage, and installed on most Linux desktops,
/// so SVG viewers often render with the very metrics the layout was measured with.
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// `font-family` of SVG text: a CSS list, so viewers without DejaVu Sans use their sans-serif.
pub(crate) const FONT_FAMILY: &str = "DejaVu Sans, sans-serif";

/// Where the baseline sits below a line's vertical centre, in em. Half of DejaVu's cap height
/// (0.73 em): capitals and digits look centred, the usual choice for labels.
const BASELINE_BELOW_CENTER_EM: f64 = 0.365;

/// How far below the `y` of a top-anchored SVG `<text>` plotters puts the baseline: its
/// `VPos::Top` emits `dy="0.76em"`.
const SVG_TOP_DY_EM: f64 = 0.76;

/// plotters' SVG backend writes `font-size` as the style size divided by this.
const PLOTTERS_SVG_SIZE_DIVISOR: f64 = 1.24;

/// The bundled font, parsed.
///
/// Parsing only reads the table directory, so it is cheap enough to do once per rendering.
#[derive(Clone)]
pub(crate) struct BundledFont(FontRef<'static>);

impl BundledFont {
    pub(crate) fn load() -> Result<Self, PlotError> {
        FontRef::try_from_slice(FONT_BYTES)
            .map(Self)
            .map_err(|e| PlotError::Font(format!("assets/DejaVuSans.ttf: {e}")))
    }

    /// ab_glyph scales fonts by line height (ascent - descent); CSS `font-size` is the em.
    fn px_scale(&self, em: f64) -> PxScale {
        let units_per_em = self.0.units_per_em().unwrap_or(2048.0);
        PxScale::from(em as f32 * self.0.height_unscaled() / units_per_em)
    }

    /// Advance width of `text` at `em` pixels per em, kerning included.
    pub(crate) fn width(&self, text: &str, em: f64) -> f64 {
        let font = self.0.as_scaled(self.px_scale(em));
        let mut width = 0.0f32;
        let mut prev: Option<GlyphId> = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                width += font.kern(p, id);
            }
            width += font.h_advance(id);
            prev = Some(id);
        }
        f64::from(width)
    }

    /// Calls `put(x, y, coverage)` for every pixel of `text` with its pen starting at `x` and its
    /// baseline at `baseline`.
    fn rasterize(&self, text: &str, em: f64, x: f64, baseline: f64, mut put: impl FnMut(i32, i32, f32)) {
        let scale = self.px_scale(em);
        let font = self.0.as_scaled(scale);
        let mut pen = x as f32;
        let mut prev: Option<GlyphId> = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                pen += font.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scale, point(pen, baseline as f32));
            if let Some(outline) = self.0.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    put(bounds.min.x as i32 + gx as i32, bounds.min.y as i32 + gy as i32, coverage);
                });
            }
            pen += font.h_advance(id);
            prev = Some(id);
        }
    }
}

/// One line of text to draw.
///
/// Horizontal text (the default) is anchored at `x` by `h` and centred vertically on `y`.
/// Vertical text reads bottom to top (rotated 90 degrees counter-clockwise): the roles swap,
/// so it is centred horizontally on `x` and anchored at `y` along its direction by `h`
/// (`Left`: the text starts at `y` and goes up; `Right`: it ends at `y`).
pub(crate) struct Label<'a> {
    pub(crate) text: &'a str,
    /// Horizontal anchor position (vertical text: the centre of the line).
    pub(crate) x: i32,
    /// Vertical centre of the line (vertical text: the anchor position).
    pub(crate) y: i32,
    /// Font size, pixels per em.
    pub(crate) em: f64,
    pub(crate) h: HPos,
    pub(crate) color: Rgb,
    /// Rotated to read bottom to top.
    pub(crate) vertical: bool,
}

/// A plotters backend that can draw a [`Label`] with the bundled font.
pub(crate) trait TextBackend: DrawingBackend {
    /// Draws `label`; `font` is the bundled font, for backends that rasterize.
    fn draw_label(&mut self, font: &BundledFont, label: &Label<'_>) -> Result<(), DrawingErrorKind<Self::ErrorType>>;
}

impl TextBackend for SVGBackend<'_> {
    fn draw_label(&mut self, _font: &BundledFont, label: &Label<'_>) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = RGBColor(label.color[0], label.color[1], label.color[2]);
        let size = plotters_size_for_em(label.em);
        let style = TextStyle::from(FontDesc::new(FontFamily::Name(FONT_FAMILY), size, FontStyle::Normal))
            .color(&color)
            .pos(Pos::new(label.h, VPos::Top));
        // Top-anchored so that the baseline offset is in em, which every viewer honours,
        // unlike the "ex" that plotters uses for centred text.
        let shift = ((BASELINE_BELOW_CENTER_EM - SVG_TOP_DY_EM) * label.em).round() as i32;
        if label.vertical {
            // `rotate(270, x, y)` about the anchor turns the text's "down" into "right".
            let style = style.transform(FontTransform::Rotate270);
            self.draw_text(label.text, &style, (label.x + shift, label.y))
        } else {
            self.draw_text(label.text, &style, (label.x, label.y + shift))
        }
    }
}

/// The plotters text size that makes its SVG backend write `font-size` = `em`.
///
/// `em * 1.24 / 1.24` is often a few ulps off (`font-size="13.000000000000002"`), so try the
/// neighbouring floats for one that divides back exactly.
fn plotters_size_for_em(em: f64) -> f64 {
    let size = em * PLOTTERS_SVG_SIZE_DIVISOR;
    let bits = size.to_bits();
    (0..=8u64)
        .flat_map(|k| [bits.checked_add(k), bits.checked_sub(k)])
        .flatten()
        .map(f64::from_bits)
        .find(|candidate| candidate / PLOTTERS_SVG_SIZE_DIVISOR == em)
        .unwrap_or(size)
}

impl<P: PixelFormat> TextBackend for BitMapBackend<'_, P> {
    fn draw_label(&mut self, font: &BundledFont, label: &Label<'_>) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let width = font.width(label.text, label.em);
        let start = match label.h {
            HPos::Left => 0.0,
            HPos::Center => width / 2.0,
            HPos::Right => width,
        };
        let baseline = BASELINE_BELOW_CENTER_EM * label.em;
        let rgb = (label.color[0], label.color[1], label.color[2]);
        let (x0, y0) = (label.x, label.y);
        let vertical = label.vertical;
        let mut result = Ok(());
        // Rasterized relative to the anchor, then placed (and for vertical text rotated: the
        // text's right is up, its down is right).
        font.rasterize(label.text, label.em, -start, baseline, |u, v, coverage| {
            if result.is_ok() && coverage > 0.0 {
                let color = BackendColor { alpha: f64::from(coverage.min(1.0)), rgb };
                let at = if vertical { (x0 + v, y0 - u - 1) } else { (x0 + u, y0 + v) };
                result = self.draw_pixel(at, color);
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_font_size_is_written_exactly() {
        use crate::render::{ANNOTATION_EM, CELL_EM, LEGEND_EM, TITLE_EM};
        for em in [CELL_EM, TITLE_EM, LEGEND_EM, ANNOTATION_EM] {
            assert_eq!(plotters_size_for_em(em) / PLOTTERS_SVG_SIZE_DIVISOR, em, "em {em}");
        }
    }

    #[test]
    fn bundled_font_loads_and_measures() {
        let font = BundledFont::load().unwrap();
        let w = font.width("Paris", 20.0);
        assert!(w > 20.0 && w < 100.0, "width {w}");
        assert_eq!(font.width("", 20.0), 0.0);
        // Width scales linearly with the font size.
        assert!((font.width("Paris", 40.0) - 2.0 * w).abs() < 1.0);
    }
}
