//! The built-in Ollama simulator (being written).
pub mod model;
pub mod options;
