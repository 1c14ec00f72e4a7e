//! The pictures of Appendix C: Figures 7-9 as heatmaps, Tables 2 and 4 as token tables, and the
//! depth profile as a line chart.

use backlens_plot::{readable_token, Cell, ColorScale, Heatmap, LineChart, Series, TokenTable};

use super::study::{DepthRow, FfMatrix, NeuronSample, NeuronStudy};
use super::TABLE_TOKENS;
use backlens::CELL_CHARS;

/// The depth profile as a line chart: one point per layer.
pub fn depth_chart(rows: &[DepthRow], matrix: FfMatrix, target: &str, marked_layer: usize) -> LineChart {
    let series = |name: &str, f: &dyn Fn(&DepthRow) -> f32| Series {
        name: name.to_string(),
        points: rows.iter().map(|r| (r.layer as f64, f(r) as f64)).collect(),
    };
    let band = rows.first().map_or(0, |r| r.neurons.len());
    let last = match matrix {
        FfMatrix::Ff1 => "x_n",
        FfMatrix::Ff2 => "δ_n",
    };
    LineChart {
        title: format!(
            "{}: the {band} largest update neurons per layer vs {} (layer {marked_layer} = the paper's depth)",
            matrix.name(),
            matrix.symbol()
        ),
        x_label: "layer".into(),
        y_label: "mean or fraction".into(),
        series: vec![
            series(&format!("mean max_i |cos(neuron, {})|", matrix.symbol()), &|r| r.mean_best_abs_cos),
            series(&format!("mean |cos(neuron, {last})|"), &|r| r.mean_abs_cos_last),
            series(&format!("fraction best-matching {last}"), &|r| r.frac_best_is_last),
            series("fraction with a flipped sign (best cos < 0)", &|r| r.frac_negative_best_cos),
            series(&format!("fraction with {target:?} as LL top-1 or bottom-1"), &|r| {
                r.frac_target_top1 + r.frac_target_bottom1
            }),
        ],
        x_range: None,
        y_range: Some((0.0, 1.0)),
        reference_lines: Vec::new(),
    }
}

impl NeuronStudy {
    fn row_labels(&self) -> Vec<String> {
        self.tokens.iter().enumerate().map(|(i, t)| format!("{i}: {}", readable_token(t, CELL_CHARS))).collect()
    }

    fn heatmap(&self, what: &str, values: Vec<Vec<f32>>, sorted: bool, range: f32, value_label: &str) -> Heatmap {
        let (values, col_labels, order) = if sorted {
            (
                self.sorted_by_norm(&values),
                (1..=self.n_neurons()).map(|r| r.to_string()).collect(),
                "sorted by norm, rank 1 = largest",
            )
        } else {
            (values, (0..self.n_neurons()).map(|j| j.to_string()).collect(), "by index")
        };
        Heatmap {
            title: format!(
                "{} layer {} {what}: {} vs single update neurons ({order}) | {:?} → {:?}",
                self.matrix.name(),
                self.layer,
                self.matrix.symbol(),
                self.prompt,
                self.target
            ),
            row_labels: self.row_labels(),
            col_labels,
            values,
            x_label: format!("{} update neurons of {} ({order})", self.n_neurons(), self.matrix.module().name()),
            y_label: format!("prompt token ({})", self.matrix.symbol()),
            value_label: value_label.to_string(),
            scale: ColorScale::Diverging,
            range: Some((-range, range)),
            annotate: false,
        }
    }

    /// Figure 7b / 8b / 9b: cosine of every spanning vector (rows) with every update neuron
    /// (columns), by index or sorted by norm.
    pub fn cosine_heatmap(&self, sorted: bool) -> Heatmap {
        self.heatmap("cosine", self.cosine.clone(), sorted, 1.0, "cosine")
    }

    /// Figure 7a / 8a / 9a: the signed top-k lens intersection of every spanning vector (rows)
    /// with every update neuron (columns).
    pub fn intersection_heatmap(&self, sorted: bool) -> Heatmap {
        let values = self.intersection.iter().map(|row| row.iter().map(|&v| v as f32).collect()).collect();
        let label = format!("signed top-{} intersection", self.k);
        self.heatmap("lens intersection", values, sorted, self.k as f32, &label)
    }

    /// Table 2 (FF2) / Table 4 (FF1) as a token table: one row per sampled neuron, the lens top-3
    /// and bottom-3 tokens, coloured by the neuron's norm.
    pub fn sample_table(&self) -> TokenTable {
        let cell_text = |texts: &[String], i: usize| match texts.get(i) {
            Some(t) => readable_token(t, CELL_CHARS),
            None if i == 0 => "(all tie)".to_string(),
            None => String::new(),
        };
        let cols: Vec<String> = (1..=TABLE_TOKENS)
            .map(|i| format!("top {i}"))
            .chain((1..=TABLE_TOKENS).map(|i| format!("bottom {i}")))
            .collect();
        TokenTable {
            title: format!(
                "{} layer {}: LL of single update neurons (-dL/dW) by norm | {:?} → {:?}",
                self.matrix.name(),
                self.layer,
                self.prompt,
                self.target
            ),
            row_labels: self.samples.iter().map(sample_label).collect(),
            row_caption: "neuron".into(),
            col_labels: cols,
            cells: self
                .samples
                .iter()
                .map(|s| {
                    let value = if s.norm.is_finite() { s.norm } else { 0.0 };
                    (0..TABLE_TOKENS)
                        .map(|i| Cell::new(cell_text(&s.top_text, i), value))
                        .chain((0..TABLE_TOKENS).map(|i| Cell::new(cell_text(&s.bottom_text, i), value)))
                        .collect()
                })
                .collect(),
            value_label: "neuron norm".into(),
        }
    }
}

fn sample_label(s: &NeuronSample) -> String {
    match s.neuron {
        Some(j) => format!("{} #{j} |v|={:.3}", s.group.label(), s.norm),
        None => "zero vector".to_string(),
    }
}
