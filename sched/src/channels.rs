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

use std::collections::HashMap;

use crate::scheduler::{ChannelKey, ChannelState};

#[derive(Clone, Copy, Debug)]
struct Entry {
    state: ChannelState,
    /// In `ChannelTable::pending` (possibly stale).
    listed: bool,
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
    map: HashMap<K, Entry>,
    /// Channels that were pending when listed. INVARIANT: every `Pending` channel is here once
    /// (`listed`); entries whose state changed since are filtered out and compacted after runs.
    pending: Vec<K>,
}

impl<K: ChannelKey> ChannelTable<K> {
    pub(crate) fn new() -> Self {
        ChannelTable {
            map: HashMap::new(),
            pending: Vec::new(),
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
                Change::BecamePending
            }
            ChannelState::WaitingToWrite | ChannelState::Pending => Change::None,
        }
    }

    pub(crate) fn writable(&mut self, chan: K) -> Change {
        match self.state(chan) {
            ChannelState::Idle => {
                self.set(chan, ChannelState::WaitingForCells);
                Change::None
            }
            ChannelState::WaitingToWrite => {
                self.set(chan, ChannelState::Pending);
                Change::BecamePending
            }
            // A send completed: the kernel may take more now.
            ChannelState::Pending => Change::BecamePending,
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
        });
        e.state = state;
        if state == ChannelState::Pending && !e.listed {
            e.listed = true;
            self.pending.push(chan);
        }
    }

    pub(crate) fn pending_into(&self, out: &mut Vec<K>) {
        out.extend(
            self.pending
                .iter()
                .copied()
                .filter(|&k| self.state(k) == ChannelState::Pending),
        );
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
