//! The measurement protocol shared by the server backends (Ollama, the simulator, llama-server),
//! and the one `Backend` impl they share: `Protocolled<S>` for any `InferenceServer` `S`.
//!
//! Per trial: if the runner (load-time) options differ from the loaded ones, load them with an
//! empty request and time that separately; after a load, send `warmup` requests and discard
//! them; then send `repeats` measured requests, each prompt prefixed with a unique nonce so no
//! prefix cache serves it, each with a fixed generation length. Why each step is there:
//! docs/measurement.md (warm-up: ggml-org/llama.cpp pull request 21282 turned
//! 25231 +- 17262 t/s into 42934 +- 240 t/s).

use crate::backend::{Backend, BackendError, BackendInfo, Counters, Evaluation, Failure, Fatal};
use crate::engine::optimizer::RunsAs;
use crate::engine::space::{Config, SearchSpace};
use crate::engine::stats::Sample;
use crate::study::{Prompts, Protocol};
use crate::trial::{FailureKind, LoadRecord};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Failure of one server operation.
#[derive(Debug)]
pub enum ServerError {
    /// The configuration does not work here (out of memory, cannot load).
    Config(FailureKind, String),
    /// Not the configuration's fault: outage, 5xx, broken stream, timeout.
    Transient(String),
    /// Stop the run.
    Fatal(Fatal),
}

impl ServerError {
    pub fn fatal(message: impl Into<String>, hint: impl Into<String>) -> ServerError {
        ServerError::Fatal(Fatal::new(message, hint))
    }
}

impl From<ServerError> for BackendError {
    fn from(e: ServerError) -> BackendError {
        match e {
            ServerError::Transient(m) => BackendError::Transient(m),
            ServerError::Fatal(f) => BackendError::Fatal(f),
            ServerError::Config(k, m) => BackendError::Transient(format!("unexpected {k:?}: {m}")),
        }
    }
}

/// What a load reported.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Seconds the load took, as measured by the client.
    pub seconds: f64,
    /// Facts worth keeping in the trial record (size_vram, ...).
    pub notes: BTreeMap<String, serde_json::Value>,
    /// Load options as the server ran them, for those it resolved or changed (an `auto` value,
    /// a clamped ubatch, a capped layer count); empty when it ran them as asked or told nothing.
    pub effective: Config,
}

/// A server that can load runner options and answer one generation request. What differs
/// between servers beyond that (how they connect, what they count, how they stop) is here too,
/// so that `Protocolled<S>` is the whole backend.
#[async_trait]
pub trait InferenceServer: Send {
    /// `Backend::prepare`: connect, record facts, adjust the space to what the model allows.
    async fn prepare(&mut self, space: &mut SearchSpace) -> Result<BackendInfo, BackendError>;
    /// Load (or restart with) the runner options of `config`.
    async fn load(&mut self, config: &Config) -> Result<LoadReport, ServerError>;
    /// One measured generation; returns a sample with at least `decode_tps` and `ttft`.
    async fn generate(
        &mut self,
        config: &Config,
        prompt: &str,
        num_predict: u32,
    ) -> Result<Sample, ServerError>;
    /// `Backend::runs_as`: what the server runs for a configuration, known without running it.
    fn runs_as(&self) -> Option<RunsAs> {
        None
    }
    /// Called before each measurement of a configuration.
    fn before_measure(&mut self) {}
    /// Adjust a finished measurement (the simulator rescales client-side timings).
    fn after_measure(&mut self, _eval: &mut Evaluation) {}
    /// The protocol's counters, completed or adjusted with the server's own.
    fn counters(&self, protocol: Counters) -> Counters {
        protocol
    }
    /// Release the server; safe to call twice. Returns true when the loaded runner is gone
    /// with it (a stopped child process), so the protocol forgets what was loaded.
    async fn shutdown(&mut self) -> bool {
        false
    }
}

/// Reading the prompt file of a protocol failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PromptsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no prompts (separate prompts with a blank line)", path.display())]
    Empty { path: PathBuf },
}

