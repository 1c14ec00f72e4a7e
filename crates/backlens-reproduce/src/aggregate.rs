//! Averages over prompts shared by the dataset-wide figures.

use backlens_plot::{ColorScale, Heatmap, Series};

use super::segments::{segment_means, Segment};
use super::sweep::{PromptStats, Sweep};

/// `layer / (L - 1)`: the paper's normalized layer index, so models of different depth share
/// one axis (0 for a one-layer model).
pub fn normalized_layer(layer: usize, n_layers: usize) -> f64 {
    if n_layers <= 1 {
        0.0
    } else {
        layer as f64 / (n_layers - 1) as f64
    }
}

/// A value per (segment, layer), averaged first over a prompt's tokens in the segment, then
/// over the prompts that have the segment (the paper's Figures 5 and 6).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegmentTable {
    /// `[segment][layer]`, segments in [`Segment::ALL`] order; `None` where no prompt had a value.
    pub values: Vec<Vec<Option<f64>>>,
    /// Number of prompts that have each segment.
    pub prompts: Vec<usize>,
}

impl SegmentTable {
    /// Averages `per_token(prompt, layer)` (one optional value per token) over `sweep`.
    pub fn average(sweep: &Sweep, per_token: impl Fn(&PromptStats, usize) -> Vec<Option<f64>>) -> SegmentTable {
        let n_layers = sweep.n_layers;
        let mut sum = vec![vec![0.0; n_layers]; Segment::ALL.len()];
        let mut count = vec![vec![0usize; n_layers]; Segment::ALL.len()];
        let mut prompts = vec![0; Segment::ALL.len()];
        for prompt in &sweep.prompts {
            for segment in Segment::ALL {
                prompts[segment.index()] += prompt.segments.contains(&segment) as usize;
            }
            for layer in 0..n_layers {
                for (s, mean) in segment_means(&prompt.segments, per_token(prompt, layer)).into_iter().enumerate() {
                    if let Some(m) = mean {
                        sum[s][layer] += m;
                        count[s][layer] += 1;
                    }
                }
            }
        }
        let values = sum
            .iter()
            .zip(&count)
            .map(|(s, c)| s.iter().zip(c).map(|(&s, &c)| (c > 0).then(|| s / c as f64)).collect())
            .collect();
        SegmentTable { values, prompts }
    }

    /// The segments that occur in at least one prompt.
    pub fn present(&self) -> impl Iterator<Item = Segment> + '_ {
        Segment::ALL.into_iter().filter(|s| self.prompts[s.index()] > 0)
    }

    /// A heatmap with one row per present segment (prompt order, top to bottom) and one column
    /// per layer.
    pub fn heatmap(&self, title: String, value_label: String) -> Heatmap {
        let n_layers = self.values.first().map_or(0, Vec::len);
        let rows: Vec<Segment> = self.present().collect();
        Heatmap {
            title,
            row_labels: rows.iter().map(|s| format!("{} ({})", s.label(), self.prompts[s.index()])).collect(),
            col_labels: (0..n_layers).map(|l| l.to_string()).collect(),
            values: rows
                .iter()
                .map(|s| self.values[s.index()].iter().map(|v| v.map_or(f32::NAN, |v| v as f32)).collect())
                .collect(),
            x_label: "layer".into(),
            y_label: "prompt segment (prompts)".into(),
            value_label,
            scale: ColorScale::Sequential,
            range: None,
            annotate: false,
        }
    }

    /// One line per present segment over the normalized layer index.
    pub fn series(&self) -> Vec<Series> {
        self.present()
            .map(|s| {
                let layers = self.values[s.index()].len();
                Series {
                    name: s.label().to_string(),
                    points: self.values[s.index()]
                        .iter()
                        .enumerate()
                        .map(|(l, v)| (normalized_layer(l, layers), v.unwrap_or(f64::NAN)))
                        .collect(),
                }
            })
            .collect()
    }

    /// The value of `segment` at `layer`.
    pub fn get(&self, segment: Segment, layer: usize) -> Option<f64> {
        self.values[segment.index()][layer]
    }
}

/// Mean and median of the values that are present.
pub fn mean_median(values: impl IntoIterator<Item = Option<f64>>) -> (Option<f64>, Option<f64>) {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return (None, None);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 };
    (Some(mean), Some(median))
}

/// Formats an optional number with `digits` decimals, or "n/a".
pub fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
}
