//! `BufRing`: a provided-buffer ring (IORING_REGISTER_PBUF_RING) for multishot RECV.
//!
//! ```text
//!   ring entries (mmap, page aligned)      buffers (mmap, entries x buf_size)
//!   [addr,len,bid] [addr,len,bid] ...  ->  [ bid 0 ][ bid 1 ][ bid 2 ] ...
//!          ^ kernel head        ^ our tail (entry 0's `resv` field, release store)
//!
//!   offered (in the ring, <= window)   held (RxBufs)   idle (a stack, newest on top)
//! ```
//!
//! The kernel picks a buffer from the head when data arrives and names it in the completion
//! (`cqueue::buffer_select`). The `Ring` wraps it in an [`RxBuf`]; dropping that guard offers
//! the buffer again at the tail, or puts it on the idle stack when `window` buffers are
//! offered already. Each of the `entries` buffers is in exactly one place: in the ring, in
//! one `RxBuf` (not `Clone`), or on the idle stack, so the ring never overflows and no buffer
//! is given to the kernel twice (a double return would let it write one buffer for two
//! receives). Layout facts from io_uring_register_buf_ring(3) and io-uring's
//! `register_buf_ring` test.
//!
//! # Why a window
//!
//! One `io_uring_enter` runs the receive work of every connection with data, and each takes a
//! buffer while the ring has one: offering all 1,024 buffers (16 MiB) let one wait take in
//! hundreds of KiB, copied by the kernel into buffers last touched 1,023 receives ago, then
//! processed cell by cell after the whole batch: every step missed the cache. Offering a few
//! buffers at a time (the window) bounds what one wait takes in, and the buffers cycle
//! through the kernel while still in cache. A connection finding the ring empty ends its
//! RECV with ENOBUFS and is re-armed on the next iteration; its bytes wait in its socket.
//! Measured on the 3-hop network (benches/BASELINE.md, session 13): middle relay cells queued
//! per take 270 -> ~115, io_uring / poll throughput 0.80 -> ~0.93.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// A buffer id in a [`BufRing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bid(pub u16);

/// An anonymous private mapping, unmapped on drop.
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping touches no existing memory; the result is
        // checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, unmapped once. By the time the
        // last owner drops, the kernel no longer uses it (see `Shared`'s INVARIANT).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The ring's memory and our side of its indexes, shared by the `BufRing` and every `RxBuf`.
///
/// INVARIANT: the mappings outlive the kernel's use of them: the `Ring` unregisters the group
/// (or closes the io_uring) before it drops its own `BufRing`, and `RxBuf`s keep the memory
/// alive after that through this `Rc`.
struct Shared {
    ring: Mmap,
    bufs: Mmap,
    entries: u16,
    buf_size: u32,
    /// Our next free ring index (the kernel only reads the published copy).
    tail: Cell<u16>,
    /// Buffers currently held by `RxBuf`s.
    outstanding: Cell<u32>,
    /// Buffers in the ring (offered, not yet named by a completion).
    offered: Cell<u16>,
    /// Most buffers offered at once.
    window: Cell<u16>,
    /// Buffers neither offered nor held, most recently returned (warmest) on top.
    idle: RefCell<Vec<Bid>>,
}

impl Shared {
    fn ring_base(&self) -> *mut BufRingEntry {
        self.ring.ptr.as_ptr().cast()
    }

    /// A buffer nobody holds any more: offered again if the window has room, else idle.
    fn put_back(&self, bid: Bid) {
        if self.offered.get() < self.window.get() {
            self.push(bid);
        } else {
            self.idle.borrow_mut().push(bid);
        }
    }

    /// Offers idle buffers, warmest first, until the window is full or none is idle.
    fn refill(&self) {
        let mut idle = self.idle.borrow_mut();
        while self.offered.get() < self.window.get() {
            let Some(bid) = idle.pop() else { break };
            self.push(bid);
        }
    }

