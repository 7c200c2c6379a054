//! Bandwidth-weighted path selection with Tor's position weights.
//!
//! ```text
//!   exit  <- weighted among relays whose policy allows the target (Wee/Wed/...)
//!   guard <- the caller's guard, or weighted among Guard relays (Wgg/Wgd)
//!   middle<- weighted among all usable relays (Wmm/Wmg/Wme/Wmd)
//!   each pick rejects relays that conflict with the ones already chosen
//! ```
//!
//! Every position has a table of cumulative weights built once per directory, so a pick is
//! a uniform draw plus a binary search: O(log n). A pick that lands on a conflicting relay
//! (same relay, same /16 (IPv4) or /32 (IPv6) when `EnforceDistinctSubnets`, same family)
//! or on an exit whose policy refuses the target is redrawn, at most [`MAX_REDRAWS`] times;
//! then one O(n) pass over the filtered candidates decides, so a pick always terminates and
//! is exact: the result is the weighted choice among the allowed relays either way.

use std::net::IpAddr;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::dir::Position;
use crate::dir::{Directory, Flag, RelayInfo};

mod pin;
pub use pin::{NodeSet, NodeSetError, NodeSpec, PinError};

/// Redraws before falling back to a linear pass over the candidates.
pub const MAX_REDRAWS: usize = 32;

/// Path selection and guard configuration (torrc names as serde keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathConfig {
    /// `EnforceDistinctSubnets`: no two relays of a path in the same IPv4 /16 or IPv6 /32.
    /// Turn off on a one-machine testbed where every relay is on 127.0.0.1.
    #[serde(rename = "EnforceDistinctSubnets")]
    pub enforce_distinct_subnets: bool,
    /// `UseEntryGuards`: take the first hop from the [`GuardSet`](crate::guard::GuardSet)
    /// instead of a fresh weighted pick per circuit.
    #[serde(rename = "UseEntryGuards")]
    pub use_entry_guards: bool,
    /// `NumEntryGuards`: primary guards (Tor 3; proposal 151 suggests 5).
    #[serde(rename = "NumEntryGuards")]
    pub num_entry_guards: usize,
    /// Tor's `guard-n-primary-guards-to-use`: a circuit takes one of the first this-many
    /// usable primary guards, uniformly (Tor 1 = "the first usable primary"). Proposal 151's
    /// failure statistics need circuits spread over all its 5 guards: set 5 with it.
    #[serde(rename = "NumPrimaryGuardsToUse")]
    pub num_primary_guards_to_use: usize,
    /// Proposal 151's guard rule and how "exceeds the average by 10%" is read.
    #[serde(rename = "GuardFailureRule")]
    pub guard_failure_rule: FailureRule,
    /// The rule's margin: 0.10 (10 percentage points, or 10% relative).
    #[serde(rename = "GuardFailureMargin")]
    pub guard_failure_margin: f64,
    /// Proposal 151's `ncircuits_to_observe` for guards: circuits (over all primary guards)
    /// between two evaluations of the rule.
    #[serde(rename = "GuardCircuitsToObserve")]
    pub guard_circuits_to_observe: u64,
    /// Tor's `guard-max-sample-size` (60).
    #[serde(rename = "GuardMaxSampleSize")]
    pub guard_max_sample_size: usize,
    /// Tor's `guard-max-sample-threshold-percent` (20): stop sampling once the sample holds
    /// this share of the guard-position weight.
    #[serde(rename = "GuardMaxSampleThresholdPercent")]
    pub guard_max_sample_threshold_percent: u32,
    /// Tor's `guard-lifetime-days` (120): a sampled guard is dropped this long after it was
    /// sampled, unless confirmed recently.
    #[serde(rename = "GuardLifetimeDays")]
    pub guard_lifetime_days: u64,
    /// Tor's `guard-confirmed-min-lifetime-days` (60): a confirmed guard is kept at least
    /// this long after its confirmation.
    #[serde(rename = "GuardConfirmedMinLifetimeDays")]
    pub guard_confirmed_min_lifetime_days: u64,
    /// `EntryNodes`: when not empty, guards are taken only from these relays (see [`pin`]).
    #[serde(rename = "EntryNodes")]
    pub entry_nodes: NodeSet,
    /// `MiddleNodes`: when not empty, middles are taken only from these relays.
    #[serde(rename = "MiddleNodes")]
    pub middle_nodes: NodeSet,
    /// `ExitNodes`: when not empty, exits are taken only from these relays.
    #[serde(rename = "ExitNodes")]
    pub exit_nodes: NodeSet,
}

