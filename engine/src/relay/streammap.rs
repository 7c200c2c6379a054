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
        self.consumed(n, mem);
    }

    /// Moves the waiting bytes to the end of `out`; returns how many. An empty `out` takes
    /// them all by exchanging heap blocks with the buffer (the usual case at an edge whose
    /// socket keeps up): no byte is copied, and the buffer goes on in `out`'s empty block.
    /// Otherwise at most `max` bytes are copied. An exchange is not bounded by `max`: the
    /// stream window bounds the buffer (`STREAM_WINDOW_START` cells).
    pub(crate) fn move_into(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        mem: &mut QueueMemory,
    ) -> usize {
        let n;
        if out.is_empty() && !self.rx.is_empty() {
            n = self.rx.len();
            // O(1) while the bytes start the block, as they do in a buffer that was only
            // appended to since it was last exchanged or emptied; otherwise the conversion
            // moves them once, as a copy would.
            let mut full = Vec::from(std::mem::take(&mut self.rx));
            std::mem::swap(out, &mut full);
            full.clear();
            self.rx = VecDeque::from(full);
        } else {
            n = self.rx.len().min(max);
            let (front, back) = self.rx.as_slices();
            let a = front.len().min(n);
            out.extend_from_slice(&front[..a]);
            out.extend_from_slice(&back[..n - a]);
            self.rx.drain(..n);
        }
        self.consumed(n, mem);
        n
    }

    fn consumed(&mut self, n: usize, mem: &mut QueueMemory) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(bytes: &[u8], mem: &mut QueueMemory) -> Stream {
        let mut s = Stream::new(StreamState::Open);
        s.buffer(Instant::ZERO, bytes, mem);
        s
    }

    #[test]
    fn an_empty_out_takes_the_buffer_without_a_copy() {
        let mut mem = QueueMemory::new(1 << 20);
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let mut s = filled(&data, &mut mem);
        let block = s.rx_slices().0.as_ptr();
        let mut out = Vec::with_capacity(4096);
        let out_block = out.as_ptr();

        assert_eq!(s.move_into(&mut out, 64 << 10, &mut mem), 3000);
        assert_eq!(out, data);
        assert_eq!(out.as_ptr(), block, "the bytes did not move");
        assert_eq!((s.buffered(), mem.stream_bytes(), s.oldest()), (0, 0, None));

        // The stream goes on in `out`'s old block, from its start.
        s.buffer(Instant::ZERO, b"next", &mut mem);
        assert_eq!(s.rx_slices(), (&b"next"[..], &[][..]));
        assert_eq!(s.rx_slices().0.as_ptr(), out_block);
    }

    #[test]
    fn a_partly_filled_out_gets_a_copy_of_at_most_max() {
        let mut mem = QueueMemory::new(1 << 20);
        let mut s = filled(b"abcdefgh", &mut mem);
        let mut out = b"xy".to_vec();
        assert_eq!(s.move_into(&mut out, 3, &mut mem), 3);
        assert_eq!(out, b"xyabc");
        assert_eq!((s.buffered(), mem.stream_bytes()), (5, 5));
        assert!(s.oldest().is_some(), "bytes still wait");

        // An exchange takes everything, whatever `max` says.
        let mut empty = Vec::new();
        assert_eq!(s.move_into(&mut empty, 2, &mut mem), 5);
        assert_eq!(empty, b"defgh");
        assert_eq!((s.buffered(), mem.stream_bytes(), s.oldest()), (0, 0, None));
        assert_eq!(s.move_into(&mut out, 100, &mut mem), 0);
        assert_eq!(s.move_into(&mut Vec::new(), 100, &mut mem), 0);
    }

    #[test]
    fn an_empty_buffer_keeps_its_block() {
        let mut mem = QueueMemory::new(1 << 20);
        let mut s = filled(b"abc", &mut mem);
        s.consume(3, &mut mem);
        let mut out = Vec::new();
        assert_eq!(s.move_into(&mut out, 100, &mut mem), 0);
        assert_eq!(out.capacity(), 0, "nothing to move, no blocks exchanged");
    }

    #[test]
    fn bytes_that_wrapped_the_ring_come_out_in_order() {
        let mut mem = QueueMemory::new(1 << 20);
        let mut s = Stream::new(StreamState::Open);
        let mut sent = Vec::new();
        let mut got = Vec::new();
        let (mut wrapped, mut exchanged_wrapped) = (false, false);
        for round in 0..50u8 {
            let chunk: Vec<u8> = (0..97)
                .map(|i| round.wrapping_mul(31).wrapping_add(i))
                .collect();
            s.buffer(Instant::ZERO, &chunk, &mut mem);
            sent.extend_from_slice(&chunk);
            let is_wrapped = !s.rx_slices().1.is_empty();
            wrapped |= is_wrapped;
            // Copies behind a byte already queued move the ring's head, so the bytes appended
            // after them wrap around the block the last exchange left (256 bytes). Every
            // fifth round is an exchange, which meets the ring wrapped at times.
            let queued = usize::from(round % 5 != 4);
            let mut out = Vec::with_capacity(256);
            out.resize(queued, 0xEE);
            let n = s.move_into(&mut out, 90, &mut mem);
            exchanged_wrapped |= queued == 0 && is_wrapped;
            assert_eq!(out.len(), queued + n);
            got.extend_from_slice(&out[queued..]);
        }
        let mut out = Vec::new();
        s.move_into(&mut out, usize::MAX, &mut mem);
        got.extend_from_slice(&out);
        assert_eq!(got, sent);
        assert_eq!(mem.stream_bytes(), 0);
        assert!(wrapped, "the ring wrapped at least once");
        assert!(exchanged_wrapped, "an exchange met a wrapped ring");
    }
}
