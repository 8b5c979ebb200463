//! Ranked reports of a run (being written).