/// How proposal 151's "exceeds the average failure rate of all guards by 10%" is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureRule {
    /// Never replace a guard for its failure rate (Tor's behaviour).
    Off,
    /// Default: `rate > average + margin` (percentage points): stable when the average is
    /// small, where 10% relative would flag a guard at 2.2% against an average of 2%.
    Points,
    /// `rate > average * (1 + margin)` (relative).
    Relative,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            enforce_distinct_subnets: true,
            use_entry_guards: true,
            num_entry_guards: 3,
            num_primary_guards_to_use: 1,
            guard_failure_rule: FailureRule::Points,
            guard_failure_margin: 0.10,
            guard_circuits_to_observe: 1000,
            guard_max_sample_size: 60,
            guard_max_sample_threshold_percent: 20,
            guard_lifetime_days: 120,
            guard_confirmed_min_lifetime_days: 60,
            entry_nodes: NodeSet::default(),
            middle_nodes: NodeSet::default(),
            exit_nodes: NodeSet::default(),
        }
    }
}

impl PathConfig {
    /// Proposal 151's setting: 5 entry guards, circuits spread over all 5.
    pub fn proposal_151() -> Self {
        PathConfig {
            num_entry_guards: 5,
            num_primary_guards_to_use: 5,
            ..PathConfig::default()
        }
    }
}

/// Where the circuit's streams will go; chooses which exits qualify (a control-plane
/// message field, so defined in `kistrel-base`).
pub use kistrel_base::control::ExitTarget;

/// A chosen path: indices into [`Directory::relays`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Path {
    /// First hop.
    pub guard: usize,
    /// Second hop.
    pub middle: usize,
    /// Last hop.
    pub exit: usize,
}

/// Why no path could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// No usable relay's exit policy allows the target.
    #[error("no usable exit allows the target")]
    NoExit,
    /// No usable Guard relay is compatible with the chosen exit.
    #[error("no usable guard compatible with the exit")]
    NoGuard,
    /// No usable relay can be the middle hop.
    #[error("no usable middle relay compatible with the guard and exit")]
    NoMiddle,
    /// The guard passed in is not a usable Guard relay of this directory.
    #[error("relay {0} is not a usable guard in this directory")]
    BadGuard(usize),
}

/// Cumulative weights of one position.
#[derive(Debug, Clone, Default)]
struct WeightTable {
    /// Relay index of each candidate.
    members: Vec<u32>,
    /// INVARIANT: `cum[i]` = sum of the weights of `members[..=i]`; non-decreasing.
    cum: Vec<u64>,
    /// Per relay, its weight in this position (0 when not a candidate).
    weight_of: Vec<u64>,
}

impl WeightTable {
    /// The candidates of `pos` and their weights: bandwidth x position weight, or, when the
    /// position is `pinned`, bandwidth alone (at least 1): the operator named these relays,
    /// so a position weight of 0 (e.g. Wmd when exits are scarce) must not exclude them.
    fn build(
        dir: &Directory,
        pos: Position,
        pinned: bool,
        eligible: impl Fn(&RelayInfo) -> bool,
    ) -> Self {
        let w = dir.weights();
        let mut t = WeightTable {
            weight_of: vec![0; dir.relays().len()],
            ..Default::default()
        };
        let mut total = 0u64;
        for (i, r) in dir.relays().iter().enumerate() {
            if !r.is_usable() || !eligible(r) {
                continue;
            }
            let weight = if pinned {
                u64::from(r.bandwidth.max(1))
            } else {
                let pw = w.for_class(
                    pos,
                    r.flags.contains(Flag::Guard),
                    r.flags.contains(Flag::Exit),
                );
                u64::from(r.bandwidth) * u64::from(pw)
            };
            if weight == 0 {
                continue;
            }
            total += weight;
            t.members.push(i as u32);
            t.cum.push(total);
            t.weight_of[i] = weight;
        }
        t
    }

