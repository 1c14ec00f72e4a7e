//! Appendix C (Figures 7–9, Tables 2 and 4): single gradient neurons against the spanning
//! vectors that span them.
//!
//! One backward pass gives FF2 (`mlp.down`, weight `(d, d_ff)`) the gradient
//! `dL/dW = Σ_i δ_i x_iᵀ`: its column `j`, the paper's "gradient neuron" `j` (Eq. 10), is
//! `Σ_i x_i[j] δ_i`, a combination of the VJPs `δ_i` weighted by the activations `x_i[j]`. FF1
//! (`mlp.up`, weight `(d_ff, d)`) has rows `Σ_i δ_i[j] x_i`, combinations of its inputs `x_i`
//! (Eq. 9). Both are `d_model`-sized, so the logit lens projects them like the spanning vectors.
//!
//! **Sign.** Everything here is computed on the SGD *update* `-dL/dW` (learning rate 1), the
//! vectors gradient descent adds to the weight's neurons. The paper's Table 2 shows " Paris" on
//! top of the biggest FF2 neurons while `δ_n` has it at the bottom (Table 3), and its Figure 8
//! says the high-norm neurons "inject the VJP of 'for' with a flipped sign"; both fit the update
//! (the authors' code diffs edited and original weights), not the raw gradient. So FF2 update
//! neuron `j` is `Σ_i (-x_i[j]) δ_i`: a positive activation gives `cos(neuron, δ_n) < 0`.
//!
//! **Signed intersection** (Figure 7a's caption): the number of tokens shared by the top-100 most
//! probable tokens of `LL(neuron)` and of `LL(spanning vector)`, shown negative when negating one
//! of them (here: the neuron) shares more. The caption reads the *top* 100 of both vectors for
//! FF2 too, so the figures use [`LensReading::MostLikely`] for both matrices;
//! [`NeuronOptions::reading`] selects the other end (bottom-100, [`SpanningSet::reading`] for
//! FF2). Under a bias-free RMSNorm the lens is odd (`LL(-v)` reverses the ranking of `LL(v)`

mod draw;
mod prose;
mod study;

use backlens::{Backlens, Error};
use serde_json::json;

use crate::{FigureGroup, Needs, Reproduction};

pub use draw::depth_chart;
pub use study::{
    labelled_norm_groups, neuron_depth_profile, neuron_study, reading_of, row_norms, trace_neurons, update_neurons,
    DepthRow, FfMatrix, NeuronOptions, NeuronSample, NeuronStudy, NormBand, NormGroup, UpdateNeurons,
};

/// The paper's running example of Appendix C: "Lionel Messi plays for", edited to " Paris".
pub const NEURON_PROMPT: &str = "Lionel Messi plays for";
/// The edit target of [`NEURON_PROMPT`].
pub const NEURON_TARGET: &str = " Paris";
/// The layer the paper analyses in Appendix C (GPT2-medium, 0-based).
pub const PAPER_NEURON_LAYER: usize = 14;
/// GPT2-medium's number of layers.
pub const PAPER_NEURON_MODEL_LAYERS: usize = 24;
/// The paper's `k` of the lens intersection (top-100).
pub const INTERSECTION_K: usize = 100;
/// Neurons per norm group of Tables 2 and 4 (biggest, medium, smallest).
pub const NEURONS_PER_GROUP: usize = 3;
/// Tokens shown per end of the lens in Tables 2 and 4.
pub const TABLE_TOKENS: usize = 3;
/// Neurons per band of the generated statement (the 10 largest, middle and smallest by norm).
pub const BAND_SIZE: usize = 10;

/// The layer at the paper's relative depth: `round(14 / 23 · (n_layers − 1))` (layer 14 of
/// GPT2-medium's 24). SmolLM2-135M (30 layers): `round(17.65) = 18`.
pub fn paper_depth_layer(n_layers: usize) -> usize {
    let (num, den) = (PAPER_NEURON_LAYER * n_layers.saturating_sub(1), PAPER_NEURON_MODEL_LAYERS - 1);
    (2 * num + den) / (2 * den)
}

/// Appendix C: gradient neurons against spanning vectors.
pub(crate) static GROUP: FigureGroup = FigureGroup {
    name: "neurons",
    covers: "Appendix C: Figures 7-9, Tables 2, 4",
    figures: &[7, 8, 9],
    tables: &[2, 4],
    appendices: &["c"],
    needs: Needs::Model,
    run: |inputs| neurons(inputs.backlens),
};

