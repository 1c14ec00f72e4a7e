//! Rich display of a [`Trace`] in the evcxr Jupyter kernel (feature `evcxr`).
//!
//! evcxr calls an inherent `evcxr_display(&self)` on a cell's final value and shows what it
//! prints between `EVCXR_BEGIN_CONTENT <mime>` and `EVCXR_END_CONTENT`. A trace shows as an HTML
//! summary: prompt ids, target, loss, and one row per recorded site with its vector size and
//! the norm of its vectors at every recorded layer (colour: the row's largest norm is darkest),
//! instead of a `Debug` dump of tensors. A plain-text version goes with it for frontends
//! without HTML.

use crate::hooks::{HookPoint, Site};
use crate::trace::Trace;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What the display shows for one site: vector size and, per layer, the Frobenius norm over
/// tokens with the per-token norms.
struct SiteRow {
    dim: usize,
    /// layer → (‖V‖_F over tokens, ‖v_i‖ per token)
    norms: BTreeMap<usize, (f32, Vec<f32>)>,
}

impl Trace {
    /// Shows the trace in the evcxr Jupyter kernel as an HTML table of per-layer norms.
    // evcxr renders what a cell's `evcxr_display` prints to stdout: printing is the protocol.
    #[allow(clippy::print_stdout)]
    pub fn evcxr_display(&self) {
        println!("{}", self.evcxr_content());
    }

    /// The text [`Trace::evcxr_display`] prints: a `text/html` and a `text/plain` block.
    pub fn evcxr_content(&self) -> String {
        match self.site_rows() {
            Ok(rows) => format!(
                "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT\nEVCXR_BEGIN_CONTENT text/plain\n{}\nEVCXR_END_CONTENT",
                self.html(&rows),
                self.plain(&rows)
            ),
            Err(e) => format!("EVCXR_BEGIN_CONTENT text/plain\nTrace (cannot summarise: {e})\nEVCXR_END_CONTENT"),
        }
    }

    fn site_rows(&self) -> crate::Result<BTreeMap<Site, SiteRow>> {
        let mut rows: BTreeMap<Site, SiteRow> = BTreeMap::new();
        for HookPoint { layer, site } in self.hook_points() {
            let t = self.require(HookPoint { layer, site })?;
            let per_token: Vec<f32> = t.sqr()?.sum(candle_core::D::Minus1)?.sqrt()?.to_vec1()?;
            let total = per_token.iter().map(|n| n * n).sum::<f32>().sqrt();
            let row = rows
                .entry(site)
                .or_insert_with(|| SiteRow { dim: t.dims().last().copied().unwrap_or(0), norms: BTreeMap::new() });
            row.norms.insert(layer, (total, per_token));
        }
        Ok(rows)
    }

    fn header(&self, rows: &BTreeMap<Site, SiteRow>) -> String {
        let points: usize = rows.values().map(|r| r.norms.len()).sum();
        format!(
            "Trace: {} prompt tokens {:?}, target id {}, loss {:.4} (-log p), {} hook points at {} sites",
            self.n_tokens(),
            self.token_ids,
            self.target_id,
            self.loss,
            points,
            rows.len()
        )
    }

