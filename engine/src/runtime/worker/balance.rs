//! The worker's side of balancing (`runtime::balance`): deciding where an accepted
//! connection goes, and adopting those its siblings hand over.

use std::net::SocketAddr;

use tracing::{debug, warn};

use crate::driver::Driver;
use crate::time::Instant;

use super::super::balance::{Accepted, Handoff, Siblings};
use super::super::clock::TimeSource;
use super::Worker;

impl<D: Driver, C: TimeSource> Worker<D, C> {
    /// A connection accepted on a held listener (OR or SOCKS): handed to a sibling with
    /// less load (nothing was read from it), else kept and read from now on.
    pub(super) fn place_accepted(
        &mut self,
        now: Instant,
        conn: D::Conn,
        peer: SocketAddr,
        kind: Accepted,
    ) {
        let to = self.siblings.as_ref().and_then(Siblings::target);
        let stream = to.and_then(|_| self.driver.detach(conn));
        let (Some(to), Some(stream), Some(sib)) = (to, stream, &self.siblings) else {
            self.driver.set_recv_paused(conn, false);
            return self.start_accepted(now, conn, peer, kind);
        };
        match sib.send(to, Handoff { stream, peer, kind }) {
            Ok(()) => {
                debug!(worker = self.index, to, %peer, ?kind, "handed to a sibling");
                self.links.stats_mut().handed_to_sibling += 1;
            }
            // The sibling's queue is full: keep it after all.
            Err(back) => self.take_handoff(now, back),
        }
    }

    /// Adopts the connections siblings handed to this worker (dropped, so closed, once it
    /// is stopping).
    pub(super) fn adopt_handoffs(&mut self, now: Instant) {
        while let Some(h) = self.siblings.as_ref().and_then(Siblings::recv) {
            if self.timers.stopping.is_none() {
                self.links.stats_mut().adopted_from_sibling += 1;
                self.take_handoff(now, h);
            }
        }
    }

    /// Publishes this worker's load, channels plus edges, to its siblings (a store only on
    /// change).
    pub(super) fn publish_load(&mut self) {
        let load = self.relay.channel_count() + self.edges.len();
        if let Some(sib) = &mut self.siblings {
            sib.publish(load);
        }
    }

    fn take_handoff(&mut self, now: Instant, h: Handoff) {
        match self.driver.adopt(h.stream) {
            Ok(conn) => self.start_accepted(now, conn, h.peer, h.kind),
            Err(e) => {
                warn!(worker = self.index, peer = %h.peer, error = %e, "cannot adopt a handed connection; closed")
            }
        }
    }

    fn start_accepted(&mut self, now: Instant, conn: D::Conn, peer: SocketAddr, kind: Accepted) {
        match kind {
            Accepted::Channel => {
                let chan = self.relay.accept_channel(now, peer);
                self.bind_channel(now, chan, conn, false);
            }
            Accepted::Socks => {
                self.add_edge(conn);
                self.edges.add_socks(conn);
            }
        }
        self.publish_load();
    }
}
