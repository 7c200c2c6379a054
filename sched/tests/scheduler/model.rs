//! A minimal relay side for the schedulers: channels with a `CircuitMux`, circuits with cell
//! queues, and a log of every write and flush.

use std::collections::VecDeque;

use kistrel_sched::{
    Batch, CellEwma, CellSource, CircuitMux, EwmaConfig, Instant, Priority, QueueTimes, Scheduler,
    CELL_WIRE_LEN,
};

/// A queued or staged cell: which circuit, and when it entered the relay queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub circ: u32,
    pub enqueued: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Write { chan: u32, circ: u32 },
    Flush { chan: u32, cells: usize },
}

#[derive(Debug)]
pub struct Circuit {
    pub chan: u32,
    pub queue: VecDeque<Cell>,
    pub ewma: CellEwma,
}

#[derive(Debug)]
pub struct Channel {
    pub mux: CircuitMux<u32>,
    pub staged: Vec<Cell>,
    /// Flushed batches not yet taken by the socket model.
    pub flushed: VecDeque<Vec<Cell>>,
}

#[derive(Debug)]
pub struct Relay {
    pub cfg: EwmaConfig,
    pub circuits: Vec<Circuit>,
    pub chans: Vec<Channel>,
    pub log: Vec<Event>,
    pub keep_log: bool,
}

impl Relay {
    pub fn new(cfg: EwmaConfig) -> Self {
        Relay {
            cfg,
            circuits: Vec::new(),
            chans: Vec::new(),
            log: Vec::new(),
            keep_log: true,
        }
    }

    pub fn add_channel(&mut self) -> u32 {
        self.chans.push(Channel {
            mux: CircuitMux::new(&self.cfg),
            staged: Vec::new(),
            flushed: VecDeque::new(),
        });
        self.chans.len() as u32 - 1
    }

    pub fn add_circuit(&mut self, chan: u32) -> u32 {
        self.circuits.push(Circuit {
            chan,
            queue: VecDeque::new(),
            ewma: CellEwma::new(),
        });
        self.circuits.len() as u32 - 1
    }

    /// Queues `n` cells on `circ` and tells the scheduler if its channel had none.
    pub fn enqueue(&mut self, now: Instant, circ: u32, n: usize, sched: &mut dyn Scheduler<u32>) {
        let c = &mut self.circuits[circ as usize];
        let chan = &mut self.chans[c.chan as usize];
        let chan_was_empty = chan.mux.is_empty();
        for _ in 0..n {
            c.queue.push_back(Cell {
                circ,
                enqueued: now,
            });
        }
        if n > 0 && !c.ewma.is_active() {
            chan.mux.activate(now, circ, &mut c.ewma);
        }
        if chan_was_empty && n > 0 {
            sched.channel_has_cells(now, c.chan);
        }
    }

    /// Gives `circ` a history of `n` cells written at `now` (for priority set-ups).
    pub fn pre_count(&mut self, now: Instant, circ: u32, n: u32) {
        let mut scratch = CircuitMux::new(&self.cfg);
        let c = &mut self.circuits[circ as usize];
        let active = c.ewma.is_active();
        assert!(!active, "pre_count before enqueue");
        scratch.activate(now, circ, &mut c.ewma);
        for _ in 0..n {
            scratch.note_written(now, circ, &mut c.ewma);
        }
        scratch.deactivate(circ, &mut c.ewma);
    }

    pub fn queued(&self, chan: u32) -> usize {
        self.circuits
            .iter()
            .filter(|c| c.chan == chan)
            .map(|c| c.queue.len())
            .sum()
    }
}

impl CellSource<u32> for Relay {
    fn best_priority(&self, now: Instant, chan: u32) -> Option<Priority> {
        self.chans.get(chan as usize)?.mux.best_priority(now)
    }

    fn write_cells(
        &mut self,
        now: Instant,
        chan: u32,
        max_cells: u32,
        queue_times: &mut QueueTimes<'_>,
    ) -> Batch {
        let Some(ch) = self.chans.get_mut(chan as usize) else {
            return Batch::default();
        };
        let mut cells = 0;
        while cells < max_cells {
            let Some(circ) = ch.mux.peek() else { break };
            let c = &mut self.circuits[circ as usize];
            let Some(cell) = c.queue.pop_front() else {
                break;
            };
            ch.mux.note_written(now, circ, &mut c.ewma);
            if c.queue.is_empty() {
                ch.mux.deactivate(circ, &mut c.ewma);
            }
            queue_times.cell(cell.enqueued);
            ch.staged.push(cell);
            if self.keep_log {
                self.log.push(Event::Write { chan, circ });
            }
            cells += 1;
        }
        Batch {
            cells,
            bytes: u64::from(cells) * u64::from(CELL_WIRE_LEN),
            more: !ch.mux.is_empty(),
        }
    }

    fn flush(&mut self, chan: u32) {
        let ch = &mut self.chans[chan as usize];
        let batch = std::mem::take(&mut ch.staged);
        if self.keep_log {
            self.log.push(Event::Flush {
                chan,
                cells: batch.len(),
            });
        }
        ch.flushed.push_back(batch);
    }
}
