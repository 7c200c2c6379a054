//! Flow control: every window and SENDME decision of a circuit endpoint, behind two small
//! traits the rest of the relay calls.
//!
//! Only the two endpoints of a circuit (the origin and its last hop) meter DATA cells;
//! the relays in between forward without looking. Two levels, as in tor-spec §7.3-7.4:
//!
//! ```text
//!   sender (package side)                              receiver (deliver side)
//!   can_send()? --DATA--> on_data_sent(now, digest)    on_data_received(digest)?
//!                                                          | every 100th DATA cell
//!   on_sendme(now, digest) <-- SENDME (v1: echoes the -----+
//!                              digest of that 100th cell)
//! ```
//!
//! - [`CircuitFlow`] (one per circuit endpoint): may this endpoint send another DATA
//!   cell, which sent cells a SENDME will acknowledge (their running digests are
//!   remembered, proposal 289's authenticated SENDMEs), whether a SENDME that arrived is
//!   acceptable, and when to send one.
//! - [`StreamFlow`] (one per stream): the same for one stream, except that the SENDME back
//!   waits until the application has read enough ([`StreamFlow::sendme_due`]), so a stalled
//!   reader stops its sender instead of growing our buffer.
//!
//! Today's implementations are tor-spec's fixed windows: [`FixedCircWindow`] (1000 cells,
//! +100 per SENDME) and [`FixedStreamWindow`] (500, +50). The relay names them only through
//! the aliases [`CircFlow`] and [`StreamFlowImpl`], and calls only the trait methods.
//!
//! # Replacing the fixed windows (proposal 324)
//!
//! Congestion control (proposal 324, "RTT-based Congestion Control for Tor") keeps the
//! circuit-level SENDME and its digest but replaces the fixed package window by a
//! congestion window: `can_send` becomes `inflight < cwnd`; `on_data_sent` counts
//! `inflight` and, for every `sendme_inc`-th cell (31 by consensus instead of 100), remembers
//! the digest *and* `now`; `on_sendme` checks the digest as today, takes `inflight -=
//! sendme_inc`, turns `now` minus the remembered time into an RTT sample and lets the
//! algorithm (Vegas in Tor) grow or shrink `cwnd`; `on_data_received` asks for a SENDME
//! every `sendme_inc` cells and no longer enforces a deliver window. All of that is a new
//! type implementing [`CircuitFlow`]; [`CircFlow`] becomes an enum over the fixed window
//! and the algorithm, chosen per circuit when the handshake negotiates congestion control
//! (ntor v3's extension field, proposal 332, which kistrel does not speak yet). The stream
//! level is replaced the same way by proposal 344's XON/XOFF, behind [`StreamFlow`]. The
//! callers do not change: they already pass `now` and already treat "cannot send" as
//! "block the stream and wait for an event".

use std::collections::VecDeque;

use crate::time::Instant;
use crate::wire::RELAY_DATA_LEN;
use crate::{ErrorKind, HasKind};

/// Circuit-level window at start (tor-spec: 1000 cells).
pub(crate) const CIRC_WINDOW_START: u16 = 1000;
/// Cells one circuit SENDME acknowledges (tor-spec: 100).
pub(crate) const CIRC_WINDOW_INCREMENT: u16 = 100;
/// Stream-level window at start (tor-spec: 500 cells).
pub(crate) const STREAM_WINDOW_START: u16 = 500;
/// Cells one stream SENDME acknowledges (tor-spec: 50).
pub(crate) const STREAM_WINDOW_INCREMENT: u16 = 50;
/// A stream SENDME goes out only while the application keeps its receive buffer below this.
pub(crate) const STREAM_RX_LOW_WATER: usize = STREAM_WINDOW_INCREMENT as usize * RELAY_DATA_LEN;

/// The running relay digest right after one cell: what an authenticated (v1) SENDME
/// echoes to prove the cell arrived.
pub(crate) type SendmeDigest = [u8; 20];

/// The circuit-level flow control in use (see the module docs for how it is replaced).
pub(crate) type CircFlow = FixedCircWindow;
/// The stream-level flow control in use.
pub(crate) type StreamFlowImpl = FixedStreamWindow;

/// A flow-control violation by the peer: the circuit closes with DESTROY (PROTOCOL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// A DATA cell arrived while the circuit's deliver window was closed.
    #[error("DATA beyond the circuit window")]
    CircuitWindowExceeded,
    /// A DATA cell arrived while its stream's deliver window was closed.
    #[error("DATA beyond the stream window")]
    StreamWindowExceeded,
    /// A circuit SENDME arrived although no sent cell waited for one.
    #[error("circuit SENDME beyond the window")]
    UnexpectedSendme,
    /// A circuit SENDME did not echo the digest of the cell it acknowledges.
    #[error("circuit SENDME with a wrong digest")]
    SendmeDigestMismatch,
    /// A stream SENDME would open the stream window past its start size.
    #[error("stream SENDME beyond the window")]
    StreamSendmeOverflow,
    /// A SENDME message did not parse.
    #[error("malformed SENDME")]
    MalformedSendme,
}

impl HasKind for FlowError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocol
    }
}

/// Circuit-level flow control of one circuit endpoint.
pub(crate) trait CircuitFlow {
    /// Whether one more DATA cell may be sent on the circuit now.
    fn can_send(&self) -> bool;

    /// One DATA cell was sent (already encrypted). `digest` gives its running digest; it is
    /// called only for cells a SENDME will acknowledge.
    fn on_data_sent(&mut self, now: Instant, digest: impl FnOnce() -> SendmeDigest);

