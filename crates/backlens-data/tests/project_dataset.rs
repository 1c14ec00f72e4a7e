//! The project's dataset (data/counterfact-backlens.json) loads and meets its requirements.
use std::collections::{BTreeMap, HashMap, HashSet};

use backlens_data::{default_dataset_path, load, sample, Record};

fn dataset() -> Vec<Record> {
    load(&default_dataset_path()).expect("the project's dataset loads and validates")
}

#[test]
fn size_and_relations() {
    let r = dataset();
    assert!(r.len() >= 150, "{} records", r.len());
    let mut per_rel: BTreeMap<&str, usize> = BTreeMap::new();
    for x in &r {
        *per_rel.entry(x.relation_id.as_str()).or_default() += 1;
    }
    assert!(per_rel.len() >= 10, "relations: {per_rel:?}");
    for (rel, n) in &per_rel {
        assert!(rel.starts_with('P') && rel[1..].parse::<u32>().is_ok(), "relation id {rel}");
        assert!(*n >= 6, "relation {rel} has only {n} records");
    }
}

#[test]
fn unique_case_ids_in_order() {
    let r = dataset();
    let ids: HashSet<u64> = r.iter().map(|x| x.case_id).collect();
    assert_eq!(ids.len(), r.len());
    for (i, x) in r.iter().enumerate() {
        assert_eq!(x.case_id, i as u64, "case_ids are 0..n in file order");
    }
}

#[test]
fn every_record_is_complete() {
    for x in dataset() {
        let ctx = format!("case {}", x.case_id);
        assert_eq!(x.prompt.matches("{}").count(), 1, "{ctx}");
        assert!(!x.prompt.ends_with(' '), "{ctx}: prompt must not end with a space (targets take it)");
        assert_ne!(x.target_new, x.target_true, "{ctx}");
        assert_eq!(x.target_new.trim(), x.target_new, "{ctx}: no padding in target_new");
        assert_eq!(x.target_true.trim(), x.target_true, "{ctx}: no padding in target_true");
        assert_eq!(x.paraphrase_prompts.len(), 2, "{ctx}");
        assert!(x.neighborhood_prompts.len() >= 5, "{ctx}");
        assert!((2..=3).contains(&x.generation_prompts.len()), "{ctx}");
        let rp = x.rewrite_prompt();
        assert!(rp.contains(&x.subject) && !rp.contains("{}"), "{ctx}: {rp}");
        for p in x.paraphrase_prompts.iter().chain(&x.generation_prompts) {
            assert!(p.contains(&x.subject), "{ctx}: {p:?} should mention {:?}", x.subject);
            assert!(!p.contains("{}"), "{ctx}: {p:?}");
        }
        for p in &x.neighborhood_prompts {
            assert_ne!(p, &rp, "{ctx}: a neighbor is the record's own prompt");
            assert!(!p.contains("{}"), "{ctx}: {p:?}");
        }
    }
}

/// Neighborhood prompts are other subjects' rewrite prompts with the same relation and the
/// same true object, so the edit should leave their answer (target_true) unchanged.
#[test]
fn neighbors_share_relation_and_true_object() {
    let r = dataset();
    let by_prompt: HashMap<String, &Record> =
        r.iter().map(|x| (x.rewrite_prompt(), x)).filter(|(p, _)| !p.is_empty()).collect();
    for x in &r {
        for n in &x.neighborhood_prompts {
            let other = by_prompt
                .get(n.as_str())
                .unwrap_or_else(|| panic!("case {}: neighbor {n:?} is no record's rewrite prompt", x.case_id));
            assert_ne!(other.subject, x.subject, "case {}: {n:?}", x.case_id);
            assert_eq!(other.relation_id, x.relation_id, "case {}: {n:?}", x.case_id);
            assert_eq!(other.target_true, x.target_true, "case {}: {n:?}", x.case_id);
        }
    }
}

/// target_new is another record's true object of the same relation (same type, and false
/// for this subject since each subject has one true object here).
#[test]
fn target_new_is_an_object_of_the_same_relation() {
    let r = dataset();
    let mut objects: HashMap<&str, HashSet<&str>> = HashMap::new();
    for x in &r {
        objects.entry(&x.relation_id).or_default().insert(&x.target_true);
    }
    for x in &r {
        assert!(
            objects[x.relation_id.as_str()].contains(x.target_new.as_str()),
            "case {}: target_new {:?} is no true object of {}",
            x.case_id,
            x.target_new,
            x.relation_id
        );
    }
    // No (subject, relation) pair appears twice with different true objects.
    let mut seen: HashMap<(&str, &str), &str> = HashMap::new();
    for x in &r {
        let prev = seen.insert((&x.subject, &x.relation_id), &x.target_true);
        assert!(prev.is_none(), "case {}: duplicate subject/relation", x.case_id);
    }
}

#[test]
fn hundred_prompt_sample_is_stable() {
    let r = dataset();
    let a = sample(&r, 100, 0);
    assert_eq!(a.len(), 100);
    assert_eq!(a, sample(&r, 100, 0));
    let ids: HashSet<u64> = a.iter().map(|x| x.case_id).collect();
    assert_eq!(ids.len(), 100);
}
