//! A flood of BEGINs with host names at an exit keeps the exit's thread count bounded: the
//! real exit `Worker` (over the simulated network of tests/support) resolves through a
//! fixed pool with a bounded queue, and refuses what does not fit with END RESOURCELIMIT.
//! The lookups block until the test releases them, so the pool is full when the flood
//! comes. This file holds one test: it counts the threads of its own process (Linux:
//! /proc/self/task).
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kistrel_engine::driver::sim::{PipeConfig, SimConn};
use kistrel_engine::runtime::ResolverConfig;
use kistrel_sched::SchedulerKind;

use support::{addr, drain, socks_request, AppConn, SimTor};

const STEP: Duration = Duration::from_millis(1);
const THREADS: usize = 4;
const QUEUE: usize = 16;
const FLOOD: usize = 300;

/// Threads of this process (Linux: /proc/self/task).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .expect("/proc/self/task")
}

/// A lookup that blocks until the gate opens, counting its calls.
struct Gate {
    open: Mutex<bool>,
    cond: Condvar,
    calls: AtomicUsize,
}

impl Gate {
    fn lookup(&self) -> Option<IpAddr> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().expect("gate");
        while !*open {
            open = self.cond.wait(open).expect("gate");
        }
        Some(addr(3, 80).ip())
    }

    fn release(&self) {
        *self.open.lock().expect("gate") = true;
        self.cond.notify_all();
    }
}

/// Steps the network (and lets the pool's threads run) until `done` or the bound.
fn run_until(
    tor: &mut SimTor,
    apps: &mut HashMap<SimConn, AppConn>,
    what: &str,
    mut done: impl FnMut(&HashMap<SimConn, AppConn>) -> bool,
) {
    for _ in 0..20_000 {
        drain(&mut tor.servers, |_, _, _| {}, |_, _| {});
        drain(
            &mut tor.apps,
            |_, _, _| {},
            |conn, data| {
                if let (Some(app), Some(d)) = (apps.get_mut(&conn), data) {
                    app.rx.extend_from_slice(d);
                }
            },
        );
        if done(apps) {
            return;
        }
        tor.step(STEP);
        // The answers come from real threads.
        std::thread::yield_now();
    }
    panic!("gave up waiting for {what}");
}

fn open(tor: &mut SimTor, apps: &mut HashMap<SimConn, AppConn>, range: std::ops::Range<usize>) {
    for i in range {
        let name = format!("host-{i}.example");
        let app = AppConn::open(&mut tor.apps, &socks_request("flood", &name, 80));
        apps.insert(app.conn, app);
    }
}

fn count(apps: &HashMap<SimConn, AppConn>, code: u8) -> usize {
    apps.values().filter(|a| a.reply() == Some(code)).count()
}

#[test]
fn a_begin_flood_with_host_names_keeps_the_exit_threads_bounded() {
    let gate = Arc::new(Gate {
        open: Mutex::new(false),
        cond: Condvar::new(),
        calls: AtomicUsize::new(0),
    });
    let g = Arc::clone(&gate);
    let resolver = ResolverConfig {
        threads: THREADS,
        queue: QUEUE,
        lookup: Arc::new(move |_: &str, _: u16| g.lookup()),
    };
    let mut tor = SimTor::new(
        SchedulerKind::Vanilla,
        PipeConfig::default(),
        Some(resolver),
    );
    tor.servers.listen(addr(3, 80)).expect("listen");
    let before = threads();
    assert_eq!(
        tor.exit.worker.resolver_threads(),
        0,
        "no pool before the first name"
    );

    // Fill the pool's threads first, then flood: the queue takes 16 more, the rest is refused.
    let mut apps = HashMap::new();
    open(&mut tor, &mut apps, 0..THREADS);
    let calls = Arc::clone(&gate);
    run_until(&mut tor, &mut apps, "the pool's threads to block", |_| {
        calls.calls.load(Ordering::SeqCst) == THREADS
    });
    open(&mut tor, &mut apps, THREADS..FLOOD);
    let refused = FLOOD - THREADS - QUEUE;
    run_until(&mut tor, &mut apps, "the refusals", |apps| {
        count(apps, 1) == refused
    });
    assert_eq!(tor.exit.worker.resolver_threads(), THREADS);
    let during = threads();
    assert!(
        during <= before + THREADS,
        "{FLOOD} BEGINs with names: {before} threads before, {during} during"
    );
    assert_eq!(
        gate.calls.load(Ordering::SeqCst),
        THREADS,
        "the queued lookups wait"
    );
    assert_eq!(count(&apps, 0), 0);

    // Released, the held lookups answer and their streams connect.
    gate.release();
    run_until(&mut tor, &mut apps, "the held streams", |apps| {
        count(apps, 0) == THREADS + QUEUE
    });
    assert_eq!(gate.calls.load(Ordering::SeqCst), THREADS + QUEUE);
    assert_eq!(
        count(&apps, 1),
        refused,
        "general failure: END RESOURCELIMIT"
    );
    assert!(threads() <= before + THREADS);
}
