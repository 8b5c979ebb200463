//! The streamed answer of llama-server's `POST /completion`: a server-sent-events parser, the
//! events it carries, and the metrics of the final event.
//!
//! llama-server sends `data: {json}` events each followed by a blank line, `:` comment lines as
//! keep-alive pings, an error as `data: {"error": {...}}`, and no `[DONE]` line for this
//! endpoint; the final event has `"stop": true` and `timings` (docs/llama-server.md).

use crate::domain::metrics::{self, Observed, MAX_DECODE_TPS, MAX_PREFILL_TPS};
use crate::engine::stats::Sample;
use serde_json::Value;

/// Longest kept line of the stream; longer ones are cut.
const MAX_SSE_LINE: usize = 8 << 20;

/// An event that cannot be read as llama-server's.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("llama-server sent a non-JSON event ({error}): {data:.200}")]
    NonJson { error: String, data: String },
    #[error("the final event carries no timings.predicted_per_second")]
    NoTimings,
    /// The timings are impossible (docs/measurement.md, "Plausibility").
    #[error("implausible timings in the final event, not recorded as a measurement: {0}")]
    Implausible(String),
}

/// Incremental parser of a `text/event-stream` body (WHATWG HTML, "Server-sent events"): `data:`
/// lines accumulate, a blank line ends an event, `:` lines are comments (llama-server's pings),
/// other fields (`event:`, `id:`) are ignored. Bytes may arrive split anywhere.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// Feed bytes; returns the data of every event they complete.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.end_line(line, &mut out);
            } else if self.line.len() < MAX_SSE_LINE {
                self.line.push(b);
            }
        }
        out
    }

    /// The stream ended: an event not yet closed by a blank line, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(line, &mut out);
        }
        out.pop().or_else(|| self.data.take())
    }

    fn end_line(&mut self, mut line: Vec<u8>, out: &mut Vec<String>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            if let Some(d) = self.data.take() {
                out.push(d);
            }
            return;
        }
        let text = String::from_utf8_lossy(&line);
        if text.starts_with(':') {
            return;
        }
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

/// One event of a /completion stream.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StreamEvent {
    /// A partial result (usually one token of text).
    Token(String),
    /// The final event ("stop": true) with `timings`.
    Final(Value),
    /// `data: {"error": {...}}`: the server gave up on the request.
    Error { message: String, kind: String },
    /// `[DONE]` (sent by the OpenAI-style endpoints, not by /completion; accepted anyway).
    Done,
}

/// Interpret one event's data.
pub(crate) fn parse_event(data: &str) -> Result<StreamEvent, StreamError> {
    let d = data.trim();
    if d == "[DONE]" {
        return Ok(StreamEvent::Done);
    }
    let v: Value = serde_json::from_str(d).map_err(|e| StreamError::NonJson {
        error: e.to_string(),
        data: d.to_string(),
    })?;
    if let Some(err) = v.get("error") {
        return Ok(StreamEvent::Error {
            message: error_message(err),
            kind: err["type"].as_str().unwrap_or("").to_string(),
        });
    }
    if v["stop"].as_bool() == Some(true) {
        return Ok(StreamEvent::Final(v));
    }
    Ok(StreamEvent::Token(
        v["content"].as_str().unwrap_or("").to_string(),
    ))
}

pub(crate) fn error_message(err: &Value) -> String {
    match err {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| err.to_string()),
        other => other.to_string(),
    }
}

/// Metrics of the final event: llama-server's own throughputs (`timings`, in milliseconds), named
/// like the Ollama backend's so reports treat both alike, checked for physical plausibility
/// against what the client saw of the request (docs/measurement.md, "Plausibility").
pub(crate) fn metrics_from_final(v: &Value, seen: &Observed) -> Result<Sample, StreamError> {
    let t = &v["timings"];
    if !t.is_object() {
        return Err(StreamError::NoTimings);
    }
    timings(t, seen).map_err(StreamError::Implausible)?
}

