//! Runs a fixed number of scheduling rounds for instruction/cycle counting, free of the
//! wall-clock noise of a shared machine:
//!
//! ```text
//! perf stat -e instructions:u,cycles:u \
//!     target/release/examples/sched_count {kist|vanilla} {ewma|rr} ROUNDS
//! ```
//!
//! Each round is the equal-load case of the `sched_cost` bench: 1000 channels x 10 backlogged
//! circuits, every channel's send completes, then one run granting 64 cells per channel.
//! Divide the counts by `ROUNDS * 64000` cells (the setup is a few ms; compare with ROUNDS=0).

use core::time::Duration;

use kistrel_sched::{EwmaConfig, Instant, Kist, SchedConfig, Scheduler, Vanilla, CELL_WIRE_LEN};

#[path = "../benches/support/backlogged.rs"]
mod backlogged;
use backlogged::{snap, Backlogged};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: sched_count {kist|vanilla} {ewma|rr} ROUNDS";
    let (Some(which), Some(policy), Some(rounds)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Ok(rounds) = rounds.parse::<u64>() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let ewma = match policy.as_str() {
        "ewma" => EwmaConfig::default(),
        "rr" => EwmaConfig::ROUND_ROBIN,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let cfg = SchedConfig {
        sock_buf_size_factor: 0.0,
        vanilla_max_write: 64 * CELL_WIRE_LEN,
        ..SchedConfig::default()
    };
    let mut sched: Box<dyn Scheduler<u32>> = match which.as_str() {
        "kist" => Box::new(Kist::new(&cfg)),
        "vanilla" => Box::new(Vanilla::new(&cfg)),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let mut source = Backlogged::new(1000, 10, &ewma);
    let snaps: Vec<_> = (0..1000).map(|ch| snap(ch, 64)).collect();
    for ch in 0..1000 {
        sched.channel_writable(Instant::ZERO, ch);
        sched.channel_has_cells(Instant::ZERO, ch);
    }
    let mut now = Instant::from_millis(1);
    let mut cells = 0;
    for _ in 0..rounds {
        now += Duration::from_millis(1);
        for ch in 0..1000 {
            sched.channel_writable(now, ch);
        }
        cells += sched.run(now, &snaps, &mut source).cells;
    }
    println!(
        "{which} {policy}: {rounds} rounds, {cells} cells, {} flushes",
        source.flushes
    );
}
