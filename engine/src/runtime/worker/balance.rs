//! The worker's side of channel balancing (`runtime::balance`): deciding where an accepted
//! channel connection goes, and adopting those its siblings hand over.

use std::net::SocketAddr;

use tracing::{debug, warn};

use crate::driver::Driver;
use crate::time::Instant;

use super::super::balance::Handoff;
use super::super::clock::TimeSource;
use super::Worker;

impl<D: Driver, C: TimeSource> Worker<D, C> {
    /// A channel connection accepted on the OR listener: handed to a sibling with fewer
    /// channels (it was held, so nothing was read from it), else kept and read from now on.
    pub(super) fn accept_channel_conn(&mut self, now: Instant, conn: D::Conn, peer: SocketAddr) {
        if let Some(sib) = &self.siblings {
            if let Some(to) = sib.target() {
                if let Some(stream) = self.driver.detach(conn) {
                    match sib.send(to, Handoff { stream, peer }) {
                        Ok(()) => {
                            debug!(worker = self.index, to, %peer, "channel handed to a sibling");
                            self.links.stats_mut().handed_to_sibling += 1;
                            return;
                        }
                        Err(back) => self.take_handoff(now, back),
                    }
                    return;
                }
            }
        }
        self.driver.set_recv_paused(conn, false);
        self.start_accepted_channel(now, conn, peer);
    }

    /// Adopts the connections siblings handed to this worker (dropped, so closed, once it
    /// is stopping).
    pub(super) fn adopt_handoffs(&mut self, now: Instant) {
        let Some(sib) = &self.siblings else { return };
        let mut handed = Vec::new();
        while let Some(h) = sib.recv() {
            handed.push(h);
        }
        for h in handed {
            if self.timers.stopping.is_some() {
                continue;
            }
            self.links.stats_mut().adopted_from_sibling += 1;
            self.take_handoff(now, h);
        }
    }

    /// Publishes this worker's channel count to its siblings (a store only on change).
    pub(super) fn publish_load(&mut self) {
        let channels = self.relay.channel_count();
        if let Some(sib) = &mut self.siblings {
            sib.publish(channels);
        }
    }

    fn take_handoff(&mut self, now: Instant, h: Handoff) {
        match self.driver.adopt(h.stream) {
            Ok(conn) => self.start_accepted_channel(now, conn, h.peer),
            Err(e) => {
                warn!(worker = self.index, peer = %h.peer, error = %e, "cannot adopt a handed channel; closed")
            }
        }
    }

    fn start_accepted_channel(&mut self, now: Instant, conn: D::Conn, peer: SocketAddr) {
        let chan = self.relay.accept_channel(now, peer);
        self.bind_channel(now, chan, conn, false);
        self.publish_load();
    }
}
