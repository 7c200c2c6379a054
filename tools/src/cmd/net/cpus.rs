//! Which CPUs `kistrel net` gives its nodes (see [`crate::placement`]).

use super::error::NetError;
use super::NetArgs;
use crate::config::RuntimeConf;
use crate::placement::{self, NodeDemand, Placement};

/// The nodes of a network of `relays` relays (`relay1..N`, then `client`), each wanting as
/// many CPUs as it has workers.
pub fn nodes(relays: usize, workers: usize) -> Vec<NodeDemand> {
    (1..=relays)
        .map(|i| NodeDemand::new(format!("relay{i}"), workers))
        .chain([NodeDemand::new("client", workers)])
        .collect()
}

/// The placement `args` ask for: `--no-pin`, or [`placement::plan`] over `--cpus` (default:
/// this process's CPUs). CPUs outside this process's mask are refused (exit 2).
pub(super) fn placement(args: &NetArgs, relays: usize) -> Result<Placement, NetError> {
    if args.pin.no_pin {
        return Ok(Placement::Unpinned {
            reason: "--no-pin".into(),
        });
    }
    let allowed = placement::allowed_cpus().map_err(NetError::Cpus)?;
    let cpus = match &args.pin.cpus {
        Some(c) => {
            placement::check_allowed(c).map_err(NetError::Cpus)?;
            c.clone()
        }
        None => allowed,
    };
    let workers = args
        .workers
        .unwrap_or_else(|| RuntimeConf::default().effective_workers());
    Ok(placement::plan(&cpus, &nodes(relays, workers)))
}
