//! The figure reproductions (`backlens_reproduce`) on the default model: segments, the sweep's
//! per-prompt numbers checked against independent computations, aggregations on hand-made
//! cases, and every group end to end on a small slice.

// Index loops read as the statements they check (`c[i][j] == c[j][i]`, layer × token grids).
#![allow(clippy::needless_range_loop)]

use backlens::data;
use backlens::model::Site;
use backlens::LensOptions;
use backlens_reproduce::{
    normalized_layer, segment_means, segment_prompt, FigureGroup, PromptStats, ReproduceOptions, Segment, SegmentTable,
    Sweep, GROUPS,
};
use backlens_tests::default_backlens;
use std::collections::BTreeMap;

#[test]
fn messi_prompt_segments() {
    let tokenizer = default_backlens().model().tokenizer();
    let (ids, segments) = segment_prompt(tokenizer, "{} plays for", "Lionel Messi").unwrap();
    // "L", "ion", "el", " Mess", "i", " plays", " for"
    assert_eq!(ids, vec![60, 285, 299, 11960, 89, 4566, 327]);
    use Segment::*;
    assert_eq!(segments, vec![FirstSubject, MiddleSubject, MiddleSubject, MiddleSubject, LastSubject, Further, Last]);

    let (_, segments) = segment_prompt(tokenizer, "The mother tongue of {} is", "Danielle Darrieux").unwrap();
    assert_eq!(segments.first(), Some(&BeforeSubject));
    assert_eq!(segments.last(), Some(&Last));
}

#[test]
fn every_dataset_subject_is_located_in_order() {
    let tokenizer = default_backlens().model().tokenizer();
    let records = data::load(&data::default_dataset_path()).unwrap();
    for r in &records {
        let (ids, segments) = segment_prompt(tokenizer, &r.prompt, &r.subject).unwrap();
        assert_eq!(ids.len(), segments.len());
        assert!(segments.windows(2).all(|w| w[0] <= w[1]) || segments.len() == 1, "{r:?}: {segments:?}");
        assert_eq!(segments.last(), Some(&Segment::Last));
        // The subject tokens, decoded, contain the subject.
        let subject: Vec<u32> = ids
            .iter()
            .zip(&segments)
            .filter(|(_, s)| matches!(s, Segment::FirstSubject | Segment::MiddleSubject | Segment::LastSubject))
            .map(|(&id, _)| id)
            .collect();
        if segments.contains(&Segment::LastSubject) {
            assert!(tokenizer.decode(&subject).unwrap().contains(r.subject.trim()), "{r:?}");
        }
    }
}

#[test]
fn segmenting_rejects_a_template_without_a_slot() {
    let tokenizer = default_backlens().model().tokenizer();
    let err = segment_prompt(tokenizer, "plays for", "Lionel Messi").unwrap_err().to_string();
    assert!(err.contains("no `{}`"), "{err}");
}

#[test]
fn segment_means_average_within_each_segment() {
    use Segment::*;
    let segments = [FirstSubject, MiddleSubject, MiddleSubject, LastSubject, Last];
    let means = segment_means(&segments, [Some(1.0), Some(2.0), Some(4.0), None, Some(5.0)]);
    assert_eq!(means[FirstSubject.index()], Some(1.0));
    assert_eq!(means[MiddleSubject.index()], Some(3.0));
    assert_eq!(means[LastSubject.index()], None, "a token without a value leaves its segment empty");
    assert_eq!(means[BeforeSubject.index()], None);
    assert_eq!(means[Last.index()], Some(5.0));
}

#[test]
fn figure_ids_parse_to_groups() {
    for (id, group) in [
        ("3", "gradient-rank"),
        ("fig4", "tables"),
        ("figure-25", "tables"),
        ("table-3", "tables"),
        ("16", "norms"),
        ("Fig 18", "vjp-ranks"),
        ("21", "input-ranks"),
        ("22", "cosine"),
        ("table2", "neurons"),
        ("appendix-c", "neurons"),
        ("norms", "norms"),
    ] {
        assert_eq!(FigureGroup::parse(id).unwrap().name, group, "{id}");
    }
    for bad in ["1", "10", "26", "table-1", "histogram"] {
        let err = FigureGroup::parse(bad).unwrap_err().to_string();
        assert!(err.contains("unknown figure") && err.contains("gradient-rank"), "{bad}: {err}");
    }
}

