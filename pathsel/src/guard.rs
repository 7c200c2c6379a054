//! Entry guards: a sampled set, primary guards (proposal 271 basics) and proposal 151's
//! failure rule, with statistics fed only by [`GuardTicket`] outcomes.
//!
//! ```text
//!  sampled (<= 60 guards or 20% of guard weight, weighted picks, in sample order)
//!     └─ primary: the first NumEntryGuards sampled guards that are still listed, not
//!        replaced, and not waiting out an unreachable back-off
//!          └─ pick(): uniform among the first NumPrimaryGuardsToUse usable primaries
//!               └─ GuardTicket ── succeeded / failed / unreachable / dropped = abandoned
//! ```
//!
//! Proposal 151's rule: after `GuardCircuitsToObserve` circuits reported over the primary
//! guards, every primary guard whose failure rate exceeds the average of the primary
//! guards' rates (the unweighted mean over guards with at least one circuit) by the margin
//! is replaced: marked so it is never chosen again, and the next sampled guard takes its
//! place. Then the counts start over. "Exceeds by 10%" is read as 10 percentage points by
//! default ([`FailureRule::Points`]); [`FailureRule::Relative`] reads it as 10% relative.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use rand::Rng;

use crate::dir::Position;
use crate::select::{FailureRule, PathConfig, PathSelector};

mod state;
pub use state::GuardState;

/// First retry delay for an unreachable guard; doubles per consecutive failure.
const RETRY_FIRST: Duration = Duration::from_secs(10 * 60);
/// Longest retry delay (Tor's primary-guard schedule tops out around a day and a half).
const RETRY_MAX: Duration = Duration::from_secs(36 * 3600);
const DAY: Duration = Duration::from_secs(86_400);

/// What became of a circuit that used a guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardOutcome {
    /// The circuit was built.
    Succeeded,
    /// The circuit failed past the guard (counts as a failure for the guard).
    Failed,
    /// The guard itself could not be reached (a failure, and the guard backs off).
    Unreachable,
    /// Nobody reported (the ticket was dropped): not counted either way.
    Abandoned,
}

#[derive(Debug, Clone, Copy)]
struct GuardReport {
    identity: [u8; 20],
    outcome: GuardOutcome,
}

/// Handed out with each guard; resolve it exactly once. Dropping it reports
/// [`GuardOutcome::Abandoned`], never success (Arti's `GuardMonitor` shape).
#[derive(Debug)]
#[must_use = "report the circuit's outcome (succeeded/failed/unreachable); dropping it reports abandoned"]
pub struct GuardTicket {
    identity: [u8; 20],
    tx: Sender<GuardReport>,
    reported: bool,
}

impl GuardTicket {
    /// The guard's identity.
    pub fn identity(&self) -> [u8; 20] {
        self.identity
    }

    fn report(mut self, outcome: GuardOutcome) {
        self.reported = true;
        // The GuardSet owns the receiver; if it is gone there is nobody to tell.
        let _ = self.tx.send(GuardReport {
            identity: self.identity,
            outcome,
        });
    }

    /// The circuit through this guard was built.
    pub fn succeeded(self) {
        self.report(GuardOutcome::Succeeded)
    }

    /// The circuit through this guard failed.
    pub fn failed(self) {
        self.report(GuardOutcome::Failed)
    }

    /// The guard could not be reached.
    pub fn unreachable(self) {
        self.report(GuardOutcome::Unreachable)
    }
}

impl Drop for GuardTicket {
    fn drop(&mut self) {
        if !self.reported {
            let _ = self.tx.send(GuardReport {
                identity: self.identity,
                outcome: GuardOutcome::Abandoned,
            });
        }
    }
}

/// Why no guard could be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// Every sampled guard is gone, replaced or backing off, and no more may be sampled.
    #[error("no usable guard: all sampled guards are unlisted, replaced or backing off")]
    NoUsableGuard,
}

/// One sampled guard and its statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardEntry {
    /// Relay identity.
    pub identity: [u8; 20],
    /// When it was sampled.
    pub sampled_on: SystemTime,
    /// When a circuit through it first succeeded.
    pub confirmed_on: Option<SystemTime>,
    /// Circuits reported (succeeded + failed + unreachable) in the current window.
    pub circuits: u64,
    /// Failed and unreachable circuits in the current window.
    pub failures: u64,
    /// Consecutive unreachable reports (drives the back-off).
    pub unreachable_count: u32,
    /// Do not use before this time (unreachable back-off).
    pub retry_at: Option<SystemTime>,
    /// Replaced by proposal 151's rule: never chosen again.
    pub replaced: bool,
}

impl GuardEntry {
    fn new(identity: [u8; 20], now: SystemTime) -> Self {
        GuardEntry {
            identity,
            sampled_on: now,
            confirmed_on: None,
            circuits: 0,
            failures: 0,
            unreachable_count: 0,
            retry_at: None,
            replaced: false,
        }
    }