    /// Puts `bid` in the ring at the tail and publishes the new tail.
    fn push(&self, bid: Bid) {
        debug_assert!(bid.0 < self.entries);
        let mask = self.entries - 1;
        let tail = self.tail.get();
        let index = usize::from(tail & mask);
        let addr = self.bufs.ptr.as_ptr() as u64 + u64::from(bid.0) * u64::from(self.buf_size);
        // SAFETY: `index < entries`, and the ring mapping holds `entries` entries. The kernel
        // does not read entries at or past the published tail, so writing this one races with
        // nothing. We only touch addr/len/bid, never entry 0's `resv` (the tail) through it.
        unsafe {
            let entry = &mut *self.ring_base().add(index);
            entry.set_addr(addr);
            entry.set_len(self.buf_size);
            entry.set_bid(bid.0);
        }
        let new_tail = tail.wrapping_add(1);
        self.tail.set(new_tail);
        self.offered.set(self.offered.get() + 1);
        // SAFETY: the tail is the u16 `resv` field of entry 0, inside the mapping and 2-byte
        // aligned; the kernel reads it with an acquire load, so we publish with a release
        // store through an atomic view (as liburing's io_uring_buf_ring_advance does).
        unsafe {
            let tail_ptr = BufRingEntry::tail(self.ring_base()).cast::<AtomicU16>();
            (*tail_ptr).store(new_tail, Ordering::Release);
        }
    }
}

/// A provided-buffer ring registered with one io_uring under a buffer group id.
pub struct BufRing {
    shared: Rc<Shared>,
    bgid: u16,
    /// The window with no connection (`RingConfig::buf_window`; see `fit_window`).
    base_window: u16,
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("bgid", &self.bgid)
            .field("entries", &self.shared.entries)
            .field("buf_size", &self.shared.buf_size)
            .field("outstanding", &self.shared.outstanding.get())
            .field("offered", &self.shared.offered.get())
            .field("window", &self.shared.window.get())
            .finish()
    }
}

impl BufRing {
    /// Maps the ring and its buffers and registers them with `ring` as group `bgid`, offering
    /// `window` of them (at least one, at most `entries`; see [`BufRing::set_window`]).
    ///
    /// `entries` must be a power of two in 1..=32768 (the kernel's limit), `buf_size` > 0.
    /// Buffers never offered are never touched, so they cost address space, not memory.
    pub fn new(
        ring: &io_uring::IoUring,
        entries: u16,
        buf_size: u32,
        bgid: u16,
        window: u16,
    ) -> io::Result<Self> {
        if !entries.is_power_of_two() || entries > 32768 || buf_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring entries must be a power of two <= 32768 and buffers non-empty",
            ));
        }
        let ring_len = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        let bufs_len = usize::from(entries)
            .checked_mul(buf_size as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer ring too big"))?;
        let shared = Shared {
            ring: Mmap::new(ring_len)?,
            bufs: Mmap::new(bufs_len)?,
            entries,
            buf_size,
            tail: Cell::new(0),
            outstanding: Cell::new(0),
            offered: Cell::new(0),
            window: Cell::new(window.clamp(1, entries)),
            // Popped from the top: bid 0 is offered first.
            idle: RefCell::new((0..entries).rev().map(Bid).collect()),
        };
        // SAFETY: the ring memory is page aligned (mmap), zeroed (so the tail starts at 0),
        // `entries` long, and stays mapped until the group is unregistered or the io_uring is
        // closed (`Shared`'s INVARIANT).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                shared.ring.ptr.as_ptr() as u64,
                entries,
                bgid,
                0,
            )?;
        }
        shared.refill();
        Ok(Self {
            shared: Rc::new(shared),
            bgid,
            base_window: window,
        })
    }

    /// The buffer group id to put in RECV SQEs.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Size of each buffer in bytes.
    pub fn buf_size(&self) -> u32 {
        self.shared.buf_size
    }

    /// Number of buffers.
    pub fn entries(&self) -> u16 {
        self.shared.entries
    }

    /// Buffers held by `RxBuf`s (not available to the kernel).
    pub fn outstanding(&self) -> u32 {
        self.shared.outstanding.get()
    }

    /// Buffers the kernel can fill right now (offered).
    pub fn available(&self) -> u32 {
        u32::from(self.shared.offered.get())
    }

    /// Buffers neither offered nor held.
    pub fn idle(&self) -> u32 {
        self.shared.idle.borrow().len() as u32
    }

    /// Most buffers offered at once.
    pub fn window(&self) -> u16 {
        self.shared.window.get()
    }

    /// Sets how many buffers may be offered at once (clamped to 1..=entries). Offers idle
    /// buffers at once when it grows; when it shrinks, buffers already offered stay offered
    /// and returns go idle until the ring is below the new window.
    pub fn set_window(&self, window: u16) {
        self.shared.window.set(window.clamp(1, self.shared.entries));
        self.shared.refill();
    }

    /// Sets the window to the base window plus one buffer per connection, so that no
    /// connection waits for another's buffers to come back.
    pub fn fit_window(&self, conns: usize) {
        let per_conn = u16::try_from(conns).unwrap_or(u16::MAX);
        self.set_window(self.base_window.saturating_add(per_conn));
    }

    /// Offers idle buffers up to the window (those held long by the layer above came back
    /// while the ring was full).
    pub fn refill(&self) {
        self.shared.refill();
    }

    /// Wraps buffer `bid`, just filled with `len` bytes by the kernel, in its guard.
    ///
    /// Returns `None` for a buffer id or length the kernel cannot have produced.
    pub(crate) fn take(&self, bid: u16, len: u32) -> Option<RxBuf> {
        if bid >= self.shared.entries || len > self.shared.buf_size {
            return None;
        }
        self.shared
            .offered
            .set(self.shared.offered.get().saturating_sub(1));
        self.shared
            .outstanding
            .set(self.shared.outstanding.get() + 1);
        Some(RxBuf {
            shared: Rc::clone(&self.shared),
            bid: Bid(bid),
            len,
        })
    }
}

