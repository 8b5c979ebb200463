//! Reading llama-server's output after a failure: the kind of failure (out of memory or a load
//! failure), the first error line for a one-line message, and a port taken by someone else.
//! llama.cpp marks error lines with ` E ` after a timestamp (docs/llama-server.md).

use crate::backend::classify_failure;
use crate::trial::FailureKind;

/// Characters of server output quoted in a failure message.
pub(crate) const TAIL_CHARS: usize = 2500;

/// Failure kind of a server that would not start, from its output: out-of-memory patterns (the
/// backends' shared list, `classify_failure`, plus llama.cpp's allocator messages), else a load
/// failure.
pub(crate) fn classify_start_failure(log: &str) -> FailureKind {
    const LLAMA_OOM: &[&str] = &[
        "unable to allocate",
        "cannot allocate memory",
        "std::bad_alloc",
    ];
    let l = log.to_lowercase();
    if classify_failure(log) == Some(FailureKind::OutOfMemory)
        || LLAMA_OOM.iter().any(|p| l.contains(p))
    {
        FailureKind::OutOfMemory
    } else {
        FailureKind::LoadFailed
    }
}

/// ": <the first error line>" of a server's output, for the first line of a failure message
/// (llama.cpp marks errors with " E " after the timestamp; "error"/"failed" catch the rest).
pub(crate) fn headline(log: &str) -> String {
    let line = log.lines().find(|l| l.contains(" E ")).or_else(|| {
        log.lines().find(|l| {
            let l = l.to_lowercase();
            !l.starts_with("warning")
                && (l.contains("error") || l.contains("failed") || l.contains("assert"))
        })
    });
    match line {
        Some(l) => {
            // Drop llama.cpp's "0.00.785.498 E " prefix (timestamp and level).
            let l = l.trim();
            let text = match l.split_once(" E ") {
                Some((ts, rest)) if ts.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                    rest.trim()
                }
                _ => l,
            };
            format!(": {text}")
        }
        None => String::new(),
    }
}

/// The server could not listen on the port it was given ("couldn't bind HTTP server socket",
/// `ggml-org/llama.cpp:tools/server/server-http.cpp`): another process took it between our
/// check and its bind.
pub(crate) fn port_was_taken(log: &str) -> bool {
    let l = log.to_lowercase();
    l.contains("couldn't bind") || l.contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_classification() {
        // What -fa off -ctv q8_0 printed here before exiting with status 1.
        let log = "warning: no usable GPU found, --gpu-layers option will be ignored
0.00.009.454 I srv    load_model: loading model '/m.gguf'
0.00.785.498 E llama_init_from_model: quantized V cache requires flash_attn to be enabled
0.00.785.564 E cmn  common_init_: failed to create context with model '/m.gguf'
0.00.785.609 E srv    load_model: failed to create_context with model '/m.gguf'
0.00.786.550 E srv  llama_server: exiting due to model loading error";
        assert_eq!(
            headline(log),
            ": llama_init_from_model: quantized V cache requires flash_attn to be enabled"
        );
        assert_eq!(headline("GGML_ASSERT(x) failed"), ": GGML_ASSERT(x) failed");
        assert_eq!(headline("warning: no usable GPU found\nall good"), "");
        assert_eq!(classify_start_failure(log), FailureKind::LoadFailed);
        assert_eq!(
            classify_start_failure("ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 9000000000"),
            FailureKind::OutOfMemory
        );
        assert_eq!(
            classify_start_failure(
                "terminate called after throwing an instance of 'std::bad_alloc'"
            ),
            FailureKind::OutOfMemory
        );
        assert!(port_was_taken(
            "couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8080"
        ));
        assert!(!port_was_taken(log));
    }
}
