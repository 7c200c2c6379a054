#![doc = include_str!("../README.md")]

pub mod client;
pub mod crypto;
pub mod exit;
pub mod harness;
pub mod poll;
pub mod relay;
pub mod runtime;
pub mod socks;
pub mod sys;
pub mod wire;

#[cfg(target_os = "linux")]
pub mod uring;

/// kistrel's time type (defined in `kistrel-sched`, the lowest crate).
pub mod time {
    pub use kistrel_sched::time::Instant;
}
