//! One circuit as this node sees it: up to two channel sides, crypto, queues, windows.

use std::collections::{BTreeMap, VecDeque};

use crate::client::OriginCirc;
use crate::crypto::relay_crypto::RelayLayer;
use crate::wire::{CircId, StreamId};

use super::queue::CellQueue;
use super::stream::Stream;
use super::ChanId;

/// Which way a cell travels: Forward = away from the origin (queued toward `next`),
/// Backward = toward the origin (queued toward `prev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dir {
    Forward,
    Backward,
}

/// One side of a circuit: the channel and the circuit id used on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub chan: ChanId,
    pub id: CircId,
}

/// Circuit-level SENDME windows (tor-spec: 1000 cells, +100 per SENDME). Only the two
/// endpoints of a circuit (origin and last hop) use them.
pub(crate) const CIRC_WINDOW_START: u16 = 1000;
pub(crate) const CIRC_WINDOW_INCREMENT: u16 = 100;
/// Stream-level windows (500 cells, +50 per stream SENDME).
pub(crate) const STREAM_WINDOW_START: u16 = 500;
pub(crate) const STREAM_WINDOW_INCREMENT: u16 = 50;
/// At most this many RELAY_EARLY cells per circuit (tor-spec).
pub(crate) const MAX_RELAY_EARLY: u8 = 8;

/// An EXTEND2 this relay is carrying out.
pub(crate) struct PendingExtend {
    pub htype: u16,
    pub hdata: Vec<u8>,
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

/// Endpoint flow-control state.
pub(crate) struct Flow {
    /// DATA cells we may still send before a circuit SENDME.
    pub package_window: u16,
    /// DATA cells the peer may still send us.
    pub deliver_window: u16,
    /// DATA cells sent / received so far (the 100th, 200th, ... carry SENDME digests).
    pub data_sent: u64,
    pub data_received: u64,
    /// Digests we expect back in authenticated SENDMEs, oldest first.
    pub expected_sendme: VecDeque<[u8; 20]>,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            package_window: CIRC_WINDOW_START,
            deliver_window: CIRC_WINDOW_START,
            data_sent: 0,
            data_received: 0,
            expected_sendme: VecDeque::new(),
        }
    }
}

pub(crate) struct Circuit {
    /// The side toward the origin (None for origin circuits).
    pub prev: Option<Hop>,
    /// The side toward the exit, once CREATE2 has been sent on it.
    pub next: Option<Hop>,
    /// The channel whose opening this circuit waits for (to send CREATE2 on it).
    pub waiting_on: Option<ChanId>,
    pub kind: CircKind,
    /// Cells queued toward `prev` / toward `next`.
    pub to_prev: CellQueue,
    pub to_next: CellQueue,
    pub relay_early_seen: u8,
    pub flow: Flow,
    pub streams: BTreeMap<StreamId, Stream>,
    /// Origin: next stream id to try.
    pub next_stream_id: u16,
}

impl Circuit {
    pub fn new(kind: CircKind, prev: Option<Hop>) -> Self {
        Circuit {
            prev,
            next: None,
            waiting_on: None,
            kind,
            to_prev: CellQueue::default(),
            to_next: CellQueue::default(),
            relay_early_seen: 0,
            flow: Flow::default(),
            streams: BTreeMap::new(),
            next_stream_id: 1,
        }
    }

    pub fn queue_mut(&mut self, dir: Dir) -> &mut CellQueue {
        match dir {
            Dir::Forward => &mut self.to_next,
            Dir::Backward => &mut self.to_prev,
        }
    }

    /// The side a cell travelling in `dir` leaves on.
    pub fn out_hop(&self, dir: Dir) -> Option<Hop> {
        match dir {
            Dir::Forward => self.next,
            Dir::Backward => self.prev,
        }
    }
}
