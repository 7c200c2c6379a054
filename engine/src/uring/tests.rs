//! The steady-state data path of the ring does not allocate: receive, echo with `send`, one
//! SEND per iteration, events drained, buffers recycled.
//!
//! A counting global allocator counts allocations made by a thread while its counting flag
//! is on. It lives here, in the engine's unit-test binary, because `unsafe` (which a
//! `GlobalAlloc` needs) is allowed only in `engine::uring` and `engine::sys`; it changes
//! nothing for other tests (it delegates to the system allocator and counts nothing unless
//! a thread switches its own flag on).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{Event, Ring, RingConfig};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_alloc() {
    if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: delegates every call to the system allocator unchanged; it only counts, using a
// const-initialised thread local and an atomic, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn echo_steady_state_does_not_allocate() {
    // 64 x 16 KiB receive buffers: at most 1 MiB arrives per iteration, so the 64 MiB take
    // at least 64 iterations and the send queue stays under 2 MiB + 1 MiB.
    let config = RingConfig {
        buf_entries: 64,
        ..RingConfig::default()
    };
    let mut ring = match Ring::new(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipped: io_uring unavailable: {e}");
            return;
        }
    };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (peer, _) = l.accept().unwrap();
    // The peer writes 64 MiB in 16 KiB pieces and reads the echo back concurrently.
    let mut peer_w = peer.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let chunk = [0x77u8; 16 << 10];
        for _ in 0..4096 {
            peer_w.write_all(&chunk).unwrap();
        }
        peer_w.shutdown(Shutdown::Write).unwrap();
    });
    let reader = thread::spawn(move || {
        let mut peer_r = peer;
        peer_r
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0usize;
        while got < 64 << 20 {
            let n = peer_r.read(&mut buf).unwrap();
            assert!(n > 0);
            got += n;
        }
        got
    });

    let conn = ring.adopt(client).unwrap();
    let (mut echoed, mut iterations, mut counted_iterations) = (0usize, 0u64, 0u64);
    let start = Instant::now();
    let mut eof = false;
    let (mut stamps, mut stamped_counted) = (0u64, 0u64);
    while !eof {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        // Room for the largest coalesced send, so neither of the two send buffers (they
        // swap on every SEND) grows on the data path; a no-op once both have it.
        ring.send_buf(conn).unwrap().reserve(4 << 20);
        // Warm up (slabs, lists, both send buffers), then count.
        let counting = iterations >= 20 && ring.stats().sends >= 3;
        COUNTING.with(|c| c.set(counting));
        // Backpressure keeps the queue well under the reserved capacity.
        let queued = ring.queued_len(conn).unwrap();
        ring.set_recv_paused(conn, queued > (2 << 20)).unwrap();
        let stamped_before = ring.stats().stamped_sends;
        ring.run_once(Some(Duration::from_millis(10))).unwrap();
        // Kernel timestamps of sampled sends: reading them must not allocate either.
        crate::driver::Driver::drain_tx_stamps(&mut ring, &mut |_, _| stamps += 1);
        while let Some(ev) = ring.poll_event() {
            match ev {
                Event::Recv { conn: c, data } => {
                    ring.send(c, &data).unwrap();
                    echoed += data.len();
                }
                Event::RecvClosed { err: None, .. } => eof = true,
                Event::SendDone { .. } | Event::Timeout => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        COUNTING.with(|c| c.set(false));
        if counting {
            stamped_counted += ring.stats().stamped_sends - stamped_before;
        }
        iterations += 1;
        counted_iterations += u64::from(counting);
    }
    writer.join().unwrap();
    // Flush the rest of the echo.
    while ring.queued_len(conn).unwrap() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out flushing"
        );
        ring.run_once(Some(Duration::from_millis(10))).unwrap();
        while ring.poll_event().is_some() {}
    }
    assert_eq!(reader.join().unwrap(), 64 << 20);
    assert_eq!(echoed, 64 << 20);
    assert!(
        counted_iterations > 10,
        "{counted_iterations} iterations counted"
    );
    assert!(
        stamped_counted > 0 && stamps > 0,
        "sampled sends counted: {stamped_counted}, stamps: {stamps}, {:?}",
        ring.stats()
    );
    assert_eq!(
        ALLOCS.load(Ordering::Relaxed),
        0,
        "allocations in {counted_iterations} steady-state iterations"
    );
}

mod errqueue;
