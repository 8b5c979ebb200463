//! The Ollama backend against a server that misbehaves in every way we could think of (issue
//! 14): garbage, truncation, HTTP errors with and without Ollama's JSON, errors mid-stream,
//! hangs, slow drips, impossible durations and counts, missing fields, wrong types, non-UTF-8,
//! huge bodies, resets, wrong content types. For each mode the test asserts the outcome the
//! tuner gives (a measurement, a failed trial with a reason, a retried protocol error, or a stop)
//! and that no implausible metric is ever a measurement; the request timeout bounds hangs and
//! drips. Two whole runs check the journal. The summary is printed (`-- --nocapture`).

#[path = "server_faults/wire.rs"]
mod wire;

use ollama_tuner::backend::ollama::OllamaBackend;
use ollama_tuner::backend::{Backend, BackendError};
use ollama_tuner::domain::metrics::{check_sample, MAX_DECODE_TPS};
use ollama_tuner::engine::space::{Config, ParamValue, SearchSpace};
use ollama_tuner::run::{self, RunOptions};
use ollama_tuner::store::{RunDir, StopReason};
use ollama_tuner::study::{parse_study, Protocol};
use ollama_tuner::trial::FailureKind;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::{final_metrics, head, json_answer, stream, token_line, Asked, FaultServer, Step};

/// The request timeout of every mode: what bounds the hangs and drips.
const TIMEOUT: Duration = Duration::from_millis(1500);

/// What the tuner must make of a mode.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// Measured; every sample plausible.
    Measured,
    /// A failed trial of this kind, with a reason.
    Failed(FailureKind),
    /// A protocol error or outage: retried by the run loop, nothing recorded.
    Retried,
    /// The run stops with a message and a hint.
    Stops,
}

/// Which request of a trial a mode spoils.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    /// The streamed, measured generate requests.
    Generate,
    /// The load (empty prompt, not streamed).
    Load,
    /// `/api/show`, read by `prepare`.
    Show,
}

struct Mode {
    name: &'static str,
    target: Target,
    expect: Outcome,
    /// The answer to the spoiled request (its num_predict given).
    answer: fn(u64) -> Vec<Step>,
}

fn raw(status: u16, content_type: &str, body: &[u8]) -> Vec<Step> {
    let mut b = head(status, content_type);
    b.extend_from_slice(body);
    vec![Step::Write(b)]
}

/// A stream of `n` tokens whose final line is the plausible one with `edit` applied.
fn final_with(n: u64, edit: impl Fn(&mut Value)) -> Vec<Step> {
    let mut f = final_metrics(n);
    edit(&mut f);
    stream(n, &f, "application/x-ndjson")
}

fn tokens(n: u64) -> Vec<u8> {
    let mut b = head(200, "application/x-ndjson");
    for _ in 0..n {
        b.extend(token_line("tok "));
    }
    b
}

const OOM: &str = "llama runner process has terminated: cudaMalloc failed: out of memory";

