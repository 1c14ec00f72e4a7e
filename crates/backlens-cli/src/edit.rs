//! `backlens edit`, `backlens eval` and `backlens sweep-lr`: the editing methods of
//! `backlens-edit` (forward pass shift, one-step SGD and Adam, fine-tuning) from the command line.

use crate::common::{progress_bar, report_to, ModelArgs};
use anyhow::{bail, Context, Result};
use backlens::edit::corpus::{default_corpus_path, load_corpus};
use backlens::edit::defaults::{
    DEFAULT_ADAM_LR, DEFAULT_ETA, DEFAULT_ETA_KIND, DEFAULT_FT_LR, DEFAULT_FT_STEPS, DEFAULT_KEY_SHRINKAGE,
    DEFAULT_LAYER, DEFAULT_SGD_LR,
};
use backlens::edit::eval::markdown_table;
use backlens::edit::registry::{self, MethodEntry};
use backlens::edit::sweep::{sweep, SweepOptions, SweepReport};
use backlens::edit::{evaluate, EditGuard, EditRequest, EtaKind, EvalOptions, EvalReport, MethodSettings};
use backlens::editing::{default_sweep_layers, prediction, sweep_charts};
use backlens::model::LanguageModel;
use backlens::ModelSpec;
use candle_core::Tensor;
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Parses a step size (`--eta`, `--sgd-lr`, `--adam-lr`, `--ft-lr`): a finite number > 0.
/// NaN, infinities, zero and negative steps are refused here, at parsing, before any model is
/// loaded (a non-finite edited weight is refused again by `EditGuard::apply`).
fn positive_step(text: &str) -> std::result::Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|e| format!("{text:?} is not a number ({e})"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("{text:?}: a step size must be a finite number greater than 0"));
    }
    Ok(value)
}

/// `--method`'s values: the names of the registry's edit methods, with their help.
fn method_names() -> PossibleValuesParser {
    PossibleValuesParser::new(registry::edit_methods().map(|e| PossibleValue::new(e.name).help(e.help)))
}

/// The registry row of a name `--method` accepted.
fn method_entry(name: &str) -> Result<&'static MethodEntry> {
    Ok(registry::edit_method(name)?)
}

/// `sweep-lr --methods`' help, from the registry: each name with its method's label.
fn sweep_methods_help() -> String {
    let names: Vec<String> = registry::step_methods()
        .map(|e| {
            let label = e.step_method(&MethodSettings::default()).map_or_else(|_| e.help.to_string(), |m| m.label());
            match e.sweep_aliases {
                [] => format!("{} ({label})", e.name),
                aliases => format!("{} (= {}; {label})", e.name, aliases.join(", ")),
            }
        })
        .collect();
    format!("Methods, comma-separated: {}", names.join(", "))
}

/// How forward pass shift's η is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EtaKindArg {
    /// η/(|x_n|²|Dᵀ[t]|²): the FF2 output's dot product with the target embedding grows by η.
    ScaleFree,
    /// The paper's lr: FF2 += η Dᵀ[t] x_nᵀ (GPT2-xl: 0.24).
    Raw,
}

impl From<EtaKind> for EtaKindArg {
    fn from(kind: EtaKind) -> EtaKindArg {
        match kind {
            EtaKind::ScaleFree => EtaKindArg::ScaleFree,
            EtaKind::Raw => EtaKindArg::Raw,
        }
    }
}

impl From<EtaKindArg> for EtaKind {
    fn from(kind: EtaKindArg) -> EtaKind {
        match kind {
            EtaKindArg::ScaleFree => EtaKind::ScaleFree,
            EtaKindArg::Raw => EtaKind::Raw,
        }
    }
}

