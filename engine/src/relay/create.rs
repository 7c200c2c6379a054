//! Circuit creation: CREATE2 / CREATE_FAST from the previous hop (we answer CREATED2 /
//! CREATED_FAST), CREATE2 toward a next hop and its CREATED2.
//!
//! ```text
//!   CREATE2 / CREATE_FAST on chan ──> id checks (the channel closes on a bad id)
//!                                 ──> rate limit, role, handshake ── refused: DESTROY
//!                                 ──> new circuit, CREATED2 / CREATED_FAST queued back
//!   send_create(circ, chan) ────────> CREATE2 toward the next hop (origin or EXTEND2)
//!   CREATED2 from next ─────────────> origin: finish the hop's handshake, extend further
//!                                  └─> relay:  EXTENDED2 toward the origin
//! ```

use rand::RngCore;
use tracing::{debug, trace};

use crate::crypto::relay_crypto::RelayLayer;
use crate::crypto::{fast, ntor, KeyMaterial};
use crate::time::Instant;
use crate::wire::{
    CellRef, ChanCmd, CircId, Create2, CreateFast, Created2, CreatedFast, Extended2, RelayCmd,
    CELL_BODY_LEN, RELAY_DATA_LEN,
};
use crate::HasKind;

use super::circuit::{CircKind, Circuit, Dir, Hop};
use super::config::RelayKeys;
use super::error::{destroy_reason, CircuitClose, CreateError, Rejection};
use super::ids::{ChanId, CircHandle};
use super::link::LinkError;
use super::Relay;

/// The server half of a handshake: the reply cell's command and body, and the keys.
struct Created {
    cmd: ChanCmd,
    body: [u8; CELL_BODY_LEN],
    keys: KeyMaterial,
}

impl Relay {
    /// CREATE2 or CREATE_FAST from a previous hop (or a client).
    pub(super) fn handle_create(&mut self, now: Instant, chan: ChanId, cell: &CellRef<'_>) {
        let Some(id) = cell.circ() else {
            return self.reject_channel(now, chan, LinkError::CircIdZero { cmd: cell.cmd() });
        };
        let Some(ch) = self.channels.get(chan) else {
            return;
        };
        if ch.circs.contains_key(&id) {
            return self.reject_channel(now, chan, LinkError::CircIdInUse { cmd: cell.cmd() });
        }
        // The side that opened the connection sets the top bit of the ids it allocates.
        let peer_opened = !ch.link.initiator();
        // Over the rate limit: refuse before any handshake work or circuit state.
        if !self.take_create_token(now, chan) {
            return self.refuse_create(chan, id, CreateError::RateLimited);
        }
        let top_bit = id.get() & 0x8000_0000 != 0;
        let result = match &self.cfg.keys {
            _ if top_bit != peer_opened => Err(CreateError::WrongTopBit),
            None => Err(CreateError::NotARelay),
            Some(keys) => server_handshake(keys, &mut self.rng, cell),
        };
        let created = match result {
            Ok(created) => created,
            Err(e) => return self.refuse_create(chan, id, e),
        };
        let kind = CircKind::Relay {
            layer: Box::new(RelayLayer::new(&created.keys)),
            extend: None,
        };
        let circ = self
            .circuits
            .insert(Circuit::new(kind, Some(Hop { chan, id })));
        if let Some(ch) = self.channels.get_mut(chan) {
            ch.circs.insert(id, circ);
        }
        self.enqueue(now, circ, Dir::Backward, created.cmd, &created.body);
    }

    /// A TAP CREATE: TAP is long gone from Tor; refuse the circuit, keep the channel. It
    /// still costs a token, as in Tor (every CREATE counts toward the limit).
    pub(super) fn handle_tap_create(&mut self, now: Instant, chan: ChanId, cell: &CellRef<'_>) {
        let e = if self.take_create_token(now, chan) {
            CreateError::ObsoleteCreate
        } else {
            CreateError::RateLimited
        };
        if let Some(id) = cell.circ() {
            self.refuse_create(chan, id, e);
        }
    }

    /// Answers a CREATE with DESTROY (reason from `e`'s kind); no circuit state is made.
    fn refuse_create(&mut self, chan: ChanId, id: CircId, e: CreateError) {
        if e == CreateError::RateLimited {
            trace!(?chan, ?id, error = %e, "refusing CREATE");
        } else {
            debug!(?chan, ?id, error = %e, "refusing CREATE");
        }
        self.last_rejection = Some(Rejection::Create(e));
        self.channels
            .queue_destroy(chan, id, destroy_reason(e.kind()));
    }

    /// Takes one circuit-creation token of `chan`'s peer; false (and counted) when the
    /// limit is reached. Always true without a limit.
    fn take_create_token(&mut self, now: Instant, chan: ChanId) -> bool {
        let (Some(limit), Some(ch)) = (
            self.cfg.circuit_creation_limit.as_ref(),
            self.channels.get_mut(chan),
        ) else {
            return true;
        };
        let Some(bucket) = ch.create_bucket.as_mut() else {
            return true;
        };
        if bucket.try_take(now, limit) {
            return true;
        }
        self.stats.creates_refused += 1;
        false
    }

