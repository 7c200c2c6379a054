//! `BufRing`: a provided-buffer ring (IORING_REGISTER_PBUF_RING) for multishot RECV.
//!
//! ```text
//!   ring entries (mmap, page aligned)      buffers (mmap, entries x buf_size)
//!   [addr,len,bid] [addr,len,bid] ...  ->  [ bid 0 ][ bid 1 ][ bid 2 ] ...
//!          ^ kernel head        ^ our tail (entry 0's `resv` field, release store)
//! ```
//!
//! The kernel picks a buffer from the head when data arrives and names it in the completion
//! (`cqueue::buffer_select`). The `Ring` wraps it in an [`RxBuf`]; dropping that guard writes
//! the buffer back at the tail. Each of the `entries` buffers is in exactly one place: in the
//! ring, or in one `RxBuf` (not `Clone`), so the ring never overflows and no buffer is given
//! to the kernel twice (a double return would let it write one buffer for two receives).
//! Layout facts from io_uring_register_buf_ring(3) and io-uring's `register_buf_ring` test.

use std::cell::Cell;
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
}

impl Shared {
    fn ring_base(&self) -> *mut BufRingEntry {
        self.ring.ptr.as_ptr().cast()
    }

    /// Puts `bid` back at the tail and publishes the new tail.
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
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("bgid", &self.bgid)
            .field("entries", &self.shared.entries)
            .field("buf_size", &self.shared.buf_size)
            .field("outstanding", &self.shared.outstanding.get())
            .finish()
    }
}

impl BufRing {
    /// Maps the ring and its buffers and registers them with `ring` as group `bgid`.
    ///
    /// `entries` must be a power of two in 1..=32768 (the kernel's limit), `buf_size` > 0.
    pub fn new(
        ring: &io_uring::IoUring,
        entries: u16,
        buf_size: u32,
        bgid: u16,
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
        for bid in 0..entries {
            shared.push(Bid(bid));
        }
        Ok(Self {
            shared: Rc::new(shared),
            bgid,
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

    /// Buffers the kernel can fill right now.
    pub fn available(&self) -> u32 {
        u32::from(self.shared.entries).saturating_sub(self.shared.outstanding.get())
    }

    /// Wraps buffer `bid`, just filled with `len` bytes by the kernel, in its guard.
    ///
    /// Returns `None` for a buffer id or length the kernel cannot have produced.
    pub(crate) fn take(&self, bid: u16, len: u32) -> Option<RxBuf> {
        if bid >= self.shared.entries || len > self.shared.buf_size {
            return None;
        }
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
        self.shared.push(self.bid);
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
            let err = BufRing::new(&ring, entries, size, 1).unwrap_err();
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
        let bufs = BufRing::new(&ring, 4, 64, 3).unwrap();
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
}
