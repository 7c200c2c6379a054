//! Sysctls: the host's `net.ipv4.tcp_allowed_congestion_control` (global, read and written
//! through /proc in our own namespace) and the per-namespace TCP settings (written with
//! `ip netns exec NS sysctl`).
//!
//! Why the host list matters: the kernel lets a namespace other than the initial one make a
//! congestion control its default only if that algorithm is on the allowed list
//! (`tcp_set_default_congestion_control`, net/ipv4/tcp_cong.c, returns EPERM otherwise).
//! Here the list is `reno bbr`, so `cubic` is added for the testbed's lifetime. We remove
//! only what we added (another testbed may have added something meanwhile), and leave a
//! marker file naming it, so a testbed killed with SIGKILL is repaired by the next one
//! ([`super::stale`]).

use std::path::{Path, PathBuf};

use super::error::TestbedError;
use super::exec;

/// The host's allowed list.
pub const ALLOWED_CC: &str = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";
/// Where markers of algorithms we added live (`PREFIXcc` holds the algorithm's name).
pub const MARKER_DIR: &str = "/run/kistrel-testbed";

/// `list` with `cc` appended, or `None` if it is there already.
pub fn list_with(list: &str, cc: &str) -> Option<String> {
    let mut names: Vec<&str> = list.split_whitespace().collect();
    if names.contains(&cc) {
        return None;
    }
    names.push(cc);
    Some(names.join(" "))
}

/// `list` without `cc`.
pub fn list_without(list: &str, cc: &str) -> String {
    list.split_whitespace()
        .filter(|n| *n != cc)
        .collect::<Vec<_>>()
        .join(" ")
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TestbedError {
    let path = path.to_path_buf();
    move |source| TestbedError::Io { what, path, source }
}

/// The host's allowed list, as written by the kernel (space separated).
pub fn read_allowed() -> Result<String, TestbedError> {
    let p = Path::new(ALLOWED_CC);
    Ok(std::fs::read_to_string(p)
        .map_err(io_err("reading", p))?
        .trim()
        .to_owned())
}

fn write_allowed(list: &str) -> Result<(), TestbedError> {
    let p = Path::new(ALLOWED_CC);
    std::fs::write(p, list).map_err(io_err("writing", p))
}

fn marker_path(prefix: &str) -> PathBuf {
    Path::new(MARKER_DIR).join(format!("{prefix}cc"))
}

/// Put `cc` on the host's allowed list if absent; `Ok(true)` if we added it (and left the
/// marker for `prefix`).
pub fn allow(cc: &str, prefix: &str) -> Result<bool, TestbedError> {
    let Some(new) = list_with(&read_allowed()?, cc) else {
        return Ok(false);
    };
    // Marker first: if we die between the two writes, the repair is a harmless no-op.
    let dir = Path::new(MARKER_DIR);
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let marker = marker_path(prefix);
    std::fs::write(&marker, cc).map_err(io_err("writing", &marker))?;
    write_allowed(&new)?;
    Ok(true)
}

/// Take `cc` off the host's allowed list again and drop the marker of `prefix`.
pub fn disallow(cc: &str, prefix: &str) -> Result<(), TestbedError> {
    let current = read_allowed()?;
    let new = list_without(&current, cc);
    if new != current {
        write_allowed(&new)?;
    }
    remove_marker(prefix)
}

fn remove_marker(prefix: &str) -> Result<(), TestbedError> {
    let marker = marker_path(prefix);
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("removing", &marker)(e)),
        _ => Ok(()),
    }
}

/// Markers left in [`MARKER_DIR`]: (file name, algorithm).
pub fn markers() -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(MARKER_DIR) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let cc = std::fs::read_to_string(e.path()).ok()?;
            Some((name, cc.trim().to_owned()))
        })
        .collect()
}

/// Undo what a dead testbed with marker `file_name` (`PREFIXcc`) added.
pub fn repair_marker(file_name: &str, cc: &str) -> Result<(), TestbedError> {
    let prefix = file_name.strip_suffix("cc").unwrap_or(file_name);
    if !cc.is_empty() {
        let current = read_allowed()?;
        let new = list_without(&current, cc);
        if new != current {
            write_allowed(&new)?;
        }
    }
    remove_marker(prefix)
}

/// `sysctl -w KEY=VALUE` inside namespace `ns`.
pub fn set_in(ns: &str, key: &str, value: &str) -> Result<(), TestbedError> {
    exec::run(
        "ip",
        [
            "netns",
            "exec",
            ns,
            "sysctl",
            "-q",
            "-w",
            &format!("{key}={value}"),
        ],
    )
    .map(drop)
}

/// `sysctl -n KEY` inside namespace `ns`, whitespace normalised to single spaces
/// (`tcp_wmem` reads back tab separated).
pub fn get_in(ns: &str, key: &str) -> Result<String, TestbedError> {
    let out = exec::run("ip", ["netns", "exec", ns, "sysctl", "-n", key])?;
    Ok(out.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_list_edits_touch_only_the_named_algorithm() {
        assert_eq!(
            list_with("reno bbr", "cubic").as_deref(),
            Some("reno bbr cubic")
        );
        assert_eq!(list_with("reno cubic bbr", "cubic"), None);
        assert_eq!(list_with("", "cubic").as_deref(), Some("cubic"));
        assert_eq!(list_without("reno bbr cubic", "cubic"), "reno bbr");
        assert_eq!(list_without("reno cubic bbr", "cubic"), "reno bbr");
        assert_eq!(list_without("reno bbr", "cubic"), "reno bbr");
    }
}