    fn html(&self, rows: &BTreeMap<Site, SiteRow>) -> String {
        let layers: BTreeSet<usize> = rows.values().flat_map(|r| r.norms.keys().copied()).collect();
        let mut h = String::new();
        let _ = write!(h, "<div class=\"backlens-trace\"><p><b>{}</b></p>", escape(&self.header(rows)));
        h.push_str("<p>Cells: ‖V‖ of the site's vectors at that layer over all prompt tokens (hover: per-token norms); colour scaled per row.</p>");
        h.push_str("<table style=\"border-collapse:collapse;font-size:11px\"><thead><tr><th>site</th><th>shape</th>");
        for l in &layers {
            let _ = write!(h, "<th>{l}</th>");
        }
        h.push_str("</tr></thead><tbody>");
        for (site, row) in rows {
            let max = row.norms.values().map(|(n, _)| *n).fold(0.0f32, f32::max);
            let _ = write!(h, "<tr><td><code>{site}</code></td><td>({}, {})</td>", self.n_tokens(), row.dim);
            for l in &layers {
                match row.norms.get(l) {
                    Some((n, per_token)) => {
                        let (bg, fg) = shade(if max > 0.0 { n / max } else { 0.0 });
                        let tokens: Vec<String> = per_token.iter().map(|&x| number(x)).collect();
                        let _ = write!(
                            h,
                            "<td style=\"background:{bg};color:{fg};padding:1px 3px;text-align:right\" title=\"layer {l}: {}\">{}</td>",
                            tokens.join(", "),
                            number(*n)
                        );
                    }
                    None => h.push_str("<td></td>"),
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table></div>");
        h
    }

    fn plain(&self, rows: &BTreeMap<Site, SiteRow>) -> String {
        let mut s = self.header(rows);
        for (site, row) in rows {
            let norms: Vec<String> = row.norms.iter().map(|(l, (n, _))| format!("{l}:{}", number(*n))).collect();
            let _ = write!(s, "\n{site} ({}, {}): {}", self.n_tokens(), row.dim, norms.join(" "));
        }
        s
    }
}

/// A norm with about three significant digits.
fn number(x: f32) -> String {
    if x == 0.0 {
        "0".to_string()
    } else if (0.01..1000.0).contains(&x.abs()) {
        format!("{:.*}", (2 - x.abs().log10().floor() as i32).max(0) as usize, x)
    } else {
        format!("{x:.2e}")
    }
}

/// Background and text colour for a value in [0, 1]: white to dark red.
fn shade(t: f32) -> (String, &'static str) {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
    let (r, g, b) = (mix(255.0, 165.0), mix(255.0, 15.0), mix(255.0, 21.0));
    (format!("#{r:02x}{g:02x}{b:02x}"), if t > 0.55 { "white" } else { "black" })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{Kind, Module};
    use crate::trace::{Recorder, TraceOptions};
    use candle_core::{Device, Tensor};

    fn tiny_trace() -> Trace {
        let options = TraceOptions::only([Site::MLP_DOWN_VJP, Site::new(Module::MlpDown, Kind::Output)]);
        let mut rec = Recorder::new(&options);
        let dev = Device::Cpu;
        // Layer 0: output rows (3, 4) and (0, 0); layer 1: a zero output.
        let y0 = Tensor::new(&[[3.0f32, 4.0], [0.0, 0.0]], &dev).unwrap();
        let y1 = Tensor::zeros((2, 2), candle_core::DType::F32, &dev).unwrap();
        let a = rec.hook(0, Module::MlpDown, Kind::Output, y0).unwrap();
        let b = rec.hook(1, Module::MlpDown, Kind::Output, y1).unwrap();
        // loss = sum(2·a) + sum(b): VJP 2 everywhere at layer 0, 1 at layer 1.
        let loss = ((a * 2.0).unwrap().sum_all().unwrap() + b.sum_all().unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        let logits = Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap();
        rec.finish(&grads, vec![11, 12], 3, 1.25, logits).unwrap()
    }

    #[test]
    fn evcxr_content_is_an_html_table_of_norms_with_a_plain_fallback() {
        let out = tiny_trace().evcxr_content();
        assert!(out.starts_with("EVCXR_BEGIN_CONTENT text/html\n<div class=\"backlens-trace\">"), "{out}");
        assert!(out.ends_with("\nEVCXR_END_CONTENT"), "{out}");
        assert_eq!(out.matches("EVCXR_BEGIN_CONTENT").count(), 2);
        assert_eq!(out.matches("EVCXR_END_CONTENT").count(), 2);
        let (html, plain) = out.split_once("EVCXR_BEGIN_CONTENT text/plain\n").unwrap();
        assert!(html.contains("2 prompt tokens [11, 12], target id 3, loss 1.2500"), "{html}");
        assert!(html.contains("4 hook points at 2 sites"), "{html}");
        // One row per site, one column per layer.
        assert!(html.contains("<code>mlp.down.output</code></td><td>(2, 2)</td>"), "{html}");
        assert!(html.contains("<code>mlp.down.vjp</code>"), "{html}");
        assert!(html.contains("<th>0</th><th>1</th>"), "{html}");
        // ‖output‖ at layer 0 is 5 (per token 5, 0), darkest in its row; layer 1 is 0 (white).
        assert!(html.contains("title=\"layer 0: 5.00, 0\">5.00</td>"), "{html}");
        assert!(html.contains("background:#a50f15;color:white"), "{html}");
        assert!(
            html.contains(
                "background:#ffffff;color:black;padding:1px 3px;text-align:right\" title=\"layer 1: 0, 0\">0</td>"
            ),
            "{html}"
        );
        // ‖VJP‖: 2 per entry at layer 0 → 4 over the 2×2 matrix, 1 per entry at layer 1 → 2.
        assert!(html.contains(">4.00</td>") && html.contains(">2.00</td>"), "{html}");
        assert!(!html.contains("Tensor["), "no Debug dump: {html}");
        assert!(plain.contains("mlp.down.vjp (2, 2): 0:4.00 1:2.00"), "{plain}");
    }

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.12345), "0.123");
        assert_eq!(number(1.2345), "1.23");
        assert_eq!(number(123.45), "123");
        assert_eq!(number(0.00012), "1.20e-4");
        assert_eq!(number(12345.0), "1.23e4");
    }
}
