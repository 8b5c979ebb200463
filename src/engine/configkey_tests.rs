//! Tests of configkey.rs: coordinate keys agree with the JSON keys they replace.

use super::*;
use crate::engine::space::config_key;
use proptest::prelude::*;

fn param(name: &str, kind: ParamKind) -> Param {
    Param {
        name: name.into(),
        kind,
        default: None,
        role: Default::default(),
        prefer: None,
        memory: Default::default(),
    }
}

/// Every kind of parameter, with few values so that random points often decode alike.
fn space() -> SearchSpace {
    SearchSpace {
        params: vec![
            param(
                "a_int",
                ParamKind::Int {
                    low: 1,
                    high: 4,
                    log: false,
                    step: 1,
                },
            ),
            param(
                "b_log_int",
                ParamKind::Int {
                    low: 2,
                    high: 64,
                    log: true,
                    step: 2,
                },
            ),
            param(
                "c_step",
                ParamKind::Float {
                    low: 0.1,
                    high: 0.5,
                    log: false,
                    step: Some(0.1),
                },
            ),
            param(
                "d_float",
                ParamKind::Float {
                    low: 1e-3,
                    high: 10.0,
                    log: true,
                    step: None,
                },
            ),
            param(
                "e_cat",
                ParamKind::Categorical {
                    choices: vec![
                        ParamValue::Str("q4".into()),
                        ParamValue::Int(8),
                        ParamValue::Float(8.0),
                        ParamValue::Str("f16".into()),
                    ],
                },
            ),
            param("f_bool", ParamKind::Bool),
        ],
    }
}

fn runner() -> Vec<String> {
    vec!["a_int".into(), "e_cat".into(), "not_in_space".into()]
}

fn coarse(x: &[f64], keep_float: bool) -> Vec<f64> {
    // Snap to a coarse grid so that pairs collide; keep the continuous float apart when asked.
    x.iter()
        .enumerate()
        .map(|(i, u)| {
            if keep_float && i == 3 {
                *u
            } else {
                (u * 4.0).round() / 4.0 * if i == 4 { 3.0 } else { 1.0 }
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn canonical_point_is_canonicalize_and_key_is_key_of_decode(
        x in proptest::collection::vec(0.0f64..1.0, 6)
    ) {
        let s = space();
        let x = coarse(&x, true);
        let (coords, key) = s.canonical_point(&x);
        let expected = s.canonicalize(&x);
        let bits = |v: &[f64]| v.iter().map(|u| u.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&coords), bits(&expected));
        prop_assert_eq!(Some(key.clone()), s.key(&s.decode(&x)));
        prop_assert_eq!(s.point_key(&x), key);
    }

    #[test]
    fn keys_are_equal_exactly_when_json_keys_are(
        x in proptest::collection::vec(0.0f64..1.0, 6),
        y in proptest::collection::vec(0.0f64..1.0, 6),
        keep_float in any::<bool>(),
    ) {
        let s = space();
        let (cx, cy) = (s.decode(&coarse(&x, keep_float)), s.decode(&coarse(&y, keep_float)));
        let same_json = config_key(&cx) == config_key(&cy);
        prop_assert_eq!(s.key(&cx).unwrap() == s.key(&cy).unwrap(), same_json);
    }

    #[test]
    fn runner_match_is_json_runner_key_equality(
        x in proptest::collection::vec(0.0f64..1.0, 6),
        y in proptest::collection::vec(0.0f64..1.0, 6),
        variant in 0usize..4,
    ) {
        let s = space();
        let r = runner();
        let c = s.decode(&coarse(&x, true));
        let mut loaded = runner_part(&s.decode(&coarse(&y, true)), &r);
        match variant {
            // A runner option the space does not have.
            1 => { loaded.insert("not_in_space".into(), ParamValue::Int(1)); }
            // A value decode never produces for the parameter.
            2 => { loaded.insert("a_int".into(), ParamValue::Float(2.0)); }
            // A runner option missing.
            3 => { loaded.remove("e_cat"); }
            _ => {}
        }
        let json = config_key(&runner_part(&c, &r)) == config_key(&loaded);
        let coords = s.runner_coords(&loaded, &r);
        prop_assert_eq!(coords.matches(&s.key(&c).unwrap()), json);
    }
}

#[test]
fn configurations_outside_the_space_have_no_key() {
    let s = space();
    let mut c = s.decode(&[0.5; 6]);
    assert!(s.key(&c).is_some());
    c.insert("extra".into(), ParamValue::Bool(true));
    assert!(s.key(&c).is_none());
    let mut c = s.decode(&[0.5; 6]);
    c.insert("e_cat".into(), ParamValue::Str("q8".into()));
    assert!(s.key(&c).is_none());
}

#[test]
fn choices_equal_as_numbers_keep_distinct_keys() {
    // Int(8) and Float(8.0) are distinct JSON texts, hence distinct keys.
    let s = space();
    let mut a = s.decode(&[0.5; 6]);
    let mut b = a.clone();
    a.insert("e_cat".into(), ParamValue::Int(8));
    b.insert("e_cat".into(), ParamValue::Float(8.0));
    assert_ne!(config_key(&a), config_key(&b));
    assert_ne!(s.key(&a), s.key(&b));
}
