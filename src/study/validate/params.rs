//! `[params.NAME]`: the search space, one parameter per table, kept in file order. Each gets
//! its role (and preferred direction) from the study or, when the study does not say, from the
//! backend's option table (src/domain/roles.rs); `auto` is a legal default only for an option
//! the server decides itself.

use crate::domain::memory::memory_of;
use crate::domain::roles::{self, ParamFacts};
use crate::engine::space::{Memory, Param, ParamKind, ParamValue, Prefer, Role, SearchSpace, AUTO};
use crate::study::error::{ConfigError, Locator};
use crate::study::raw::RawParam;
use crate::study::types::BackendConfig;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

pub(super) fn validate_params(
    loc: &Locator,
    raw: BTreeMap<String, Spanned<RawParam>>,
    study_span: Range<usize>,
    backend: &BackendConfig,
) -> Result<SearchSpace, ConfigError> {
    if raw.is_empty() {
        return Err(loc.err(
            study_span,
            "params",
            "no parameters: add at least one [params.NAME] table",
        ));
    }
    let mut params = Vec::new();
    // Keep the order of the file, not the alphabetical order of the map.
    let mut entries: Vec<(String, Spanned<RawParam>)> = raw.into_iter().collect();
    entries.sort_by_key(|(_, p)| p.span().start);
    for (pname, rp) in entries {
        let span = rp.span();
        params.push(validate_param(loc, &pname, span, rp.into_inner(), backend)?);
    }
    Ok(SearchSpace { params })
}

/// One parameter table being checked, for errors that name its fields.
struct ParamCheck<'a> {
    loc: &'a Locator<'a>,
    name: &'a str,
    rp: &'a RawParam,
    /// What the backend's option table says of this name.
    facts: ParamFacts,
    backend: &'a BackendConfig,
}

