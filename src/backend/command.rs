//! The command backend: runs a user's program once per measurement, never through a shell.
//!
//! The program receives the configuration as a JSON object on stdin and as environment
//! variables `TUNE_<NAME>` (upper-case parameter name). Its last non-empty stdout line is either
//! a number (the metric `value`) or a JSON object of numeric metrics. A non-zero exit or a
//! timeout is a failed trial, with the tail of stderr kept. Exit code 75 (EX_TEMPFAIL from
//! sysexits.h) means "try again later": a transient fault that is not the configuration's.

use super::{Backend, BackendError, BackendInfo, Evaluation, Failure};
use crate::engine::space::{Config, SearchSpace};
use crate::engine::stats::Sample;
use crate::trial::FailureKind;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Exit status that asks for a retry (sysexits.h EX_TEMPFAIL).
pub(crate) const EXIT_TEMPFAIL: i32 = 75;
const STDERR_TAIL: usize = 2000;

pub struct CommandBackend {
    argv: Vec<String>,
    timeout: Duration,
    env: BTreeMap<String, String>,
    repeats: usize,
}

impl CommandBackend {
    pub fn new(
        argv: Vec<String>,
        timeout: Duration,
        env: BTreeMap<String, String>,
        repeats: usize,
    ) -> Self {
        CommandBackend {
            argv,
            timeout,
            env,
            repeats: repeats.max(1),
        }
    }

    async fn run_once(&self, config: &Config) -> Result<Result<Sample, Failure>, BackendError> {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in config {
            cmd.env(format!("TUNE_{}", k.to_uppercase()), v.to_string());
        }
        let mut child = cmd.spawn().map_err(|e| {
            BackendError::fatal(
                format!("cannot start {:?}: {e}", self.argv[0]),
                "check backend.argv in the study file: the first element must be an executable path or a program on PATH",
            )
        })?;
        let input = serde_json::to_vec(config).unwrap_or_default();
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read stdin closes the pipe; that is fine.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Err(BackendError::Transient(format!(
                    "waiting for the program failed: {e}"
                )))
            }
            Err(_) => {
                // kill_on_drop reaps the child when the future is dropped.
                return Ok(Err(failure(
                    FailureKind::Timeout,
                    format!(
                        "no result within {:.0} s (backend.timeout)",
                        self.timeout.as_secs_f64()
                    ),
                )));
            }
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = tail(&stderr, STDERR_TAIL);
        match output.status.code() {
            Some(0) => {}
            Some(EXIT_TEMPFAIL) => {
                return Err(BackendError::Transient(format!(
                    "program asked for a retry (exit 75): {tail}"
                )))
            }
            Some(c) => {
                return Ok(Err(failure(
                    FailureKind::Error,
                    format!("exit status {c}: {tail}"),
                )))
            }
            None => {
                return Ok(Err(failure(
                    FailureKind::Crashed,
                    format!("killed by a signal: {tail}"),
                )))
            }
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(parse_result(&stdout).map_err(|e| failure(FailureKind::Error, e.to_string())))
    }
}

fn failure(kind: FailureKind, message: String) -> Failure {
    Failure { kind, message }
}

/// Why the program's stdout holds no result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResultError {
    #[error("the program printed nothing; its last stdout line must be a number or a JSON object")]
    Nothing,
    #[error("the result {0:?} is not a finite number")]
    NotFinite(String),
    #[error("the JSON result {0:?} has no numeric field")]
    NoNumericField(String),
    #[error("the last stdout line {0:?} is neither a number nor a JSON object of metrics")]
    Unreadable(String),
}

/// Last `max` bytes of text, on a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let t = text.trim_end();
    if t.len() <= max {
        return t.to_string();
    }
    let mut start = t.len() - max;
    while !t.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &t[start..])
}

