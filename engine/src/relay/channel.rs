//! One channel: a TCP connection to a peer, its link handshake state, and its output.

use std::collections::HashMap;

use kistrel_sched::{CircuitMux, EwmaConfig};
use std::net::SocketAddr;

use crate::crypto::RelayId;
use crate::wire::{
    Cell, CellDecoder, ChanCmd, CircId, Destroy, DestroyReason, Versions, CELL_BODY_LEN,
};

use super::circuit::Dir;
use super::dos::{CircuitCreationLimit, CreateBucket};
use super::CircHandle;
use crate::time::Instant;

/// Link protocol versions we speak (tor-spec: v4 and v5 use 4-byte circuit ids).
pub(crate) const LINK_VERSIONS: [u16; 2] = [4, 5];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChanState {
    /// Outbound: waiting for the TCP connection.
    Connecting,
    /// VERSIONS / NETINFO exchange in progress.
    Handshaking,
    /// Link is up: circuit cells flow.
    Open,
}

pub(crate) struct Channel {
    pub state: ChanState,
    /// We opened the TCP connection (we set the top bit of circuit ids we allocate).
    pub initiator: bool,
    pub peer: Option<SocketAddr>,
    /// For channels we opened: the (address, identity) we opened it to.
    pub target: Option<(SocketAddr, RelayId)>,
    pub decoder: CellDecoder,
    /// Negotiated link version, once VERSIONS arrived.
    pub version: Option<u16>,
    /// Whether we sent our VERSIONS.
    pub sent_versions: bool,
    /// Circuits on this channel by the id used on it.
    pub circs: HashMap<CircId, CircHandle>,
    /// Circuits waiting for this channel to open to send their CREATE2.
    pub waiting: Vec<CircHandle>,
    /// Link-control bytes (handshake cells, DESTROYs of freed circuits): sent before
    /// circuit cells. Always whole cells.
    pub ctrl: Vec<u8>,
    /// Circuit queues with cells for this channel, lowest EWMA first.
    /// INVARIANT: (c, d) is active here iff circuit c's queue d has cells and `in_mux` set.
    pub mux: CircuitMux<(CircHandle, Dir)>,
    /// INVARIANT: set iff this channel is in the relay's ready list.
    pub in_ready: bool,
    /// Circuit-creation tokens of this peer (`None` when the relay has no limit).
    pub create_bucket: Option<CreateBucket>,
}

impl Channel {
    pub fn new(
        initiator: bool,
        peer: Option<SocketAddr>,
        target: Option<(SocketAddr, RelayId)>,
        state: ChanState,
        ewma: &EwmaConfig,
        now: Instant,
        create_limit: Option<&CircuitCreationLimit>,
    ) -> Self {
        Channel {
            state,
            initiator,
            peer,
            target,
            decoder: super::fresh_decoder(),
            version: None,
            sent_versions: false,
            circs: HashMap::new(),
            waiting: Vec::new(),
            ctrl: Vec::new(),
            mux: CircuitMux::new(ewma),
            in_ready: false,
            create_bucket: create_limit.map(|l| CreateBucket::new(now, l)),
        }
    }

    pub fn has_output(&self) -> bool {
        !self.ctrl.is_empty() || !self.mux.is_empty()
    }

    pub fn send_versions(&mut self) {
        let v = Versions {
            versions: LINK_VERSIONS.to_vec(),
        };
        v.to_var_cell().append_to(&mut self.ctrl, 2);
        self.sent_versions = true;
    }

    pub fn queue_ctrl_cell(&mut self, cell: &Cell) {
        cell.append_to(&mut self.ctrl);
    }

    pub fn queue_destroy(&mut self, id: CircId, reason: DestroyReason) {
        let mut cell = Cell::new(id.get(), ChanCmd::DESTROY);
        // A one-byte body cannot fail to fit.
        let _ = Destroy { reason }.emit(&mut cell.body[..]);
        self.queue_ctrl_cell(&cell);
    }

    /// Moves all control bytes to `out` (they are few and must not wait behind data).
    pub fn take_ctrl(&mut self, out: &mut Vec<u8>, _max: usize) -> usize {
        let n = self.ctrl.len();
        out.append(&mut self.ctrl);
        n
    }
}

/// Highest link version both sides offer.
pub(crate) fn negotiate(theirs: &[u16]) -> Option<u16> {
    theirs
        .iter()
        .copied()
        .filter(|v| LINK_VERSIONS.contains(v))
        .max()
}

const _: () = assert!(CELL_BODY_LEN == 509);
