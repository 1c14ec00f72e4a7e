//! The `backlens` command: the Backward Lens of a prompt and a target, and a benchmark.

use anyhow::{Context, Result};
use backlens::model::Site;
use backlens::{Backlens, CellText, LensOptions, ModelSpec, Report};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "backlens", version, about = "Project language-model gradients into the vocabulary (Backward Lens)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trace prompt → target, print the FF2 table and write SVG, PNG and JSON.
    Lens(LensArgs),
    /// Time every phase of `lens` and report peak memory.
    Bench(BenchArgs),
    /// Edit one fact (forward pass shift, SGD, Adam or fine-tuning): top tokens before and after.
    Edit(backlens::editing::EditArgs),
    /// CounterFact-style evaluation of edit methods (the paper's Tables 1, 6, 7).
    Eval(backlens::editing::EvalArgs),
    /// The layer × learning-rate sweep of the paper's Figure 26: minimum lr of a successful
    /// edit per layer, and perplexity there, for forward pass shift, SGD and Adam.
    SweepLr(backlens::editing::SweepArgs),
    /// Recompute figures of the paper (SVG, PNG, JSON numbers, paper-vs-ours Markdown).
    Reproduce(ReproduceArgs),
}

#[derive(Args)]
struct ReproduceArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Figure number (3-9, 11-25), table-2..table-5, appendix-c, a group name, or `all`;
    /// repeat or comma-separate for several.
    #[arg(long, value_delimiter = ',', required = true)]
    figure: Vec<String>,
    /// A CounterFact-format JSON file (default: the project's data/counterfact-backlens.json).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Number of records drawn from the dataset (the paper: 100).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory.
    #[arg(long, default_value = "backlens-figures")]
    out: PathBuf,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// A GGUF file, a Hugging Face folder, or hf:org/name[@revision]
    /// (default: SmolLM2-135M-Instruct, fetched once into $BACKLENS_HOME).
    #[arg(long)]
    model: Option<String>,
}

