//! Figures 20 and 21: the forward logit lens of FF1's inputs at the last token, x_n: the rank of
//! the model's original answer (correctly vs incorrectly answered prompts) and of the edit target.

use backlens_plot::Series;
use serde_json::json;

use super::aggregate::fmt_opt;
use super::sweep::{PromptStats, Sweep};
use super::vjp_ranks::{last_token_lines, normalized_rank, rank_chart};
use crate::{FigureGroup, Needs, Reproduction};
use backlens::Error;

/// Figures 20, 21: lens rank of the original answer and the target in FF1's inputs x_n.
pub(crate) static GROUP: FigureGroup = FigureGroup {
    name: "input-ranks",
    covers: "Figures 20, 21",
    figures: &[20, 21],
    tables: &[],
    appendices: &[],
    needs: Needs::Sweep,
    run: |inputs| input_ranks(inputs.sweep(&GROUP)?),
};

const PAPER: &str = "Figure 20: FF1's x_n ranks of the models' answers. For correctly answered prompts the answer's \
rank improves gradually over the first half of the layers; wrong answers are mostly function words (\"a\", \
\"the\") whose rank is roughly constant from early layers. About 84% of CounterFact prompts are answered \
incorrectly by GPT2-medium/xl and Llama2-7B; this is the only result the authors found to depend on correctness. \
Figure 21: the target's x_n rank reflects the intermediate predictions at each layer.";

/// A sub-sweep with the prompts `keep` selects.
fn subset(sweep: &Sweep, keep: impl Fn(&PromptStats) -> bool) -> Sweep {
    Sweep { prompts: sweep.prompts.iter().filter(|p| keep(p)).cloned().collect(), skipped: Vec::new(), ..sweep.clone() }
}

/// Figures 20, 21 from a sweep: lens ranks of the answer and the target in FF1's x_n.
pub fn input_ranks(sweep: &Sweep) -> Result<Reproduction, Error> {
    let v = sweep.vocab_size;
    let n = sweep.prompts.len();
    let correct = subset(sweep, |p| p.answer_correct);
    let incorrect = subset(sweep, |p| !p.answer_correct);
    let answer = |p: &PromptStats, l: usize| normalized_rank(p.input_answer_rank[l], v);
    let target = |p: &PromptStats, l: usize| normalized_rank(p.input_target_rank[l], v);
    let mean_only =
        |s: Sweep, name: &str, f: &dyn Fn(&PromptStats, usize) -> Option<f64>| -> (Series, Vec<Option<f64>>) {
            let (mut lines, stats) = last_token_lines(&s, &format!("{name}, {} prompts", s.prompts.len()), f);
            (lines.swap_remove(0), stats.into_iter().map(|s| s.0).collect())
        };
    let (correct_line, correct_mean) = mean_only(correct, "correct", &answer);
    let (incorrect_line, incorrect_mean) = mean_only(incorrect, "incorrect", &answer);
    let (target_lines, target_stats) = last_token_lines(sweep, "target", target);

    // The most frequent wrong answers.
    let mut wrong: std::collections::BTreeMap<&str, usize> = Default::default();
    for p in sweep.prompts.iter().filter(|p| !p.answer_correct) {
        *wrong.entry(p.answer.as_str()).or_default() += 1;
    }
    let mut wrong: Vec<_> = wrong.into_iter().collect();
    wrong.sort_by_key(|w| std::cmp::Reverse(w.1));
    let n_correct = sweep.prompts.iter().filter(|p| p.answer_correct).count();
    let spread = |means: &[Option<f64>]| {
        let present: Vec<f64> = means.iter().flatten().copied().collect();
        let (lo, hi) = present.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        (!present.is_empty()).then_some(hi - lo)
    };
    let half = sweep.n_layers / 2;
    let ours = format!(
        "{} answers {n_correct} of {n} prompts correctly ({:.0}% incorrect; the answer is correct when it is the \
first token of \" \" + target_true). For correct prompts the answer's mean normalized rank in LL(x_n) goes from {} \
at layer 0 to {} at layer {half} and {} at the last layer (0 = most likely); for incorrect prompts from {} to {} \
and {} (range over layers {} vs {} for correct ones). Most frequent wrong answers: {}. The target's mean \
normalized rank in x_n: layer 0 {}, layer {half} {}, last layer {}.",
        sweep.model,
        100.0 * (n - n_correct) as f64 / n.max(1) as f64,
        fmt_opt(correct_mean[0], 3),
        fmt_opt(correct_mean[half], 3),
        fmt_opt(*correct_mean.last().unwrap_or(&None), 3),
        fmt_opt(incorrect_mean[0], 3),
        fmt_opt(incorrect_mean[half], 3),
        fmt_opt(*incorrect_mean.last().unwrap_or(&None), 3),
        fmt_opt(spread(&incorrect_mean), 3),
        fmt_opt(spread(&correct_mean), 3),
        wrong.iter().take(5).map(|(a, c)| format!("{a:?} ×{c}")).collect::<Vec<_>>().join(", "),
        fmt_opt(target_stats[0].0, 3),
        fmt_opt(target_stats[half].0, 3),
        fmt_opt(target_stats[sweep.n_layers - 1].0, 3),
    );
    let title = |what: &str| format!("{what} ({}, {n} prompts)", sweep.model);
    let chart = |t: String, s: Vec<Series>| {
        let mut c = rank_chart(t, s);
        c.y_label = "normalized rank (0 = most likely)".into();
        c
    };
    // A slice may have no correct (or no incorrect) prompt: draw only lines with data.
    let mut pictures = Vec::new();
    if n_correct > 0 {
        pictures.push((
            "fig20a-answer-rank-correct".to_string(),
            chart(title("LL rank of the answer in FF1's x_n, correct prompts"), vec![correct_line.clone()]).into(),
        ));
    }
    let both: Vec<Series> = [(correct_line, n_correct), (incorrect_line, n - n_correct)]
        .into_iter()
        .filter(|(_, k)| *k > 0)
        .map(|(s, _)| s)
        .collect();
    pictures
        .push(("fig20b-answer-rank-all".to_string(), chart(title("LL rank of the answer in FF1's x_n"), both).into()));
    pictures.push((
        "fig21-target-rank".to_string(),
        chart(title("LL rank of the target in FF1's x_n"), target_lines).into(),
    ));
    Ok(Reproduction {
        group: &GROUP,
        paper: PAPER.into(),
        ours,
        pictures,
        numbers: json!({
            "model": sweep.model,
            "prompts": n,
            "answered_correctly": n_correct,
            "answer_rank_correct_mean": correct_mean,
            "answer_rank_incorrect_mean": incorrect_mean,
            "target_rank_mean_median": target_stats,
            "wrong_answers": wrong,
        }),
    })
}