/// Bytes received into one provided buffer. Dropping it gives the buffer back to the kernel,
/// so hold it only as long as needed: while it is alive the ring has one buffer less.
pub struct RxBuf {
    shared: Rc<Shared>,
    bid: Bid,
    len: u32,
}

impl RxBuf {
    /// The buffer id.
    pub fn bid(&self) -> Bid {
        self.bid
    }
}

impl Deref for RxBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let offset = usize::from(self.bid.0) * self.shared.buf_size as usize;
        // SAFETY: `bid < entries` and `len <= buf_size` (checked in `take`), so the range is
        // inside the buffer mapping. The kernel wrote these bytes before posting the
        // completion and will not write this buffer again until `drop` returns it.
        unsafe {
            std::slice::from_raw_parts(self.shared.bufs.ptr.as_ptr().add(offset), self.len as usize)
        }
    }
}

impl DerefMut for RxBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let offset = usize::from(self.bid.0) * self.shared.buf_size as usize;
        // SAFETY: the range is inside the buffer mapping, as for `deref`. The buffer belongs
        // to this guard alone until `drop` returns it (an `RxBuf` is neither `Clone` nor
        // made twice for one bid while it is out: the kernel hands a bid out once per
        // return), so no one else reads or writes it meanwhile, the kernel included; `&mut
        // self` keeps the slice from aliasing the one `deref` gives.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.shared.bufs.ptr.as_ptr().add(offset),
                self.len as usize,
            )
        }
    }
}

impl AsRef<[u8]> for RxBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for RxBuf {
    fn drop(&mut self) {
        self.shared
            .outstanding
            .set(self.shared.outstanding.get().saturating_sub(1));
        self.shared.put_back(self.bid);
    }
}