/// Prompts used when the study does not name a file: varied lengths and topics so prefill is
/// exercised, none so short that the first token arrives before any real work.
pub(crate) const BUILTIN_PROMPTS: &[&str] = &[
    "Explain how a hash map handles collisions, and compare open addressing with separate chaining in terms of cache behaviour and worst-case cost.",
    "Write a short story about a lighthouse keeper who discovers that the light has been signalling to something far out at sea.",
    "Summarize the causes and consequences of the 1929 stock market crash for a high-school student, in three paragraphs.",
    "List ten practical tips for reducing the memory use of a Python data pipeline that processes large CSV files, with one sentence of explanation each.",
    "Describe the water cycle, then explain how climate change alters evaporation, precipitation patterns and the frequency of droughts.",
    "A train leaves a station at 9:00 at 80 km/h; another leaves the same station at 9:30 at 100 km/h on the same track. When and where does the second catch up? Show your reasoning.",
];

/// The prompt set of a protocol.
pub(crate) fn load_prompts(p: &Prompts) -> Result<Vec<String>, PromptsError> {
    match p {
        Prompts::Builtin => Ok(BUILTIN_PROMPTS.iter().map(|s| s.to_string()).collect()),
        Prompts::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| PromptsError::Read {
                path: path.clone(),
                source,
            })?;
            let prompts: Vec<String> = text
                .split("\n\n")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if prompts.is_empty() {
                return Err(PromptsError::Empty { path: path.clone() });
            }
            Ok(prompts)
        }
    }
}

/// A prefix that makes every prompt unique, so no prompt cache serves it
/// (ollama/ollama:cmd/bench/bench.go prefixes "[epoch]"): a stamp taken once per process (so
/// two processes never send the same prompts) and the backend's own prompt count. Successive
/// prompts differ in the same characters however fast they are sent, so what a server's prompt
/// cache can reuse, and with it the simulator's numbers, does not depend on timing.
fn nonce_prefix(n: u64) -> String {
    static STAMP: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let t = STAMP.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    });
    format!("[{t:x}-{n}] ")
}

/// A server driven by the measurement protocol: the backend of every `InferenceServer`.
/// Protocol state lives across trials.
pub struct Protocolled<S> {
    pub server: S,
    pub protocol: Protocol,
    pub runner_params: Vec<String>,
    prompts: Vec<String>,
    /// Prompts sent so far (it also numbers the nonces).
    next_prompt: usize,
    /// Runner options currently loaded (None = unknown: load before measuring).
    pub loaded: Option<Config>,
    /// What the server said it ran for the loaded runner options (`LoadReport::effective`).
    loaded_effective: Config,
    pub reloads: u64,
    pub reload_seconds: f64,
}

impl<S: InferenceServer> Protocolled<S> {
    /// Drive `server` by `protocol`; fails when the prompt file cannot be read.
    pub fn with_server(
        server: S,
        protocol: Protocol,
        runner_params: Vec<String>,
    ) -> Result<Self, BackendError> {
        let prompts = load_prompts(&protocol.prompts).map_err(|e| {
            BackendError::fatal(e.to_string(), "fix protocol.prompts in the study file")
        })?;
        Ok(Protocolled {
            server,
            protocol,
            runner_params,
            prompts,
            next_prompt: 0,
            loaded: None,
            loaded_effective: Config::new(),
            reloads: 0,
            reload_seconds: 0.0,
        })
    }

    pub(crate) fn runner_part(&self, config: &Config) -> Config {
        crate::engine::configkey::runner_part(config, &self.runner_params)
    }

    fn next_prompt(&mut self) -> String {
        let p = &self.prompts[self.next_prompt % self.prompts.len()];
        self.next_prompt += 1;
        if self.protocol.nonce {
            format!("{}{p}", nonce_prefix(self.next_prompt as u64 - 1))
        } else {
            p.clone()
        }
    }

    /// Measure one configuration following the protocol.
    pub async fn measure(&mut self, config: &Config) -> Result<Evaluation, BackendError> {
        let runner = self.runner_part(config);
        let needs_load = self.loaded.as_ref() != Some(&runner);
        let mut eval = self.measure_loaded(config, runner, needs_load).await?;
        if eval.load.is_some() {
            // The server ran this configuration (even when it failed later): as it said it did.
            eval.effective = crate::backend::effective::overlay(config, &self.loaded_effective);
        }
        Ok(eval)
    }

