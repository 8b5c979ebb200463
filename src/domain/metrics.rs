//! The metrics a trial's samples carry: unit, and whether the metric is positive with
//! multiplicative noise (so the GP models its logarithm). One table for the optimizer (log
//! transform), the study (`transform = "auto"`) and the report (units).

/// The unit a metric is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Tokens per second.
    TokensPerSecond,
    Seconds,
    /// A count of tokens; shown without a unit.
    Count,
    /// Whatever a command prints; unknown.
    Unknown,
}

impl Unit {
    /// The unit as reports print it after a number ("" when there is nothing to print).
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::TokensPerSecond => "tok/s",
            Unit::Seconds => "s",
            Unit::Count | Unit::Unknown => "",
        }
    }
}

/// One metric of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    /// Rates and durations are positive with noise roughly proportional to the value, so
    /// their logarithm has the near-constant noise a GP assumes.
    pub positive: bool,
}

const fn m(name: &'static str, unit: Unit, positive: bool) -> Metric {
    Metric {
        name,
        unit,
        positive,
    }
}

/// Metrics by name. The backends fill samples in src/backend/ollama.rs (`metrics_from_final`,
/// the client-side `ttft` and `e2e`), src/backend/llamacpp/ (the final SSE event's `timings`)
/// and src/backend/command.rs (`value`, or the program's own names). Names not listed here
/// follow [`SUFFIXES`].
pub const METRICS: &[Metric] = &[
    // Generated tokens per second (Ollama eval_count / eval_duration, llama-server
    // timings.predicted_per_second).
    m("decode_tps", Unit::TokensPerSecond, true),
    // Prompt tokens per second (prompt_eval_count / prompt_eval_duration, prompt_per_second).
    m("prefill_tps", Unit::TokensPerSecond, true),
    // Client-side time to the first non-empty streamed chunk.
    m("ttft", Unit::Seconds, true),
    // Client-side time from sending the request to the last streamed chunk.
    m("e2e", Unit::Seconds, true),
    // Server-side request time (Ollama total_duration; llama-server prompt_ms + predicted_ms).
    m("total", Unit::Seconds, true),
    // Ollama's load_duration: omitted, hence 0, when the model is already loaded, so it is not
    // a positive quantity.
    m("server_load", Unit::Seconds, false),
    m("eval_count", Unit::Count, false),
    m("prompt_eval_count", Unit::Count, false),
    // llama-server: prompt tokens served from its cache.
    m("cache_n", Unit::Count, false),
    // The command backend's metric when the program prints a bare number.
    m("value", Unit::Unknown, false),
    // Common names a command may print.
    m("load", Unit::Seconds, true),
    m("latency", Unit::Seconds, true),
    m("tps", Unit::TokensPerSecond, true),
    m("throughput", Unit::TokensPerSecond, true),
];

/// The metrics every sample of an inference server carries, by backend kind: what an
/// objective or a constraint may name on it (src/backend/ollama.rs `metrics_from_final` and the
/// client-side `ttft`, `e2e`; src/backend/llamacpp/sse.rs and server.rs). None for a `command`
/// backend, whose program names its own metrics.
pub fn server_metrics(backend: &str) -> Option<&'static [&'static str]> {
    const OLLAMA: &[&str] = &[
        "decode_tps",
        "prefill_tps",
        "ttft",
        "e2e",
        "total",
        "server_load",
        "eval_count",
        "prompt_eval_count",
    ];
    const LLAMACPP: &[&str] = &[
        "decode_tps",
        "prefill_tps",
        "ttft",
        "e2e",
        "total",
        "eval_count",
        "prompt_eval_count",
        "cache_n",
    ];
    match backend {
        "ollama" | "simulator" => Some(OLLAMA),
        "llamacpp" => Some(LLAMACPP),
        _ => None,
    }
}

