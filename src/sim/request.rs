//! Parsing of request bodies with the answers Go's encoding/json and Ollama give (a missing
//! body, a wrong field type, keep_alive as number or Go duration), and what a generate request
//! amounts to: prompt tokens (with Ollama's prompt cache) and answer length.

use super::error::RequestError;
use super::options::SimOptions;
use super::profiles::Profile;
use super::text::count_tokens;
use serde_json::{Map, Value};
use std::time::Duration;

/// Longest answer the simulator writes, whatever num_predict says (bounds its memory).
const MAX_ANSWER_TOKENS: u32 = 1_000_000;
/// Tokens generated when num_predict does not limit the answer (the real model would stop at
/// its end-of-turn token; the simulator always writes this many).
const DEFAULT_ANSWER_TOKENS: u32 = 128;
/// Ollama's default keep_alive.
pub(crate) const DEFAULT_KEEP_ALIVE: KeepAlive = KeepAlive::For(Duration::from_secs(300));

/// The name Go's encoding/json gives a JSON value's type in its errors.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON object body (`null` reads as an empty one, as in Go).
pub(crate) fn parse_object(
    body: &[u8],
    go_type: &'static str,
) -> Result<Map<String, Value>, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::MissingBody);
    }
    match serde_json::from_slice::<Value>(body) {
        Err(e) => Err(RequestError::InvalidJson(e)),
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(RequestError::NotAnObject {
            kind: go_kind(&other),
            go_type,
        }),
    }
}

fn type_error(
    v: &Value,
    go_struct: &'static str,
    key: &str,
    go_type: &'static str,
) -> RequestError {
    RequestError::FieldType {
        kind: go_kind(v),
        go_struct,
        key: key.to_string(),
        go_type,
    }
}

pub(crate) fn get_string(
    obj: &Map<String, Value>,
    key: &str,
    go_struct: &'static str,
) -> Result<String, RequestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(type_error(v, go_struct, key, "string")),
    }
}

fn get_bool(obj: &Map<String, Value>, key: &str, default: bool) -> Result<bool, RequestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(type_error(v, "GenerateRequest", key, "bool")),
    }
}

/// keep_alive as api.Duration reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum KeepAlive {
    Forever,
    For(Duration),
}

impl KeepAlive {
    fn from_seconds(s: f64) -> KeepAlive {
        if s < 0.0 {
            KeepAlive::Forever
        } else {
            KeepAlive::For(Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
        }
    }

    fn parse(v: &Value) -> Result<Option<KeepAlive>, RequestError> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => Ok(n.as_f64().map(KeepAlive::from_seconds)),
            Value::String(s) => parse_go_duration(s).map(|x| Some(KeepAlive::from_seconds(x))),
            other => Err(RequestError::KeepAliveType(go_kind(other))),
        }
    }
}

/// Go's time.ParseDuration ("5m", "1h30m", "300ms", "-1s", "0"), in seconds.
fn parse_go_duration(text: &str) -> Result<f64, RequestError> {
    let invalid = || RequestError::InvalidDuration(text.to_string());
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "" => return Err(RequestError::MissingUnit(text.to_string())),
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(RequestError::UnknownUnit {
                    unit: other.to_string(),
                    text: text.to_string(),
                })
            }
        };
        total += number * scale;
    }
    Ok(sign * total)
}

/// The fields of api.GenerateRequest the simulator uses.
pub(crate) struct GenerateRequest {
    pub model: String,
    pub prompt: String,
    pub system: String,
    pub raw: bool,
    pub stream: bool,
    pub keep_alive: Option<KeepAlive>,
    pub options: Map<String, Value>,
}

impl GenerateRequest {
    pub fn parse(body: &[u8]) -> Result<GenerateRequest, RequestError> {
        let obj = parse_object(body, "api.GenerateRequest")?;
        let options = match obj.get("options") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(v) => {
                return Err(type_error(
                    v,
                    "GenerateRequest",
                    "options",
                    "map[string]interface {}",
                ))
            }
        };
        Ok(GenerateRequest {
            model: get_string(&obj, "model", "GenerateRequest")?,
            prompt: get_string(&obj, "prompt", "GenerateRequest")?,
            system: get_string(&obj, "system", "GenerateRequest")?,
            raw: get_bool(&obj, "raw", false)?,
            stream: get_bool(&obj, "stream", true)?,
            keep_alive: obj
                .get("keep_alive")
                .map(KeepAlive::parse)
                .transpose()?
                .flatten(),
            options,
        })
    }

    /// The text the prompt cache compares: mode, system prompt, prompt.
    pub fn cache_key(&self) -> (String, usize) {
        let system = if self.raw { "" } else { self.system.as_str() };
        let head = format!("{}\u{1}{system}\u{1}", u8::from(self.raw));
        let head_len = head.chars().count();
        (head + &self.prompt, head_len)
    }
}

/// prompt_eval_count and how many of those tokens the prompt cache already holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PromptCount {
    pub total: u32,
    pub cached: u32,
}

