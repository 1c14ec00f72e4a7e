//! A compact terminal rendering of a report.

use crate::analysis::{Backlens, Report};
use crate::figure::{CellText, NO_UPDATE};
use backlens_model::Site;
use backlens_plot::readable_token;
use std::fmt::Write;

const COLUMN: usize = 11;

impl Backlens {
    /// A text table of `site`: one line per layer (top layer first), one column per token, each
    /// cell the top or bottom token; a `*` marks cells where the target is the least likely token.
    pub fn terminal_table(&self, report: &Report, site: Site) -> Result<String, crate::Error> {
        let name = site.to_string();
        let cells = report.site(&name)?;
        let text = CellText::for_site(site);
        let vocab_last = self.lens().vocab_size().saturating_sub(1);
        let mut out = String::new();
        let which = if text == CellText::Bottom { "least" } else { "most" };
        writeln!(out, "{name}: {which} likely token of LL(v) per layer and token (* = target at the very bottom)")
            .unwrap();
        write!(out, "{:>5} ", "layer").unwrap();
        for t in &report.tokens {
            write!(out, "{:<COLUMN$}", readable_token(t, COLUMN - 2)).unwrap();
        }
        out.push('\n');
        for l in (0..cells.len()).rev() {
            write!(out, "{l:>5} ").unwrap();
            for c in &cells[l] {
                let id = if text == CellText::Bottom { c.bottom.first() } else { c.top.first() };
                let shown = match id {
                    None => NO_UPDATE.to_string(),
                    Some(&id) => readable_token(&self.token_text(id), COLUMN - 3),
                };
                let mark = if c.target_rank == Some(vocab_last) { "*" } else { "" };
                write!(out, "{:<COLUMN$}", format!("{shown}{mark}")).unwrap();
            }
            out.push('\n');
        }
        Ok(out)
    }
}
