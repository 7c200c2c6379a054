//! How many relays this machine can hold, checked before anything is started.
//!
//! Every node (each relay and the client) is a process with `W` worker threads (`--workers`,
//! else one per core). The rule, each part a refusal (exit 2) naming the numbers:
//!
//! - **cores**: nodes x W worker threads <= [`THREADS_PER_CORE`] x cores. Beyond that the
//!   start-up alone takes minutes and the load swamps the machine (1000 relays on 2 cores:
//!   354 s, load ~2600) and no measurement means anything;
//! - **memory**: nodes x W x [`MEMORY_PER_WORKER`] <= the memory available now
//!   (`MemAvailable`; each worker's io_uring receive buffers are 1024 x 16 KiB);
//! - **file descriptors**: a relay may hold a channel to every other node from each worker,
//!   so nodes x W + [`SPARE_FDS`] <= the open-file limit (`ulimit -n`), which the children
//!   inherit.

use std::fmt;

/// Worker threads per core the machine is allowed to run.
pub const THREADS_PER_CORE: u64 = 64;
/// Memory a worker may use (its receive buffers and queues), bytes.
pub const MEMORY_PER_WORKER: u64 = 20 << 20;
/// Descriptors a relay needs besides its channels (listeners, rings, logs, metrics).
pub const SPARE_FDS: u64 = 64;

/// The machine's limits (`None` where the OS does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Cores available to us.
    pub cores: u64,
    /// `MemAvailable`, bytes.
    pub mem_available: Option<u64>,
    /// The soft open-file limit.
    pub fd_limit: Option<u64>,
}

impl Machine {
    /// This machine, now.
    pub fn this() -> Machine {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let mem_available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
        });
        let fd_limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, _)| soft);
        Machine {
            cores,
            mem_available,
            fd_limit,
        }
    }
}

/// Why `--relays N` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany {
    /// `--relays`.
    pub relays: u64,
    /// Worker threads per node.
    pub workers: u64,
    /// The rule broken.
    pub limit: Limit,
}

/// The part of the rule that is broken, with the machine's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Worker threads over [`THREADS_PER_CORE`] per core.
    Cores(u64),
    /// Memory over `MemAvailable` (bytes).
    Memory(u64),
    /// Channels over the open-file limit.
    Fds(u64),
}

impl fmt::Display for TooMany {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = self.relays + 1;
        let threads = nodes * self.workers;
        write!(
            f,
            "--relays {} is more than this machine can hold: {nodes} nodes x {} worker(s) = {threads} worker threads",
            self.relays, self.workers
        )?;
        match self.limit {
            Limit::Cores(cores) => write!(
                f,
                ", over {THREADS_PER_CORE} per core ({cores} cores: {})",
                THREADS_PER_CORE * cores
            ),
            Limit::Memory(avail) => write!(
                f,
                ", needing ~{} MiB ({} MiB per worker), over the {} MiB available",
                (threads * MEMORY_PER_WORKER) >> 20,
                MEMORY_PER_WORKER >> 20,
                avail >> 20
            ),
            Limit::Fds(limit) => write!(
                f,
                "; a relay may hold a channel to every node from each worker: {} open files, over the limit of {limit} (ulimit -n)",
                threads + SPARE_FDS
            ),
        }?;
        write!(f, "; use fewer relays or --workers 1")
    }
}

/// Checks `relays` relays (plus the client) of `workers` worker threads each on `machine`.
pub fn check(relays: u64, workers: u64, machine: Machine) -> Result<(), TooMany> {
    let threads = (relays + 1) * workers;
    let too_many = |limit| TooMany {
        relays,
        workers,
        limit,
    };
    if threads > THREADS_PER_CORE * machine.cores {
        return Err(too_many(Limit::Cores(machine.cores)));
    }
    if let Some(avail) = machine.mem_available {
        if threads * MEMORY_PER_WORKER > avail {
            return Err(too_many(Limit::Memory(avail)));
        }
    }
    if let Some(limit) = machine.fd_limit {
        if threads + SPARE_FDS > limit {
            return Err(too_many(Limit::Fds(limit)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CORES: Machine = Machine {
        cores: 2,
        mem_available: Some(8 << 30),
        fd_limit: Some(1024),
    };

    #[test]
    fn a_thousand_relays_on_two_cores_is_refused_saying_why() {
        let e = check(1000, 2, TWO_CORES).unwrap_err();
        assert_eq!(e.limit, Limit::Cores(2));
        assert_eq!(
            e.to_string(),
            "--relays 1000 is more than this machine can hold: 1001 nodes x 2 worker(s) = \
             2002 worker threads, over 64 per core (2 cores: 128); use fewer relays or --workers 1"
        );
        // The edge: 63 relays + client x 2 workers = 128 threads is allowed, 64 is not.
        assert_eq!(check(63, 2, TWO_CORES), Ok(()));
        assert!(check(64, 2, TWO_CORES).is_err());
        assert_eq!(check(127, 1, TWO_CORES), Ok(()));
    }

    #[test]
    fn memory_and_descriptors_are_limits_too() {
        let small = Machine {
            mem_available: Some(100 << 20),
            ..TWO_CORES
        };
        // 4 nodes x 2 workers x 20 MiB = 160 MiB > 100 MiB.
        assert_eq!(
            check(3, 2, small).unwrap_err().limit,
            Limit::Memory(100 << 20)
        );
        let few_fds = Machine {
            fd_limit: Some(100),
            ..TWO_CORES
        };
        // 20 nodes x 2 workers + 64 = 104 > 100.
        assert_eq!(check(19, 2, few_fds).unwrap_err().limit, Limit::Fds(100));
        assert_eq!(check(17, 2, few_fds), Ok(()));
        let unknown = Machine {
            cores: 2,
            mem_available: None,
            fd_limit: None,
        };
        assert_eq!(check(63, 2, unknown), Ok(()));
    }
}
