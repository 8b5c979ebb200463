//! One generate answer: what it will be (`plan_answer`: prompt count with the prompt cache,
//! answer length, durations with this request's jitter), then sending it, streamed as NDJSON
//! lines paced by the simulated decode speed or as one body, with an injected `StreamFault`
//! applied on the way.

use super::app::{sleep_until, App, Killed, Slot};
use super::model::{Expected, Jitter};
use super::options::SimOptions;
use super::reply::{aborted, error, json_response, response_json, Metrics};
use super::request::{answer_length, count_prompt, GenerateRequest};
use super::state::StreamFault;
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Wall-clock pause before cutting a connection, so lines already sent get flushed.
const CUT_FLUSH_GRACE: Duration = Duration::from_millis(25);
/// Detokenizing and writing the final answer, in simulated seconds.
const RESPONSE_OVERHEAD_S: f64 = 0.0003;

/// Everything about one answer, decided before the first byte is sent.
pub(super) struct Plan {
    model: String,
    done_reason: &'static str,
    /// Simulated seconds.
    load_s: f64,
    prefill_s: f64,
    token_s: f64,
    prompt_count: u32,
    eval_count: u32,
}

impl Plan {
    fn generation_s(&self) -> f64 {
        self.prefill_s + self.eval_count as f64 * self.token_s
    }

    fn metrics(&self) -> Metrics {
        let ns = |s: f64| (s * 1e9).round() as i64;
        let eval_s = self.eval_count as f64 * self.token_s;
        Metrics {
            total_duration: ns(self.load_s + self.generation_s() + RESPONSE_OVERHEAD_S),
            load_duration: ns(self.load_s),
            prompt_eval_count: self.prompt_count as i64,
            prompt_eval_duration: ns(self.prefill_s),
            eval_count: self.eval_count as i64,
            eval_duration: ns(eval_s),
        }
    }
}

pub(super) fn plan_answer(
    app: &App,
    req: &GenerateRequest,
    opts: &SimOptions,
    expected: &Expected,
    load_s: f64,
    jitter: &Jitter,
) -> Plan {
    let previous = app.shared.runner().and_then(|r| r.last_prompt);
    let count = count_prompt(app.profile, req, previous.as_deref(), expected.num_ctx);
    let (key, _) = req.cache_key();
    app.shared.update_runner(|r| r.last_prompt = Some(key));
    let (eval_count, done_reason) = answer_length(opts, expected.num_ctx, count.total);
    Plan {
        model: req.model.clone(),
        done_reason,
        load_s,
        prefill_s: expected.prefill_s(count.total - count.cached) * jitter.prefill,
        token_s: expected.token_s * jitter.decode,
        prompt_count: count.total,
        eval_count,
    }
}

/// Streams NDJSON lines into the response body and applies an injected fault.
struct Emitter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    sent: usize,
    fault: Option<StreamFault>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

impl Emitter {
    async fn send(&mut self, mut bytes: Vec<u8>) -> Flow {
        bytes.push(b'\n');
        if self.tx.send(Ok(Bytes::from(bytes))).await.is_err() {
            return Flow::Stop; // the client went away
        }
        self.sent += 1;
        Flow::Go
    }

    /// Close the connection abruptly. hyper drops what it has buffered but not yet written
    /// when the body fails, so first let it drain the lines already sent (a crashed server's
    /// last writes reach the client too).
    async fn cut(&mut self, why: &str) {
        for _ in 0..1000 {
            if self.tx.capacity() == self.tx.max_capacity() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(CUT_FLUSH_GRACE).await;
        let _ = self.tx.send(Err(io::Error::other(why.to_string()))).await;
    }

    /// Send one line, unless the pending fault is due first (always before the last line).
    async fn line(&mut self, line: Vec<u8>, last: bool) -> Flow {
        let due = self
            .fault
            .as_ref()
            .is_some_and(|f| last || self.sent >= f.after_lines());
        if due {
            match self.fault.take() {
                Some(StreamFault::ErrorLine { message, .. }) => {
                    let line = serde_json::to_vec(&json!({ "error": message })).unwrap_or_default();
                    self.send(line).await;
                    return Flow::Stop;
                }
                Some(StreamFault::Truncate { .. }) => {
                    self.cut("simulated truncated stream").await;
                    return Flow::Stop;
                }
                Some(StreamFault::InvalidJson { .. }) => {
                    let garbage = b"{\"model\":\"sim\",\"response\":tru".to_vec();
                    return match self.send(garbage).await {
                        Flow::Stop => Flow::Stop,
                        Flow::Go => self.send(line).await,
                    };
                }
                None => {}
            }
        }
        self.send(line).await
    }
}

pub(super) fn stream_answer(
    app: Arc<App>,
    plan: Plan,
    fault: Option<StreamFault>,
    slot: Slot,
    mut kill: watch::Receiver<u64>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(64);
    tokio::spawn(async move {
        let _slot = slot; // the runner stays busy until the stream ends
        let mut out = Emitter { tx, sent: 0, fault };
        if run_stream(&app, &plan, &mut out, &mut kill).await.is_err() {
            out.cut("simulated server went down").await;
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response()
}

/// Token i goes out at prefill + i * token_s (scaled), the final line at prefill + n * token_s.
async fn run_stream(
    app: &App,
    plan: &Plan,
    out: &mut Emitter,
    kill: &mut watch::Receiver<u64>,
) -> Result<(), Killed> {
    let t0 = tokio::time::Instant::now();
    let mut text = app.text_gen();
    for i in 0..plan.eval_count {
        sleep_until(
            t0 + app.wall(plan.prefill_s + i as f64 * plan.token_s),
            kill,
        )
        .await?;
        let line = response_json(&plan.model, &text.next_token(), "", Metrics::default());
        if out.line(line, false).await == Flow::Stop {
            return Ok(());
        }
    }
    sleep_until(t0 + app.wall(plan.generation_s()), kill).await?;
    app.shared.advance(plan.generation_s());
    let last = response_json(&plan.model, "", plan.done_reason, plan.metrics());
    out.line(last, true).await;
    Ok(())
}

pub(super) async fn whole_answer(
    app: Arc<App>,
    plan: Plan,
    fault: Option<StreamFault>,
    slot: Slot,
    mut kill: watch::Receiver<u64>,
) -> Response {
    if app.sleep(plan.generation_s(), &mut kill).await.is_err() {
        return aborted();
    }
    let text = app.text_gen().text(plan.eval_count);
    let body = response_json(&plan.model, &text, plan.done_reason, plan.metrics());
    drop(slot);
    match fault {
        None => json_response(body),
        Some(StreamFault::ErrorLine { message, .. }) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
        Some(StreamFault::InvalidJson { .. }) => json_response(body[..body.len() / 2].to_vec()),
        Some(StreamFault::Truncate { .. }) => {
            let half = Bytes::from(body[..body.len() / 2].to_vec());
            let chunks: Vec<Result<Bytes, io::Error>> = vec![
                Ok(half),
                Err(io::Error::other("simulated truncated answer")),
            ];
            let body = Body::from_stream(futures_util::stream::iter(chunks));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body,
            )
                .into_response()
        }
    }
}
