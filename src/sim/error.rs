//! The simulator's errors: `SimError` when it cannot start or serve, `RequestError` when it
//! refuses a request (the texts are the ones Ollama and Go's encoding/json give, because the
//! clients under test read them).

use std::net::SocketAddr;

/// Starting or running the simulator failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown simulator profile {profile:?}; known profiles: {known}")]
    UnknownProfile { profile: String, known: String },
    #[error("time scale must be a finite number >= 0, got {0}")]
    TimeScale(f64),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The bound socket has no local address (does not happen on TCP).
    #[error(transparent)]
    LocalAddr(std::io::Error),
    #[error("simulator server failed")]
    Serve(#[source] std::io::Error),
}

/// Why a request body or its options were refused. The server answers the body errors with
/// HTTP 400 and the option errors with HTTP 500, as Ollama does; `Display` is the `error` text.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("missing request body")]
    MissingBody,
    #[error("invalid JSON in request body: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The body is valid JSON but not an object (`go_type` is e.g. `api.GenerateRequest`).
    #[error("json: cannot unmarshal {kind} into Go value of type {go_type}")]
    NotAnObject {
        kind: &'static str,
        go_type: &'static str,
    },
    /// A field of the wrong JSON type.
    #[error(
        "json: cannot unmarshal {kind} into Go struct field {go_struct}.{key} of type {go_type}"
    )]
    FieldType {
        kind: &'static str,
        go_struct: &'static str,
        key: String,
        go_type: &'static str,
    },
    /// keep_alive neither a number nor a duration string.
    #[error("Unsupported type: '{0}'")]
    KeepAliveType(&'static str),
    #[error("time: invalid duration {0:?}")]
    InvalidDuration(String),
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("time: unknown unit {unit:?} in duration {text:?}")]
    UnknownUnit { unit: String, text: String },
    /// An option of the wrong JSON type (`expected` is Ollama's word: integer, float32,
    /// boolean, array).
    #[error("option {key:?} must be of type {expected}")]
    OptionType { key: String, expected: &'static str },
    #[error("option {key:?} must be of an array of strings")]
    OptionNotStrings { key: String },
}