/// The settings of every method: the flags that fill [`MethodSettings`], with its defaults.
#[derive(Args, Clone, Debug)]
pub struct MethodArgs {
    /// The layer whose MLP is edited (0-based).
    #[arg(long, default_value_t = DEFAULT_LAYER)]
    pub layer: usize,
    /// Forward pass shift's η.
    #[arg(long, default_value_t = DEFAULT_ETA, value_parser = positive_step)]
    pub eta: f64,
    /// How η is read.
    #[arg(long, value_enum, default_value_t = EtaKindArg::from(DEFAULT_ETA_KIND))]
    pub eta_kind: EtaKindArg,
    /// Edit with forward pass shift even when the target already is the prediction (the
    /// authors skip such requests).
    #[arg(long)]
    pub no_skip: bool,
    /// fps-whitened and fps-template: shrinkage λ ∈ (0, 1] of the key's second moment towards
    /// the identity (1 = the paper's key).
    #[arg(long, default_value_t = DEFAULT_KEY_SHRINKAGE)]
    pub key_shrinkage: f64,
    /// fps-whitened: text for the key's second moment (default: data/key-corpus.txt).
    #[arg(long)]
    pub key_corpus: Option<PathBuf>,
    /// Learning rate of one-step SGD (default: the smallest lr editing ≥ 95% of 20 records at
    /// layer 23, rounded up; see `backlens sweep-lr`).
    #[arg(long, default_value_t = DEFAULT_SGD_LR, value_parser = positive_step)]
    pub sgd_lr: f64,
    /// Learning rate of one-step Adam (default chosen like --sgd-lr).
    #[arg(long, default_value_t = DEFAULT_ADAM_LR, value_parser = positive_step)]
    pub adam_lr: f64,
    /// Fine-tuning: Adam learning rate (paper: 5e-4).
    #[arg(long, default_value_t = DEFAULT_FT_LR, value_parser = positive_step)]
    pub ft_lr: f64,
    /// Fine-tuning: steps (paper: 25).
    #[arg(long, default_value_t = DEFAULT_FT_STEPS)]
    pub ft_steps: usize,
    /// Fine-tuning: the layer (default: --layer).
    #[arg(long)]
    pub ft_layer: Option<usize>,
    /// Fine-tuning: train mlp.gate, mlp.up and mlp.down instead of mlp.down alone.
    #[arg(long)]
    pub ft_whole_mlp: bool,
}

impl MethodArgs {
    /// The settings these flags give.
    pub fn settings(&self) -> MethodSettings {
        MethodSettings {
            layer: self.layer,
            eta: self.eta,
            eta_kind: self.eta_kind.into(),
            no_skip: self.no_skip,
            key_shrinkage: self.key_shrinkage,
            key_corpus: self.key_corpus.clone(),
            sgd_lr: self.sgd_lr,
            adam_lr: self.adam_lr,
            ft_lr: self.ft_lr,
            ft_steps: self.ft_steps,
            ft_layer: self.ft_layer,
            ft_whole_mlp: self.ft_whole_mlp,
        }
    }
}

/// `backlens edit`: one edit, the prediction before and after.
#[derive(Args, Debug)]
pub struct EditArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt to edit.
    #[arg(long, default_value = "Lionel Messi plays for")]
    pub prompt: String,
    /// The new target, usually with a leading space (several tokens allowed; forward pass shift
    /// uses the first).
    #[arg(long, default_value = " Paris")]
    pub target: String,
    /// The part of --prompt that names the subject (fps-template whitens against the prompt with
    /// other subjects in its place).
    #[arg(long)]
    pub subject: Option<String>,
    /// The method.
    #[arg(long, value_parser = method_names(), default_value = "fps")]
    pub method: String,
    #[command(flatten)]
    pub settings: MethodArgs,
    /// Number of top tokens shown before and after (1 to the vocabulary size).
    #[arg(long, default_value_t = 5, value_parser = crate::common::at_least_one)]
    pub top_k: usize,
    /// Save the edited weight matrices as safetensors (names `layers.<l>.<module>.weight`,
    /// layout (d_out, d_in)). Refused, before the edit is computed, when the path is one of the
    /// model's files or exists and is not a regular file; an existing file only with --force.
    /// Written atomically (a temporary file in the same folder, then renamed).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Let --save replace an existing regular file (never the model's own files).
    #[arg(long, requires = "save")]
    pub force: bool,
}

