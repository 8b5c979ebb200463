//! Keys of configurations built from their coordinates in the space, and the runner part of a
//! configuration: what the optimizer compares thousands of times per ask (repeats, known
//! failures, reloads) without building a map or a JSON text per candidate.
//!
//! A key holds, per parameter in the order of the space, the integer value, the bits of the
//! float value, the bool, or the index of the (first equal) choice. Two configurations of the
//! space have equal keys exactly when they have equal `config_key` texts (space.rs), so
//! replacing one by the other changes no decision (tested below).

use crate::engine::space::{Config, Param, ParamKind, ParamValue, SearchSpace};

/// Identity of a configuration of the space (see the module comment).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConfigKey(Box<[u64]>);

impl ConfigKey {
    /// Component of parameter `i`.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.0[i]
    }
}

/// The runner part of a configuration: the options whose change makes the backend reload the
/// model or restart the server (`runner_params` of the study).
pub(crate) fn runner_part(config: &Config, runner_params: &[String]) -> Config {
    config
        .iter()
        .filter(|(k, _)| runner_params.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Bits of a float as its JSON text tells it apart: every non-finite value is written `null`.
fn float_bits(x: f64) -> u64 {
    if x.is_finite() {
        x.to_bits()
    } else {
        u64::MAX
    }
}

/// Whether two values have the same JSON text (same variant and value).
fn same_text(a: &ParamValue, b: &ParamValue) -> bool {
    match (a, b) {
        (ParamValue::Bool(x), ParamValue::Bool(y)) => x == y,
        (ParamValue::Int(x), ParamValue::Int(y)) => x == y,
        (ParamValue::Float(x), ParamValue::Float(y)) => float_bits(*x) == float_bits(*y),
        (ParamValue::Str(x), ParamValue::Str(y)) => x == y,
        _ => false,
    }
}

/// Key component of a value of `p`, or None when the value is not of the kind `decode`
/// produces for `p` (no decoded configuration can then equal it).
fn component(p: &Param, v: &ParamValue) -> Option<u64> {
    match (&p.kind, v) {
        (ParamKind::Int { .. }, ParamValue::Int(i)) => Some(*i as u64),
        (ParamKind::Float { .. }, ParamValue::Float(x)) => Some(float_bits(*x)),
        (ParamKind::Bool, ParamValue::Bool(b)) => Some(*b as u64),
        (ParamKind::Categorical { choices }, v) => choices
            .iter()
            .position(|c| same_text(c, v))
            .map(|i| i as u64),
        _ => None,
    }
}

impl SearchSpace {
    /// Key of a configuration, or None when it is not a configuration of this space (a missing
    /// or extra parameter, or a value `decode` never produces): such a configuration equals no
    /// decoded candidate.
    pub(crate) fn key(&self, config: &Config) -> Option<ConfigKey> {
        if config.len() != self.params.len() {
            return None;
        }
        self.params
            .iter()
            .map(|p| component(p, config.get(&p.name)?))
            .collect::<Option<Box<[u64]>>>()
            .map(ConfigKey)
    }

    /// Key of the configuration an encoded point decodes to (`key(&decode(x))`).
    pub(crate) fn point_key(&self, x: &[f64]) -> ConfigKey {
        self.canonical_point(x).1
    }

    /// The encoded point snapped onto the lattice of legal values (`canonicalize(x)`) and the
    /// key of its configuration, computed per parameter without building the configuration.
    /// `x` has one coordinate per parameter.
    pub(crate) fn canonical_point(&self, x: &[f64]) -> (Vec<f64>, ConfigKey) {
        debug_assert_eq!(x.len(), self.params.len());
        let mut coords = Vec::with_capacity(x.len());
        let mut key = Vec::with_capacity(x.len());
        for (p, u) in self.params.iter().zip(x) {
            let v = p.decode(*u);
            coords.push(p.encode(&v).unwrap_or(p.encoded_upper() / 2.0));
            // A decoded value always has a component (it is of the parameter's kind).
            key.push(component(p, &v).unwrap_or(u64::MAX));
        }
        (coords, ConfigKey(key.into_boxed_slice()))
    }

    /// The runner part of `runner` as (parameter index, key component) pairs, to compare with
    /// candidates' keys (`RunnerCoords::matches`).
    pub(crate) fn runner_coords(&self, runner: &Config, runner_params: &[String]) -> RunnerCoords {
        let sub = runner_part(runner, runner_params);
        let mut dims = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if !runner_params.contains(&p.name) {
                continue;
            }
            match sub.get(&p.name).and_then(|v| component(p, v)) {
                Some(c) => dims.push((i, c)),
                None => return RunnerCoords(None),
            }
        }
        // Runner options outside the space: no configuration of the space has this runner part.
        RunnerCoords((dims.len() == sub.len()).then_some(dims))
    }
}

/// The runner part of a configuration in coordinates (`SearchSpace::runner_coords`); None when
/// no configuration of the space has that runner part.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RunnerCoords(Option<Vec<(usize, u64)>>);

impl RunnerCoords {
    /// Whether a configuration of the space (by its key) has this runner part: the same as
    /// comparing the `config_key` texts of the two runner parts.
    pub(crate) fn matches(&self, key: &ConfigKey) -> bool {
        self.0
            .as_ref()
            .is_some_and(|dims| dims.iter().all(|(i, c)| key.get(*i) == *c))
    }
}

#[cfg(test)]
#[path = "configkey_tests.rs"]
mod tests;
