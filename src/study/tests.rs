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
    let sim = GOOD.replace("kind = \"ollama\"", "kind = \"simulator\"");
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