fn small_sweep() -> &'static Sweep {
    static SWEEP: std::sync::OnceLock<Sweep> = std::sync::OnceLock::new();
    SWEEP.get_or_init(|| {
        let records = ReproduceOptions { limit: 4, ..Default::default() }.records().unwrap();
        backlens_reproduce::sweep(default_backlens(), &records, |_, _| {}).unwrap()
    })
}

#[test]
fn sweep_numbers_match_independent_computations() {
    let bl = default_backlens();
    let sweep = small_sweep();
    assert_eq!(sweep.prompts.len(), 4);
    assert!(sweep.skipped.is_empty(), "{:?}", sweep.skipped);
    let html = sweep.to_html(2);
    assert!(html.contains("4 prompts traced, 0 skipped") && html.contains("and 2 more prompts"), "{html}");
    assert_eq!(html.matches("<tr>").count(), 3, "a header and two rows: {html}");
    let l = sweep.n_layers;
    for p in &sweep.prompts {
        let n = p.tokens.len();
        // Ranks and norms against the facade's report of the same prompt (a separate code path).
        let options = LensOptions { k: 1, sites: vec![Site::MLP_UP_INPUT, Site::MLP_DOWN_VJP], normalize: false };
        let report = bl.analyze(&p.prompt, &p.target, &options).unwrap();
        assert_eq!(report.target_id, p.target_id);
        let vjps = report.site("mlp.down.vjp").unwrap();
        let inputs = report.site("mlp.up.input").unwrap();
        for layer in 0..l {
            for t in 0..n {
                assert_eq!(
                    p.vjp_target_rank[layer][t], vjps[layer][t].target_rank,
                    "{} layer {layer} token {t}",
                    p.prompt
                );
                assert_eq!(p.norms["mlp.down.vjp"][layer][t], vjps[layer][t].norm);
            }
            assert_eq!(p.input_target_rank[layer], inputs[layer][n - 1].target_rank);
        }
        // Answer: the argmax of the trace's last-position logits.
        let trace = bl.trace(&p.prompt, &p.target, &options).unwrap();
        let logits = trace.logits.to_vec1::<f32>().unwrap();
        let best = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
        assert_eq!(p.answer_id, best);
        // Cosine: symmetric, unit diagonal, and one entry recomputed by hand.
        let c = &p.last_token_vjp_cosine;
        for i in 0..l {
            assert!((c[i][i] - 1.0).abs() < 1e-5);
            for j in 0..l {
                assert!((c[i][j] - c[j][i]).abs() < 1e-6);
            }
        }
        let row = |layer: usize| {
            trace.require(Site::MLP_DOWN_VJP.at(layer)).unwrap().get(n - 1).unwrap().to_vec1::<f32>().unwrap()
        };
        let (a, b) = (row(3), row(20));
        let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (c[3][20] - dot / (norm(&a) * norm(&b))).abs() < 1e-4,
            "{} vs {}",
            c[3][20],
            dot / (norm(&a) * norm(&b))
        );
        // Lemma 4.1 and Appendix A: rank n below the last layer (for this short prompt), and the
        // last layer's MLP gradients have rank 1.
        for module in ["mlp.up", "mlp.gate", "mlp.down"] {
            assert_eq!(p.gradient_rank[module][l - 1], 1, "{module}");
        }
        assert_eq!(p.gradient_rank["mlp.up"][l / 2], n);
    }
}

#[test]
fn sweep_skips_targets_that_are_not_one_token() {
    let mut record = data::load(&data::default_dataset_path()).unwrap().remove(0);
    record.target_new = "Paris Saint-Germain".into();
    let sweep = backlens_reproduce::sweep(default_backlens(), &[record], |_, _| {}).unwrap();
    assert!(sweep.prompts.is_empty());
    assert_eq!(sweep.skipped.len(), 1);
    assert!(sweep.skipped[0].1.contains("exactly one target token"), "{:?}", sweep.skipped);
}

