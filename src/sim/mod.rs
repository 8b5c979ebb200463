//! The built-in Ollama simulator (being written).