    fn total(&self) -> u64 {
        self.cum.last().copied().unwrap_or(0)
    }

    /// One weighted draw: O(log n).
    fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let r = rng.random_range(0..total);
        let i = self.cum.partition_point(|c| *c <= r);
        self.members.get(i).map(|m| *m as usize)
    }

    /// Weighted draw among members passing `ok`: redraws, then an exact linear pass.
    fn pick<R: Rng + ?Sized>(&self, rng: &mut R, ok: impl Fn(usize) -> bool) -> Option<usize> {
        for _ in 0..MAX_REDRAWS {
            let i = self.draw(rng)?;
            if ok(i) {
                return Some(i);
            }
        }
        let allowed: u64 = self
            .members
            .iter()
            .map(|m| *m as usize)
            .filter(|m| ok(*m))
            .map(|m| self.weight_of[m])
            .sum();
        if allowed == 0 {
            return None;
        }
        let mut r = rng.random_range(0..allowed);
        for m in self.members.iter().map(|m| *m as usize).filter(|m| ok(*m)) {
            let w = self.weight_of[m];
            if r < w {
                return Some(m);
            }
            r -= w;
        }
        None
    }
}

/// Chooses paths over one directory. Build once per directory; picks take `&self`.
#[derive(Debug, Clone)]
pub struct PathSelector {
    dir: Directory,
    cfg: PathConfig,
    guards: WeightTable,
    middles: WeightTable,
    /// Every relay whose policy accepts something; filtered per target at pick time.
    exits: WeightTable,
}

impl PathSelector {
    /// Build the weight tables for `dir` (O(n)); keeps its own copy of the directory.
    pub fn new(dir: &Directory, cfg: PathConfig) -> Self {
        let (entry, middle, exit) = (&cfg.entry_nodes, &cfg.middle_nodes, &cfg.exit_nodes);
        let guards = WeightTable::build(dir, Position::Guard, !entry.is_empty(), |r| {
            r.flags.contains(Flag::Guard) && entry.admits(r)
        });
        let middles = WeightTable::build(dir, Position::Middle, !middle.is_empty(), |r| {
            middle.admits(r)
        });
        let exits = WeightTable::build(dir, Position::Exit, !exit.is_empty(), |r| {
            !r.exit_policy.is_reject_all() && exit.admits(r)
        });
        PathSelector {
            dir: dir.clone(),
            cfg,
            guards,
            middles,
            exits,
        }
    }

    /// The directory paths index into.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// The configuration.
    pub fn config(&self) -> &PathConfig {
        &self.cfg
    }

    /// A relay's weight (bandwidth x position weight) in `pos`; 0 when not a candidate.
    pub fn weight(&self, pos: Position, relay: usize) -> u64 {
        let t = match pos {
            Position::Guard => &self.guards,
            Position::Middle => &self.middles,
            Position::Exit => &self.exits,
        };
        t.weight_of.get(relay).copied().unwrap_or(0)
    }

    /// Sum of all candidates' weights in `pos`.
    pub fn total_weight(&self, pos: Position) -> u64 {
        match pos {
            Position::Guard => self.guards.total(),
            Position::Middle => self.middles.total(),
            Position::Exit => self.exits.total(),
        }
    }