/// Parse the program's result from its stdout: the last non-empty line.
pub(crate) fn parse_result(stdout: &str) -> Result<Sample, ResultError> {
    let Some(line) = stdout.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        return Err(ResultError::Nothing);
    };
    if let Ok(v) = line.parse::<f64>() {
        if v.is_finite() {
            return Ok(Sample::from([("value".to_string(), v)]));
        }
        return Err(ResultError::NotFinite(line.to_string()));
    }
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => {
            let sample: Sample = map
                .iter()
                .filter_map(|(k, v)| v.as_f64().filter(|x| x.is_finite()).map(|x| (k.clone(), x)))
                .collect();
            if sample.is_empty() {
                Err(ResultError::NoNumericField(line.to_string()))
            } else {
                Ok(sample)
            }
        }
        _ => Err(ResultError::Unreadable(line.to_string())),
    }
}

#[async_trait]
impl Backend for CommandBackend {
    async fn prepare(&mut self, _space: &mut SearchSpace) -> Result<BackendInfo, BackendError> {
        Ok(BackendInfo {
            backend: "command".into(),
            details: BTreeMap::from([("argv".to_string(), serde_json::json!(self.argv))]),
            ..Default::default()
        })
    }

    async fn evaluate(&mut self, config: &Config) -> Result<Evaluation, BackendError> {
        let mut eval = Evaluation::default();
        for _ in 0..self.repeats {
            let t0 = Instant::now();
            match self.run_once(config).await? {
                Ok(mut sample) => {
                    sample
                        .entry("wall_s".to_string())
                        .or_insert(t0.elapsed().as_secs_f64());
                    eval.samples.push(sample);
                }
                Err(f) => return Ok(Evaluation::failed(f.kind, f.message)),
            }
        }
        Ok(eval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::space::ParamValue;

    fn sh(script: &str) -> CommandBackend {
        CommandBackend::new(
            vec!["sh".into(), "-c".into(), script.into()],
            Duration::from_secs(5),
            BTreeMap::new(),
            1,
        )
    }

    fn cfg() -> Config {
        Config::from([("num_ctx".to_string(), ParamValue::Int(2048))])
    }

    #[tokio::test]
    async fn reads_number_env_and_stdin() {
        let mut b = sh("read line; echo \"noise\"; echo $((TUNE_NUM_CTX / 2))");
        let e = b.evaluate(&cfg()).await.unwrap();
        assert_eq!(e.samples[0]["value"], 1024.0);
        let mut b = sh(r#"cat; echo; echo '{"tps": 12.5, "name": "x"}'"#);
        let e = b.evaluate(&cfg()).await.unwrap();
        assert_eq!(e.samples[0]["tps"], 12.5);
        assert!(!e.samples[0].contains_key("name"));
    }

    #[tokio::test]
    async fn failures_keep_stderr_tail() {
        let mut b = sh("echo 'CUDA out of memory' >&2; exit 3");
        let e = b.evaluate(&cfg()).await.unwrap();
        let f = e.failure.unwrap();
        assert_eq!(f.kind, FailureKind::Error);
        assert!(f.message.contains("out of memory") && f.message.contains("exit status 3"));
    }

    #[tokio::test]
    async fn timeout_is_a_failed_trial_and_tempfail_is_transient() {
        let mut b = sh("sleep 10");
        b.timeout = Duration::from_millis(200);
        let e = b.evaluate(&cfg()).await.unwrap();
        assert_eq!(e.failure.unwrap().kind, FailureKind::Timeout);
        let mut b = sh("exit 75");
        assert!(matches!(
            b.evaluate(&cfg()).await,
            Err(BackendError::Transient(_))
        ));
    }

    #[tokio::test]
    async fn missing_program_is_fatal() {
        let mut b = CommandBackend::new(
            vec!["/nonexistent/prog".into()],
            Duration::from_secs(1),
            BTreeMap::new(),
            1,
        );
        assert!(matches!(
            b.evaluate(&cfg()).await,
            Err(BackendError::Fatal { .. })
        ));
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(parse_result("").is_err());
        assert!(parse_result("hello").is_err());
        assert!(parse_result("nan").is_err());
        assert_eq!(parse_result("1\n2\n\n").unwrap()["value"], 2.0);
    }
}
