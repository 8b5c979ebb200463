//! The command backend: runs a user's program once per measurement, never through a shell.
//!
//! The program receives the configuration as a JSON object on stdin and as environment
//! variables `TUNE_<NAME>` (upper-case parameter name). Its last non-empty stdout line is either
//! a number (the metric `value`) or a JSON object of numeric metrics. A non-zero exit or a
//! timeout is a failed trial, with the head and tail of stderr kept (bounded, as every output
//! kept: `output.rs`). Exit code 75 (EX_TEMPFAIL from sysexits.h) means "try again later": a
//! transient fault that is not the configuration's. The program runs in its own process group
//! (`child.rs`): the timeout covers writing its stdin, its exit ends the measurement, and
//! whatever it left running is killed with the group.

use super::child::{run_program, Keep, Ran};
use super::output::{bound_text, Capture};
use super::{Backend, BackendError, BackendInfo, Evaluation, Failure};
use crate::engine::space::{Config, SearchSpace};
use crate::engine::stats::Sample;
use crate::trial::FailureKind;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tracing::warn;

/// Exit status that asks for a retry (sysexits.h EX_TEMPFAIL).
pub(crate) const EXIT_TEMPFAIL: i32 = 75;
/// The note of a trial whose program left processes running (they were killed).
pub const LEFTOVERS_NOTE: &str = "leftover_processes_killed";
/// What is kept of stdout: its tail, where the result is (the last line), and a little of its
/// head. A result line must fit in the tail.
const KEEP_STDOUT: Keep = Keep {
    head: 256,
    tail: 64 * 1024,
};
/// What is kept of stderr for an error message: its head and its tail.
const KEEP_STDERR: Keep = Keep {
    head: 500,
    tail: 1500,
};

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

    async fn run_once(&self, config: &Config) -> Result<Outcome, BackendError> {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in config {
            cmd.env(format!("TUNE_{}", k.to_uppercase()), v.to_string());
        }
        let input = serde_json::to_vec(config).unwrap_or_default();
        let ran = run_program(cmd, input, self.timeout, KEEP_STDOUT, KEEP_STDERR)
            .await
            .map_err(|e| {
                BackendError::fatal(
                    format!("cannot start {:?}: {e}", self.argv[0]),
                    "check backend.argv in the study file: the first element must be an executable path or a program on PATH",
                )
            })?;
        let (status, stdout, stderr, leftovers) = match ran {
            Ran::Exited {
                status,
                stdout,
                stderr,
                leftovers,
            } => (status, stdout, stderr, leftovers),
            Ran::TimedOut { stderr } => {
                let mut message = format!(
                    "no result within {} (backend.timeout)",
                    humantime::format_duration(self.timeout)
                );
                let said = stderr_text(&stderr);
                if !said.is_empty() {
                    message.push_str(&format!("; stderr: {said}"));
                }
                return Ok(Outcome::failed(FailureKind::Timeout, message));
            }
        };
        if leftovers {
            warn!(
                program = %self.argv[0],
                "the program exited leaving processes of its group running; they were killed"
            );
        }
        let tail = stderr_text(&stderr);
        let failed = |kind, message| {
            Ok(Outcome {
                result: Err(failure(kind, message)),
                leftovers,
            })
        };
        match status.code() {
            Some(0) => {}
            Some(EXIT_TEMPFAIL) => {
                return Err(BackendError::Transient(format!(
                    "program asked for a retry (exit 75): {tail}"
                )))
            }
            Some(c) => return failed(FailureKind::Error, format!("exit status {c}: {tail}")),
            None => return failed(FailureKind::Crashed, format!("killed by a signal: {tail}")),
        }
        Ok(Outcome {
            result: parse_captured(&stdout).map_err(|e| failure(FailureKind::Error, e.to_string())),
            leftovers,
        })
    }
}

/// One run of the program: its sample or why it failed, and whether processes it left
/// running had to be killed.
struct Outcome {
    result: Result<Sample, Failure>,
    leftovers: bool,
}

impl Outcome {
    fn failed(kind: FailureKind, message: String) -> Outcome {
        Outcome {
            result: Err(failure(kind, message)),
            leftovers: false,
        }
    }
}

/// The stderr kept for an error message: its head and tail, trimmed.
fn stderr_text(stderr: &Capture) -> String {
    stderr.text().trim().to_string()
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
    #[error("the last stdout line is longer than {max} bytes ({total} bytes of output; it ends {end:?}); print the result on a line of its own, as the last line")]
    TooLong { max: usize, total: u64, end: String },
}

/// The longest part of a result line an error message quotes.
const QUOTED_LINE_MAX: usize = 300;

/// A stdout line quoted in an error message, bounded.
fn quoted(line: &str) -> String {
    bound_text(line, QUOTED_LINE_MAX)
}

/// Parse the result from the stdout kept: its last non-empty line, which must lie wholly within
/// the kept tail.
pub(crate) fn parse_captured(stdout: &Capture) -> Result<Sample, ResultError> {
    let text = stdout.tail_text();
    if stdout.cut() > 0 {
        let body = text.trim_end();
        // The last line began before the kept tail: it cannot be read whole.
        if !body.is_empty() && !body.contains('\n') {
            return Err(ResultError::TooLong {
                max: KEEP_STDOUT.tail,
                total: stdout.total(),
                end: quoted(&body[body.len().saturating_sub(60)..]),
            });
        }
    }
    parse_result(&text)
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
        return Err(ResultError::NotFinite(quoted(line)));
    }
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => {
            let sample: Sample = map
                .iter()
                .filter_map(|(k, v)| v.as_f64().filter(|x| x.is_finite()).map(|x| (k.clone(), x)))
                .collect();
            if sample.is_empty() {
                Err(ResultError::NoNumericField(quoted(line)))
            } else {
                Ok(sample)
            }
        }
        _ => Err(ResultError::Unreadable(quoted(line))),
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
            let once = self.run_once(config).await?;
            if once.leftovers {
                eval.notes
                    .insert(LEFTOVERS_NOTE.to_string(), serde_json::json!(true));
            }
            match once.result {
                Ok(mut sample) => {
                    sample
                        .entry("wall_s".to_string())
                        .or_insert(t0.elapsed().as_secs_f64());
                    eval.samples.push(sample);
                }
                Err(f) => {
                    let mut failed = Evaluation::failed(f.kind, f.message);
                    failed.notes = eval.notes;
                    return Ok(failed);
                }
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
