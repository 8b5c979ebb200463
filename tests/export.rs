//! Export tests: the Modelfile parsed back and checked against Ollama's rules, the JSON and TOML
//! read back, the llama-server command line from llama.cpp and Ollama runs, and rank errors.

mod common;
use common::shell_words;

use common::{basic_run, fixture, llamacpp_run, nofeasible_run, write_run};
use ollama_tuner::backend::llamacpp::{command_line, HostDefaults};
use ollama_tuner::export::{export, ExportError, ExportFormat};
use ollama_tuner::store::RunDir;
use std::path::Path;

const INT_OPTIONS: &[&str] = &[
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
];
const FLOAT_OPTIONS: &[&str] = &[
    "top_p",
    "min_p",
    "typical_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
];
const BOOL_OPTIONS: &[&str] = &["use_mmap"];

/// A Modelfile as `ollama create` reads it: the FROM line and the PARAMETER lines.
#[derive(Debug)]
struct Modelfile {
    from: String,
    params: Vec<(String, String)>,
}

/// A small Modelfile parser with Ollama's rules: `#` comments and blank lines are ignored,
/// the first instruction must be FROM, every other instruction here must be PARAMETER with a
/// name and a value, and every name must be a valid option of its type.
fn parse_modelfile(text: &str) -> Result<Modelfile, String> {
    let mut from = None;
    let mut params = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, rest) = line
            .split_once(' ')
            .ok_or(format!("line {}: no argument: {line}", i + 1))?;
        match cmd.to_ascii_uppercase().as_str() {
            "FROM" if from.is_none() => from = Some(rest.trim().to_string()),
            "FROM" => return Err(format!("line {}: second FROM", i + 1)),
            _ if from.is_none() => return Err(format!("line {}: {cmd} before FROM", i + 1)),
            "PARAMETER" => {
                let (name, value) = rest
                    .trim()
                    .split_once(' ')
                    .ok_or(format!("line {}: PARAMETER without value", i + 1))?;
                let value = value.trim();
                if INT_OPTIONS.contains(&name) {
                    value
                        .parse::<i64>()
                        .map_err(|e| format!("{name} {value}: not an integer: {e}"))?;
                } else if FLOAT_OPTIONS.contains(&name) {
                    value
                        .parse::<f64>()
                        .map_err(|e| format!("{name} {value}: not a float: {e}"))?;
                } else if BOOL_OPTIONS.contains(&name) {
                    value
                        .parse::<bool>()
                        .map_err(|e| format!("{name} {value}: not a bool: {e}"))?;
                } else if name == "stop" {
                    if !(value.starts_with('"') && value.ends_with('"') && value.len() >= 2) {
                        return Err(format!("stop {value}: not quoted"));
                    }
                } else {
                    return Err(format!("unknown parameter {name}"));
                }
                params.push((name.to_string(), value.to_string()));
            }
            other => return Err(format!("line {}: unexpected instruction {other}", i + 1)),
        }
    }
    Ok(Modelfile {
        from: from.ok_or("no FROM line")?,
        params,
    })
}

fn basic() -> RunDir {
    RunDir::new(fixture("run_basic"))
}

