//! `kistrel path sample`: pick many paths and compare each relay's observed share per
//! position with its expected share.
//!
//! Expected shares are exact for the rules the selector applies when the directory has no
//! families and no two relays share a subnet (as [`synthetic_directory`]): exit by weight;
//! guard by weight among relays other than the exit; middle by weight among relays other
//! than the guard and exit. With families or shared subnets under `EnforceDistinctSubnets`
//! those exclusions are not modelled and the report says so (`approximate`).
//!
//! [`synthetic_directory`]: crate::dir::synthetic_directory

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use rand::Rng;
use serde::Serialize;

use crate::dir::Position;
use crate::select::{PathError, PathSelector};

/// One relay in one position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PositionSample {
    /// Times picked.
    pub count: u64,
    /// `count / n`.
    pub observed: f64,
    /// Expected share.
    pub expected: f64,
}

/// One relay's counts in all positions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelaySample {
    /// Index in the directory.
    pub index: usize,
    /// Nickname.
    pub nickname: String,
    /// As guard.
    pub guard: PositionSample,
    /// As middle.
    pub middle: PositionSample,
    /// As exit.
    pub exit: PositionSample,
}

/// Pearson's chi-square statistic of one position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChiSquare {
    /// The statistic.
    pub statistic: f64,
    /// Degrees of freedom: cells - 1 (cells with expected count < 5 pooled into one).
    pub df: usize,
    /// Critical value at significance 0.001 (Wilson-Hilferty approximation).
    pub critical_001: f64,
}

impl ChiSquare {
    /// Whether the observed counts are consistent with the expected shares at 0.001.
    pub fn passes(&self) -> bool {
        self.statistic <= self.critical_001
    }
}

/// The result of [`sample_paths`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleReport {
    /// Paths picked.
    pub n: u64,
    /// True when families or shared subnets make the expected shares approximate.
    pub approximate: bool,
    /// Every relay, in directory order.
    pub relays: Vec<RelaySample>,
}

/// Pick `n` paths (no target, weighted guard each time) and count.
pub fn sample_paths<R: Rng + ?Sized>(
    sel: &PathSelector,
    n: u64,
    rng: &mut R,
) -> Result<SampleReport, PathError> {
    let dir = sel.directory();
    let len = dir.relays().len();
    let mut counts = vec![[0u64; 3]; len];
    for _ in 0..n {
        let p = sel.select_path(rng, None, None)?;
        counts[p.guard][0] += 1;
        counts[p.middle][1] += 1;
        counts[p.exit][2] += 1;
    }
    let [eg, em, ee] = expected_shares(sel);
    let share = |c: u64| if n == 0 { 0.0 } else { c as f64 / n as f64 };
    let relays = dir
        .relays()
        .iter()
        .enumerate()
        .map(|(i, r)| RelaySample {
            index: i,
            nickname: r.nickname.clone(),
            guard: PositionSample {
                count: counts[i][0],
                observed: share(counts[i][0]),
                expected: eg[i],
            },
            middle: PositionSample {
                count: counts[i][1],
                observed: share(counts[i][1]),
                expected: em[i],
            },
            exit: PositionSample {
                count: counts[i][2],
                observed: share(counts[i][2]),
                expected: ee[i],
            },
        })
        .collect();
    Ok(SampleReport {
        n,
        approximate: exclusions_matter(sel),
        relays,
    })
}

fn exclusions_matter(sel: &PathSelector) -> bool {
    let dir = sel.directory();
    let any_family = (0..dir.relays().len())
        .any(|i| (0..dir.relays().len()).any(|j| i != j && dir.same_family(i, j)));
    if any_family {
        return true;
    }
    if !sel.config().enforce_distinct_subnets {
        return false;
    }
    let mut seen = HashSet::new();
    dir.relays().iter().filter(|r| r.is_usable()).any(|r| {
        let key = match r.address.ip() {
            IpAddr::V4(a) => (4u8, u32::from(a) >> 16),
            IpAddr::V6(a) => (6u8, (u128::from(a) >> 96) as u32),
        };
        !seen.insert(key)
    })
}

