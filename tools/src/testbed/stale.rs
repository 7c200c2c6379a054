//! Leftovers of testbeds whose owner died without tearing down (SIGKILL, power cut): their
//! namespaces (`kt<PID>-*`, `kt<PID>s<SEQ>-*`) and their allowed-list markers.

use super::error::TestbedError;
use super::{exec, sysctl};

/// The owner pid in a testbed name: `kt1234-middle` and `kt1234s2-middle` -> 1234; the marker
/// `kt1234-cc` -> 1234. `None` for any other name.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("kt")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    let (digits, tail) = rest.split_at(end);
    if !(tail.starts_with('-') || tail.starts_with('s')) {
        return None;
    }
    digits.parse().ok()
}

/// Whether a process with this pid exists (a zombie counts as existing).
pub fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Names listed by `ip netns list` (each line is `NAME` or `NAME (id: N)`).
pub fn namespaces() -> Result<Vec<String>, TestbedError> {
    let out = exec::run("ip", ["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Delete every testbed namespace whose owner is dead, and undo allowed-list additions of
/// dead owners. Returns the namespaces deleted.
pub fn remove_stale() -> Result<Vec<String>, TestbedError> {
    let mut removed = Vec::new();
    for ns in namespaces()? {
        if owner_pid(&ns).is_some_and(|pid| !pid_alive(pid)) {
            exec::run("ip", ["netns", "delete", &ns])?;
            tracing::info!(namespace = %ns, "removed a stale testbed namespace");
            removed.push(ns);
        }
    }
    for (file, cc) in sysctl::markers() {
        if owner_pid(&file).is_some_and(|pid| !pid_alive(pid)) {
            sysctl::repair_marker(&file, &cc)?;
            tracing::info!(marker = %file, %cc, "undid a dead testbed's allowed-CC addition");
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_both_name_forms() {
        assert_eq!(owner_pid("kt1234-middle"), Some(1234));
        assert_eq!(owner_pid("kt1234s2-middle"), Some(1234));
        assert_eq!(owner_pid("kt1234-cc"), Some(1234));
        assert_eq!(owner_pid("kt-middle"), None);
        assert_eq!(owner_pid("kt1234"), None);
        assert_eq!(owner_pid("kt12x4-a"), None);
        assert_eq!(owner_pid("ns1234-a"), None);
        assert_eq!(owner_pid("kt99999999999999999999-a"), None);
    }

    #[test]
    fn our_own_pid_is_alive() {
        assert!(pid_alive(std::process::id()));
    }
}
