//! Domain tables: what the crate knows about the servers it tunes, written once.

pub mod llamaserver;