    /// Check `EntryNodes`/`MiddleNodes`/`ExitNodes` against the directory: every entry names
    /// a relay, and each pinned position keeps at least one candidate.
    pub fn check_pins(&self) -> Result<(), PinError> {
        let pins = [
            ("EntryNodes", &self.cfg.entry_nodes, &self.guards),
            ("MiddleNodes", &self.cfg.middle_nodes, &self.middles),
            ("ExitNodes", &self.cfg.exit_nodes, &self.exits),
        ];
        for (key, set, table) in pins {
            if set.is_empty() {
                continue;
            }
            if let Some(e) = set
                .entries()
                .iter()
                .find(|e| !self.dir.relays().iter().any(|r| e.matches(r)))
            {
                return Err(PinError::Unknown {
                    key,
                    entry: e.to_string(),
                });
            }
            if table.total() == 0 {
                return Err(PinError::NoneEligible {
                    key,
                    set: set.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether `relay` may be a guard (usable, Guard flag, nonzero weight).
    pub fn is_guard_candidate(&self, relay: usize) -> bool {
        self.weight(Position::Guard, relay) > 0
    }

    /// Whether two relays may not share a path: the same relay, the same family, or (with
    /// `EnforceDistinctSubnets`) the same IPv4 /16 or IPv6 /32 (Tor's rule).
    pub fn conflicts(&self, a: usize, b: usize) -> bool {
        if a == b || self.dir.same_family(a, b) {
            return true;
        }
        if !self.cfg.enforce_distinct_subnets {
            return false;
        }
        match (self.dir.relay(a), self.dir.relay(b)) {
            (Some(ra), Some(rb)) => same_subnet(ra.address.ip(), rb.address.ip()),
            _ => false,
        }
    }

    fn exit_allows(&self, relay: usize, target: Option<ExitTarget>) -> bool {
        let Some(t) = target else { return true };
        let Some(r) = self.dir.relay(relay) else {
            return false;
        };
        match t.addr {
            Some(ip) => r.exit_policy.allows(ip, t.port),
            None => r.exit_policy.allows_port(t.port),
        }
    }

    /// A weighted guard compatible with nothing chosen yet (what a [`GuardSet`] samples from).
    ///
    /// [`GuardSet`]: crate::guard::GuardSet
    pub fn pick_guard<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        avoid: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        self.guards.pick(rng, |g| !avoid(g))
    }

    /// Choose a path: exit first (policy for `target`, weight), then the guard (`guard` if
    /// given, else weighted), then the middle. O(log n) expected per pick.
    pub fn select_path<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        target: Option<ExitTarget>,
        guard: Option<usize>,
    ) -> Result<Path, PathError> {
        if let Some(g) = guard {
            if !self.is_guard_candidate(g) {
                return Err(PathError::BadGuard(g));
            }
        }
        if guard.is_none() && self.guards.total() == 0 {
            return Err(PathError::NoGuard);
        }
        let exit = self
            .exits
            .pick(rng, |e| {
                self.exit_allows(e, target)
                    && match guard {
                        Some(g) => !self.conflicts(e, g),
                        // With the guards pinned, leave one of them usable with this exit.
                        None if !self.cfg.entry_nodes.is_empty() => self
                            .guards
                            .members
                            .iter()
                            .any(|g| !self.conflicts(e, *g as usize)),
                        None => true,
                    }
            })
            .ok_or(PathError::NoExit)?;
        let guard = match guard {
            Some(g) => g,
            None => self
                .guards
                .pick(rng, |g| !self.conflicts(g, exit))
                .ok_or(PathError::NoGuard)?,
        };
        let middle = self
            .middles
            .pick(rng, |m| {
                !self.conflicts(m, exit) && !self.conflicts(m, guard)
            })
            .ok_or(PathError::NoMiddle)?;
        Ok(Path {
            guard,
            middle,
            exit,
        })
    }
}

/// Same IPv4 /16 or same IPv6 /32 (Tor's `EnforceDistinctSubnets` widths).
fn same_subnet(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..2] == b.octets()[..2],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.segments()[..2] == b.segments()[..2],
        _ => false,
    }
}

#[cfg(test)]
mod tests;
