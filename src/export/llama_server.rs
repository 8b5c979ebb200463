//! The llama-server export: the command line of the server a trial was measured on, plus the
//! tuned sampling options as the server's defaults.
//!
//! For a llamacpp run the command is the one the backend started: every measured trial records
//! the arguments of its server in the journal (`notes.llama_server_args`, the argv without the
//! binary), and the export writes exactly those arguments, in order, with two changes that keep
//! it runnable by a user:
//! - the program is `llama-server` (found on `PATH`), not the absolute path of the measuring
//!   machine (that one is in run.json, `backend.details.engine_binary`);
//! - `--port` is llama-server's default 8080 instead of the ephemeral port the kernel handed the
//!   measurement (a different one on every start); `--host 127.0.0.1` and everything else are
//!   kept as measured, including `--fit off`, `--no-warmup` and `backend.extra_args`.
//!
//! The sampling options the backend sent with every request (temperature, top_k, ...) follow as
//! server-side defaults (`--temp`, `--top-k`, ...), so a client that sends none gets the
//! measured sampling.
//!
//! Runs that recorded no arguments (Ollama and attach-mode runs, or journals written before
//! every trial recorded them) get a reconstructed command: each load option from the tuned value,
//! else from the values the backend recorded for untuned options (`untuned_defaults`), else
//! llama-server's default, all spelled out so `--fit` cannot rewrite them (docs/llama-server.md).
//!
//! Either way the command states what was measured, not what was asked: a value the server ran
//! differently (`effective` in the journal: ubatch clamped to batch, an `auto` resolved) is
//! written as it ran, and a value the trial left to the server (`auto`: its flag absent, or
//! `-fa auto`) is spelled out as the server chose it (`notes.server_chose`), with `--fit off`
//! once the context and the layer count are both explicit. The trace log flag the backend adds
//! to read those choices (`-lv 4`) is kept, as measured. A value nobody reported stays the
//! server's choice and the header says so.

use super::changes::Selection;
use super::{comment_block, model_path, provenance};
use crate::domain::llamaserver::{
    self, FlashAttn, LlamaOption, Untuned, ValueKind, CHOSE_NOTE, FIT_FLAGS, FIT_OPTIONS,
};
use crate::engine::space::{format_float, Config, ParamValue};
use crate::report::{Report, Row};
use crate::trial::TrialRecord;

/// Arguments of the server a trial was measured on, as the journal recorded them.
struct Recorded {
    args: Vec<String>,
    /// The trial whose notes hold them (this one, or the earlier trial that started the server).
    trial: usize,
    /// What that server said it chose (`notes.server_chose`).
    chose: Option<serde_json::Value>,
}

fn args_of(rec: &TrialRecord) -> Option<Vec<String>> {
    rec.notes
        .get(llamaserver::ARGS_NOTE)?
        .as_array()?
        .iter()
        .map(|a| a.as_str().map(String::from))
        .collect()
}

/// The recorded arguments of the row's trial; for a trial measured without a restart in a journal
/// that recorded them only on restarts, those of the latest earlier trial with the same load
/// options (the protocol restarts the server whenever they change, so that trial started the
/// server this one was measured on).
fn recorded_args(r: &Report, row: &Row) -> Option<Recorded> {
    if let Some(args) = args_of(&row.record) {
        return Some(Recorded {
            args,
            trial: row.trial(),
            chose: row.record.notes.get(CHOSE_NOTE).cloned(),
        });
    }
    let runner = |rec: &TrialRecord| -> Vec<Option<ParamValue>> {
        r.meta
            .runner_params
            .iter()
            .map(|n| rec.params.get(n).cloned())
            .collect()
    };
    let want = runner(&row.record);
    r.rows
        .iter()
        .map(|x| &x.record)
        .filter(|x| x.trial < row.record.trial && runner(x) == want)
        .filter_map(|x| {
            args_of(x).map(|args| Recorded {
                args,
                trial: x.trial,
                chose: x.notes.get(CHOSE_NOTE).cloned(),
            })
        })
        .max_by_key(|x| x.trial)
}

/// `args` with the value of `--port` replaced by llama-server's default; the measured port.
fn with_default_port(args: &[String]) -> (Vec<String>, Option<String>) {
    let mut out = Vec::with_capacity(args.len());
    let mut measured = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--port" {
            out.push(a.clone());
            if let Some(p) = it.next() {
                measured = Some(p.clone());
            }
            out.push(llamaserver::DEFAULT_PORT.to_string());
        } else if let Some(p) = a.strip_prefix("--port=") {
            measured = Some(p.to_string());
            out.push(format!("--port={}", llamaserver::DEFAULT_PORT));
        } else {
            out.push(a.clone());
        }
    }
    (out, measured)
}

