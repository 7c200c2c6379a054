//! A worker's side of its links: how new ones are made (`Links`), the deadline of every TLS
//! handshake in progress (`ChannelHandshakeTimeout` bounds the TLS handshake too, in both
//! directions), and the counters the metrics show per link kind.

use std::collections::VecDeque;
use std::time::Duration;

use crate::relay::ChanId;
use crate::time::Instant;

use super::{Link, LinkError, LinkKind, Links, RecordStats};

/// A worker's link counters (monotonic, since the worker started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Plain links opened.
    pub plain: u64,
    /// TLS links secured with records in user space.
    pub tls_user: u64,
    /// TLS links whose send side the kernel took over (kTLS).
    pub ktls: u64,
    /// TLS links whose receive side the kernel took over (kTLS RX; counted apart: a link
    /// can have either side in the kernel, or both).
    pub ktls_rx: u64,
    /// TLS links that failed or timed out before their handshake was done.
    pub tls_handshake_failed: u64,
    /// Records of closed links (live links are added when a snapshot is taken).
    pub records: RecordStats,
    /// Accepted channel connections handed to a sibling worker with fewer channels
    /// (`runtime::balance`).
    pub handed_to_sibling: u64,
    /// Channel connections a sibling handed to this worker.
    pub adopted_from_sibling: u64,
}

impl LinkStats {
    /// Adds a link's record counters.
    pub(crate) fn add_records(&mut self, r: RecordStats) {
        self.records.records_in += r.records_in;
        self.records.records_staged += r.records_staged;
        self.records.records_out += r.records_out;
        self.records.records_split += r.records_split;
    }

    /// Counts a link that became open as `kind`.
    pub(crate) fn opened(&mut self, kind: LinkKind) {
        match kind {
            LinkKind::Plain => self.plain += 1,
            LinkKind::TlsUser => self.tls_user += 1,
            LinkKind::Ktls => self.ktls += 1,
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct LinkMaker {
    links: Links,
    timeout: Duration,
    /// TLS handshakes in the order they started (one timeout for all: deadlines ascend).
    handshakes: VecDeque<(Instant, ChanId)>,
    stats: LinkStats,
}

impl LinkMaker {
    pub(crate) fn new(links: Links, timeout: Duration) -> Self {
        LinkMaker {
            links,
            timeout,
            handshakes: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    /// The link of a new channel (`outbound`: we connect); a TLS handshake's deadline is
    /// armed.
    pub(crate) fn make(
        &mut self,
        now: Instant,
        chan: ChanId,
        outbound: bool,
    ) -> Result<Link, LinkError> {
        let link = if outbound {
            Link::connect(&self.links)?
        } else {
            Link::accept(&self.links)?
        };
        if link.is_open() {
            self.stats.opened(link.kind());
        } else {
            self.handshakes.push_back((now + self.timeout, chan));
        }
        Ok(link)
    }

    /// Channels whose TLS handshake deadline passed (the caller closes those not open).
    pub(crate) fn expired(&mut self, now: Instant, out: &mut Vec<ChanId>) {
        while let Some(&(deadline, chan)) = self.handshakes.front() {
            if deadline > now {
                return;
            }
            self.handshakes.pop_front();
            out.push(chan);
        }
    }

    /// The earliest handshake deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.handshakes.front().map(|&(d, _)| d)
    }

    /// The handshake timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn stats(&self) -> &LinkStats {
        &self.stats
    }

    pub(crate) fn stats_mut(&mut self) -> &mut LinkStats {
        &mut self.stats
    }
}