    /// CREATED2 from the next hop of one of our circuits.
    pub(super) fn handle_created(&mut self, now: Instant, chan: ChanId, cell: &CellRef<'_>) {
        let Some(id) = cell.circ() else {
            return self.reject_channel(now, chan, LinkError::CircIdZero { cmd: cell.cmd() });
        };
        let Some((circ, Dir::Backward)) = self.circuit_dir_of(chan, id) else {
            return debug!(?chan, ?id, "CREATED2 for an unknown circuit");
        };
        let Ok(created) = Created2::parse(cell.body()) else {
            return self.reject_circuit(now, circ, CreateError::MalformedCreated2.into());
        };
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        match &mut c.kind {
            CircKind::Origin(o) if o.hops.is_empty() && o.pending.is_some() => {
                if let Err(e) = o.finish_hop(created.hdata) {
                    return self.reject_circuit(now, circ, CreateError::Hop(e).into());
                }
                self.continue_build(now, circ);
            }
            CircKind::Relay {
                extend: extend @ Some(_),
                ..
            } => {
                *extend = None;
                let mut data = [0u8; RELAY_DATA_LEN];
                let extended = Extended2 {
                    hdata: created.hdata,
                };
                match extended.emit(&mut data) {
                    Ok(n) => {
                        self.send_from_endpoint(now, circ, RelayCmd::EXTENDED2, None, &data[..n])
                    }
                    Err(_) => self.reject_circuit(now, circ, CreateError::Created2TooLong.into()),
                }
            }
            _ => self.reject_circuit(now, circ, CreateError::UnexpectedCreated2.into()),
        }
    }

    /// Sends the CREATE2 of `circ` (origin's first hop, or a relay's EXTEND2) on `chan`.
    pub(super) fn send_create(&mut self, now: Instant, circ: CircHandle, chan: ChanId) {
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        let mut body = [0u8; CELL_BODY_LEN];
        let written = match &c.kind {
            CircKind::Origin(o) => Create2 {
                htype: ntor::HTYPE,
                hdata: &o.pending_hdata,
            }
            .emit(&mut body),
            CircKind::Relay {
                extend: Some(x), ..
            } => Create2 {
                htype: x.htype,
                hdata: &x.hdata,
            }
            .emit(&mut body),
            CircKind::Relay { extend: None, .. } => return,
        };
        if written.is_err() {
            return self.reject_circuit(now, circ, CreateError::Create2TooLong.into());
        }
        // The id is allocated and recorded on the channel in one step.
        let id = self
            .channels
            .get_mut(chan)
            .and_then(|ch| ch.circs.alloc(circ));
        let Some(id) = id else {
            return self.close_circuit(now, circ, CircuitClose::NoFreeCircId);
        };
        if let Some(c) = self.circuits.get_mut(circ) {
            c.next = Some(Hop { chan, id });
            c.waiting_on = None;
        }
        self.enqueue(now, circ, Dir::Forward, ChanCmd::CREATE2, &body);
    }
}

/// The server side of CREATE2 (ntor) or CREATE_FAST: the reply and the circuit's keys.
fn server_handshake(
    keys: &RelayKeys,
    rng: &mut impl RngCore,
    cell: &CellRef<'_>,
) -> Result<Created, CreateError> {
    let malformed = CreateError::Malformed { cmd: cell.cmd() };
    let mut body = [0u8; CELL_BODY_LEN];
    if cell.cmd() == ChanCmd::CREATE2 {
        let create = Create2::parse(cell.body()).map_err(|_| malformed)?;
        if create.htype != ntor::HTYPE {
            return Err(CreateError::UnsupportedHandshake {
                htype: create.htype,
            });
        }
        let (hdata, keys) = ntor::server_respond(rng, &keys.rsa_id(), &keys.ntor, create.hdata)
            .map_err(CreateError::BadHandshake)?;
        // A server reply always fits a CREATED2 body.
        (Created2 { hdata: &hdata })
            .emit(&mut body)
            .map_err(|_| malformed)?;
        Ok(Created {
            cmd: ChanCmd::CREATED2,
            body,
            keys,
        })
    } else {
        let create = CreateFast::parse(cell.body()).map_err(|_| malformed)?;
        let (reply, keys) =
            fast::server_respond(rng, &create.x).map_err(CreateError::BadHandshake)?;
        let (y, kh) = reply.split_at(fast::CLIENT_LEN);
        let created = CreatedFast {
            y: y.try_into().map_err(|_| malformed)?,
            kh: kh.try_into().map_err(|_| malformed)?,
        };
        created.emit(&mut body).map_err(|_| malformed)?;
        Ok(Created {
            cmd: ChanCmd::CREATED_FAST,
            body,
            keys,
        })
    }
}