/// Naming conventions for metrics the table does not list: `*_tps` is a rate in tokens per
/// second, `*_s` a duration in seconds; both positive.
pub const SUFFIXES: &[(&str, Unit, bool)] = &[
    ("_tps", Unit::TokensPerSecond, true),
    ("_s", Unit::Seconds, true),
];

/// Unit and sign of metric `name`: its table entry, else its suffix's convention.
fn lookup(name: &str) -> Option<(Unit, bool)> {
    if let Some(known) = METRICS.iter().find(|x| x.name == name) {
        return Some((known.unit, known.positive));
    }
    SUFFIXES
        .iter()
        .find(|(suffix, _, _)| name.ends_with(suffix))
        .map(|(_, unit, positive)| (*unit, *positive))
}

/// The unit of metric `name` (`Unit::Unknown` for names neither listed nor conventional).
pub fn unit(name: &str) -> Unit {
    lookup(name).map_or(Unit::Unknown, |(unit, _)| unit)
}

/// Whether metric `name` is a rate or duration, positive with multiplicative noise.
pub fn is_positive(name: &str) -> bool {
    lookup(name).is_some_and(|(_, positive)| positive)
}

/// The fastest decode a server may report, tokens per second. Decoding is sequential, a forward
/// pass of the whole model for each token (or a few, speculating); the fastest single-stream decode published for any model on any
/// hardware is in the low thousands of tokens per second (small models on the fastest GPUs,
/// wafer-scale accelerators), speculative decoding included. 100 000 tok/s, 10 us a token, is
/// more than an order of magnitude above that: a figure past it is a broken clock or a broken
/// server (an `eval_duration` of 1 ns for 64 tokens reads as 6.4e10 tok/s), never a speed.
/// docs/measurement.md, "Plausibility".
pub const MAX_DECODE_TPS: f64 = 1e5;

/// The fastest prompt processing a server may report, tokens per second. Prefill is batched and
/// reaches tens of thousands of tokens per second on one GPU (ggml-org/llama.cpp pull request
/// 21282 measured 42 934 t/s); 10 million tok/s is two orders of magnitude above that.
pub const MAX_PREFILL_TPS: f64 = 1e7;

/// The most tokens a count may hold: no context window is anywhere near 2^32 tokens.
pub const MAX_TOKENS: f64 = 4_294_967_296.0;

/// A server-side duration fits inside the client's wall time of the request, up to this
/// relative tolerance and [`WALL_SLACK_S`] (timer resolution, rounding to whole nanoseconds).
pub const WALL_TOLERANCE: f64 = 0.05;
/// Absolute slack of the wall-time check, seconds.
pub const WALL_SLACK_S: f64 = 0.05;

/// What the client knows of one request, to judge what the server says about it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observed {
    /// Wall seconds from sending the request to reading the line that carries the metrics.
    pub wall_s: f64,
    /// Wall seconds per reported second: 1 for a real server; the simulator reports simulated
    /// seconds and sleeps `time_scale` wall seconds for each (0: it does not sleep, and the
    /// wall-time check is void).
    pub clock_scale: f64,
    /// Tokens the request asked for at most (0: no limit).
    pub num_predict: u32,
}

impl Observed {
    /// A duration the server reports, in seconds: finite, not negative, and inside the wall
    /// time the client measured for the request.
    pub fn duration(&self, name: &str, seconds: f64) -> Result<f64, String> {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(format!(
                "{name} is {} s; a duration is a finite number >= 0",
                show(seconds)
            ));
        }
        let wall = self.wall_s * (1.0 + WALL_TOLERANCE) + WALL_SLACK_S;
        if seconds * self.clock_scale > wall {
            return Err(format!(
                "{name} is {seconds:.6} s, longer than the {:.3} s the whole request took as \
                 the client measured it",
                self.wall_s / self.clock_scale.max(f64::MIN_POSITIVE)
            ));
        }
        Ok(seconds)
    }

    /// The count of generated tokens: a count, and at most what the request asked for (one
    /// token of slack for a runner that counts the end-of-sequence token).
    pub fn generated(&self, name: &str, n: f64) -> Result<f64, String> {
        let n = count(name, n)?;
        if self.num_predict > 0 && n > f64::from(self.num_predict) + 1.0 {
            return Err(format!(
                "{name} is {}, but the request asked for at most {} tokens (num_predict)",
                show(n),
                self.num_predict
            ));
        }
        Ok(n)
    }
}

