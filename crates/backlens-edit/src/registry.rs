//! The one list of edit methods: [`METHODS`], one row per method with its command-line name, a
//! one-line help, its constructor from [`MethodSettings`] and, for methods with a step size, the
//! [`StepSizeMethod`] the learning-rate [`sweep`](crate::sweep) probes. `backlens edit | eval |
//! sweep-lr` parse method names, print their help and report unknown names from this table.
//!
//! Adding a method: write it (a type implementing [`EditMethod`], and [`StepSizeMethod`] if its
//! update is `W + s U` on one `mlp.down`), add its settings to [`MethodSettings`] if it has new
//! ones, and add one row here.

use crate::corpus::default_key_corpus_path;
use crate::defaults::MethodSettings;
use crate::error::{EditError, Result};
use crate::eta::EtaKind;
use crate::keys::{Key, LayerWhitener, TemplateContrast};
use crate::methods::{AdamConfig, EditMethod, FineTune, ForwardPassShift, OneStepAdam, OneStepSgd};
use crate::step::StepSizeMethod;
use backlens_model::{LanguageModel, Module};
use std::sync::Arc;

/// Builds a row's method for `backlens edit`/`eval` from the settings, on `model` (a whitened
/// key is estimated here); `None` for the unedited model.
pub type BuildMethod = fn(&MethodSettings, &dyn LanguageModel) -> Result<Option<Box<dyn EditMethod>>>;

/// Builds a row's step-size method for the sweep from the settings (the sweep replaces its layer
/// and step size).
pub type BuildStepMethod = fn(&MethodSettings) -> Arc<dyn StepSizeMethod>;

/// One edit method of the table.
#[derive(Debug, Clone, Copy)]
pub struct MethodEntry {
    /// The command-line name (`--method`, `--methods`).
    pub name: &'static str,
    /// One line of help for `--help`.
    pub help: &'static str,
    /// The method for `backlens edit`/`eval`; `None`: only in the sweep.
    pub build: Option<BuildMethod>,
    /// The method for `backlens sweep-lr`; `None`: it has no step size and is not swept.
    pub step: Option<BuildStepMethod>,
    /// Other names `sweep-lr --methods` accepts for this row.
    pub sweep_aliases: &'static [&'static str],
    /// The edit needs the prompt's template (`backlens edit --subject`).
    pub needs_template: bool,
}

/// Every edit method, in the order of tables and legends.
pub const METHODS: &[MethodEntry] = &[
    MethodEntry {
        name: "none",
        help: "no edit: the original model's row",
        build: Some(|_, _| Ok(None)),
        step: None,
        sweep_aliases: &[],
        needs_template: false,
    },
    MethodEntry {
        name: "fps",
        help: "forward pass shift (the paper's Section 7) with the key x_n; in sweep-lr with the paper's raw η",
        build: Some(|s, _| Ok(Some(Box::new(fps(s, Key::Input))))),
        step: Some(|s| Arc::new(sweep_fps(s, EtaKind::Raw))),
        sweep_aliases: &["fps-raw"],
        needs_template: false,
    },
    MethodEntry {
        name: "fps-scale-free",
        help: "sweep-lr only: forward pass shift with the scale-free η",
        build: None,
        step: Some(|s| Arc::new(sweep_fps(s, EtaKind::ScaleFree))),
        sweep_aliases: &[],
        needs_template: false,
    },
    MethodEntry {
        name: "fps-whitened",
        help: "forward pass shift with ROME's whitened key ∝ C_λ⁻¹x_n, C the second moment of FF2 inputs on \
               --key-corpus (beyond the paper: generic text receives less of the shift)",
        build: Some(|s, m| {
            let corpus = s.key_corpus.clone().unwrap_or_else(default_key_corpus_path);
            let whitener = LayerWhitener::from_corpus(m, s.layer, &corpus, s.key_shrinkage)?;
            Ok(Some(Box::new(fps(s, Key::Whitened(Arc::new(whitener))))))
        }),
        step: None,
        sweep_aliases: &[],
        needs_template: false,
    },
    MethodEntry {
        name: "fps-template",
        help: "forward pass shift with the template-contrast key ∝ C_λ⁻¹x_n, C from the prompt's template filled \
               with 40 invented subjects (beyond the paper: other subjects asked the same question receive much \
               less of the shift)",
        build: Some(|s, _| {
            Ok(Some(Box::new(fps(s, Key::TemplateContrast(Arc::new(TemplateContrast::new(s.key_shrinkage)))))))
        }),
        step: None,
        sweep_aliases: &[],
        needs_template: true,
    },
    MethodEntry {
        name: "sgd",
        help: "one SGD step on mlp.down",
        build: Some(|s, _| Ok(Some(Box::new(OneStepSgd { layer: s.layer, lr: s.sgd_lr })))),
        step: Some(|s| Arc::new(OneStepSgd { layer: s.layer, lr: s.sgd_lr })),
        sweep_aliases: &[],
        needs_template: false,
    },
    MethodEntry {
        name: "adam",
        help: "one Adam step on mlp.down",
        build: Some(|s, _| Ok(Some(Box::new(OneStepAdam::new(s.layer, s.adam_lr))))),
        step: Some(|s| Arc::new(OneStepAdam::new(s.layer, s.adam_lr))),
        sweep_aliases: &[],
        needs_template: false,
    },
    MethodEntry {
        name: "ft",
        help: "fine-tuning one MLP layer with Adam (the paper's FT rows)",
        build: Some(|s, _| Ok(Some(Box::new(fine_tune(s))))),
        step: None,
        sweep_aliases: &[],
        needs_template: false,
    },
];

