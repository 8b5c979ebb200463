//! The study files of issue 14 that crashed `validate`, were silently changed, or were accepted
//! by `validate` and then rejected by `run`: each is now an error with its line, column, field
//! and a hint (tests/hostile_studies.rs mutates the shipped studies the same way, in bulk).

use super::*;
use std::path::Path;

const OLLAMA: &str = r#"[study]
name = "t"
model = "gemma3:latest"

[backend]
kind = "ollama"
url = "http://127.0.0.1:11434"

[budget]
trials = 10
wall_time = "1h"

[protocol]
repeats = 3
num_predict = 128
request_timeout = 60

[optimizer]
candidates = 2048

[params.num_ctx]
type = "int"
low = 1024
high = 8192
default = 2048
"#;

const SIMULATOR: &str = r#"[study]
name = "t"
model = "gemma3:4b"

[backend]
kind = "simulator"
profile = "gemma3-4b"
time_scale = 0.01

[params.num_batch]
type = "int"
low = 32
high = 512
"#;

const COMMAND: &str = r#"[study]
name = "t"

[backend]
kind = "command"
argv = ["python3", "f.py"]
timeout = "30s"

[params.x1]
type = "float"
low = 0.0
high = 1.0
"#;

fn parse(text: &str) -> Result<Study, ConfigError> {
    parse_study(Path::new("h.toml"), text)
}

/// `text` with `from` replaced by `to` (which must occur), rejected at `field` on `line`.
fn rejects(text: &str, from: &str, to: &str, field: &str, line: usize) -> ConfigError {
    assert!(text.contains(from), "{from:?} not in the base text");
    let e = parse(&text.replacen(from, to, 1)).expect_err(&format!("{to:?} should be rejected"));
    assert_eq!(e.field, field, "{to:?}: {e}");
    assert_eq!(e.line, line, "{to:?}: {e}");
    assert!(e.column >= 1, "{e}");
    e
}

#[test]
fn the_base_texts_are_valid() {
    for t in [OLLAMA, SIMULATOR, COMMAND] {
        parse(t).unwrap();
    }
}

#[test]
fn huge_durations_are_errors_not_panics() {
    let e = rejects(
        OLLAMA,
        "request_timeout = 60",
        "request_timeout = 1e20",
        "protocol.request_timeout",
        16,
    );
    assert!(e.message.contains("longer than"), "{e}");
    rejects(
        OLLAMA,
        "wall_time = \"1h\"",
        "wall_time = 1e20",
        "budget.wall_time",
        11,
    );
    rejects(
        COMMAND,
        "timeout = \"30s\"",
        "timeout = 1e20",
        "backend.timeout",
        7,
    );
    rejects(
        COMMAND,
        "timeout = \"30s\"",
        "timeout = \"99999999999999999999h\"",
        "backend.timeout",
        7,
    );
}

#[test]
fn zero_durations_are_errors() {
    let e = rejects(
        COMMAND,
        "timeout = \"30s\"",
        "timeout = 0",
        "backend.timeout",
        7,
    );
    assert!(e.message.contains("longer than zero"), "{e}");
    rejects(
        OLLAMA,
        "wall_time = \"1h\"",
        "wall_time = \"0s\"",
        "budget.wall_time",
        11,
    );
    rejects(
        OLLAMA,
        "request_timeout = 60",
        "request_timeout = 0",
        "protocol.request_timeout",
        16,
    );
}

#[test]
fn integer_range_wider_than_i64_or_beyond_2_pow_53() {
    let e = rejects(
        OLLAMA,
        "low = 1024\nhigh = 8192",
        "low = -4611686018427387904\nhigh = 4611686018427387904",
        "params.num_ctx.low",
        23,
    );
    assert!(e.message.contains("2^53"), "{e}");
    let ok = parse(&OLLAMA.replace(
        "low = 1024\nhigh = 8192\ndefault = 2048",
        "low = 0\nhigh = 9007199254740992",
    ))
    .unwrap();
    assert_eq!(ok.space.params[0].cardinality(), Some(9007199254740993));
}

