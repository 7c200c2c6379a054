//! Tor's bandwidth-weights (dir-spec 3.8.3, "Computing Bandwidth Weights", method 10+).
//!
//! Relays fall in four classes by flags: G (Guard only), E (Exit only), D (Guard and Exit),
//! M (neither). `T = G + M + E + D`. The weights say how much of a relay's bandwidth counts
//! in each position so that each position gets about `T/3`; scarce classes (less than `T/3`)
//! keep all of their bandwidth in their own position. Integer math, scale 10000, as Tor.

use super::{Flag, RelayInfo};

/// Weight scale (Tor's `bwweightscale` default).
pub const WEIGHT_SCALE: u32 = 10_000;

/// Tor's position weights: first letter the position (g guard, m middle, e exit, b
/// directory), second the relay class (g Guard-only, m no flag, e Exit-only, d Guard+Exit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct PositionWeights {
    pub wgg: u32,
    pub wgm: u32,
    pub wgd: u32,
    pub wmg: u32,
    pub wmm: u32,
    pub wme: u32,
    pub wmd: u32,
    pub weg: u32,
    pub wee: u32,
    pub wed: u32,
    pub wbd: u32,
}

/// The position a relay is weighted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// First hop.
    Guard,
    /// Second hop.
    Middle,
    /// Last hop.
    Exit,
}

impl PositionWeights {
    /// Every weight at the full scale: what Tor does when the totals leave a class empty
    /// (its authorities then omit bandwidth-weights and clients weigh by bandwidth alone).
    pub const fn flat() -> Self {
        let w = WEIGHT_SCALE;
        PositionWeights {
            wgg: w,
            wgm: w,
            wgd: w,
            wmg: w,
            wmm: w,
            wme: w,
            wmd: w,
            weg: w,
            wee: w,
            wed: w,
            wbd: w,
        }
    }

    /// The weights with their file names, in file order.
    pub fn named(&self) -> [(&'static str, u32); 11] {
        [
            ("Wgg", self.wgg),
            ("Wgm", self.wgm),
            ("Wgd", self.wgd),
            ("Wmg", self.wmg),
            ("Wmm", self.wmm),
            ("Wme", self.wme),
            ("Wmd", self.wmd),
            ("Weg", self.weg),
            ("Wee", self.wee),
            ("Wed", self.wed),
            ("Wbd", self.wbd),
        ]
    }

    /// The weight (scale 10000) of a relay with `guard`/`exit` flags in `pos`.
    pub fn for_class(&self, pos: Position, guard: bool, exit: bool) -> u32 {
        match (pos, guard, exit) {
            (Position::Guard, true, true) => self.wgd,
            (Position::Guard, true, false) => self.wgg,
            (Position::Guard, false, _) => self.wgm,
            (Position::Middle, true, true) => self.wmd,
            (Position::Middle, true, false) => self.wmg,
            (Position::Middle, false, true) => self.wme,
            (Position::Middle, false, false) => self.wmm,
            (Position::Exit, true, true) => self.wed,
            (Position::Exit, false, true) => self.wee,
            (Position::Exit, true, false) => self.weg,
            (Position::Exit, false, false) => self.wee,
        }
    }

    /// Compute the weights from the usable relays' bandwidths (dir-spec 3.8.3).
    pub fn compute(relays: &[RelayInfo]) -> Self {
        let (mut g, mut m, mut e, mut d) = (0i64, 0i64, 0i64, 0i64);
        for r in relays.iter().filter(|r| r.is_usable()) {
            let bw = i64::from(r.bandwidth);
            match (r.flags.contains(Flag::Guard), r.flags.contains(Flag::Exit)) {
                (true, true) => d += bw,
                (true, false) => g += bw,
                (false, true) => e += bw,
                (false, false) => m += bw,
            }
        }
        Self::from_totals(g, m, e, d)
    }

    /// Compute the weights from class totals G, M, E, D (dir-spec 3.8.3).
    pub fn from_totals(g: i64, m: i64, e: i64, d: i64) -> Self {
        // Tor refuses to compute weights when a class is empty (networkstatus.c); so do we.
        if g <= 0 || m <= 0 || e <= 0 || d <= 0 {
            return Self::flat();
        }
        let w = i64::from(WEIGHT_SCALE);
        let t = g + m + e + d;
        let r = if 3 * e >= t && 3 * g >= t {
            // Case 1: neither scarce; Wmg == Wmd, Wed == 1/3.
            let wee = (w * (e + g + m)) / (3 * e);
            let wmg = (w * (2 * g - e - m)) / (3 * g);
            RawWeights {
                wgg: w - wmg,
                wgd: w / 3,
                wmg,
                wme: w - wee,
                wmd: w / 3,
                wee,
                wed: w / 3,
            }
        } else if 3 * e < t && 3 * g < t {
            RawWeights::both_scarce(w, g, m, e, d)
        } else if 3 * g < t {
            // Case 3 with G scarce is case 3 with E scarce, the classes swapped.
            RawWeights::one_scarce(w, g, m, e, d)
        } else {
            RawWeights::one_scarce(w, e, m, g, d).swapped()
        };
        let clamp = |x: i64| x.clamp(0, w) as u32;
        // Tor's fixed assignments: Wgm = Wgg, Wem = Wee, Weg = Wed, Wmm = W, Wbd = Wmd.
        PositionWeights {
            wgg: clamp(r.wgg),
            wgm: clamp(r.wgg),
            wgd: clamp(r.wgd),
            wmg: clamp(r.wmg),
            wmm: WEIGHT_SCALE,
            wme: clamp(r.wme),
            wmd: clamp(r.wmd),
            weg: clamp(r.wed),
            wee: clamp(r.wee),
            wed: clamp(r.wed),
            wbd: clamp(r.wmd),
        }
    }
}

/// The seven weights dir-spec 3.8.3 solves for (the other four follow from them), unclamped.
struct RawWeights {
    wgg: i64,
    wgd: i64,
    wmg: i64,
    wme: i64,
    wmd: i64,
    wee: i64,
    wed: i64,
}

impl RawWeights {
    /// Case 2: both guards and exits scarce (3E < T and 3G < T).
    fn both_scarce(w: i64, g: i64, m: i64, e: i64, d: i64) -> Self {
        let (r, s) = (e.min(g), e.max(g));
        if r + d < s {
            // 2a: all of D to the scarcer class.
            let (wed, wgd) = if e < g { (w, 0) } else { (0, w) };
            return RawWeights {
                wgg: w,
                wgd,
                wmg: 0,
                wme: 0,
                wmd: 0,
                wee: w,
                wed,
            };
        }
        // 2b1: Wgg = 1, Wmd == Wgd.
        let c_wee = (w * (e - g + m)) / e;
        let c_wed = (w * (d - 2 * e + 4 * g - 2 * m)) / (3 * d);
        let c_wme = (w * (g - m)) / e;
        let c_wmd = (w - c_wed) / 2;
        let in_range = |x: i64| (0..=w).contains(&x);
        if [c_wee, c_wed, c_wme, c_wmd].into_iter().all(in_range) {
            return RawWeights {
                wgg: w,
                wgd: c_wmd,
                wmg: 0,
                wme: c_wme,
                wmd: c_wmd,
                wee: c_wee,
                wed: c_wed,
            };
        }
        // 2b2: Wgg = Wee = 1; 2b3 when M > T/3 makes Wmd negative.
        // (Tor's check also tests balance within a tolerance; we test range only.)
        let wed = (w * (d - 2 * e + g + m)) / (3 * d);
        let wmd = ((w * (d - 2 * m + g + e)) / (3 * d)).max(0);
        RawWeights {
            wgg: w,
            wgd: w - wed - wmd,
            wmg: 0,
            wme: 0,
            wmd,
            wee: w,
            wed,
        }
    }