/// `backlens eval`: CounterFact-style evaluation, one edit per record, restored after each.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Methods, comma-separated; each gives one table row.
    #[arg(long, value_parser = method_names(), value_delimiter = ',', default_value = "none,fps")]
    pub method: Vec<String>,
    #[command(flatten)]
    pub settings: MethodArgs,
    /// A CounterFact-format dataset (JSON array or JSON lines; the original release works too).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Evaluate a seeded sample of this many records (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// New tokens per greedy generation for the n-gram entropy (0: no fluency measure).
    #[arg(long, default_value_t = 0)]
    pub generation_tokens: usize,
    /// Measure perplexity on the corpus after each edit.
    #[arg(long)]
    pub perplexity: bool,
    /// The perplexity corpus (default: data/perplexity-corpus.txt).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Measure n-gram entropy and perplexity only for the first N records (they dominate the cost).
    #[arg(long)]
    pub fluency_records: Option<usize>,
    /// Output directory for eval.json and eval.md.
    #[arg(long, default_value = "backlens-out")]
    pub out: PathBuf,
}

fn show(model: &dyn LanguageModel, label: &str, prompt: &[u32], target: u32, k: usize) -> Result<()> {
    let (top, rank, p) = prediction(model, prompt, target, k)?;
    let tok = model.tokenizer();
    let list: Vec<String> =
        top.iter().map(|&(id, p)| Ok(format!("{:?} {p:.3}", tok.decode(&[id])?))).collect::<Result<_>>()?;
    println!("{label:<7} top-{k}: {}", list.join(", "));
    println!("{:<7} target {:?}: rank {rank}, p {p:.4}", "", tok.decode(&[target])?);
    Ok(())
}

/// Runs `backlens edit`.
pub fn run_edit(args: &EditArgs) -> Result<()> {
    // Before anything is loaded or computed: a refused --save costs nothing.
    if let Some(path) = &args.save {
        check_save_path(path, &model_files(&args.model)?, args.force)?;
    }
    let bl = args.model.load()?;
    let mut model = bl.model().boxed_clone();
    let mut request = EditRequest::from_text(model.tokenizer(), &args.prompt, &args.target)?;
    let entry = method_entry(&args.method)?;
    match &args.subject {
        Some(subject) if !subject.is_empty() && args.prompt.contains(subject.as_str()) => {
            request = request.with_template(&args.prompt.replacen(subject.as_str(), "{}", 1));
        }
        Some(subject) => bail!("--subject {subject:?} does not occur in --prompt {:?}", args.prompt),
        None if entry.needs_template => bail!(
            "--method {} needs --subject, the part of --prompt that names the subject (e.g. --subject \"Lionel Messi\")",
            entry.name
        ),
        None => {}
    }
    let Some(method) = entry.build(&args.settings.settings(), model.as_ref())? else {
        bail!("--method {} makes no edit", entry.name)
    };
    println!("model {}  prompt {:?}  target {:?} (ids {:?})", model.name(), args.prompt, args.target, request.target);
    println!("method {}", method.name());
    show(model.as_ref(), "before", &request.prompt, request.first_target(), args.top_k)?;
    let start = std::time::Instant::now();
    let edit = method.compute(model.as_ref(), std::slice::from_ref(&request))?;
    let seconds = start.elapsed().as_secs_f64();
    if edit.is_empty() {
        println!("no edit: the target already is the prediction (use --no-skip to edit anyway)");
        return Ok(());
    }
    let mut norms = Vec::new();
    for u in &edit.updates {
        let change = (&u.weight - model.weight(u.layer, u.module)?)?;
        norms.push(format!(
            "layers.{}.{}: |ΔW|_F {:.4}",
            u.layer,
            u.module.name(),
            change.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt()
        ));
    }
    let guard = EditGuard::apply(model.as_mut(), &edit)?;
    show(guard.model(), "after", &request.prompt, request.first_target(), args.top_k)?;
    println!("edit computed in {seconds:.2} s ({} step(s)); {}", edit.steps, norms.join("; "));
    if let Some(path) = &args.save {
        let tensors: std::collections::HashMap<String, Tensor> = edit
            .updates
            .iter()
            .map(|u| (format!("layers.{}.{}.weight", u.layer, u.module.name()), u.weight.clone()))
            .collect();
        save_atomically(&tensors, path)?;
        println!("wrote {}", path.display());
    }
    guard.restore()?;
    Ok(())
}

