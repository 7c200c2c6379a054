//! The link protocol of one channel: VERSIONS / CERTS / AUTH_CHALLENGE / NETINFO, as a
//! small per-channel state machine, and the faults that close a channel.
//!
//! ```text
//!   initiator (we connected)                 responder (peer connected)
//!   Connecting --connected()--> Handshaking  Handshaking
//!     send VERSIONS                            <- VERSIONS:  Respond (our VERSIONS + NETINFO)
//!     <- VERSIONS, CERTS, AUTH_CHALLENGE       <- NETINFO:   Opened
//!     <- NETINFO: Opened (send our NETINFO)
//! ```
//!
//! [`Link::handle`] takes one handshake cell and says what to do ([`LinkStep`]) or why the
//! channel must close ([`LinkError`]); the relay applies the step (queues the cells, opens
//! the channel, sends the CREATE2s that waited for it). It does no I/O and keeps no bytes.
//!
//! # Where TLS and Tor's real link handshake go (issue #14)
//!
//! Links are plain TCP today, so CERTS and AUTH_CHALLENGE from a C Tor responder are
//! accepted unread and nothing is authenticated. TLS will live in the runtime's link layer,
//! which then hands this machine the facts it cannot learn from cells: the digest of the
//! peer's TLS certificate, the RFC 5705 exporter value of the session, and our own link
//! certificate. Those become fields of the `Handshaking` state, set by a new
//! `Relay::handle_channel_secured(now, chan, facts)` before any cell is handled;
//! `Respond` grows to CERTS + AUTH_CHALLENGE, the initiator answers an AUTH_CHALLENGE with
//! CERTS + AUTHENTICATE (signed over the exporter value), and `Opened` waits until the
//! peer's CERTS verify against the TLS certificate. Each failure is a new [`LinkError`]
//! variant. Nothing outside this module has to change for it.

mod auth;

use std::net::{IpAddr, SocketAddr};

use crate::wire::{Cell, ChanCell, ChanCmd, Netinfo, Versions};
use crate::{ErrorKind, HasKind};

pub use auth::LinkAuth;

/// Link protocol versions we speak (tor-spec: v4 and v5 use 4-byte circuit ids).
pub(crate) const LINK_VERSIONS: [u16; 2] = [4, 5];

/// Why a channel is closed for what its peer sent. All are the peer's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The bytes did not decode as cells.
    #[error("undecodable input: {0}")]
    Undecodable(crate::wire::Error),
    /// A cell arrived on an outbound channel before its connection was up.
    #[error("cell before the connection was up")]
    CellBeforeConnected,
    /// A second VERSIONS cell.
    #[error("second VERSIONS cell")]
    DuplicateVersions,
    /// A VERSIONS cell that does not parse.
    #[error("malformed VERSIONS cell")]
    MalformedVersions,
    /// No link protocol version both sides speak.
    #[error("no common link protocol version")]
    NoCommonVersion,
    /// A handshake cell (CERTS, NETINFO, ...) before VERSIONS.
    #[error("{cmd} before VERSIONS")]
    BeforeVersions {
        /// The early cell's command.
        cmd: ChanCmd,
    },
    /// A NETINFO cell that does not parse.
    #[error("malformed NETINFO cell")]
    MalformedNetinfo,
    /// A cell that has no place in the link handshake (CREATE2 before NETINFO, ...).
    #[error("unexpected {cmd} during the link handshake")]
    UnexpectedHandshakeCell {
        /// The cell's command.
        cmd: ChanCmd,
    },
    /// A variable-length cell other than VPADDING after the handshake.
    #[error("variable-length {cmd} cell on an open channel")]
    VarCellOnOpenChannel {
        /// The cell's command.
        cmd: ChanCmd,
    },
    /// NETINFO after the handshake.
    #[error("NETINFO on an open channel")]
    NetinfoOnOpenChannel,
    /// A circuit cell with circuit id 0.
    #[error("{cmd} with circuit id 0")]
    CircIdZero {
        /// The cell's command.
        cmd: ChanCmd,
    },
    /// A CREATE cell for a circuit id that is in use on the channel.
    #[error("{cmd} for a circuit id in use")]
    CircIdInUse {
        /// The cell's command.
        cmd: ChanCmd,
    },
}

impl HasKind for LinkError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocol
    }
}

/// What the relay does after a handshake cell was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkStep {
    /// Nothing to send: wait for the next cell.
    Wait,
    /// We are the responder and the peer's VERSIONS arrived: send our VERSIONS and NETINFO.
    Respond,
    /// The link is open. `send_netinfo`: we are the initiator and owe our NETINFO.
    Opened {
        /// Whether our NETINFO must go out now.
        send_netinfo: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    /// Outbound: waiting for the TCP connection.
    Connecting,
    /// VERSIONS / NETINFO exchange in progress.
    Handshaking {
        /// Negotiated version, once the peer's VERSIONS arrived.
        version: Option<u16>,
        /// Whether our VERSIONS went out.
        sent_versions: bool,
    },
    /// Circuit cells flow.
    Open {
        /// The negotiated link protocol version.
        version: u16,
    },
}

