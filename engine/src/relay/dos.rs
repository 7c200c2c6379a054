//! Circuit-creation rate limit: a token bucket per channel, so a peer that sends CREATE
//! cells faster than it is allowed gets DESTROY (RESOURCELIMIT) at once and the expensive
//! part (the ntor handshake, the circuit state) is skipped.
//!
//! Names and meaning follow Tor's `DoSCircuitCreationRate` / `DoSCircuitCreationBurst`
//! (tor.1 man page, "DENIAL OF SERVICE MITIGATION OPTIONS"; core/or/dos.c): the bucket holds
//! at most `burst` tokens, gains `rate` tokens per second, and each CREATE, CREATE2 or
//! CREATE_FAST takes one; with none left the cell is answered with DESTROY reason
//! RESOURCELIMIT (Tor's `DOS_CC_DEFENSE_REFUSE_CELL`, core/or/command.c).
//!
//! Differences from Tor: the bucket is per channel, not per client IP address (the sans-IO
//! relay knows channels), it applies to every channel (Tor exempts known relays), and a
//! refusal lasts only while the bucket is empty (Tor keeps refusing for
//! `DoSCircuitCreationDefenseTimePeriod`). Tor's defaults (rate 3/s, burst 90, per address
//! with 3 or more connections) would throttle a benchmark client building hundreds of
//! circuits at once, so kistrel's defaults are higher: see [`CircuitCreationLimit`].

use std::time::Duration;

use crate::time::Instant;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `DoSCircuitCreationRate` / `DoSCircuitCreationBurst` for one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitCreationLimit {
    /// Tokens gained per second (CREATE cells allowed per second, sustained). Zero: only
    /// the burst, ever.
    pub rate: u32,
    /// Bucket size: CREATE cells allowed at once on a fresh (or long idle) channel.
    pub burst: u32,
}

impl Default for CircuitCreationLimit {
    /// 100 per second, bursts of 2000: a client building a few hundred circuits at once
    /// (the end-to-end tests build 110 back to back, `kistrel bench --circuits N` builds N)
    /// is never refused; a flood of thousands per second is.
    fn default() -> Self {
        CircuitCreationLimit {
            rate: 100,
            burst: 2000,
        }
    }
}

/// A token bucket refilled from the `now` the relay is driven with. Integer arithmetic:
/// over any run the tokens granted are exactly `burst + floor(rate * elapsed)` (minus
/// what a full bucket could not hold), independent of how often it is asked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CreateBucket {
    tokens: u32,
    /// Time up to which refills have been credited (the remainder of a partial token
    /// stays owed, so frequent calls lose nothing).
    credited_to: Instant,
}

impl CreateBucket {
    /// A full bucket at `now`.
    pub(crate) fn new(now: Instant, limit: &CircuitCreationLimit) -> Self {
        CreateBucket {
            tokens: limit.burst,
            credited_to: now,
        }
    }

    /// Takes one token if there is one (after crediting the refill up to `now`).
    pub(crate) fn try_take(&mut self, now: Instant, limit: &CircuitCreationLimit) -> bool {
        self.refill(now, limit);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn refill(&mut self, now: Instant, limit: &CircuitCreationLimit) {
        if self.tokens >= limit.burst || limit.rate == 0 {
            // Nothing to add (full) or nothing ever added: time spent here is not owed.
            self.credited_to = self.credited_to.max(now);
            return;
        }
        let elapsed = now.saturating_duration_since(self.credited_to).as_nanos();
        let rate = u128::from(limit.rate);
        let gained = elapsed * rate / NANOS_PER_SEC;
        if gained == 0 {
            return;
        }
        let room = u128::from(limit.burst - self.tokens);
        if gained >= room {
            self.tokens = limit.burst;
            self.credited_to = now;
        } else {
            // gained < room <= u32::MAX, so the conversions below are exact.
            self.tokens += u32::try_from(gained).unwrap_or(0);
            let used_nanos = (gained * NANOS_PER_SEC).div_ceil(rate);
            let used = Duration::from_nanos(u64::try_from(used_nanos).unwrap_or(u64::MAX));
            self.credited_to += used;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: u32, burst: u32) -> CircuitCreationLimit {
        CircuitCreationLimit { rate, burst }
    }

    fn granted(b: &mut CreateBucket, l: &CircuitCreationLimit, now: Instant, asks: u32) -> u32 {
        (0..asks).filter(|_| b.try_take(now, l)).count() as u32
    }

    #[test]
    fn burst_then_rate_per_second() {
        let l = limit(10, 5);
        let mut b = CreateBucket::new(Instant::ZERO, &l);
        assert_eq!(granted(&mut b, &l, Instant::ZERO, 100), 5);
        // 0.35 s later: 3 tokens (3.5 owed, the half stays owed).
        assert_eq!(granted(&mut b, &l, Instant::from_millis(350), 100), 3);
        // 0.05 s later: the owed half plus this half make one more.
        assert_eq!(granted(&mut b, &l, Instant::from_millis(400), 100), 1);
        // Asking every millisecond for a second gets exactly the rate.
        let got: u32 = (401..=1400)
            .map(|ms| granted(&mut b, &l, Instant::from_millis(ms), 10))
            .sum();
        assert_eq!(got, 10);
    }

    #[test]
    fn an_idle_bucket_fills_to_the_burst_only() {
        let l = limit(1000, 7);
        let mut b = CreateBucket::new(Instant::ZERO, &l);
        assert_eq!(granted(&mut b, &l, Instant::ZERO, 7), 7);
        assert_eq!(granted(&mut b, &l, Instant::from_millis(60_000), 100), 7);
        // A full bucket owes nothing for the time it sat full.
        assert_eq!(granted(&mut b, &l, Instant::from_millis(60_000), 1), 0);
    }

    #[test]
    fn zero_rate_allows_the_burst_once() {
        let l = limit(0, 3);
        let mut b = CreateBucket::new(Instant::ZERO, &l);
        assert_eq!(granted(&mut b, &l, Instant::from_millis(1), 10), 3);
        assert_eq!(granted(&mut b, &l, Instant::from_millis(1_000_000), 10), 0);
    }

    #[test]
    fn time_going_backwards_grants_nothing_and_does_not_panic() {
        let l = limit(10, 1);
        let mut b = CreateBucket::new(Instant::from_millis(5_000), &l);
        assert!(b.try_take(Instant::from_millis(5_000), &l));
        assert!(!b.try_take(Instant::ZERO, &l));
        assert!(b.try_take(Instant::from_millis(5_100), &l));
    }
}
