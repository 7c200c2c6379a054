//! Channel states and the pending list, shared by all three schedulers.
//!
//! ```text
//!            has_cells                    writable
//!   Idle ─────────────> WaitingToWrite ─────────────> Pending
//!     │ writable                                  ^     │ run: out of cells
//!     v                 has_cells                 │     v
//!   WaitingForCells ──────────────────────────────┘  WaitingForCells
//! ```
//!
//! After a run, a channel that still has cells is `Pending` again (KIST/KISTLite: Tor's
//! `to_readd`, retried after the run interval) or `WaitingToWrite` (Vanilla: until writable).
//!
//! KIST's run takes each pending channel once ([`ChannelTable::take_pending`]) by marking it
//! with the run's number instead of moving it out of `Pending` and back: a channel left with
//! cells then needs no second lookup after the run (Tor's `to_readd` is implicit), and one
//! that ran out is set to `WaitingForCells` as before.

use std::collections::HashMap;

use crate::scheduler::{ChannelKey, ChannelState};

/// The table's hasher: foldhash with a fixed seed (see Cargo.toml).
type Fixed = foldhash::fast::FixedState;
/// Any fixed value does; this one is `"kistrel\0"`.
const SEED: u64 = 0x6b69_7374_7265_6c00;

#[derive(Clone, Copy, Debug)]
struct Entry {
    state: ChannelState,
    /// In `ChannelTable::pending` (possibly stale).
    listed: bool,
    /// An event made it runnable since it was last taken into a run (see `Change`).
    woken: bool,
    /// The number of the last run that took it (`ChannelTable::begin_run`); 0: none.
    taken_in: u64,
}

/// What an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing that needs a run.
    None,
    /// The channel became pending (or a pending channel's send completed).
    BecamePending,
}

#[derive(Debug)]
pub(crate) struct ChannelTable<K> {
    map: HashMap<K, Entry, Fixed>,
    /// Channels that were pending when listed. INVARIANT: every `Pending` channel is here once
    /// (`listed`); entries whose state changed since are filtered out and compacted after runs.
    pending: Vec<K>,
    /// The current run's number, from 1 (u64: it never wraps).
    run: u64,
}

impl<K: ChannelKey> ChannelTable<K> {
    pub(crate) fn new() -> Self {
        ChannelTable {
            map: HashMap::with_hasher(Fixed::with_seed(SEED)),
            pending: Vec::new(),
            run: 0,
        }
    }

    pub(crate) fn state(&self, chan: K) -> ChannelState {
        self.map.get(&chan).map_or(ChannelState::Idle, |e| e.state)
    }

    pub(crate) fn has_cells(&mut self, chan: K) -> Change {
        match self.state(chan) {
            ChannelState::Idle => {
                self.set(chan, ChannelState::WaitingToWrite);
                Change::None
            }
            ChannelState::WaitingForCells => {
                self.set(chan, ChannelState::Pending);
                self.wake(chan)
            }
            ChannelState::WaitingToWrite | ChannelState::Pending => Change::None,
        }
    }

    fn wake(&mut self, chan: K) -> Change {
        if let Some(e) = self.map.get_mut(&chan) {
            e.woken = true;
        }
        Change::BecamePending
    }

    pub(crate) fn writable(&mut self, chan: K) -> Change {
        match self.state(chan) {
            ChannelState::Idle => {
                self.set(chan, ChannelState::WaitingForCells);
                Change::None
            }
            ChannelState::WaitingToWrite => {
                self.set(chan, ChannelState::Pending);
                self.wake(chan)
            }
            // A send completed: the kernel may take more now.
            ChannelState::Pending => self.wake(chan),
            ChannelState::WaitingForCells => Change::None,
        }
    }

    pub(crate) fn closed(&mut self, chan: K) {
        if let Some(e) = self.map.remove(&chan) {
            if e.listed {
                self.pending.retain(|&k| k != chan);
            }
        }
    }

    pub(crate) fn set(&mut self, chan: K, state: ChannelState) {
        let e = self.map.entry(chan).or_insert(Entry {
            state,
            listed: false,
            woken: false,
            taken_in: 0,
        });
        e.state = state;
        if state != ChannelState::Pending {
            e.woken = false;
        }
        if state == ChannelState::Pending && !e.listed {
            e.listed = true;
            self.pending.push(chan);
        }
    }

    /// A new run begins: every channel may be taken into it once.
    pub(crate) fn begin_run(&mut self) {
        self.run += 1;
    }

    /// The current run takes `chan` if it is `Pending` and this run has not taken it yet (a
    /// stale or duplicate snapshot is refused). It stays `Pending`: unless the run sets it to
    /// `WaitingForCells`, it is pending for the next run too. One lookup. Returns whether it
    /// was taken.
    pub(crate) fn take_pending(&mut self, chan: K) -> bool {
        match self.map.get_mut(&chan) {
            Some(e) if e.state == ChannelState::Pending && e.taken_in != self.run => {
                e.taken_in = self.run;
                e.woken = false;
                true
            }
            _ => false,
        }
    }

    /// Appends the pending channels; with `woken_only`, only those an event woke.
    pub(crate) fn pending_into(&self, woken_only: bool, out: &mut Vec<K>) {
        out.extend(self.pending.iter().copied().filter(|k| {
            self.map
                .get(k)
                .is_some_and(|e| e.state == ChannelState::Pending && (e.woken || !woken_only))
        }));
    }

    pub(crate) fn any_pending(&self) -> bool {
        self.pending
            .iter()
            .any(|&k| self.state(k) == ChannelState::Pending)
    }

    /// Drops list entries that are no longer pending.
    pub(crate) fn compact(&mut self) {
        let map = &mut self.map;
        self.pending.retain(|k| match map.get_mut(k) {
            Some(e) if e.state == ChannelState::Pending => true,
            Some(e) => {
                e.listed = false;
                false
            }
            None => false,
        });
    }
}
