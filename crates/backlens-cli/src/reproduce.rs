//! `backlens reproduce`: recompute figure groups of the paper and write them.

use crate::common::{progress_bar, report_to, ModelArgs};
use anyhow::Result;
use backlens_reproduce::{ReproduceOptions, GROUPS};
use clap::Args;
use std::path::PathBuf;

/// `backlens reproduce`.
#[derive(Args)]
pub struct ReproduceArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Which figures: generated from `backlens_reproduce::GROUPS` (see `figure_help`).
    #[arg(long, value_delimiter = ',', required = true, help = figure_help(), long_help = figure_long_help())]
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

/// `--figure`'s help: "Figure number (3-9, 11-25), table-2..table-5, …", from the group list.
fn figure_help() -> String {
    let mut help = backlens_reproduce::id_help();
    if let Some(first) = help.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    format!("{help}; repeat or comma-separate for several")
}

/// `--figure`'s long help (`--help`): the short help and one line per group.
fn figure_long_help() -> String {
    let groups: String = GROUPS.iter().map(|g| format!("\n  {:<14} {}", g.name, g.covers)).collect();
    format!("{}.\nGroups:{groups}", figure_help())
}

/// Runs `backlens reproduce`.
pub fn run(args: &ReproduceArgs) -> Result<()> {
    let groups = backlens_reproduce::select(&args.figure)?;
    let options = ReproduceOptions { dataset: args.dataset.clone(), limit: args.limit, seed: args.seed };
    // Check the dataset before loading the model, so a bad path fails at once.
    if groups.iter().any(|g| g.needs_sweep()) {
        options.records()?;
    }
    let bl = args.model.load()?;
    let bar = progress_bar("tracing prompts");
    let reproductions = backlens_reproduce::reproduce(&bl, &groups, &options, report_to(&bar))?;
    bar.finish_and_clear();
    for r in &reproductions {
        println!("== {} ({})\npaper: {}\nours:  {}", r.group, r.group.covers, r.paper, r.ours);
        for path in r.write(&args.out)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
