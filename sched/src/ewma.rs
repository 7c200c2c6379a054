//! Circuit priority: an exponentially decaying count of the cells each circuit has written
//! (Tor's `CircuitPriorityHalflife`), and the per-channel `CircuitMux` that always offers the
//! circuit with the lowest count.
//!
//! ```text
//!   count(now) = sum over written cells c of 0.5^((now - t_c) / halflife)
//! ```
//!
//! # How counts stay O(1) per cell and comparable across channels
//!
//! Tor keeps counts relative to the start of the current 10 s tick, weighs a cell written a
//! fraction `f` into the tick by `scale^-f`, and rescales every active circuit of a mux when the
//! tick changes (`circuitmux_ewma.c`). Ordering only needs all counts of one comparison scaled
//! by the same factor, so we do the same with a much longer period:
//!
//! - Time is cut into *epochs* of [`EPOCH_HALFLIVES`] halflives, on a grid that is a pure
//!   function of `now` (epoch `e` starts at `e * 64 * halflife` after `Instant::ZERO`). Every
//!   mux and every `CellEwma` computes the same grid with no shared object.
//! - A stored value is a count in the units of one epoch `e`: a cell written at `t` adds
//!   `2^((t - start(e)) / halflife)`, which lies in `[1, 2^64)` for `t` inside epoch `e`.
//!   Moving a value from epoch `e` to `e + d` multiplies it by `2^(-64 d)` (an exact power of
//!   two, so heap order is kept).
//! - A mux rescales its active circuits once when it is first touched in a new epoch (every 32
//!   minutes at the default halflife): O(n) per 64 halflives, amortised O(1) per cell. The
//!   per-cell work is one `exp2` (cached per `now`) and one heap sift.
//! - [`Priority`] is the decayed count *at `now`*, so priorities from different muxes of one
//!   worker, asked at the same `now`, compare directly.
//!
//! INVARIANT: stored values are finite and `>= 0`; with at most 2^900 cells per epoch they
//! cannot overflow (2^64 per cell, f64 max 2^1024), and old values underflow to 0, not NaN.
//!
//! # Halflife 0: round robin
//!
//! `CircuitPriorityHalflife 0` disables EWMA. The mux then serves its active circuits in strict
//! rotation: the circuit that just wrote a cell goes to the back of the line, a newly active
//! circuit joins at the back. All such muxes report [`Priority::ROUND_ROBIN`], so the KIST loop
//! rotates between channels too (ties are served in the order they were queued).

use core::cell::Cell;
use core::cmp::Ordering;
use core::fmt::Debug;
use core::time::Duration;
use std::collections::VecDeque;

use crate::time::Instant;

/// Tor's default `CircuitPriorityHalflife` (the consensus also sets 30000 ms).
pub const DEFAULT_HALFLIFE: Duration = Duration::from_secs(30);

/// Length of an epoch (the rescale period) in halflives. 64 keeps per-cell weights below 2^64.
pub const EPOCH_HALFLIVES: u64 = 64;

/// Circuit-priority configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EwmaConfig {
    /// `CircuitPriorityHalflife`. Zero selects round robin.
    ///
    /// Tor also has a 10 s tick; with the continuous weighting above (Tor weighs by the
    /// fraction of the tick too) the tick has no observable effect, so there is no field for it.
    pub halflife: Duration,
}

impl Default for EwmaConfig {
    fn default() -> Self {
        EwmaConfig {
            halflife: DEFAULT_HALFLIFE,
        }
    }
}

impl EwmaConfig {
    /// Round robin (`CircuitPriorityHalflife 0`).
    pub const ROUND_ROBIN: EwmaConfig = EwmaConfig {
        halflife: Duration::ZERO,
    };
}

/// A circuit's (or channel's best circuit's) place in line: lower is served first.
///
/// Under EWMA it is the decayed cell count at the `now` it was computed for; compare only
/// priorities computed for the same `now`. Ordered totally (`f64::total_cmp`); never NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Priority(f64);

impl Priority {
    /// What every non-empty round-robin mux reports.
    pub const ROUND_ROBIN: Priority = Priority(0.0);

    /// A priority of `count` cells, for other modules' tests.
    #[cfg(test)]
    pub(crate) fn from_count(count: f64) -> Self {
        Priority(count)
    }

    /// The decayed cell count (0 under round robin).
    pub fn count(self) -> f64 {
        self.0
    }

    /// A `u64` whose unsigned order is this priority's order (`f64::total_cmp`'s key).
    pub fn order_bits(self) -> u64 {
        let bits = self.0.to_bits();
        // Negative values: flip all bits; non-negative: flip the sign bit.
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        }
    }
}