/// Appendix C on the loaded model: [`NEURON_PROMPT`] → [`NEURON_TARGET`] at
/// [`paper_depth_layer`], FF2 and FF1, with Figures 7–9 as heatmaps and Tables 2 and 4
/// (the group `neurons` of [`GROUPS`](crate::GROUPS), which needs no dataset).
pub fn neurons(bl: &Backlens) -> Result<Reproduction, Error> {
    let layer = paper_depth_layer(bl.model().n_layers());
    let trace = trace_neurons(bl, NEURON_PROMPT, NEURON_TARGET, layer)?;
    let options = NeuronOptions::default();
    let ff2 = neuron_study(bl, &trace, layer, FfMatrix::Ff2, &options)?;
    let ff1 = neuron_study(bl, &trace, layer, FfMatrix::Ff1, &options)?;
    // The other reading of the intersection for FF2 (bottom-100, SpanningSet::reading), as a check
    // that the figures' signs do not hinge on the caption's choice.
    let alt = NeuronOptions { reading: FfMatrix::Ff2.spanning_set().reading(), ..options };
    let ff2_alt = neuron_study(bl, &trace, layer, FfMatrix::Ff2, &alt)?;
    let (mut agree, mut nonzero) = (0usize, 0usize);
    for (a, b) in ff2.intersection.iter().flatten().zip(ff2_alt.intersection.iter().flatten()) {
        if *a != 0 && *b != 0 {
            nonzero += 1;
            agree += usize::from((*a < 0) == (*b < 0));
        }
    }
    let sign_agreement = if nonzero == 0 { f32::NAN } else { agree as f32 / nonzero as f32 };

    let depth = neuron_depth_profile(bl, NEURON_PROMPT, NEURON_TARGET, FfMatrix::Ff2, BAND_SIZE)?;
    let pictures = vec![
        ("fig7a-ff2-intersection".to_string(), ff2.intersection_heatmap(false).into()),
        ("fig7b-ff2-cosine".to_string(), ff2.cosine_heatmap(false).into()),
        ("fig8a-ff2-intersection-sorted".to_string(), ff2.intersection_heatmap(true).into()),
        ("fig8b-ff2-cosine-sorted".to_string(), ff2.cosine_heatmap(true).into()),
        ("fig9a-ff1-intersection-sorted".to_string(), ff1.intersection_heatmap(true).into()),
        ("fig9b-ff1-cosine-sorted".to_string(), ff1.cosine_heatmap(true).into()),
        ("table2-ff2-neurons".to_string(), ff2.sample_table().into()),
        ("table4-ff1-neurons".to_string(), ff1.sample_table().into()),
        ("extra-ff2-depth".to_string(), depth_chart(&depth, FfMatrix::Ff2, NEURON_TARGET, layer).into()),
    ];
    let mut ours = prose::statement(&ff2, &ff1, bl.model().final_norm());
    ours.push_str(&format!(
        " Reading the bottom-{} instead of the top-{} (FF2's reading for the spanning-set tables) gives the same \
         intersection sign for {:.1}% of the non-zero cells.",
        options.k,
        options.k,
        100.0 * sign_agreement
    ));
    ours.push_str(&prose::depth_statement(&depth, layer));
    let numbers = json!({
        "prompt": NEURON_PROMPT,
        "target": NEURON_TARGET,
        "layer": layer,
        "layer_rule": format!("round({PAPER_NEURON_LAYER}/{} * (L-1)) with L = {}", PAPER_NEURON_MODEL_LAYERS - 1, bl.model().n_layers()),
        "sign": "update = -dL/dW (learning rate 1)",
        "table2_markdown": ff2.sample_markdown(),
        "table4_markdown": ff1.sample_markdown(),
        "ff2_bottom_reading_sign_agreement": sign_agreement,
        "ff2_bottom_reading_bands": ff2_alt.bands,
        "ff2_depth": depth,
        "ff2": ff2,
        "ff1": ff1,
    });
    Ok(Reproduction { group: &GROUP, paper: prose::PAPER.to_string(), ours, pictures, numbers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_depth_layer_maps_14_of_24() {
        assert_eq!(paper_depth_layer(24), 14);
        assert_eq!(paper_depth_layer(30), 18); // 14/23 · 29 = 17.65
        assert_eq!(paper_depth_layer(12), 7); // 6.70
        assert_eq!(paper_depth_layer(48), 29); // 28.61
        assert_eq!(paper_depth_layer(1), 0);
        assert_eq!(paper_depth_layer(0), 0);
    }

    #[test]
    fn labelled_norm_groups_are_biggest_medium_smallest() {
        let g = labelled_norm_groups(10, 3);
        assert_eq!(g[0], (NormGroup::Biggest, vec![0, 1, 2]));
        assert_eq!(g[1], (NormGroup::Medium, vec![4, 5, 6]));
        assert_eq!(g[2], (NormGroup::Smallest, vec![7, 8, 9]));
    }
}
