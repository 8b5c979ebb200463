//! Tests of the Ollama option table, and its comparison with the simulator's own copy
//! (src/sim/options.rs `SimOptions`, src/sim/model.rs `RunnerKey`), read only through their
//! public behaviour so the simulator stays an independent implementation.

use super::*;
use crate::sim::{RunnerKey, SimOptions, PROFILES};
use serde_json::{json, Map, Value};

/// Field names of a struct, from its pretty `Debug` output (one `name: value,` line each).
fn debug_fields(pretty: &str) -> Vec<String> {
    let mut names: Vec<String> = pretty
        .lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .filter_map(|l| l.trim().split_once(':').map(|(n, _)| n.to_string()))
        .collect();
    names.sort();
    names
}

fn sorted(names: impl Iterator<Item = &'static str>) -> Vec<String> {
    let mut v: Vec<String> = names.map(str::to_string).collect();
    v.sort();
    v
}

/// The word Ollama's `Options.FromMap` error names for a type (ollama/ollama:api/types.go).
fn ollama_type_word(ty: OptionType) -> &'static str {
    match ty {
        OptionType::Int => "integer",
        OptionType::Float => "float32",
        OptionType::Bool => "boolean",
        OptionType::String => "string",
        OptionType::StringList => "array",
    }
}

/// A value of the right JSON type, away from the simulator's defaults and clamps.
fn good_value(ty: OptionType) -> Value {
    match ty {
        OptionType::Int => json!(3),
        OptionType::Float => json!(0.5),
        OptionType::Bool => json!(false),
        OptionType::String => json!("x"),
        OptionType::StringList => json!(["x"]),
    }
}

fn bad_value(ty: OptionType) -> Value {
    match ty {
        OptionType::Bool => json!(1),
        _ => json!({"not": "an option value"}),
    }
}

fn one(name: &str, v: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(name.to_string(), v);
    m
}

#[test]
fn runner_options_are_derived_in_table_order() {
    assert_eq!(
        RUNNER_OPTIONS,
        [
            "num_ctx",
            "num_batch",
            "num_gpu",
            "main_gpu",
            "use_mmap",
            "num_thread"
        ]
    );
    assert!(reloads_runner("num_ctx"));
    assert!(!reloads_runner("temperature"));
    assert!(!reloads_runner("flash_attn"));
    assert_eq!(option_type("stop"), Some(OptionType::StringList));
    assert_eq!(option_type("use_mmap"), Some(OptionType::Bool));
    assert_eq!(option_type("ctx_size"), None);
}

#[test]
fn names_are_unique() {
    let mut names = sorted(OPTIONS.iter().map(|o| o.name));
    names.dedup();
    assert_eq!(names.len(), OPTIONS.len());
}

#[test]
fn simulator_knows_the_same_options() {
    let sim = debug_fields(&format!("{:#?}", SimOptions::default()));
    assert_eq!(sim, sorted(OPTIONS.iter().map(|o| o.name)));
}

#[test]
fn simulator_parses_the_same_types() {
    for o in OPTIONS {
        let mut s = SimOptions::default();
        assert_eq!(
            s.apply(&one(o.name, good_value(o.ty)))
                .map_err(|e| e.to_string()),
            Ok(()),
            "{} takes {:?}",
            o.name,
            o.ty
        );
        let err = s.apply(&one(o.name, bad_value(o.ty))).expect_err(o.name);
        assert_eq!(
            err.to_string(),
            format!(
                "option {:?} must be of type {}",
                o.name,
                ollama_type_word(o.ty)
            )
        );
    }
}

#[test]
fn simulator_reloads_for_the_same_options() {
    let runner = sorted(RUNNER_OPTIONS.iter().copied());
    let key = |o: &SimOptions| RunnerKey::new(PROFILES[0], o);
    assert_eq!(
        debug_fields(&format!("{:#?}", key(&SimOptions::default()))),
        runner
    );
    for p in PROFILES {
        let base = SimOptions::default();
        let loaded = RunnerKey::new(p, &base);
        for o in OPTIONS {
            let mut changed = base.clone();
            changed.apply(&one(o.name, good_value(o.ty))).unwrap();
            assert_eq!(
                loaded.needs_reload(&RunnerKey::new(p, &changed)),
                o.reloads_runner,
                "{} on {}",
                o.name,
                p.name
            );
        }
    }
}
