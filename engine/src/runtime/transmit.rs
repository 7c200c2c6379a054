//! The transmit side of a worker: link-control cells straight out, scheduler runs over the
//! channels with cells (socket snapshots from the driver, cells through each channel's link
//! into its connection's send buffer), and the periodic kernel-queue sample.
//!
//! ```text
//!   Relay::poll_ready_channel -> take_ctrl ------------------------> link -> send buffer
//!   Scheduler::run(snapshots) -> CellSource::write_cells (per channel) -> link -> send buffer
//!                                CellSource::flush (per channel)       -> link seals its records
//!
//! The flush step: a channel's first write of the loop iteration puts its connection on the
//! driver's list of sends to start, so the sends of a run are issued in the run's order
//! (KIST: quietest channel first) at the iteration's one submit, and `flush` at the end of
//! each channel's grant seals what a record-sealing link staged. Pushing the SEND itself from
//! `flush` would only move it earlier within the same submit, so it would not pay.
//! ```

use std::time::Duration;

use kistrel_sched::{
    Batch, CellSource, ChannelSnapshot, Priority, QueueTimes, Scheduler, SocketSnapshot,
};
use tracing::debug;

use crate::driver::Driver;
use crate::relay::{ChanId, Relay};
use crate::time::Instant;
use crate::wire::CELL_LEN;

use super::conns::{ConnTable, ReadGate};
use super::link::LinkError;

/// How often the kernel queue of busy channel sockets is sampled for the metrics, whatever
/// the scheduler (one snapshot per channel: a timer cost, never per cell).
pub(super) const KERNEL_SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// At most this many sockets per sample (a cursor walks the rest on later samples).
const KERNEL_SAMPLE_MAX: usize = 256;

/// What the transmit side borrows from the worker for one call.
pub(super) struct Parts<'a, D: Driver> {
    pub(super) relay: &'a mut Relay,
    pub(super) driver: &'a mut D,
    pub(super) conns: &'a mut ConnTable<D::Conn>,
    pub(super) sched: &'a mut dyn Scheduler<ChanId>,
}

/// The transmit side's own state: scratch vectors reused every run, the sampling cursor,
/// and channels whose link failed (the worker closes them).
#[derive(Debug, Default)]
pub(super) struct Transmit {
    pending: Vec<ChanId>,
    snaps: Vec<ChannelSnapshot<ChanId>>,
    /// Next slot of the channel table the kernel-queue sampler looks at.
    sample_cursor: usize,
    broken: Vec<(ChanId, LinkError)>,
}

impl Transmit {
    /// A channel whose link failed, for the worker to close.
    pub(super) fn pop_broken(&mut self) -> Option<(ChanId, LinkError)> {
        self.broken.pop()
    }

    /// Moves link-control cells of every ready channel into its send buffer, tells the
    /// scheduler which channels have circuit cells, and pauses reading a channel whose peer
    /// does not take our bytes. Then, when the scheduler is due, runs it.
    pub(super) fn run<D: Driver>(&mut self, now: Instant, p: Parts<'_, D>) {
        while let Some(chan) = p.relay.poll_ready_channel() {
            let Some((conn, link)) = p.conns.channel(chan) else {
                continue;
            };
            if let Some(send) = p.driver.send_buf(conn) {
                p.relay.take_ctrl(chan, link.cell_buf(send));
                if let Err(e) = link.seal(send) {
                    self.broken.push((chan, e));
                }
            }
            let queued = p.driver.queued_len(conn);
            if p.conns.after_queueing(conn, queued) == Some(ReadGate::Pause) {
                debug!(?chan, "peer is not reading: pausing reads until it drains");
                p.driver.set_recv_paused(conn, true);
            }
            if p.relay.has_circuit_cells(chan) {
                p.sched.channel_has_cells(now, chan);
            }
        }
        if p.sched.next_run().is_none_or(|t| t > now) {
            return;
        }
        self.pending.clear();
        p.sched.pending_channels(now, &mut self.pending);
        self.snaps.clear();
        let tcp_info = p.sched.needs_tcp_info();
        for &chan in &self.pending {
            let Some(conn) = p.conns.conn_of(chan) else {
                continue;
            };
            let socket = if tcp_info {
                p.driver.socket_snapshot(conn).unwrap_or_default()
            } else {
                SocketSnapshot::default()
            };
            let outbuf = u32::try_from(p.driver.queued_len(conn)).unwrap_or(u32::MAX);
            self.snaps.push(ChannelSnapshot {
                channel: chan,
                socket,
                outbuf,
            });
        }
        let mut source = Source {
            relay: p.relay,
            driver: p.driver,
            conns: p.conns,
            broken: &mut self.broken,
        };
        p.sched.run(now, &self.snaps, &mut source);
    }

