//! The worker's connection table: what each driver connection is (a channel or an edge),
//! which connection and link carry each channel, and which channel connections are not read
//! because their send queue is over the high-water mark.

use crate::driver::ConnSlot;
use crate::relay::ChanId;

use super::link::Link;

/// A channel whose send queue (bytes the kernel has not taken) grows past this stops being
/// read until it drains below [`CHANNEL_SEND_LOW_WATER`]. Scheduled cells never get near it
/// (KIST and Vanilla grant only what the socket takes); what can is replies to a peer that
/// sends and never reads (DESTROYs for refused CREATEs, CREATED2s), which would otherwise
/// grow without bound outside `MaxMemInQueues`.
pub(super) const CHANNEL_SEND_HIGH_WATER: usize = 4 << 20;
/// See [`CHANNEL_SEND_HIGH_WATER`].
pub(super) const CHANNEL_SEND_LOW_WATER: usize = 1 << 20;

/// What a connection is to the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// A channel to another relay or a client.
    Channel(ChanId),
    /// An application-side connection: a SOCKS client or an exit's target server.
    Edge,
}

/// What the worker knows of one connection.
#[derive(Clone, Copy, Debug)]
struct ConnEntry<C> {
    conn: C,
    role: Role,
    /// A channel connection not being read: its send queue is over the high-water mark.
    recv_paused: bool,
}

/// The connection and link of one channel.
#[derive(Debug)]
struct ChanSlot<C> {
    chan: ChanId,
    conn: C,
    link: Link,
}

/// See the module docs. Both tables are `Vec`s indexed by dense slot indices (the driver's
/// connection slot, the relay's channel slot): a lookup per receive completion is a bounds
/// check and a compare, not a hash.
#[derive(Debug)]
pub(super) struct ConnTable<C> {
    /// By connection slot. INVARIANT: an entry's `conn` has that slot.
    conns: Vec<Option<ConnEntry<C>>>,
    /// Channel -> connection and link, indexed by the channel's slot.
    /// INVARIANT: `chans[i]` is `Some` iff `conns` has its connection as `Channel(chan)`.
    chans: Vec<Option<ChanSlot<C>>>,
}

impl<C> Default for ConnTable<C> {
    fn default() -> Self {
        ConnTable {
            conns: Vec::new(),
            chans: Vec::new(),
        }
    }
}

/// A change of a channel connection's read state, for the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadGate {
    /// Stop reading: the peer is not taking our bytes.
    Pause,
    /// Read again: the queue drained.
    Resume,
}

impl<C: ConnSlot> ConnTable<C> {
    fn entry(&self, conn: C) -> Option<&ConnEntry<C>> {
        match self.conns.get(conn.slot()) {
            Some(Some(e)) if e.conn == conn => Some(e),
            _ => None,
        }
    }

    fn entry_mut(&mut self, conn: C) -> Option<&mut ConnEntry<C>> {
        match self.conns.get_mut(conn.slot()) {
            Some(Some(e)) if e.conn == conn => Some(e),
            _ => None,
        }
    }

    fn set_role(&mut self, conn: C, role: Role) {
        let i = conn.slot();
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        if let Some(slot) = self.conns.get_mut(i) {
            *slot = Some(ConnEntry {
                conn,
                role,
                recv_paused: false,
            });
        }
    }

    fn forget(&mut self, conn: C) {
        if self.entry(conn).is_some() {
            if let Some(slot) = self.conns.get_mut(conn.slot()) {
                *slot = None;
            }
        }
    }

    /// What `conn` is, if the worker knows it.
    #[inline]
    pub(super) fn role(&self, conn: C) -> Option<Role> {
        self.entry(conn).map(|e| e.role)
    }