#[test]
fn absurd_counts_are_errors() {
    let e = rejects(
        OLLAMA,
        "candidates = 2048",
        "candidates = 1000000000000",
        "optimizer.candidates",
        19,
    );
    assert!(e.message.contains("at most"), "{e}");
    rejects(
        OLLAMA,
        "repeats = 3",
        "repeats = 1000000000000",
        "protocol.repeats",
        14,
    );
    // A float where a count belongs is a type error, located.
    rejects(
        OLLAMA,
        "repeats = 3",
        "repeats = 1e12",
        "protocol.repeats",
        14,
    );
    rejects(
        OLLAMA,
        "trials = 10",
        "trials = 1000000000000",
        "budget.trials",
        10,
    );
}

#[test]
fn num_predict_beyond_the_servers_range_is_not_wrapped() {
    let e = rejects(
        OLLAMA,
        "num_predict = 128",
        "num_predict = 4294967297",
        "protocol.num_predict",
        15,
    );
    assert!(e.message.contains("at most"), "{e}");
    rejects(
        OLLAMA,
        "num_predict = 128",
        "num_predict = 2147483648",
        "protocol.num_predict",
        15,
    );
    let s = parse(&OLLAMA.replace("num_predict = 128", "num_predict = 1048576")).unwrap();
    assert_eq!(s.protocol.num_predict, 1_048_576);
}

#[test]
fn float_bounds_that_would_become_null() {
    let text = COMMAND.replace("low = 0.0\nhigh = 1.0", "low = -1.7e308\nhigh = 1.7e308");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field, "params.x1.high", "{e}");
    assert!(e.message.contains("wider than"), "{e}");
    for bound in ["nan", "inf", "-inf"] {
        let e = parse(&COMMAND.replace("high = 1.0", &format!("high = {bound}"))).unwrap_err();
        assert_eq!(e.field, "params.x1.high", "{e}");
    }
    // Ollama reads a float option as a 32-bit float.
    let t = "[params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1e39\n";
    let e = parse(&format!("{OLLAMA}{t}")).unwrap_err();
    assert!(e.message.contains("32-bit float"), "{e}");
}

#[test]
fn a_default_off_the_step_grid_is_an_error() {
    let text = OLLAMA.replace(
        "low = 1024\nhigh = 8192\ndefault = 2048",
        "low = 1\nhigh = 64\nstep = 4\ndefault = 8",
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field, "params.num_ctx.default", "{e}");
    assert!(e.message.contains("measured at 9"), "{e}");
    let on_grid = OLLAMA.replace(
        "low = 1024\nhigh = 8192\ndefault = 2048",
        "low = 1\nhigh = 64\nstep = 4\ndefault = 9",
    );
    assert!(parse(&on_grid).is_ok());
    let float = COMMAND.replace("high = 1.0", "high = 1.0\nstep = 0.25\ndefault = 0.3");
    assert_eq!(parse(&float).unwrap_err().field, "params.x1.default");
}

#[test]
fn two_parameters_with_one_environment_name() {
    let text = format!("{COMMAND}\n[params.X1]\ntype = \"bool\"\n");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field, "params.X1", "{e}");
    assert!(e.message.contains("TUNE_X1"), "{e}");
    let shadow = COMMAND.replace(
        "timeout = \"30s\"",
        "timeout = \"30s\"\nenv = { TUNE_X1 = \"2\" }",
    );
    assert!(parse(&shadow).unwrap_err().message.contains("TUNE_X1"));
}

#[test]
fn an_empty_model_on_ollama_and_the_simulator() {
    let e = rejects(
        OLLAMA,
        "model = \"gemma3:latest\"",
        "model = \"\"",
        "study.model",
        3,
    );
    assert!(e.message.contains("gemma3:latest"), "{e}");
    let e = rejects(
        SIMULATOR,
        "model = \"gemma3:4b\"",
        "model = \" \"",
        "study.model",
        3,
    );
    assert!(e.message.contains("gemma3:4b"), "{e}");
    // A command has no model.
    assert!(parse(COMMAND).is_ok());
}

