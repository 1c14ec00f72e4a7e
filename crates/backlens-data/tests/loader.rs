//! The loader on small hand-made files: both formats, every error path, and `sample`.
use std::path::{Path, PathBuf};

use backlens_data::{load, sample, DataError, Record};
use serde_json::{json, Value};

/// A fresh file under the system temp dir (unique per call and process: tests run in parallel).
fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backlens-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = dir.join(format!("{n}-{name}"));
    std::fs::write(&p, text).unwrap();
    p
}

fn rec(case_id: u64, subject: &str) -> Value {
    json!({
        "case_id": case_id,
        "pararel_idx": 7,
        "requested_rewrite": {
            "prompt": "The mother tongue of {} is", "subject": subject, "relation_id": "P103",
            "target_true": {"str": "French", "id": "Q150"}, "target_new": {"str": "English", "id": "Q1860"}
        },
        "paraphrase_prompts": ["Shayna does this and Yossel goes still. Danielle Darrieux is a native speaker of",
                               "The native language of Danielle Darrieux is"],
        "neighborhood_prompts": ["The mother tongue of Léon Blum is", "The native language of Montesquieu is"],
        "attribute_prompts": ["J. R. R. Tolkien is a native speaker of"],
        "generation_prompts": ["Danielle Darrieux's mother tongue is"]
    })
}

fn array_file(name: &str, recs: &[Value]) -> PathBuf {
    write(name, &serde_json::to_string_pretty(&Value::Array(recs.to_vec())).unwrap())
}

fn load_err(name: &str, recs: &[Value]) -> String {
    let e = load(&array_file(name, recs)).expect_err("must fail");
    e.to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} should mention {p:?}");
    }
}

#[test]
fn original_format_loads() {
    let r = load(&array_file("ok.json", &[rec(0, "Danielle Darrieux"), rec(5, "Edwin of Northumbria")])).unwrap();
    assert_eq!(r.len(), 2);
    let x = &r[0];
    assert_eq!(x.case_id, 0);
    assert_eq!(x.subject, "Danielle Darrieux");
    assert_eq!(x.prompt, "The mother tongue of {} is");
    assert_eq!(x.relation_id, "P103");
    assert_eq!(x.target_true, "French");
    assert_eq!(x.target_new, "English");
    assert_eq!(x.paraphrase_prompts.len(), 2);
    assert_eq!(x.neighborhood_prompts.len(), 2);
    assert_eq!(x.generation_prompts, vec!["Danielle Darrieux's mother tongue is".to_string()]);
    assert_eq!(x.rewrite_prompt(), "The mother tongue of Danielle Darrieux is");
    assert_eq!(r[1].case_id, 5);
}

#[test]
fn json_lines_and_array_give_the_same_records() {
    let recs = [rec(0, "A"), rec(1, "B"), rec(2, "C")];
    let from_array = load(&array_file("same.json", &recs)).unwrap();
    let lines: Vec<String> = recs.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    // a blank line and a trailing newline are allowed in JSON lines
    let text = format!("{}\n\n{}\n{}\n", lines[0], lines[1], lines[2]);
    let from_lines = load(&write("same.jsonl", &text)).unwrap();
    assert_eq!(from_array, from_lines);
    // also the project's dataset, re-encoded as JSON lines
    let path = backlens_data::default_dataset_path();
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let jl: String = all.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    assert_eq!(load(&path).unwrap(), load(&write("project.jsonl", &jl)).unwrap());
}

#[test]
fn generation_prompts_may_be_absent() {
    let mut r = rec(0, "A");
    r.as_object_mut().unwrap().remove("generation_prompts");
    assert!(load(&array_file("nogen.json", &[r])).unwrap()[0].generation_prompts.is_empty());
}

#[test]
fn missing_file() {
    let e = load(Path::new("/nonexistent/backlens/cf.json")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e:?}");
    assert_mentions(&e.to_string(), &["/nonexistent/backlens/cf.json"]);
}

#[test]
fn empty_file_and_empty_array() {
    for (name, text) in [("empty.json", ""), ("blank.json", "  \n\n"), ("emptyarr.json", "[]")] {
        let e = load(&write(name, text)).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{name}: {e:?}");
    }
}

