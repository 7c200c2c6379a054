//! Where a worker's `now` comes from: the process clock, or a simulation's virtual time.

use std::time::SystemTime;

use crate::driver::sim::SimClock;
use crate::time::Instant;

/// A source of the current time. The worker reads it once per loop iteration and passes
/// `now` to everything below it (relay, scheduler, edges, origins), so the whole worker runs
/// in virtual time over a simulated driver ([`SimClock`]).
pub trait TimeSource {
    /// The current time.
    fn now(&self) -> Instant;

    /// The wall-clock time at `now` (NETINFO, certificate expiry): derived from `now`, so
    /// it costs no clock read. A simulation's virtual time zero is the harness's epoch.
    fn wall(&self, now: Instant) -> SystemTime {
        crate::harness::wall_clock(now)
    }
}

/// One monotonic clock for all workers of a process, so deadlines sent between threads
/// compare.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: std::time::Instant,
    /// The wall-clock time at `base` (read once: wall time then follows the monotonic clock,
    /// which is all NETINFO and certificate expiry need).
    wall_base: SystemTime,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Clock {
            base: std::time::Instant::now(),
            wall_base: SystemTime::now(),
        }
    }

    /// The current time (one clock read).
    pub fn now(&self) -> Instant {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(nanos)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl TimeSource for Clock {
    fn now(&self) -> Instant {
        Clock::now(self)
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.wall_base + (now - Instant::ZERO)
    }
}

impl TimeSource for SimClock {
    fn now(&self) -> Instant {
        SimClock::now(self)
    }
}