    async fn measure_loaded(
        &mut self,
        config: &Config,
        runner: Config,
        needs_load: bool,
    ) -> Result<Evaluation, BackendError> {
        let mut eval = Evaluation::default();
        if needs_load {
            self.loaded = None;
            match self.server.load(config).await {
                Ok(report) => {
                    self.reloads += 1;
                    self.reload_seconds += report.seconds;
                    eval.load = Some(LoadRecord {
                        reloaded: true,
                        seconds: report.seconds,
                    });
                    eval.notes.extend(report.notes);
                    self.loaded = Some(runner);
                    self.loaded_effective = report.effective;
                }
                Err(ServerError::Config(kind, message)) => {
                    eval.failure = Some(Failure { kind, message });
                    return Ok(eval);
                }
                Err(e) => return Err(e.into()),
            }
            for _ in 0..self.protocol.warmup {
                let prompt = self.next_prompt();
                if let Err(f) = self.request(config, &prompt).await? {
                    eval.failure = Some(f);
                    return Ok(eval);
                }
            }
        } else {
            eval.load = Some(LoadRecord {
                reloaded: false,
                seconds: 0.0,
            });
        }
        for _ in 0..self.protocol.repeats {
            let prompt = self.next_prompt();
            match self.request(config, &prompt).await? {
                Ok(sample) => eval.samples.push(sample),
                Err(f) => {
                    eval.failure = Some(f);
                    eval.samples.clear();
                    return Ok(eval);
                }
            }
        }
        Ok(eval)
    }

    /// One request; a configuration failure comes back as `Ok(Err(..))`, and the loaded state
    /// is forgotten whenever the server may have dropped the model.
    async fn request(
        &mut self,
        config: &Config,
        prompt: &str,
    ) -> Result<Result<Sample, Failure>, BackendError> {
        let n = self.protocol.num_predict;
        match self.server.generate(config, prompt, n).await {
            Ok(s) => match crate::domain::metrics::check_sample(&s) {
                Ok(()) => Ok(Ok(s)),
                Err(why) => {
                    // A server fault, not the configuration's: retried, never recorded.
                    self.loaded = None;
                    Err(BackendError::Transient(format!(
                        "the server reported an impossible measurement, not recorded: {why}"
                    )))
                }
            },
            Err(ServerError::Config(kind, message)) => {
                // After a runtime OOM the server unloads its runners (docs/measurement.md, Errors).
                self.loaded = None;
                Ok(Err(Failure { kind, message }))
            }
            Err(e) => {
                self.loaded = None;
                Err(e.into())
            }
        }
    }
}

#[async_trait]
impl<S: InferenceServer> Backend for Protocolled<S> {
    async fn prepare(&mut self, space: &mut SearchSpace) -> Result<BackendInfo, BackendError> {
        self.server.prepare(space).await
    }

    async fn evaluate(&mut self, config: &Config) -> Result<Evaluation, BackendError> {
        self.server.before_measure();
        let mut eval = self.measure(config).await?;
        self.server.after_measure(&mut eval);
        Ok(eval)
    }

    fn counters(&self) -> Counters {
        self.server.counters(Counters {
            reloads: self.reloads,
            reload_seconds: self.reload_seconds,
            ..Counters::default()
        })
    }

    fn loaded_runner(&self) -> Option<Config> {
        self.loaded.clone()
    }

    fn runs_as(&self) -> Option<RunsAs> {
        self.server.runs_as()
    }

