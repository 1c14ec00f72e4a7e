//! The registry of edit methods: names are unique, every row builds its method from the
//! settings on a tiny model and that method edits, the step-size rows are the sweep's methods,
//! unknown names are refused with the list of names, and the settings' `Default` is the
//! documented defaults.

use backlens_edit::defaults::*;
use backlens_edit::registry::{edit_method, edit_methods, step_method, step_methods, step_methods_named, METHODS};
use backlens_edit::{EditRequest, Eta, EtaKind, MethodSettings};
use backlens_model::testing::{random_llama, TinyLlama};

const LLAMA: TinyLlama = TinyLlama::SMALL;

#[test]
fn names_are_unique_and_the_commands_rows_are_the_documented_ones() {
    let mut names: Vec<&str> =
        METHODS.iter().flat_map(|e| std::iter::once(e.name).chain(e.sweep_aliases.iter().copied())).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "a name or alias occurs twice");
    let edit: Vec<&str> = edit_methods().map(|e| e.name).collect();
    assert_eq!(edit, ["none", "fps", "fps-whitened", "fps-template", "sgd", "adam", "ft"]);
    let sweep: Vec<&str> = step_methods().map(|e| e.name).collect();
    assert_eq!(sweep, ["fps", "fps-scale-free", "sgd", "adam"]);
    assert!(METHODS.iter().all(|e| !e.help.is_empty() && !e.help.contains('\n')));
    assert_eq!(METHODS.iter().filter(|e| e.needs_template).map(|e| e.name).collect::<Vec<_>>(), ["fps-template"]);
}

#[test]
fn the_default_settings_are_the_documented_defaults() {
    let s = MethodSettings::default();
    assert_eq!((s.layer, s.eta, s.eta_kind), (DEFAULT_LAYER, DEFAULT_ETA, DEFAULT_ETA_KIND));
    assert_eq!(s.fps_eta(), DEFAULT_FPS_ETA);
    assert_eq!(DEFAULT_FPS_ETA, Eta::ScaleFree(500.0));
    assert_eq!((s.sgd_lr, s.adam_lr), (1.5, 0.011));
    assert_eq!((s.ft_lr, s.ft_steps, s.ft_layer, s.ft_whole_mlp), (5e-4, 25, None, false));
    assert_eq!((s.key_shrinkage, s.no_skip, s.key_corpus.clone()), (0.1, false, None));
    assert_eq!(DEFAULT_LAYER, 23);
}

#[test]
fn every_row_builds_a_method_that_edits() {
    let model = random_llama(LLAMA, 3);
    let corpus = std::env::temp_dir().join(format!("backlens-registry-corpus-{}.txt", std::process::id()));
    std::fs::write(&corpus, "# a comment\nt1 t2 t3 t4 t5 t6\n\nt7 t8 t9 t10 t11\n\nt12 t13 t14 t15 t16 t17 t18\n")
        .unwrap();
    let settings = MethodSettings {
        layer: 1,
        key_corpus: Some(corpus.clone()),
        key_shrinkage: 0.5,
        ft_steps: 2,
        ..MethodSettings::default()
    };
    let request = EditRequest::new(vec![1, 2, 3, 4], vec![5]).unwrap().with_template("t1 t2 {} t4");
    for e in edit_methods() {
        let method = e.build(&settings, &model).unwrap();
        let Some(method) = method else {
            assert_eq!(e.name, "none");
            continue;
        };
        let edit = method.compute(&model, std::slice::from_ref(&request)).unwrap();
        assert!(!edit.updates.is_empty(), "{}: {} made no edit", e.name, method.name());
        assert!(edit.updates.iter().all(|u| u.layer == 1), "{}", e.name);
    }
    let _ = std::fs::remove_file(&corpus);
    // The names the methods report.
    let name = |n: &str| edit_method(n).unwrap().build(&settings, &model).unwrap().unwrap().name();
    assert_eq!(name("fps"), "forward pass shift (layer 1, eta 500 scale-free)");
    assert_eq!(name("sgd"), "one-step SGD (layer 1, lr 1.5)");
    assert_eq!(name("adam"), "one-step Adam (layer 1, lr 0.011)");
    assert_eq!(name("ft"), "fine-tuning (layer 1, mlp.down, Adam lr 0.0005, 2 steps)");
    let raw = MethodSettings { eta_kind: EtaKind::Raw, eta: 0.24, ..settings.clone() };
    let fps = edit_method("fps").unwrap().build(&raw, &model).unwrap().unwrap();
    assert_eq!(fps.name(), "forward pass shift (layer 1, eta 0.24 raw)");
    // A sweep-only row has no edit method, a method without a step size no sweep method.
    assert!(step_method("fps-scale-free").unwrap().build(&settings, &model).is_err());
    assert!(edit_method("fps-scale-free").is_err());
    assert!(edit_method("ft").unwrap().step_method(&settings).is_err());
}

#[test]
fn the_sweep_rows_are_the_step_size_methods_in_table_order() {
    let labels = |names: &[&str]| -> Vec<String> {
        step_methods_named(names, &MethodSettings::default()).unwrap().iter().map(|m| m.label()).collect()
    };
    assert_eq!(
        labels(&["adam", "fps-scale-free", "sgd", "fps-raw"]),
        ["forward pass shift (raw η)", "forward pass shift (scale-free η)", "one-step SGD", "one-step Adam"]
    );
    assert_eq!(labels(&["fps"]), labels(&["fps-raw"]));
    let starts: Vec<f64> = step_methods_named(&["fps", "fps-scale-free", "sgd", "adam"], &MethodSettings::default())
        .unwrap()
        .iter()
        .map(|m| m.default_start())
        .collect();
    assert_eq!(starts, [0.1, 500.0, 1.0, 1e-3]);
}

#[test]
fn unknown_names_are_refused_with_the_list_of_names() {
    let err = edit_method("rome").unwrap_err().to_string();
    assert!(
        err.contains("unknown edit method \"rome\": expected none, fps, fps-whitened, fps-template, sgd, adam or ft"),
        "{err}"
    );
    let err = step_method("ft").unwrap_err().to_string();
    assert!(
        err.contains("unknown sweep method \"ft\": expected fps (= fps-raw), fps-scale-free, sgd or adam"),
        "{err}"
    );
    assert!(step_methods_named(&["sgd", "rome"], &MethodSettings::default()).is_err());
}