#[test]
fn modelfile_round_trips_through_ollamas_rules() {
    for rank in 1..=6 {
        let text = export(&basic(), ExportFormat::Modelfile, rank).unwrap();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .unwrap();
        assert!(first.starts_with("FROM "), "{text}");
        let mf = parse_modelfile(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(mf.from, "gemma3:4b");
        // Never an output setting (the temperature), in every rank.
        for (n, _) in &mf.params {
            assert!(
                ["num_ctx", "num_gpu", "num_batch"].contains(&n.as_str()),
                "{text}"
            );
        }
    }
    let text = export(&basic(), ExportFormat::Modelfile, 1).unwrap();
    let mf = parse_modelfile(&text).unwrap();
    // Rank 1 (trial #4) changes only the context against the baseline.
    assert_eq!(mf.params, [("num_ctx".to_string(), "4096".to_string())]);
    assert!(text.contains("# Build it with: ollama create NAME -f Modelfile"));
    assert!(text.contains("rank 1 of 6: trial #4"));
    assert!(text.contains("statistically tied with trial #3"));
    insta::assert_snapshot!("modelfile_rank1", text);
}

/// Only the changes against the baseline, never an output setting: what each rank writes and
/// what its header says it kept.
#[test]
fn exports_write_only_changes_and_keep_output_settings() {
    let text = export(&basic(), ExportFormat::Modelfile, 1).unwrap();
    assert!(
        text.contains("# only the settings that differ from the baseline (the study's defaults) are set; every other setting stays as you run it today\n"),
        "{text}"
    );
    assert!(
        text.contains("# kept at your values, the same as the baseline (the study's defaults): num_gpu 35, num_batch 512\n"),
        "{text}"
    );
    assert!(
        text.contains("# kept at your values, output settings that change what the model writes (not applied unless the study sets decision.allow_output_changes = true): temperature 0.8 (this trial ran with 0.4)\n"),
        "{text}"
    );
    // Rank 2 (trial #3) also changes num_batch.
    let v: serde_json::Value =
        serde_json::from_str(&export(&basic(), ExportFormat::Json, 2).unwrap()).unwrap();
    assert_eq!(v, serde_json::json!({"num_ctx": 4096, "num_batch": 256}));
    // The baseline itself changes nothing.
    let baseline_rank = (1..=6)
        .find(|&k| {
            export(&basic(), ExportFormat::Toml, k)
                .unwrap()
                .contains("this is the baseline")
        })
        .unwrap();
    let text = export(&basic(), ExportFormat::Toml, baseline_rank).unwrap();
    assert!(text.ends_with("[options]\n"), "{text}");
    assert!(
        text.contains(
            "# nothing to set: this configuration changes no setting against the baseline"
        ),
        "{text}"
    );
    assert_eq!(
        export(&basic(), ExportFormat::Json, baseline_rank).unwrap(),
        "{}\n"
    );
}

/// The committed fixture is a run folder recorded before parameters had roles (its run.json
/// has none): it loads, and its temperature is the output setting the Ollama table says.
#[test]
fn a_run_recorded_before_roles_gets_the_tables_roles() {
    let meta = std::fs::read_to_string(fixture("run_basic").join("run.json")).unwrap();
    assert!(
        !meta.contains("\"role\""),
        "the fixture is expected to predate roles"
    );
    let text = export(&basic(), ExportFormat::Toml, 1).unwrap();
    assert!(!text.contains("temperature ="), "{text}");
    // Recorded as a speed setting in a new run.json, the temperature is written.
    let (mut meta, records) = basic_run();
    meta.space.params[3].role = ollama_tuner::engine::space::Role::Speed;
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let v: serde_json::Value =
        serde_json::from_str(&export(&run, ExportFormat::Json, 1).unwrap()).unwrap();
    assert_eq!(v, serde_json::json!({"num_ctx": 4096, "temperature": 0.4}));
}

/// A study that opts in (`decision.allow_output_changes = true` in the frozen study.toml) gets
/// its changed output settings written, and the header says why.
#[test]
fn output_settings_are_written_only_when_the_study_allows_it() {
    let (meta, records) = basic_run();
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    std::fs::write(run.file("study.toml"), allowing_output_changes()).unwrap();
    let text = export(&run, ExportFormat::Modelfile, 1).unwrap();
    let mf = parse_modelfile(&text).unwrap();
    assert_eq!(
        mf.params,
        [
            ("num_ctx".to_string(), "4096".to_string()),
            ("temperature".to_string(), "0.4".to_string())
        ]
    );
    assert!(
        text.contains("# output settings changed because the study sets decision.allow_output_changes = true: temperature\n"),
        "{text}"
    );
    let cmd = export(&run, ExportFormat::LlamaServer, 1).unwrap();
    assert!(cmd.trim_end().ends_with(" --temp 0.4"), "{cmd}");
    // A study file that no longer parses is still read for that one key.
    std::fs::write(
        run.file("study.toml"),
        "[study]\nname = \"x\"\n[decision]\nallow_output_changes = true\n",
    )
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&export(&run, ExportFormat::Json, 1).unwrap()).unwrap();
    assert_eq!(v["temperature"], 0.4);
}

