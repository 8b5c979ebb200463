//! Tests of study parsing: a good file, and each kind of mistake located by line and field.

use super::*;
use std::path::Path;

const GOOD: &str = r#"
[study]
name = "t"
model = "gemma3:latest"
seed = 7

[backend]
kind = "ollama"

[objective]
metric = "decode_tps"
constraints = ["ttft_p95 <= 500ms"]

[params.num_ctx]
type = "int"
low = 512
high = 8192
log = true
default = 2048

[params.temperature]
type = "float"
low = 0.0
high = 1.5
default = 0.8

[params.kv]
type = "categorical"
choices = ["f16", "q8_0"]
"#;

fn err(text: &str) -> ConfigError {
    parse_study(Path::new("x.toml"), text).expect_err("should fail")
}

#[test]
fn good_file_parses_in_file_order() {
    let s = parse_study(Path::new("x.toml"), GOOD).unwrap();
    let names: Vec<_> = s.space.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["num_ctx", "temperature", "kv"]);
    assert_eq!(s.objective.constraints[0].bound, 0.5);
    assert_eq!(s.objective.constraints[0].metric.stat, Stat::P95);
    assert_eq!(s.seed, 7);
    assert!(s.runner_params.contains(&"num_ctx".to_string()));
}

#[test]
fn unknown_key_names_line_and_field() {
    let e = err(&GOOD.replace("log = true", "lg = true"));
    assert_eq!(e.line, 18, "{e}");
    assert!(e.to_string().contains("lg"), "{e}");
}

#[test]
fn low_above_high() {
    let e = err(&GOOD.replace("high = 8192", "high = 100"));
    assert!(e.message.contains("greater than high"), "{e}");
    assert_eq!(e.field, "params.num_ctx.high");
    assert_eq!(e.line, 17);
}

#[test]
fn log_with_nonpositive_low() {
    let e = err(&GOOD.replace("low = 512", "low = 0"));
    assert!(e.message.contains("log-scale"), "{e}");
    assert_eq!(e.field, "params.num_ctx.low");
}

#[test]
fn default_outside_bounds() {
    let e = err(&GOOD.replace("default = 2048", "default = 100000"));
    assert_eq!(e.field, "params.num_ctx.default");
    assert_eq!(e.line, 19);
}

