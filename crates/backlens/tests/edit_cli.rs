//! `backlens edit` and `backlens eval` end to end on the default model.

use std::path::PathBuf;
use std::process::{Command, Output};

fn backlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backlens")).args(args).output().expect("running backlens")
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("backlens-edit-cli-{}-{name}", std::process::id()))
}

#[test]
fn edit_shows_before_and_after_and_saves_the_weights() {
    let path = scratch("edited.safetensors");
    let run = backlens(&["edit", "--prompt", "Lionel Messi plays for", "--target", " Paris", "--save", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("before") && stdout.contains("after"), "{stdout}");
    let after = stdout.lines().skip_while(|l| !l.starts_with("after")).nth(1).unwrap_or_default();
    assert!(after.contains("rank 0"), "the default edit makes \" Paris\" the prediction: {stdout}");
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    assert_eq!(tensors["layers.23.mlp.down.weight"].dims(), &[576, 1536]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn eval_writes_json_and_markdown() {
    let out = scratch("eval");
    let run = backlens(&["eval", "--method", "none,fps", "--limit", "2", "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(json["records"], 2);
    let reports = json["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["summary"]["method"], "original model");
    assert_eq!(reports[0]["summary"]["efficacy"]["mean"], 0.0);
    assert_eq!(reports[1]["records"].as_array().unwrap().len(), 2);
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("| original model |") && md.contains("forward pass shift"), "{md}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn edit_rejects_a_layer_the_model_lacks() {
    let run = backlens(&["edit", "--layer", "30"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("layer 30 does not exist"), "{stderr}");
}