/// The simulator answers only to its profile's model (404 "model not found" otherwise, which
/// `run` turned into a fatal stop at start): `validate` refuses the same names, located at the
/// model, naming the profile's model and the profiles that serve the name given.
#[test]
fn the_simulator_serves_only_its_profiles_model() {
    let e = rejects(
        SIMULATOR,
        "model = \"gemma3:4b\"",
        "model = \"llama3:70b\"",
        "study.model",
        3,
    );
    assert!(
        e.message.contains("\"gemma3-4b\"") && e.message.contains("set model = \"gemma3:4b\""),
        "{e}"
    );
    assert!(e.column >= 9, "the column of the value: {e}");
    let e = rejects(
        SIMULATOR,
        "model = \"gemma3:4b\"",
        "model = \"gemma3:270m\"",
        "study.model",
        3,
    );
    assert!(
        e.message.contains("\"gemma3-270m\""),
        "names the profile that serves it: {e}"
    );
    // The profile changed instead: the same error, the model line blamed.
    let e = rejects(
        SIMULATOR,
        "profile = \"gemma3-4b\"",
        "profile = \"llama3.1-8b\"",
        "study.model",
        3,
    );
    assert!(e.message.contains("llama3.1:8b-instruct-q4_0"), "{e}");
    // What the simulator accepts, validate accepts: any case, spaces around the name.
    for ok in ["GEMMA3:4B", " gemma3:4b "] {
        parse(&SIMULATOR.replacen("gemma3:4b", ok, 1)).unwrap();
    }
    // A name without a tag means `:latest` to the simulator as to Ollama: "mistral" is not
    // the "mistral:7b" of fits-defaults, and is refused like every other name.
    let fits = SIMULATOR.replacen("profile = \"gemma3-4b\"", "profile = \"fits-defaults\"", 1);
    parse(&fits.replacen("gemma3:4b", "Mistral:7B", 1)).unwrap();
    let e = rejects(
        &fits,
        "model = \"gemma3:4b\"",
        "model = \"mistral\"",
        "study.model",
        3,
    );
    assert!(e.message.contains("set model = \"mistral:7b\""), "{e}");
}

#[test]
fn simulator_profile_and_time_scale() {
    let e = rejects(
        SIMULATOR,
        "profile = \"gemma3-4b\"",
        "profile = \"nope\"",
        "backend.profile",
        7,
    );
    assert!(e.message.contains("gemma3-270m"), "{e}");
    for bad in ["inf", "nan", "0", "-1", "1e300"] {
        rejects(
            SIMULATOR,
            "time_scale = 0.01",
            &format!("time_scale = {bad}"),
            "backend.time_scale",
            8,
        );
    }
}

#[test]
fn nul_bytes_in_the_environment_and_argv() {
    let text = COMMAND.replace(
        "timeout = \"30s\"",
        "timeout = \"30s\"\nenv = { \"A\\u0000B\" = \"1\" }",
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field, "backend.env.A\u{0}B", "{e}");
    assert!(
        e.message.contains("backend.env"),
        "the hint names env, not argv: {e}"
    );
    let value = COMMAND.replace(
        "timeout = \"30s\"",
        "timeout = \"30s\"\nenv = { A = \"x\\u0000\" }",
    );
    assert_eq!(parse(&value).unwrap_err().field, "backend.env.A");
    let argv = COMMAND.replace("\"f.py\"", "\"f\\u0000.py\"");
    assert_eq!(parse(&argv).unwrap_err().field, "backend.argv");
}