    /// A circuit SENDME arrived carrying `digest` (`None`: an unauthenticated v0 SENDME).
    fn on_sendme(&mut self, now: Instant, digest: Option<&SendmeDigest>) -> Result<(), FlowError>;

    /// A DATA cell arrived (already decrypted and recognized). `digest` gives its running
    /// digest. Returns the digest to send back in a SENDME when one is due now.
    fn on_data_received(
        &mut self,
        digest: impl FnOnce() -> SendmeDigest,
    ) -> Result<Option<SendmeDigest>, FlowError>;
}

/// Stream-level flow control of one stream at a circuit endpoint.
pub(crate) trait StreamFlow {
    /// Whether one more DATA cell may be sent on the stream now.
    fn can_send(&self) -> bool;

    /// One DATA cell was sent on the stream.
    fn on_data_sent(&mut self);

    /// A stream SENDME arrived.
    fn on_sendme(&mut self) -> Result<(), FlowError>;

    /// A DATA cell arrived on the stream.
    fn on_data_received(&mut self) -> Result<(), FlowError>;

    /// Whether to send a stream SENDME now, with `buffered` bytes not yet read by the
    /// application; if so, counts it as sent. Call until it returns false.
    fn sendme_due(&mut self, buffered: usize) -> bool;
}

/// tor-spec's fixed circuit windows with authenticated SENDMEs (proposal 289).
#[derive(Debug)]
pub(crate) struct FixedCircWindow {
    /// DATA cells we may still send before a circuit SENDME.
    package: u16,
    /// DATA cells the peer may still send us.
    deliver: u16,
    /// DATA cells sent so far (the 100th, 200th, ... are acknowledged by SENDMEs).
    sent: u64,
    /// DATA cells received so far (after the 100th, 200th, ... we send a SENDME).
    received: u64,
    /// Digests we expect back in authenticated SENDMEs, oldest first.
    /// INVARIANT: at most `CIRC_WINDOW_START / CIRC_WINDOW_INCREMENT` entries (the package
    /// window stops the sender before more are recorded).
    expected: VecDeque<SendmeDigest>,
}

impl Default for FixedCircWindow {
    fn default() -> Self {
        FixedCircWindow {
            package: CIRC_WINDOW_START,
            deliver: CIRC_WINDOW_START,
            sent: 0,
            received: 0,
            expected: VecDeque::new(),
        }
    }
}

impl CircuitFlow for FixedCircWindow {
    fn can_send(&self) -> bool {
        self.package > 0
    }

    fn on_data_sent(&mut self, _now: Instant, digest: impl FnOnce() -> SendmeDigest) {
        self.package = self.package.saturating_sub(1);
        self.sent += 1;
        if self.sent.is_multiple_of(u64::from(CIRC_WINDOW_INCREMENT)) {
            self.expected.push_back(digest());
        }
    }

    fn on_sendme(&mut self, _now: Instant, digest: Option<&SendmeDigest>) -> Result<(), FlowError> {
        // Authenticated SENDME (v1) only: it must echo the digest we recorded.
        let expected = self
            .expected
            .pop_front()
            .ok_or(FlowError::UnexpectedSendme)?;
        if digest != Some(&expected) {
            return Err(FlowError::SendmeDigestMismatch);
        }
        self.package += CIRC_WINDOW_INCREMENT;
        Ok(())
    }

    fn on_data_received(
        &mut self,
        digest: impl FnOnce() -> SendmeDigest,
    ) -> Result<Option<SendmeDigest>, FlowError> {
        if self.deliver == 0 {
            return Err(FlowError::CircuitWindowExceeded);
        }
        self.deliver -= 1;
        self.received += 1;
        if !self
            .received
            .is_multiple_of(u64::from(CIRC_WINDOW_INCREMENT))
        {
            return Ok(None);
        }
        self.deliver += CIRC_WINDOW_INCREMENT;
        Ok(Some(digest()))
    }
}

/// tor-spec's fixed stream windows (unauthenticated stream SENDMEs).
#[derive(Debug)]
pub(crate) struct FixedStreamWindow {
    /// DATA cells we may still send on this stream before a stream SENDME.
    package: u16,
    /// DATA cells the peer may still send.
    deliver: u16,
}

impl Default for FixedStreamWindow {
    fn default() -> Self {
        FixedStreamWindow {
            package: STREAM_WINDOW_START,
            deliver: STREAM_WINDOW_START,
        }
    }
}

impl StreamFlow for FixedStreamWindow {
    fn can_send(&self) -> bool {
        self.package > 0
    }

    fn on_data_sent(&mut self) {
        self.package = self.package.saturating_sub(1);
    }

    fn on_sendme(&mut self) -> Result<(), FlowError> {
        if self.package + STREAM_WINDOW_INCREMENT > STREAM_WINDOW_START {
            return Err(FlowError::StreamSendmeOverflow);
        }
        self.package += STREAM_WINDOW_INCREMENT;
        Ok(())
    }

    fn on_data_received(&mut self) -> Result<(), FlowError> {
        if self.deliver == 0 {
            return Err(FlowError::StreamWindowExceeded);
        }
        self.deliver -= 1;
        Ok(())
    }

    fn sendme_due(&mut self, buffered: usize) -> bool {
        // Half the window used and the reader keeping up.
        if self.deliver > STREAM_WINDOW_START - STREAM_WINDOW_INCREMENT
            || buffered >= STREAM_RX_LOW_WATER
        {
            return false;
        }
        self.deliver += STREAM_WINDOW_INCREMENT;
        true
    }
}

#[cfg(test)]
mod tests;
