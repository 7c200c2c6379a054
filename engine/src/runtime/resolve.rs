//! Host name lookups for an exit's BEGINs, off the worker thread, bounded: a fixed pool of
//! threads (started on the first lookup) takes jobs from a bounded queue. When the queue is
//! full the lookup is refused at once and the BEGIN gets END RESOURCELIMIT, so a flood of
//! BEGINs with names can neither grow threads nor memory.
//!
//! ```text
//!   worker --resolve()--> [jobs: bounded queue] --> pool threads (getaddrinfo)
//!   worker <--poll_answer()-- [answers] <-----------------/
//! ```

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::relay::StreamHandle;

/// A blocking name lookup: the first address of `host` (port `port`), or `None`.
pub type LookupFn = dyn Fn(&str, u16) -> Option<IpAddr> + Send + Sync;

/// Sizes of a worker's resolver pool and the lookup it runs.
#[derive(Clone)]
pub struct ResolverConfig {
    /// Lookup threads (started on the first lookup, at least one).
    pub threads: usize,
    /// Lookups waiting for a thread beyond which new ones are refused.
    pub queue: usize,
    /// The lookup; the system resolver (getaddrinfo) by default.
    pub lookup: Arc<LookupFn>,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            threads: 4,
            queue: 256,
            lookup: Arc::new(system_lookup),
        }
    }
}

impl fmt::Debug for ResolverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolverConfig")
            .field("threads", &self.threads)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// getaddrinfo through std.
fn system_lookup(host: &str, port: u16) -> Option<IpAddr> {
    (host, port).to_socket_addrs().ok()?.next().map(|a| a.ip())
}

/// A lookup for `stream`.
struct Job {
    stream: StreamHandle,
    host: String,
    port: u16,
}

/// The outcome of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Answer {
    /// The stream that asked.
    pub(super) stream: StreamHandle,
    /// The address found, if any.
    pub(super) ip: Option<IpAddr>,
    /// The port asked for.
    pub(super) port: u16,
}

/// Why a lookup was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum ResolveError {
    /// Every thread is busy and the queue is full.
    #[error("resolver queue full")]
    Busy,
    /// No lookup thread could be started.
    #[error("no resolver thread could be started")]
    NoThread,
}

impl crate::HasKind for ResolveError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            ResolveError::Busy => crate::ErrorKind::ResourceExhausted,
            ResolveError::NoThread => crate::ErrorKind::LocalIo,
        }
    }
}

/// A worker's resolver pool. Dropping it lets the threads end (one blocked in a lookup ends
/// when the lookup returns).
pub(super) struct Resolver {
    config: ResolverConfig,
    jobs: Sender<Job>,
    /// Taken by the threads when they start.
    job_rx: Receiver<Job>,
    answer_tx: Sender<Answer>,
    answers: Receiver<Answer>,
    /// Threads started.
    started: usize,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("config", &self.config)
            .field("started", &self.started)
            .field("queued", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

impl Resolver {
    pub(super) fn new(config: ResolverConfig) -> Self {
        let (jobs, job_rx) = crossbeam_channel::bounded(config.queue);
        // Answers are bounded by the jobs in flight (queue + threads) between two polls.
        let (answer_tx, answers) = crossbeam_channel::unbounded();
        Resolver {
            config,
            jobs,
            job_rx,
            answer_tx,
            answers,
            started: 0,
        }
    }

    /// Threads started so far.
    pub(super) fn threads(&self) -> usize {
        self.started
    }

    /// Starts looking up `host` for `stream`; the answer comes from [`Resolver::poll_answer`].
    pub(super) fn resolve(
        &mut self,
        stream: StreamHandle,
        host: String,
        port: u16,
    ) -> Result<(), ResolveError> {
        self.start_threads();
        if self.started == 0 {
            return Err(ResolveError::NoThread);
        }
        match self.jobs.try_send(Job { stream, host, port }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(ResolveError::Busy),
        }
    }

    /// The next finished lookup.
    pub(super) fn poll_answer(&mut self) -> Option<Answer> {
        self.answers.try_recv().ok()
    }

    fn start_threads(&mut self) {
        while self.started < self.config.threads.max(1) {
            let jobs = self.job_rx.clone();
            let answers = self.answer_tx.clone();
            let lookup = Arc::clone(&self.config.lookup);
            let spawned = std::thread::Builder::new()
                .name("kistrel-resolve".into())
                .spawn(move || {
                    // Ends when the worker drops its `Resolver` (the queue disconnects).
                    for job in jobs {
                        let ip = lookup(&job.host, job.port);
                        let answer = Answer {
                            stream: job.stream,
                            ip,
                            port: job.port,
                        };
                        if answers.send(answer).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, started = self.started, "cannot start a resolver thread");
                return;
            }
            self.started += 1;
        }
    }
}