#[test]
fn empty_categorical() {
    let e = err(&GOOD.replace(r#"choices = ["f16", "q8_0"]"#, "choices = []"));
    assert_eq!(e.field, "params.kv.choices");
}

#[test]
fn duplicate_parameter_is_a_toml_error_with_line() {
    let text = format!("{GOOD}\n[params.kv]\ntype = \"bool\"\n");
    let e = err(&text);
    assert!(e.line > 30, "{e}");
    assert!(e.message.to_lowercase().contains("duplicate"), "{e}");
}

#[test]
fn wrong_types() {
    let e = err(&GOOD.replace("low = 512", "low = \"512\""));
    assert!(e.message.contains("integer"), "{e}");
    let e = err(&GOOD.replace("low = 512", "low = 512.5"));
    assert!(e.message.contains("integer"), "{e}");
    let e = err(&GOOD.replace("seed = 7", "seed = \"seven\""));
    assert!(e.line == 5, "{e}");
}

#[test]
fn bad_constraint_and_direction() {
    let e = err(&GOOD.replace("ttft_p95 <= 500ms", "ttft_p95 < 1"));
    assert_eq!(e.field, "objective.constraints");
    let e = err(&GOOD.replace(
        "metric = \"decode_tps\"",
        "metric = \"decode_tps\"\ndirection = \"up\"",
    ));
    assert_eq!(e.field, "objective.direction");
}

#[test]
fn command_backend_needs_argv() {
    let e = err(&GOOD.replace("kind = \"ollama\"", "kind = \"command\""));
    assert_eq!(e.field, "backend.argv");
}

#[test]
fn quantities() {
    assert_eq!(parse_quantity("0.5s"), Some(0.5));
    assert_eq!(parse_quantity("250ms"), Some(0.25));
    assert_eq!(parse_quantity("3"), Some(3.0));
    assert_eq!(parse_quantity("fast"), None);
    assert_eq!(MetricRef::parse("ttft_p95").metric, "ttft");
    assert_eq!(MetricRef::parse("decode_tps").stat, Stat::Median);
}

#[test]
fn runner_params_follow_the_backend_kind() {
    let s = parse_study(Path::new("x.toml"), GOOD).unwrap();
    assert_eq!(s.runner_params, crate::domain::ollama::RUNNER_OPTIONS);
    assert_eq!(s.optimizer.confirm, SERVER_CONFIRM);
    // The simulator serves only its profile's model (gemma3-4b's by default).
    let sim = GOOD
        .replace("kind = \"ollama\"", "kind = \"simulator\"")
        .replace("gemma3:latest", "gemma3:4b");
    let s = parse_study(Path::new("x.toml"), &sim).unwrap();
    assert_eq!(s.runner_params, OLLAMA_RUNNER_OPTIONS);
    let cmd = GOOD.replace(
        "kind = \"ollama\"",
        "kind = \"command\"\nargv = [\"./bench\"]",
    );
    let s = parse_study(Path::new("x.toml"), &cmd).unwrap();
    assert!(s.runner_params.is_empty());
    assert_eq!((s.protocol.repeats, s.protocol.warmup), (1, 0));
    assert_eq!(s.optimizer.confirm, 1);
    let own = GOOD.replace(
        "kind = \"ollama\"",
        "kind = \"ollama\"\nrunner_params = [\"kv\"]",
    );
    let s = parse_study(Path::new("x.toml"), &own).unwrap();
    assert_eq!(s.runner_params, ["kv"]);
}

#[test]
fn settings_of_another_backend_kind() {
    let e = err(&GOOD.replace("kind = \"ollama\"", "kind = \"simulator\"\nurl = \"x\""));
    assert_eq!(e.field, "backend.url");
    assert_eq!(e.message, "not a setting of the simulator backend");
    let e = err(&GOOD.replace("kind = \"ollama\"", "kind = \"gpu\""));
    assert_eq!(e.field, "backend.kind");
}

#[test]
fn parameter_fields_that_do_not_fit_the_type() {
    let e = err(&GOOD.replace(
        r#"choices = ["f16", "q8_0"]"#,
        "choices = [\"f16\"]\nlow = 1",
    ));
    assert_eq!(e.field, "params.kv.low");
    assert_eq!(e.message, "not allowed for type \"categorical\"");
    let e = err(&GOOD.replace(r#"type = "categorical""#, r#"type = "bool""#));
    assert_eq!(e.field, "params.kv.choices");
    let e = err(&GOOD.replace(r#"type = "categorical""#, r#"type = "enum""#));
    assert_eq!(e.field, "params.kv.type");
    let e = err(&GOOD.replace("default = 0.8", "default = \"hot\""));
    assert_eq!(e.field, "params.temperature.default");
}

#[test]
fn sections_report_their_fields() {
    let with = |section: &str| format!("{GOOD}\n{section}\n");
    let e = err(&with("[optimizer]\nstrategy = \"tpe\""));
    assert_eq!(e.field, "optimizer.strategy");
    let e = err(&with("[budget]\ntrials = 0"));
    assert_eq!(e.message, "must be at least 1, got 0");
    let e = err(&with("[protocol]\nrequest_timeout = 0"));
    assert_eq!(e.field, "protocol.request_timeout");
    let e = err(&with("[protocol]\nprompts = \"missing.txt\""));
    assert_eq!(e.field, "protocol.prompts");
    let e = err(&with("[budget]\nwall_time = \"soon\""));
    assert_eq!(e.field, "budget.wall_time");
}

#[test]
fn roles_default_from_the_backend_tables() {
    use crate::engine::space::{Prefer, Role};
    let s = parse_study(Path::new("x.toml"), GOOD).unwrap();
    let role = |s: &Study, n: &str| {
        let p = s.space.get(n).unwrap();
        (p.role, p.prefer)
    };
    assert_eq!(role(&s, "num_ctx"), (Role::Requirement, Some(Prefer::High)));
    assert_eq!(role(&s, "temperature"), (Role::Output, None));
    // A name Ollama does not know is a speed setting.
    assert_eq!(role(&s, "kv"), (Role::Speed, None));
    // A command backend knows no option: speed unless the study says otherwise.
    let cmd = GOOD.replace(
        "kind = \"ollama\"",
        "kind = \"command\"\nargv = [\"./bench\"]",
    );
    let s = parse_study(Path::new("x.toml"), &cmd).unwrap();
    assert_eq!(role(&s, "temperature"), (Role::Speed, None));
    assert_eq!(role(&s, "num_ctx"), (Role::Speed, None));
}

#[test]
fn roles_and_preferences_from_the_study() {
    use crate::engine::space::{Prefer, Role};
    let text = GOOD
        .replace("default = 2048", "default = 2048\nprefer = \"low\"")
        .replace("default = 0.8", "default = 0.8\nrole = \"speed\"")
        .replace(
            r#"choices = ["f16", "q8_0"]"#,
            "choices = [\"f16\", \"q8_0\"]\nrole = \"output\"",
        );
    let s = parse_study(Path::new("x.toml"), &text).unwrap();
    let p = |n: &str| s.space.get(n).unwrap();
    assert_eq!(
        (p("num_ctx").role, p("num_ctx").prefer),
        (Role::Requirement, Some(Prefer::Low))
    );
    assert_eq!(
        (p("temperature").role, p("temperature").prefer),
        (Role::Speed, None)
    );
    assert_eq!(p("kv").role, Role::Output);
    // A role other than the table's does not inherit the table's direction.
    let s = parse_study(
        Path::new("x.toml"),
        &GOOD.replace("default = 2048", "default = 2048\nrole = \"speed\""),
    )
    .unwrap();
    assert_eq!(
        (s.space.params[0].role, s.space.params[0].prefer),
        (Role::Speed, None)
    );
}

#[test]
fn a_bad_role_or_preference_is_located() {
    let e = err(&GOOD.replace("default = 0.8", "default = 0.8\nrole = \"fast\""));
    assert_eq!(e.field, "params.temperature.role");
    assert_eq!((e.line, e.column), (26, 8), "{e}");
    assert!(
        e.message
            .starts_with("unknown role \"fast\"; use \"speed\""),
        "{e}"
    );
    let e = err(&GOOD.replace("default = 2048", "default = 2048\nprefer = \"up\""));
    assert_eq!(e.field, "params.num_ctx.prefer");
    assert_eq!(e.line, 20, "{e}");
    let e = err(&GOOD.replace(
        r#"choices = ["f16", "q8_0"]"#,
        "choices = [\"f16\", \"q8_0\"]\nprefer = \"high\"",
    ));
    assert_eq!(e.field, "params.kv.prefer");
    assert!(e.message.contains("no high or low end"), "{e}");
}

#[test]
fn auto_defaults_where_the_server_decides() {
    use crate::engine::space::ParamValue;
    let text = GOOD.replace("default = 2048", "default = \"auto\"");
    let s = parse_study(Path::new("x.toml"), &text).unwrap();
    assert_eq!(s.space.params[0].default, Some(ParamValue::auto()));
    // The baseline holds the string value, through the engine's normalization too.
    let base = crate::engine::space::Config::from([("num_ctx".to_string(), ParamValue::auto())]);
    assert_eq!(
        s.space.normalize_config(&base)["num_ctx"],
        ParamValue::auto()
    );
    // llama-server decides the thread count; a categorical may list auto where it decides.
    let llama = r#"
[study]
name = "l"
[backend]
kind = "llamacpp"
[params.threads]
type = "int"
low = 1
high = 4
default = "auto"
[params.flash_attn]
type = "categorical"
choices = ["auto", "on", "off"]
default = "auto"
"#;
    let s = parse_study(Path::new("x.toml"), llama).unwrap();
    assert_eq!(s.space.params[0].default, Some(ParamValue::auto()));
}

#[test]
fn auto_where_the_server_does_not_decide_is_refused() {
    // temperature has a fixed default in Ollama.
    let e = err(&GOOD.replace("default = 0.8", "default = \"auto\""));
    assert_eq!(e.field, "params.temperature.default");
    assert_eq!((e.line, e.column), (25, 11), "{e}");
    assert!(
        e.message.contains(
            "Ollama has no automatic value for temperature; give a value in float [0.0, 1.5]"
        ),
        "{e}"
    );
    // llama-server's batch size defaults to a fixed 2048.
    let llama = "[study]\nname = \"l\"\n[backend]\nkind = \"llamacpp\"\n[params.batch_size]\ntype = \"int\"\nlow = 8\nhigh = 64\ndefault = \"auto\"\n";
    let e = err(llama);
    assert_eq!((e.field.as_str(), e.line), ("params.batch_size.default", 9));
    assert!(
        e.message.contains("llama-server has no automatic value"),
        "{e}"
    );
    let e = err(&llama.replace(
        "type = \"int\"\nlow = 8\nhigh = 64\ndefault = \"auto\"",
        "type = \"categorical\"\nchoices = [\"auto\", 64]",
    ));
    assert_eq!(e.field, "params.batch_size.choices");
    // A command has no server to decide; a name Ollama does not know is not decided by it.
    let cmd = GOOD
        .replace(
            "kind = \"ollama\"",
            "kind = \"command\"\nargv = [\"./bench\"]",
        )
        .replace("default = 2048", "default = \"auto\"");
    let e = err(&cmd);
    assert_eq!(e.field, "params.num_ctx.default");
    assert!(e.message.contains("command backend has no server"), "{e}");
    let text = format!(
        "{GOOD}\n[params.my_knob]\ntype = \"int\"\nlow = 1\nhigh = 2\ndefault = \"auto\"\n"
    );
    let e = err(&text);
    assert!(
        e.message
            .contains("my_knob is not an option Ollama decides itself"),
        "{e}"
    );
}

#[test]
fn the_decision_table() {
    let s = parse_study(Path::new("x.toml"), GOOD).unwrap();
    assert_eq!(s.decision, DecisionSettings::default());
    assert!(!s.decision.allow_output_changes);
    let text = format!(
        "{GOOD}\n[decision]\nenabled = false\nshare = 0.25\ncandidates = 6\nalpha = 0.1\nmin_rounds = 4\nallow_output_changes = true\n"
    );
    let s = parse_study(Path::new("x.toml"), &text).unwrap();
    assert_eq!(
        s.decision,
        DecisionSettings {
            enabled: false,
            share: 0.25,
            candidates: 6,
            alpha: 0.1,
            min_rounds: 4,
            allow_output_changes: true,
        }
    );
    let with = |line: &str| format!("{GOOD}\n[decision]\n{line}\n");
    for (line, field) in [
        ("share = 0", "decision.share"),
        ("share = 1.0", "decision.share"),
        ("alpha = 0.5", "decision.alpha"),
        ("alpha = 0", "decision.alpha"),
        ("candidates = 0", "decision.candidates"),
        ("min_rounds = 1", "decision.min_rounds"),
    ] {
        let e = err(&with(line));
        assert_eq!(e.field, field, "{line}: {e}");
        assert_eq!(e.line, 32, "{line}: {e}");
    }
    let e = err(&with("allow_output_changes = \"yes\""));
    assert_eq!(e.line, 32, "{e}");
    let e = err(&with("rounds = 3"));
    assert!(e.message.contains("unknown field `rounds`"), "{e}");
}

#[test]
fn a_study_recorded_before_roles_and_decision_loads() {
    let s = parse_study(Path::new("x.toml"), GOOD).unwrap();
    let mut v = serde_json::to_value(&s).unwrap();
    v.as_object_mut().unwrap().remove("decision");
    for p in v["space"]["params"].as_array_mut().unwrap() {
        let p = p.as_object_mut().unwrap();
        p.remove("role");
        p.remove("prefer");
    }
    let old: Study = serde_json::from_value(v).unwrap();
    assert_eq!(old.decision, DecisionSettings::default());
    assert_eq!(old.space.params.len(), 3);
    assert!(old
        .space
        .params
        .iter()
        .all(|p| p.role == crate::engine::space::Role::Speed && p.prefer.is_none()));
}

/// Every shipped study parses, with baselines that leave to the server what a stock server
/// decides, and output settings that the shipped studies do not allow to change.
#[test]
fn shipped_studies_parse_with_stock_baselines() {
    use crate::engine::space::{ParamValue, Role};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("search_spaces");
    let load = |f: &str| load_study(&dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
    for f in [
        "gemma3.toml",
        "llamacpp-gemma3-270m.toml",
        "command-branin.toml",
    ] {
        let s = load(f);
        assert!(!s.decision.allow_output_changes, "{f}");
    }
    let s = load("gemma3.toml");
    for n in ["num_gpu", "num_ctx", "num_batch", "num_thread"] {
        assert_eq!(
            s.space.get(n).unwrap().default,
            Some(ParamValue::auto()),
            "{n}"
        );
    }
    assert_eq!(s.space.get("temperature").unwrap().role, Role::Output);
    let s = load("llamacpp-gemma3-270m.toml");
    for n in ["threads", "threads_batch"] {
        assert_eq!(
            s.space.get(n).unwrap().default,
            Some(ParamValue::auto()),
            "{n}"
        );
    }
    let ctx = s.space.get("ctx_size").unwrap();
    assert_eq!(ctx.role, Role::Requirement);
    assert_eq!(ctx.default, Some(ParamValue::Int(4096)));
    assert_eq!(s.space.get("top_k").unwrap().role, Role::Output);
    assert_eq!(s.space.get("cache_type_v").unwrap().role, Role::Speed);
}

#[test]
fn memory_effects_default_from_the_tables_and_the_study_declares_its_own() {
    use crate::engine::space::Memory;
    let s = parse_study(Path::new("x.toml"), GOOD).unwrap();
    let m = |s: &Study, n: &str| {
        s.space
            .params
            .iter()
            .find(|p| p.name == n)
            .unwrap()
            .memory
            .clone()
    };
    assert_eq!(m(&s, "num_ctx"), Memory::Grows);
    assert_eq!(m(&s, "temperature"), Memory::Unaffected);
    assert_eq!(m(&s, "kv"), Memory::Unknown, "not an Ollama option");
    let text = GOOD
        .replace(
            r#"choices = ["f16", "q8_0"]"#,
            "choices = [\"f16\", \"q8_0\"]\nmemory = [\"q8_0\", \"f16\"]",
        )
        .replace("default = 0.8", "default = 0.8\nmemory = \"grows\"");
    let s = parse_study(Path::new("x.toml"), &text).unwrap();
    assert_eq!(
        m(&s, "kv"),
        Memory::Ranked(vec![1.0, 0.0]),
        "f16 needs more"
    );
    assert_eq!(m(&s, "temperature"), Memory::Grows);
    // llama-server's cache types rank by bytes per element.
    let llama = GOOD
        .replace(
            "kind = \"ollama\"",
            "kind = \"llamacpp\"\nserver = \"llama-server\"\nmodel_path = \"m.gguf\"",
        )
        .replace("[params.kv]", "[params.cache_type_k]")
        .replace("[params.num_ctx]", "[params.ctx_size]");
    let s = parse_study(Path::new("x.toml"), &llama).unwrap();
    assert_eq!(
        m(&s, "cache_type_k"),
        Memory::Ranked(vec![2.0, 34.0 / 32.0])
    );
    assert_eq!(m(&s, "ctx_size"), Memory::Grows);
}

#[test]
fn a_bad_memory_effect_is_located() {
    let e = err(&GOOD.replace("default = 0.8", "default = 0.8\nmemory = \"more\""));
    assert_eq!(e.field, "params.temperature.memory");
    assert!(e.message.contains("unknown memory effect \"more\""), "{e}");
    let e = err(&GOOD.replace("default = 0.8", "default = 0.8\nmemory = [0.0, 1.5]"));
    assert!(e.message.contains("a list is for a categorical"), "{e}");
    let with_kv = |m: &str| {
        GOOD.replace(
            r#"choices = ["f16", "q8_0"]"#,
            &format!("choices = [\"f16\", \"q8_0\"]\nmemory = {m}"),
        )
    };
    let e = err(&with_kv("[\"f16\"]"));
    assert_eq!(e.field, "params.kv.memory");
    assert!(e.message.contains("q8_0 is not in the list"), "{e}");
    let e = err(&with_kv("\"grows\""));
    assert!(e.message.contains("list its choices"), "{e}");
    let e = err(&with_kv("[\"f16\", \"q8_0\", \"q4_0\"]"));
    assert!(e.message.contains("every choice once"), "{e}");
}
