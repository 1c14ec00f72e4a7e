//! The figure-group descriptor and everything generated from the list [`GROUPS`]: parsing of
//! `--figure` ids, the list of figure numbers in the help text, and the unknown-id error.

use std::fmt;

use backlens::{Backlens, Error};

use crate::{Reproduction, Sweep, GROUPS};

/// What a figure group needs before it can run. Every group gets the loaded model; a
/// [`Sweep`] is traced (once, shared) when at least one selected group needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// The model alone (e.g. the paper's example prompts).
    Model,
    /// The dataset sweep alone.
    Sweep,
    /// The model and the dataset sweep.
    ModelAndSweep,
}

impl Needs {
    /// Whether a [`Sweep`] must be traced.
    pub fn sweep(self) -> bool {
        matches!(self, Needs::Sweep | Needs::ModelAndSweep)
    }
}

/// What a group runs on: the loaded model and, when its [`Needs`] say so, the dataset sweep.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// The loaded model.
    pub backlens: &'a Backlens,
    /// The dataset sweep; `None` when no selected group needs it.
    pub sweep: Option<&'a Sweep>,
}

impl<'a> Inputs<'a> {
    /// The sweep, or an error naming the group that needed it.
    pub fn sweep(&self, group: &FigureGroup) -> Result<&'a Sweep, Error> {
        self.sweep.ok_or_else(|| Error::Input(format!("figure group {group} needs a dataset sweep")))
    }
}

/// A group of the paper's figures that one computation reproduces: one value of this type per
/// group, all listed in [`GROUPS`].
#[derive(Debug)]
pub struct FigureGroup {
    /// The group's name, as `--figure` accepts it and as output files are named.
    pub name: &'static str,
    /// The paper's figures and tables the group covers, as a reader would write them.
    pub covers: &'static str,
    /// The paper's figure numbers (`--figure 16` selects the group that lists 16).
    pub figures: &'static [u32],
    /// The paper's table numbers (`--figure table-2`).
    pub tables: &'static [u32],
    /// The paper's appendices, lower case (`"c"`: `--figure appendix-c`).
    pub appendices: &'static [&'static str],
    /// What the group runs on.
    pub needs: Needs,
    /// Recomputes the group.
    pub run: fn(&Inputs) -> Result<Reproduction, Error>,
}

impl PartialEq for FigureGroup {
    /// Groups are equal when their names are (names are unique in [`GROUPS`]).
    fn eq(&self, other: &FigureGroup) -> bool {
        self.name == other.name
    }
}

impl Eq for FigureGroup {}

impl fmt::Display for FigureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl FigureGroup {
    /// Whether the group aggregates over the dataset (and so needs a [`Sweep`]).
    pub fn needs_sweep(&self) -> bool {
        self.needs.sweep()
    }

    /// The group called `name` exactly.
    pub fn by_name(name: &str) -> Option<&'static FigureGroup> {
        GROUPS.iter().copied().find(|g| g.name == name)
    }

    /// The group of one `--figure` id: a group name (`norms`), a figure number (`5`, `fig5`,
    /// `figure-16`), a table number (`table-2`, `table3`) or an appendix (`appendix-c`), case
    /// and surrounding space ignored. `all` is not a group: see [`select`].
    pub fn parse(id: &str) -> Result<&'static FigureGroup, Error> {
        let key = id.trim().to_ascii_lowercase();
        if let Some(group) = FigureGroup::by_name(&key) {
            return Ok(group);
        }
        let number = |prefixes: &[&str]| {
            prefixes
                .iter()
                .find_map(|p| key.strip_prefix(p))
                .and_then(|n| n.trim_start_matches(['-', '_', ' ']).parse::<u32>().ok())
        };
        let find = |pick: &dyn Fn(&FigureGroup) -> bool| GROUPS.iter().copied().find(|g| pick(g));
        if let Some(group) = number(&["figure", "fig", ""]).and_then(|n| find(&|g| g.figures.contains(&n))) {
            return Ok(group);
        }
        if let Some(group) = number(&["table", "tab"]).and_then(|n| find(&|g| g.tables.contains(&n))) {
            return Ok(group);
        }
        let appendix = |a: &str| [format!("appendix-{a}"), format!("appendix_{a}"), a.to_string()].contains(&key);
        if let Some(group) = find(&|g| g.appendices.iter().any(|a| appendix(a))) {
            return Ok(group);
        }
        let known: Vec<String> = GROUPS.iter().map(|g| format!("{} ({})", g.name, g.covers)).collect();
        Err(Error::Input(format!(
            "unknown figure {id:?}: give {}, or a group: {}",
            id_list(", `all`"),
            known.join("; ")
        )))
    }
}