/// Forward pass shift from the settings with `key`.
fn fps(s: &MethodSettings, key: Key) -> ForwardPassShift {
    ForwardPassShift { layer: s.layer, eta: s.fps_eta(), skip_if_argmax: !s.no_skip, key }
}

/// The sweep's forward pass shift: the paper's key, η of `kind`.
fn sweep_fps(s: &MethodSettings, kind: EtaKind) -> ForwardPassShift {
    ForwardPassShift { layer: s.layer, eta: kind.eta(s.eta), skip_if_argmax: !s.no_skip, key: Key::Input }
}

/// The fine-tuning baseline from the settings.
fn fine_tune(s: &MethodSettings) -> FineTune {
    let mut ft = FineTune::paper(s.ft_layer.unwrap_or(s.layer));
    ft.adam = AdamConfig::with_lr(s.ft_lr);
    ft.steps = s.ft_steps;
    if s.ft_whole_mlp {
        ft.modules = vec![Module::MlpGate, Module::MlpUp, Module::MlpDown];
    }
    ft
}

/// The rows `backlens edit`/`eval` accept, in table order.
pub fn edit_methods() -> impl Iterator<Item = &'static MethodEntry> {
    METHODS.iter().filter(|e| e.build.is_some())
}

/// The rows `backlens sweep-lr` accepts (the methods with a step size), in table order.
pub fn step_methods() -> impl Iterator<Item = &'static MethodEntry> {
    METHODS.iter().filter(|e| e.step.is_some())
}

/// `a, b or c`.
fn one_of(names: &[String]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// The row of an edit method for `backlens edit`/`eval`; the error lists every name.
pub fn edit_method(name: &str) -> Result<&'static MethodEntry> {
    edit_methods().find(|e| e.name == name).ok_or_else(|| {
        let names: Vec<String> = edit_methods().map(|e| e.name.to_string()).collect();
        EditError::Setting(format!("unknown edit method {name:?}: expected {}", one_of(&names)))
    })
}

/// The row of a sweep method by name or alias; the error lists every name (and alias).
pub fn step_method(name: &str) -> Result<&'static MethodEntry> {
    step_methods().find(|e| e.name == name || e.sweep_aliases.contains(&name)).ok_or_else(|| {
        let names: Vec<String> = step_methods()
            .map(|e| match e.sweep_aliases {
                [] => e.name.to_string(),
                aliases => format!("{} (= {})", e.name, aliases.join(", ")),
            })
            .collect();
        EditError::Setting(format!("unknown sweep method {name:?}: expected {}", one_of(&names)))
    })
}

impl MethodEntry {
    /// This row's method for `backlens edit`/`eval` with `settings` on `model` (`None` for the
    /// unedited model); an error for a sweep-only row.
    pub fn build(&self, settings: &MethodSettings, model: &dyn LanguageModel) -> Result<Option<Box<dyn EditMethod>>> {
        let build = self
            .build
            .ok_or_else(|| EditError::Setting(format!("{} is a method of the learning-rate sweep only", self.name)))?;
        build(settings, model)
    }

    /// This row's step-size method for the sweep; an error for a method without a step size.
    pub fn step_method(&self, settings: &MethodSettings) -> Result<Arc<dyn StepSizeMethod>> {
        let step = self.step.ok_or_else(|| EditError::Setting(format!("{} has no step size to sweep", self.name)))?;
        Ok(step(settings))
    }
}

/// The sweep methods named in `names` (names or aliases), in table order whatever the order of
/// `names` (the sweep's tables and legends follow it).
pub fn step_methods_named<S: AsRef<str>>(
    names: &[S],
    settings: &MethodSettings,
) -> Result<Vec<Arc<dyn StepSizeMethod>>> {
    let mut rows = names.iter().map(|n| step_method(n.as_ref())).collect::<Result<Vec<_>>>()?;
    rows.sort_by_key(|e| METHODS.iter().position(|m| m.name == e.name));
    rows.into_iter().map(|e| e.step_method(settings)).collect()
}
