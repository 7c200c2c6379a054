//! Which I/O backend a process runs on, and starting a worker over it.
//!
//! [`BackendChoice::Auto`] (the default) probes io_uring once per process and, where the
//! kernel or a sandbox refuses it (Docker's default seccomp profile, a simulator such as
//! Shadow, an old kernel, `kernel.io_uring_disabled`), falls back to the poll backend with
//! one `warn!` line saying why. [`BackendChoice::Uring`] fails instead, with a
//! [`BackendError`] of kind [`ErrorKind::Unsupported`].
//!
//! ```text
//!   select_backend(choice) --probe--> Backend::Uring | Backend::Poll   (once, any thread)
//!   run_worker(backend, ..)  on each worker's own thread: driver, Worker::new, Worker::run
//! ```

use std::error::Error;
use std::fmt;

use crossbeam_channel::Receiver;
use tracing::warn;

use crate::{ErrorKind, HasKind};

use super::control::{Command, EventSender};
use super::worker::{Worker, WorkerConfig, WorkerError, WorkerReport};

/// The `Backend` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// io_uring where it can be set up, else poll (with a warning saying why).
    #[default]
    Auto,
    /// io_uring, or fail.
    Uring,
    /// The portable poll backend.
    Poll,
}

/// The backend chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring (Linux).
    Uring,
    /// poll(2).
    Poll,
}

impl Backend {
    /// `"io_uring"` or `"poll"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Poll => "poll",
        }
    }
}

/// Why io_uring cannot be used here, as the probe found it.
#[derive(Debug, thiserror::Error)]
#[error("{cause}{hint}")]
pub struct UringUnavailable {
    /// The setup error.
    #[source]
    cause: Box<dyn Error + Send + Sync>,
    /// A guess at the reason, from the errno.
    hint: &'static str,
}

impl UringUnavailable {
    /// Wraps the probe's error; `errno` (of the failed setup call, if it was one) picks the
    /// hint that ends the message.
    pub fn new(cause: impl Into<Box<dyn Error + Send + Sync>>, errno: Option<i32>) -> Self {
        let hint = match errno {
            Some(libc::EPERM) => {
                " (a seccomp filter, such as Docker's default, or sysctl kernel.io_uring_disabled?)"
            }
            Some(libc::ENOSYS) => {
                " (a kernel without io_uring, or a sandbox that does not offer it?)"
            }
            Some(libc::ENOMEM) => " (locked-memory limit too low?)",
            _ => "",
        };
        UringUnavailable {
            cause: cause.into(),
            hint,
        }
    }
}

/// Why no backend could be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// `Backend = "uring"` where io_uring cannot be set up.
    #[error(
        "Backend = \"uring\", but io_uring cannot be used here: {0}; \
         set Backend = \"auto\" to fall back to poll, or \"poll\""
    )]
    Uring(#[from] UringUnavailable),
}

impl HasKind for BackendError {
    fn kind(&self) -> ErrorKind {
        match self {
            BackendError::Uring(_) => ErrorKind::Unsupported,
        }
    }
}

/// Chooses the backend for `choice`, probing io_uring when it is wanted (see the module
/// docs). Call once per process, before starting workers.
pub fn select_backend(choice: BackendChoice) -> Result<Backend, BackendError> {
    select_with(choice, probe_uring)
}

/// As [`select_backend`] with the io_uring probe given (tests inject a failure).
pub fn select_with(
    choice: BackendChoice,
    probe: impl FnOnce() -> Result<(), UringUnavailable>,
) -> Result<Backend, BackendError> {
    match choice {
        BackendChoice::Poll => Ok(Backend::Poll),
        BackendChoice::Uring => probe()
            .map(|()| Backend::Uring)
            .map_err(BackendError::Uring),
        BackendChoice::Auto => match probe() {
            Ok(()) => Ok(Backend::Uring),
            Err(why) => {
                warn!("io_uring unavailable: {why}; using the poll backend");
                Ok(Backend::Poll)
            }
        },
    }
}

