//! The link protocol of one channel (tor-spec 4): VERSIONS, then the in-protocol handshake
//! (CERTS / AUTH_CHALLENGE / AUTHENTICATE / NETINFO), as a small per-channel state machine,
//! and the faults that close a channel.
//!
//! ```text
//!   Connecting --connected()--> Handshaking(Box<Handshake>) --NETINFO--> Open { version }
//!   (outbound)    send VERSIONS   VERSIONS negotiates; handshake.rs      peer: PeerIds or a
//!                                 does the rest (both roles)             client (None)
//! ```
//!
//! [`Link::handle`] takes one cell of a channel that is not open yet, writes what our side
//! sends into the channel's control bytes, and says whether the channel opened
//! ([`LinkStep`]) or why it must close ([`LinkError`]). It does no I/O and reads no clock:
//! the wall-clock time (NETINFO, certificate expiry), our keys and what the transport knows
//! ([`LinkAuth`]: the TLS certificates and exporter) come in a [`LinkCtx`].
//!
//! The TLS-bound checks (the type-5 certificate against the peer's TLS certificate, SCERT,
//! TLSSECRETS) run whenever the transport provides the facts. A plain link provides none:
//! certificates are still exchanged and verified (identities are proven by them and by
//! ntor), and the process logs once that links are plain.

mod auth;
mod cells;
mod error;
mod handshake;
mod keys;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Once;
use std::time::SystemTime;

use rand_chacha::ChaCha12Rng;
use tracing::info;

use crate::crypto::identity::{Ed25519Id, RelayIdentity};
use crate::crypto::RelayId;
use crate::wire::{ChanCell, ChanCmd, Versions};

use handshake::Handshake;

pub use auth::{LinkAuth, PlainLinkAuth};
pub(crate) use cells::append_versions;
pub use error::{Hex, LinkError};
pub(crate) use keys::LinkKeys;

/// Link protocol versions we speak (tor-spec: v4 and v5 use 4-byte circuit ids).
pub(crate) const LINK_VERSIONS: [u16; 2] = [4, 5];

/// AUTHORIZE: reserved for scanning resistance; allowed in the handshake and ignored.
const AUTHORIZE: ChanCmd = ChanCmd(132);

/// Who the peer of a channel proved to be (a relay; clients prove nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerIds {
    /// SHA-1 of its RSA identity key.
    pub rsa_id: RelayId,
    /// Its Ed25519 master identity.
    pub ed_id: Ed25519Id,
}

/// The relay an outbound channel is meant to reach (from EXTEND2 or the path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Expected {
    /// The RSA identity it must prove.
    pub(crate) rsa_id: RelayId,
    /// The Ed25519 identity it must prove, when the request named one.
    pub(crate) ed_id: Option<Ed25519Id>,
}

/// What the handshake needs from outside the channel. See the module docs.
pub(crate) struct LinkCtx<'a> {
    /// Our identity (relays); `None` for a client, which proves nothing.
    pub(crate) keys: Option<&'a RelayIdentity>,
    /// Our short-lived link certificates.
    pub(crate) link_keys: &'a mut LinkKeys,
    /// Challenges, RAND, new link keys.
    pub(crate) rng: &'a mut ChaCha12Rng,
    /// The wall-clock time, from the runtime.
    pub(crate) wall: SystemTime,
    /// What the transport knows.
    pub(crate) auth: &'a dyn LinkAuth,
    /// Our addresses, for NETINFO.
    pub(crate) my_addrs: &'a [IpAddr],
    /// The peer's address, for NETINFO.
    pub(crate) peer: Option<SocketAddr>,
}

impl LinkCtx<'_> {
    /// The wall clock as NETINFO's 32-bit seconds (saturating: 2106 is far).
    fn unix_secs(&self) -> u32 {
        u32::try_from(self.unix_secs_i64().max(0)).unwrap_or(u32::MAX)
    }

    fn unix_secs_i64(&self) -> i64 {
        match self.wall.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// What the relay does after a handshake cell was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkStep {
    /// Wait for the next cell (our answers, if any, are in the control bytes).
    Wait,
    /// The link is open.
    Opened {
        /// Our clock minus the peer's NETINFO time, when the peer is a relay that sent one.
        skew_secs: Option<i64>,
    },
}

#[derive(Debug)]
enum LinkState {
    /// Outbound: waiting for the TCP (and TLS) connection.
    Connecting,
    /// VERSIONS and the in-protocol handshake in progress.
    Handshaking(Box<Handshake>),
    /// Circuit cells flow.
    Open {
        /// The negotiated link protocol version.
        version: u16,
    },
}

/// The link handshake state of one channel.
#[derive(Debug)]
pub(crate) struct Link {
    /// We opened the connection.
    initiator: bool,
    /// Outbound: whom we meant to reach.
    expected: Option<Expected>,
    /// Who the peer proved to be, once open (None: a client, or an inbound channel whose
    /// initiator did not authenticate).
    peer: Option<PeerIds>,
    state: LinkState,
}

impl Link {
    /// A channel we are opening to `expected`: waits for the connection.
    pub(crate) fn outbound(expected: Expected) -> Self {
        Link {
            initiator: true,
            expected: Some(expected),
            peer: None,
            state: LinkState::Connecting,
        }
    }

    /// A channel a peer opened: waits for its VERSIONS.
    pub(crate) fn inbound() -> Self {
        Link {
            initiator: false,
            expected: None,
            peer: None,
            state: LinkState::Handshaking(Box::default()),
        }
    }

