//! Ranked reports of a run: the shared analysis apart from one module per output format
//! (one exporter per format, as in sharkdp/hyperfine:src/export/mod.rs).
//!
//! `analyse` reads `run.json` and `trials.jsonl` and computes everything the formats print:
//! the ranking, statistical ties with rank 1, changes against the baseline, parameter importance
//! from the GP, the failure summary and the Pareto front of throughput against TTFT. The formats
//! only lay that out, so the Markdown, JSON and CSV never disagree. Output is deterministic:
//! stable sorts (ties broken by trial number), fixed float formatting, a fixed bootstrap seed
//! and no timestamps other than those in the data.
//!
//! Layout: types.rs (the `Report` and its parts), analysis.rs (journal -> `Report`, with
//! failures.rs, importance.rs and bootstrap.rs), format.rs (number formatting, also used by
//! `export`), files.rs (reading the run, writing the files), error.rs; the output formats
//! markdown/, json.rs, csv.rs and plots.rs only read the types and format.rs.

mod analysis;
mod bootstrap;
pub mod csv;
mod decision;
mod error;
mod failures;
mod files;
mod format;
mod importance;
pub mod json;
pub mod markdown;
pub mod plots;
mod types;

pub(crate) use analysis::analyse_journal;
pub use bootstrap::bootstrap_diff_pct;
pub use error::ReportError;
pub use files::{analyse, render, write_all};
pub(crate) use files::{load, write_all_with};
pub use format::format_effect;
pub(crate) use format::{fmt_num, fmt_pct, fmt_share, unit_of};
pub use types::{
    ConstraintViolations, ConvergencePoint, Counts, DecisionSection, FailureGroup, FailureSummary,
    ParamSpread, Pareto, ParetoPoint, Report, ReportFormat, Requested, Row, RowClass, Tie,
    ValueSpread, CONVERGENCE_FILE, CSV_FILE, DECODE_METRIC, JSON_FILE, MARKDOWN_FILE, PARETO_FILE,
    TTFT_METRIC,
};
