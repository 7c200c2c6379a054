//! Handles the runtime holds: channels, circuits and streams of one `Relay`.
//!
//! Channels and circuits are generational slab keys, so a stale handle (a stream whose
//! circuit died, a channel closed meanwhile) finds nothing instead of someone else's state.

use crate::wire::StreamId;

use crate::slab::Key;

/// Handle of a channel (one TCP connection to a peer) on this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChanId(pub(crate) Key);

impl ChanId {
    /// Dense slot index, for the runtime's side tables.
    pub fn index(self) -> u32 {
        self.0.index()
    }
}

/// Handle of a circuit on this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircHandle(pub(crate) Key);

/// Handle of a stream: its circuit and its stream id on that circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamHandle {
    /// The circuit carrying the stream.
    pub circ: CircHandle,
    /// The stream id (chosen by the origin).
    pub id: StreamId,
}