    /// Whether we opened the connection.
    pub(crate) fn initiator(&self) -> bool {
        self.initiator
    }

    /// Whether the handshake is done.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, LinkState::Open { .. })
    }

    /// Whom an outbound channel is meant to reach.
    pub(crate) fn expected(&self) -> Option<&Expected> {
        self.expected.as_ref()
    }

    /// Who the peer proved to be (set when the channel opens).
    pub(crate) fn peer(&self) -> Option<PeerIds> {
        self.peer
    }

    /// The negotiated version, once the peer's VERSIONS arrived.
    pub(crate) fn version(&self) -> Option<u16> {
        match &self.state {
            LinkState::Connecting => None,
            LinkState::Handshaking(h) => h.version,
            LinkState::Open { version } => Some(*version),
        }
    }

    /// Our outbound connection is up: our VERSIONS goes into `out`. False (and nothing
    /// written) if the channel was not waiting for its connection.
    pub(crate) fn connected(&mut self, out: &mut Vec<u8>) -> bool {
        if !matches!(self.state, LinkState::Connecting) {
            return false;
        }
        let mut hs = Box::<Handshake>::default();
        let start = out.len();
        append_versions(out);
        hs.log.sent(&out[start..]);
        self.state = LinkState::Handshaking(hs);
        true
    }

    /// Handles one cell of a channel that is not open yet; our answers go into `out`.
    pub(crate) fn handle(
        &mut self,
        cell: &ChanCell,
        ctx: &mut LinkCtx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<LinkStep, LinkError> {
        let cmd = cell.cmd();
        let hs = match &mut self.state {
            LinkState::Handshaking(hs) => hs,
            LinkState::Connecting => return Err(LinkError::CellBeforeConnected),
            LinkState::Open { .. } => return Err(LinkError::UnexpectedHandshakeCell { cmd }),
        };
        let Some(version) = hs.version else {
            return match cell {
                ChanCell::Var(v) if cmd == ChanCmd::VERSIONS => {
                    hs.log.received(cell);
                    let theirs =
                        Versions::parse(&v.payload).map_err(|_| LinkError::MalformedVersions)?;
                    hs.version =
                        Some(negotiate(&theirs.versions).ok_or(LinkError::NoCommonVersion)?);
                    if !self.initiator {
                        append_versions_logged(hs, out);
                        note_plain_links(ctx);
                        hs.respond(ctx, out)?;
                    }
                    Ok(LinkStep::Wait)
                }
                ChanCell::Var(_) if cmd == ChanCmd::VPADDING || cmd == AUTHORIZE => {
                    hs.log.received(cell);
                    Ok(LinkStep::Wait)
                }
                _ => Err(LinkError::BeforeVersions { cmd }),
            };
        };
        if cmd != ChanCmd::AUTHENTICATE {
            hs.log.received(cell);
        }
        match (cell, self.initiator) {
            (ChanCell::Var(_), _) if cmd == ChanCmd::VERSIONS => Err(LinkError::DuplicateVersions),
            (ChanCell::Var(_), _) if cmd == ChanCmd::VPADDING || cmd == AUTHORIZE => {
                Ok(LinkStep::Wait)
            }
            (ChanCell::Var(v), initiator) if cmd == ChanCmd::CERTS => {
                if initiator {
                    note_plain_links(ctx);
                }
                hs.on_certs(initiator, self.expected.as_ref(), v, ctx, out)?;
                Ok(LinkStep::Wait)
            }
            (ChanCell::Var(v), true) if cmd == ChanCmd::AUTH_CHALLENGE => {
                hs.on_auth_challenge(v, ctx, out)?;
                Ok(LinkStep::Wait)
            }
            (ChanCell::Var(v), false) if cmd == ChanCmd::AUTHENTICATE => {
                hs.on_authenticate(v, ctx)?;
                Ok(LinkStep::Wait)
            }
            (ChanCell::Fixed(c), initiator) if cmd == ChanCmd::NETINFO => {
                let (peer, skew_secs) = hs.on_netinfo(initiator, &c.body, ctx, out)?;
                self.peer = peer;
                self.state = LinkState::Open { version };
                Ok(LinkStep::Opened { skew_secs })
            }
            (ChanCell::Fixed(_), _) if cmd == ChanCmd::PADDING => Ok(LinkStep::Wait),
            _ => Err(LinkError::UnexpectedHandshakeCell { cmd }),
        }
    }
}

/// Responder: our VERSIONS, recorded for SLOG.
fn append_versions_logged(hs: &mut Handshake, out: &mut Vec<u8>) {
    let start = out.len();
    append_versions(out);
    hs.log.sent(&out[start..]);
}

/// Logs once per process that links carry no TLS (the benchmark mode), so nothing binds
/// the handshake to the connection.
fn note_plain_links(ctx: &LinkCtx<'_>) {
    static ONCE: Once = Once::new();
    if ctx.auth.peer_cert_sha256().is_none() && ctx.auth.own_cert_sha256().is_none() {
        ONCE.call_once(|| {
            info!("links are plain (no TLS): CERTS are verified, but not bound to a TLS session")
        });
    }
}

/// Highest link version both sides offer.
fn negotiate(theirs: &[u16]) -> Option<u16> {
    theirs
        .iter()
        .copied()
        .filter(|v| LINK_VERSIONS.contains(v))
        .max()
}
