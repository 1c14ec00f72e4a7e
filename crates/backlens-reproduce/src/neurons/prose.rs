//! The words of Appendix C: the paper's observation, the statement "ours" generated from the
//! numbers, and Tables 2 and 4 as Markdown.

use backlens_model::Norm;

use super::study::{mean, DepthRow, NeuronSample, NeuronStudy, NormGroup};
use super::TABLE_TOKENS;
use crate::compress_ranges;

impl NeuronStudy {
    /// Table 2 / Table 4 as Markdown (group, neuron, norm, LL top, LL bottom).
    pub fn sample_markdown(&self) -> String {
        let quote = |texts: &[String]| {
            if texts.is_empty() {
                "(all logits tie: no ranking)".to_string()
            } else {
                texts.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ")
            }
        };
        let mut md = String::from("| group | neuron | norm | LL top | LL bottom |\n|---|---|---|---|---|\n");
        for s in &self.samples {
            let neuron = s.neuron.map_or("-".to_string(), |j| j.to_string());
            md.push_str(&format!(
                "| {} | {neuron} | {:.4} | {} | {} |\n",
                s.group.label(),
                s.norm,
                quote(&s.top_text),
                quote(&s.bottom_text)
            ));
        }
        md
    }
}

pub(super) const PAPER: &str =
    "Appendix C (GPT2-medium, layer 14 of 24, \"Lionel Messi plays for\" edited to \"Paris\"; \
Figures 7-9, Tables 2 and 4): the highest-norm FF2 gradient neurons \"are almost identical to the last VJP (δ_n), \
with alignment extending up to the sign\": high-norm neurons, \"corresponding to those activated with positive \
activations during the forward pass, inject the VJP of 'for' with a flipped sign\"; medium-norm neurons still \
correlate with δ_n (with the opposite sign, where the GELU activation is negative), and \"smallest by-norm neurons \
show minimal correlation; we refer to their proximity to the zero vector\" (Table 2: they project the same tokens \
as the zero vector). FF1's high-norm gradient neurons align with ±x_i of dominant prompt tokens (Figure 9, Table \
4), and every projected gradient neuron correlates with only 1-2 spanning vectors. Table 2 shows \"Paris\" on top \
of the biggest FF2 neurons, i.e. the update -dL/dW.";

fn fmt_counts(study: &NeuronStudy, counts: &[usize]) -> String {
    let mut pairs: Vec<(usize, &String)> = counts.iter().copied().zip(&study.tokens).filter(|(c, _)| *c > 0).collect();
    pairs.sort_by_key(|p| std::cmp::Reverse(p.0));
    pairs.iter().map(|(c, t)| format!("{t:?} {c}")).collect::<Vec<_>>().join(", ")
}

fn pct(f: f32) -> String {
    format!("{:.0}%", 100.0 * f)
}

fn activation_text(positive: f32) -> String {
    if positive == 1.0 {
        "All of them have a positive activation there, as with GELU.".to_string()
    } else {
        format!(
            "{} of them have a positive activation there and the others a negative one: SwiGLU's act(gate)·up is not \
             sign-bounded like GELU (≥ -0.17), so a large norm does not imply a positive activation.",
            pct(positive)
        )
    }
}

fn rank_text(rank: Option<usize>, vocab: usize) -> String {
    match rank {
        Some(r) => format!("rank {r} of {} (0 = most likely)", vocab - 1),
        None => "no rank (all logits tie)".to_string(),
    }
}

