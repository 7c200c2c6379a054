//! `kistrel-forward`: the plain TCP forwarder process, the baseline `kistrel bench relay`
//! measures a relay against. It does what a relay's I/O does and nothing else: the same
//! io_uring loop (`kistrel_engine::uring::Ring`, one per thread, the relay's default ring
//! configuration: 1024 provided receive buffers of 16 KiB), one thread per worker on the
//! same CPUs, TCP_NODELAY on every socket as the relay's channels, and the relay's send
//! high-water mark (4 MiB queued pauses the feeding side's reads). No cells, no crypto, no
//! scheduler: bytes in, the same bytes out.
//!
//! ```text
//!   thread i (CPU cpus[i]): SO_REUSEPORT listener per LISTEN --accept--> connect its UPSTREAM
//!                           copy both ways, half-close passed on, pairs closed together
//!   stdout: ready {"addrs": [..], "threads": N}     on SIGTERM/SIGINT or stdin EOF:
//!           final {"threads": [{"thread": 0, "bytes": .., "pairs": ..}, ..]}
//! ```

use std::net::SocketAddr;

use clap::Parser;
use serde::{Deserialize, Serialize};

#[cfg(target_os = "linux")]
mod pairs;

/// The relay's send high-water mark (`CHANNEL_SEND_HIGH_WATER` in the engine's runtime):
/// above this much queued toward one side, the other side's reads pause.
pub const MAX_QUEUED: usize = 4 << 20;

/// `kistrel-forward` options.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kistrel-forward",
    version,
    about = "Plain TCP forwarder on kistrel's io_uring loop (the bench relay baseline)"
)]
pub struct ForwardArgs {
    /// Where to listen (port 0: any free port; the `ready` line says which). Repeat it with
    /// `--upstream` for several routes (one per pump/sink pair of the bench).
    #[arg(long, value_name = "ADDR", required = true)]
    pub listen: Vec<SocketAddr>,
    /// Where to forward the connections accepted on the `--listen` of the same position.
    #[arg(long, value_name = "ADDR", required = true)]
    pub upstream: Vec<SocketAddr>,
    /// Forwarding threads, each with its own ring and listener (as a relay's workers).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Thread *i* runs on the list's *i*-th CPU (in turn when there are more threads), as a
    /// relay's workers with `CPUAffinity`.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<crate::placement::CpuList>,
}

/// The forwarder's first line on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardReady {
    /// The addresses it listens on, one per route, in `--listen` order.
    pub addrs: Vec<SocketAddr>,
    /// Forwarding threads.
    pub threads: u32,
}

/// What one forwarding thread did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadTotals {
    /// The thread's index.
    pub thread: u32,
    /// Bytes copied, both directions.
    pub bytes: u64,
    /// Connections accepted (each forwarded to its own upstream connection).
    pub pairs: u64,
}

/// The forwarder's last line on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardFinal {
    /// Per thread, in index order.
    pub threads: Vec<ThreadTotals>,
}

/// Why the forwarder stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// Setting up a socket, a ring or a thread failed.
    #[error("{what}: {source}")]
    Setup {
        /// What was being set up.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A forwarding thread's ring failed.
    #[error("forwarding thread {thread}: {source}")]
    Ring {
        /// The thread.
        thread: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A thread could not be pinned to its CPU.
    #[error(transparent)]
    Pin(#[from] crate::placement::PlacementError),
    /// `--listen` and `--upstream` were not given in pairs.
    #[error("{listen} --listen but {upstream} --upstream: give them in pairs")]
    Routes {
        /// `--listen` count.
        listen: usize,
        /// `--upstream` count.
        upstream: usize,
    },
    /// io_uring is Linux-only, and so is this forwarder.
    #[error("kistrel-forward needs Linux (io_uring)")]
    Unsupported,
}

impl kistrel_base::HasKind for ForwardError {
    fn kind(&self) -> kistrel_base::ErrorKind {
        match self {
            ForwardError::Setup { source, .. } | ForwardError::Ring { source, .. } => {
                kistrel_base::HasKind::kind(source)
            }
            ForwardError::Pin(e) => e.kind(),
            ForwardError::Routes { .. } => kistrel_base::ErrorKind::BadConfig,
            ForwardError::Unsupported => kistrel_base::ErrorKind::Unsupported,
        }
    }
}

/// Runs the forwarder until SIGTERM/SIGINT or the end of stdin.
pub fn run(args: &ForwardArgs) -> Result<(), ForwardError> {
    #[cfg(target_os = "linux")]
    {
        pairs::run(args)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = args;
        Err(ForwardError::Unsupported)
    }
}