/// A frozen study that sets `decision.allow_output_changes = true`.
fn allowing_output_changes() -> &'static str {
    "[study]\nname = \"gemma3-laptop\"\n\n[backend]\nkind = \"ollama\"\n\n[params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1.5\ndefault = 0.8\n\n[decision]\nallow_output_changes = true\n"
}

/// `auto` (the server decides) is never written: the option stays unset in every format.
#[test]
fn auto_values_are_never_written() {
    use ollama_tuner::engine::space::ParamValue;
    let (mut meta, mut records) = basic_run();
    meta.space.params[1].default = Some(ParamValue::auto());
    // The baseline and rank 1 (trial #4, as an ablation that reverted num_gpu would be) leave
    // the layer count to the server.
    for r in records.iter_mut().filter(|r| r.trial == 0 || r.trial == 4) {
        r.params.insert("num_gpu".into(), ParamValue::auto());
    }
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let text = export(&run, ExportFormat::Modelfile, 1).unwrap();
    assert!(text.contains("rank 1 of 6: trial #4"), "{text}");
    let mf = parse_modelfile(&text).unwrap();
    assert_eq!(mf.params, [("num_ctx".to_string(), "4096".to_string())]);
    assert!(
        text.contains("# left to the server (auto: not set, the server chooses as it does by default): num_gpu\n"),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&export(&run, ExportFormat::Json, 1).unwrap()).unwrap();
    assert_eq!(v, serde_json::json!({"num_ctx": 4096}));
    let toml = export(&run, ExportFormat::Toml, 1).unwrap();
    assert!(!toml.contains("num_gpu ="), "{toml}");
    let cmd = export(&run, ExportFormat::LlamaServer, 1).unwrap();
    let line = cmd.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(!line.contains("-ngl") && !line.contains("auto"), "{cmd}");
    assert!(
        cmd.contains("# left to llama-server's automatic choice (the flag is not set, as with auto): -t -tb -fa\n"),
        "{cmd}"
    );
    assert!(cmd.contains("-ngl (num_gpu = auto)"), "{cmd}");
    // A trial with a layer count against the `auto` baseline writes it.
    let v: serde_json::Value =
        serde_json::from_str(&export(&run, ExportFormat::Json, 2).unwrap()).unwrap();
    assert_eq!(v["num_gpu"], 35, "{v}");
}

#[test]
fn modelfile_from_a_llamacpp_run_maps_names_and_explains_the_rest() {
    let (meta, records) = llamacpp_run();
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let text = export(&run, ExportFormat::Modelfile, 1).unwrap();
    let mf = parse_modelfile(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(mf.from, "/models/gemma 3/gemma-3-270m-q4_k_m.gguf");
    // The changes against the baseline: the context (mapped to Ollama's name) and flash
    // attention (server-wide in Ollama); threads, batch and the V cache type are unchanged, and
    // the temperature is an output setting.
    let names: Vec<&str> = mf.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["num_ctx"]);
    assert!(text.contains("# flash_attn=true left out: server-wide in Ollama, not per model: set OLLAMA_FLASH_ATTENTION=1"), "{text}");
    assert!(
        text.contains("# kept at your values, the same as the baseline (the study's defaults): threads 2, batch_size 512, cache_type_v q8_0\n"),
        "{text}"
    );
    assert!(
        text.contains("temperature 0.8 (this trial ran with 0.4)"),
        "{text}"
    );
}