/// Exact shares under the no-reuse rule, O(guards x exits). See the module doc.
pub fn expected_shares(sel: &PathSelector) -> [Vec<f64>; 3] {
    let len = sel.directory().relays().len();
    let w = |pos, i| sel.weight(pos, i) as f64;
    let wg: Vec<f64> = (0..len).map(|i| w(Position::Guard, i)).collect();
    let wm: Vec<f64> = (0..len).map(|i| w(Position::Middle, i)).collect();
    let we: Vec<f64> = (0..len).map(|i| w(Position::Exit, i)).collect();
    let (tg, tm, te) = (
        wg.iter().sum::<f64>(),
        wm.iter().sum::<f64>(),
        we.iter().sum::<f64>(),
    );
    let guards: Vec<usize> = (0..len).filter(|i| wg[*i] > 0.0).collect();
    let exits: Vec<usize> = (0..len).filter(|i| we[*i] > 0.0).collect();
    let pe: Vec<f64> = we
        .iter()
        .map(|x| if te > 0.0 { x / te } else { 0.0 })
        .collect();
    let inv = |x: f64| if x > 0.0 { 1.0 / x } else { 0.0 };
    // Guard: P(g) = wg[g] * sum_{e != g} pe[e] / (Tg - wg[e]).
    let s: f64 = exits.iter().map(|&e| pe[e] * inv(tg - wg[e])).sum();
    let pg: Vec<f64> = (0..len)
        .map(|g| wg[g] * (s - pe[g] * inv(tg - wg[g])))
        .collect();
    // Middle: P(m) = wm[m] * sum_e pe[e] sum_{g != e, m} P(g|e) / (Tm - wm[g] - wm[e]).
    let a: Vec<f64> = (0..len)
        .map(|e| {
            if we[e] == 0.0 {
                return 0.0;
            }
            let pg_e = inv(tg - wg[e]);
            guards
                .iter()
                .filter(|&&g| g != e)
                .map(|&g| wg[g] * pg_e * inv(tm - wm[g] - wm[e]))
                .sum()
        })
        .collect();
    let t: f64 = exits.iter().map(|&e| pe[e] * a[e]).sum();
    let pm: Vec<f64> = (0..len)
        .map(|m| {
            if wm[m] == 0.0 {
                return 0.0;
            }
            let mut sum = t - pe[m] * a[m];
            if wg[m] > 0.0 {
                // Paths where m was already the guard.
                sum -= exits
                    .iter()
                    .filter(|&&e| e != m)
                    .map(|&e| pe[e] * wg[m] * inv(tg - wg[e]) * inv(tm - wm[m] - wm[e]))
                    .sum::<f64>();
            }
            wm[m] * sum
        })
        .collect();
    [pg, pm, pe]
}

impl SampleReport {
    /// Pearson's chi-square of observed counts against expected shares in `pos`.
    pub fn chi_square(&self, pos: Position) -> ChiSquare {
        let n = self.n as f64;
        let (mut stat, mut cells) = (0.0, 0usize);
        let (mut pooled_obs, mut pooled_exp) = (0.0, 0.0);
        for r in &self.relays {
            let s = match pos {
                Position::Guard => r.guard,
                Position::Middle => r.middle,
                Position::Exit => r.exit,
            };
            let exp = s.expected * n;
            if exp <= 0.0 {
                continue;
            }
            if exp < 5.0 {
                pooled_obs += s.count as f64;
                pooled_exp += exp;
                continue;
            }
            stat += (s.count as f64 - exp).powi(2) / exp;
            cells += 1;
        }
        if pooled_exp > 0.0 {
            stat += (pooled_obs - pooled_exp).powi(2) / pooled_exp;
            cells += 1;
        }
        let df = cells.saturating_sub(1).max(1);
        // Wilson-Hilferty: chi2_q(df) ~ df (1 - 2/(9 df) + z_q sqrt(2/(9 df)))^3; z = 3.0902.
        let k = df as f64;
        let c = 2.0 / (9.0 * k);
        let critical_001 = k * (1.0 - c + 3.0902 * c.sqrt()).powi(3);
        ChiSquare {
            statistic: stat,
            df,
            critical_001,
        }
    }
}

impl fmt::Display for SampleReport {
    /// One row per relay: count and observed vs expected percent per position.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} paths sampled{}",
            self.n,
            if self.approximate {
                " (expected shares approximate)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "{:<20} {:>9} {:>8} {:>8}  {:>9} {:>8} {:>8}  {:>9} {:>8} {:>8}",
            "relay", "guard", "obs%", "exp%", "middle", "obs%", "exp%", "exit", "obs%", "exp%"
        )?;
        for r in &self.relays {
            write!(f, "{:<20}", r.nickname)?;
            for s in [r.guard, r.middle, r.exit] {
                write!(
                    f,
                    " {:>9} {:>8.4} {:>8.4} ",
                    s.count,
                    100.0 * s.observed,
                    100.0 * s.expected
                )?;
            }
            writeln!(f)?;
        }
        for (name, pos) in [
            ("guard", Position::Guard),
            ("middle", Position::Middle),
            ("exit", Position::Exit),
        ] {
            let c = self.chi_square(pos);
            writeln!(
                f,
                "chi-square {name}: {:.1} on {} df (critical {:.1} at 0.001): {}",
                c.statistic,
                c.df,
                c.critical_001,
                if c.passes() {
                    "consistent"
                } else {
                    "NOT consistent"
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
