//! The largest value each count and duration of a study file may take, and why: beyond these
//! a run cannot finish (a trial of a trillion requests), cannot start (a candidate set larger
//! than memory) or cannot be represented (a run folder name longer than a file name may be).

use std::time::Duration;

/// `study.name`: the run id is the name (each character at most one byte after
/// `default_run_id` replaces non-ASCII characters), '-' and a 15-character timestamp.
pub(super) const MAX_NAME_CHARS: usize = 200;

/// `budget.trials`: a million trials of a millisecond simulator take a quarter of an hour of
/// report time alone; a real server measures tens an hour.
pub(super) const MAX_TRIALS: i64 = 1_000_000;
/// `budget.max_consecutive_failures`.
pub(super) const MAX_FAILURES: i64 = 1_000_000;
/// `budget.wall_time`, and `--time-budget` on the command line (src/cli/mod.rs): a year
/// (366 days).
pub(crate) const MAX_WALL_TIME: Duration = super::super::durations::MAX_DURATION;

/// `protocol.repeats`: measured requests per trial.
pub(super) const MAX_REPEATS: i64 = 1_000;
/// `protocol.warmup`: discarded requests per (re)load.
pub(super) const MAX_WARMUP: i64 = 1_000;
/// `protocol.num_predict`: 2^20 tokens, more than any model's context window; a request of
/// more would take hours.
pub(super) const MAX_NUM_PREDICT: i64 = 1 << 20;
/// `protocol.max_retries`.
pub(super) const MAX_RETRIES: i64 = 1_000;
/// `protocol.request_timeout`, `backend.timeout`, `backend.startup_timeout`: a day.
pub(super) const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// `optimizer.candidates`: each is a point of the acquisition search held in memory with the
/// GP's cross-covariances; 2048 is the default.
pub(super) const MAX_CANDIDATES: i64 = 1_000_000;
/// `optimizer.initial_trials`.
pub(super) const MAX_INITIAL_TRIALS: i64 = MAX_TRIALS;
/// `optimizer.confirm`: measurements of one leading configuration.
pub(super) const MAX_CONFIRM: i64 = 1_000;

/// `decision.candidates`: configurations raced against the baseline.
pub(super) const MAX_DECISION_CANDIDATES: i64 = 1_000;
/// `decision.min_rounds`.
pub(super) const MAX_MIN_ROUNDS: i64 = 10_000;

/// `backend.time_scale` of the simulator: 1000 times slower than real is a simulated second
/// per quarter of an hour.
pub(super) const MAX_TIME_SCALE: f64 = 1_000.0;

/// Parameters of one study: the GP's length scales, the Sobol design (256 dimensions per
/// seed) and the candidate search all grow with the dimension, and no overnight budget
/// learns anything about more.
pub(super) const MAX_PARAMS: usize = 256;
/// Choices of one categorical parameter.
pub(super) const MAX_CHOICES: usize = 10_000;
/// Integer bounds: every integer of this magnitude is exact as a float (the unit-cube
/// encoding) and as a JSON number (the journal, the request).
pub(super) const MAX_EXACT_INT: i64 = 1 << 53;
