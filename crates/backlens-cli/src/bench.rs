//! `backlens bench`: the phases of `lens` timed, and peak memory.

use crate::common::{ModelArgs, QueryArgs};
use crate::lens::{lens, write_outputs, CellChoice};
use anyhow::Result;
use clap::Args;
use std::time::{Duration, Instant};

/// `backlens bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// Repetitions of each phase (the minimum and median are reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

/// Runs `backlens bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let n = args.repeat.max(1);
    let options = args.query.options()?;
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
    let bl = args.model.load()?; // fetches once, outside the timings
    time("model load (GGUF → f32)", &mut || args.model.load().map(drop))?;
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
        let bl = args.model.load()?;
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
