//! What the commands print, written without panicking: a reader that went away
//! (`ollama-tuner status DIR | head -3`) ends the output quietly and the command still exits 0;
//! any other failure to write stdout (a full disk behind `report > file`) is remembered and
//! turns the command's exit code into 6. Messages on stderr never fail a command.
//!
//! `outln!` and `errln!` are `println!` and `eprintln!` on these terms.

use super::{CliError, ExitCode};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// stdout stopped taking output (its reader closed it, or a write failed): nothing more is
/// written to it.
static STDOUT_DONE: AtomicBool = AtomicBool::new(false);
/// The first stdout write error that is not a closed pipe.
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Write `text` to stdout and flush it; a closed pipe ends stdout's output quietly.
pub(crate) fn write_stdout(text: &str) {
    if STDOUT_DONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        STDOUT_DONE.store(true, Ordering::Relaxed);
        if e.kind() != io::ErrorKind::BrokenPipe {
            let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Write `text` to stderr; a failure is ignored (there is nowhere left to say it).
pub(crate) fn write_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// The command's result, turned into an error when stdout could not be written (other than
/// by its reader going away).
pub(crate) fn checked(result: Result<(), CliError>) -> Result<(), CliError> {
    result?;
    let failed = STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match failed {
        Some(e) => Err(CliError::new(
            ExitCode::State,
            format!(
                "cannot write the output: {e} (check the disk or file behind stdout, or use --out)"
            ),
        )),
        None => Ok(()),
    }
}

/// `println!` that never panics (see the module).
macro_rules! outln {
    () => {
        $crate::cli::out::write_stdout("\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics (see the module).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::out::write_stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}
