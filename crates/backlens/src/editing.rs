//! Library helpers for editing that combine several crates: the documented default settings of
//! the default model (re-exported from `backlens_edit::defaults`), the top predictions after a
//! prompt, and the charts of the learning-rate sweep (the paper's Figure 26). The `backlens edit |
//! eval | sweep-lr` commands live in the CLI crate.

use crate::Error;
use backlens_edit::sweep::{SweepCell, SweepReport};
use backlens_model::LanguageModel;
use backlens_plot::{LineChart, ReferenceLine, Series};
use candle_core::IndexOp;

/// The documented default settings of the default model, defined (with how each was chosen) in
/// [`backlens_edit::defaults`].
pub use backlens_edit::defaults::{
    MethodSettings, DEFAULT_ADAM_LR, DEFAULT_ETA, DEFAULT_ETA_KIND, DEFAULT_FPS_ETA, DEFAULT_FT_LR, DEFAULT_FT_STEPS,
    DEFAULT_FT_WHOLE_MLP, DEFAULT_KEY_SHRINKAGE, DEFAULT_LAYER, DEFAULT_SGD_LR,
};

/// The top-k tokens (id, probability) after a prompt, and the target's rank and probability.
pub type Prediction = (Vec<(u32, f32)>, usize, f32);

/// Top-k tokens (ids) after `prompt` with their probabilities, and the rank and probability of `target`.
pub fn prediction(model: &dyn LanguageModel, prompt: &[u32], target: u32, k: usize) -> Result<Prediction, Error> {
    let logits = model.logits(prompt)?.i(prompt.len() - 1)?.to_vec1::<f32>()?;
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = logits.iter().map(|&v| ((v - max) as f64).exp()).sum();
    let p = |v: f32| (((v - max) as f64).exp() / z) as f32;
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    let rank = logits.iter().filter(|&&v| v > logits[target as usize]).count();
    Ok((order.iter().take(k).map(|&i| (i, p(logits[i as usize]))).collect(), rank, p(logits[target as usize])))
}

/// The `k` most likely next tokens after `prompt` (token ids) with their probabilities, most
/// likely first (ties: lower id first).
pub fn top_predictions(model: &dyn LanguageModel, prompt: &[u32], k: usize) -> Result<Vec<(String, f32)>, Error> {
    if prompt.is_empty() {
        return Err(Error::Input("the prompt has no tokens".into()));
    }
    let (top, _, _) = prediction(model, prompt, 0, k)?;
    top.into_iter().map(|(id, p)| Ok((model.tokenizer().decode(&[id])?, p))).collect()
}

/// The default layers of the sweep: `0, step, 2·step, …` and the last layer.
pub fn default_sweep_layers(n_layers: usize, step: usize) -> Vec<usize> {
    let mut layers: Vec<usize> = (0..n_layers).step_by(step.max(1)).collect();
    if layers.last() != Some(&(n_layers - 1)) {
        layers.push(n_layers - 1);
    }
    layers
}

/// The three panels of the Figure 26 analog from a sweep: (a) `log10` of the median minimum
/// step of a successful edit per layer, (b) `log10` of the mean perplexity after the
/// minimum-step edit (dashed: the unedited model; log scale because an edit of an early layer
/// can raise it a thousandfold), (c) the spread (population std over records) of `log10` of the
/// minimum step, the paper's "variation".
pub fn sweep_charts(report: &SweepReport) -> [LineChart; 3] {
    let methods = report.methods();
    let series = |f: &dyn Fn(&SweepCell) -> Option<f64>| -> Vec<Series> {
        methods
            .iter()
            .map(|&m| Series {
                name: m.to_string(),
                points: report
                    .cells
                    .iter()
                    .filter(|c| c.method == m)
                    .map(|c| (c.layer as f64, f(c).unwrap_or(f64::NAN)))
                    .collect(),
            })
            .collect()
    };
    let records = report.records;
    let lr = LineChart {
        title: format!("Minimum step size of a successful edit ({}, {records} records)", report.model),
        x_label: "edited layer (mlp.down)".into(),
        y_label: "log10 median minimum lr / η".into(),
        series: series(&|c| c.median_step.map(f64::log10)),
        ..LineChart::default()
    };
    let ppl = LineChart {
        title: "Perplexity after the minimum-step edit".into(),
        x_label: "edited layer (mlp.down)".into(),
        y_label: "log10 perplexity (mean over records)".into(),
        series: series(&|c| c.perplexity.map(|p| p.mean.log10())),
        reference_lines: report
            .base_perplexity
            .map(|p| ReferenceLine { y: p.log10(), label: format!("unedited ({p:.1})") })
            .into_iter()
            .collect(),
        ..LineChart::default()
    };
    let spread = LineChart {
        title: "Variation of the minimum step across records".into(),
        x_label: "edited layer (mlp.down)".into(),
        y_label: "std over records of log10 minimum lr / η".into(),
        series: series(&|c| c.log10_step.map(|m| m.std)),
        ..LineChart::default()
    };
    [lr, ppl, spread]
}

#[cfg(test)]
mod tests {
    use super::{default_sweep_layers, top_predictions};
    use backlens_model::testing::{random_llama, TinyLlama};
    use backlens_model::LanguageModel;

    #[test]
    fn top_predictions_are_the_softmax_ranking() {
        let spec = TinyLlama::SMALL;
        let model = random_llama(spec, 3);
        let prompt = [1, 2, 3];
        let top = top_predictions(&model, &prompt, 4).unwrap();
        assert_eq!(top.len(), 4);
        let logits = model.logits(&prompt).unwrap().get(2).unwrap().to_vec1::<f32>().unwrap();
        let best = backlens_edit::metrics::argmax(&logits) as u32;
        assert_eq!(top[0].0, model.tokenizer().decode(&[best]).unwrap());
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{top:?}");
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = logits.iter().map(|v| (v - max).exp()).sum();
        assert!((top[0].1 - 1.0 / z).abs() < 1e-5, "{top:?} vs 1/{z}");
        assert!(top_predictions(&model, &[], 3).is_err());
    }

    #[test]
    fn default_sweep_layers_end_with_the_last_layer() {
        assert_eq!(default_sweep_layers(30, 4), vec![0, 4, 8, 12, 16, 20, 24, 28, 29]);
        assert_eq!(default_sweep_layers(7, 3), vec![0, 3, 6]);
        assert_eq!(default_sweep_layers(3, 0), vec![0, 1, 2]);
    }
}