/// A number for a message: plain when short, in exponent form when huge (1e300 has 301 digits).
fn show(x: f64) -> String {
    if x.is_finite() && x.abs() >= 1e15 {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// A token count: a whole number from 0 to [`MAX_TOKENS`].
pub fn count(name: &str, n: f64) -> Result<f64, String> {
    if !n.is_finite() || n < 0.0 || n.fract() != 0.0 || n > MAX_TOKENS {
        return Err(format!(
            "{name} is {}; a token count is a whole number from 0 to 2^32",
            show(n)
        ));
    }
    Ok(n)
}

/// A throughput: `tokens` in `seconds`, at most `ceiling` tokens per second.
pub fn rate(name: &str, tokens: f64, seconds: f64, ceiling: f64) -> Result<f64, String> {
    let r = tokens / seconds;
    if !r.is_finite() || r <= 0.0 {
        return Err(format!(
            "{name} from {} tokens in {} s is not a speed",
            show(tokens),
            show(seconds)
        ));
    }
    if r > ceiling {
        return Err(format!(
            "{name} of {r:.3e} tok/s ({} tokens in {seconds:.3e} s) is above the \
             {ceiling:.0e} tok/s no hardware reaches",
            show(tokens)
        ));
    }
    Ok(r)
}

/// The last check of a server's measurement before it is recorded: every value finite; rates,
/// durations and counts not negative; rates and durations (`is_positive`) above zero; the two
/// throughputs below their ceilings; counts whole. `Err` says which value is impossible.
pub fn check_sample<'a>(
    sample: impl IntoIterator<Item = (&'a String, &'a f64)>,
) -> Result<(), String> {
    for (name, &v) in sample {
        if !v.is_finite() {
            return Err(format!("{name} is {v}, not a number"));
        }
        let (unit, positive) = lookup(name).unwrap_or((Unit::Unknown, false));
        if positive && v <= 0.0 {
            return Err(format!("{name} is {}; it must be above 0", show(v)));
        }
        match unit {
            Unit::Seconds | Unit::TokensPerSecond if v < 0.0 => {
                return Err(format!("{name} is {}; it cannot be negative", show(v)))
            }
            Unit::Count => {
                count(name, v)?;
            }
            _ => {}
        }
        let ceiling = match name.as_str() {
            "decode_tps" => MAX_DECODE_TPS,
            "prefill_tps" => MAX_PREFILL_TPS,
            _ => f64::INFINITY,
        };
        if v > ceiling {
            return Err(format!(
                "{name} of {v:.3e} tok/s is above the {ceiling:.0e} tok/s no hardware reaches"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_are_positive() {
        for name in [
            "decode_tps",
            "prefill_tps",
            "ttft",
            "e2e",
            "total",
            "load",
            "x_s",
        ] {
            assert!(is_positive(name), "{name}");
        }
        for name in ["server_load", "eval_count", "value", "score", "tokens"] {
            assert!(!is_positive(name), "{name}");
        }
    }

    fn sample(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn check(pairs: &[(&str, f64)]) -> Result<(), String> {
        let s = sample(pairs);
        check_sample(s.iter().map(|(k, v)| (k, v)))
    }

    #[test]
    fn impossible_samples_are_refused() {
        let ok = [
            ("decode_tps", 102.0),
            ("prefill_tps", 1379.0),
            ("ttft", 0.12),
            ("total", 1.4),
            ("server_load", 0.0),
            ("eval_count", 128.0),
        ];
        assert_eq!(check(&ok), Ok(()));
        for bad in [
            ("decode_tps", 6.4e10),
            ("decode_tps", 0.0),
            ("prefill_tps", 2e7),
            ("total", -1.0),
            ("total", 0.0),
            ("server_load", -0.5),
            ("eval_count", 12.5),
            ("eval_count", 1e300),
            ("ttft", f64::NAN),
            ("e2e", f64::INFINITY),
        ] {
            let e = check(&[bad]).expect_err(&format!("{bad:?}"));
            assert!(e.contains(bad.0), "{e}");
        }
    }

    #[test]
    fn durations_fit_in_the_wall_time() {
        let o = Observed {
            wall_s: 2.0,
            clock_scale: 1.0,
            num_predict: 64,
        };
        assert_eq!(o.duration("total_duration", 1.9), Ok(1.9));
        assert_eq!(
            o.duration("total_duration", 2.1),
            Ok(2.1),
            "within the tolerance"
        );
        assert!(o.duration("total_duration", 1e291).is_err());
        assert!(o.duration("load_duration", -1.0).is_err());
        // The simulator at time scale 0.01: 150 simulated seconds took 1.5 wall seconds.
        let sim = Observed {
            clock_scale: 0.01,
            ..o
        };
        assert!(sim.duration("total_duration", 150.0).is_ok());
        assert!(sim.duration("total_duration", 400.0).is_err());
        assert_eq!(o.generated("eval_count", 64.0), Ok(64.0));
        assert_eq!(o.generated("eval_count", 65.0), Ok(65.0));
        assert!(o.generated("eval_count", 66.0).is_err());
        assert!(o.generated("eval_count", -1.0).is_err());
        assert!(rate("decode_tps", 64.0, 1e-9, MAX_DECODE_TPS).is_err());
        assert!(rate("decode_tps", 64.0, 0.0, MAX_DECODE_TPS).is_err());
        assert_eq!(rate("decode_tps", 64.0, 0.5, MAX_DECODE_TPS), Ok(128.0));
    }

    #[test]
    fn units() {
        assert_eq!(unit("decode_tps").symbol(), "tok/s");
        assert_eq!(unit("my_tps").symbol(), "tok/s");
        assert_eq!(unit("throughput").symbol(), "tok/s");
        assert_eq!(unit("e2e").symbol(), "s");
        assert_eq!(unit("server_load").symbol(), "s");
        assert_eq!(unit("wall_s").symbol(), "s");
        assert_eq!(unit("eval_count").symbol(), "");
        assert_eq!(unit("score"), Unit::Unknown);
    }

    /// Every positive metric has a unit, and every duration or rate but `server_load` (which
    /// is 0 whenever the model was already loaded) is positive: the disagreement the table
    /// replaced had `e2e` in seconds but not log-modelled.
    #[test]
    fn unit_and_sign_agree() {
        for x in METRICS {
            let timed = matches!(x.unit, Unit::Seconds | Unit::TokensPerSecond);
            assert_eq!(x.positive, timed && x.name != "server_load", "{}", x.name);
        }
    }

    /// Every metric a server backend fills is in the table, with its unit.
    #[test]
    fn server_metrics_are_listed() {
        for kind in ["ollama", "simulator", "llamacpp"] {
            for name in server_metrics(kind).unwrap() {
                assert!(METRICS.iter().any(|m| m.name == *name), "{kind}: {name}");
            }
        }
        assert!(server_metrics("command").is_none());
    }

    #[test]
    fn listed_names_agree_with_the_suffix_conventions() {
        for x in METRICS {
            for (suffix, unit, positive) in SUFFIXES {
                if x.name.ends_with(suffix) {
                    assert_eq!((x.unit, x.positive), (*unit, *positive), "{}", x.name);
                }
            }
        }
    }
}
