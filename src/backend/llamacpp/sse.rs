//! The streamed answer of llama-server's `POST /completion`: a server-sent-events parser, the
//! events it carries, and the metrics of the final event.
//!
//! llama-server sends `data: {json}` events each followed by a blank line, `:` comment lines as
//! keep-alive pings, an error as `data: {"error": {...}}`, and no `[DONE]` line for this
//! endpoint; the final event has `"stop": true` and `timings` (docs/llama-server.md).

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
/// like the Ollama backend's so reports treat both alike.
pub(crate) fn metrics_from_final(v: &Value) -> Result<Sample, StreamError> {
    let t = &v["timings"];
    let num = |k: &str| t[k].as_f64().filter(|x| x.is_finite());
    let decode = num("predicted_per_second")
        .filter(|x| *x > 0.0)
        .ok_or(StreamError::NoTimings)?;
    let mut s = Sample::new();
    s.insert("decode_tps".into(), decode);
    if let Some(p) = num("prompt_per_second").filter(|x| *x > 0.0) {
        s.insert("prefill_tps".into(), p);
    }
    s.insert("eval_count".into(), num("predicted_n").unwrap_or(0.0));
    s.insert("prompt_eval_count".into(), num("prompt_n").unwrap_or(0.0));
    s.insert("cache_n".into(), num("cache_n").unwrap_or(0.0));
    // Server-side compute time of the request (Ollama's total_duration without the load).
    s.insert(
        "total".into(),
        (num("prompt_ms").unwrap_or(0.0) + num("predicted_ms").unwrap_or(0.0)) / 1000.0,
    );
    Ok(s)
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
                let s = metrics_from_final(&v).unwrap();
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
        assert!(metrics_from_final(&json!({"stop": true})).is_err());
    }
}