    /// Failure rate in the current window (0 with no circuits).
    pub fn failure_rate(&self) -> f64 {
        if self.circuits == 0 {
            0.0
        } else {
            self.failures as f64 / self.circuits as f64
        }
    }
}

/// The guard set. Owned by the control thread.
#[derive(Debug)]
pub struct GuardSet {
    cfg: PathConfig,
    /// INVARIANT: identities are unique; order is sample order.
    sampled: Vec<GuardEntry>,
    /// Circuits reported over primary guards since the rule last ran.
    window_circuits: u64,
    tx: Sender<GuardReport>,
    rx: Receiver<GuardReport>,
    /// Guards replaced by the rule so far (for logs and tests).
    replaced_total: u64,
}

impl GuardSet {
    /// An empty set (guards are sampled on first use).
    pub fn new(cfg: PathConfig) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        GuardSet {
            cfg,
            sampled: Vec::new(),
            window_circuits: 0,
            tx,
            rx,
            replaced_total: 0,
        }
    }

    /// The sampled guards in sample order.
    pub fn sampled(&self) -> &[GuardEntry] {
        &self.sampled
    }

    /// How many guards proposal 151's rule has replaced.
    pub fn replaced_total(&self) -> u64 {
        self.replaced_total
    }

    /// Apply the outcomes of resolved or dropped tickets. Called by [`pick`](Self::pick);
    /// call it directly to see statistics before the next pick.
    pub fn process_reports(&mut self, now: SystemTime) {
        while let Ok(report) = self.rx.try_recv() {
            self.apply(report, now);
        }
    }

    fn apply(&mut self, report: GuardReport, now: SystemTime) {
        let Some(entry) = self
            .sampled
            .iter_mut()
            .find(|e| e.identity == report.identity)
        else {
            return;
        };
        match report.outcome {
            GuardOutcome::Abandoned => return,
            GuardOutcome::Succeeded => {
                entry.circuits += 1;
                entry.unreachable_count = 0;
                entry.retry_at = None;
                entry.confirmed_on.get_or_insert(now);
            }
            GuardOutcome::Failed => {
                entry.circuits += 1;
                entry.failures += 1;
            }
            GuardOutcome::Unreachable => {
                entry.circuits += 1;
                entry.failures += 1;
                entry.unreachable_count = entry.unreachable_count.saturating_add(1);
                let shift = entry.unreachable_count.saturating_sub(1).min(16);
                let delay = RETRY_FIRST.saturating_mul(1 << shift).min(RETRY_MAX);
                entry.retry_at = Some(now + delay);
            }
        }
        self.window_circuits += 1;
        if self.cfg.guard_failure_rule != FailureRule::Off
            && self.window_circuits >= self.cfg.guard_circuits_to_observe
        {
            self.apply_failure_rule();
        }
    }

    /// Indices (into `sampled`) of the current primary guards.
    fn primary_indices(&self, sel: &PathSelector, now: SystemTime) -> Vec<usize> {
        let dir = sel.directory();
        self.sampled
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.replaced)
            .filter(|(_, e)| {
                dir.index_of(&e.identity)
                    .is_some_and(|i| sel.is_guard_candidate(i))
            })
            .filter(|(_, e)| retry_passed(e.retry_at, now))
            .map(|(i, _)| i)
            .take(self.cfg.num_entry_guards.max(1))
            .collect()
    }

    /// Proposal 151: replace primary guards whose failure rate exceeds the average.
    fn apply_failure_rule(&mut self) {
        let observed: Vec<usize> = (0..self.sampled.len())
            .filter(|i| !self.sampled[*i].replaced && self.sampled[*i].circuits > 0)
            .collect();
        if observed.len() >= 2 {
            let avg = observed
                .iter()
                .map(|i| self.sampled[*i].failure_rate())
                .sum::<f64>()
                / observed.len() as f64;
            let limit = match self.cfg.guard_failure_rule {
                FailureRule::Points => avg + self.cfg.guard_failure_margin,
                FailureRule::Relative => avg * (1.0 + self.cfg.guard_failure_margin),
                FailureRule::Off => f64::INFINITY,
            };
            for i in observed {
                let e = &mut self.sampled[i];
                if e.failure_rate() > limit {
                    tracing::info!(
                        guard = %hex::encode_upper(e.identity),
                        rate = e.failure_rate(),
                        average = avg,
                        "replacing guard (proposal 151 failure rule)"
                    );
                    e.replaced = true;
                    self.replaced_total += 1;
                }
            }
        }
        for e in &mut self.sampled {
            e.circuits = 0;
            e.failures = 0;
        }
        self.window_circuits = 0;
    }

    /// Drop guards past their lifetime (proposal 271: 120 days after sampling, but a guard
    /// confirmed within the last 60 days stays).
    fn expire(&mut self, now: SystemTime) {
        let life = DAY.saturating_mul(self.cfg.guard_lifetime_days as u32);
        let confirmed_life = DAY.saturating_mul(self.cfg.guard_confirmed_min_lifetime_days as u32);
        let age = |t: SystemTime| now.duration_since(t).unwrap_or(Duration::ZERO);
        self.sampled.retain(|e| {
            age(e.sampled_on) <= life || e.confirmed_on.is_some_and(|c| age(c) <= confirmed_life)
        });
    }

    /// Sample more guards (weighted, without repeats) until there are enough usable
    /// primaries or the sample is full (size limit or weight share).
    fn fill_sample<R: Rng + ?Sized>(&mut self, sel: &PathSelector, now: SystemTime, rng: &mut R) {
        let dir = sel.directory();
        let total = sel.total_weight(Position::Guard);
        let limit =
            total.saturating_mul(u64::from(self.cfg.guard_max_sample_threshold_percent)) / 100;
        loop {
            if self.primary_indices(sel, now).len() >= self.cfg.num_entry_guards.max(1) {
                return;
            }
            let in_sample: u64 = self
                .sampled
                .iter()
                .filter_map(|e| dir.index_of(&e.identity))
                .map(|i| sel.weight(Position::Guard, i))
                .sum();
            // At least NumEntryGuards may always be sampled, even past the weight share.
            let live = self.sampled.iter().filter(|e| !e.replaced).count();
            if self.sampled.len() >= self.cfg.guard_max_sample_size
                || (in_sample >= limit && live >= self.cfg.num_entry_guards)
            {
                return;
            }
            let ids: Vec<[u8; 20]> = self.sampled.iter().map(|e| e.identity).collect();
            let avoid = |i: usize| dir.relay(i).is_some_and(|r| ids.contains(&r.identity));
            match sel.pick_guard(rng, &avoid) {
                Some(i) => {
                    if let Some(r) = dir.relay(i) {
                        self.sampled.push(GuardEntry::new(r.identity, now));
                    }
                }
                None => return,
            }
        }
    }

    /// Nothing usable and nothing left to sample: rather than refuse every circuit from now
    /// on, try the listed guards again. First the ones backing off (Tor marks its primary
    /// guards "maybe reachable" when all are down: guards.c,
    /// `mark_primary_guards_maybe_reachable`); their unreachable counts stay, so the next
    /// failure backs off longer. If every listed guard was replaced by proposal 151's rule
    /// (a small network where all guards failed alike), the replacements are forgiven and
    /// the counts start over: the rule compares guards with each other and no better one
    /// exists. Returns whether anything changed.
    fn fall_back(&mut self, sel: &PathSelector) -> bool {
        let dir = sel.directory();
        let listed = |e: &GuardEntry| {
            dir.index_of(&e.identity)
                .is_some_and(|i| sel.is_guard_candidate(i))
        };
        let mut changed = false;
        for e in self.sampled.iter_mut().filter(|e| listed(e) && !e.replaced) {
            if e.retry_at.take().is_some() {
                changed = true;
            }
        }
        if changed {
            tracing::warn!("every usable guard is backing off: retrying them now");
            return true;
        }
        for e in self.sampled.iter_mut().filter(|e| listed(e) && e.replaced) {
            e.replaced = false;
            e.retry_at = None;
            changed = true;
        }
        if changed {
            tracing::warn!(
                "every listed guard was replaced by the failure rule and none is left to \
                 sample: using them again"
            );
            for e in &mut self.sampled {
                e.circuits = 0;
                e.failures = 0;
            }
            self.window_circuits = 0;
        }
        changed
    }

    /// A guard for the next circuit (an index into `sel`'s directory) and its ticket.
    pub fn pick<R: Rng + ?Sized>(
        &mut self,
        sel: &PathSelector,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<(usize, GuardTicket), GuardError> {
        self.process_reports(now);
        self.expire(now);
        self.fill_sample(sel, now, rng);
        let mut primaries = self.primary_indices(sel, now);
        if primaries.is_empty() && self.fall_back(sel) {
            primaries = self.primary_indices(sel, now);
        }
        let use_n = self
            .cfg
            .num_primary_guards_to_use
            .clamp(1, primaries.len().max(1));
        let choices = &primaries[..use_n.min(primaries.len())];
        if choices.is_empty() {
            return Err(GuardError::NoUsableGuard);
        }
        let k = rng.random_range(0..choices.len());
        let entry = &self.sampled[choices[k]];
        let relay = sel
            .directory()
            .index_of(&entry.identity)
            .ok_or(GuardError::NoUsableGuard)?;
        let ticket = GuardTicket {
            identity: entry.identity,
            tx: self.tx.clone(),
            reported: false,
        };
        Ok((relay, ticket))
    }
}

/// No back-off, or it has passed.
fn retry_passed(retry_at: Option<SystemTime>, now: SystemTime) -> bool {
    match retry_at {
        None => true,
        Some(t) => t <= now,
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_unix_secs(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

#[cfg(test)]
mod tests;
