//! Where a worker's `now` comes from: the process clock, or a simulation's virtual time.

use crate::driver::sim::SimClock;
use crate::time::Instant;

/// A source of the current time. The worker reads it once per loop iteration and passes
/// `now` to everything below it (relay, scheduler, edges, origins), so the whole worker runs
/// in virtual time over a simulated driver ([`SimClock`]).
pub trait TimeSource {
    /// The current time.
    fn now(&self) -> Instant;
}

/// One monotonic clock for all workers of a process, so deadlines sent between threads
/// compare.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: std::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Clock {
            base: std::time::Instant::now(),
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
}

impl TimeSource for SimClock {
    fn now(&self) -> Instant {
        SimClock::now(self)
    }
}