impl ParamCheck<'_> {
    fn field(&self, field: &str) -> String {
        format!("params.{}.{field}", self.name)
    }

    fn err(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        self.loc.err(span, &self.field(field), message)
    }

    fn kind_text(&self) -> &str {
        self.rp.kind.get_ref().as_str()
    }

    /// Fields the parameter's type does not take, in the order given.
    fn not_for(&self, fields: &[(&str, Option<Range<usize>>)]) -> Result<(), ConfigError> {
        for (field, present) in fields {
            if let Some(sp) = present {
                let message = format!("not allowed for type {:?}", self.kind_text());
                return Err(self.err(sp.clone(), field, message));
            }
        }
        Ok(())
    }

    fn num(
        &self,
        v: &Spanned<toml::Value>,
        field: &str,
        want_int: bool,
    ) -> Result<f64, ConfigError> {
        match v.get_ref() {
            toml::Value::Integer(i) => Ok(*i as f64),
            toml::Value::Float(x) if !want_int && x.is_finite() => Ok(*x),
            other => Err(self.err(
                v.span(),
                field,
                format!(
                    "must be {}, got {}",
                    if want_int { "an integer" } else { "a number" },
                    other.type_str()
                ),
            )),
        }
    }

    /// `type = "int"` or `"float"`: low, high, log, step.
    fn numeric(&self) -> Result<ParamKind, ConfigError> {
        let rp = self.rp;
        self.not_for(&[("choices", rp.choices.as_ref().map(|c| c.span()))])?;
        let want_int = self.kind_text() == "int";
        let (Some(lo), Some(hi)) = (&rp.low, &rp.high) else {
            return Err(self.err(
                rp.kind.span(),
                "low",
                "numeric parameters need both low and high",
            ));
        };
        let low = self.num(lo, "low", want_int)?;
        let high = self.num(hi, "high", want_int)?;
        if low > high {
            return Err(self.err(
                hi.span(),
                "high",
                format!("low ({low}) is greater than high ({high})"),
            ));
        }
        let log = rp.log.as_ref().map(|l| *l.get_ref()).unwrap_or(false);
        if log && low <= 0.0 {
            return Err(self.err(
                lo.span(),
                "low",
                format!("a log-scale parameter needs low > 0, got {low}"),
            ));
        }
        let step = match &rp.step {
            Some(s) => {
                let v = self.num(s, "step", want_int)?;
                if v <= 0.0 {
                    return Err(self.err(s.span(), "step", "must be > 0"));
                }
                Some(v)
            }
            None => None,
        };
        Ok(if want_int {
            ParamKind::Int {
                low: low as i64,
                high: high as i64,
                log,
                step: step.map(|s| s as i64).unwrap_or(1),
            }
        } else {
            ParamKind::Float {
                low,
                high,
                log,
                step,
            }
        })
    }

    /// The numeric fields, which categorical and bool parameters do not take.
    fn numeric_fields(&self) -> [(&'static str, Option<Range<usize>>); 4] {
        let rp = self.rp;
        [
            ("low", rp.low.as_ref().map(|x| x.span())),
            ("high", rp.high.as_ref().map(|x| x.span())),
            ("log", rp.log.as_ref().map(|x| x.span())),
            ("step", rp.step.as_ref().map(|x| x.span())),
        ]
    }

    /// `type = "categorical"`: choices, distinct strings, numbers or booleans.
    fn categorical(&self) -> Result<ParamKind, ConfigError> {
        let rp = self.rp;
        self.not_for(&self.numeric_fields())?;
        let Some(ch) = &rp.choices else {
            return Err(self.err(
                rp.kind.span(),
                "choices",
                "a categorical parameter needs choices = [...]",
            ));
        };
        if ch.get_ref().is_empty() {
            return Err(self.err(ch.span(), "choices", "must list at least one choice"));
        }
        let mut choices = Vec::new();
        for v in ch.get_ref() {
            let pv = toml_to_param(v).ok_or_else(|| {
                self.err(
                    ch.span(),
                    "choices",
                    format!(
                        "choices must be strings, numbers or booleans, got {}",
                        v.type_str()
                    ),
                )
            })?;
            if choices.contains(&pv) {
                return Err(self.err(ch.span(), "choices", format!("choice {pv} is listed twice")));
            }
            if pv.is_auto() && self.facts.known && !self.facts.accepts_auto {
                return Err(self.err(ch.span(), "choices", self.no_auto()));
            }
            choices.push(pv);
        }
        Ok(ParamKind::Categorical { choices })
    }

    /// `type = "bool"`: no other field.
    fn boolean(&self) -> Result<ParamKind, ConfigError> {
        let mut fields = self.numeric_fields().to_vec();
        fields.push(("choices", self.rp.choices.as_ref().map(|x| x.span())));
        self.not_for(&fields)?;
        Ok(ParamKind::Bool)
    }

    /// `default`, which must be a legal value of the parameter.
    fn default(&self, param: &Param) -> Result<Option<ParamValue>, ConfigError> {
        let Some(d) = &self.rp.default else {
            return Ok(None);
        };
        let v = toml_to_param(d.get_ref());
        // `auto` of a number or a bool: the server's choice, for options that have one.
        if v.as_ref().is_some_and(ParamValue::is_auto)
            && !matches!(param.kind, ParamKind::Categorical { .. })
        {
            if self.facts.accepts_auto {
                return Ok(v);
            }
            return Err(self.err(
                d.span(),
                "default",
                format!(
                    "{}; give a value in {}",
                    self.no_auto(),
                    param.domain_text()
                ),
            ));
        }
        let v = match (&param.kind, v) {
            // A whole-number default of a float parameter is a float.
            (ParamKind::Float { .. }, Some(ParamValue::Int(i))) => {
                Some(ParamValue::Float(i as f64))
            }
            (_, v) => v,
        };
        match v {
            Some(v) if param.admits(&v) => Ok(Some(v)),
            Some(v) => Err(self.err(
                d.span(),
                "default",
                format!("default {v} is not a legal value ({})", param.domain_text()),
            )),
            None => Err(self.err(d.span(), "default", "must be a string, number or boolean")),
        }
    }
}

impl ParamCheck<'_> {
    /// Why `auto` is not a value of this parameter.
    fn no_auto(&self) -> String {
        let server = match self.backend {
            BackendConfig::Ollama { .. } | BackendConfig::Simulator { .. } => "Ollama",
            BackendConfig::Llamacpp { .. } => "llama-server",
            BackendConfig::Command { .. } => {
                return format!(
                    "\"{AUTO}\" means \"leave it to the server\", and a command backend has no server to decide {}",
                    self.name
                )
            }
        };
        if self.facts.known {
            format!(
                "\"{AUTO}\" means \"leave it to the server\", but {server} has no automatic value for {}",
                self.name
            )
        } else {
            format!(
                "\"{AUTO}\" means \"leave it to the server\", but {} is not an option {server} decides itself",
                self.name
            )
        }
    }

    /// `role`: the study's, else the option table's.
    fn role(&self) -> Result<Role, ConfigError> {
        let Some(r) = &self.rp.role else {
            return Ok(self.facts.role);
        };
        match r.get_ref().as_str() {
            "speed" => Ok(Role::Speed),
            "requirement" => Ok(Role::Requirement),
            "output" => Ok(Role::Output),
            other => Err(self.err(
                r.span(),
                "role",
                format!("unknown role {other:?}; use \"speed\" (changes only speed and memory), \"requirement\" (what the workload needs) or \"output\" (changes what the model writes)"),
            )),
        }
    }

    /// `prefer`: the study's, else the option table's when the role is the table's too. Only
    /// an ordered (int or float) parameter has ends to prefer.
    fn prefer(&self, param: &Param) -> Result<Option<Prefer>, ConfigError> {
        let ordered = matches!(param.kind, ParamKind::Int { .. } | ParamKind::Float { .. });
        let Some(p) = &self.rp.prefer else {
            let inherited = param.role == self.facts.role && ordered;
            return Ok(self.facts.prefer.filter(|_| inherited));
        };
        let prefer = match p.get_ref().as_str() {
            "high" => Prefer::High,
            "low" => Prefer::Low,
            other => {
                return Err(self.err(
                    p.span(),
                    "prefer",
                    format!("{other:?} is neither \"high\" nor \"low\""),
                ))
            }
        };
        if !ordered {
            return Err(self.err(
                p.span(),
                "prefer",
                format!(
                    "a {:?} parameter has no high or low end; prefer is for int and float parameters",
                    self.kind_text()
                ),
            ));
        }
        Ok(Some(prefer))
    }
}

