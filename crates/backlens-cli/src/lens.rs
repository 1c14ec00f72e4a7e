//! `backlens lens`: trace prompt → target, print the FF2 table, write JSON and both figures.

use crate::common::{ModelArgs, QueryArgs};
use anyhow::{Context, Result};
use backlens::model::Site;
use backlens::{Backlens, CellText, Report};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// What the FF2 figure shows in each cell.
#[derive(Clone, Copy, ValueEnum)]
pub enum CellChoice {
    /// The least likely tokens.
    Bottom,
    /// The most and the least likely tokens.
    TopBottom,
}

/// `backlens lens`.
#[derive(Args)]
pub struct LensArgs {
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

/// Runs `backlens lens`.
pub fn run(args: &LensArgs) -> Result<()> {
    let bl = args.model.load()?;
    let (report, files) = lens(&bl, &args.query, &args.out, args.cell)?;
    print_summary(&bl, &report)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// The whole `lens` query after loading: analysis, JSON, and both figures in SVG and PNG.
pub fn lens(bl: &Backlens, q: &QueryArgs, out: &Path, cell: CellChoice) -> Result<(Report, Vec<PathBuf>)> {
    let report = bl.analyze(&q.prompt, &q.target, &q.options()?)?;
    let files = write_outputs(bl, &report, out, cell)?;
    Ok((report, files))
}

/// Writes `lens.json` and the FF2 and FF1 figures (SVG and PNG) into `out`; the figures render
/// in parallel.
pub fn write_outputs(bl: &Backlens, report: &Report, out: &Path, cell: CellChoice) -> Result<Vec<PathBuf>> {
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
