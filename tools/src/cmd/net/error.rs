//! Why `kistrel net` failed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use kistrel_base::{ErrorKind, HasKind};

use crate::config::ConfigError;
use crate::ctor::CtorError;
use crate::keys::KeyError;
use crate::placement::PlacementError;
use crate::testbed::TestbedError;

/// Why `kistrel net` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A file or folder could not be made.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// "creating", "writing", ...
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The generated network is inconsistent (a bug; exit 1).
    #[error("cannot lay out the network: {problem}")]
    Layout {
        /// What.
        problem: String,
    },
    /// A generated config does not load, or a `-o` override is bad.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A relay key file could not be written.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// No free loopback ports.
    #[error("cannot find free loopback ports: {0}")]
    Ports(#[source] std::io::Error),
    /// The `--socks` address given is taken.
    #[error("--socks {addr}: address is already in use (pick another or leave --socks out)")]
    SocksInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// SIGINT/SIGTERM handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// A child could not be started.
    #[error("cannot start {name} ({}): {source}", program.display())]
    Spawn {
        /// `relayK` or `client`.
        name: String,
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A child exited while the network should be running.
    #[error("{name} (pid {pid}) exited unexpectedly ({status}); its log: {}{}", log.display(), last_line.as_ref().map(|l| format!("; last line: {l}")).unwrap_or_default())]
    ChildExited {
        /// `relayK` or `client`.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last non-empty line of the log, if any.
        last_line: Option<String>,
    },
    /// The client did not print `ready socks=ADDR` in time.
    #[error("the client did not report ready within {} s; its log: {}", waited.as_secs(), log.display())]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// The client's log.
        log: PathBuf,
    },
    /// `--socks` with `--bottleneck`.
    #[error("--socks cannot be combined with --bottleneck: the SOCKS port is in the client's namespace (the ready line names it)")]
    SocksWithBottleneck,
    /// `--ctor-relays` with `--bottleneck`.
    #[error("--ctor-relays cannot be combined with --bottleneck: the C Tor network runs on 127.0.0.1 only")]
    CtorWithBottleneck,
    /// The C Tor network could not be set up (exit 2 without tor), or did not become ready.
    #[error(transparent)]
    Ctor(#[from] CtorError),
    /// The shaped testbed failed (exit 2 without root or tools, else 1).
    #[error(transparent)]
    Testbed(#[from] TestbedError),
    /// `--relays` beyond what the machine can hold (see [`super::capacity`]).
    #[error("{0}")]
    TooManyRelays(super::capacity::TooMany),
    /// SIGINT/SIGTERM arrived before the network was ready: what was started is stopped.
    #[error("interrupted during start-up: stopped the {started} of {total} processes started; no network was left running")]
    Interrupted {
        /// Children started (and stopped) before the signal.
        started: usize,
        /// Children the network has (relays and the client).
        total: usize,
    },
    /// `--cpus` could not be read or used.
    #[error("--cpus: {0}")]
    Cpus(#[source] PlacementError),
    /// Waiting for a child failed.
    #[error("cannot wait for {name}: {source}")]
    Wait {
        /// `relayK` or `client`.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for NetError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetError::SocksInUse { .. }
            | NetError::SocksWithBottleneck
            | NetError::TooManyRelays(_)
            | NetError::CtorWithBottleneck => ErrorKind::BadConfig,
            NetError::Interrupted { .. } => ErrorKind::Unavailable,
            NetError::Ctor(e) => e.kind(),
            NetError::Config(e) => e.kind(),
            NetError::Testbed(e) => e.kind(),
            NetError::Cpus(e) => e.kind(),
            NetError::Keys(e) => e.kind(),
            NetError::Layout { .. } => ErrorKind::Internal,
            NetError::ChildExited { .. } | NetError::NotReady { .. } => ErrorKind::Unavailable,
            NetError::Io { source, .. }
            | NetError::Ports(source)
            | NetError::Signals(source)
            | NetError::Spawn { source, .. }
            | NetError::Wait { source, .. } => HasKind::kind(source),
        }
    }
}