fn modes() -> Vec<Mode> {
    use Outcome::*;
    use Target::*;
    let m = |name, target, expect, answer| Mode {
        name,
        target,
        expect,
        answer,
    };
    vec![
        m("healthy", Generate, Measured, |n| final_with(n, |_| {})),
        m("load_duration omitted (zero)", Generate, Measured, |n| {
            final_with(n, |f| {
                f.as_object_mut().unwrap().remove("load_duration");
            })
        }),
        m("fast but possible (5000 tok/s)", Generate, Measured, |n| {
            final_with(n, |f| f["eval_duration"] = json!(n * 200_000))
        }),
        m("text in `thinking`", Generate, Measured, |n| {
            let mut b = head(200, "application/x-ndjson");
            for _ in 0..n {
                let mut l = json!({"response": "", "thinking": "hmm ", "done": false}).to_string();
                l.push('\n');
                b.extend(l.into_bytes());
            }
            let mut end = final_metrics(n).to_string().into_bytes();
            end.push(b'\n');
            vec![
                Step::Write(b),
                Step::Sleep(Duration::from_millis(2 * n + 10)),
                Step::Write(end),
            ]
        }),
        m(
            "wrong content-type, Ollama's body",
            Generate,
            Measured,
            |n| stream(n, &final_metrics(n), "text/html"),
        ),
        m("garbage body", Generate, Retried, |_| {
            raw(
                200,
                "application/x-ndjson",
                b"\x00\x01 this is not json at all\n",
            )
        }),
        m("HTML under 200", Generate, Retried, |_| {
            raw(
                200,
                "text/html",
                b"<html><body>502 Bad Gateway</body></html>\n",
            )
        }),
        m("empty body", Generate, Retried, |_| {
            raw(200, "application/x-ndjson", b"")
        }),
        m("truncated JSON final line", Generate, Retried, |n| {
            let mut b = tokens(n);
            b.extend_from_slice(&final_metrics(n).to_string().as_bytes()[..40]);
            vec![Step::Write(b)]
        }),
        m("truncated stream (no done line)", Generate, Retried, |n| {
            vec![Step::Write(tokens(n / 2))]
        }),
        m("HTTP 400 with JSON", Generate, Stops, |_| {
            json_answer(400, &json!({"error": "invalid options"}))
        }),
        m("HTTP 400 without JSON", Generate, Stops, |_| {
            raw(400, "text/plain", b"Bad Request")
        }),
        m("HTTP 404 model not found", Generate, Stops, |_| {
            json_answer(404, &json!({"error": "model 'm' not found"}))
        }),
        m("HTTP 404 plain (not Ollama)", Generate, Stops, |_| {
            raw(404, "text/plain", b"404 page not found")
        }),
        m("HTTP 500 with JSON", Generate, Retried, |_| {
            json_answer(500, &json!({"error": "something broke"}))
        }),
        m("HTTP 500 without JSON", Generate, Retried, |_| {
            raw(500, "text/plain", b"Internal Server Error")
        }),
        m(
            "HTTP 500 out of memory",
            Generate,
            Failed(FailureKind::OutOfMemory),
            |_| json_answer(500, &json!({ "error": OOM })),
        ),
        m("HTTP 503 with JSON (busy)", Generate, Retried, |_| {
            json_answer(
                503,
                &json!({"error": "server busy, please try again.  maximum pending requests exceeded"}),
            )
        }),
        m("HTTP 503 without JSON", Generate, Retried, |_| {
            raw(503, "text/html", b"<h1>Service Unavailable</h1>")
        }),
        m("error line mid-stream", Generate, Retried, |n| {
            let mut b = tokens(n / 2);
            b.extend_from_slice(b"{\"error\":\"runner stopped\"}\n");
            vec![Step::Write(b)]
        }),
        m(
            "out-of-memory line mid-stream",
            Generate,
            Failed(FailureKind::OutOfMemory),
            |n| {
                let mut b = tokens(n / 2);
                b.extend_from_slice(json!({ "error": OOM }).to_string().as_bytes());
                b.push(b'\n');
                vec![Step::Write(b)]
            },
        ),
        m("hang: no bytes at all", Generate, Retried, |_| {
            vec![Step::Hang]
        }),
        m("hang after the headers", Generate, Retried, |_| {
            vec![Step::Write(head(200, "application/x-ndjson")), Step::Hang]
        }),
        m("hang after some tokens", Generate, Retried, |n| {
            vec![Step::Write(tokens(n / 2)), Step::Hang]
        }),
        m("slow drip (a byte every 50 ms)", Generate, Retried, |n| {
            let mut body = tokens(n);
            body.extend(final_metrics(n).to_string().into_bytes());
            let h = head(200, "application/x-ndjson");
            let rest = body.split_off(h.len());
            vec![Step::Write(h), Step::Drip(rest, Duration::from_millis(50))]
        }),
        m(
            "connection reset before the answer",
            Generate,
            Retried,
            |_| vec![Step::Reset],
        ),
        m("connection reset mid-stream", Generate, Retried, |n| {
            vec![
                Step::Write(tokens(n / 2)),
                Step::Sleep(Duration::from_millis(20)),
                Step::Reset,
            ]
        }),
        m(
            "eval_duration 1 ns (1.6e10 tok/s)",
            Generate,
            Retried,
            |n| final_with(n, |f| f["eval_duration"] = json!(1)),
        ),
        m("durations and counts 1e300", Generate, Retried, |n| {
            final_with(n, |f| {
                for k in [
                    "total_duration",
                    "eval_duration",
                    "eval_count",
                    "prompt_eval_count",
                    "prompt_eval_duration",
                ] {
                    f[k] = json!(1e300);
                }
            })
        }),
        m("negative durations", Generate, Retried, |n| {
            final_with(n, |f| {
                f["total_duration"] = json!(-5_000_000_000i64);
                f["load_duration"] = json!(-1_000_000_000i64);
            })
        }),
        m("negative count", Generate, Retried, |n| {
            final_with(n, |f| f["eval_count"] = json!(-16))
        }),
        m("zero durations (all omitted)", Generate, Retried, |n| {
            final_with(n, |f| {
                let o = f.as_object_mut().unwrap();
                o.retain(|k, _| !k.ends_with("_duration"));
            })
        }),
        m("total_duration missing", Generate, Retried, |n| {
            final_with(n, |f| {
                f.as_object_mut().unwrap().remove("total_duration");
            })
        }),
        m(
            "durations longer than the request",
            Generate,
            Retried,
            |n| {
                final_with(n, |f| {
                    f["eval_duration"] = json!(3_600_000_000_000u64);
                    f["total_duration"] = json!(3_600_100_000_000u64);
                })
            },
        ),
        m("parts longer than total_duration", Generate, Retried, |n| {
            final_with(n, |f| f["total_duration"] = json!(1_000_000))
        }),
        m("prefill 1 ns (1e10 tok/s)", Generate, Retried, |n| {
            final_with(n, |f| f["prompt_eval_duration"] = json!(1))
        }),
        m("eval_count above num_predict", Generate, Retried, |n| {
            final_with(n, |f| f["eval_count"] = json!(n * 1000))
        }),
        m(
            "eval_count below the text streamed",
            Generate,
            Retried,
            |n| final_with(n, |f| f["eval_count"] = json!(2)),
        ),
        m("fractional eval_count", Generate, Retried, |n| {
            final_with(n, |f| f["eval_count"] = json!(n as f64 - 0.5))
        }),
        m("metrics missing (done only)", Generate, Retried, |n| {
            stream(
                n,
                &json!({"done": true, "done_reason": "stop"}),
                "application/x-ndjson",
            )
        }),
        m("wrong type: eval_count a string", Generate, Retried, |n| {
            final_with(n, |f| f["eval_count"] = json!(n.to_string()))
        }),
        m("wrong type: eval_duration a bool", Generate, Retried, |n| {
            final_with(n, |f| f["eval_duration"] = json!(true))
        }),
        m("wrong type: response a number", Generate, Retried, |n| {
            let mut b = head(200, "application/x-ndjson");
            b.extend_from_slice(b"{\"response\":42,\"done\":false}\n");
            let mut end = final_metrics(n).to_string().into_bytes();
            end.push(b'\n');
            b.extend(end);
            vec![Step::Write(b)]
        }),
        m("wrong type: done a string", Generate, Retried, |n| {
            final_with(n, |f| f["done"] = json!("true"))
        }),
        m("a line that is not an object", Generate, Retried, |n| {
            let mut b = tokens(n);
            b.extend_from_slice(b"[1,2,3]\n");
            vec![Step::Write(b)]
        }),
        m("non-UTF-8 line", Generate, Retried, |n| {
            let mut b = tokens(n);
            b.extend_from_slice(b"{\"response\":\"\xff\xfe\",\"done\":false}\n");
            vec![Step::Write(b)]
        }),
        m("huge line (2 MiB, no newline)", Generate, Retried, |_| {
            let mut b = head(200, "application/x-ndjson");
            b.extend_from_slice(b"{\"response\":\"");
            b.extend(std::iter::repeat_n(b'a', 2 << 20));
            vec![Step::Write(b)]
        }),
        m("huge error body (20 MiB)", Generate, Retried, |_| {
            let mut b = head(500, "text/plain");
            b.extend(std::iter::repeat_n(b'e', 20 << 20));
            vec![Step::Write(b)]
        }),
        m("load: garbage", Load, Retried, |_| {
            raw(200, "application/json", b"not json")
        }),
        m("load: negative load_duration", Load, Retried, |_| {
            json_answer(
                200,
                &json!({"done": true, "done_reason": "load", "load_duration": -7}),
            )
        }),
        m("load: load_duration 1e300", Load, Retried, |_| {
            json_answer(
                200,
                &json!({"done": true, "done_reason": "load", "load_duration": 1e300}),
            )
        }),
        m("load: no done", Load, Retried, |_| {
            json_answer(200, &json!({"model": "m"}))
        }),
        m(
            "load: out of memory",
            Load,
            Failed(FailureKind::OutOfMemory),
            |_| json_answer(500, &json!({ "error": OOM })),
        ),
        m("load: hang", Load, Retried, |_| vec![Step::Hang]),
        m("load: reset", Load, Retried, |_| vec![Step::Reset]),
        m("show: garbage", Show, Retried, |_| {
            raw(200, "application/json", b"\xff\xff")
        }),
        m("show: HTTP 404 plain (not Ollama)", Show, Stops, |_| {
            raw(404, "text/plain", b"404 page not found")
        }),
        m("show: wrong types in model_info", Show, Measured, |_| {
            json_answer(
                200,
                &json!({"model_info": {"general.architecture": 7, "x.block_count": "many"}}),
            )
        }),
    ]
}

