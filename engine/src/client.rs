//! The circuit origin: the per-hop state of circuits this node builds itself.
//!
//! A client builds a circuit hop by hop: CREATE2 to the first hop, then one EXTEND2 (in a
//! RELAY_EARLY cell) per further hop, each answered with the server half of an ntor handshake.
//! Forward cells are encrypted once per hop, last hop first; backward cells have one layer
//! removed per hop until one hop recognizes the cell.
//!
//! ```text
//!   client --CREATE2--> guard                      hops = [guard]
//!   client --RELAY_EARLY(EXTEND2)--> guard --CREATE2--> middle
//!   client <--RELAY(EXTENDED2)------ guard <--CREATED2-- middle   hops = [guard, middle]
//!   ... until hops.len() == path.len(): CircuitBuilt
//! ```

use std::net::SocketAddr;

use crate::crypto::ntor::{self, NtorClient};
use crate::crypto::relay_crypto::ClientLayer;
use crate::crypto::{HandshakeError, RelayId};
use crate::time::Instant;
use crate::wire::CELL_BODY_LEN;
use crate::{ErrorKind, HasKind};

/// What the origin needs to know about one hop of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopSpec {
    /// The relay's RSA identity digest.
    pub id: RelayId,
    /// The relay's Ed25519 identity: the channel to it must prove it, and EXTEND2 names it
    /// (link specifier type 3).
    pub ed_id: crate::crypto::identity::Ed25519Id,
    /// The relay's ntor onion key.
    pub ntor_key: [u8; 32],
    /// The relay's OR address.
    pub addr: SocketAddr,
}

/// Why an origin circuit failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitFailure {
    /// The channel to the first hop could not be opened or closed.
    ChannelFailed,
    /// A hop's handshake reply did not verify (wrong AUTH: not the relay we meant).
    HandshakeFailed {
        /// Index of the hop (0 = first).
        hop: usize,
        /// What was wrong.
        error: HandshakeError,
    },
    /// A DESTROY arrived with this reason byte.
    Destroyed(u8),
    /// The peer broke the protocol (unrecognized cell, window violation, ...).
    Protocol,
    /// Closed locally (by `close_circuit` or shutdown).
    Closed,
    /// The out-of-memory handler closed it.
    OutOfMemory,
}

/// Why a hop's handshake reply was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HopError {
    /// A reply arrived while no handshake was pending.
    #[error("no handshake pending")]
    NotPending,
    /// The reply did not verify (wrong AUTH: not the relay we meant).
    #[error("hop {hop} failed its handshake: {error}")]
    Failed {
        /// Index of the hop (0 = first).
        hop: usize,
        /// What was wrong.
        error: HandshakeError,
    },
}

impl HasKind for HopError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocol
    }
}

impl From<HopError> for CircuitFailure {
    fn from(e: HopError) -> Self {
        match e {
            HopError::NotPending => CircuitFailure::Protocol,
            HopError::Failed { hop, error } => CircuitFailure::HandshakeFailed { hop, error },
        }
    }
}

/// Origin-side state of one circuit.
pub(crate) struct OriginCirc {
    pub(crate) path: Vec<HopSpec>,
    /// Crypto layers of the hops whose handshake has completed, first hop first.
    /// INVARIANT: `hops.len() <= path.len()`.
    pub(crate) hops: Vec<ClientLayer>,
    /// The handshake in progress, for hop `hops.len()`.
    pub(crate) pending: Option<NtorClient>,
    /// The client handshake data sent (or to be sent) for hop `hops.len()`.
    pub(crate) pending_hdata: [u8; ntor::CLIENT_HDATA_LEN],
    pub(crate) started: Instant,
}

impl OriginCirc {
    pub(crate) fn new(path: Vec<HopSpec>, started: Instant) -> Self {
        OriginCirc {
            path,
            hops: Vec::new(),
            pending: None,
            pending_hdata: [0; ntor::CLIENT_HDATA_LEN],
            started,
        }
    }

    pub(crate) fn is_built(&self) -> bool {
        self.hops.len() == self.path.len()
    }

    /// Starts the ntor handshake with the next hop; returns its client data.
    pub(crate) fn start_next_hop<R: rand::RngCore + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Option<[u8; ntor::CLIENT_HDATA_LEN]> {
        let hop = self.path.get(self.hops.len())?;
        let (state, hdata) = ntor::client_create(rng, &hop.id, &hop.ntor_key);
        self.pending = Some(state);
        self.pending_hdata = hdata;
        Some(hdata)
    }

    /// Hops whose handshake has completed.
    pub(crate) fn hops_done(&self) -> usize {
        self.hops.len()
    }

    /// Completes the pending handshake with the server's reply.
    pub(crate) fn finish_hop(&mut self, server_hdata: &[u8]) -> Result<(), HopError> {
        let hop = self.hops.len();
        let state = self.pending.take().ok_or(HopError::NotPending)?;
        let keys = state
            .finish(server_hdata)
            .map_err(|error| HopError::Failed { hop, error })?;
        self.hops.push(ClientLayer::new(&keys));
        Ok(())
    }

    /// Encrypts a relay cell body addressed to hop `target`: that hop's layer (with its
    /// digest) first, then every earlier hop's, so the first hop's layer is outermost.
    pub(crate) fn encrypt_forward(&mut self, target: usize, body: &mut [u8; CELL_BODY_LEN]) {
        let Some((last, earlier)) = self
            .hops
            .get_mut(..=target)
            .and_then(|h| h.split_last_mut())
        else {
            return;
        };
        last.originate_forward(body);
        for layer in earlier.iter_mut().rev() {
            layer.encrypt_forward(body);
        }
    }

    /// Removes layers from a backward cell until a hop recognizes it; returns that hop.
    pub(crate) fn decrypt_backward(&mut self, body: &mut [u8; CELL_BODY_LEN]) -> Option<usize> {
        self.hops
            .iter_mut()
            .position(|layer| layer.decrypt_backward(body))
    }
}
