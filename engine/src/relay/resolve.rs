//! What an exit answers besides BEGIN: RESOLVE (tor-spec 6.4), BEGIN_DIR (6.2.1), and
//! relay commands it does not know (6.1: dropped, logged, counted).
//!
//! ```text
//!   RESOLVE name ─ non-exit ──────────────────────────> END (EXITPOLICY)
//!               ─ address literal ──────────────────> RESOLVED (that address)
//!               ─ name ── Event::ResolveStream ─> runtime's bounded resolver
//!                          handle_resolved(stream, answer) ──> RESOLVED (address | error)
//!   BEGIN_DIR ────────────────────────────────────────> END (NOTDIRECTORY): no directory here
//! ```
//!
//! A RESOLVE makes no stream (tor-spec); while the lookup runs its stream id is held in the
//! circuit's stream map as [`StreamState::Resolving`], so the answer finds its circuit and
//! the id cannot be reused meanwhile.

use std::net::IpAddr;

use tracing::{debug, info};

use crate::time::Instant;
use crate::wire::{
    EndReason, RelayCmd, Resolve, Resolved, ResolvedAnswer, StreamId, RELAY_DATA_LEN,
};

use super::event::Event;
use super::ids::{CircHandle, StreamHandle};
use super::streammap::StreamState;
use super::Relay;

/// TTL given with answers (getaddrinfo tells none; C Tor's minimum cached TTL, 5 minutes).
const ANSWER_TTL: u32 = 300;

impl Relay {
    /// Exit: RESOLVE. See the module docs.
    pub(super) fn handle_resolve(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Some(sid) = self.new_stream_id(now, circ, stream, RelayCmd::RESOLVE) else {
            return;
        };
        if self.cfg.exit_policy.is_none() {
            debug!(?circ, ?sid, "RESOLVE at a non-exit: END (EXITPOLICY)");
            return self.send_end(now, circ, sid, EndReason::EXITPOLICY);
        }
        let host = match Resolve::parse(data) {
            Ok(r) => r.host,
            Err(e) => {
                debug!(?circ, ?sid, error = %e, "malformed RESOLVE");
                return self.send_resolved(now, circ, sid, Err(false));
            }
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.send_resolved(now, circ, sid, Ok(ip));
        }
        if host.ends_with(".in-addr.arpa") || host.ends_with(".ip6.arpa") {
            // Reverse lookups are not offered: a lasting error, as for an unknown name.
            return self.send_resolved(now, circ, sid, Err(false));
        }
        let host = host.to_owned();
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        c.streams.insert(sid, StreamState::Resolving);
        self.events.push_back(Event::ResolveStream {
            stream: StreamHandle { circ, id: sid },
            host,
        });
    }

    /// Exit: the runtime's answer to [`Event::ResolveStream`]: `ip`, or `None` when the
    /// lookup failed or was refused. Returns whether `stream` was a RESOLVE (false: the
    /// answer belongs to a BEGIN, or the circuit is gone).
    pub fn handle_resolved(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        ip: Option<IpAddr>,
    ) -> bool {
        let Some(c) = self.circuits.get_mut(stream.circ) else {
            return false;
        };
        let resolving = c
            .streams
            .get(stream.id)
            .is_some_and(|s| s.state == StreamState::Resolving);
        if !resolving {
            return false;
        }
        c.streams.remove(stream.id, &mut self.memory);
        let answer = ip.ok_or(true);
        self.send_resolved(now, stream.circ, stream.id, answer);
        true
    }

    /// RESOLVED with one address, or one error (`Err(transient)`).
    fn send_resolved(
        &mut self,
        now: Instant,
        circ: CircHandle,
        sid: StreamId,
        answer: Result<IpAddr, bool>,
    ) {
        let answer = match answer {
            Ok(ip) => ResolvedAnswer::Addr {
                ip,
                ttl: ANSWER_TTL,
            },
            Err(transient) => ResolvedAnswer::Error {
                transient,
                ttl: ANSWER_TTL,
            },
        };
        let resolved = Resolved {
            answers: vec![answer],
        };
        let mut data = [0u8; RELAY_DATA_LEN];
        // One answer always fits a relay cell.
        if let Ok(n) = resolved.emit(&mut data) {
            self.send_from_endpoint(now, circ, RelayCmd::RESOLVED, Some(sid), &data[..n]);
        }
    }

    /// BEGIN_DIR: kistrel relays serve no directory (tor-spec 6.2.1: END NOTDIRECTORY).
    pub(super) fn handle_begin_dir(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
    ) {
        let Some(sid) = self.stream_id(now, circ, stream, RelayCmd::BEGIN_DIR) else {
            return;
        };
        debug!(?circ, ?sid, "BEGIN_DIR: no directory here");
        self.send_end(now, circ, sid, EndReason::NOTDIRECTORY);
    }

    /// A recognized relay cell whose command we do not know: dropped (tor-spec 6.1; it
    /// still counted toward the digest), logged and counted.
    pub(super) fn unknown_relay_command(&mut self, circ: CircHandle, cmd: RelayCmd) {
        self.stats.unknown_relay_commands += 1;
        info!(
            ?circ,
            cmd = cmd.0,
            "dropping a relay cell with an unknown command"
        );
    }
}
