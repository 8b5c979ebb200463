//! The Markdown report: what a user reads in the morning. Verdict first (best configuration,
//! what it is tied with, how it compares with the defaults), then the run's facts, the ranking,
//! parameter importance, failures, the Pareto front and the plots. One file per group of
//! sections; text.rs holds the phrases and cells they share.

mod decision;
mod failures;
mod figures;
mod ranking;
mod run_facts;
mod server;
mod text;
mod verdict;

pub use ranking::MAX_TABLE_ROWS;

use crate::report::types::Report;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let o = &mut out;
    verdict::title(r, o);
    match &r.decision {
        Some(d) => {
            decision::verdict(r, d, o);
            decision::effects(r, d, o);
        }
        None => verdict::verdict(r, o),
    }
    server::server_chose(r, o);
    run_facts::run_facts(r, o);
    ranking::ranking(r, o);
    ranking::importance(r, o);
    failures::failures(r, o);
    figures::pareto(r, o);
    figures::convergence(r, o);
    out
}
