//! Per-layer token tables (the paper's Tables 3 and 5) and rich display of reports in the evcxr
//! Jupyter kernel (feature `evcxr`).
//!
//! A [`Report`] renders on its own: it keeps the decoded text of every token id it mentions
//! ([`Report::token_texts`]), so a notebook cell ending in `report` shows the paper's Figure 4
//! (FF2's VJPs, least likely token per cell, colour |δ_i|) as an SVG image, and
//! `report.layer_table(site, layer, k)` shows Table 3 (FF2) or Table 5 (FF1) as an HTML table.

use crate::analysis::Report;
use crate::error::Error;
use crate::figure::CellText;
use backlens_model::Site;
use backlens_plot::readable_token;
use std::fmt;

/// Longest token text in a [`LayerTable`] cell, in characters.
const TABLE_CHARS: usize = 14;

/// One row of a [`LayerTable`]: a prompt token's vector at one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTableRow {
    /// The prompt token (readable text).
    pub token: String,
    /// L2 norm of the vector.
    pub norm: f32,
    /// Rank of the target in its logit lens (0 = most likely); `None` when all logits tie.
    pub target_rank: Option<usize>,
    /// The k most likely tokens, most likely first (readable text).
    pub top: Vec<String>,
    /// The k least likely tokens, least likely first (readable text).
    pub bottom: Vec<String>,
}

/// The logit lens of one site at one layer, one row per prompt token: the paper's Tables 3
/// (FF2's VJPs δ_i) and 5 (FF1's inputs x_i). Prints as aligned text; in the evcxr kernel it
/// shows as an HTML table.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTable {
    /// What the table shows, e.g. `LL(mlp.down.vjp) at layer 18 | "Lionel Messi plays for" → " Paris"`.
    pub title: String,
    /// One row per prompt token, in prompt order.
    pub rows: Vec<LayerTableRow>,
}

impl Report {
    /// The paper's Table 3 / Table 5 for `site` at `layer`: per prompt token, the vector's
    /// norm, the target's rank and the `k` most and least likely tokens (at most the report's
    /// own k).
    pub fn layer_table(&self, site: Site, layer: usize, k: usize) -> Result<LayerTable, Error> {
        let name = site.to_string();
        let grid = self.site(&name)?;
        let cells = grid.get(layer).ok_or_else(|| Error::Site {
            site: name.clone(),
            reason: format!("layer {layer} out of range (the report has {} layers)", grid.len()),
        })?;
        let show =
            |ids: &[u32]| ids.iter().take(k).map(|&id| readable_token(&self.token_text(id), TABLE_CHARS)).collect();
        Ok(LayerTable {
            title: format!("LL({name}) at layer {layer} | {:?} → {:?}", self.prompt, self.target),
            rows: self
                .tokens
                .iter()
                .zip(cells)
                .map(|(token, c)| LayerTableRow {
                    token: readable_token(token, TABLE_CHARS),
                    norm: c.norm,
                    target_rank: c.target_rank,
                    top: show(&c.top),
                    bottom: show(&c.bottom),
                })
                .collect(),
        })
    }

