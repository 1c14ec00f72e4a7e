//! Colour scales (white to dark red, blue-white-red), the series palette, and the text colour
//! that stays readable on a fill. Shared by every figure kind.

/// Colour stops from 0 (white) to 1 (dark red), close to ColorBrewer's "Reds".
///
/// Every channel is non-increasing along the stops, so interpolated colours get darker
/// monotonically: a larger value never looks lighter.
const STOPS: [[u8; 3]; 6] =
    [[255, 255, 255], [254, 224, 210], [252, 146, 114], [222, 45, 38], [165, 15, 21], [103, 0, 13]];

/// Colour stops from 0 (white) to 1 (dark blue), close to ColorBrewer's "Blues" and matched in
/// lightness to [`STOPS`], for the negative half of the diverging scale.
const BLUE_STOPS: [[u8; 3]; 6] =
    [[255, 255, 255], [222, 235, 247], [158, 202, 225], [66, 146, 198], [8, 81, 156], [8, 48, 107]];

/// Fill of heatmap cells without a value (NaN): a neutral light grey, distinct from both
/// scales' white and their lightest tints.
pub(crate) const NO_VALUE: Rgb = [200, 200, 200];

/// Line colours of chart series, cycled: the Okabe-Ito colour-blind-safe palette without its
/// yellow, which is unreadable on white.
pub(crate) const SERIES_PALETTE: [Rgb; 7] = [
    [0, 114, 178],   // blue
    [213, 94, 0],    // vermillion
    [0, 158, 115],   // bluish green
    [204, 121, 167], // reddish purple
    [230, 159, 0],   // orange
    [86, 180, 233],  // sky blue
    [0, 0, 0],       // black
];

/// An sRGB colour.
pub(crate) type Rgb = [u8; 3];

/// How values map to colours, with the value range the extreme colours stand for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ColorMap {
    /// White at `lo` to dark red at `hi`; values outside are clamped. A range with `hi <= lo`
    /// draws everything white.
    Sequential { lo: f32, hi: f32 },
    /// Dark blue at `lo` (< 0), white at 0, dark red at `hi` (> 0); each half is scaled
    /// separately, so 0 stays white even for an asymmetric range.
    Diverging { lo: f32, hi: f32 },
}

impl ColorMap {
    /// The range whose ends get the extreme colours.
    pub(crate) fn range(self) -> (f32, f32) {
        match self {
            Self::Sequential { lo, hi } | Self::Diverging { lo, hi } => (lo, hi),
        }
    }

