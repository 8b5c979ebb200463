//! What the simulator writes on the wire: `{"error": ...}` bodies, a cut connection, and
//! api.GenerateResponse lines with Ollama's field names, nanosecond durations and zero metrics
//! omitted (ollama/ollama:api/types.go).

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use std::io;

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A response whose connection is cut right after the headers (the server died).
pub(super) fn aborted() -> Response {
    let body = Body::from_stream(futures_util::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::other("simulated server went down"))
    }));
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn is_zero(x: &i64) -> bool {
    *x == 0
}

/// api.Metrics: durations in nanoseconds, zero fields omitted (Go's omitempty).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(super) struct Metrics {
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) total_duration: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) load_duration: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) prompt_eval_count: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) prompt_eval_duration: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) eval_count: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) eval_duration: i64,
}

/// api.GenerateResponse (context omitted).
#[derive(Serialize)]
struct GenerateResponse<'a> {
    model: &'a str,
    created_at: String,
    response: &'a str,
    done: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    done_reason: &'a str,
    #[serde(flatten)]
    metrics: Metrics,
}

pub(super) fn response_json(
    model: &str,
    response: &str,
    done_reason: &str,
    metrics: Metrics,
) -> Vec<u8> {
    let r = GenerateResponse {
        model,
        created_at: rfc3339(Utc::now()),
        response,
        done: !done_reason.is_empty(),
        done_reason,
        metrics,
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

pub(super) fn json_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_omit_zero_fields() {
        let s = String::from_utf8(response_json("m", "", "load", Metrics::default())).unwrap();
        assert!(!s.contains("duration"), "{s}");
        assert!(s.contains("\"done\":true") && s.contains("\"done_reason\":\"load\""));
        let chunk = String::from_utf8(response_json("m", "hi", "", Metrics::default())).unwrap();
        assert!(chunk.contains("\"done\":false") && !chunk.contains("done_reason"));
    }
}
