//! The streams of one circuit endpoint (the origin or the exit), by stream id.
//!
//! Received bytes wait in a stream's receive buffer until the application reads them.
//! Those buffers count toward `MaxMemInQueues`: every change to one goes through the
//! relay's [`QueueMemory`], which is why the buffer is reachable only through this map.

use std::collections::{BTreeMap, VecDeque};

use crate::time::Instant;
use crate::wire::StreamId;

use super::flow::StreamFlowImpl;
use super::memory::QueueMemory;

/// Where a stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Origin: BEGIN sent, waiting for CONNECTED. Exit: waiting for the runtime's connect.
    Connecting,
    /// Data flows both ways.
    Open,
    /// END received (origin or exit): received bytes may still be read.
    Ended,
    /// Exit: a RESOLVE waiting for the runtime's lookup. No stream is made (tor-spec 6.4);
    /// the entry only holds the id until RESOLVED goes out.
    Resolving,
}

/// One stream.
pub(crate) struct Stream {
    pub(crate) state: StreamState,
    /// Stream-level windows.
    pub(crate) flow: StreamFlowImpl,
    /// Bytes received and not yet read by the application.
    /// INVARIANT: holds at most `STREAM_WINDOW_START` cells' worth (the window bounds it).
    rx: VecDeque<u8>,
    /// When the oldest byte still in `rx` arrived, at the latest: set when `rx` stops being
    /// empty (so it may be older than the oldest byte left after a partial read; the OOM
    /// handler then treats the stream as a little older than it is).
    rx_since: Option<Instant>,
    /// `handle_stream_data` was refused for lack of window: tell the runtime when it opens.
    pub(crate) blocked: bool,
    /// A StreamEnded event was already emitted.
    pub(crate) ended_reported: bool,
}

impl Stream {
    fn new(state: StreamState) -> Self {
        Stream {
            state,
            flow: StreamFlowImpl::default(),
            rx: VecDeque::new(),
            rx_since: None,
            blocked: false,
            ended_reported: false,
        }
    }

    /// Bytes waiting to be read.
    pub(crate) fn buffered(&self) -> usize {
        self.rx.len()
    }

    /// The waiting bytes, in order (the ring buffer's two halves).
    pub(crate) fn rx_slices(&self) -> (&[u8], &[u8]) {
        self.rx.as_slices()
    }

    /// Appends received bytes, counted in `mem`.
    pub(crate) fn buffer(&mut self, now: Instant, data: &[u8], mem: &mut QueueMemory) {
        if data.is_empty() {
            return;
        }
        if self.rx.is_empty() {
            self.rx_since = Some(now);
        }
        self.rx.extend(data);
        mem.stream_buffered(data.len());
    }

    /// Drops the first `n` waiting bytes (the application read them).
    pub(crate) fn consume(&mut self, n: usize, mem: &mut QueueMemory) {
        let n = n.min(self.rx.len());
        self.rx.drain(..n);
        mem.stream_gone(n);
        if self.rx.is_empty() {
            self.rx_since = None;
        }
    }

    /// When the oldest waiting byte arrived (at the latest), if any waits.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.rx_since
    }
}

/// The streams of one circuit.
pub(crate) struct StreamMap {
    streams: BTreeMap<StreamId, Stream>,
    /// Origin: next stream id to try.
    next_id: u16,
}

impl Default for StreamMap {
    fn default() -> Self {
        StreamMap {
            streams: BTreeMap::new(),
            next_id: 1,
        }
    }
}

impl StreamMap {
    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    pub(crate) fn contains(&self, id: StreamId) -> bool {
        self.streams.contains_key(&id)
    }

    pub(crate) fn get(&self, id: StreamId) -> Option<&Stream> {
        self.streams.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: StreamId) -> Option<&mut Stream> {
        self.streams.get_mut(&id)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (StreamId, &mut Stream)> {
        self.streams.iter_mut().map(|(&id, s)| (id, s))
    }

    /// Adds a stream in `state` under `id` (which the caller checked is free).
    pub(crate) fn insert(&mut self, id: StreamId, state: StreamState) {
        self.streams.insert(id, Stream::new(state));
    }

    /// Origin: a free stream id, if any is left.
    pub(crate) fn alloc_id(&mut self) -> Option<StreamId> {
        for _ in 0..=u16::MAX {
            let candidate = StreamId::new(self.next_id);
            self.next_id = self.next_id.wrapping_add(1);
            if let Some(id) = candidate.filter(|id| !self.streams.contains_key(id)) {
                return Some(id);
            }
        }
        None
    }

    /// Removes a stream; its unread bytes are dropped from `mem`.
    pub(crate) fn remove(&mut self, id: StreamId, mem: &mut QueueMemory) -> Option<Stream> {
        let mut s = self.streams.remove(&id)?;
        s.consume(usize::MAX, mem);
        Some(s)
    }

    /// Removes every stream (the circuit is going away); unread bytes are dropped from
    /// `mem`. Yields them with their ids, in id order.
    pub(crate) fn remove_all(
        &mut self,
        mem: &mut QueueMemory,
    ) -> impl Iterator<Item = (StreamId, Stream)> {
        let mut all = std::mem::take(&mut self.streams);
        for s in all.values_mut() {
            s.consume(usize::MAX, mem);
        }
        all.into_iter()
    }

    /// When the oldest unread byte of any stream arrived, if any waits.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.streams.values().filter_map(Stream::oldest).min()
    }

    /// Unread bytes on all streams.
    pub(crate) fn buffered(&self) -> usize {
        self.streams.values().map(Stream::buffered).sum()
    }
}