    /// Every connection (channels and edges), in slot order.
    pub(super) fn conns(&self) -> impl Iterator<Item = C> + '_ {
        self.conns.iter().flatten().map(|e| e.conn)
    }

    /// `conn` carries `chan`, over a plain link.
    pub(super) fn bind_channel(&mut self, chan: ChanId, conn: C) {
        let i = chan.index() as usize;
        if self.chans.len() <= i {
            self.chans.resize_with(i + 1, || None);
        }
        if let Some(Some(old)) = self.chans.get_mut(i).map(|s| {
            s.replace(ChanSlot {
                chan,
                conn,
                link: Link::default(),
            })
        }) {
            // A stale slot (its channel's close was never reported): forget its connection.
            self.forget(old.conn);
        }
        self.set_role(conn, Role::Channel(chan));
    }

    /// Forgets `chan`; returns its connection.
    pub(super) fn unbind_channel(&mut self, chan: ChanId) -> Option<C> {
        let slot = self.chans.get_mut(chan.index() as usize)?;
        if slot.as_ref().is_none_or(|s| s.chan != chan) {
            return None;
        }
        let conn = slot.take()?.conn;
        self.forget(conn);
        Some(conn)
    }

    /// The connection carrying `chan`.
    #[inline]
    pub(super) fn conn_of(&self, chan: ChanId) -> Option<C> {
        match self.chans.get(chan.index() as usize) {
            Some(Some(s)) if s.chan == chan => Some(s.conn),
            _ => None,
        }
    }

    /// The connection and link carrying `chan`.
    #[inline]
    pub(super) fn channel(&mut self, chan: ChanId) -> Option<(C, &mut Link)> {
        match self.chans.get_mut(chan.index() as usize) {
            Some(Some(s)) if s.chan == chan => Some((s.conn, &mut s.link)),
            _ => None,
        }
    }

    /// The connection of the channel in slot `slot`, if any (for a cursor over channels).
    pub(super) fn channel_at(&self, slot: usize) -> Option<C> {
        self.chans.get(slot)?.as_ref().map(|s| s.conn)
    }

    /// Slots of the channel table (live or not).
    pub(super) fn channel_slots(&self) -> usize {
        self.chans.len()
    }

    /// `conn` is an edge (a SOCKS client or an exit's target).
    pub(super) fn add_edge(&mut self, conn: C) {
        self.set_role(conn, Role::Edge);
    }

    /// Forgets the edge `conn`.
    pub(super) fn remove_edge(&mut self, conn: C) {
        if self.role(conn) == Some(Role::Edge) {
            self.forget(conn);
        }
    }

    /// Checks the send queue of channel connection `conn` after bytes were queued: pause its
    /// reads when the queue passed the high-water mark.
    pub(super) fn after_queueing(&mut self, conn: C, queued: usize) -> Option<ReadGate> {
        let e = self.entry_mut(conn)?;
        (queued > CHANNEL_SEND_HIGH_WATER && !e.recv_paused).then(|| {
            e.recv_paused = true;
            ReadGate::Pause
        })
    }

    /// Checks the send queue of channel connection `conn` after the kernel took bytes: resume
    /// its reads when the queue drained below the low-water mark.
    pub(super) fn after_sending(&mut self, conn: C, queued: usize) -> Option<ReadGate> {
        let e = self.entry_mut(conn)?;
        (queued <= CHANNEL_SEND_LOW_WATER && e.recv_paused).then(|| {
            e.recv_paused = false;
            ReadGate::Resume
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::relay::{Relay, RelayConfig};

    impl ConnSlot for u32 {
        fn slot(self) -> usize {
            self as usize
        }
    }
    use crate::time::Instant;

    fn chans(n: usize) -> Vec<ChanId> {
        let mut relay = Relay::new(
            RelayConfig::default(),
            rand_chacha::ChaCha12Rng::seed_from_u64(1),
        );
        let peer = ([127, 0, 0, 1], 9).into();
        (0..n)
            .map(|_| relay.accept_channel(Instant::from_millis(0), peer))
            .collect()
    }

    #[test]
    fn channels_and_edges_are_bound_and_forgotten() {
        let [a, b] = chans(2)[..] else { unreachable!() };
        let mut t = ConnTable::default();
        t.bind_channel(b, 20u32);
        t.add_edge(7);
        assert_eq!(t.role(20), Some(Role::Channel(b)));
        assert_eq!(t.role(7), Some(Role::Edge));
        assert_eq!(t.conn_of(b), Some(20));
        assert_eq!(t.conn_of(a), None);
        assert_eq!(t.channel_slots(), 2);
        assert_eq!(t.channel_at(1), Some(20));
        assert!(t.channel(b).is_some_and(|(c, l)| c == 20 && l.is_open()));
        assert_eq!(t.unbind_channel(a), None);
        assert_eq!(t.unbind_channel(b), Some(20));
        assert_eq!(t.unbind_channel(b), None);
        assert_eq!(t.role(20), None);
        t.remove_edge(7);
        assert_eq!(t.conns().count(), 0);
    }

    #[test]
    fn reads_pause_above_high_water_and_resume_below_low_water() {
        let [a] = chans(1)[..] else { unreachable!() };
        let mut t = ConnTable::default();
        t.bind_channel(a, 1u32);
        assert_eq!(t.after_queueing(1, CHANNEL_SEND_HIGH_WATER), None);
        assert_eq!(
            t.after_queueing(1, CHANNEL_SEND_HIGH_WATER + 1),
            Some(ReadGate::Pause)
        );
        assert_eq!(
            t.after_queueing(1, CHANNEL_SEND_HIGH_WATER + 9),
            None,
            "once"
        );
        assert_eq!(t.after_sending(1, CHANNEL_SEND_LOW_WATER + 1), None);
        assert_eq!(
            t.after_sending(1, CHANNEL_SEND_LOW_WATER),
            Some(ReadGate::Resume)
        );
        assert_eq!(t.after_sending(1, 0), None, "once");
        // Unbinding forgets the pause.
        t.after_queueing(1, usize::MAX);
        t.unbind_channel(a);
        assert_eq!(t.after_sending(1, 0), None);
    }
}