pub(crate) fn count_prompt(
    p: &Profile,
    req: &GenerateRequest,
    previous: Option<&str>,
    num_ctx: u32,
) -> PromptCount {
    let prefix = if req.raw { 1 } else { p.prompt_prefix_tokens };
    let suffix = if req.raw { 0 } else { p.prompt_suffix_tokens };
    let system = if req.raw || req.system.is_empty() {
        0
    } else {
        count_tokens(&req.system) + 2
    };
    let total = prefix + system + count_tokens(&req.prompt) + suffix;
    let (key, head_len) = req.cache_key();
    let cached = match previous {
        None => 0,
        Some(prev) if prev == key => total.saturating_sub(1),
        Some(prev) => {
            let common = prev
                .chars()
                .zip(key.chars())
                .take_while(|(a, b)| a == b)
                .count();
            if common == 0 {
                0
            } else if common < head_len {
                prefix + (common.saturating_sub(2) as u32) / 4
            } else {
                prefix + system + ((common - head_len) as u32) / 4
            }
        }
    };
    // A prompt longer than the context is truncated; at least one token is always evaluated.
    let total = total.min(num_ctx).max(1);
    PromptCount {
        total,
        cached: cached.min(total - 1),
    }
}

/// eval_count and done_reason for the options.
pub(crate) fn answer_length(
    opts: &SimOptions,
    num_ctx: u32,
    prompt_tokens: u32,
) -> (u32, &'static str) {
    match opts.num_predict {
        n if n > 0 => (n.min(MAX_ANSWER_TOKENS as i64) as u32, "length"),
        -2 => (num_ctx.saturating_sub(prompt_tokens).max(1), "length"),
        _ => (DEFAULT_ANSWER_TOKENS, "stop"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profiles::GEMMA3_4B;
    use serde_json::json;

    fn req(prompt: &str) -> GenerateRequest {
        GenerateRequest::parse(
            serde_json::to_vec(&json!({"model": "gemma3:4b", "prompt": prompt}))
                .unwrap()
                .as_slice(),
        )
        .unwrap()
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5m").unwrap(), 300.0);
        assert_eq!(parse_go_duration("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_go_duration("0").unwrap(), 0.0);
        assert_eq!(parse_go_duration("-1s").unwrap(), -1.0);
        assert_eq!(
            parse_go_duration("-1").unwrap_err().to_string(),
            "time: missing unit in duration \"-1\""
        );
        assert_eq!(
            parse_go_duration("5x").unwrap_err().to_string(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            parse_go_duration("m").unwrap_err().to_string(),
            "time: invalid duration \"m\""
        );
        assert_eq!(
            KeepAlive::parse(&json!(true)).unwrap_err().to_string(),
            "Unsupported type: 'bool'"
        );
        assert_eq!(
            KeepAlive::parse(&json!(-1)).unwrap(),
            Some(KeepAlive::Forever)
        );
        assert_eq!(
            KeepAlive::parse(&json!("10m")).unwrap(),
            Some(KeepAlive::For(Duration::from_secs(600)))
        );
    }

    #[test]
    fn request_type_errors_read_like_go() {
        let e = GenerateRequest::parse(br#"{"model": "m", "prompt": 3}"#)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string"
        );
        assert_eq!(
            GenerateRequest::parse(b"").err().unwrap().to_string(),
            "missing request body"
        );
        assert_eq!(
            GenerateRequest::parse(b"[1]").err().unwrap().to_string(),
            "json: cannot unmarshal array into Go value of type api.GenerateRequest"
        );
        let bad = GenerateRequest::parse(b"{nope").err().unwrap().to_string();
        assert!(bad.starts_with("invalid JSON in request body: "), "{bad}");
    }

    #[test]
    fn prompt_cache_counts_but_does_not_charge() {
        let p = &GEMMA3_4B;
        let first = count_prompt(p, &req("[1] Why is the sky blue?"), None, 4096);
        assert_eq!(first.cached, 0);
        assert_eq!(first.total, 4 + 6 + 5); // 24 characters = 6 tokens
        let (key, _) = req("[1] Why is the sky blue?").cache_key();
        let same = count_prompt(p, &req("[1] Why is the sky blue?"), Some(&key), 4096);
        assert_eq!(same.cached, same.total - 1);
        let nonce = count_prompt(p, &req("[2] Why is the sky blue?"), Some(&key), 4096);
        assert_eq!(nonce.cached, 4, "only the template prefix is shared");
        let truncated = count_prompt(p, &req(&"x".repeat(100_000)), None, 2048);
        assert_eq!(truncated.total, 2048);
    }

    #[test]
    fn answer_lengths() {
        let mut o = SimOptions::default();
        assert_eq!(answer_length(&o, 4096, 10), (128, "stop"));
        o.num_predict = 7;
        assert_eq!(answer_length(&o, 4096, 10), (7, "length"));
        o.num_predict = -2;
        assert_eq!(answer_length(&o, 100, 10), (90, "length"));
    }
}
