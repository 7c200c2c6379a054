//! A stream on a circuit endpoint (the origin or the exit).

use std::collections::VecDeque;

use super::circuit::STREAM_WINDOW_START;

/// Where a stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Origin: BEGIN sent, waiting for CONNECTED. Exit: waiting for the runtime's connect.
    Connecting,
    /// Data flows both ways.
    Open,
    /// END received (origin or exit): received bytes may still be read.
    Ended,
}

pub(crate) struct Stream {
    pub state: StreamState,
    /// DATA cells we may still send on this stream before a stream SENDME.
    pub package_window: u16,
    /// DATA cells the peer may still send.
    pub deliver_window: u16,
    /// Bytes received and not yet read by the application.
    /// INVARIANT: holds at most `STREAM_WINDOW_START` cells' worth (the window bounds it).
    pub rx: VecDeque<u8>,
    /// `handle_stream_data` was refused for lack of window: tell the runtime when it opens.
    pub blocked: bool,
    /// A StreamEnded event was already emitted.
    pub ended_reported: bool,
}

impl Stream {
    pub fn new(state: StreamState) -> Self {
        Stream {
            state,
            package_window: STREAM_WINDOW_START,
            deliver_window: STREAM_WINDOW_START,
            rx: VecDeque::new(),
            blocked: false,
            ended_reported: false,
        }
    }
}
