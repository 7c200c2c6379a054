//! The network's processes as the bench sees them: found by their config file on the command
//! line, their CPU time, RSS and open file descriptors, read through `procfs` (Linux; off
//! Linux there are no figures and no processes are found).

use std::path::Path;

use serde::Serialize;

/// CPU seconds of one process over a phase, per GiB of verified payload.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ProcessCpu {
    pub role: String,
    pub pid: i32,
    pub cpu_s: f64,
    pub cpu_s_per_gib: f64,
}

/// The role of a `kistrel relay|client -c DIR/ROLE.toml` command line under `dir`: `relayK`
/// or `client`.
pub(super) fn role_of(cmdline: &[String], dir: &Path) -> Option<String> {
    let dir = dir.to_string_lossy();
    if !cmdline.iter().any(|a| a.contains(&*dir)) {
        return None;
    }
    cmdline.iter().find_map(|arg| {
        let name = Path::new(arg)
            .file_name()?
            .to_str()?
            .strip_suffix(".toml")?;
        let relay = name
            .strip_prefix("relay")
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
        (relay || name == "client").then(|| name.to_owned())
    })
}

#[cfg(target_os = "linux")]
mod imp {
    use procfs::process::Process;

    /// `(pid, command line)` of every process that can be read.
    pub(in super::super) fn all() -> Vec<(i32, Vec<String>)> {
        let Ok(all) = procfs::process::all_processes() else {
            return Vec::new();
        };
        all.flatten()
            .filter_map(|p| Some((p.pid(), p.cmdline().ok()?)))
            .collect()
    }

    /// User + system CPU seconds of a process so far, to the nanosecond (its CPU-time
    /// clock: /proc's utime + stime count 10 ms ticks, too coarse for a short phase).
    pub(in super::super) fn cpu_seconds(pid: i32) -> Option<f64> {
        let clock = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(pid)).ok()?;
        let t = nix::time::clock_gettime(clock).ok()?;
        Some(t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
    }

    /// Seconds the threads of a process have spent runnable but waiting for a CPU, summed
    /// over its live threads (`/proc/PID/task/*/schedstat`): with the CPU time, how much a
    /// process wanted to run on a machine it shares.
    pub(in super::super) fn run_queue_wait_seconds(pid: i32) -> Option<f64> {
        let ns: u64 = Process::new(pid)
            .ok()?
            .tasks()
            .ok()?
            .flatten()
            .filter_map(|t| t.schedstat().ok())
            .map(|s| s.run_delay)
            .sum();
        Some(ns as f64 * 1e-9)
    }

    /// Resident set size, KiB.
    pub(in super::super) fn rss_kib(pid: i32) -> Option<u64> {
        Process::new(pid).ok()?.status().ok()?.vmrss
    }

    /// Open file descriptors.
    pub(in super::super) fn fd_count(pid: i32) -> Option<usize> {
        Process::new(pid).ok()?.fd_count().ok()
    }

    /// The 1-minute load average.
    pub(in super::super) fn loadavg_1m() -> Option<f64> {
        use procfs::Current;
        procfs::LoadAverage::current()
            .ok()
            .map(|l| f64::from(l.one))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(in super::super) fn all() -> Vec<(i32, Vec<String>)> {
        Vec::new()
    }
    pub(in super::super) fn cpu_seconds(_pid: i32) -> Option<f64> {
        None
    }
    pub(in super::super) fn run_queue_wait_seconds(_pid: i32) -> Option<f64> {
        None
    }
    pub(in super::super) fn rss_kib(_pid: i32) -> Option<u64> {
        None
    }
    pub(in super::super) fn fd_count(_pid: i32) -> Option<usize> {
        None
    }
    pub(in super::super) fn loadavg_1m() -> Option<f64> {
        None
    }
}

pub(super) use imp::{cpu_seconds, fd_count, loadavg_1m, rss_kib, run_queue_wait_seconds};

/// `(role, pid)` of every process started from a config under `dir`, sorted.
pub(super) fn find(dir: &Path) -> Vec<(String, i32)> {
    let mut found: Vec<(String, i32)> = imp::all()
        .into_iter()
        .filter_map(|(pid, cmdline)| Some((role_of(&cmdline, dir)?, pid)))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_the_config_file_under_the_dir() {
        let dir = Path::new("/tmp/net7");
        let cmd = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let relay = cmd(&["kistrel", "relay", "-c", "/tmp/net7/relay12.toml"]);
        assert_eq!(role_of(&relay, dir).as_deref(), Some("relay12"));
        let client = cmd(&["kistrel", "client", "-c", "/tmp/net7/client.toml"]);
        assert_eq!(role_of(&client, dir).as_deref(), Some("client"));
        let other_dir = cmd(&["kistrel", "relay", "-c", "/tmp/net8/relay1.toml"]);
        assert_eq!(role_of(&other_dir, dir), None);
        let keys = cmd(&["cat", "/tmp/net7/relay1-keys.toml"]);
        assert_eq!(role_of(&keys, dir), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_cpu_rss_and_fds() {
        let me = std::process::id() as i32;
        assert!(cpu_seconds(me).is_some_and(|s| s >= 0.0));
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(fd_count(me).is_some_and(|n| n >= 3));
        assert_eq!(cpu_seconds(-5), None);
        assert!(run_queue_wait_seconds(me).is_some_and(|s| s >= 0.0));
        assert_eq!(run_queue_wait_seconds(-5), None);
        // Finer than /proc's 10 ms ticks: a little work shows.
        let before = cpu_seconds(me).unwrap();
        std::hint::black_box(kistrel_engine::relay::spin(1_000_000));
        assert!(cpu_seconds(me).unwrap() > before);
    }
}
