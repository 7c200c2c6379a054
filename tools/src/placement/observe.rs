//! What the kernel says a process's threads may run on (`/proc/PID/task/TID/status`,
//! `Cpus_allowed_list`): the bench reports this, not what it asked for.

use serde::Serialize;

use super::cpu_list::CpuList;
use super::PlacementError;

/// One thread's affinity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadAffinity {
    /// Its name (`comm`, at most 15 bytes), e.g. `kistrel-w0`.
    pub thread: String,
    /// The CPUs it may run on.
    pub cpus: CpuList,
}

/// The affinity of every thread of process `pid`, in thread-id order.
pub fn thread_affinity(pid: i32) -> Result<Vec<ThreadAffinity>, PlacementError> {
    imp::threads(pid)
}

#[cfg(target_os = "linux")]
mod imp {
    use procfs::process::Process;

    use super::{CpuList, PlacementError, ThreadAffinity};

    pub(super) fn threads(pid: i32) -> Result<Vec<ThreadAffinity>, PlacementError> {
        let read = |source| PlacementError::Proc { pid, source };
        let mut out = Vec::new();
        for task in Process::new(pid).map_err(read)?.tasks().map_err(read)? {
            // A thread that ended between listing and reading is skipped.
            let Ok(task) = task else { continue };
            let Ok(status) = task.status() else { continue };
            let ranges = status.cpus_allowed_list.unwrap_or_default();
            let cpus = CpuList::new(ranges.into_iter().flat_map(|(a, b)| a..=b));
            if let Some(cpus) = cpus {
                out.push(ThreadAffinity {
                    thread: status.name,
                    cpus,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{PlacementError, ThreadAffinity};

    pub(super) fn threads(_pid: i32) -> Result<Vec<ThreadAffinity>, PlacementError> {
        Err(PlacementError::Unsupported)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::super::{allowed_cpus, pin_current_thread};
    use super::*;

    /// A named thread pinned to one CPU shows up with that CPU; the test's main thread
    /// keeps the whole mask.
    #[test]
    fn reads_a_pinned_thread_back() {
        let allowed = allowed_cpus().unwrap();
        let last = CpuList::new([*allowed.cpus().last().unwrap()]).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let pinned = last.clone();
        let t = std::thread::Builder::new()
            .name("kt-observe".into())
            .spawn(move || {
                pin_current_thread(&pinned).unwrap();
                tx.send(()).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        rx.recv().unwrap();
        let threads = thread_affinity(std::process::id() as i32).unwrap();
        let _ = done_tx.send(());
        t.join().unwrap();
        let me = threads.iter().find(|t| t.thread == "kt-observe").unwrap();
        assert_eq!(me.cpus, last);
        assert!(threads.iter().all(|t| t.cpus.is_subset(&allowed)));
        assert!(thread_affinity(-3).is_err());
    }
}
