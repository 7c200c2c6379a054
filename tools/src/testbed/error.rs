//! Why a testbed could not be built, queried or torn down.

use std::path::PathBuf;
use std::process::ExitStatus;

use kistrel_base::{ErrorKind, HasKind};

/// Why a testbed could not be built, queried or torn down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestbedError {
    /// Not running as root.
    #[error("the shaped testbed needs root (network namespaces, veths, tc qdiscs and host sysctls); effective uid is {}: run as root, e.g. with sudo", euid.map_or_else(|| "unknown".to_owned(), |u| u.to_string()))]
    NeedsRoot {
        /// The effective uid found (`None` if unreadable).
        euid: Option<u32>,
    },
    /// `ip`, `tc` or `sysctl` is not installed.
    #[error("the shaped testbed needs `{tool}`, which is not on PATH (Debian: apt-get install iproute2 procps)")]
    MissingTool {
        /// The program.
        tool: String,
    },
    /// The spec is inconsistent.
    #[error("bad testbed spec: {problem}")]
    BadSpec {
        /// What.
        problem: String,
    },
    /// A host name not in the spec.
    #[error("no host {host:?} in this testbed")]
    UnknownHost {
        /// The name asked for.
        host: String,
    },
    /// The testbed has no bottleneck to report on.
    #[error("this testbed has no bottleneck")]
    NoBottleneck,
    /// Every 10.N.0.0/16 we may use is taken.
    #[error("no free address range: 10.{first}.0.0/16 .. 10.{last}.0.0/16 are all in use")]
    NoFreeRange {
        /// The first second octet tried.
        first: u8,
        /// The last one.
        last: u8,
    },
    /// A command exited with failure.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its stderr, trimmed.
        stderr: String,
    },
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `tc` printed something we cannot read.
    #[error("cannot read tc's statistics ({problem}): {output}")]
    TcOutput {
        /// What was wrong.
        problem: String,
        /// The start of the output.
        output: String,
    },
    /// A /proc or /run file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// "reading", "writing", ...
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for TestbedError {
    /// A bad spec is the caller's to fix and a missing privilege or tool the operator's
    /// ([`ErrorKind::Unsupported`]: this environment cannot run it); the rest failed while
    /// running.
    fn kind(&self) -> ErrorKind {
        match self {
            TestbedError::BadSpec { .. } | TestbedError::UnknownHost { .. } => ErrorKind::BadConfig,
            TestbedError::NeedsRoot { .. } | TestbedError::MissingTool { .. } => {
                ErrorKind::Unsupported
            }
            TestbedError::NoBottleneck => ErrorKind::BadApiUsage,
            TestbedError::NoFreeRange { .. } => ErrorKind::ResourceExhausted,
            TestbedError::Command { .. }
            | TestbedError::Spawn { .. }
            | TestbedError::TcOutput { .. }
            | TestbedError::Io { .. } => ErrorKind::LocalIo,
        }
    }
}
