//! The white-to-dark-red colour scale and the text colour that stays readable on it.

/// Colour stops from 0 (white) to 1 (dark red), close to ColorBrewer's "Reds".
///
/// Every channel is non-increasing along the stops, so interpolated colours get darker
/// monotonically: a larger value never looks lighter.
const STOPS: [[u8; 3]; 6] = [
    [255, 255, 255],
    [254, 224, 210],
    [252, 146, 114],
    [222, 45, 38],
    [165, 15, 21],
    [103, 0, 13],
];

/// An sRGB colour.
pub(crate) type Rgb = [u8; 3];

/// Fill colour for `value` on a scale from 0 (white) to `max` (the darkest stop).
///
/// Values are clamped to `[0, max]`; a zero (or non-finite) `max` gives white, so an
/// all-zero table draws as blank cells rather than failing.
pub(crate) fn fill_color(value: f32, max: f32) -> Rgb {
    let t = if max > 0.0 && max.is_finite() && value.is_finite() {
        (value / max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    scale_color(t)
}

/// Colour at position `t` in `[0, 1]` along [`STOPS`], interpolated piecewise linearly.
pub(crate) fn scale_color(t: f32) -> Rgb {
    let segments = (STOPS.len() - 1) as f32;
    let x = t.clamp(0.0, 1.0) * segments;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let frac = x - i as f32;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
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
                assert!(
                    c[k] <= prev[k],
                    "channel {k} rose at t={}",
                    i as f32 / 1000.0
                );
            }
            let l = luminance(c);
            assert!(l <= prev_l);
            (prev, prev_l) = (c, l);
        }
        assert!(luminance(scale_color(1.0)) < 0.05);
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