/// The checked timings: `Ok(Err(NoTimings))` when the decode speed is missing.
fn timings(t: &Value, seen: &Observed) -> Result<Result<Sample, StreamError>, String> {
    // A field: absent is None; present, a finite number >= 0.
    let num = |k: &str| -> Result<Option<f64>, String> {
        match t.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => match x.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                _ => Err(format!("timings.{k} is {x}, not a number >= 0")),
            },
        }
    };
    let Some(decode) = num("predicted_per_second")?.filter(|x| *x > 0.0) else {
        return Ok(Err(StreamError::NoTimings));
    };
    let predicted_n = seen.generated("predicted_n", num("predicted_n")?.unwrap_or(0.0))?;
    let prompt_n = metrics::count("prompt_n", num("prompt_n")?.unwrap_or(0.0))?;
    let cache_n = metrics::count("cache_n", num("cache_n")?.unwrap_or(0.0))?;
    let predicted_s = seen.duration("predicted_ms", num("predicted_ms")?.unwrap_or(0.0) / 1e3)?;
    let prompt_s = seen.duration("prompt_ms", num("prompt_ms")?.unwrap_or(0.0) / 1e3)?;
    seen.duration("prompt_ms + predicted_ms", prompt_s + predicted_s)?;
    // llama-server derives the speeds from the counts and times; they must agree, for n or n-1
    // tokens (the final event of llama-server 11434.0.0 gives 8 tokens in 4863.894 ms at
    // 1.439 tok/s: the first token came with the prompt).
    let agree = |name: &str, speed: f64, n: f64, s: f64, ceiling: f64| -> Result<(), String> {
        if speed > ceiling {
            return Err(format!(
                "timings.{name} of {speed:.3e} tok/s is above the {ceiling:.0e} tok/s no hardware reaches"
            ));
        }
        if n > 0.0 && s > 0.0 {
            let derived = n / s;
            let near = |d: f64| (speed - d).abs() <= 0.01 * d.max(speed);
            if !near(derived) && !near((n - 1.0) / s) {
                return Err(format!(
                    "timings.{name} is {speed:.3} but {n} tokens in {s:.6} s is {derived:.3} tok/s"
                ));
            }
        }
        Ok(())
    };
    agree(
        "predicted_per_second",
        decode,
        predicted_n,
        predicted_s,
        MAX_DECODE_TPS,
    )?;
    let prefill = num("prompt_per_second")?.filter(|x| *x > 0.0);
    if let Some(p) = prefill {
        agree("prompt_per_second", p, prompt_n, prompt_s, MAX_PREFILL_TPS)?;
    }
    let mut s = Sample::new();
    s.insert("decode_tps".into(), decode);
    if let Some(p) = prefill {
        s.insert("prefill_tps".into(), p);
    }
    s.insert("eval_count".into(), predicted_n);
    s.insert("prompt_eval_count".into(), prompt_n);
    s.insert("cache_n".into(), cache_n);
    // Server-side compute time of the request (Ollama's total_duration without the load).
    s.insert("total".into(), prompt_s + predicted_s);
    Ok(Ok(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A final event as llama-server 11434.0.0 sent it here (trimmed).
    const FINAL: &str = r#"{"index":0,"content":"","id_slot":0,"stop":true,"tokens_predicted":8,"stop_type":"limit","timings":{"cache_n":0,"prompt_n":6,"prompt_ms":810.399,"prompt_per_token_ms":135.0665,"prompt_per_second":7.4037603698918675,"predicted_n":8,"predicted_ms":4863.894,"predicted_per_token_ms":694.842,"predicted_per_second":1.439176100466005}}"#;

    #[test]
    fn sse_events_split_across_chunks() {
        let body = format!(
            "data: {{\"index\":0,\"content\":\" your\",\"stop\":false}}\n\n:\n\ndata: {{\"content\":\" book\",\"stop\":false}}\r\n\r\ndata: {FINAL}\n\n"
        );
        // Every split point must give the same events.
        let whole: Vec<String> = SseParser::default().feed(body.as_bytes());
        assert_eq!(whole.len(), 3, "{whole:?}");
        for cut in 1..body.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&body.as_bytes()[..cut]);
            got.extend(p.feed(&body.as_bytes()[cut..]));
            assert_eq!(got, whole, "split at {cut}");
        }
        assert_eq!(
            parse_event(&whole[0]).unwrap(),
            StreamEvent::Token(" your".into())
        );
        match parse_event(&whole[2]).unwrap() {
            StreamEvent::Final(v) => {
                let s = metrics_from_final(&v, &SEEN).unwrap();
                assert!((s["decode_tps"] - 1.439176100466005).abs() < 1e-12);
                assert!((s["prefill_tps"] - 7.4037603698918675).abs() < 1e-12);
                assert_eq!(s["eval_count"], 8.0);
                assert_eq!(s["prompt_eval_count"], 6.0);
                assert!((s["total"] - 5.674293).abs() < 1e-9);
            }
            other => panic!("not final: {other:?}"),
        }
    }

    #[test]
    fn sse_final_event_without_trailing_blank_line() {
        let mut p = SseParser::default();
        assert!(p.feed(format!("data: {FINAL}").as_bytes()).is_empty());
        let last = p.finish().unwrap();
        assert!(matches!(parse_event(&last).unwrap(), StreamEvent::Final(_)));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn sse_non_json_and_error_events() {
        let mut p = SseParser::default();
        let ev = p.feed(b"this line has no field\nevent: x\ndata: not json\n\n");
        assert_eq!(ev, vec!["not json".to_string()]);
        let e = parse_event(&ev[0]).unwrap_err().to_string();
        assert!(e.contains("non-JSON"), "{e}");
        let err = parse_event(r#"{"error":{"code":500,"message":"boom","type":"server_error"}}"#)
            .unwrap();
        assert_eq!(
            err,
            StreamEvent::Error {
                message: "boom".into(),
                kind: "server_error".into()
            }
        );
        assert_eq!(parse_event("[DONE]").unwrap(), StreamEvent::Done);
        // Multi-line data joins with a newline (SSE spec).
        assert_eq!(
            SseParser::default().feed(b"data: a\ndata: b\n\n"),
            vec!["a\nb".to_string()]
        );
    }

    #[test]
    fn final_without_timings_is_an_error() {
        assert!(metrics_from_final(&json!({"stop": true}), &SEEN).is_err());
    }

    /// What the client saw of the request of [`FINAL`]: 6 s, 8 tokens asked for.
    const SEEN: Observed = Observed {
        wall_s: 6.0,
        clock_scale: 1.0,
        num_predict: 8,
    };

    #[test]
    fn impossible_timings_are_refused() {
        let good: Value = serde_json::from_str(FINAL).unwrap();
        assert!(metrics_from_final(&good, &SEEN).is_ok());
        let with = |key: &str, value: Value| {
            let mut v = good.clone();
            v["timings"][key] = value;
            metrics_from_final(&v, &SEEN)
        };
        for (key, value) in [
            ("predicted_per_second", json!(6.4e10)),
            ("predicted_per_second", json!(10.0)),
            ("predicted_ms", json!(-4863.894)),
            ("predicted_ms", json!(1e300)),
            ("predicted_n", json!(1e300)),
            ("predicted_n", json!(9000)),
            ("predicted_n", json!("8")),
            ("prompt_n", json!(6.5)),
            ("prompt_per_second", json!(2e7)),
            ("cache_n", json!(-1)),
        ] {
            let e = with(key, value.clone()).expect_err(&format!("{key} = {value}"));
            assert!(matches!(e, StreamError::Implausible(_)), "{key}: {e}");
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
        // Longer than the request took.
        let short = Observed {
            wall_s: 1.0,
            ..SEEN
        };
        assert!(metrics_from_final(&good, &short).is_err());
    }
}