/// A sweep of hand-made prompts for the aggregations.
fn synthetic(prompts: Vec<PromptStats>) -> Sweep {
    Sweep { model: "synthetic".into(), n_layers: 2, d_model: 4, vocab_size: 11, prompts, skipped: vec![] }
}

fn prompt(segments: Vec<Segment>, norms: Vec<Vec<f32>>) -> PromptStats {
    PromptStats {
        case_id: 0,
        prompt: String::new(),
        target: String::new(),
        target_id: 0,
        answer_id: 0,
        answer: String::new(),
        answer_correct: false,
        tokens: vec![String::new(); segments.len()],
        segments,
        gradient_rank: BTreeMap::new(),
        gradient_rank_relative: BTreeMap::new(),
        norms: BTreeMap::from([("mlp.down.vjp".to_string(), norms)]),
        vjp_target_rank: vec![],
        vjp_answer_rank: vec![],
        input_target_rank: vec![],
        input_answer_rank: vec![],
        last_token_vjp_cosine: vec![],
    }
}

#[test]
fn segment_tables_average_tokens_then_prompts() {
    use Segment::*;
    let sweep = synthetic(vec![
        prompt(vec![LastSubject, Further, Last], vec![vec![1.0, 2.0, 3.0], vec![4.0, 6.0, 8.0]]),
        prompt(vec![LastSubject, Further, Further, Last], vec![vec![3.0, 1.0, 3.0, 5.0], vec![0.0, 0.0, 0.0, 0.0]]),
    ]);
    let table =
        SegmentTable::average(&sweep, |p, l| p.norms["mlp.down.vjp"][l].iter().map(|&x| Some(x as f64)).collect());
    assert_eq!(table.get(LastSubject, 0), Some(2.0));
    assert_eq!(table.get(Further, 0), Some(2.0), "prompt means 2 and 2");
    assert_eq!(table.get(Last, 1), Some(4.0));
    assert_eq!(table.get(FirstSubject, 0), None);
    assert_eq!(table.prompts[Further.index()], 2);
    assert_eq!(table.present().collect::<Vec<_>>(), vec![LastSubject, Further, Last]);
    assert_eq!(normalized_layer(1, 2), 1.0);
    assert_eq!(normalized_layer(0, 1), 0.0);
}

#[test]
fn every_group_reproduces_on_a_small_slice() {
    let bl = default_backlens();
    let options = ReproduceOptions { limit: 4, ..Default::default() };
    let out = std::env::temp_dir().join(format!("backlens-reproduce-{}", std::process::id()));
    let reproductions = backlens_reproduce::reproduce(bl, GROUPS, &options, |_, _| {}).unwrap();
    assert_eq!(reproductions.len(), GROUPS.len());
    for r in &reproductions {
        assert!(!r.paper.is_empty() && !r.ours.is_empty(), "{}", r.group);
        assert!(!r.pictures.is_empty(), "{}", r.group);
        let files = r.write(&out).unwrap_or_else(|e| panic!("{}: {e}", r.group));
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() > 0, "{}", f.display());
        }
        let md = std::fs::read_to_string(out.join(format!("{}.md", r.group))).unwrap();
        assert!(md.contains("**Paper.**") && md.contains("**Ours.**"));
        assert!(r.to_html().unwrap().contains("<svg"));
    }
    let tables = reproductions.iter().find(|r| r.group.name == "tables").unwrap();
    // Bias-free RMSNorm: the normalized lens reads every cell as the plain one does, up to a
    // target tied with another token within f32 rounding.
    for example in tables.numbers["examples"].as_array().unwrap() {
        let agreement = &example["normalized"];
        assert_eq!(agreement["same_top_bottom"], agreement["cells"], "{example}");
        assert!(agreement["max_rank_difference"].as_u64().unwrap() <= 1, "{example}");
    }
    std::fs::remove_dir_all(&out).ok();
}
