//! Shared by the criterion bench and the `sched_count` example: an engine stand-in whose
//! circuits are always backlogged, and snapshots with exact grants.

use kistrel_sched::{
    Batch, CellEwma, CellSource, ChannelSnapshot, CircuitMux, EwmaConfig, Instant, Priority,
    QueueTimes, SocketSnapshot, TcpInfo, CELL_WIRE_LEN,
};

/// Engine stand-in: every circuit always has cells (a counter, no queues), so the measured
/// cost is the scheduler's and the muxes', with no allocation per cell.
pub struct Backlogged {
    muxes: Vec<CircuitMux<u32>>,
    ewma: Vec<CellEwma>,
    staged: Vec<u32>,
    pub flushes: u64,
}

impl Backlogged {
    pub fn new(channels: u32, circuits_per_channel: u32, cfg: &EwmaConfig) -> Self {
        let mut muxes = Vec::new();
        let mut ewma = vec![CellEwma::new(); (channels * circuits_per_channel) as usize];
        for ch in 0..channels {
            let mut mux = CircuitMux::new(cfg);
            for i in 0..circuits_per_channel {
                let circ = ch * circuits_per_channel + i;
                mux.activate(Instant::ZERO, circ, &mut ewma[circ as usize]);
            }
            muxes.push(mux);
        }
        Backlogged {
            muxes,
            ewma,
            staged: vec![0; channels as usize],
            flushes: 0,
        }
    }
}

impl CellSource<u32> for Backlogged {
    fn best_priority(&self, now: Instant, chan: u32) -> Option<Priority> {
        self.muxes.get(chan as usize)?.best_priority(now)
    }
    fn write_cells(
        &mut self,
        now: Instant,
        chan: u32,
        max_cells: u32,
        queue_times: &mut QueueTimes<'_>,
    ) -> Batch {
        let Some(mux) = self.muxes.get_mut(chan as usize) else {
            return Batch::default();
        };
        let mut cells = 0;
        while cells < max_cells {
            let Some(circ) = mux.peek() else { break };
            mux.note_written(now, circ, &mut self.ewma[circ as usize]);
            queue_times.cell(now);
            cells += 1;
        }
        self.staged[chan as usize] += cells;
        Batch {
            cells,
            bytes: u64::from(cells) * u64::from(CELL_WIRE_LEN),
            more: !mux.is_empty(),
        }
    }
    fn flush(&mut self, chan: u32) {
        self.staged[chan as usize] = 0;
        self.flushes += 1;
    }
}

/// A snapshot that grants exactly `cells` cells (empty window of that size, factor 0).
pub fn snap(chan: u32, cells: u32) -> ChannelSnapshot<u32> {
    ChannelSnapshot {
        channel: chan,
        socket: SocketSnapshot {
            tcp: Some(TcpInfo {
                cwnd: cells,
                unacked: 0,
                mss: CELL_WIRE_LEN,
                rtt_us: 20_000,
            }),
            notsent: Some(0),
        },
        outbuf: 0,
    }
}