/// The files `--model` is read from: the default model's cached GGUF, a GGUF file, every file of
/// a Hugging Face folder. A Hub model's files live in the Hub cache under content-addressed
/// names nobody passes to --save by accident; they are not listed.
fn model_files(args: &ModelArgs) -> Result<Vec<PathBuf>> {
    let spec = match &args.model {
        Some(text) => text.parse()?,
        None => ModelSpec::Default,
    };
    let root = match spec {
        ModelSpec::Default => backlens::model::default_model::cached_path(),
        ModelSpec::Path(path) => path,
        ModelSpec::Hub(_) => return Ok(Vec::new()),
    };
    if root.is_dir() {
        let entries = std::fs::read_dir(&root).with_context(|| format!("cannot list {}", root.display()))?;
        Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
    } else {
        Ok(vec![root])
    }
}

/// Whether `a` and `b` (both existing) are the same file: same device and inode on Unix (hard
/// links and symbolic links included), same canonical path elsewhere.
fn same_file(a: &std::fs::Metadata, a_path: &Path, b_path: &Path) -> bool {
    let Ok(b) = std::fs::metadata(b_path) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = a_path;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        matches!((a_path.canonicalize(), b_path.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

/// Refuses a `--save` path that would destroy something: one of the model's files (the model
/// would be lost), anything that is not a regular file (a folder, a device node, a pipe: the
/// save renames a temporary file over the path), or an existing file without `--force`.
fn check_save_path(path: &Path, model_files: &[PathBuf], force: bool) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("--save {}: cannot inspect the path ({e}); choose another path", path.display()),
    };
    if !meta.is_file() {
        bail!(
            "--save {} exists and is not a regular file (a folder, a device or a pipe); choose a new file path",
            path.display()
        );
    }
    if let Some(model) = model_files.iter().find(|m| same_file(&meta, path, m)) {
        bail!(
            "--save {} is the model file being edited ({}); saving would destroy the model: choose another path",
            path.display(),
            model.display()
        );
    }
    if !force {
        bail!("--save {} already exists; pass --force to overwrite it, or choose another path", path.display());
    }
    Ok(())
}

/// Writes `tensors` as safetensors to `path` atomically: into a temporary file in the same
/// folder, renamed over `path` once complete, so `path` never holds a partial file and a failed
/// write leaves nothing behind.
fn save_atomically(tensors: &std::collections::HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!("cannot write {}: cannot create a temporary file in {}", path.display(), dir.display())
    })?;
    candle_core::safetensors::save(tensors, temp.path()).with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Runs `backlens eval`: writes `eval.json` and `eval.md` into `--out` and prints the table.
