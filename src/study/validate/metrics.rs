//! The metric an objective or a constraint names must be one the backend measures: an
//! inference server fills a fixed set (src/domain/metrics.rs `server_metrics`), so any other
//! name would fail every trial (an objective) or make every trial infeasible (a constraint).
//! A command's program names its own metrics, so there any name is accepted.

use crate::domain::metrics::server_metrics;
use crate::study::error::{ConfigError, Locator};
use crate::study::types::BackendConfig;
use crate::study::MetricRef;
use std::ops::Range;

/// `metric` (as written: `text`) is one `backend` measures.
pub(super) fn check_metric(
    loc: &Locator,
    span: Range<usize>,
    field: &str,
    text: &str,
    metric: &MetricRef,
    backend: &BackendConfig,
) -> Result<(), ConfigError> {
    let Some(known) = server_metrics(backend.kind()) else {
        return Ok(());
    };
    if known.contains(&metric.metric.as_str()) {
        return Ok(());
    }
    Err(loc.err(
        span,
        field,
        format!(
            "{text:?} names the metric {:?}, which the {} backend does not measure; use one of {} (optionally with a suffix _p95, _mean, _median, _std, _min or _max)",
            metric.metric,
            backend.kind(),
            known.join(", ")
        ),
    ))
}
