//! Running `ip`, `tc` and `sysctl`: every exit status checked, every failure a
//! [`TestbedError`] naming the command and its stderr; the privilege and tool checks.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use super::error::TestbedError;

/// The programs a testbed needs.
pub const REQUIRED_TOOLS: [&str; 3] = ["ip", "tc", "sysctl"];

/// `cmd` as a shell-like line for messages.
pub(super) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `program args..`, return its stdout; a non-zero exit is [`TestbedError::Command`].
pub(super) fn run<I, S>(program: &str, args: I) -> Result<String, TestbedError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    let command = describe(&cmd);
    let out = cmd.output().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            TestbedError::MissingTool {
                tool: program.to_owned(),
            }
        } else {
            TestbedError::Spawn { command, source }
        }
    })?;
    if !out.status.success() {
        return Err(TestbedError::Command {
            command: describe(&cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The effective uid from the text of `/proc/self/status` (its `Uid:` line is real,
/// effective, saved, filesystem uid; proc(5)).
pub fn effective_uid_from_status(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Refuse anything but uid 0 (namespaces, veths, qdiscs and host sysctls need it).
pub fn require_root_uid(euid: Option<u32>) -> Result<(), TestbedError> {
    match euid {
        Some(0) => Ok(()),
        found => Err(TestbedError::NeedsRoot { euid: found }),
    }
}

/// This process's effective uid, from `/proc/self/status` (no libc call needed).
pub fn effective_uid() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    effective_uid_from_status(&text)
}

/// `tool` found as an executable file in one of the `PATH`-style `dirs`.
pub fn find_tool_in(tool: &str, dirs: &OsStr) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(dirs).any(|d| {
        let p: &Path = &d.join(tool);
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Root and every tool in [`REQUIRED_TOOLS`] on `PATH` (the first problem found).
pub fn check_privileges_and_tools() -> Result<(), TestbedError> {
    require_root_uid(effective_uid())?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in REQUIRED_TOOLS {
        if !find_tool_in(tool, &path) {
            return Err(TestbedError::MissingTool {
                tool: tool.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\n\
                          Uid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        assert_eq!(effective_uid_from_status(STATUS), Some(0));
        assert_eq!(
            effective_uid_from_status("Uid:\t0\t65534\t0\t0\n"),
            Some(65534)
        );
        assert_eq!(effective_uid_from_status("Name:\tx\n"), None);
        assert_eq!(effective_uid_from_status("Uid:\t0\n"), None);
    }

    #[test]
    fn only_uid_zero_passes() {
        assert!(require_root_uid(Some(0)).is_ok());
        let e = require_root_uid(Some(1000)).unwrap_err();
        assert!(matches!(e, TestbedError::NeedsRoot { euid: Some(1000) }));
        assert!(e.to_string().contains("root"), "{e}");
        assert!(matches!(
            require_root_uid(None),
            Err(TestbedError::NeedsRoot { euid: None })
        ));
    }

    #[test]
    fn tools_are_looked_up_in_the_given_path() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("faketool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let dirs =
            std::env::join_paths(["/nonexistent-dir", tmp.path().to_str().unwrap()]).unwrap();
        // Not executable yet: not found.
        assert!(!find_tool_in("faketool", &dirs));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(find_tool_in("faketool", &dirs));
        assert!(!find_tool_in("othertool", &dirs));
    }

    #[test]
    fn a_failing_command_names_itself_and_its_stderr() {
        let e = run("sh", ["-c", "echo oops >&2; exit 3"]).unwrap_err();
        match &e {
            TestbedError::Command {
                command,
                status,
                stderr,
            } => {
                assert_eq!(command, "sh -c echo oops >&2; exit 3");
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr, "oops");
            }
            other => panic!("wrong error {other:?}"),
        }
        assert_eq!(run("sh", ["-c", "echo hi"]).unwrap(), "hi\n");
        assert!(matches!(
            run("kistrel-no-such-tool", ["x"]),
            Err(TestbedError::MissingTool { tool }) if tool == "kistrel-no-such-tool"
        ));
    }
}