/// The groups of `ids` (see [`FigureGroup::parse`]; `all` = every group), each once, in the
/// order first named.
pub fn select<S: AsRef<str>>(ids: &[S]) -> Result<Vec<&'static FigureGroup>, Error> {
    let mut groups: Vec<&'static FigureGroup> = Vec::new();
    for id in ids {
        let more = if id.as_ref().trim() == "all" { GROUPS.to_vec() } else { vec![FigureGroup::parse(id.as_ref())?] };
        for group in more {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    Ok(groups)
}

/// Every figure number of [`GROUPS`], runs compressed: `"3-9, 11-25"`.
pub fn figure_numbers() -> String {
    compress_ranges(&sorted(GROUPS.iter().flat_map(|g| g.figures.iter().copied())))
}

/// What `--figure` accepts, generated from [`GROUPS`]: `"a figure number (3-9, 11-25),
/// table-2..table-5, appendix-c, a group name, or `all`"`.
pub fn id_help() -> String {
    format!("{}, a group name, or `all`", id_list(""))
}

/// "a figure number (…), table-…, appendix-…" followed by `tail`.
fn id_list(tail: &str) -> String {
    let tables = sorted(GROUPS.iter().flat_map(|g| g.tables.iter().copied()));
    let tables = match (tables.first(), tables.last()) {
        (Some(first), Some(last)) if tables.len() > 1 && last - first + 1 == tables.len() as u32 => {
            format!(", table-{first}..table-{last}")
        }
        _ => tables.iter().map(|t| format!(", table-{t}")).collect(),
    };
    let mut appendices: Vec<&str> = Vec::new();
    for a in GROUPS.iter().flat_map(|g| g.appendices.iter().copied()) {
        if !appendices.contains(&a) {
            appendices.push(a);
        }
    }
    let appendices: String = appendices.iter().map(|a| format!(", appendix-{a}")).collect();
    format!("a figure number ({}){tables}{appendices}{tail}", figure_numbers())
}

fn sorted(numbers: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = numbers.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Ascending numbers with runs compressed: `[3, 4, 5, 9, 11, 12]` → `"3-5, 9, 11-12"`.
pub fn compress_ranges<T: Copy + fmt::Display + PartialEq + std::ops::Add<Output = T> + From<u8>>(
    numbers: &[T],
) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + T::from(1) {
            j += 1;
        }
        parts.push(if i == j { numbers[i].to_string() } else { format!("{}-{}", numbers[i], numbers[j]) });
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser before the list (`git show 6ab3f6d:crates/backlens/src/reproduce/mod.rs`,
    /// `FromStr for FigureGroup`), with the group enum replaced by its name: the reference the
    /// generated parser must agree with.
    fn old_parse(s: &str) -> Result<&'static str, String> {
        const ALL: [(&str, &str, &[u32]); 7] = [
            ("gradient-rank", "Figure 3, Lemma 4.1, Appendix A", &[3]),
            ("tables", "Figures 4, 11-15, 24, 25; Tables 3, 5", &[4, 11, 12, 13, 14, 15, 24, 25]),
            ("norms", "Figures 5, 16, 17", &[5, 16, 17]),
            ("vjp-ranks", "Figures 6, 18, 19", &[6, 18, 19]),
            ("input-ranks", "Figures 20, 21", &[20, 21]),
            ("cosine", "Figures 22, 23", &[22, 23]),
            ("neurons", "Appendix C: Figures 7-9, Tables 2, 4", &[7, 8, 9]),
        ];
        let key = s.trim().to_ascii_lowercase();
        if let Some(group) = ALL.iter().find(|g| g.0 == key) {
            return Ok(group.0);
        }
        let number = |prefixes: &[&str]| {
            prefixes
                .iter()
                .find_map(|p| key.strip_prefix(p))
                .and_then(|n| n.trim_start_matches(['-', '_', ' ']).parse::<u32>().ok())
        };
        if let Some(n) = number(&["figure", "fig", ""]) {
            if let Some(group) = ALL.iter().find(|g| g.2.contains(&n)) {
                return Ok(group.0);
            }
        }
        match number(&["table", "tab"]) {
            Some(2 | 4) => return Ok("neurons"),
            Some(3 | 5) => return Ok("tables"),
            _ => {}
        }
        if matches!(key.as_str(), "appendix-c" | "appendix_c" | "c") {
            return Ok("neurons");
        }
        let known: Vec<String> = ALL.iter().map(|g| format!("{} ({})", g.0, g.1)).collect();
        Err(format!(
            "unknown figure {s:?}: give a figure number (3-9, 11-25), table-2..table-5, appendix-c, `all`, or a group: {}",
            known.join("; ")
        ))
    }

    /// Every id the old parser accepted (and a range of ids it refused) maps to the same group,
    /// or fails with the same message.
    #[test]
    fn generated_parser_agrees_with_the_old_one() {
        let mut ids: Vec<String> = GROUPS.iter().map(|g| g.name.to_string()).collect();
        ids.extend(
            ["all", "", " ", "x", "figure", "fig", "table", "tab", "table-", "appendix", "appendix-d", "d"]
                .map(String::from),
        );
        for n in 0..=30 {
            for prefix in [
                "", "fig", "figure", "fig-", "figure-", "figure_", "fig ", "-", "table", "table-", "tab", "tab_",
                "table ",
            ] {
                ids.push(format!("{prefix}{n}"));
            }
        }
        for a in ["appendix-c", "appendix_c", "c", "appendix c", "appendixc"] {
            ids.push(a.to_string());
        }
        let variants: Vec<String> = ids
            .iter()
            .flat_map(|id| [id.clone(), id.to_ascii_uppercase(), format!("  {id} "), format!("{id}\t")])
            .collect();
        let mut accepted = 0;
        for id in &variants {
            let new = FigureGroup::parse(id).map(|g| g.name).map_err(|e| e.to_string());
            assert_eq!(new, old_parse(id), "--figure {id:?}");
            accepted += new.is_ok() as usize;
        }
        assert!(accepted > 500, "{accepted} ids accepted");
    }

    #[test]
    fn help_text_is_generated_from_the_list() {
        assert_eq!(figure_numbers(), "3-9, 11-25");
        assert_eq!(id_help(), "a figure number (3-9, 11-25), table-2..table-5, appendix-c, a group name, or `all`");
        let names: Vec<&str> = GROUPS.iter().map(|g| g.name).collect();
        assert_eq!(names, ["gradient-rank", "tables", "norms", "vjp-ranks", "input-ranks", "cosine", "neurons"]);
    }

    #[test]
    fn select_expands_all_and_keeps_the_first_mention() {
        let names = |ids: &[&str]| select(ids).unwrap().iter().map(|g| g.name).collect::<Vec<_>>();
        assert_eq!(names(&["all"]).len(), GROUPS.len());
        assert_eq!(names(&["16", "fig7", "norms", "table-2"]), ["norms", "neurons"]);
        assert_eq!(names(&["cosine", "all"])[..2], ["cosine", "gradient-rank"]);
        assert!(select(&["figure-10"]).is_err());
        assert_eq!(GROUPS.iter().filter(|g| g.needs_sweep()).count(), 5);
    }

    #[test]
    fn compress_ranges_compresses_runs() {
        assert_eq!(compress_ranges(&[3usize, 4, 5, 9, 11, 12]), "3-5, 9, 11-12");
        assert_eq!(compress_ranges::<usize>(&[]), "");
        assert_eq!(compress_ranges(&[7u32]), "7");
    }
}
