//! `[params.NAME]`: the search space, one parameter per table, kept in file order. Each gets
//! its role (and preferred direction) from the study or, when the study does not say, from the
//! backend's option table (src/domain/roles.rs); `auto` is a legal default only for an option
//! the server decides itself.

use super::limits::{MAX_CHOICES, MAX_PARAMS};
use crate::domain::llamaserver_values;
use crate::domain::memory::memory_of;
use crate::domain::ollama::{self, OptionType};
use crate::domain::roles::{self, ParamFacts};
use crate::engine::space::{
    values_equal, Memory, Param, ParamKind, ParamValue, Prefer, Role, SearchSpace, AUTO,
};
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
    if raw.len() > MAX_PARAMS {
        return Err(loc.err(
            study_span,
            "params",
            format!("{} parameters; at most {MAX_PARAMS} can be tuned in one study (split it, or fix the less important ones)", raw.len()),
        ));
    }
    let mut params = Vec::new();
    let mut spans = BTreeMap::new();
    // Keep the order of the file, not the alphabetical order of the map.
    let mut entries: Vec<(String, Spanned<RawParam>)> = raw.into_iter().collect();
    entries.sort_by_key(|(_, p)| p.span().start);
    for (pname, rp) in entries {
        let span = rp.span();
        spans.insert(pname.clone(), span.clone());
        params.push(validate_param(
            loc,
            &pname,
            span.clone(),
            rp.into_inner(),
            backend,
        )?);
        if let BackendConfig::Command { env, .. } = backend {
            command_env_name(loc, &params, span, env)?;
        }
    }
    let space = SearchSpace { params };
    // What the llamacpp backend checks before its first trial, checked here first.
    if let BackendConfig::Llamacpp { attach, .. } = backend {
        llamaserver_values::check_space(&space, attach.is_some()).map_err(|e| {
            let span = spans.get(&e.param).cloned().unwrap_or(study_span);
            loc.err(
                span,
                &format!("params.{}", e.param),
                format!("{}; {}", e.message, e.hint),
            )
        })?;
    }
    Ok(space)
}

/// One parameter table being checked, for errors that name its fields.
pub(super) struct ParamCheck<'a> {
    pub(super) loc: &'a Locator<'a>,
    pub(super) name: &'a str,
    pub(super) rp: &'a RawParam,
    /// What the backend's option table says of this name.
    pub(super) facts: ParamFacts,
    pub(super) backend: &'a BackendConfig,
}

impl ParamCheck<'_> {
    fn field(&self, field: &str) -> String {
        format!("params.{}.{field}", self.name)
    }

    pub(super) fn err(
        &self,
        span: Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        self.loc.err(span, &self.field(field), message)
    }

    pub(super) fn kind_text(&self) -> &str {
        self.rp.kind.get_ref().as_str()
    }

    /// Fields the parameter's type does not take, in the order given.
    pub(super) fn not_for(
        &self,
        fields: &[(&str, Option<Range<usize>>)],
    ) -> Result<(), ConfigError> {
        for (field, present) in fields {
            if let Some(sp) = present {
                let message = format!("not allowed for type {:?}", self.kind_text());
                return Err(self.err(sp.clone(), field, message));
            }
        }
        Ok(())
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
        if ch.get_ref().len() > MAX_CHOICES {
            return Err(self.err(
                ch.span(),
                "choices",
                format!("lists {} choices; at most {MAX_CHOICES} (use an int parameter for a range of numbers)", ch.get_ref().len()),
            ));
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
            if pv.as_str().is_some_and(|c| c.contains('\0')) {
                return Err(self.err(
                    ch.span(),
                    "choices",
                    format!("the choice {pv:?} contains a NUL byte, which no request, argument or environment variable can hold"),
                ));
            }
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
            Some(v) if param.admits(&v) => {
                let measured = param.normalize(&v);
                if values_equal(&measured, &v) {
                    Ok(Some(v))
                } else {
                    Err(self.err(
                        d.span(),
                        "default",
                        format!("default {v} is not on the parameter's grid ({}): the baseline would be measured at {measured}; use a value low + k * step", param.domain_text()),
                    ))
                }
            }
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
    check.server_type(&kind)?;
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

impl ParamCheck<'_> {
    /// An Ollama option takes one JSON type (src/domain/ollama.rs): a float for an integer
    /// option would be truncated by the server, and any other mismatch fails every request.
    fn server_type(&self, kind: &ParamKind) -> Result<(), ConfigError> {
        if !matches!(
            self.backend,
            BackendConfig::Ollama { .. } | BackendConfig::Simulator { .. }
        ) {
            return Ok(());
        }
        let Some(ty) = ollama::option_type(self.name) else {
            return Ok(());
        };
        let value_ok = |v: &ParamValue| {
            v.is_auto()
                || match (ty, v) {
                    (OptionType::Int, ParamValue::Int(_)) => true,
                    (OptionType::Int, ParamValue::Float(f)) => f.fract() == 0.0,
                    (OptionType::Float, ParamValue::Int(_) | ParamValue::Float(_)) => true,
                    (OptionType::Bool, ParamValue::Bool(_)) => true,
                    (OptionType::String | OptionType::StringList, _) => true,
                    _ => false,
                }
        };
        let ok = match (ty, kind) {
            (OptionType::String | OptionType::StringList, _) => true,
            (OptionType::Int, ParamKind::Int { .. }) => true,
            (OptionType::Float, ParamKind::Int { .. } | ParamKind::Float { .. }) => true,
            (OptionType::Bool, ParamKind::Bool) => true,
            (_, ParamKind::Categorical { choices }) => choices.iter().all(value_ok),
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let (is, want) = match ty {
            OptionType::Int => (
                "an integer",
                "type = \"int\" (or a categorical of integers)",
            ),
            OptionType::Float => ("a number", "type = \"float\" (or a categorical of numbers)"),
            _ => ("a boolean", "type = \"bool\""),
        };
        Err(self.err(
            self.rp.kind.span(),
            "type",
            format!(
                "Ollama's {} is {is}, and this {:?} parameter would send it values the server refuses or truncates; declare {want}",
                self.name,
                self.kind_text()
            ),
        ))
    }
}

/// A command receives each parameter as `TUNE_<NAME>` (upper case): two parameters that
/// differ only in case, or an `env` entry of the same name, would silently overwrite it.
fn command_env_name(
    loc: &Locator,
    params: &[Param],
    span: Range<usize>,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let Some((last, earlier)) = params.split_last() else {
        return Ok(());
    };
    let var = format!("TUNE_{}", last.name.to_uppercase());
    let field = format!("params.{}", last.name);
    if let Some(other) = earlier
        .iter()
        .find(|p| p.name.to_uppercase() == last.name.to_uppercase())
    {
        return Err(loc.err(
            span,
            &field,
            format!(
                "{} and {} both reach the command as {var}; rename one",
                other.name, last.name
            ),
        ));
    }
    if env.contains_key(&var) {
        return Err(loc.err(
            span,
            &field,
            format!("backend.env sets {var}, the variable that carries this parameter to the command; remove it from env"),
        ));
    }
    Ok(())
}