impl ParamCheck<'_> {
    /// `memory`: the study's, else the option table's (docs/memory.md). A word for any
    /// parameter; for a categorical one also its choices from least to most memory.
    fn memory(&self, param: &Param) -> Result<Memory, ConfigError> {
        let Some(m) = &self.rp.memory else {
            return Ok(memory_of(self.facts.memory, &param.kind));
        };
        let words = "use \"grows\" (a larger value needs more memory), \"shrinks\", \"none\" (it cannot change memory) or \"unknown\"";
        match m.get_ref() {
            toml::Value::String(w) => match w.as_str() {
                "grows" | "shrinks" if !matches!(param.kind, ParamKind::Int { .. } | ParamKind::Float { .. } | ParamKind::Bool) => Err(self.err(
                    m.span(),
                    "memory",
                    "a categorical parameter has no larger values: list its choices from least to most memory, e.g. memory = [\"q4_0\", \"q8_0\", \"f16\"]",
                )),
                "grows" => Ok(Memory::Grows),
                "shrinks" => Ok(Memory::Shrinks),
                "none" => Ok(Memory::Unaffected),
                "unknown" => Ok(Memory::Unknown),
                other => Err(self.err(m.span(), "memory", format!("unknown memory effect {other:?}; {words}"))),
            },
            toml::Value::Array(order) => {
                let ParamKind::Categorical { choices } = &param.kind else {
                    return Err(self.err(m.span(), "memory", format!("a list is for a categorical parameter's choices; {words}")));
                };
                let order: Vec<Option<ParamValue>> = order.iter().map(toml_to_param).collect();
                let mut ranks = Vec::with_capacity(choices.len());
                for c in choices {
                    match order.iter().position(|o| o.as_ref() == Some(c)) {
                        Some(i) => ranks.push(i as f64),
                        None => {
                            return Err(self.err(
                                m.span(),
                                "memory",
                                format!("the choice {c} is not in the list; list every choice once, from least to most memory"),
                            ))
                        }
                    }
                }
                if order.len() != choices.len() {
                    return Err(self.err(m.span(), "memory", "list every choice once, from least to most memory"));
                }
                Ok(Memory::Ranked(ranks))
            }
            _ => Err(self.err(m.span(), "memory", words)),
        }
    }
}

fn validate_param(
    loc: &Locator,
    name: &str,
    span: Range<usize>,
    rp: RawParam,
    backend: &BackendConfig,
) -> Result<Param, ConfigError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(loc.err(
            span,
            &format!("params.{name}"),
            "parameter names use letters, digits and _ only",
        ));
    }
    let check = ParamCheck {
        loc,
        name,
        rp: &rp,
        facts: roles::facts(backend.kind(), name),
        backend,
    };
    let kind = match check.kind_text() {
        "int" | "float" => check.numeric()?,
        "categorical" => check.categorical()?,
        "bool" => check.boolean()?,
        other => {
            return Err(check.err(
                rp.kind.span(),
                "type",
                format!(
                    "unknown type {other:?}; use \"int\", \"float\", \"categorical\" or \"bool\""
                ),
            ))
        }
    };
    let mut param = Param {
        name: name.to_string(),
        kind,
        default: None,
        role: check.role()?,
        prefer: None,
        memory: Memory::Unknown,
    };
    param.prefer = check.prefer(&param)?;
    param.memory = check.memory(&param)?;
    param.default = check.default(&param)?;
    Ok(param)
}

fn toml_to_param(v: &toml::Value) -> Option<ParamValue> {
    match v {
        toml::Value::Boolean(b) => Some(ParamValue::Bool(*b)),
        toml::Value::Integer(i) => Some(ParamValue::Int(*i)),
        toml::Value::Float(f) if f.is_finite() => Some(ParamValue::Float(*f)),
        toml::Value::String(s) => Some(ParamValue::Str(s.clone())),
        _ => None,
    }
}
