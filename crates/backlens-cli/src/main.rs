//! The `backlens` command: thin glue over the backlens libraries. Every subcommand is one module
//! here with its clap `Args` and a `run` function; the computations are library calls, and only
//! this crate prints, parses arguments or draws progress bars.

mod bench;
mod common;
mod edit;
mod lens;
mod reproduce;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "backlens", version, about = "Project language-model gradients into the vocabulary (Backward Lens)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trace prompt → target, print the FF2 table and write SVG, PNG and JSON.
    Lens(lens::LensArgs),
    /// Time every phase of `lens` and report peak memory.
    Bench(bench::BenchArgs),
    /// Edit one fact (forward pass shift, SGD, Adam or fine-tuning): top tokens before and after.
    Edit(edit::EditArgs),
    /// CounterFact-style evaluation of edit methods (the paper's Tables 1, 6, 7).
    Eval(edit::EvalArgs),
    /// The layer × learning-rate sweep of the paper's Figure 26: minimum lr of a successful
    /// edit per layer, and perplexity there, for forward pass shift, SGD and Adam.
    SweepLr(edit::SweepArgs),
    /// Recompute figures of the paper (SVG, PNG, JSON numbers, paper-vs-ours Markdown).
    Reproduce(reproduce::ReproduceArgs),
}

fn main() {
    pin_thread_count();
    let result = match Cli::parse().command {
        Command::Lens(args) => lens::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Edit(args) => edit::run_edit(&args),
        Command::Eval(args) => edit::run_eval(&args),
        Command::SweepLr(args) => edit::run_sweep(&args),
        Command::Reproduce(args) => reproduce::run(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
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
