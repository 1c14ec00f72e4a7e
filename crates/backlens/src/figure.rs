//! The paper's Figure 4 table from a [`Report`].

use crate::analysis::{Backlens, Report, ReportCell};
use crate::error::Error;
use backlens_model::Site;
use backlens_plot::{readable_token, Cell, TokenTable};

/// Longest token text in a figure cell, in characters.
pub const CELL_CHARS: usize = 10;

/// What a figure cell shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellText {
    /// The most likely token (how to read FF1's inputs x_i).
    Top,
    /// The least likely token (how to read FF2's VJPs δ_i, which gradient descent subtracts).
    Bottom,
    /// "top \ bottom".
    TopBottom,
}

impl CellText {
    /// The paper's choice for a site: bottom for VJPs, top for forward vectors.
    pub fn for_site(site: Site) -> CellText {
        if site.kind == backlens_model::Kind::Vjp {
            CellText::Bottom
        } else {
            CellText::Top
        }
    }

    fn describe(self) -> &'static str {
        match self {
            CellText::Top => "most likely token",
            CellText::Bottom => "least likely token",
            CellText::TopBottom => "most \\ least likely token",
        }
    }
}

/// Text shown for a cell without a ranking (all logits tie: under RMSNorm, the zero VJPs of the
/// last layer's non-last tokens), which carries no update.
pub const NO_UPDATE: &str = "no update";

impl Report {
    /// Decoded text of a token id from [`Report::token_texts`] (`<id>` if the report does not
    /// mention it).
    pub fn token_text(&self, id: u32) -> String {
        self.token_texts.get(&id).cloned().unwrap_or_else(|| format!("<{id}>"))
    }

    /// Figure 4 for `site` from the report alone (token texts from [`Report::token_texts`]);
    /// the same table as [`Backlens::figure`].
    pub fn figure(&self, site: Site, text: CellText) -> Result<TokenTable, Error> {
        token_table(self, site, text, |id| self.token_text(id))
    }
}

impl Backlens {
    /// Figure 4 for `site`: rows = layers (top layer first), columns = prompt tokens.
    ///
    /// Cell colour is |δ_i| of the FF2 VJP (`mlp.down.vjp`) when the report has it, as in the
    /// authors' demo, so both tables show where the update happens; otherwise the site's own norm.
    /// Token texts come from the report, or from the model's tokenizer for ids it lacks.
    pub fn figure(&self, report: &Report, site: Site, text: CellText) -> Result<TokenTable, Error> {
        token_table(report, site, text, |id| {
            report.token_texts.get(&id).cloned().unwrap_or_else(|| self.token_text(id))
        })
    }
}

fn token_table(
    report: &Report,
    site: Site,
    text: CellText,
    token_text: impl Fn(u32) -> String,
) -> Result<TokenTable, Error> {
    let name = site.to_string();
    let cells = report.site(&name)?;
    let colour_site = if report.sites.contains_key("mlp.down.vjp") { "mlp.down.vjp" } else { name.as_str() };
    let colours = report.site(colour_site)?;
    let show = |id: u32| readable_token(&token_text(id), CELL_CHARS);
    let cell_text = |c: &ReportCell| -> String {
        match (c.top.first(), c.bottom.first(), text) {
            (None, _, _) | (_, None, _) => NO_UPDATE.to_string(),
            (Some(&t), _, CellText::Top) => show(t),
            (_, Some(&b), CellText::Bottom) => show(b),
            (Some(&t), Some(&b), CellText::TopBottom) => format!("{} \\ {}", show(t), show(b)),
        }
    };
    let rows = (0..report.n_layers()).rev();
    Ok(TokenTable {
        title: format!("LL({name}): {} | {:?} → {:?}", text.describe(), report.prompt, report.target),
        row_labels: rows.clone().map(|l| l.to_string()).collect(),
        row_caption: "layer".into(),
        col_labels: report.tokens.iter().map(|t| readable_token(t, CELL_CHARS)).collect(),
        cells: rows
            .map(|l| cells[l].iter().zip(&colours[l]).map(|(c, colour)| Cell::new(cell_text(c), colour.norm)).collect())
            .collect(),
        value_label: format!("|v| of {colour_site}"),
    })
}
