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
    let run = backlens(&[
        "edit",
        "--prompt",
        "Lionel Messi plays for",
        "--target",
        " Paris",
        "--save",
        path.to_str().unwrap(),
    ]);
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
fn whitened_key_edit_reaches_the_target_and_bad_shrinkage_is_refused() {
    let run =
        backlens(&["edit", "--method", "fps-whitened", "--prompt", "Lionel Messi plays for", "--target", " Paris"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("whitened key, shrinkage 0.1"), "{stdout}");
    let after = stdout.lines().skip_while(|l| !l.starts_with("after")).nth(1).unwrap_or_default();
    assert!(after.contains("rank 0"), "the whitened edit makes \" Paris\" the prediction: {stdout}");
    let run = backlens(&["edit", "--method", "fps-whitened", "--key-shrinkage", "0"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("shrinkage must be in (0, 1]"), "{stderr}");
}

#[test]
fn template_contrast_edit_needs_the_subject_and_reaches_the_target() {
    let run =
        backlens(&["edit", "--method", "fps-template", "--prompt", "Lionel Messi plays for", "--target", " Paris"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("needs --subject"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run =
        backlens(&["edit", "--method", "fps-template", "--subject", "Ronaldo", "--prompt", "Lionel Messi plays for"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("does not occur in --prompt"));
    let run = backlens(&[
        "edit",
        "--method",
        "fps-template",
        "--subject",
        "Lionel Messi",
        "--prompt",
        "Lionel Messi plays for",
        "--target",
        " Paris",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("template-contrast key, shrinkage 0.1, 40 subjects"), "{stdout}");
    let after = stdout.lines().skip_while(|l| !l.starts_with("after")).nth(1).unwrap_or_default();
    assert!(after.contains("rank 0"), "the template-contrast edit makes \" Paris\" the prediction: {stdout}");
}

#[test]
fn edit_rejects_a_layer_the_model_lacks() {
    let run = backlens(&["edit", "--layer", "30"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("layer 30 does not exist"), "{stderr}");
}

#[test]
fn sweep_lr_writes_the_figure_26_numbers_and_charts() {
    let out = scratch("sweep");
    let run = backlens(&[
        "sweep-lr",
        "--layers",
        "23",
        "--methods",
        "fps,sgd",
        "--limit",
        "2",
        "--no-perplexity",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    let report = &json["report"];
    assert_eq!(report["records"], 2);
    assert_eq!(report["points"].as_array().unwrap().len(), 4);
    assert_eq!(report["cells"].as_array().unwrap().len(), 2);
    // At the documented editing layer both methods find a successful step for both records.
    for cell in report["cells"].as_array().unwrap() {
        assert_eq!(cell["successes"], 2, "{cell}");
        assert!(cell["median_step"].as_f64().unwrap() > 0.0);
    }
    assert!(report["base_perplexity"].is_null());
    for f in ["sweep.md", "sweep-lr.svg", "sweep-lr.png", "sweep-spread.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(!out.join("sweep-perplexity.svg").exists(), "no perplexity chart without perplexity");
    // --from-json redraws the table and figures without computing.
    let again = scratch("sweep-again");
    let json_path = out.join("sweep.json");
    let run = backlens(&["sweep-lr", "--from-json", json_path.to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    let table = |dir: &std::path::Path| {
        let md = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
        md.lines().filter(|l| l.starts_with('|')).map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(table(&again), table(&out));
    assert!(again.join("sweep-lr.svg").is_file() && !again.join("sweep.json").exists());
    let _ = std::fs::remove_dir_all(&again);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn sweep_lr_rejects_an_unknown_method() {
    let run = backlens(&["sweep-lr", "--methods", "rome", "--limit", "1"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("unknown sweep method \"rome\""), "{stderr}");
}

/// The method names come from `backlens_edit::registry`: every edit method's name is accepted
/// by `edit` and listed with its help, an unknown one is refused with the list of names (before
/// any model is loaded), and the same for the sweep's methods.
#[test]
fn method_names_come_from_the_registry() {
    use backlens::edit::registry;
    let help = backlens(&["edit", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for e in registry::edit_methods() {
        let run = backlens(&["edit", "--method", e.name, "--help"]);
        assert!(run.status.success(), "{}: {}", e.name, String::from_utf8_lossy(&run.stderr));
        let listed = help.lines().any(|l| l.trim_start().starts_with(&format!("- {}:", e.name)) && l.ends_with(e.help));
        assert!(listed, "{} is not in the help: {help}", e.name);
    }
    let run = backlens(&["eval", "--method", "none,rome"]);
    assert_eq!(run.status.code(), Some(2), "clap's usage error");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("'rome'"), "{stderr}");
    let names: Vec<&str> = registry::edit_methods().map(|e| e.name).collect();
    assert!(stderr.contains(&names.join(", ")), "the error lists {names:?}: {stderr}");
    assert!(!names.contains(&"fps-scale-free"), "a sweep-only method is not an edit method");

    let run = backlens(&["sweep-lr", "--methods", "sgd,rome", "--limit", "1"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    for e in registry::step_methods() {
        assert!(stderr.contains(e.name), "the error lists {}: {stderr}", e.name);
    }
    let help = backlens(&["sweep-lr", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for e in registry::step_methods() {
        let label = e.step_method(&backlens::edit::MethodSettings::default()).unwrap().label();
        assert!(
            help.contains(&format!("{} (", e.name)) && help.contains(&label),
            "{} is not in the help: {help}",
            e.name
        );
    }
}

/// A sweep.json written before the methods were `StepSizeMethod`s (methods named `FpsRaw`,
/// `Sgd`, …) is still redrawn by `--from-json`, with the methods' labels.
#[test]
fn sweep_lr_redraws_a_sweep_json_with_the_former_method_names() {
    let dir = scratch("old-sweep");
    std::fs::create_dir_all(&dir).unwrap();
    let cell = |layer: usize, method: &str, step: f64| {
        format!(
            r#"{{"layer": {layer}, "method": "{method}", "records": 2, "successes": 2, "median_step": {step},
                "log10_step": {{"mean": {}, "std": 0.1}}, "step_for_95": {step}, "perplexity": null}}"#,
            step.log10()
        )
    };
    let point = |layer: usize, method: &str, step: f64| {
        format!(
            r#"{{"case_id": 1, "layer": {layer}, "method": "{method}", "already": false, "min_step": {step},
                "perplexity": null, "probes": 5}}"#
        )
    };
    let (cells, points): (Vec<String>, Vec<String>) =
        [(20, "FpsRaw", 0.2), (20, "Sgd", 1.2), (23, "FpsRaw", 0.1), (23, "Sgd", 0.9)]
            .iter()
            .map(|&(l, m, s)| (cell(l, m, s), point(l, m, s)))
            .unzip();
    let json = format!(
        r#"{{"dataset": "d", "seed": 0, "resolution": 1.1, "perplexity_records": null,
            "report": {{"model": "m", "records": 2, "base_perplexity": null, "seconds": 3.0,
                       "cells": [{}], "points": [{}]}}}}"#,
        cells.join(","),
        points.join(",")
    );
    let path = dir.join("sweep.json");
    std::fs::write(&path, json).unwrap();
    let out = dir.join("redrawn");
    let run = backlens(&["sweep-lr", "--from-json", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(
        md.contains("forward pass shift (raw η): median min lr") && md.contains("one-step SGD: median min lr"),
        "{md}"
    );
    assert!(md.contains("| 23 | 1.000e-1 |"), "{md}");
    assert!(out.join("sweep-lr.svg").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A folder made for one test, removed when dropped.
fn fresh_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("backlens-edit-cli-{name}-")).tempdir().unwrap()
}

/// `--save` naming the model being edited (itself, a hard link to it, or one file of a model
/// folder) is refused before the model is even loaded, and the model's bytes are untouched.
#[test]
fn save_refuses_the_model_file_itself() {
    let dir = fresh_dir("save-model");
    let model = dir.path().join("model.gguf");
    std::fs::write(&model, b"not really a model, but it must survive").unwrap();
    let link = dir.path().join("link.gguf");
    std::fs::hard_link(&model, &link).unwrap();
    for save in [&model, &link] {
        for force in [false, true] {
            let mut args = vec!["edit", "--model", model.to_str().unwrap(), "--save", save.to_str().unwrap()];
            if force {
                args.push("--force");
            }
            let run = backlens(&args);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(!run.status.success());
            assert!(stderr.contains("is the model file being edited"), "{stderr}");
        }
    }
    let folder = dir.path().join("hf");
    std::fs::create_dir(&folder).unwrap();
    let weights = folder.join("model.safetensors");
    std::fs::write(&weights, b"weights").unwrap();
    let run = backlens(&["edit", "--model", folder.to_str().unwrap(), "--save", weights.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("is the model file being edited"));
    assert_eq!(std::fs::read(&model).unwrap(), b"not really a model, but it must survive");
    assert_eq!(std::fs::read(&weights).unwrap(), b"weights");
}

/// `--save` on a folder or a device node is refused (even with --force); an existing regular
/// file needs --force. All before loading: no model is needed to see the refusals.
#[test]
fn save_refuses_what_is_not_a_regular_file_and_existing_files_without_force() {
    let dir = fresh_dir("save-kinds");
    let model = dir.path().join("model.gguf");
    std::fs::write(&model, b"model").unwrap();
    let m = model.to_str().unwrap();
    for target in [dir.path().to_str().unwrap(), "/dev/null"] {
        let run = backlens(&["edit", "--model", m, "--save", target, "--force"]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(stderr.contains("is not a regular file"), "{target}: {stderr}");
    }
    let existing = dir.path().join("old.safetensors");
    std::fs::write(&existing, b"keep me").unwrap();
    let run = backlens(&["edit", "--model", m, "--save", existing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("already exists; pass --force"), "{stderr}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    // With --force the checks pass and the run goes on to load the (fake) model, which fails:
    // the existing file is still untouched.
    let run = backlens(&["edit", "--model", m, "--save", existing.to_str().unwrap(), "--force"]);
    assert!(!run.status.success());
    assert!(!String::from_utf8_lossy(&run.stderr).contains("--save"));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
}

/// With --force an existing file is replaced by the saved weights (atomically: no temporary
/// file is left beside it).
#[test]
fn save_with_force_replaces_an_existing_file() {
    let dir = fresh_dir("save-force");
    let path = dir.path().join("edited.safetensors");
    std::fs::write(&path, b"old").unwrap();
    let run = backlens(&["edit", "--save", path.to_str().unwrap(), "--force"]);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    assert_eq!(tensors["layers.23.mlp.down.weight"].dims(), &[576, 1536]);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("edited.safetensors")]);
}

/// Step sizes must be finite and positive: refused at parsing, before any model is loaded.
#[test]
fn non_finite_or_non_positive_steps_are_refused() {
    for flag in ["--eta", "--sgd-lr", "--adam-lr", "--ft-lr"] {
        for value in ["NaN", "inf", "-inf", "0", "-1e-3"] {
            let run = backlens(&["edit", "--model", "/nonexistent/model.gguf", &format!("{flag}={value}")]);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(!run.status.success(), "{flag} {value}");
            assert!(stderr.contains("a step size must be a finite number greater than 0"), "{flag} {value}: {stderr}");
        }
    }
}