#[derive(Args, Clone)]
struct QueryArgs {
    /// The prompt to edit.
    #[arg(long, default_value = "Lionel Messi plays for")]
    prompt: String,
    /// The new target: exactly one token, usually with a leading space.
    #[arg(long, default_value = " Paris")]
    target: String,
    /// Number of top and bottom tokens kept per cell.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Sites to project, comma-separated (mlp.up.input and mlp.down.vjp are always included).
    #[arg(long, value_delimiter = ',')]
    sites: Vec<String>,
    /// Project v/|v| (the normalized logit lens).
    #[arg(long)]
    normalize: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum CellChoice {
    Bottom,
    TopBottom,
}

#[derive(Args)]
struct LensArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// Output directory for JSON, SVG and PNG.
    #[arg(long, default_value = "backlens-out")]
    out: PathBuf,
    /// What the FF2 (mlp.down.vjp) figure shows in each cell.
    #[arg(long, value_enum, default_value = "bottom")]
    cell: CellChoice,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// Repetitions of each phase (the minimum and median are reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

fn main() {
    pin_thread_count();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Lens(args) => {
            let bl = load(&args.model)?;
            let (report, files) = lens(&bl, &args.query, &args.out, args.cell)?;
            print_summary(&bl, &report)?;
            for f in files {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Bench(args) => bench(&args),
        Command::Edit(args) => backlens::editing::run_edit(&args),
        Command::Eval(args) => backlens::editing::run_eval(&args),
        Command::SweepLr(args) => backlens::editing::run_sweep(&args),
        Command::Reproduce(args) => reproduce(&args),
    }
}

fn reproduce(args: &ReproduceArgs) -> Result<()> {
    use backlens::reproduce::{FigureGroup, ReproduceOptions};
    let mut groups = Vec::new();
    for f in &args.figure {
        let more = if f.trim() == "all" { FigureGroup::ALL.to_vec() } else { vec![f.parse::<FigureGroup>()?] };
        for g in more {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    let options = ReproduceOptions { dataset: args.dataset.clone(), limit: args.limit, seed: args.seed };
    // Check the dataset before loading the model, so a bad path fails at once.
    if groups.iter().any(|g| g.needs_sweep()) {
        options.records()?;
    }
    let bl = load(&args.model)?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("tracing {pos}/{len} prompts [{bar:30}] {elapsed} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let reproductions = bl.reproduce(&groups, &options, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    for r in &reproductions {
        println!("== {} ({})\npaper: {}\nours:  {}", r.group, r.group.covers(), r.paper, r.ours);
        for path in r.write(&args.out)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// Without `RAYON_NUM_THREADS`, candle 0.11 recounts the physical cores from /proc on every
/// matmul (~20% of a trace on a 2-core machine). Setting it once, before any thread starts, to
/// the number of cores the process may use removes that cost.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

fn load(args: &ModelArgs) -> Result<Backlens> {
    let spec = match &args.model {
        Some(text) => text.parse()?,
        None => ModelSpec::Default,
    };
    Ok(Backlens::load_spec(&spec)?)
}

fn options(q: &QueryArgs) -> Result<LensOptions> {
    let mut sites = LensOptions::default().sites;
    for s in &q.sites {
        let site: Site = s.trim().parse()?;
        if !sites.contains(&site) {
            sites.push(site);
        }
    }
    Ok(LensOptions { k: q.top_k, sites, normalize: q.normalize })
}

/// The whole `lens` query after loading: analysis, JSON, and both figures in SVG and PNG.
fn lens(bl: &Backlens, q: &QueryArgs, out: &Path, cell: CellChoice) -> Result<(Report, Vec<PathBuf>)> {
    let report = bl.analyze(&q.prompt, &q.target, &options(q)?)?;
    let files = write_outputs(bl, &report, out, cell)?;
    Ok((report, files))
}

/// Writes `lens.json` and the FF2 and FF1 figures (SVG and PNG) into `out`; the figures render
/// in parallel.
fn write_outputs(bl: &Backlens, report: &Report, out: &Path, cell: CellChoice) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    let json = out.join("lens.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let ff2_text = match cell {
        CellChoice::Bottom => CellText::Bottom,
        CellChoice::TopBottom => CellText::TopBottom,
    };
    let figures = [(Site::MLP_DOWN_VJP, ff2_text), (Site::MLP_UP_INPUT, CellText::Top)];
    let written: Vec<Result<Vec<PathBuf>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = figures
            .into_iter()
            .map(|(site, text)| {
                scope.spawn(move || -> Result<Vec<PathBuf>> {
                    let table = bl.figure(report, site, text)?;
                    let mut paths = Vec::new();
                    for (ext, bytes) in [("svg", table.to_svg()?.into_bytes()), ("png", table.to_png()?)] {
                        let path = out.join(format!("{site}.{ext}"));
                        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
                        paths.push(path);
                    }
                    Ok(paths)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("figure thread panicked")).collect()
    });
    let mut files = vec![json];
    for paths in written {
        files.extend(paths?);
    }
    Ok(files)
}

fn print_summary(bl: &Backlens, report: &Report) -> Result<()> {
    println!(
        "model {}  prompt {:?}  target {:?} (id {})",
        report.model, report.prompt, report.target, report.target_id
    );
    println!("tokens {:?}  loss {:.4}  p(target) {:.4}", report.tokens, report.loss, (-report.loss).exp());
    println!();
    print!("{}", bl.terminal_table(report, Site::MLP_DOWN_VJP)?);
    let cells = report.site("mlp.down.vjp")?;
    let last = report.tokens.len() - 1;
    let bottom = bl.lens().vocab_size() - 1;
    let upper = (2 * cells.len()).div_ceil(3)..cells.len();
    let hits = upper.clone().filter(|&l| cells[l][last].target_rank == Some(bottom)).count();
    println!(
        "\n{:?} is the least likely token (rank {bottom}) of LL(δ_n) of mlp.down at the last token in {hits} of the {} upper-third layers ({}..{}).",
        report.target,
        upper.len(),
        upper.start,
        upper.end - 1
    );
    Ok(())
}

fn bench(args: &BenchArgs) -> Result<()> {
    let n = args.repeat.max(1);
    let options = options(&args.query)?;
    let q = &args.query;
    let out = std::env::temp_dir().join(format!("backlens-bench-{}", std::process::id()));

    let mut rows: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut time = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        let mut runs = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            f()?;
            runs.push(start.elapsed());
        }
        rows.push((name, runs));
        Ok(())
    };
    let bl = load(&args.model)?; // fetches once, outside the timings
    time("model load (GGUF → f32)", &mut || load(&args.model).map(drop))?;
    time("tokenizer (prompt + target)", &mut || {
        bl.model().tokenizer().encode(&q.prompt)?;
        bl.model().tokenizer().single_token(&q.target)?;
        Ok(())
    })?;
    time("forward + backward with probes", &mut || {
        bl.trace(&q.prompt, &q.target, &options).map(drop).map_err(Into::into)
    })?;
    let trace = bl.trace(&q.prompt, &q.target, &options)?;
    time("projection: sites × layers × tokens", &mut || {
        bl.report(&q.prompt, &q.target, &trace, &options).map(drop).map_err(Into::into)
    })?;
    let report = bl.report(&q.prompt, &q.target, &trace, &options)?;
    time("output files (JSON, 2 SVG, 2 PNG)", &mut || write_outputs(&bl, &report, &out, CellChoice::Bottom).map(drop))?;
    time("whole `lens` query (load → JSON, SVG, PNG)", &mut || {
        let bl = load(&args.model)?;
        lens(&bl, q, &out, CellChoice::Bottom).map(drop)
    })?;
    let _ = std::fs::remove_dir_all(&out);

    let projected = options.sites.len() * bl.model().n_layers() * trace.n_tokens();
    println!(
        "backlens bench: {:?} → {:?}, {} tokens, {} sites, {projected} projected vectors, {n} runs",
        q.prompt,
        q.target,
        trace.n_tokens(),
        options.sites.len()
    );
    println!("{:<44} {:>10} {:>10}", "phase", "min ms", "median ms");
    for (name, mut runs) in rows {
        runs.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("{name:<44} {:>10.1} {:>10.1}", ms(runs[0]), ms(runs[runs.len() / 2]));
    }
    if let Some(peak) = peak_rss_mb() {
        println!("peak resident memory (VmHWM): {peak:.0} MB");
    }
    Ok(())
}

/// Peak resident set size of this process from /proc (Linux only).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