    async fn shutdown(&mut self) {
        if self.server.shutdown().await {
            self.loaded = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::space::ParamValue;

    /// A scripted server: records calls, fails on demand.
    #[derive(Default)]
    struct Fake {
        loads: Vec<Config>,
        prompts: Vec<String>,
        oom_on_load: bool,
        effective: Config,
    }

    #[async_trait]
    impl InferenceServer for Fake {
        async fn prepare(&mut self, _space: &mut SearchSpace) -> Result<BackendInfo, BackendError> {
            Ok(BackendInfo::default())
        }
        async fn load(&mut self, config: &Config) -> Result<LoadReport, ServerError> {
            self.loads.push(config.clone());
            if self.oom_on_load {
                return Err(ServerError::Config(
                    FailureKind::OutOfMemory,
                    "out of memory".into(),
                ));
            }
            Ok(LoadReport {
                seconds: 1.5,
                notes: BTreeMap::new(),
                effective: self.effective.clone(),
            })
        }
        async fn generate(
            &mut self,
            _c: &Config,
            prompt: &str,
            _n: u32,
        ) -> Result<Sample, ServerError> {
            self.prompts.push(prompt.to_string());
            Ok(Sample::from([("decode_tps".to_string(), 50.0)]))
        }
    }

    fn cfg(ctx: i64, temp: f64) -> Config {
        Config::from([
            ("num_ctx".to_string(), ParamValue::Int(ctx)),
            ("temperature".to_string(), ParamValue::Float(temp)),
        ])
    }

    #[tokio::test]
    async fn reloads_only_when_runner_options_change() {
        let proto = Protocol {
            repeats: 3,
            warmup: 1,
            ..Protocol::default()
        };
        let mut p =
            Protocolled::with_server(Fake::default(), proto, vec!["num_ctx".into()]).unwrap();
        let e = p.measure(&cfg(2048, 0.2)).await.unwrap();
        assert_eq!(e.samples.len(), 3);
        assert_eq!(
            e.load,
            Some(LoadRecord {
                reloaded: true,
                seconds: 1.5
            })
        );
        // 1 warm-up + 3 measured requests.
        assert_eq!(p.server.prompts.len(), 4);
        let e = p.measure(&cfg(2048, 0.8)).await.unwrap();
        assert!(!e.load.unwrap().reloaded);
        assert_eq!(p.server.prompts.len(), 7, "no warm-up without a reload");
        p.measure(&cfg(4096, 0.8)).await.unwrap();
        assert_eq!(p.server.loads.len(), 2);
        assert_eq!(p.reloads, 2);
        // Every prompt is unique (nonce).
        let unique: std::collections::BTreeSet<_> = p.server.prompts.iter().collect();
        assert_eq!(unique.len(), p.server.prompts.len());
    }

    #[tokio::test]
    async fn what_the_server_ran_is_recorded_on_every_trial_of_the_runner() {
        let fake = Fake {
            effective: Config::from([("num_ctx".to_string(), ParamValue::Int(4096))]),
            ..Fake::default()
        };
        let mut p =
            Protocolled::with_server(fake, Protocol::default(), vec!["num_ctx".into()]).unwrap();
        let mut auto = cfg(0, 0.2);
        auto.insert("num_ctx".into(), ParamValue::auto());
        let e = p.measure(&auto).await.unwrap();
        let eff = e.effective.expect("auto resolved");
        assert_eq!(eff["num_ctx"], ParamValue::Int(4096));
        assert_eq!(eff["temperature"], ParamValue::Float(0.2));
        // Same runner, no reload: still what the loaded runner runs.
        auto.insert("temperature".into(), ParamValue::Float(0.7));
        let e = p.measure(&auto).await.unwrap();
        assert!(!e.load.as_ref().unwrap().reloaded);
        assert_eq!(e.effective.unwrap()["temperature"], ParamValue::Float(0.7));
        // A configuration that runs as asked records none.
        let e = p.measure(&cfg(4096, 0.7)).await.unwrap();
        assert_eq!(e.effective, None);
        // A load that failed ran nothing.
        let mut p = Protocolled::with_server(
            Fake {
                oom_on_load: true,
                ..Fake::default()
            },
            Protocol::default(),
            vec!["num_ctx".into()],
        )
        .unwrap();
        assert_eq!(p.measure(&auto).await.unwrap().effective, None);
    }

    #[tokio::test]
    async fn load_oom_is_a_failed_trial() {
        let fake = Fake {
            oom_on_load: true,
            ..Fake::default()
        };
        let mut p =
            Protocolled::with_server(fake, Protocol::default(), vec!["num_ctx".into()]).unwrap();
        let e = p.measure(&cfg(2048, 0.2)).await.unwrap();
        assert_eq!(e.failure.unwrap().kind, FailureKind::OutOfMemory);
        assert!(e.samples.is_empty());
        assert!(p.loaded.is_none());
    }
}
