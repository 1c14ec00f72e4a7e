//! [`Picture`]: any figure kind, for code that handles figures uniformly.

use crate::heatmap::HeatmapLayout;
use crate::line_chart::ChartLayout;
use crate::render::{figure_methods, Figure, Painter};
use crate::table_draw::TableLayout;
use crate::text::{BundledFont, TextBackend};
use crate::{Heatmap, LineChart, PlotError, TokenTable};

/// Any of the figure kinds, with the same rendering methods as each of them.
///
/// Build one with `.into()` from a [`TokenTable`], [`Heatmap`] or [`LineChart`], e.g. to keep
/// a list of named figures and [`write`](Self::write) them all.
#[derive(Debug, Clone, PartialEq)]
pub enum Picture {
    /// A token table (Figure 4 of the paper).
    Table(TokenTable),
    /// A heatmap.
    Heatmap(Heatmap),
    /// A line chart.
    Lines(LineChart),
}

impl Picture {
    /// The figure's title (may be empty).
    pub fn title(&self) -> &str {
        match self {
            Self::Table(t) => &t.title,
            Self::Heatmap(h) => &h.title,
            Self::Lines(c) => &c.title,
        }
    }

    /// Checks the figure with its own `validate`.
    pub fn validate(&self) -> Result<(), PlotError> {
        match self {
            Self::Table(t) => t.validate(),
            Self::Heatmap(h) => h.validate(),
            Self::Lines(c) => c.validate(),
        }
    }
}

impl From<TokenTable> for Picture {
    fn from(table: TokenTable) -> Self {
        Self::Table(table)
    }
}

impl From<Heatmap> for Picture {
    fn from(heatmap: Heatmap) -> Self {
        Self::Heatmap(heatmap)
    }
}

impl From<LineChart> for Picture {
    fn from(chart: LineChart) -> Self {
        Self::Lines(chart)
    }
}

figure_methods!(Picture, "figure");

/// The layout of whichever figure a [`Picture`] holds.
pub(crate) enum PictureLayout {
    Table(TableLayout),
    Heatmap(HeatmapLayout),
    Lines(ChartLayout),
}

impl Figure for Picture {
    type Layout = PictureLayout;

    fn check(&self) -> Result<(), PlotError> {
        self.validate()
    }

    fn layout(&self, font: &BundledFont, scale: f64) -> Result<PictureLayout, PlotError> {
        Ok(match self {
            Self::Table(t) => PictureLayout::Table(t.layout(font, scale)?),
            Self::Heatmap(h) => PictureLayout::Heatmap(h.layout(font, scale)?),
            Self::Lines(c) => PictureLayout::Lines(c.layout(font, scale)?),
        })
    }

    fn size(layout: &PictureLayout) -> (u32, u32) {
        match layout {
            PictureLayout::Table(l) => TokenTable::size(l),
            PictureLayout::Heatmap(l) => Heatmap::size(l),
            PictureLayout::Lines(l) => LineChart::size(l),
        }
    }

    fn draw<B: TextBackend>(&self, p: &mut Painter<'_, B>, layout: &PictureLayout) -> Result<(), PlotError> {
        match (self, layout) {
            (Self::Table(t), PictureLayout::Table(l)) => t.draw(p, l),
            (Self::Heatmap(h), PictureLayout::Heatmap(l)) => h.draw(p, l),
            (Self::Lines(c), PictureLayout::Lines(l)) => c.draw(p, l),
            _ => Err(PlotError::Draw("internal error: layout of another figure kind".into())),
        }
    }
}

#[cfg(all(test, feature = "evcxr"))]
mod tests {
    use super::*;
    use crate::{ColorScale, Series};

    fn assert_wrapped_svg(out: &str) {
        assert!(out.starts_with("EVCXR_BEGIN_CONTENT image/svg+xml\n<svg "), "{out}");
        assert!(out.ends_with("</svg>\nEVCXR_END_CONTENT"), "{out}");
    }

    fn assert_wrapped_error(out: &str) {
        assert!(out.starts_with("EVCXR_BEGIN_CONTENT text/plain\nbacklens-plot: "), "{out}");
        assert!(out.ends_with("\nEVCXR_END_CONTENT"), "{out}");
    }

    #[test]
    fn evcxr_content_wraps_every_kind_like_the_table() {
        let heatmap = Heatmap {
            row_labels: vec!["0".into()],
            col_labels: vec!["x".into()],
            values: vec![vec![1.0]],
            scale: ColorScale::Diverging,
            ..Heatmap::default()
        };
        let chart =
            LineChart { series: vec![Series { name: "s".into(), points: vec![(0.0, 1.0)] }], ..LineChart::default() };
        assert_wrapped_svg(&heatmap.evcxr_content());
        assert_wrapped_svg(&chart.evcxr_content());
        assert_wrapped_svg(&Picture::from(heatmap).evcxr_content());
        assert_wrapped_svg(&Picture::from(chart).evcxr_content());

        assert_wrapped_error(&Heatmap::default().evcxr_content());
        assert_wrapped_error(&LineChart::default().evcxr_content());
        assert_wrapped_error(&Picture::from(LineChart::default()).evcxr_content());
        assert_wrapped_error(&Picture::from(TokenTable::default()).evcxr_content());
    }
}