    /// Case 3 with guards scarce (3G < T, 3E >= T).
    fn one_scarce(w: i64, g: i64, m: i64, e: i64, d: i64) -> Self {
        let t = g + m + e + d;
        if 3 * (g + d) < t {
            let wme = if e < m { 0 } else { (w * (e - m)) / (2 * e) };
            RawWeights {
                wgg: w,
                wgd: w,
                wmg: 0,
                wme,
                wmd: 0,
                wee: w - wme,
                wed: 0,
            }
        } else {
            let wgd = (w * (d - 2 * g + e + m)) / (3 * d);
            let wee = (w * (e + m)) / (2 * e);
            RawWeights {
                wgg: w,
                wgd,
                wmg: 0,
                wme: w - wee,
                wmd: (w - wgd) / 2,
                wee,
                wed: (w - wgd) / 2,
            }
        }
    }

    /// The same weights with the guard and exit classes exchanged.
    fn swapped(self) -> Self {
        RawWeights {
            wgg: self.wee,
            wgd: self.wed,
            wmg: self.wme,
            wme: self.wmg,
            wmd: self.wmd,
            wee: self.wgg,
            wed: self.wgd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balanced(w: &PositionWeights, g: i64, m: i64, e: i64, d: i64) -> [i64; 3] {
        let s = i64::from(WEIGHT_SCALE);
        let gp = g * i64::from(w.wgg) + d * i64::from(w.wgd);
        let mp = g * i64::from(w.wmg) + m * s + e * i64::from(w.wme) + d * i64::from(w.wmd);
        let ep = e * i64::from(w.wee) + d * i64::from(w.wed);
        [gp / s, mp / s, ep / s]
    }

    #[test]
    fn case1_neither_scarce() {
        // G = E = 4000, M = 1000, D = 1000, T = 10000.
        let w = PositionWeights::from_totals(4000, 1000, 4000, 1000);
        assert_eq!((w.wgd, w.wed, w.wmd), (3333, 3333, 3333));
        assert_eq!(w.wee, (10_000 * 9000) / 12000); // 7500
        assert_eq!(w.wme, 2500);
        assert_eq!(w.wmg, 2500);
        assert_eq!(w.wgg, 7500);
        let [gp, mp, ep] = balanced(&w, 4000, 1000, 4000, 1000);
        // Each position gets about T/3.
        for p in [gp, mp, ep] {
            assert!((p - 3333).abs() <= 2, "{gp} {mp} {ep}");
        }
    }

    #[test]
    fn case2a_exits_scarcest() {
        let w = PositionWeights::from_totals(2000, 7000, 500, 500);
        assert_eq!(
            (w.wgg, w.wee, w.wmg, w.wme, w.wmd),
            (10_000, 10_000, 0, 0, 0)
        );
        assert_eq!((w.wed, w.wgd), (10_000, 0));
    }

    #[test]
    fn case3_exit_scarce_subcase_b() {
        // E scarce (E = 2000 < T/3), E + D >= T/3.
        let (g, m, e, d) = (4000, 2000, 2000, 2000);
        let w = PositionWeights::from_totals(g, m, e, d);
        assert_eq!(w.wee, 10_000);
        assert_eq!(w.wme, 0);
        assert_eq!(w.wed, (10_000 * (d - 2 * e + g + m) / (3 * d)) as u32);
        assert_eq!(w.wmd, w.wgd);
        let [_, _, ep] = balanced(&w, g, m, e, d);
        assert!((ep - 3333).abs() <= 2);
    }

    #[test]
    fn empty_class_gives_flat_weights() {
        assert_eq!(
            PositionWeights::from_totals(10, 10, 10, 0),
            PositionWeights::flat()
        );
    }
}
