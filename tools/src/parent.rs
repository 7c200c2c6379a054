//! Children of `kistrel net` must not outlive it.
//!
//! `kistrel net` starts `kistrel relay` / `kistrel client` with [`PARENT_PID_ENV`] set to its
//! pid. The child asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`, via
//! nix's safe wrapper: no `unsafe` and no `pre_exec` needed), then checks that its parent is
//! still the one named: if the supervisor died between fork and that call, the child has
//! been re-parented already and exits at once.

/// Environment variable naming the supervising `kistrel net` process.
pub const PARENT_PID_ENV: &str = "KISTREL_PARENT_PID";

/// If started by `kistrel net`, die with it. A no-op otherwise, and off Linux.
pub fn exit_with_parent() {
    let Some(expected) = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::Signal;
        if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
            tracing::warn!("cannot set the parent-death signal: {e}");
        }
        if nix::unistd::getppid().as_raw() != expected {
            eprintln!("kistrel: parent process {expected} is gone; exiting");
            std::process::exit(i32::from(crate::exit::EXIT_FAILURE));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = expected;
}