#[test]
fn invalid_and_untyped_options_become_comments() {
    let (mut meta, mut records) = basic_run();
    meta.space.params.push(ollama_tuner::engine::space::Param {
        name: "keep_alive_min".into(),
        kind: ollama_tuner::engine::space::ParamKind::Int {
            low: 1,
            high: 60,
            log: false,
            step: 1,
        },
        default: None,
        role: ollama_tuner::engine::space::Role::Speed,
        prefer: None,
        memory: Default::default(),
    });
    for r in records.iter_mut() {
        r.params.insert(
            "keep_alive_min".into(),
            ollama_tuner::engine::space::ParamValue::Int(5),
        );
        r.params.insert(
            "use_mmap".into(),
            ollama_tuner::engine::space::ParamValue::Str("false".into()),
        );
        r.params.insert(
            "stop".into(),
            ollama_tuner::engine::space::ParamValue::Str("<end \"of\" turn>".into()),
        );
        // A float where Ollama wants an integer: refused by `ollama create`, so left out.
        r.params.insert(
            "top_k".into(),
            ollama_tuner::engine::space::ParamValue::Float(40.5),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    // stop and top_k are output settings: written (and type-checked) only when allowed.
    std::fs::write(run.file("study.toml"), allowing_output_changes()).unwrap();
    let text = export(&run, ExportFormat::Modelfile, 1).unwrap();
    let mf = parse_modelfile(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        mf.params.contains(&("use_mmap".into(), "false".into())),
        "{text}"
    );
    assert!(
        mf.params
            .contains(&("stop".into(), r#""<end \"of\" turn>""#.into())),
        "{text}"
    );
    assert!(
        !mf.params
            .iter()
            .any(|(n, _)| n == "keep_alive_min" || n == "top_k"),
        "{text}"
    );
    assert!(
        text.contains("# keep_alive_min=5 left out: not an Ollama option"),
        "{text}"
    );
    assert!(
        text.contains("# top_k=40.5 left out: 40.5 is not an integer"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&export(&run, ExportFormat::Json, 1).unwrap()).unwrap();
    assert_eq!(json["use_mmap"], false);
    assert_eq!(json["stop"], serde_json::json!(["<end \"of\" turn>"]));
    assert!(json.get("keep_alive_min").is_none() && json.get("top_k").is_none());
}

#[test]
fn json_and_toml_are_typed_options() {
    let text = export(&basic(), ExportFormat::Json, 1).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, serde_json::json!({"num_ctx": 4096}));
    assert!(v["num_ctx"].is_i64());
    insta::assert_snapshot!("json_rank1", text);

    let text = export(&basic(), ExportFormat::Toml, 2).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let o = t["options"].as_table().unwrap();
    assert_eq!(o["num_ctx"].as_integer(), Some(4096));
    assert_eq!(o["num_batch"].as_integer(), Some(256));
    assert_eq!(o.len(), 2, "{text}");
    insta::assert_snapshot!("toml_rank2", text);
}

/// The llamacpp fixture as the backend records a managed run: its values for untuned options in
/// run.json, and on every trial the arguments of the llama-server it was measured on (built by
/// the backend's own `command_line`, on a different ephemeral port each time).
fn recorded_llamacpp_run() -> (
    ollama_tuner::store::RunMeta,
    Vec<ollama_tuner::trial::TrialRecord>,
) {
    let (mut meta, mut records) = llamacpp_run();
    let host = HostDefaults {
        threads: 2,
        n_gpu_layers: 0,
    };
    meta.backend.details.insert(
        "untuned_defaults".into(),
        serde_json::json!({"ctx_size": 4096, "threads": 2, "threads_batch": "= threads",
            "batch_size": 2048, "ubatch_size": 512, "flash_attn": "auto", "cache_type_k": "f16",
            "cache_type_v": "f16", "n_gpu_layers": 0, "parallel": 1, "fit": "off",
            "warmup": "off (the protocol warms up)"}),
    );
    for r in records.iter_mut() {
        let argv = command_line(
            Path::new("/opt/llama/bin/llama-server"),
            Path::new(MODEL),
            "127.0.0.1",
            40000 + r.trial as u16,
            &r.params,
            &host,
            &["--mlock".to_string()],
        )
        .unwrap()
        .args;
        r.notes
            .insert("llama_server_args".into(), serde_json::json!(argv[1..]));
    }
    (meta, records)
}

const MODEL: &str = "/models/gemma 3/gemma-3-270m-q4_k_m.gguf";

#[test]
fn llama_server_command_from_a_llamacpp_run_is_the_one_measured() {
    let (meta, records) = recorded_llamacpp_run();
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let text = export(&run, ExportFormat::LlamaServer, 1).unwrap();
    let cmd = text.lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(
        cmd,
        "llama-server -m '/models/gemma 3/gemma-3-270m-q4_k_m.gguf' --host 127.0.0.1 --port 8080 \
         -c 4096 -t 2 -tb 2 -b 512 -ub 512 -fa on -ctk f16 -ctv q8_0 -ngl 0 -np 1 --fit off \
         --no-warmup --mlock"
    );
    // Word for word the recorded arguments of trial #4 (rank 1), the port aside; its sampling
    // option (the temperature) is an output setting, kept at the user's value.
    let recorded: Vec<String> = records[4].notes["llama_server_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let words = shell_words(cmd);
    assert_eq!(words[0], "llama-server");
    let n = recorded.len();
    let port = recorded.iter().position(|a| a == "--port").unwrap() + 1;
    assert_eq!(recorded[port], "40004");
    for (i, (got, want)) in words[1..=n].iter().zip(&recorded).enumerate() {
        if i == port {
            assert_eq!(got, "8080");
        } else {
            assert_eq!(got, want, "argument {i}");
        }
    }
    assert_eq!(words.len(), n + 1);
    assert!(
        text.contains("temperature 0.8 (this trial ran with 0.4)"),
        "{text}"
    );
    assert!(
        text.contains("# the llama-server arguments this trial was measured with (trials.jsonl, notes.llama_server_args), except --port 8080 (llama-server's default) for the port 40004 of the measurement"),
        "{text}"
    );
    insta::assert_snapshot!("llama_server_llamacpp_rank1", text);
}

/// A journal that recorded the arguments only on the trial that started the server: the trial
/// measured on that server without a restart exports the starting trial's arguments.
#[test]
fn llama_server_command_of_a_trial_without_restart_comes_from_the_trial_that_started_it() {
    let (meta, mut records) = recorded_llamacpp_run();
    let rank1 = records[4].clone();
    // Trial #3 ran the same load options just before (only its temperature differs), and
    // trial #4 recorded nothing of its own.
    for name in &meta.runner_params {
        match rank1.params.get(name) {
            Some(v) => records[3].params.insert(name.clone(), v.clone()),
            None => records[3].params.remove(name),
        };
    }
    records[3].notes = rank1.notes.clone();
    records[4].notes.clear();
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let text = export(&run, ExportFormat::LlamaServer, 1).unwrap();
    assert!(text.contains("rank 1 of 6: trial #4"), "{text}");
    assert!(
        text.contains("measured with, recorded by trial #3 which started that server"),
        "{text}"
    );
    assert!(
        text.contains(" --port 8080 -c 4096 -t 2 -tb 2 -b 512 "),
        "{text}"
    );
}

/// A run that recorded no arguments: the load flags are reconstructed, untuned ones at the
/// values the backend recorded for them (`-ngl 0` on this CPU-only machine, not `auto`).
#[test]
fn llama_server_command_from_a_llamacpp_run_without_recorded_arguments() {
    let (mut meta, records) = recorded_llamacpp_run();
    let records: Vec<_> = records
        .into_iter()
        .map(|mut r| {
            r.notes.clear();
            r
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let text = export(&run, ExportFormat::LlamaServer, 1).unwrap();
    let cmd = text.lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(
        cmd,
        "llama-server -m '/models/gemma 3/gemma-3-270m-q4_k_m.gguf' -c 4096 -t 2 -tb 2 -b 512 -ub 512 -fa on \
         -ctk f16 -ctv q8_0 -ngl 0 -np 1"
    );
    assert!(
        text.contains("# not tuned in this run, spelled out with the values the tuner started llama-server with (run.json, untuned_defaults): -tb 2 -ub 512 -ctk f16 -ngl 0 -np 1"),
        "{text}"
    );
    // Without even those (an attach-mode run): llama-server's own defaults, and the layer
    // count left to its automatic choice (never written as `auto`).
    meta.backend.details.remove("untuned_defaults");
    let run = write_run(dir.path(), &meta, &records);
    let text = export(&run, ExportFormat::LlamaServer, 1).unwrap();
    assert!(text.contains(" -ctv q8_0 -np 1\n"), "{text}");
    assert!(
        text.contains(
            "# left to llama-server's automatic choice (the flag is not set, as with auto): -ngl\n"
        ),
        "{text}"
    );
}

#[test]
fn llama_server_command_from_an_ollama_run() {
    let text = export(&basic(), ExportFormat::LlamaServer, 1).unwrap();
    let cmd = text.lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(
        cmd,
        "llama-server -m MODEL.gguf -c 4096 -b 512 -ub 512 -ctk f16 -ctv f16 -ngl 35 -np 1"
    );
    assert!(
        text.contains("`ollama show --modelfile gemma3:4b`"),
        "{text}"
    );
    // Every load-time flag is set explicitly, except those whose value is llama-server's own
    // automatic choice, which are named as left to it.
    let auto = text
        .lines()
        .find(|l| l.starts_with("# left to llama-server's automatic choice"))
        .unwrap();
    assert!(auto.ends_with(": -t -tb -fa"), "{auto}");
    for flag in [
        "-c", "-t", "-tb", "-b", "-ub", "-fa", "-ctk", "-ctv", "-ngl", "-np",
    ] {
        let set = cmd.split(' ').any(|w| w == flag);
        let left = auto.split(' ').any(|w| w == flag);
        assert!(set != left, "{flag}: {text}");
    }
    insta::assert_snapshot!("llama_server_ollama_rank1", text);
}

#[test]
fn infeasible_rank_exports_with_a_warning() {
    let text = export(&basic(), ExportFormat::Modelfile, 6).unwrap();
    assert!(
        text.contains(
            "# WARNING: this configuration violated the run's constraints: ttft_p95 1.01 > 0.5"
        ),
        "{text}"
    );
    parse_modelfile(&text).unwrap();
}

#[test]
fn rank_out_of_range_is_a_clear_error() {
    let err = export(&basic(), ExportFormat::Modelfile, 7).unwrap_err();
    assert!(matches!(
        err,
        ExportError::RankOutOfRange {
            rank: 7,
            available: 6,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "there is no rank 7: this run has 6 ranked configuration(s) (trials that ran and produced decode_tps); \
         pick a rank from 1 to 6, as listed in report.md"
    );
    assert!(matches!(
        export(&basic(), ExportFormat::Json, 0),
        Err(ExportError::RankOutOfRange { rank: 0, .. })
    ));
    let err = export(
        &RunDir::new(fixture("run_nofeasible")),
        ExportFormat::Toml,
        1,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "nothing to export: none of the 4 trial(s) of this run produced value (see the Failures section of report.md)"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = export(&RunDir::new(dir.path()), ExportFormat::Toml, 1).unwrap_err();
    assert!(err.to_string().contains("not a run folder"), "{err}");
}

#[test]
fn command_runs_export_their_own_parameter_names() {
    let (meta, mut records) = nofeasible_run();
    // Make one trial succeed.
    let r = &mut records[1];
    r.status = ollama_tuner::trial::Status::Ok;
    r.failure = None;
    r.error = None;
    r.objective = Some(1.5);
    r.feasible = true;
    r.samples = vec![ollama_tuner::engine::stats::Sample::from([(
        "value".to_string(),
        1.5,
    )])];
    r.metrics = ollama_tuner::engine::stats::summarize(&r.samples);
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let v: serde_json::Value =
        serde_json::from_str(&export(&run, ExportFormat::Json, 1).unwrap()).unwrap();
    assert_eq!(v, serde_json::json!({"x": 7.5, "mode": "fast"}));
    let text = export(&run, ExportFormat::Modelfile, 1).unwrap();
    assert!(
        text.contains("FROM MODEL") && text.contains("# x=7.5 left out: not an Ollama option"),
        "{text}"
    );
}
