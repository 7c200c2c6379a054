//! The worker's side of channel links: making them, feeding them received bytes, moving
//! their handshake bytes out, timing out TLS handshakes, and closing a failed one with its
//! reason logged.

use tracing::{debug, info, warn};

use crate::driver::Driver;
use crate::relay::ChanId;
use crate::time::Instant;
use crate::HasKind;

use super::super::clock::TimeSource;
use super::super::link::{Delivery, LinkError, LinkKind, LinkStats};
use super::Worker;

impl<D: Driver, C: TimeSource> Worker<D, C> {
    /// The link counters, live links' records included.
    pub(super) fn link_stats(&self) -> LinkStats {
        let mut stats = *self.links.stats();
        for slot in 0..self.conns.channel_slots() {
            if let Some(link) = self.conns.link_at(slot) {
                stats.add_records(link.record_stats());
            }
        }
        stats
    }

    /// Received bytes of a channel: through its link to the relay (`Secured` first, when a
    /// TLS handshake completes: then the relay starts its link handshake).
    pub(super) fn channel_recv(
        &mut self,
        now: Instant,
        chan: ChanId,
        conn: D::Conn,
        data: &mut [u8],
    ) {
        let Some((_, link)) = self.conns.channel(chan) else {
            return;
        };
        let relay = &mut self.relay;
        let mut secured = false;
        let opened = link.open(data, |d| match d {
            Delivery::Secured => {
                secured = true;
                relay.handle_channel_connected(now, chan);
            }
            Delivery::Data { bytes, auth } => {
                relay.handle_recv(now, chan, bytes, auth);
            }
        });
        match opened {
            Ok(()) => self.write_link_out(chan, conn),
            Err(e) => return self.link_failed(now, chan, conn, e),
        }
        self.try_ktls_rx(chan, conn);
        if secured {
            let ktls = self
                .conns
                .channel(chan)
                .is_some_and(|(_, l)| l.ktls_pending());
            if ktls {
                self.try_ktls(chan, conn);
            } else {
                self.links.stats_mut().opened(LinkKind::TlsUser);
            }
        }
    }

    /// Hands an open link's send keys to the kernel once nothing it sealed is queued (kTLS
    /// TX); a refusal keeps the link in user space. Counts the link's kind either way.
    pub(super) fn try_ktls(&mut self, chan: ChanId, conn: D::Conn) {
        let queued = self.driver.queued_len(conn);
        let Some((_, link)) = self.conns.channel(chan) else {
            return;
        };
        if queued > 0 || !link.ktls_pending() {
            return; // SendDone brings it back
        }
        let Some(info) = link.ktls_tx_info() else {
            return;
        };
        match self.driver.enable_ktls_tx(conn, &info) {
            Ok(()) => {
                link.ktls_tx_done(true);
                self.links.stats_mut().opened(LinkKind::Ktls);
            }
            Err(e) => {
                debug!(?chan, error = %e, "kTLS refused for this link: records stay in user space");
                link.ktls_tx_done(false);
                self.links.stats_mut().opened(LinkKind::TlsUser);
            }
        }
    }

    /// Hands an open link's receive keys to the kernel (kTLS RX) once the link is on a
    /// record boundary and the backend holds no unread bytes of it. io_uring first stops
    /// its multishot receive, which reads ahead ([`crate::driver::IoEvent::RecvStopped`]
    /// brings the worker back here); off a boundary the driver retries a bounded number of
    /// times. A refusal, or no boundary found, keeps receiving in user space (one log line).
    pub(super) fn try_ktls_rx(&mut self, chan: ChanId, conn: D::Conn) {
        let Some((_, link)) = self.conns.channel(chan) else {
            return;
        };
        if !link.ktls_rx_pending() {
            return;
        }
        // `None`: a partial record is staged.
        let info = link.ktls_rx_info();
        match self.driver.enable_ktls_rx(conn, info.as_ref()) {
            Ok(()) => {
                link.ktls_rx_done(true);
                self.links.stats_mut().ktls_rx += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                info!(?chan, error = %e, "kTLS RX not used for this link: records are opened in user space");
                link.ktls_rx_done(false);
            }
        }
    }

    /// A record the kernel opened that is not application data (kTLS RX).
    pub(super) fn channel_tls_record(
        &mut self,
        now: Instant,
        chan: ChanId,
        conn: D::Conn,
        content_type: u8,
        body: &[u8],
    ) {
        let Some((_, link)) = self.conns.channel(chan) else {
            return;
        };
        let relay = &mut self.relay;
        let opened = link.open_kernel_record(content_type, body, |d| {
            if let Delivery::Data { bytes, auth } = d {
                relay.handle_recv(now, chan, bytes, auth);
            }
        });
        match opened {
            Ok(()) => self.write_link_out(chan, conn),
            Err(e) => self.link_failed(now, chan, conn, e),
        }
    }

    /// Binds a new channel to its connection with a fresh link (`outbound`: we connected;
    /// a TLS link's ClientHello goes into the connection's send buffer at once).
    pub(super) fn bind_channel(
        &mut self,
        now: Instant,
        chan: ChanId,
        conn: D::Conn,
        outbound: bool,
    ) {
        let link = match self.links.make(now, chan, outbound) {
            Ok(link) => link,
            Err(e) => {
                warn!(?chan, error = %e, "cannot set up the channel's link; closing it");
                self.driver.close(conn);
                self.relay.handle_channel_closed(now, chan);
                return;
            }
        };
        self.conns.bind_channel(chan, conn, link);
        self.no_delay(conn);
        self.write_link_out(chan, conn);
    }

    /// Moves a link's handshake or control bytes into its connection's send buffer.
    pub(super) fn write_link_out(&mut self, chan: ChanId, conn: D::Conn) {
        let Some((_, link)) = self.conns.channel(chan) else {
            return;
        };
        if link.wants_write() {
            if let Some(send) = self.driver.send_buf(conn) {
                link.write_out(send);
            }
        }
    }

    /// Closes the channels whose TLS handshake did not finish within
    /// `ChannelHandshakeTimeout`.
    pub(super) fn expire_handshakes(&mut self, now: Instant) {
        let mut expired = Vec::new();
        self.links.expired(now, &mut expired);
        for chan in expired {
            let Some((conn, link)) = self.conns.channel(chan) else {
                continue;
            };
            if link.is_open() {
                continue;
            }
            info!(
                ?chan,
                timeout = ?self.links.timeout(),
                "closing channel: TLS handshake not done within ChannelHandshakeTimeout"
            );
            self.links.stats_mut().tls_handshake_failed += 1;
            self.close_channel(now, chan, conn);
        }
    }

    pub(super) fn link_failed(
        &mut self,
        now: Instant,
        chan: ChanId,
        conn: D::Conn,
        err: LinkError,
    ) {
        let handshaking = self.conns.channel(chan).is_some_and(|(_, l)| !l.is_open());
        if handshaking {
            self.links.stats_mut().tls_handshake_failed += 1;
        }
        info!(?chan, error = %err, kind = ?err.kind(), handshaking, "closing channel: link failed");
        self.close_channel(now, chan, conn);
    }
}
