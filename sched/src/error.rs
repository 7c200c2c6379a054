//! The scheduler's one error type: configuration only, running never fails.

use kistrel_base::{ErrorKind, HasKind};

/// Scheduler errors (configuration only: running never fails).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SchedError {
    /// A `Schedulers` entry is not KIST, KISTLite or Vanilla.
    #[error("unknown scheduler {name:?}: expected KIST, KISTLite or Vanilla")]
    UnknownScheduler {
        /// The entry as written.
        name: String,
    },
    /// No listed scheduler works here (empty list, or only KIST without TCP_INFO).
    #[error(
        "no usable scheduler in the Schedulers list (KIST needs TCP_INFO; add KISTLite or Vanilla)"
    )]
    NoUsableScheduler,
    /// `KISTSockBufSizeFactor` must be a finite number >= 0.
    #[error("KISTSockBufSizeFactor must be finite and >= 0, got {0}")]
    BadSockBufSizeFactor(f64),
    /// `KISTSchedRunInterval` must be positive.
    #[error("KISTSchedRunInterval must be positive")]
    ZeroRunInterval,
    /// A per-write limit below one cell would never write anything.
    #[error("{name} must be at least one cell ({min} bytes), got {got}")]
    LimitBelowOneCell {
        /// The option.
        name: &'static str,
        /// Its value.
        got: u32,
        /// `CELL_WIRE_LEN`.
        min: u32,
    },
}

impl HasKind for SchedError {
    fn kind(&self) -> ErrorKind {
        // Every variant is a `Schedulers` / `KIST*` setting the operator can fix.
        ErrorKind::BadConfig
    }
}