#[cfg(target_os = "linux")]
fn probe_uring() -> Result<(), UringUnavailable> {
    use crate::uring::UringError;
    crate::uring::probe().map(drop).map_err(|e| {
        let errno = match &e {
            UringError::Setup(io) => io.raw_os_error(),
            _ => None,
        };
        UringUnavailable::new(e, errno)
    })
}

#[cfg(not(target_os = "linux"))]
fn probe_uring() -> Result<(), UringUnavailable> {
    Err(UringUnavailable::new("io_uring exists on Linux only", None))
}

/// Runs one worker on the calling thread over a driver of `backend`, made here (io_uring's
/// SINGLE_ISSUER wants the ring made on the thread that uses it). `started` learns whether
/// the worker came up before it runs; the report comes back when it stops, `None` if it
/// never started.
pub fn run_worker(
    backend: Backend,
    cfg: WorkerConfig,
    commands: Receiver<Command>,
    events: EventSender,
    started: impl FnOnce(Result<(), WorkerError>),
) -> Option<WorkerReport> {
    match backend {
        #[cfg(target_os = "linux")]
        Backend::Uring => {
            let ring = crate::uring::Ring::new(&crate::uring::RingConfig::default())
                .map_err(|e| backend_error(backend, e.kind(), e));
            start(ring, cfg, commands, events, started)
        }
        #[cfg(not(target_os = "linux"))]
        Backend::Uring => {
            let e = "io_uring exists on Linux only";
            let none: Result<crate::poll::PollDriver, _> =
                Err(backend_error(backend, ErrorKind::Unsupported, e));
            start(none, cfg, commands, events, started)
        }
        Backend::Poll => {
            let poll = crate::poll::PollDriver::new()
                .map_err(|e| backend_error(backend, HasKind::kind(&e), e));
            start(poll, cfg, commands, events, started)
        }
    }
}

fn backend_error(
    backend: Backend,
    kind: ErrorKind,
    source: impl Into<Box<dyn Error + Send + Sync>>,
) -> WorkerError {
    WorkerError::Backend {
        backend: backend.name(),
        source: source.into(),
        kind,
    }
}

fn start<D: crate::driver::Driver>(
    driver: Result<D, WorkerError>,
    cfg: WorkerConfig,
    commands: Receiver<Command>,
    events: EventSender,
    started: impl FnOnce(Result<(), WorkerError>),
) -> Option<WorkerReport> {
    match driver.and_then(|d| Worker::new(cfg, d, commands, events)) {
        Ok(worker) => {
            started(Ok(()));
            Some(worker.run())
        }
        Err(e) => {
            started(Err(e));
            None
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Uring => "uring",
            BackendChoice::Poll => "poll",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Result<(), UringUnavailable> {
        let e = std::io::Error::from_raw_os_error(libc::EPERM);
        Err(UringUnavailable::new(e, Some(libc::EPERM)))
    }

    #[test]
    fn auto_falls_back_to_poll_and_an_explicit_uring_fails_unsupported() {
        assert_eq!(
            select_with(BackendChoice::Auto, refused).unwrap(),
            Backend::Poll
        );
        assert_eq!(
            select_with(BackendChoice::Auto, || Ok(())).unwrap(),
            Backend::Uring
        );
        assert_eq!(
            select_with(BackendChoice::Uring, || Ok(())).unwrap(),
            Backend::Uring
        );
        let poll = select_with(BackendChoice::Poll, || panic!("poll does not probe"));
        assert_eq!(poll.unwrap(), Backend::Poll);
        let err = select_with(BackendChoice::Uring, refused).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let msg = err.to_string();
        assert!(msg.starts_with("Backend = \"uring\", but io_uring cannot be used here: "));
        assert!(msg.contains("Operation not permitted"), "{msg}");
        assert!(msg.contains("seccomp"), "{msg}");
        assert!(msg.contains("\"poll\""), "{msg}");
        assert_eq!(BackendChoice::default().to_string(), "auto");
    }
}
