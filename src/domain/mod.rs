//! Domain tables: facts about the servers and their measurements that several layers need
//! (study validation, backends, simulator, report, export), written down once.

pub mod llamaserver;
pub mod llamaserver_values;
pub mod memory;
pub mod metrics;
pub mod ollama;
pub mod roles;
