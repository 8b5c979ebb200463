//! Export of a configuration as Modelfile, JSON, TOML or llama-server command line (being written).