    /// A one-paragraph plain-text summary: model, prompt, target, loss, sites.
    pub fn summary(&self) -> String {
        format!(
            "Report: {} | {:?} → {:?} (id {}) | {} tokens, {} layers, loss {:.4} | sites: {}",
            self.model,
            self.prompt,
            self.target,
            self.target_id,
            self.tokens.len(),
            self.n_layers(),
            self.loss,
            self.sites.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }

    /// The figure a report displays as: FF2's VJPs with their least likely token when the report
    /// has `mlp.down.vjp`, else its first site read the paper's way ([`CellText::for_site`]).
    pub fn default_figure(&self) -> Result<backlens_plot::TokenTable, Error> {
        let site = match self.sites.keys().find(|s| *s == "mlp.down.vjp").or_else(|| self.sites.keys().next()) {
            Some(name) => name.parse::<Site>()?,
            None => return Err(Error::Site { site: String::new(), reason: "the report has no site".to_string() }),
        };
        self.figure(site, CellText::for_site(site))
    }
}

impl fmt::Display for LayerTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let token_w = self.rows.iter().map(|r| r.token.chars().count()).max().unwrap_or(0).max(5);
        let top_w = self.rows.iter().map(|r| r.top.join(", ").chars().count()).max().unwrap_or(0).max(6);
        writeln!(f, "{:<token_w$}  {:>9}  {:>11}  {:<top_w$}  LL bottom", "token", "norm", "target rank", "LL top")?;
        for r in &self.rows {
            let rank = r.target_rank.map_or("-".to_string(), |x| x.to_string());
            writeln!(
                f,
                "{:<token_w$}  {:>9.4}  {:>11}  {:<top_w$}  {}",
                r.token,
                r.norm,
                rank,
                r.top.join(", "),
                r.bottom.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(feature = "evcxr")]
impl Report {
    /// Shows the report in the evcxr Jupyter kernel as its [`Report::default_figure`] (SVG),
    /// with [`Report::summary`] as the plain-text alternative.
    // evcxr renders what a cell's `evcxr_display` prints to stdout: printing is the protocol.
    #[allow(clippy::print_stdout)]
    pub fn evcxr_display(&self) {
        println!("{}", self.evcxr_content());
    }

    /// The text [`Report::evcxr_display`] prints.
    pub fn evcxr_content(&self) -> String {
        let plain = format!("EVCXR_BEGIN_CONTENT text/plain\n{}\nEVCXR_END_CONTENT", self.summary());
        match self.default_figure().and_then(|t| Ok(t.to_svg()?)) {
            Ok(svg) => format!("EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT\n{plain}", svg.trim_end()),
            Err(e) => {
                format!("EVCXR_BEGIN_CONTENT text/plain\n{}\n(no figure: {e})\nEVCXR_END_CONTENT", self.summary())
            }
        }
    }
}

#[cfg(feature = "evcxr")]
impl LayerTable {
    /// Shows the table in the evcxr Jupyter kernel as HTML, with the text table as the
    /// plain-text alternative.
    // evcxr renders what a cell's `evcxr_display` prints to stdout: printing is the protocol.
    #[allow(clippy::print_stdout)]
    pub fn evcxr_display(&self) {
        println!("{}", self.evcxr_content());
    }

    /// The text [`LayerTable::evcxr_display`] prints.
    pub fn evcxr_content(&self) -> String {
        let mut h = format!(
            "<div class=\"backlens-layer-table\"><p><b>{}</b></p><table><thead><tr><th>token</th><th>norm</th><th>target rank</th><th>LL top</th><th>LL bottom</th></tr></thead><tbody>",
            escape(&self.title)
        );
        for r in &self.rows {
            let rank = r.target_rank.map_or("-".to_string(), |x| x.to_string());
            let list =
                |v: &[String]| v.iter().map(|t| format!("<code>{}</code>", escape(t))).collect::<Vec<_>>().join(", ");
            h.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{:.4}</td><td>{rank}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.token),
                r.norm,
                list(&r.top),
                list(&r.bottom)
            ));
        }
        h.push_str("</tbody></table></div>");
        format!(
            "EVCXR_BEGIN_CONTENT text/html\n{h}\nEVCXR_END_CONTENT\nEVCXR_BEGIN_CONTENT text/plain\n{}\nEVCXR_END_CONTENT",
            self.to_string().trim_end()
        )
    }
}