/// A command-line word, single-quoted for POSIX shells when it needs quoting.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The flag value of a tuned parameter.
fn flag_value(opt: &LlamaOption, v: &ParamValue) -> String {
    match (opt.kind, v) {
        (ValueKind::FlashAttn, v) => match FlashAttn::parse(v) {
            Some(fa) => fa.flag().to_string(),
            None => match v {
                ParamValue::Str(s) => s.trim().to_ascii_lowercase(),
                other => other.to_string(),
            },
        },
        // Ollama's num_gpu -1 means "as many layers as fit": llama-server's auto.
        (ValueKind::GpuLayers, ParamValue::Int(i)) if *i < 0 => "auto".into(),
        (_, ParamValue::Float(f)) => format_float(*f),
        (_, v) => v.to_string(),
    }
}

/// The value the server ran an option with: the trial's effective value when it is not `auto`,
/// else what the server reported choosing (`server_chose`, by our name or Ollama's
/// `context_length` for the context).
fn ran_value(opt: &LlamaOption, ran: &Config, chose: Option<&serde_json::Value>) -> Option<String> {
    let tuned = ran
        .get(opt.name)
        .or_else(|| opt.ollama.and_then(|o| ran.get(o)))
        .filter(|v| {
            let auto_fa =
                opt.kind == ValueKind::FlashAttn && FlashAttn::parse(v) == Some(FlashAttn::Auto);
            !(v.is_auto() || auto_fa)
        });
    if let Some(v) = tuned {
        return Some(flag_value(opt, v));
    }
    let chose = chose?;
    let reported = chose.get(opt.name).or_else(|| match opt.name {
        "ctx_size" => chose.get("context_length"),
        _ => None,
    })?;
    recorded_default(opt, reported)
}

/// The recorded arguments with what the server chose spelled out (see the module comment):
/// the arguments, and the `flag value` pairs it added or changed.
fn spell_out_choices(
    args: &[String],
    ran: &Config,
    chose: Option<&serde_json::Value>,
) -> (Vec<String>, Vec<String>) {
    let mut out: Vec<String> = args.to_vec();
    let mut spelled = Vec::new();
    let has = |words: &[String], opt: &LlamaOption| {
        words
            .iter()
            .position(|w| w == opt.flag || opt.long_flags.contains(&w.as_str()))
    };
    let mut added: Vec<String> = Vec::new();
    for opt in llamaserver::load_options() {
        match has(&out, opt) {
            Some(at) => {
                // `-fa auto` as the server resolved it.
                let auto_fa = opt.kind == ValueKind::FlashAttn
                    && out.get(at + 1).map(String::as_str) == Some(FlashAttn::Auto.flag());
                if auto_fa {
                    if let Some(v) = ran_value(opt, ran, chose) {
                        spelled.push(format!("{} {v}", opt.flag));
                        out[at + 1] = v;
                    }
                }
            }
            None => {
                if let Some(v) = ran_value(opt, ran, chose) {
                    spelled.push(format!("{} {v}", opt.flag));
                    added.extend([opt.flag.to_string(), v]);
                }
            }
        }
    }
    let fit_explicit = FIT_OPTIONS.iter().all(|n| {
        llamaserver::option(n)
            .is_some_and(|o| has(&out, o).is_some() || added.contains(&o.flag.to_string()))
    });
    if !added.is_empty() && fit_explicit && !out.iter().any(|w| FIT_FLAGS.contains(&w.as_str())) {
        added.extend(["--fit".to_string(), "off".to_string()]);
    }
    // Before the backend's own trailing flags (`--no-warmup` and the study's extra arguments).
    let at = out
        .iter()
        .position(|w| w == "--no-warmup")
        .unwrap_or(out.len());
    out.splice(at..at, added);
    (out, spelled)
}

/// A value of the backend's `untuned_defaults`, as a flag value (`"= threads"` is not one).
fn recorded_default(opt: &LlamaOption, v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.starts_with('=') => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(flag_value(opt, &ParamValue::Bool(*b))),
        _ => None,
    }
}

/// Where a reconstructed load option's value came from.
#[derive(PartialEq)]
enum Source {
    Tuned,
    /// The backend's recorded value for untuned options.
    Backend,
    /// llama-server's default (the table's `server_default`).
    Server,
}