pub fn run_eval(args: &EvalArgs) -> Result<()> {
    let bl = args.model.load()?;
    let mut model = bl.model().boxed_clone();
    let dataset = args.dataset.clone().unwrap_or_else(backlens::data::default_dataset_path);
    let all = backlens::data::load(&dataset)?;
    let records = match args.limit {
        Some(n) => backlens::data::sample(&all, n, args.seed),
        None => all,
    };
    let corpus = if args.perplexity {
        let path = args.corpus.clone().unwrap_or_else(default_corpus_path);
        Some(load_corpus(model.as_ref(), &path, 256)?)
    } else {
        None
    };
    let options = EvalOptions {
        generation_tokens: args.generation_tokens,
        fluency_records: args.fluency_records,
        perplexity_corpus: corpus,
    };
    let mut reports: Vec<EvalReport> = Vec::new();
    let settings = args.settings.settings();
    for name in &args.method {
        let method = method_entry(name)?.build(&settings, model.as_ref())?;
        let label = method.as_ref().map_or_else(|| "original model".to_string(), |m| m.name());
        let bar = progress_bar(&label);
        let report = evaluate(model.as_mut(), method.as_deref(), &records, &options, &mut report_to(&bar))?;
        bar.finish_and_clear();
        reports.push(report);
    }
    let rows: Vec<_> = reports.iter().map(|r| r.summary.clone()).collect();
    let table = markdown_table(&rows);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let json = serde_json::json!({
        "model": model.name(),
        "dataset": dataset.display().to_string(),
        "records": records.len(),
        "seed": args.seed,
        "generation_tokens": args.generation_tokens,
        "fluency_records": args.fluency_records,
        "perplexity": args.perplexity,
        "reports": reports,
    });
    let (json_path, md_path) = (args.out.join("eval.json"), args.out.join("eval.md"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let md = format!(
        "{} on {} ({} records, seed {}); accuracies and n-gram entropy ×100, mean ± population std over records.\n\n{table}",
        model.name(),
        dataset.display(),
        records.len(),
        args.seed
    );
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    print!("{table}");
    println!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}

/// `backlens sweep-lr`: the layer × learning-rate sweep of the paper's Figure 26.
#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Methods, comma-separated (the help is generated from the registry).
    #[arg(long, value_delimiter = ',', default_value = "fps,sgd,adam", help = sweep_methods_help())]
    pub methods: Vec<String>,
    /// Edited layers, comma-separated (default: every `--layer-step`-th layer from 0, and the last).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Spacing of the default layers.
    #[arg(long, default_value_t = 3)]
    pub layer_step: usize,
    /// A CounterFact-format dataset (default: the project's).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Records: a seeded sample of this many (the paper: 50).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The search stops when the minimum step is known within this ratio.
    #[arg(long, default_value_t = 1.1)]
    pub resolution: f64,
    /// Skip the perplexity after each minimum-step edit (Figure 26b).
    #[arg(long)]
    pub no_perplexity: bool,
    /// Measure the perplexity only for the first N records of each layer and method (one pass
    /// over the corpus per edit; default: every record).
    #[arg(long)]
    pub perplexity_records: Option<usize>,
    /// The perplexity corpus (default: data/perplexity-corpus.txt).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Output directory for sweep.json, sweep.md and the figures.
    #[arg(long, default_value = "backlens-out/sweep")]
    pub out: PathBuf,
    /// Compute nothing: redraw sweep.md and the figures from a sweep.json written earlier.
    #[arg(long)]
    pub from_json: Option<PathBuf>,
}

/// Runs `backlens sweep-lr`: writes `sweep.json`, `sweep.md` and `sweep-{lr,perplexity,spread}.{svg,png}`.
pub fn run_sweep(args: &SweepArgs) -> Result<()> {
    if let Some(path) = &args.from_json {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let report: SweepReport = serde_json::from_value(json["report"].clone())
            .with_context(|| format!("{} holds no sweep report", path.display()))?;
        let header = format!(
            "Figure 26 analog: {} ({} records, seed {}), redrawn from {}.",
            report.model,
            report.records,
            json["seed"],
            path.display()
        );
        return write_sweep(&report, &header, None, &args.out);
    }
    let methods = registry::step_methods_named(&args.methods, &MethodSettings::default())?;
    let bl = args.model.load()?;
    let mut model = bl.model().boxed_clone();
    let layers = if args.layers.is_empty() {
        default_sweep_layers(model.n_layers(), args.layer_step)
    } else {
        args.layers.clone()
    };
    let dataset = args.dataset.clone().unwrap_or_else(backlens::data::default_dataset_path);
    let records = backlens::data::sample(&backlens::data::load(&dataset)?, args.limit, args.seed);
    let corpus = if args.no_perplexity {
        None
    } else {
        Some(load_corpus(model.as_ref(), &args.corpus.clone().unwrap_or_else(default_corpus_path), 256)?)
    };
    let options = SweepOptions {
        layers,
        methods,
        resolution: args.resolution,
        perplexity_corpus: corpus,
        perplexity_records: args.perplexity_records,
        ..SweepOptions::default()
    };
    let bar = progress_bar("sweep");
    let report = sweep(model.as_mut(), &records, &options, &mut report_to(&bar))?;
    bar.finish_and_clear();
    let json = serde_json::json!({
        "dataset": dataset.display().to_string(),
        "seed": args.seed,
        "resolution": args.resolution,
        "perplexity_records": args.perplexity_records,
        "report": report,
    });
    let header = format!(
        "Figure 26 analog: {} on {} ({} records, seed {}); {:.0} s.",
        report.model,
        dataset.display(),
        report.records,
        args.seed,
        report.seconds
    );
    write_sweep(&report, &header, Some(&json), &args.out)
}

/// Writes `sweep.json` (when `json` is given), `sweep.md` and the charts into `out`.
fn write_sweep(
    report: &SweepReport,
    header: &str,
    json: Option<&serde_json::Value>,
    out: &std::path::Path,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    if let Some(json) = json {
        let json_path = out.join("sweep.json");
        std::fs::write(&json_path, serde_json::to_string_pretty(json)?)
            .with_context(|| format!("cannot write {}", json_path.display()))?;
        println!("wrote {}", json_path.display());
    }
    let table = report.markdown();
    let md = format!(
        "{header} Per layer and method: the minimum step of a successful edit (median over records; (k/n): found for k of n \
         records), the std of its log10 over records, the step reaching 95% efficacy, and the perplexity after the \
         minimum-step edit.\n\n{table}"
    );
    let md_path = out.join("sweep.md");
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    print!("{table}");
    println!("wrote {}", md_path.display());
    for (chart, name) in sweep_charts(report).iter().zip(["sweep-lr", "sweep-perplexity", "sweep-spread"]) {
        if name == "sweep-perplexity" && report.base_perplexity.is_none() {
            continue;
        }
        for ext in ["svg", "png"] {
            let path = out.join(format!("{name}.{ext}"));
            if ext == "svg" { chart.write_svg(&path) } else { chart.write_png(&path) }
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{EditArgs, EvalArgs, SweepArgs};
    use backlens::edit::registry;
    use backlens::edit::MethodSettings;
    use clap::{Args, Command, FromArgMatches};

    fn parse<T: Args + FromArgMatches>(args: &[&str]) -> Result<T, clap::Error> {
        let matches = T::augment_args(Command::new("backlens")).try_get_matches_from(args)?;
        T::from_arg_matches(&matches)
    }

    #[test]
    fn every_registry_name_parses_to_its_row() {
        let names: Vec<&str> = registry::edit_methods().map(|e| e.name).collect();
        let eval: EvalArgs = parse(&["backlens", "--method", &names.join(",")]).unwrap();
        assert_eq!(eval.method, names);
        for name in &names {
            let edit: EditArgs = parse(&["backlens", "--method", name]).unwrap();
            assert_eq!(super::method_entry(&edit.method).unwrap().name, *name);
        }
        let sweep: SweepArgs = parse(&["backlens"]).unwrap();
        assert_eq!(sweep.methods, ["fps", "sgd", "adam"]);
        for e in registry::step_methods() {
            for name in std::iter::once(&e.name).chain(e.sweep_aliases) {
                let methods = registry::step_methods_named(&[name], &MethodSettings::default()).unwrap();
                assert_eq!(methods.len(), 1, "{name}");
            }
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_tables_names() {
        let err = parse::<EditArgs>(&["backlens", "--method", "rome"]).unwrap_err().to_string();
        for e in registry::edit_methods() {
            assert!(err.contains(e.name), "{err}");
        }
        let err = registry::step_methods_named(&["rome"], &MethodSettings::default()).unwrap_err().to_string();
        assert!(
            err.contains("unknown sweep method \"rome\": expected fps (= fps-raw), fps-scale-free, sgd or adam"),
            "{err}"
        );
    }

    #[test]
    fn the_flags_default_to_the_documented_settings() {
        let edit: EditArgs = parse(&["backlens"]).unwrap();
        assert_eq!(edit.settings.settings(), MethodSettings::default());
        assert_eq!(edit.method, "fps");
    }
}
