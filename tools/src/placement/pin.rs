//! Setting and reading a thread's CPU affinity (`sched_setaffinity(2)` on Linux; other
//! systems have no hard affinity, so pinning there is an error, never a silent no-op).

use super::cpu_list::CpuList;
use super::PlacementError;

/// The CPUs this process may run on now (its affinity mask: `taskset`, cgroup cpusets).
/// Off Linux: CPUs `0..available_parallelism`.
pub fn allowed_cpus() -> Result<CpuList, PlacementError> {
    imp::allowed()
}

/// Checks that `cpus` are all ones this process may run on.
pub fn check_allowed(cpus: &CpuList) -> Result<(), PlacementError> {
    let allowed = allowed_cpus()?;
    if cpus.is_subset(&allowed) {
        Ok(())
    } else {
        Err(PlacementError::NotAllowed {
            cpus: cpus.clone(),
            allowed,
        })
    }
}

/// Pins the calling thread to `cpus` (threads it starts afterwards inherit them), then reads
/// the mask back: the kernel silently intersects a mask with the cgroup's cpuset, and a pin
/// that did not take exactly is an error, not a surprise in the figures.
pub fn pin_current_thread(cpus: &CpuList) -> Result<(), PlacementError> {
    imp::pin(cpus)?;
    let got = allowed_cpus()?;
    if &got == cpus {
        Ok(())
    } else {
        Err(PlacementError::NotApplied {
            cpus: cpus.clone(),
            got,
        })
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    use super::{CpuList, PlacementError};

    pub(super) fn allowed() -> Result<CpuList, PlacementError> {
        // Pid 0: the calling thread.
        let set = sched_getaffinity(Pid::from_raw(0)).map_err(PlacementError::Get)?;
        let cpus = (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .filter_map(|c| u32::try_from(c).ok());
        CpuList::new(cpus).ok_or(PlacementError::NoCpus)
    }

    pub(super) fn pin(cpus: &CpuList) -> Result<(), PlacementError> {
        let fail = |source| PlacementError::Pin {
            cpus: cpus.clone(),
            source,
        };
        let mut set = CpuSet::new();
        for &c in cpus.cpus() {
            set.set(c as usize).map_err(fail)?;
        }
        sched_setaffinity(Pid::from_raw(0), &set).map_err(fail)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{CpuList, PlacementError};

    pub(super) fn allowed() -> Result<CpuList, PlacementError> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        CpuList::first(u32::try_from(n).unwrap_or(1)).ok_or(PlacementError::NoCpus)
    }

    pub(super) fn pin(_cpus: &CpuList) -> Result<(), PlacementError> {
        Err(PlacementError::Unsupported)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Pins a fresh thread to each allowed CPU in turn and reads the mask back; a CPU
    /// outside the mask is refused by the check.
    #[test]
    fn pin_and_read_back() {
        let allowed = allowed_cpus().unwrap();
        for &cpu in allowed.cpus() {
            let one = CpuList::new([cpu]).unwrap();
            let got = std::thread::spawn(move || {
                pin_current_thread(&one).unwrap();
                allowed_cpus().unwrap()
            })
            .join()
            .unwrap();
            assert_eq!(got.cpus(), [cpu]);
        }
        let beyond = CpuList::new([super::super::cpu_list::MAX_CPUS - 1]).unwrap();
        let e = check_allowed(&beyond).unwrap_err();
        assert!(
            e.to_string().contains(&format!("may run on {allowed}")),
            "{e}"
        );
        assert!(check_allowed(&allowed).is_ok());
        // The kernel refuses a mask with no online CPU: reported, with the CPUs asked.
        let e = std::thread::spawn(move || pin_current_thread(&beyond))
            .join()
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, PlacementError::Pin { .. }), "{e:?}");
        assert!(e.to_string().starts_with("pinning to CPU(s) 1023: "), "{e}");
    }
}
