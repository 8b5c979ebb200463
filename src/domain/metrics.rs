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