#[test]
fn invalid_json_reports_line_and_column() {
    let e = load(&write("bad.json", "[\n  {\"case_id\": 0,\n   \"requested_rewrite\": }\n]")).unwrap_err();
    match &e {
        DataError::Json { line, column, .. } => assert_eq!((*line, *column), (3, 25), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_mentions(&e.to_string(), &["line 3", "column 25"]);
    // JSON lines: the line number is the file's line
    let good = serde_json::to_string(&rec(0, "A")).unwrap();
    let e = load(&write("bad.jsonl", &format!("{good}\n{{\"case_id\": 1,,}}\n"))).unwrap_err();
    match &e {
        DataError::Json { line, .. } => assert_eq!(*line, 2, "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn record_not_an_object() {
    let msg = load_err("notobj.json", &[rec(0, "A"), json!([1, 2])]);
    assert_mentions(&msg, &["record 1", "expected a JSON object", "an array"]);
}

#[test]
fn wrong_field_type() {
    let mut r = rec(3, "A");
    r["paraphrase_prompts"] = json!("just one string");
    assert_mentions(&load_err("type.json", &[r]), &["record 0", "case_id 3", "wrong field type"]);
}

/// Each required field, removed or emptied, gives an error naming the record and the field.
#[test]
fn missing_and_empty_fields() {
    let cases: &[(&str, &[&str])] = &[
        ("case_id", &["case_id"]),
        ("requested_rewrite", &["requested_rewrite"]),
        ("paraphrase_prompts", &["paraphrase_prompts"]),
        ("neighborhood_prompts", &["neighborhood_prompts"]),
    ];
    for (field, path) in cases {
        let mut r = rec(4, "A");
        r.as_object_mut().unwrap().remove(*field);
        let msg = load_err("missing.json", &[rec(0, "B"), r]);
        assert_mentions(&msg, &["record 1", "missing"]);
        assert_mentions(&msg, path);
    }
    for field in ["prompt", "subject", "relation_id", "target_true", "target_new"] {
        let mut r = rec(4, "A");
        r["requested_rewrite"].as_object_mut().unwrap().remove(field);
        let msg = load_err("missing2.json", &[rec(0, "B"), r]);
        assert_mentions(&msg, &["record 1", "case_id 4", "missing", &format!("requested_rewrite.{field}")]);
    }
    for (field, sub) in [("target_true", "str"), ("target_new", "str")] {
        let mut r = rec(4, "A");
        r["requested_rewrite"][field].as_object_mut().unwrap().remove(sub);
        let msg = load_err("missing3.json", &[r]);
        assert_mentions(&msg, &["case_id 4", "missing", &format!("requested_rewrite.{field}.str")]);
        let mut r = rec(4, "A");
        r["requested_rewrite"][field][sub] = json!(" ");
        let msg = load_err("empty3.json", &[r]);
        assert_mentions(&msg, &["case_id 4", "empty", &format!("requested_rewrite.{field}.str")]);
    }
    for field in ["prompt", "subject", "relation_id"] {
        let mut r = rec(4, "A");
        r["requested_rewrite"][field] = json!("");
        let msg = load_err("empty.json", &[r]);
        assert_mentions(&msg, &["record 0", "case_id 4", "empty", &format!("requested_rewrite.{field}")]);
    }
}

#[test]
fn template_needs_exactly_one_hole() {
    for t in ["The mother tongue of X is", "{} and {} speak"] {
        let mut r = rec(9, "A");
        r["requested_rewrite"]["prompt"] = json!(t);
        let msg = load_err("hole.json", &[r]);
        assert_mentions(&msg, &["case_id 9", "requested_rewrite.prompt", "exactly once", t]);
    }
}

#[test]
fn target_new_must_differ() {
    let mut r = rec(2, "A");
    r["requested_rewrite"]["target_new"]["str"] = json!("French");
    let msg = load_err("same.json", &[r]);
    assert_mentions(&msg, &["case_id 2", "target_new", "equals target_true", "French"]);
}

#[test]
fn prompt_lists_must_be_nonempty() {
    for field in ["paraphrase_prompts", "neighborhood_prompts"] {
        let mut r = rec(6, "A");
        r[field] = json!([]);
        let msg = load_err("emptylist.json", &[r]);
        assert_mentions(&msg, &["case_id 6", field, "at least 1"]);
        let mut r = rec(6, "A");
        r[field] = json!(["fine", ""]);
        let msg = load_err("emptyprompt.json", &[r]);
        assert_mentions(&msg, &["case_id 6", &format!("{field}`[1]"), "empty prompt"]);
    }
    // lenient like the original: one paraphrase and one neighbor are enough
    let mut r = rec(6, "A");
    r["paraphrase_prompts"] = json!(["p"]);
    r["neighborhood_prompts"] = json!(["n"]);
    r["generation_prompts"] = json!([]);
    assert_eq!(load(&array_file("lenient.json", &[r])).unwrap().len(), 1);
}

#[test]
fn duplicate_case_id() {
    let e = load(&array_file("dup.json", &[rec(1, "A"), rec(2, "B"), rec(1, "C")])).unwrap_err();
    match &e {
        DataError::DuplicateCaseId { case_id, index, first_index, .. } => {
            assert_eq!((*case_id, *index, *first_index), (1, 2, 0));
        }
        other => panic!("{other:?}"),
    }
    assert_mentions(&e.to_string(), &["duplicate case_id 1", "record 2", "record 0"]);
}

#[test]
fn jsonl_errors_name_the_line() {
    let mut bad = rec(1, "B");
    bad["requested_rewrite"]["prompt"] = json!("no hole");
    let text =
        format!("{}\n\n{}\n", serde_json::to_string(&rec(0, "A")).unwrap(), serde_json::to_string(&bad).unwrap());
    let msg = load(&write("bad2.jsonl", &text)).unwrap_err().to_string();
    assert_mentions(&msg, &["record 1", "case_id 1", "line 3", "requested_rewrite.prompt"]);
}

fn records(n: u64) -> Vec<Record> {
    let recs: Vec<Value> = (0..n).map(|i| rec(i, &format!("S{i}"))).collect();
    load(&array_file(&format!("n{n}.json"), &recs)).unwrap()
}

#[test]
fn sample_is_deterministic_subset() {
    let all = records(40);
    let a = sample(&all, 10, 42);
    assert_eq!(a.len(), 10);
    assert_eq!(a, sample(&all, 10, 42), "same seed, same sample");
    let mut ids: Vec<u64> = a.iter().map(|r| r.case_id).collect();
    for r in &a {
        assert!(all.contains(r), "a sample holds only dataset records");
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10, "no record twice");
    assert_ne!(a, sample(&all, 10, 43), "another seed gives another sample");
    // a shorter sample with the same seed is a prefix of a longer one
    assert_eq!(sample(&all, 5, 42)[..], sample(&all, 10, 42)[..5]);
    assert_eq!(sample(&all, 40, 7), all, "limit == len: all, in order");
    assert_eq!(sample(&all, 1000, 7), all, "limit > len: all, in order");
    assert!(sample(&all, 0, 7).is_empty());
    assert!(sample(&[], 3, 7).is_empty());
}