    /// Records the estimated kernel queue time of up to [`KERNEL_SAMPLE_MAX`] busy channel
    /// sockets (`SchedMetrics::sample_kernel_queue`): the scheduler-neutral figure that
    /// compares KIST with Vanilla, which takes no snapshots of its own.
    ///
    /// Also collects the measured kernel delays of sampled sends (`Driver::drain_tx_stamps`:
    /// an error-queue read per socket with samples outstanding, once per tick).
    pub(super) fn sample_kernel_queues<D: Driver>(&mut self, p: Parts<'_, D>) {
        let metrics = p.sched.metrics_mut();
        p.driver
            .drain_tx_stamps(&mut |stage, us| metrics.record_kernel_stage(stage, us));
        let slots = p.conns.channel_slots();
        if slots == 0 {
            return;
        }
        for step in 0..slots.min(KERNEL_SAMPLE_MAX) {
            let slot = (self.sample_cursor + step) % slots;
            let Some(conn) = p.conns.channel_at(slot) else {
                continue;
            };
            if let Ok(snap) = p.driver.socket_snapshot(conn) {
                metrics.sample_kernel_queue(&snap);
            }
        }
        self.sample_cursor = (self.sample_cursor + KERNEL_SAMPLE_MAX) % slots;
    }
}

/// The scheduler's view of the relay's queues: cells go through the channel's link straight
/// into the connection's owned send buffer, which the driver hands to the kernel in this
/// iteration's submit.
struct Source<'a, D: Driver> {
    relay: &'a mut Relay,
    driver: &'a mut D,
    conns: &'a mut ConnTable<D::Conn>,
    broken: &'a mut Vec<(ChanId, LinkError)>,
}

impl<D: Driver> CellSource<ChanId> for Source<'_, D> {
    fn best_priority(&self, now: Instant, chan: ChanId) -> Option<Priority> {
        self.relay.best_priority(now, chan)
    }

    fn write_cells(
        &mut self,
        now: Instant,
        chan: ChanId,
        max_cells: u32,
        queue_times: &mut QueueTimes<'_>,
    ) -> Batch {
        let Some((conn, link)) = self.conns.channel(chan) else {
            return Batch::default();
        };
        let Some(send) = self.driver.send_buf(conn) else {
            return Batch::default();
        };
        // In steps of what the open TLS record holds (one step on a plain link): a grant
        // larger than a record then seals each full record where it lies instead of
        // splitting an overfilled one (a copy of its tail and an allocation).
        let mut cells = 0;
        let more = loop {
            let (out, room) = link.cell_buf_room(send);
            let step = (max_cells - cells).min(room);
            let (written, more) = self
                .relay
                .write_cells(now, chan, step, out, |t| queue_times.cell(t));
            cells += written;
            if !more || written < step || cells >= max_cells {
                break more;
            }
        };
        Batch {
            cells,
            bytes: u64::from(cells) * CELL_LEN as u64,
            more,
        }
    }

    fn flush(&mut self, chan: ChanId) {
        // A plain link has nothing staged: every connection's buffer goes out in this
        // iteration's single submit.
        let Some((conn, link)) = self.conns.channel(chan) else {
            return;
        };
        if !link.has_staged() {
            return;
        }
        if let Some(send) = self.driver.send_buf(conn) {
            if let Err(e) = link.seal(send) {
                self.broken.push((chan, e));
            }
        }
    }
}