impl Eq for Priority {}

impl PartialOrd for Priority {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Priority {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The epoch grid and weights for one non-zero halflife.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decay {
    halflife_ns: u64,
    epoch_len_ns: u64,
}

impl Decay {
    fn new(cfg: &EwmaConfig) -> Option<Decay> {
        let halflife_ns = u64::try_from(cfg.halflife.as_nanos()).unwrap_or(u64::MAX);
        (halflife_ns > 0).then(|| Decay {
            halflife_ns,
            epoch_len_ns: halflife_ns.saturating_mul(EPOCH_HALFLIVES),
        })
    }

    fn epoch_of(&self, now: Instant) -> u64 {
        now.as_nanos() / self.epoch_len_ns
    }

    /// `2^((now - start(epoch)) / halflife)`: a cell's weight in `epoch` units.
    fn weight(&self, now: Instant, epoch: u64) -> f64 {
        // u64 arithmetic: an i128 -> f64 conversion is a ~50-instruction library call, and
        // this runs once per mux per `now`. A start past u64 nanoseconds (584 years) only
        // saturates an already vanishing weight.
        let start = epoch.saturating_mul(self.epoch_len_ns);
        let now = now.as_nanos();
        let since = if now >= start {
            (now - start) as f64
        } else {
            -((start - now) as f64)
        };
        finite_or_max(f64::exp2(since / self.halflife_ns as f64))
    }
}

/// Moves a value from `from` epoch units to `to` epoch units.
fn rebase(value: f64, from: u64, to: u64) -> f64 {
    if from == to {
        return value;
    }
    // Past ~17 epochs down every value is below f64's smallest subnormal; clamping the exponent
    // keeps exp2 finite both ways.
    let halflives = (i128::from(from) - i128::from(to)) * i128::from(EPOCH_HALFLIVES);
    let exponent = halflives.clamp(-1100, 1100) as f64;
    finite_or_max(value * f64::exp2(exponent))
}

fn finite_or_max(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else if x.is_nan() {
        0.0
    } else {
        f64::MAX
    }
}

/// One circuit-direction's EWMA state. The caller keeps it with the circuit (it persists while
/// the circuit is inactive) and lends it to the mux on every call about that circuit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CellEwma {
    /// Count in units of `epoch` (see the module doc).
    value: f64,
    epoch: u64,
    active: bool,
}

impl CellEwma {
    /// A circuit that has written nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the circuit is in a mux's active set.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The decayed cell count at `now` (0 under round robin, which counts nothing).
    pub fn count_at(&self, cfg: &EwmaConfig, now: Instant) -> f64 {
        match Decay::new(cfg) {
            None => 0.0,
            Some(decay) => self.value / decay.weight(now, self.epoch),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct HeapEntry<C> {
    /// Heap order: the key's total-order bits above the activation sequence number (ties go
    /// to the circuit that became active first), so a comparison is one integer compare.
    /// INVARIANT: `ord >> 64 == Priority(key).order_bits()`; set only through `set_key`.
    ord: u128,
    key: f64,
    circ: C,
}

impl<C> HeapEntry<C> {
    fn new(key: f64, seq: u64, circ: C) -> Self {
        let mut e = HeapEntry {
            ord: u128::from(seq),
            key: 0.0,
            circ,
        };
        e.set_key(key);
        e
    }

    fn set_key(&mut self, key: f64) {
        self.key = key;
        let seq = self.ord & u128::from(u64::MAX);
        self.ord = (u128::from(Priority(key).order_bits()) << 64) | seq;
    }

    fn before(&self, other: &Self) -> bool {
        self.ord < other.ord
    }
}

/// Min-heap of active circuits keyed by their count in `epoch` units.
#[derive(Debug)]
struct EwmaQueue<C> {
    decay: Decay,
    epoch: u64,
    heap: Vec<HeapEntry<C>>,
    next_seq: u64,
    /// `(now, weight(now))` in `epoch` units for the last `now` asked: a run asks the
    /// priority and writes many cells at one `now`. A `Cell`, so that `best_priority` (a
    /// `&self` query) fills it too. INVARIANT: only set for a `now` inside `epoch`.
    cache: Cell<(Instant, f64)>,
}

#[derive(Debug)]
enum Policy<C> {
    Ewma(EwmaQueue<C>),
    RoundRobin(VecDeque<C>),
}

/// The active circuits of one channel, in service order. `C` is the caller's circuit key.
///
/// Costs: `peek`/`best_priority` O(1); `note_written_top` O(1) while the top stays the top,
/// O(log n) when it hands over; `note_written` for the circuit `peek` returned O(log n), for
/// another circuit O(n); `activate` O(log n) amortised;
/// `deactivate` O(n) to find the circuit (once per queue-empty or close, not per cell).
#[derive(Debug)]
pub struct CircuitMux<C> {
    policy: Policy<C>,
}

impl<C: Copy + Eq + Ord + Debug> CircuitMux<C> {
    /// An empty mux with `cfg`'s policy.
    pub fn new(cfg: &EwmaConfig) -> Self {
        let policy = match Decay::new(cfg) {
            None => Policy::RoundRobin(VecDeque::new()),
            Some(decay) => Policy::Ewma(EwmaQueue {
                decay,
                epoch: 0,
                heap: Vec::new(),
                next_seq: 0,
                cache: Cell::new((Instant::MAX, 1.0)),
            }),
        };
        CircuitMux { policy }
    }

    /// Whether this mux round-robins (halflife 0).
    pub fn is_round_robin(&self) -> bool {
        matches!(self.policy, Policy::RoundRobin(_))
    }

    /// `circ` has cells queued: add it to the active set. Activating an active circuit is a
    /// no-op (the caller's flag in `ewma` says which).
    pub fn activate(&mut self, now: Instant, circ: C, ewma: &mut CellEwma) {
        if ewma.active {
            debug_assert!(self.position(circ).is_some(), "{circ:?} active elsewhere");
            return;
        }
        ewma.active = true;
        match &mut self.policy {
            Policy::RoundRobin(line) => line.push_back(circ),
            Policy::Ewma(q) => {
                q.advance_to(now);
                let key = rebase(ewma.value, ewma.epoch, q.epoch);
                let seq = q.next_seq;
                q.next_seq += 1;
                q.heap.push(HeapEntry::new(key, seq, circ));
                q.sift_up(q.heap.len() - 1);
            }
        }
    }

    /// `circ`'s queue emptied or it closed: remove it from the active set. Its count stays in
    /// `ewma`. A no-op if it was not active.
    pub fn deactivate(&mut self, circ: C, ewma: &mut CellEwma) {
        if !ewma.active {
            return;
        }
        ewma.active = false;
        match &mut self.policy {
            Policy::RoundRobin(line) => {
                if let Some(i) = line.iter().position(|&c| c == circ) {
                    line.remove(i);
                }
            }
            Policy::Ewma(q) => {
                if let Some(i) = q.heap.iter().position(|e| e.circ == circ) {
                    q.remove_at(i);
                }
            }
        }
    }

    /// The circuit to serve next.
    pub fn peek(&self) -> Option<C> {
        match &self.policy {
            Policy::RoundRobin(line) => line.front().copied(),
            Policy::Ewma(q) => q.heap.first().map(|e| e.circ),
        }
    }

    /// The priority of the circuit `peek` returns, as of `now`; comparable with any other
    /// mux's answer for the same `now` and halflife.
    pub fn best_priority(&self, now: Instant) -> Option<Priority> {
        match &self.policy {
            Policy::RoundRobin(line) => (!line.is_empty()).then_some(Priority::ROUND_ROBIN),
            Policy::Ewma(q) => {
                let top = q.heap.first()?;
                let weight = q.weight_if_current(now);
                Some(Priority(finite_or_max(top.key / weight)))
            }
        }
    }

    /// One cell of `circ` was written to the channel: count it and reorder.
    pub fn note_written(&mut self, now: Instant, circ: C, ewma: &mut CellEwma) {
        match &mut self.policy {
            Policy::RoundRobin(line) => {
                if line.front() == Some(&circ) {
                    // Cheaper than `rotate_left(1)`: no general wrap-around copy.
                    line.pop_front();
                    line.push_back(circ);
                } else if let Some(i) = line.iter().position(|&c| c == circ) {
                    line.remove(i);
                    line.push_back(circ);
                }
            }
            Policy::Ewma(q) => {
                let weight = q.weight_now(now);
                let epoch = q.epoch;
                let i = match q.heap.first() {
                    Some(top) if top.circ == circ => Some(0),
                    _ => q.heap.iter().position(|e| e.circ == circ),
                };
                match i {
                    Some(i) => {
                        let key = finite_or_max(q.heap[i].key + weight);
                        q.heap[i].set_key(key);
                        q.sift_down(i);
                        ewma.value = key;
                    }
                    // Written while inactive (the caller's bookkeeping lags): still count it.
                    None => {
                        ewma.value = finite_or_max(rebase(ewma.value, ewma.epoch, epoch) + weight)
                    }
                }
                ewma.epoch = epoch;
            }
        }
    }

    /// One cell of the circuit `peek` offers was written: counts it as `note_written` would
    /// and returns whether that circuit is still the one `peek` offers. A scheduler writing a
    /// batch keeps writing from it while this says so, with no `peek` and no heap sift per
    /// cell (one compare with the runner-up instead); the order of service is the same.
    /// With no circuit active it does nothing and returns false.
    pub fn note_written_top(&mut self, now: Instant, ewma: &mut CellEwma) -> bool {
        match &mut self.policy {
            Policy::RoundRobin(line) => {
                if line.len() > 1 {
                    line.rotate_left(1);
                }
                line.len() == 1
            }
            Policy::Ewma(q) => {
                let weight = q.weight_now(now);
                let next = q.runner_up_ord();
                let Some(top) = q.heap.first_mut() else {
                    return false;
                };
                let key = finite_or_max(top.key + weight);
                top.set_key(key);
                ewma.value = key;
                ewma.epoch = q.epoch;
                // Orders are unique (sequence numbers), so the runner-up never ties.
                let still_top = next.is_none_or(|next| top.ord < next);
                if !still_top {
                    q.sift_down(0);
                }
                still_top
            }
        }
    }

    /// Number of active circuits.
    pub fn len(&self) -> usize {
        match &self.policy {
            Policy::RoundRobin(line) => line.len(),
            Policy::Ewma(q) => q.heap.len(),
        }
    }

    /// No active circuits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn position(&self, circ: C) -> Option<usize> {
        match &self.policy {
            Policy::RoundRobin(line) => line.iter().position(|&c| c == circ),
            Policy::Ewma(q) => q.heap.iter().position(|e| e.circ == circ),
        }
    }
}

impl<C: Copy> EwmaQueue<C> {
    /// Moves every key to `now`'s epoch if that is later (once per 64 halflives).
    fn advance_to(&mut self, now: Instant) {
        let target = self.decay.epoch_of(now);
        if target <= self.epoch {
            return;
        }
        for e in &mut self.heap {
            // Multiplying by one positive power of two keeps the heap order.
            e.set_key(rebase(e.key, self.epoch, target));
        }
        self.epoch = target;
        self.cache.set((Instant::MAX, 1.0));
    }

    /// Advances to `now`'s epoch and returns a cell's weight at `now`; both are skipped (no
    /// division, no `exp2`) for the many cells of a run that share one `now`.
    fn weight_now(&mut self, now: Instant) -> f64 {
        match self.cache.get() {
            (at, weight) if at == now => weight,
            _ => {
                self.advance_to(now);
                let weight = self.decay.weight(now, self.epoch);
                self.cache.set((now, weight));
                weight
            }
        }
    }

    /// A cell's weight at `now` in `epoch` units without moving to `now`'s epoch; cached
    /// when `now` is inside the current epoch (the usual case), for `weight_now` to reuse.
    fn weight_if_current(&self, now: Instant) -> f64 {
        match self.cache.get() {
            (at, weight) if at == now => weight,
            _ => {
                let weight = self.decay.weight(now, self.epoch);
                if self.decay.epoch_of(now) <= self.epoch {
                    self.cache.set((now, weight));
                }
                weight
            }
        }
    }

    /// The order of the entry that would be the top if the top were removed: the smaller of
    /// its children's.
    fn runner_up_ord(&self) -> Option<u128> {
        match (self.heap.get(1), self.heap.get(2)) {
            (Some(l), Some(r)) => Some(l.ord.min(r.ord)),
            (l, _) => l.map(|e| e.ord),
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[i].before(&self.heap[parent]) {
                self.heap.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    /// Moves entry `i` down to its place, shifting smaller children up into the hole.
    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        let Some(&moving) = self.heap.get(i) else {
            return;
        };
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.heap[right].before(&self.heap[left]) {
                right
            } else {
                left
            };
            if self.heap[child].before(&moving) {
                self.heap[i] = self.heap[child];
                i = child;
            } else {
                break;
            }
        }
        self.heap[i] = moving;
    }

    fn remove_at(&mut self, i: usize) {
        let last = self.heap.len() - 1;
        self.heap.swap(i, last);
        self.heap.pop();
        if i < self.heap.len() {
            self.sift_down(i);
            self.sift_up(i);
        }
    }
}

#[cfg(test)]
mod tests;
