//! Which CPUs a node's workers run on (issue #15: never "worker i on CPU i in every
//! process").
//!
//! - A node (`kistrel relay`, `kistrel client`) gets its CPU set from `CPUAffinity` (or
//!   `--cpus`): its whole process is confined to the set at start, and worker *i* is pinned
//!   to the set's *i*-th CPU (in turn, when there are more workers than CPUs). Without the
//!   key nothing is pinned and the kernel places the threads. A CPU the process may not run
//!   on is a config error (exit 2); a pin the kernel refuses stops the node with an error.
//! - `kistrel net` (and the bench, whose load generator counts as nodes too) gives the nodes
//!   of one machine disjoint sets with [`plan`] when there are at least as many CPUs as
//!   nodes, and otherwise pins nothing and says so in one line.
//! - The bench reads back what the kernel applied ([`thread_affinity`]) and reports that.
//!
//! CPUs are logical CPUs as the kernel numbers them; SMT siblings count as two (pin to one
//! of each pair with `--cpus` when that matters).

use kistrel_base::{ErrorKind, HasKind};

mod cpu_list;
mod observe;
mod pin;
mod plan;

pub use cpu_list::{CpuList, CpuListError, MAX_CPUS};
pub use observe::{thread_affinity, ThreadAffinity};
pub use pin::{allowed_cpus, check_allowed, pin_current_thread};
pub use plan::{plan, NodeDemand, Placement};

/// Why CPUs could not be read or set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// CPUs outside this process's affinity mask were asked for.
    #[error("CPU(s) {cpus} asked for, but this process may run on {allowed} only (taskset, cgroup cpuset or an offline CPU)")]
    NotAllowed {
        /// The CPUs asked for.
        cpus: CpuList,
        /// The CPUs this process may run on.
        allowed: CpuList,
    },
    /// `sched_setaffinity` failed.
    #[error("pinning to CPU(s) {cpus}: {source}")]
    Pin {
        /// The CPUs asked for.
        cpus: CpuList,
        /// The kernel's answer.
        #[source]
        source: nix::Error,
    },
    /// The kernel applied another mask than the one asked for (a cgroup cpuset).
    #[error("pinning to CPU(s) {cpus}: the kernel applied {got} instead (a cgroup cpuset?)")]
    NotApplied {
        /// The CPUs asked for.
        cpus: CpuList,
        /// The mask read back.
        got: CpuList,
    },
    /// `sched_getaffinity` failed.
    #[error("reading this process's CPU affinity: {0}")]
    Get(#[source] nix::Error),
    /// The affinity mask read back was empty.
    #[error("this process's CPU affinity mask is empty")]
    NoCpus,
    /// A process's threads could not be listed.
    #[error("reading the threads of process {pid}: {source}")]
    Proc {
        /// The process.
        pid: i32,
        /// Why.
        #[source]
        source: ProcError,
    },
    /// This OS has no hard CPU affinity.
    #[error("CPU affinity is not supported on this OS: leave CPUAffinity/--cpus out")]
    Unsupported,
}

/// The error of reading `/proc` (Linux), or nothing elsewhere.
#[cfg(target_os = "linux")]
pub type ProcError = procfs::ProcError;
/// The error of reading `/proc` (Linux), or nothing elsewhere.
#[cfg(not(target_os = "linux"))]
pub type ProcError = std::convert::Infallible;

impl HasKind for PlacementError {
    fn kind(&self) -> ErrorKind {
        match self {
            PlacementError::NotAllowed { .. } => ErrorKind::BadConfig,
            PlacementError::Pin { .. } | PlacementError::Get(_) | PlacementError::Proc { .. } => {
                ErrorKind::LocalIo
            }
            PlacementError::NotApplied { .. } => ErrorKind::Unsupported,
            PlacementError::NoCpus => ErrorKind::Internal,
            PlacementError::Unsupported => ErrorKind::Unsupported,
        }
    }
}