    /// Fill colour of a finite `value`.
    pub(crate) fn color(self, value: f32) -> Rgb {
        match self {
            Self::Sequential { lo, hi } => {
                let t = if hi > lo && value.is_finite() { ((value - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.0 };
                scale_color(t)
            }
            Self::Diverging { lo, hi } => {
                let s = if value >= 0.0 && hi > 0.0 {
                    (value / hi).min(1.0)
                } else if value < 0.0 && lo < 0.0 {
                    -(value / lo).min(1.0)
                } else {
                    0.0
                };
                diverging_color(s)
            }
        }
    }

    /// Colour at fraction `t` in `[0, 1]` along a colour bar from the low end to the high end.
    pub(crate) fn bar_color(self, t: f32) -> Rgb {
        match self {
            Self::Sequential { .. } => scale_color(t),
            Self::Diverging { lo, hi } => self.color(lo + (hi - lo) * t.clamp(0.0, 1.0)),
        }
    }
}

/// Colour at `s` in `[-1, 1]` on the blue-white-red scale: dark blue at -1, white at 0, dark
/// red (the end of [`scale_color`]) at 1.
pub(crate) fn diverging_color(s: f32) -> Rgb {
    if s >= 0.0 {
        scale_color(s)
    } else {
        interpolate(&BLUE_STOPS, -s)
    }
}

/// Fill colour for `value` on a scale from 0 (white) to `max` (the darkest stop).
///
/// Values are clamped to `[0, max]`; a zero (or non-finite) `max` gives white, so an
/// all-zero table draws as blank cells rather than failing.
pub(crate) fn fill_color(value: f32, max: f32) -> Rgb {
    let t = if max > 0.0 && max.is_finite() && value.is_finite() { (value / max).clamp(0.0, 1.0) } else { 0.0 };
    scale_color(t)
}

/// Colour at position `t` in `[0, 1]` along [`STOPS`], interpolated piecewise linearly.
pub(crate) fn scale_color(t: f32) -> Rgb {
    interpolate(&STOPS, t)
}

/// Colour at position `t` in `[0, 1]` along `stops`, interpolated piecewise linearly.
fn interpolate(stops: &[Rgb], t: f32) -> Rgb {
    let segments = (stops.len() - 1) as f32;
    let t = if t.is_nan() { 0.0 } else { t };
    let x = t.clamp(0.0, 1.0) * segments;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let frac = x - i as f32;
    let (a, b) = (stops[i], stops[i + 1]);
    std::array::from_fn(|k| {
        let v = f32::from(a[k]) + (f32::from(b[k]) - f32::from(a[k])) * frac;
        v.round().clamp(0.0, 255.0) as u8
    })
}

/// WCAG relative luminance of an sRGB colour, in `[0, 1]`.
pub(crate) fn luminance(c: Rgb) -> f32 {
    let lin = |v: u8| {
        let s = f32::from(v) / 255.0;
        if s <= 0.040_45 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
}

/// Black or white, whichever contrasts more with `background` (WCAG contrast ratio).
pub(crate) fn text_color(background: Rgb) -> Rgb {
    let l = luminance(background);
    let against_black = (l + 0.05) / 0.05;
    let against_white = 1.05 / (l + 0.05);
    if against_black >= against_white {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_white_and_max_is_the_full_colour() {
        assert_eq!(fill_color(0.0, 3.5), [255, 255, 255]);
        assert_eq!(fill_color(3.5, 3.5), [103, 0, 13]);
        assert_eq!(fill_color(7.0, 3.5), [103, 0, 13], "values above max clamp");
    }

    #[test]
    fn degenerate_max_gives_white() {
        assert_eq!(fill_color(0.0, 0.0), [255, 255, 255]);
        assert_eq!(fill_color(1.0, f32::NAN), [255, 255, 255]);
    }

    #[test]
    fn scale_darkens_monotonically() {
        let mut prev = scale_color(0.0);
        let mut prev_l = luminance(prev);
        for i in 1..=1000 {
            let c = scale_color(i as f32 / 1000.0);
            for k in 0..3 {
                assert!(c[k] <= prev[k], "channel {k} rose at t={}", i as f32 / 1000.0);
            }
            let l = luminance(c);
            assert!(l <= prev_l);
            (prev, prev_l) = (c, l);
        }
        assert!(luminance(scale_color(1.0)) < 0.05);
    }

    #[test]
    fn diverging_scale_is_blue_white_red() {
        assert_eq!(diverging_color(0.0), [255, 255, 255]);
        assert_eq!(diverging_color(1.0), [103, 0, 13]);
        assert_eq!(diverging_color(-1.0), [8, 48, 107]);
        let m = ColorMap::Diverging { lo: -2.0, hi: 4.0 };
        assert_eq!(m.color(0.0), [255, 255, 255]);
        assert_eq!(m.color(-2.0), [8, 48, 107]);
        assert_eq!(m.color(-9.0), [8, 48, 107], "clamped");
        assert_eq!(m.color(4.0), [103, 0, 13]);
        assert_eq!(m.color(-1.0), diverging_color(-0.5));
        assert_eq!(m.color(2.0), diverging_color(0.5));
        assert_eq!(m.bar_color(0.0), [8, 48, 107]);
        assert_eq!(m.bar_color(1.0), [103, 0, 13]);
        // The blue half darkens monotonically too.
        for i in 1..=100 {
            let (a, b) = (diverging_color(-(i - 1) as f32 / 100.0), diverging_color(-i as f32 / 100.0));
            assert!(luminance(b) <= luminance(a));
        }
    }

    #[test]
    fn sequential_map_spans_its_range() {
        let m = ColorMap::Sequential { lo: -1.0, hi: 3.0 };
        assert_eq!(m.color(-1.0), [255, 255, 255]);
        assert_eq!(m.color(3.0), [103, 0, 13]);
        assert_eq!(m.color(1.0), scale_color(0.5));
        assert_eq!(ColorMap::Sequential { lo: 0.0, hi: 0.0 }.color(5.0), [255; 3]);
        assert_eq!(m.color(2.0), fill_color(3.0, 4.0));
    }

    #[test]
    fn text_is_black_on_light_and_white_on_dark() {
        assert_eq!(text_color(scale_color(0.0)), [0, 0, 0]);
        assert_eq!(text_color(scale_color(0.3)), [0, 0, 0]);
        assert_eq!(text_color(scale_color(1.0)), [255, 255, 255]);
        // The switch happens once along the scale.
        let switches = (0..100)
            .map(|i| text_color(scale_color(i as f32 / 99.0)))
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] != w[1])
            .count();
        assert_eq!(switches, 1);
    }
}
