//! The control plane on its own thread, timed by the clock the workers share.
//!
//! ```text
//!   loop until stopped (or every worker is gone):
//!     wait for an event, at most until the plane's next deadline or TICK
//!     handle it; turn(now, wall)             (timeouts, state file, figures)
//!     first time the plane is ready: signal it
//!   finish: last turn, state file saved
//! ```

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use kistrel_engine::runtime::Clock;
use tracing::error;

use crate::plane::ControlPlane;
use crate::publish::ControlFigures;

/// Longest wait for an event: how often the stop flag is looked at.
const TICK: Duration = Duration::from_millis(100);

/// What the control thread reports when it stops: its final figures.
pub type ControlReport = ControlFigures;

/// A running control thread. See the module docs.
#[derive(Debug)]
pub struct ControlThread {
    stop: Arc<AtomicBool>,
    ready: Receiver<()>,
    handle: JoinHandle<ControlReport>,
}

impl ControlThread {
    /// Starts `plane` on a thread of its own, reading `clock` (the workers' clock, so the
    /// deadlines it sends compare with theirs) and the wall clock for guard dates.
    pub fn spawn(plane: ControlPlane, clock: Clock) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = crossbeam_channel::bounded(1);
        let handle = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kistrel-control".into())
                .spawn(move || run(plane, clock, &stop, &ready_tx))?
        };
        Ok(ControlThread {
            stop,
            ready,
            handle,
        })
    }

    /// Waits up to `timeout` for the node to become ready (a client: its first circuit is
    /// built); true once, the first time it is.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.ready.recv_timeout(timeout).is_ok()
    }

    /// Whether the thread ended on its own (every worker gone, or a panic).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops the thread (after its last turn and the state file's last save) and returns
    /// its final figures.
    pub fn stop(self) -> ControlReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_else(|_| {
            error!("the control thread panicked");
            ControlReport::default()
        })
    }
}

fn run(
    mut plane: ControlPlane,
    clock: Clock,
    stop: &AtomicBool,
    ready: &Sender<()>,
) -> ControlReport {
    let mut signalled = false;
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        let wait = plane
            .poll_timeout()
            .map_or(TICK, |t| t.saturating_duration_since(now).min(TICK));
        match plane.events().recv_timeout(wait) {
            Ok(ev) => plane.handle_event(clock.now(), SystemTime::now(), ev),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        plane.turn(clock.now(), SystemTime::now());
        if !signalled && plane.is_ready() {
            signalled = true;
            // Kept open after: a receiver that waits again times out instead of spinning.
            let _ = ready.send(());
        }
    }
    plane.finish(clock.now(), SystemTime::now())
}