fn protocol() -> Protocol {
    Protocol {
        repeats: 2,
        warmup: 0,
        num_predict: 16,
        request_timeout: TIMEOUT,
        ..Protocol::default()
    }
}

fn space() -> SearchSpace {
    let text = r#"
[study]
name = "faults"
model = "m"
[backend]
kind = "ollama"
url = "http://127.0.0.1:1"
[params.num_ctx]
type = "int"
low = 512
high = 8192
default = 2048
"#;
    parse_study(std::path::Path::new("faults.toml"), text)
        .unwrap()
        .space
}

/// What one mode gave: its outcome and the message that comes with it.
async fn try_mode(server: &FaultServer, mode: &Mode) -> (Outcome, String, Duration) {
    let target = mode.target;
    let answer = mode.answer;
    server.set(Arc::new(move |asked: &Asked, _n| {
        let hit = match target {
            Target::Generate => asked.path == "/api/generate" && !asked.is_load(),
            Target::Load => asked.is_load(),
            Target::Show => asked.path == "/api/show",
        };
        hit.then(|| answer(asked.num_predict()))
    }));
    let url = server.url();
    let t0 = Instant::now();
    let task = tokio::spawn(async move {
        let mut b =
            OllamaBackend::new(&url, "m", "5m", protocol(), vec!["num_ctx".into()]).unwrap();
        let mut space = space();
        b.prepare(&mut space).await?;
        let config = Config::from([("num_ctx".to_string(), ParamValue::Int(2048))]);
        b.evaluate(&config).await
    });
    let result = task.await;
    let took = t0.elapsed();
    let (outcome, message) = match result {
        Err(join) => panic!("mode {:?} panicked: {join}", mode.name),
        Ok(Err(BackendError::Transient(m))) => (Outcome::Retried, m),
        Ok(Err(BackendError::Fatal(f))) => (Outcome::Stops, f.to_string()),
        Ok(Ok(e)) => match e.failure {
            Some(f) => {
                assert!(
                    e.samples.is_empty(),
                    "{}: a failed trial with samples",
                    mode.name
                );
                (Outcome::Failed(f.kind), f.message)
            }
            None => {
                assert!(!e.samples.is_empty(), "{}: measured nothing", mode.name);
                for s in &e.samples {
                    check_sample(s).unwrap_or_else(|why| {
                        panic!("{}: implausible measurement {s:?}: {why}", mode.name)
                    });
                    assert!(s["decode_tps"] <= MAX_DECODE_TPS && s["decode_tps"] > 0.0);
                }
                (Outcome::Measured, format!("{} samples", e.samples.len()))
            }
        },
    };
    (outcome, message, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_mode_has_the_documented_outcome() {
    let server = FaultServer::start().await;
    let modes = modes();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for mode in &modes {
        let (outcome, message, took) = try_mode(&server, mode).await;
        println!(
            "{:<40} {:<28} {:>5} ms  {}",
            mode.name,
            format!("{outcome:?}"),
            took.as_millis(),
            message
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(110)
                .collect::<String>()
        );
        assert!(!message.trim().is_empty(), "{}: no reason given", mode.name);
        // Every mode ends within the request timeout (plus the requests before the spoiled one
        // and the client's connect); hangs and drips included.
        assert!(
            took < TIMEOUT * 2 + Duration::from_secs(2),
            "{}: took {took:?}",
            mode.name
        );
        if outcome != mode.expect {
            wrong.push(format!(
                "{}: expected {:?}, got {outcome:?}: {message}",
                mode.name, mode.expect
            ));
        }
        *tally.entry(format!("{outcome:?}")).or_default() += 1;
    }
    server.stop();
    println!(
        "server fault modes: {} ({})",
        modes.len(),
        tally
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "panics: 0, implausible measurements: 0, wrong outcomes: {}",
        wrong.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(modes.len() >= 30);
}

/// A study on the fault server for a whole run.
fn study_text(url: &str, trials: usize) -> String {
    format!(
        r#"
[study]
name = "faults-run"
model = "m"
seed = 5
[backend]
kind = "ollama"
url = "{url}"
[budget]
trials = {trials}
[protocol]
repeats = 2
warmup = 0
num_predict = 16
request_timeout = "2s"
[params.num_ctx]
type = "int"
low = 512
high = 8192
default = 2048
[params.temperature]
type = "float"
low = 0.0
high = 1.0
default = 0.5
"#
    )
}

/// Each impossible final line the whole runs serve, in turn.
fn absurd(n: u64, k: usize) -> Vec<Step> {
    final_with(n, |f| match k % 4 {
        0 => f["eval_duration"] = json!(1),
        1 => {
            for key in ["total_duration", "eval_duration", "eval_count"] {
                f[key] = json!(1e300);
            }
        }
        2 => f["total_duration"] = json!(-1_000_000_000i64),
        _ => f["eval_count"] = json!(1),
    })
}

async fn whole_run(
    server: &FaultServer,
    trials: usize,
    max_outage: Duration,
) -> (run::RunOutcome, RunDir, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let text = study_text(&server.url(), trials);
    let path = tmp.path().join("study.toml");
    std::fs::write(&path, &text).unwrap();
    let study = parse_study(&path, &text).unwrap();
    let backend = OllamaBackend::new(
        &server.url(),
        &study.model,
        "5m",
        study.protocol.clone(),
        study.runner_params.clone(),
    )
    .unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(0u32);
    let opts = RunOptions {
        state_dir: tmp.path().join("state"),
        run_id: Some("r".into()),
        progress: false,
        max_outage,
        ..RunOptions::default()
    };
    let out = run::run(study, &text, &path, opts, Box::new(backend), rx)
        .await
        .unwrap();
    let dir = RunDir::new(tmp.path().join("state").join("r"));
    (out, dir, tmp)
}

/// Every third measured answer is impossible: the run retries each one, finishes its budget, and
/// the journal holds only plausible measurements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_retries_impossible_answers_and_journals_none() {
    let server = FaultServer::start().await;
    server.set(Arc::new(|asked: &Asked, n| {
        (n != usize::MAX && n % 3 == 2).then(|| absurd(asked.num_predict(), n / 3))
    }));
    let (out, dir, _tmp) = whole_run(&server, 4, Duration::from_secs(60)).await;
    let served = server.generates.load(std::sync::atomic::Ordering::SeqCst);
    server.stop();
    assert_eq!(out.stop, StopReason::Budget);
    let journal = dir.read_journal().unwrap();
    assert_eq!(journal.records.len(), 4);
    assert!(
        served / 3 >= 3,
        "only {served} generate requests: too few impossible answers served"
    );
    for r in &journal.records {
        assert!(r.is_ok(), "trial {} blamed: {:?}", r.trial, r.error);
        assert_eq!(r.samples.len(), 2);
        for s in &r.samples {
            check_sample(s)
                .unwrap_or_else(|why| panic!("trial {} journaled {s:?}: {why}", r.trial));
        }
        let decode = r.metrics["decode_tps"].mean;
        assert!(
            (400.0..=600.0).contains(&decode),
            "trial {}: decode {decode}",
            r.trial
        );
    }
    println!("whole run, every third answer impossible: {} trials journaled, {} impossible answers retried, 0 journaled", journal.records.len(), served / 3);
}

/// A server whose every answer is impossible: the run gives up after `--max-outage` and the
/// journal holds no trial at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_a_lying_server_journals_nothing() {
    let server = FaultServer::start().await;
    server.set(Arc::new(|asked: &Asked, n| {
        (n != usize::MAX).then(|| absurd(asked.num_predict(), n))
    }));
    let (out, dir, _tmp) = whole_run(&server, 3, Duration::from_secs(2)).await;
    server.stop();
    assert_ne!(out.stop, StopReason::Budget);
    let n = dir.read_journal().map(|j| j.records.len()).unwrap_or(0);
    assert_eq!(n, 0, "a trial was journaled from impossible answers");
    println!(
        "whole run, every answer impossible: stopped ({:?}), 0 trials journaled",
        out.stop
    );
}