/// The load-time flags of a run that recorded no arguments: (flag, value) in command-line
/// order, and the comment lines saying which values were not tuned.
fn reconstructed_load_flags<'a>(
    r: &'a Report,
    row: &'a Row,
    used: &mut Vec<&'a str>,
) -> (Vec<(&'static str, String)>, Vec<String>) {
    // What the server ran, not what was asked (module comment).
    let params = row.record.effective_params();
    let chose = row.record.notes.get(CHOSE_NOTE);
    let untuned = r.meta.backend.details.get("untuned_defaults");
    let mut values: Vec<(&'static LlamaOption, String)> = Vec::new();
    let mut backend_defaulted: Vec<String> = Vec::new();
    let mut server_defaulted: Vec<String> = Vec::new();
    let mut automatic: Vec<&str> = Vec::new();
    let mut left_to_server: Vec<String> = Vec::new();
    let mut server_chose: Vec<String> = Vec::new();
    for opt in llamaserver::load_options() {
        let same_as = match opt.untuned {
            Untuned::SameAs(src) => Some(src),
            _ => None,
        };
        let tuned = params
            .get_key_value(opt.name)
            .or_else(|| opt.ollama.and_then(|o| params.get_key_value(o)))
            // Ollama's num_thread drives prompt processing too.
            .or_else(|| {
                same_as
                    .and_then(llamaserver::option)
                    .and_then(|src| src.ollama)
                    .and_then(|o| params.get_key_value(o))
            });
        let value_of = |name: &str| {
            values
                .iter()
                .find(|(o, _)| o.name == name)
                .map(|(_, v)| v.clone())
        };
        let (mut value, source) = match tuned {
            // An `auto` the server did not resolve: left to it, as when measured.
            Some((used_name, v)) if v.is_auto() => {
                used.push(used_name.as_str());
                match ran_value(opt, params, chose) {
                    Some(v) => {
                        server_chose.push(format!("{} {v}", opt.flag));
                        (v, Source::Tuned)
                    }
                    None => {
                        left_to_server.push(format!("{} ({used_name} = auto)", opt.flag));
                        continue;
                    }
                }
            }
            Some((used_name, v)) => {
                used.push(used_name.as_str());
                (flag_value(opt, v), Source::Tuned)
            }
            // Not tuned in an Ollama run: the context Ollama chose, when /api/ps said.
            None if untuned.is_none() && ran_value(opt, params, chose).is_some() => {
                let v = ran_value(opt, params, chose).unwrap_or_default();
                server_chose.push(format!("{} {v}", opt.flag));
                (v, Source::Tuned)
            }
            None => match untuned {
                Some(d) => {
                    let v = d
                        .get(opt.name)
                        .and_then(|v| recorded_default(opt, v))
                        .or_else(|| same_as.and_then(value_of))
                        .unwrap_or_else(|| opt.server_default.to_string());
                    (v, Source::Backend)
                }
                // Spelled out rather than left unset; -tb follows -t as llama-server itself
                // resolves it.
                None => (
                    same_as
                        .and_then(value_of)
                        .unwrap_or_else(|| opt.server_default.to_string()),
                    Source::Server,
                ),
            },
        };
        // -ub never exceeds -b (llama-server and the backend both clamp it).
        if let Some(limit) = opt.at_most.and_then(value_of) {
            if let (Ok(v), Ok(l)) = (value.parse::<i64>(), limit.parse::<i64>()) {
                if v > l {
                    value = l.to_string();
                }
            }
        }
        // An untuned value that is llama-server's own automatic choice (`-fa auto`, `-t -1`,
        // `-ngl auto`) is left to it: leaving the flag out makes the same choice.
        if source != Source::Tuned && llamaserver::is_auto_flag_value(opt, &value) {
            automatic.push(opt.flag);
            continue;
        }
        match source {
            Source::Tuned => {}
            Source::Backend => backend_defaulted.push(format!("{} {value}", opt.flag)),
            Source::Server => server_defaulted.push(format!("{} {value}", opt.flag)),
        }
        values.push((opt, value));
    }
    let mut lines = Vec::new();
    if !automatic.is_empty() {
        lines.push(format!(
            "left to llama-server's automatic choice (the flag is not set, as with auto): {}",
            automatic.join(" ")
        ));
    }
    if !server_chose.is_empty() {
        lines.push(format!(
            "as the server chose them for this trial (trials.jsonl, notes.{CHOSE_NOTE}): {}",
            server_chose.join(" ")
        ));
    }
    if !left_to_server.is_empty() {
        lines.push(format!(
            "left to llama-server, as this trial left them to the server (it did not say what it chose): {}",
            left_to_server.join(", ")
        ));
    }
    if !backend_defaulted.is_empty() {
        lines.push(format!(
            "not tuned in this run, spelled out with the values the tuner started llama-server with (run.json, untuned_defaults): {}",
            backend_defaulted.join(" ")
        ));
    }
    if !server_defaulted.is_empty() {
        lines.push(format!(
            "not tuned in this run, spelled out with llama-server's defaults so --fit cannot rewrite them: {}",
            server_defaulted.join(" ")
        ));
    }
    let flags = values.into_iter().map(|(o, v)| (o.flag, v)).collect();
    (flags, lines)
}

/// Whether a parameter is a load option the command line holds (llama.cpp's name, or the Ollama
/// name of one, or an Ollama runner option with a llama-server flag).
fn on_the_command_line(name: &str) -> bool {
    llamaserver::LOAD_OPTION_NAMES.contains(&name)
        || llamaserver::load_option_for_ollama(name).is_some()
        || matches!(name, "main_gpu" | "use_mmap" | "num_thread")
}

pub(super) fn llama_server(r: &Report, row: &Row, sel: &Selection) -> String {
    let params = &row.record.params;
    let mut used: Vec<&str> = Vec::new();
    let mut words: Vec<String> = vec!["llama-server".into()];
    let mut lines = provenance(r, row);
    let mut notes: Vec<String> = Vec::new();
    match recorded_args(r, row) {
        Some(rec) => {
            // Every load option of the trial is in the recorded arguments.
            used.extend(
                llamaserver::LOAD_OPTION_NAMES
                    .iter()
                    .filter(|n| params.contains_key(**n)),
            );
            let (args, port) = with_default_port(&rec.args);
            let (args, spelled) =
                spell_out_choices(&args, row.record.effective_params(), rec.chose.as_ref());
            words.extend(args.iter().map(|a| shell_word(a)));
            let whose = if rec.trial == row.trial() {
                "this trial was measured with".to_string()
            } else {
                format!(
                    "this trial was measured with, recorded by trial #{} which started that server",
                    rec.trial
                )
            };
            let port = match port {
                Some(p) => format!(
                    ", except --port {} (llama-server's default) for the port {p} of the measurement",
                    llamaserver::DEFAULT_PORT
                ),
                None => String::new(),
            };
            lines.push(format!(
                "the llama-server arguments {whose} (trials.jsonl, notes.{}){port}",
                llamaserver::ARGS_NOTE
            ));
            if !spelled.is_empty() {
                lines.push(format!(
                    "spelled out as the server chose them for what the trial left to it (notes.{CHOSE_NOTE}): {}",
                    spelled.join(" ")
                ));
            }
        }
        None => {
            words.push("-m".into());
            match model_path(r) {
                Some(p) => words.push(shell_word(&p)),
                None => {
                    words.push("MODEL.gguf".into());
                    notes.push(if r.meta.model.is_empty() {
                        "MODEL.gguf: the run recorded no model file; put the GGUF path here"
                            .to_string()
                    } else {
                        format!(
                            "MODEL.gguf: the GGUF file of {} (`ollama show --modelfile {}` prints its path on the FROM line)",
                            r.meta.model, r.meta.model
                        )
                    });
                }
            }
            let (flags, defaulted) = reconstructed_load_flags(r, row, &mut used);
            for (flag, value) in &flags {
                words.push(flag.to_string());
                words.push(shell_word(value));
            }
            lines.extend(defaulted);
        }
    }
    // Ollama runner options with a llama-server flag (not tuned by the llamacpp backend).
    if let Some(v) = params.get("main_gpu") {
        used.push("main_gpu");
        words.push("-mg".into());
        words.push(shell_word(&v.to_string()));
    }
    if let Some(v) = params.get("use_mmap") {
        used.push("use_mmap");
        if v.as_bool() == Some(false) {
            words.push("--no-mmap".into());
        }
    }
    // The sampling options the export writes (see `changes`).
    for opt in llamaserver::sampling_options() {
        let found = std::iter::once(&opt.name)
            .chain(opt.aliases)
            .find_map(|n| params.get_key_value(*n))
            .or_else(|| opt.ollama.and_then(|o| params.get_key_value(o)))
            .filter(|(n, _)| sel.writes(n));
        if let Some((n, v)) = found {
            used.push(n.as_str());
            words.push(opt.flag.to_string());
            words.push(shell_word(&flag_value(opt, v)));
        }
    }
    lines.extend(sel.header(|n| !on_the_command_line(n)));
    for (name, value) in sel.written() {
        if !used.contains(&name) {
            notes.push(format!(
                "{name}={value} left out: no llama-server flag for it"
            ));
        }
    }
    lines.extend(notes);
    let mut out = comment_block(&lines);
    out.push_str(&words.join(" "));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("/m/a.gguf"), "/m/a.gguf");
        assert_eq!(shell_word("/m/my model.gguf"), "'/m/my model.gguf'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn the_measured_port_becomes_the_default_one() {
        let args: Vec<String> = [
            "-m",
            "/m.gguf",
            "--host",
            "127.0.0.1",
            "--port",
            "41234",
            "-c",
            "8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (out, port) = with_default_port(&args);
        assert_eq!(port.as_deref(), Some("41234"));
        assert_eq!(out[5], "8080");
        assert_eq!(out[..5], args[..5]);
        assert_eq!(out[6..], args[6..]);
        let (out, port) = with_default_port(&["--port=9".to_string()]);
        assert_eq!(
            (out[0].as_str(), port.as_deref()),
            ("--port=8080", Some("9"))
        );
    }
}
