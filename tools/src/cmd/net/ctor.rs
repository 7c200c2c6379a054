//! `kistrel net --ctor-relays C`: the C Tor part of a mixed network.
//!
//! ```text
//! find tor, tor-gencert ──► DIR/ctor: authority keys, torrcs   (before anything runs)
//! supervisor: start every tor ──► poll the consensus (bounded) ──► Ready(relays)
//!     ──► DIR/directory.toml += the C Tor relays ──► check the client config (pins)
//!     ──► kistrel relays, client, ready line
//! ```
//!
//! C Tor relays enter kistrel's directory with the same bandwidth weight as kistrel's own
//! relays ([`super::layout::BANDWIDTH`]): their consensus weights are a few KB/s of
//! self-measured idle traffic, in a unit kistrel's arbitrary weights do not share, and
//! random paths should use both kinds alike.

use std::net::SocketAddr;
use std::path::PathBuf;

use kistrel_pathsel::Directory;

use super::error::NetError;
use super::layout::{Layout, BANDWIDTH};
use super::CtorArgs;
use crate::ctor::{CtorNet, CtorOptions, CtorRelay, Programs};

/// The C Tor network to start.
#[derive(Debug, Clone)]
pub(super) struct CtorPlan {
    /// Its nodes and files.
    pub(super) net: CtorNet,
    /// The `tor` program.
    pub(super) tor: PathBuf,
}

/// The network `args` asks for, and the programs to run it (found now: a missing `tor` is
/// an error before anything is made); `None` without `--ctor-relays`. `-vv` adds tor's
/// info logs.
pub(super) fn options(
    args: &CtorArgs,
    verbose: u8,
) -> Result<(CtorOptions, Option<Programs>), NetError> {
    let opts = CtorOptions {
        authorities: usize::from(args.ctor_authorities),
        relays: usize::from(args.ctor_relays),
        info_log: verbose >= 2,
        owner_pid: Some(std::process::id()),
    };
    let programs = match args.ctor_relays {
        0 => None,
        _ => Some(Programs::find()?),
    };
    Ok((opts, programs))
}

/// Free loopback ports a network of `opts` needs.
pub(super) fn ports_needed(opts: &CtorOptions) -> usize {
    2 * opts.authorities + opts.relays
}

/// Find the programs (first: a missing `tor` is an error before anything is made), then
/// make `DIR/ctor` with the authorities' keys and every torrc.
pub(super) fn prepare(
    programs: &Programs,
    dir: &std::path::Path,
    opts: &CtorOptions,
    ports: &[SocketAddr],
) -> Result<CtorPlan, NetError> {
    let net = CtorNet::create(programs, &dir.join("ctor"), opts, ports)?;
    Ok(CtorPlan {
        net,
        tor: programs.tor.clone(),
    })
}

/// Add the C Tor relays to the directory `layout` wrote (kistrel's relays first).
pub(super) fn extend_directory(layout: &Layout, ctor: &[CtorRelay]) -> Result<(), NetError> {
    let bad = |problem: String| NetError::Layout { problem };
    let kistrel = Directory::load(&layout.directory).map_err(|e| bad(e.to_string()))?;
    let mut relays = kistrel.relays().to_vec();
    relays.extend(ctor.iter().map(|r| {
        let mut info = r.relay_info();
        info.bandwidth = BANDWIDTH;
        info
    }));
    let dir = Directory::from_relays(relays, None).map_err(|e| bad(e.to_string()))?;
    crate::fsutil::write_atomic(&layout.directory, dir.to_toml().as_bytes(), 0o644).map_err(
        |source| NetError::Io {
            what: "writing",
            path: layout.directory.clone(),
            source,
        },
    )
}

/// `NAME:KIND@ADDR` for every relay: kistrel's, then C Tor's (authorities included).
pub(super) fn relay_list(layout: &Layout, ctor: Option<&CtorNet>) -> Vec<String> {
    let kistrel = layout
        .relays
        .iter()
        .map(|r| format!("{}:kistrel@{}", r.nickname, r.or_port));
    let ctor = ctor
        .into_iter()
        .flat_map(|n| n.nodes.iter())
        .map(|n| format!("{}:ctor@{}", n.nickname(), n.or_port()));
    kistrel.chain(ctor).collect()
}
