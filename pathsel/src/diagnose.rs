//! Why a directory gives no path, in words a user can act on.
//!
//! [`PathError`] says which step failed; with entry guards the first hop is fixed before the
//! exit is picked, so "no usable exit allows the target" may really mean "every exit is in
//! the guard's /16". [`explain`] searches exhaustively ([`PathSelector::any_path`]) and names
//! the cause: the subnet rule (when turning `EnforceDistinctSubnets` off would give a path),
//! no exit policy allowing the target, no Guard relay, too few usable relays, or families.
//! `kistrel path sample` and `kistrel client` print the same text.

use std::fmt;

use kistrel_base::control::ExitTarget;

use crate::dir::{Directory, Flag};
use crate::select::{PathConfig, PathError, PathSelector};

/// Why no path exists, with the hint that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoPathCause {
    /// Paths exist, but only with two relays in one IPv4 /16 (IPv6 /32).
    #[error(
        "every path would put two relays in one IPv4 /16 (or IPv6 /32), which \
         EnforceDistinctSubnets forbids; on a one-machine network set \
         EnforceDistinctSubnets = false (kistrel path sample: --allow-same-subnet)"
    )]
    SameSubnet,
    /// Fewer than three usable (Running, Valid) relays.
    #[error("a path needs 3 usable (Running and Valid) relays; the directory has {usable}")]
    TooFewRelays {
        /// Usable relays in the directory.
        usable: usize,
    },
    /// No usable relay's exit policy allows the target.
    #[error(
        "no usable relay's exit policy allows {target} ({exits} usable relays have an exit policy)"
    )]
    NoExitAllows {
        /// The target.
        target: Target,
        /// Usable relays with a policy accepting anything.
        exits: usize,
    },
    /// No usable relay has the Guard flag.
    #[error("no usable relay has the Guard flag")]
    NoGuardFlag,
    /// Relays are there, but the ones left conflict (families, or the guard in use).
    #[error("{0}: the usable relays conflict (the same relay or one family)")]
    Conflicts(PathError),
}

/// A stream target for messages: `any target`, `port 443`, `10.0.0.1:80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target(pub Option<ExitTarget>);

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("any target"),
            Some(ExitTarget {
                addr: Some(ip),
                port,
            }) => write!(f, "{}", std::net::SocketAddr::new(ip, port)),
            Some(ExitTarget { addr: None, port }) => write!(f, "port {port}"),
        }
    }
}

/// Why `selector` gives no path to `target` (with `guard` as first hop, when given), or
/// `None` when a path exists.
pub fn explain(
    selector: &PathSelector,
    target: Option<ExitTarget>,
    guard: Option<usize>,
) -> Option<NoPathCause> {
    let error = selector.any_path(target, guard).err()?;
    let cfg = selector.config();
    if cfg.enforce_distinct_subnets {
        let relaxed = PathConfig {
            enforce_distinct_subnets: false,
            ..cfg.clone()
        };
        let relaxed = PathSelector::new(selector.directory(), relaxed);
        if relaxed.any_path(target, guard).is_ok() {
            return Some(NoPathCause::SameSubnet);
        }
    }
    Some(cause_of(selector.directory(), target, error))
}

/// The cause behind `error` when relaxing the subnet rule does not help.
fn cause_of(dir: &Directory, target: Option<ExitTarget>, error: PathError) -> NoPathCause {
    let usable: Vec<_> = dir.relays().iter().filter(|r| r.is_usable()).collect();
    if usable.len() < 3 {
        return NoPathCause::TooFewRelays {
            usable: usable.len(),
        };
    }
    match error {
        PathError::NoExit => NoPathCause::NoExitAllows {
            target: Target(target),
            exits: usable
                .iter()
                .filter(|r| !r.exit_policy.is_reject_all())
                .count(),
        },
        PathError::NoGuard if !usable.iter().any(|r| r.flags.contains(Flag::Guard)) => {
            NoPathCause::NoGuardFlag
        }
        other => NoPathCause::Conflicts(other),
    }
}

#[cfg(test)]
mod tests;