impl fmt::Debug for RxBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxBuf")
            .field("bid", &self.bid)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Option<io_uring::IoUring> {
        io_uring::IoUring::new(8)
            .map_err(|e| eprintln!("skipped: io_uring unavailable: {e}"))
            .ok()
    }

    #[test]
    fn sizes_are_checked() {
        let Some(ring) = ring() else { return };
        for (entries, size) in [(3, 64), (0, 64), (4, 0)] {
            let err = BufRing::new(&ring, entries, size, 1, entries).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "{entries} x {size}"
            );
        }
    }

    #[test]
    fn rxbuf_returns_its_buffer_and_impossible_ids_are_refused() {
        let Some(ring) = ring() else { return };
        let bufs = BufRing::new(&ring, 4, 64, 3, 4).unwrap();
        assert_eq!((bufs.entries(), bufs.buf_size(), bufs.bgid()), (4, 64, 3));
        assert_eq!(bufs.available(), 4);
        assert!(bufs.take(4, 10).is_none(), "bid out of range");
        assert!(bufs.take(0, 65).is_none(), "longer than a buffer");
        let a = bufs.take(1, 10).unwrap();
        let b = bufs.take(2, 64).unwrap();
        assert_eq!((a.bid(), a.len()), (Bid(1), 10));
        assert_eq!(b.len(), 64);
        assert_eq!((bufs.outstanding(), bufs.available()), (2, 2));
        drop(a);
        assert_eq!((bufs.outstanding(), bufs.available()), (1, 3));
        drop(b);
        assert_eq!(bufs.available(), 4);
        // Four initial pushes and two returns: the published tail is 6.
        assert_eq!(bufs.shared.tail.get(), 6);
    }

    /// The bid of ring entry `index` (what the kernel would hand out at that position).
    fn offered_bid(bufs: &BufRing, index: u16) -> u16 {
        let mask = bufs.shared.entries - 1;
        // SAFETY: `index & mask < entries`, inside the ring mapping; nothing writes
        // the entry meanwhile (single thread, no RECV armed).
        unsafe { (*bufs.shared.ring_base().add(usize::from(index & mask))).bid() }
    }

    #[test]
    fn the_window_bounds_what_is_offered_and_returns_go_warmest_first() {
        let Some(ring) = ring() else { return };
        let bufs = BufRing::new(&ring, 8, 64, 5, 2).unwrap();
        // Two offered (bids 0 and 1, in that order), six idle.
        assert_eq!((bufs.window(), bufs.available(), bufs.idle()), (2, 2, 6));
        assert_eq!((offered_bid(&bufs, 0), offered_bid(&bufs, 1)), (0, 1));
        // The kernel fills both: nothing offered until one comes back.
        let a = bufs.take(0, 64).unwrap();
        let b = bufs.take(1, 64).unwrap();
        assert_eq!(
            (bufs.available(), bufs.outstanding(), bufs.idle()),
            (0, 2, 6)
        );
        // A return with room in the window is offered at once, at the tail (index 2).
        drop(a);
        assert_eq!((bufs.available(), bufs.idle()), (1, 6));
        assert_eq!(offered_bid(&bufs, 2), 0);
        // Growing the window offers idle buffers, lowest bid first (never used yet).
        bufs.set_window(4);
        assert_eq!((bufs.available(), bufs.idle()), (4, 3));
        let refilled = [3, 4, 5].map(|i| offered_bid(&bufs, i));
        assert_eq!(refilled, [2, 3, 4]);
        // Shrinking it keeps what is offered; a return beyond it goes idle, on top.
        bufs.set_window(1);
        drop(b);
        assert_eq!(
            (bufs.available(), bufs.idle(), bufs.outstanding()),
            (4, 4, 0)
        );
        // Once the kernel has taken the offered ones, a refill offers the warmest idle
        // buffer (bid 1, returned last) first.
        let held: Vec<RxBuf> = [2, 3, 4, 5]
            .into_iter()
            .map(|i| bufs.take(offered_bid(&bufs, i), 1).unwrap())
            .collect();
        assert_eq!(bufs.available(), 0);
        bufs.refill();
        assert_eq!((bufs.available(), bufs.idle()), (1, 3));
        assert_eq!(offered_bid(&bufs, 6), 1);
        // Every buffer is in exactly one place.
        assert_eq!(bufs.available() + bufs.idle() + bufs.outstanding(), 8);
        drop(held);
        assert_eq!(bufs.available() + bufs.idle() + bufs.outstanding(), 8);
        assert_eq!((bufs.available(), bufs.outstanding()), (1, 0));
        // The window is clamped to 1..=entries.
        bufs.set_window(0);
        assert_eq!(bufs.window(), 1);
        bufs.set_window(100);
        assert_eq!((bufs.window(), bufs.available(), bufs.idle()), (8, 8, 0));
        // The base window (2) plus one per connection.
        bufs.fit_window(3);
        assert_eq!(bufs.window(), 5);
        bufs.fit_window(usize::MAX);
        assert_eq!(bufs.window(), 8);
    }
}
