//! Circuits as this node sees them: up to two channel sides, crypto, queues, windows and
//! streams; and the table of all circuits of a `Relay`.

use crate::client::OriginCirc;
use crate::crypto::relay_crypto::RelayLayer;
use crate::time::Instant;
use crate::wire::CircId;

use super::flow::CircFlow;
use super::ids::{ChanId, CircHandle};
use super::queue::CellQueue;
use super::streammap::StreamMap;
use crate::slab::GenSlab;

/// At most this many RELAY_EARLY cells per circuit (tor-spec).
pub(crate) const MAX_RELAY_EARLY: u8 = 8;

/// Which way a cell travels: Forward = away from the origin (queued toward `next`),
/// Backward = toward the origin (queued toward `prev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dir {
    Forward,
    Backward,
}

impl Dir {
    /// The other direction.
    pub(crate) fn reverse(self) -> Dir {
        match self {
            Dir::Forward => Dir::Backward,
            Dir::Backward => Dir::Forward,
        }
    }
}

/// One side of a circuit: the channel and the circuit id used on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub(crate) chan: ChanId,
    pub(crate) id: CircId,
}

/// Which end of a circuit is acting: the origin (talking to hop `n`), or the last relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Origin(usize),
    Exit,
}

/// An EXTEND2 this relay is carrying out.
pub(crate) struct PendingExtend {
    pub(crate) htype: u16,
    pub(crate) hdata: Vec<u8>,
}

pub(crate) enum CircKind {
    /// We relay for someone else; `layer` is our hop's crypto.
    Relay {
        layer: Box<RelayLayer>,
        extend: Option<PendingExtend>,
    },
    /// We are the origin.
    Origin(Box<OriginCirc>),
}

pub(crate) struct Circuit {
    /// The side toward the origin (None for origin circuits).
    pub(crate) prev: Option<Hop>,
    /// The side toward the exit, once CREATE2 has been sent on it.
    pub(crate) next: Option<Hop>,
    /// The channel whose opening this circuit waits for (to send CREATE2 on it).
    pub(crate) waiting_on: Option<ChanId>,
    pub(crate) kind: CircKind,
    /// Cells queued toward `prev` / toward `next`.
    pub(crate) to_prev: CellQueue,
    pub(crate) to_next: CellQueue,
    pub(crate) relay_early_seen: u8,
    /// Circuit-level windows (used at the two endpoints only).
    pub(crate) flow: CircFlow,
    pub(crate) streams: StreamMap,
}

impl Circuit {
    pub(crate) fn new(kind: CircKind, prev: Option<Hop>) -> Self {
        Circuit {
            prev,
            next: None,
            waiting_on: None,
            kind,
            to_prev: CellQueue::default(),
            to_next: CellQueue::default(),
            relay_early_seen: 0,
            flow: CircFlow::default(),
            streams: StreamMap::default(),
        }
    }

    pub(crate) fn queue(&self, dir: Dir) -> &CellQueue {
        match dir {
            Dir::Forward => &self.to_next,
            Dir::Backward => &self.to_prev,
        }
    }

    pub(crate) fn queue_mut(&mut self, dir: Dir) -> &mut CellQueue {
        match dir {
            Dir::Forward => &mut self.to_next,
            Dir::Backward => &mut self.to_prev,
        }
    }

    /// Which way a cell arriving from `hop` travels on this circuit (`None`: `hop` is not
    /// one of its sides).
    pub(crate) fn dir_from(&self, hop: Hop) -> Option<Dir> {
        if self.prev == Some(hop) {
            Some(Dir::Forward)
        } else if self.next == Some(hop) {
            Some(Dir::Backward)
        } else {
            None
        }
    }

    /// The side a cell travelling in `dir` leaves on.
    pub(crate) fn out_hop(&self, dir: Dir) -> Option<Hop> {
        match dir {
            Dir::Forward => self.next,
            Dir::Backward => self.prev,
        }
    }

    /// Whether this is an origin circuit whose every hop is built.
    pub(crate) fn is_built_origin(&self) -> bool {
        matches!(&self.kind, CircKind::Origin(o) if o.is_built())
    }

    /// When the oldest byte this circuit holds (queued cells, unread stream bytes) arrived.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        [
            self.to_prev.oldest(),
            self.to_next.oldest(),
            self.streams.oldest(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// All circuits of a relay.
#[derive(Default)]
pub(crate) struct Circuits {
    slab: GenSlab<Circuit>,
}

impl Circuits {
    pub(crate) fn insert(&mut self, c: Circuit) -> CircHandle {
        CircHandle(self.slab.insert(c))
    }

    pub(crate) fn remove(&mut self, circ: CircHandle) -> Option<Circuit> {
        self.slab.remove(circ.0)
    }

    pub(crate) fn get(&self, circ: CircHandle) -> Option<&Circuit> {
        self.slab.get(circ.0)
    }

    pub(crate) fn get_mut(&mut self, circ: CircHandle) -> Option<&mut Circuit> {
        self.slab.get_mut(circ.0)
    }

    pub(crate) fn contains(&self, circ: CircHandle) -> bool {
        self.slab.contains(circ.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (CircHandle, &Circuit)> {
        self.slab.iter().map(|(k, c)| (CircHandle(k), c))
    }

    /// Every circuit handle (a snapshot, for loops that close circuits).
    pub(crate) fn handles(&self) -> Vec<CircHandle> {
        self.slab.keys().map(CircHandle).collect()
    }

    /// Circuits holding queued bytes, oldest byte first: the OOM handler's victims.
    pub(crate) fn by_oldest_byte(&self) -> Vec<(Instant, CircHandle)> {
        let mut victims: Vec<(Instant, CircHandle)> = self
            .iter()
            .filter_map(|(circ, c)| c.oldest().map(|t| (t, circ)))
            .collect();
        victims.sort();
        victims
    }
}