#[cfg(feature = "evcxr")]
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ReportCell;
    use std::collections::BTreeMap;

    /// Two layers, two tokens; FF2 VJPs with " Paris" (7) at the bottom of the last token, and
    /// a zero (unranked) cell at the last layer's first token.
    fn report() -> Report {
        let cell = |norm, rank, top: &[u32], bottom: &[u32]| ReportCell {
            norm,
            target_rank: rank,
            top: top.to_vec(),
            bottom: bottom.to_vec(),
        };
        let vjp = vec![
            vec![cell(0.5, Some(40), &[3, 4], &[5, 7]), cell(1.5, Some(49), &[6, 3], &[7, 5])],
            vec![cell(0.0, None, &[], &[]), cell(2.0, Some(49), &[6, 4], &[7, 5])],
        ];
        let texts =
            [(1, "Mess"), (2, " for"), (3, " the"), (4, "<b>"), (5, " France"), (6, " Barcelona"), (7, " Paris")];
        Report {
            model: "tiny".into(),
            prompt: "Mess for".into(),
            target: " Paris".into(),
            target_id: 7,
            token_ids: vec![1, 2],
            tokens: vec!["Mess".into(), " for".into()],
            loss: 3.5,
            sites: BTreeMap::from([("mlp.down.vjp".to_string(), vjp)]),
            token_texts: texts.iter().map(|&(id, t)| (id, t.to_string())).collect(),
        }
    }

    #[test]
    fn a_report_renders_its_figure_from_its_own_token_texts() {
        let table = report().figure(Site::MLP_DOWN_VJP, CellText::TopBottom).unwrap();
        assert_eq!(table.row_labels, ["1", "0"]);
        assert_eq!(table.col_labels, ["Mess", " for"]);
        let texts: Vec<Vec<&str>> = table.cells.iter().map(|r| r.iter().map(|c| c.text.as_str()).collect()).collect();
        assert_eq!(texts, [vec!["no update", " Barcelona \\  Paris"], vec![" the \\  France", " Barcelona \\  Paris"]]);
        assert_eq!(report().token_text(99), "<99>");
    }

    #[test]
    fn layer_table_lists_norm_rank_top_and_bottom_per_token() {
        let t = report().layer_table(Site::MLP_DOWN_VJP, 0, 1).unwrap();
        assert_eq!(t.title, "LL(mlp.down.vjp) at layer 0 | \"Mess for\" → \" Paris\"");
        assert_eq!(
            t.rows[1],
            LayerTableRow {
                token: " for".into(),
                norm: 1.5,
                target_rank: Some(49),
                top: vec![" Barcelona".into()],
                bottom: vec![" Paris".into()]
            }
        );
        let text = t.to_string();
        assert!(text.contains("\n for      1.5000           49   Barcelona   Paris\n"), "{text}");
        let last = report().layer_table(Site::MLP_DOWN_VJP, 1, 2).unwrap();
        assert_eq!(last.rows[0].target_rank, None);
        assert!(last.to_string().contains("Mess      0.0000            -"), "{}", last);
        assert!(report().layer_table(Site::MLP_DOWN_VJP, 2, 1).is_err());
        assert!(report().layer_table(Site::MLP_UP_INPUT, 0, 1).is_err());
    }

    #[test]
    fn summary_names_prompt_target_loss_and_sites() {
        assert_eq!(
            report().summary(),
            "Report: tiny | \"Mess for\" → \" Paris\" (id 7) | 2 tokens, 2 layers, loss 3.5000 | sites: mlp.down.vjp"
        );
    }

    #[cfg(feature = "evcxr")]
    #[test]
    fn evcxr_content_of_a_report_is_its_ff2_figure_with_a_plain_summary() {
        let out = report().evcxr_content();
        assert!(out.starts_with("EVCXR_BEGIN_CONTENT image/svg+xml\n<svg "), "{out}");
        let (svg, plain) = out.split_once("</svg>\nEVCXR_END_CONTENT\n").unwrap();
        assert!(svg.contains("Paris") && svg.contains("no update") && svg.contains("least likely token"), "{svg}");
        assert_eq!(plain, format!("EVCXR_BEGIN_CONTENT text/plain\n{}\nEVCXR_END_CONTENT", report().summary()));

        let mut empty = report();
        empty.sites.clear();
        let out = empty.evcxr_content();
        assert!(out.starts_with("EVCXR_BEGIN_CONTENT text/plain\nReport: tiny"), "{out}");
        assert!(out.contains("(no figure: ") && out.ends_with("\nEVCXR_END_CONTENT"), "{out}");
    }

    #[cfg(feature = "evcxr")]
    #[test]
    fn evcxr_content_of_a_layer_table_is_escaped_html_with_a_text_alternative() {
        let out = report().layer_table(Site::MLP_DOWN_VJP, 0, 2).unwrap().evcxr_content();
        assert!(out.starts_with("EVCXR_BEGIN_CONTENT text/html\n<div class=\"backlens-layer-table\">"), "{out}");
        assert!(out.contains("<tr><td><code> for</code></td><td>1.5000</td><td>49</td><td><code> Barcelona</code>, <code> the</code></td><td><code> Paris</code>, <code> France</code></td></tr>"), "{out}");
        assert!(out.contains("<code>&lt;b&gt;</code>"), "token texts are escaped: {out}");
        assert!(out.contains("&quot;Mess for&quot;"), "{out}");
        let (_, plain) = out.split_once("EVCXR_BEGIN_CONTENT text/plain\n").unwrap();
        assert!(
            plain.starts_with("LL(mlp.down.vjp) at layer 0") && plain.ends_with("France\nEVCXR_END_CONTENT"),
            "{plain}"
        );
    }
}