/// The link handshake state of one channel.
#[derive(Debug)]
pub(crate) struct Link {
    /// We opened the TCP connection.
    initiator: bool,
    state: LinkState,
}

impl Link {
    /// A channel we are opening: waits for the connection.
    pub(crate) fn outbound() -> Self {
        Link {
            initiator: true,
            state: LinkState::Connecting,
        }
    }

    /// A channel a peer opened: waits for its VERSIONS.
    pub(crate) fn inbound() -> Self {
        Link {
            initiator: false,
            state: LinkState::Handshaking {
                version: None,
                sent_versions: false,
            },
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

    /// The negotiated version, once the peer's VERSIONS arrived.
    pub(crate) fn version(&self) -> Option<u16> {
        match self.state {
            LinkState::Connecting => None,
            LinkState::Handshaking { version, .. } => version,
            LinkState::Open { version } => Some(version),
        }
    }

    /// Our outbound connection is up. True when our VERSIONS must be sent now (false if
    /// the channel was not waiting for its connection).
    pub(crate) fn connected(&mut self) -> bool {
        if self.state != LinkState::Connecting {
            return false;
        }
        self.state = LinkState::Handshaking {
            version: None,
            sent_versions: true,
        };
        true
    }

    /// Handles one cell of a channel that is not open yet.
    pub(crate) fn handle(&mut self, cell: &ChanCell) -> Result<LinkStep, LinkError> {
        let LinkState::Handshaking {
            version,
            sent_versions,
        } = &mut self.state
        else {
            return match self.state {
                LinkState::Connecting => Err(LinkError::CellBeforeConnected),
                _ => Err(LinkError::UnexpectedHandshakeCell {
                    cmd: cell_cmd(cell),
                }),
            };
        };
        match cell {
            ChanCell::Var(v) if v.cmd == ChanCmd::VERSIONS => {
                if version.is_some() {
                    return Err(LinkError::DuplicateVersions);
                }
                let theirs =
                    Versions::parse(&v.payload).map_err(|_| LinkError::MalformedVersions)?;
                *version = Some(negotiate(&theirs.versions).ok_or(LinkError::NoCommonVersion)?);
                if *sent_versions {
                    return Ok(LinkStep::Wait);
                }
                // Responder: our VERSIONS, then NETINFO (no CERTS / AUTH_CHALLENGE: no TLS).
                *sent_versions = true;
                Ok(LinkStep::Respond)
            }
            ChanCell::Var(v)
                if matches!(
                    v.cmd,
                    ChanCmd::CERTS
                        | ChanCmd::AUTH_CHALLENGE
                        | ChanCmd::AUTHENTICATE
                        | ChanCmd::VPADDING
                ) =>
            {
                // C Tor responders send CERTS and AUTH_CHALLENGE; we have no TLS to bind
                // them to (see the module docs).
                match version {
                    Some(_) => Ok(LinkStep::Wait),
                    None => Err(LinkError::BeforeVersions { cmd: v.cmd }),
                }
            }
            ChanCell::Fixed(c) if c.cmd == ChanCmd::NETINFO => {
                let Some(negotiated) = *version else {
                    return Err(LinkError::BeforeVersions { cmd: c.cmd });
                };
                Netinfo::parse(&c.body).map_err(|_| LinkError::MalformedNetinfo)?;
                self.state = LinkState::Open {
                    version: negotiated,
                };
                Ok(LinkStep::Opened {
                    send_netinfo: self.initiator,
                })
            }
            ChanCell::Fixed(c) if c.cmd == ChanCmd::PADDING => Ok(LinkStep::Wait),
            other => Err(LinkError::UnexpectedHandshakeCell {
                cmd: cell_cmd(other),
            }),
        }
    }
}

fn cell_cmd(cell: &ChanCell) -> ChanCmd {
    match cell {
        ChanCell::Fixed(c) => c.cmd,
        ChanCell::Var(v) => v.cmd,
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

/// Appends our VERSIONS cell (2-byte circuit id, as every VERSIONS) to `out`.
pub(crate) fn append_versions(out: &mut Vec<u8>) {
    let v = Versions {
        versions: LINK_VERSIONS.to_vec(),
    };
    v.to_var_cell().append_to(out, 2);
}

/// Our NETINFO cell for a peer at `peer`, announcing `mine`.
pub(crate) fn netinfo_cell(peer: Option<SocketAddr>, mine: &[IpAddr]) -> Cell {
    let mut cell = Cell::new(0, ChanCmd::NETINFO);
    // The sans-IO core has no wall clock: time 0, which C Tor accepts (spec: "Details confirmed").
    let netinfo = Netinfo {
        time: 0,
        other_addr: peer.map(|p| p.ip()),
        my_addrs: mine.to_vec(),
    };
    // Our own addresses always fit: NETINFO has room for far more than a relay announces.
    let _ = netinfo.emit(&mut cell.body[..]);
    cell
}
