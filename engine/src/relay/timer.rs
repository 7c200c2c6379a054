//! The relay's one timer table: every deadline of the state machine, earliest first.
//!
//! Entries are invalidated lazily: the owner says, when asked, whether a timer still
//! matters (a handshake deadline of a channel that opened or closed does not), so arming
//! is O(log n) and nothing has to find and cancel an entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::Instant;

use super::ids::ChanId;

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// The channel must finish its link handshake by then.
    LinkHandshake(ChanId),
}

/// Deadlines, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl Timers {
    /// Schedules `timer` at `at`.
    pub(crate) fn arm(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((at, timer)));
    }

    /// The earliest deadline whose timer is still `live`; entries that are not are dropped.
    pub(crate) fn next(&mut self, live: impl Fn(Timer) -> bool) -> Option<Instant> {
        while let Some(&Reverse((at, timer))) = self.heap.peek() {
            if live(timer) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the next timer due at `now` (live or not: the caller checks).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(&Reverse((at, timer))) if at <= now => {
                self.heap.pop();
                Some(timer)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::GenSlab;

    #[test]
    fn deadlines_come_due_in_order_and_dead_ones_are_skipped() {
        let mut slab = GenSlab::default();
        let (a, b, c) = (
            ChanId(slab.insert(())),
            ChanId(slab.insert(())),
            ChanId(slab.insert(())),
        );
        let mut t = Timers::default();
        t.arm(Instant::from_millis(30), Timer::LinkHandshake(a));
        t.arm(Instant::from_millis(10), Timer::LinkHandshake(b));
        t.arm(Instant::from_millis(20), Timer::LinkHandshake(c));
        assert_eq!(t.next(|_| true), Some(Instant::from_millis(10)));
        // b's channel opened meanwhile: its deadline no longer counts.
        let live = |timer: Timer| timer != Timer::LinkHandshake(b);
        assert_eq!(t.next(live), Some(Instant::from_millis(20)));
        assert_eq!(t.pop_due(Instant::from_millis(19)), None);
        assert_eq!(
            t.pop_due(Instant::from_millis(30)),
            Some(Timer::LinkHandshake(c))
        );
        assert_eq!(
            t.pop_due(Instant::from_millis(30)),
            Some(Timer::LinkHandshake(a))
        );
        assert_eq!(t.pop_due(Instant::from_millis(99)), None);
        assert_eq!(t.next(|_| true), None);
    }
}
