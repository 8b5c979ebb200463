//! What an export writes of a ranked configuration: only its changes against the baseline (the
//! study's defaults, what the user runs today), never an `auto` value (the option stays unset
//! and the server decides), and never an output setting (role `output`: it changes what the
//! model writes) unless the study opts in with `decision.allow_output_changes = true`. Also the
//! header lines that say which settings are kept at the user's values and why, and the two
//! facts an export reads from the run folder besides the report: that opt-in (from the frozen
//! study) and, for a run recorded before parameters had roles, the roles of the option tables.

use super::ordered_params;
use crate::domain::roles;
use crate::engine::space::{values_equal, ParamValue, Role};
use crate::report::{Report, Row};
use crate::store::{RunDir, RunMeta, META_FILE, STUDY_FILE};

/// What the study allows an export to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportPolicy {
    /// `decision.allow_output_changes` of the study: output settings may be written.
    pub allow_output_changes: bool,
}

impl ExportPolicy {
    /// The policy of a run: its frozen study's `[decision]` table. A study that cannot be read
    /// (or parsed any more, say because a prompt file it names is gone) is read for that one
    /// key; without it, output settings are not changed.
    pub fn of_run(run: &RunDir) -> ExportPolicy {
        let path = run.file(STUDY_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return ExportPolicy::default();
        };
        let allow = match crate::study::parse_study(&path, &text) {
            Ok(study) => study.decision.allow_output_changes,
            Err(_) => text
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("decision")?.get("allow_output_changes")?.as_bool())
                .unwrap_or(false),
        };
        ExportPolicy {
            allow_output_changes: allow,
        }
    }
}

/// A run.json written before parameters had roles records none, and its parameters read as
/// `speed`: give them the roles of the option tables (temperature is an output setting whether
/// or not the run recorded it). A run.json that records roles is left as it is.
pub(crate) fn fill_old_roles(run: &RunDir, meta: &mut RunMeta) {
    let recorded = std::fs::read_to_string(run.file(META_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("space")?.get("params")?.as_array().map(|ps| {
                ps.iter()
                    .any(|p| p.get("role").is_some() || p.get("prefer").is_some())
            })
        })
        .unwrap_or(true);
    if !recorded {
        roles::apply_defaults(&mut meta.space, &meta.backend.backend);
    }
}

/// One parameter of the configuration, with the baseline's value.
#[derive(Clone, Debug)]
pub(crate) struct Item<'a> {
    pub name: &'a str,
    pub value: &'a ParamValue,
    pub baseline: Option<&'a ParamValue>,
}

/// The configuration's parameters sorted by what the export does with them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection<'a> {
    /// Written: changed against the baseline, and not an output setting (or allowed).
    pub write: Vec<Item<'a>>,
    /// Not written, the baseline's value: the same value as the baseline.
    pub unchanged: Vec<Item<'a>>,
    /// Not written, the baseline's value: output settings changed by the trial.
    pub kept_output: Vec<Item<'a>>,
    /// Not written: `auto`, the server decides.
    pub auto: Vec<Item<'a>>,
    /// Output settings written because the study allows it.
    pub changed_output: Vec<String>,
}

/// Sort the row's parameters (in the study's order) by what the export does with them.
pub(crate) fn select<'a>(r: &'a Report, row: &'a Row, policy: &ExportPolicy) -> Selection<'a> {
    let mut sel = Selection::default();
    for (name, value) in ordered_params(r, row) {
        let param = r.meta.space.get(name);
        let role = param
            .map(|p| p.role)
            .unwrap_or_else(|| roles::facts(&r.meta.backend.backend, name).role);
        let baseline = param.and_then(|p| p.default.as_ref());
        let item = Item {
            name,
            value,
            baseline,
        };
        if value.is_auto() {
            sel.auto.push(item);
        } else if baseline.is_some_and(|b| values_equal(b, value)) {
            sel.unchanged.push(item);
        } else if role == Role::Output && !policy.allow_output_changes {
            sel.kept_output.push(item);
        } else {
            if role == Role::Output {
                sel.changed_output.push(name.to_string());
            }
            sel.write.push(item);
        }
    }
    sel
}

impl Selection<'_> {
    /// Whether parameter `name` is written.
    pub fn writes(&self, name: &str) -> bool {
        self.write.iter().any(|i| i.name == name)
    }

    /// The written parameters, in the study's order.
    pub fn written(&self) -> Vec<(&str, &ParamValue)> {
        self.write.iter().map(|i| (i.name, i.value)).collect()
    }

    /// The first header line of a format that writes only the changes (Modelfile, TOML).
    pub fn delta_line(&self) -> String {
        if self.write.is_empty() {
            "nothing to set: this configuration changes no setting against the baseline (the study's defaults)".to_string()
        } else {
            "only the settings that differ from the baseline (the study's defaults) are set; every other setting stays as you run it today".to_string()
        }
    }

    /// Header lines (no comment marker) for the parameters not written (of the unchanged ones
    /// only those whose name passes `unchanged_shown`: the llama-server command spells out its
    /// load options anyway), and for the output settings written because the study allows it.
    pub fn header(&self, unchanged_shown: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        let list = |items: &[Item], f: &dyn Fn(&Item) -> String| -> Vec<String> {
            items.iter().map(f).collect()
        };
        let baseline = |i: &Item| match i.baseline {
            Some(b) => format!("{} {b}", i.name),
            None => format!("{} (the server's or the model's value)", i.name),
        };
        let unchanged: Vec<String> = self
            .unchanged
            .iter()
            .filter(|i| unchanged_shown(i.name))
            .map(|i| format!("{} {}", i.name, i.value))
            .collect();
        if !unchanged.is_empty() {
            lines.push(format!(
                "kept at your values, the same as the baseline (the study's defaults): {}",
                unchanged.join(", ")
            ));
        }
        let kept = list(&self.kept_output, &|i| {
            format!("{} (this trial ran with {})", baseline(i), i.value)
        });
        if !kept.is_empty() {
            lines.push(format!(
                "kept at your values, output settings that change what the model writes (not applied unless the study sets decision.allow_output_changes = true): {}",
                kept.join(", ")
            ));
        }
        let auto = list(&self.auto, &|i| i.name.to_string());
        if !auto.is_empty() {
            lines.push(format!(
                "left to the server (auto: not set, the server chooses as it does by default): {}",
                auto.join(", ")
            ));
        }
        if !self.changed_output.is_empty() {
            lines.push(format!(
                "output settings changed because the study sets decision.allow_output_changes = true: {}",
                self.changed_output.join(", ")
            ));
        }
        lines
    }
}