#[test]
fn unknown_metrics_on_a_server() {
    let text = format!("{OLLAMA}\n[objective]\nmetric = \"bogus\"\n");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field, "objective.metric", "{e}");
    assert!(e.message.contains("decode_tps"), "{e}");
    let c = format!(
        "{OLLAMA}\n[objective]\nmetric = \"decode_tps\"\nconstraints = [\"bogus_p95 <= 1\"]\n"
    );
    assert_eq!(parse(&c).unwrap_err().field, "objective.constraints");
    let ok =
        format!("{OLLAMA}\n[objective]\nmetric = \"ttft_p95\"\nconstraints = [\"e2e <= 2s\"]\n");
    assert!(parse(&ok).is_ok());
    // A command's program names its own metrics.
    assert!(parse(&format!("{COMMAND}\n[objective]\nmetric = \"bogus\"\n")).is_ok());
}

#[test]
fn urls_that_are_not_http() {
    for bad in [
        "not a url",
        "ftp://127.0.0.1/x",
        "",
        "http://",
        "http://h:1/?q=1",
    ] {
        let e = rejects(
            OLLAMA,
            "url = \"http://127.0.0.1:11434\"",
            &format!("url = {bad:?}"),
            "backend.url",
            7,
        );
        assert!(e.message.contains("http://127.0.0.1:11434"), "{e}");
    }
    let https = OLLAMA.replace("http://127.0.0.1:11434", "https://ollama.example:443");
    assert!(parse(&https).is_ok());
    let keep = OLLAMA.replace(
        "kind = \"ollama\"",
        "kind = \"ollama\"\nkeep_alive = \"forever\"",
    );
    assert_eq!(parse(&keep).unwrap_err().field, "backend.keep_alive");
}

#[test]
fn a_study_name_too_long_for_a_run_folder() {
    let e = rejects(
        OLLAMA,
        "name = \"t\"",
        &format!("name = \"{}\"", "n".repeat(300)),
        "study.name",
        2,
    );
    assert!(e.message.contains("255 bytes"), "{e}");
    let longest =
        parse(&OLLAMA.replace("name = \"t\"", &format!("name = \"{}\"", "é".repeat(200)))).unwrap();
    let id = crate::run::default_run_id(&longest);
    assert!(id.len() <= 255, "{} bytes", id.len());
}

#[test]
fn a_non_utf8_byte_is_reported_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    let mut bytes = b"[study]\nname = \"t".to_vec();
    bytes.push(0xff);
    bytes.extend_from_slice(b"\"\n");
    std::fs::write(&path, &bytes).unwrap();
    let e = load_study(&path).unwrap_err();
    assert_eq!((e.line, e.column), (2, 10), "{e}");
    assert!(
        e.message.contains("0xff") && e.message.contains("UTF-8"),
        "{e}"
    );
}

#[test]
fn ollama_option_types_are_checked() {
    let float_ctx = OLLAMA.replace(
        "type = \"int\"\nlow = 1024\nhigh = 8192\ndefault = 2048",
        "type = \"float\"\nlow = 1024.0\nhigh = 8192.0",
    );
    let e = parse(&float_ctx).unwrap_err();
    assert_eq!(e.field, "params.num_ctx.type", "{e}");
    let cat = OLLAMA.replace(
        "type = \"int\"\nlow = 1024\nhigh = 8192\ndefault = 2048",
        "type = \"categorical\"\nchoices = [\"small\", \"big\"]",
    );
    assert_eq!(parse(&cat).unwrap_err().field, "params.num_ctx.type");
    let ints = OLLAMA.replace(
        "type = \"int\"\nlow = 1024\nhigh = 8192\ndefault = 2048",
        "type = \"categorical\"\nchoices = [2048, 4096, \"auto\"]",
    );
    assert!(parse(&ints).is_ok());
}

#[test]
fn too_many_parameters() {
    let mut text = COMMAND.to_string();
    for i in 0..300 {
        text.push_str(&format!("\n[params.p{i}]\ntype = \"bool\"\n"));
    }
    assert_eq!(parse(&text).unwrap_err().field, "params");
}