/// The statement "ours", generated from the two studies.
pub(super) fn statement(ff2: &NeuronStudy, ff1: &NeuronStudy, norm: &Norm) -> String {
    let last = ff2.last();
    let (top, mid, low) = (&ff2.bands[0], &ff2.bands[1], &ff2.bands[2]);
    let by_norm = ff2.tokens_by_spanning_norm();
    let norm_of = |i: usize| ff2.spanning_norms[i];
    let second = by_norm[1.min(by_norm.len() - 1)];
    let mut s = format!(
        "{model} layer {layer} of {n_layers} (round(14/23·{last_layer}), the paper's relative depth), {n_tokens} \
         prompt tokens, {n_neurons} update neurons (-dL/dW) per matrix. FF2 (mlp.down): the largest VJPs are δ of \
         {first_token:?} (|δ| {first_norm:.3}) and {second_token:?} ({second_norm:.3}); the others are at most \
         {third_norm:.3}. The {top_band} are each close to one δ_i (mean best |cos| {top_best_cos:.3}; best match: \
         {top_best_tokens}), {top_flipped} of them with a flipped sign (cos < 0), and the sign is that of -x_i[j] in \
         {top_follows}: as in the paper, a positive activation flips the sign. {activation} Against δ_n \
         ({last_token:?}) alone, the paper's comparison, they have mean |cos| {top_cos_last:.3} and a signed top-{k} \
         intersection of |{top_intersection_last:.1}| on average, negative for {top_negative_intersection}. The \
         {mid_band} (mean norm {mid_norm:.1e}, vs {top_norm:.1e}) still match one δ_i with mean best |cos| \
         {mid_best_cos:.3}; the {low_band} ({low_norm:.1e}) {low_best_cos:.3}. ",
        model = ff2.model,
        layer = ff2.layer,
        n_layers = ff2.n_layers,
        last_layer = ff2.n_layers - 1,
        n_tokens = ff2.tokens.len(),
        n_neurons = ff2.n_neurons(),
        first_token = ff2.tokens[by_norm[0]],
        first_norm = norm_of(by_norm[0]),
        second_token = ff2.tokens[second],
        second_norm = norm_of(second),
        third_norm = by_norm.get(2).map_or(0.0, |&i| norm_of(i)),
        top_band = top.band,
        top_best_cos = top.mean_best_abs_cos,
        top_best_tokens = fmt_counts(ff2, &top.best_token_counts),
        top_flipped = pct(top.frac_negative_best_cos),
        top_follows = pct(top.frac_best_sign_follows_coefficient),
        activation = activation_text(top.frac_positive_best_factor),
        last_token = ff2.tokens[last],
        top_cos_last = top.mean_abs_cos_last,
        k = ff2.k,
        top_intersection_last = top.mean_abs_intersection_last,
        top_negative_intersection = pct(top.frac_negative_intersection_last),
        mid_band = mid.band,
        mid_norm = mid.mean_norm,
        top_norm = top.mean_norm,
        mid_best_cos = mid.mean_best_abs_cos,
        low_band = low.band,
        low_norm = low.mean_norm,
        low_best_cos = low.mean_best_abs_cos,
    );
    let biggest: Vec<&NeuronSample> = ff2.samples.iter().filter(|s| s.group == NormGroup::Biggest).collect();
    let on_top = biggest.iter().filter(|s| s.top.contains(&ff2.target_id)).count();
    let on_bottom = biggest.iter().filter(|s| s.bottom.contains(&ff2.target_id)).count();
    s.push_str(&format!(
        "At this layer LL(δ_n) gives {target:?} {target_rank}, and {target:?} is among the LL top-{TABLE_TOKENS} of \
         {on_top} and the bottom-{TABLE_TOKENS} of {on_bottom} of the {n_biggest} biggest FF2 neurons (the paper's \
         Table 2: on top of all three). ",
        target = ff2.target,
        target_rank = rank_text(ff2.spanning_target_rank[last], ff2.vocab_size),
        n_biggest = biggest.len()
    ));
    if norm.is_scale_invariant() {
        s.push_str(
            "Under a bias-free RMSNorm the zero vector has no lens ranking (all logits tie) and the lens is \
             scale-invariant, so low-norm neurons cannot project like the zero vector as in the paper's GPT-2 \
             Table 2: they read as whatever direction they point in, and their smallness shows only in the norm. ",
        );
    }
    let (f_top, f_low) = (&ff1.bands[0], &ff1.bands[2]);
    let all: Vec<usize> = (0..ff1.tokens.len()).collect();
    s.push_str(&format!(
        "FF1 (mlp.up): the {top_band} match one x_i with mean best |cos| {top_best_cos:.3} (best match: \
         {top_best_tokens}), {top_flipped} with a flipped sign; the {low_band} {low_best_cos:.3}. Each of the 10 \
         largest neurons has |cos| >= 0.5 with {top_above_half:.1} of the {n_tokens} x_i on average (FF2: \
         {ff2_above_half:.1} of the δ_i; the paper: 1-2); the x_i themselves have mean pairwise |cos| \
         {ff1_pairwise:.2}, the δ_i {ff2_pairwise:.2}.",
        top_band = f_top.band,
        top_best_cos = f_top.mean_best_abs_cos,
        top_best_tokens = fmt_counts(ff1, &f_top.best_token_counts),
        top_flipped = pct(f_top.frac_negative_best_cos),
        low_band = f_low.band,
        low_best_cos = f_low.mean_best_abs_cos,
        top_above_half = f_top.mean_tokens_above_half,
        n_tokens = ff1.tokens.len(),
        ff2_above_half = top.mean_tokens_above_half,
        ff1_pairwise = ff1.mean_spanning_abs_cos(&all),
        ff2_pairwise = ff2.mean_spanning_abs_cos(&all),
    ));
    s
}

/// The depth profile's sentence of "ours".
pub(super) fn depth_statement(depth: &[DepthRow], layer: usize) -> String {
    let close: Vec<&DepthRow> = depth.iter().filter(|r| r.mean_abs_cos_last >= 0.95).collect();
    let at = depth.iter().find(|r| r.layer == layer);
    let mut s = format!(
        " Beyond the paper's single layer (extra-ff2-depth, the {} largest FF2 neurons at every layer): ",
        depth.first().map_or(0, |r| r.neurons.len())
    );
    if close.is_empty() {
        s.push_str("at no layer are they within mean |cos| 0.95 of ±δ_n.");
        return s;
    }
    let layers: Vec<usize> = close.iter().map(|r| r.layer).collect();
    s.push_str(&format!(
        "they are ±δ_n (mean |cos| ≥ 0.95) at layers {}, where the target is the LL top-1 of {} and the bottom-1 of {} \
         of them on average and the sign follows -x_n[j] for {}: the paper's picture, with the target on top or at the \
         bottom as the activation's sign says.",
        compress_ranges(&layers),
        pct(mean(close.iter().map(|r| r.frac_target_top1))),
        pct(mean(close.iter().map(|r| r.frac_target_bottom1))),
        pct(mean(close.iter().map(|r| r.frac_best_sign_follows_coefficient))),
    ));
    if let Some(r) = at.filter(|r| r.mean_abs_cos_last < 0.95) {
        s.push_str(&format!(
            " At layer {layer} the mean |cos| with δ_n is {:.3}: the VJPs of other tokens are still comparable to δ_n.",
            r.mean_abs_cos_last
        ));
    }
    s
}
