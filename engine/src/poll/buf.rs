//! Receive buffers: reads land in pooled, already zeroed vectors that go back to the pool
//! when the layer above drops the [`RecvBuf`], so a steady stream of reads allocates nothing.

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

/// The free buffers, shared by the driver and every outstanding [`RecvBuf`] of one thread.
#[derive(Default)]
struct Free {
    /// INVARIANT: every vector has length `BufPool::size` (initialised bytes), so reads can
    /// go into `&mut v[..]` without zeroing again.
    bufs: Cell<Vec<Vec<u8>>>,
}

/// A pool of equally sized receive buffers; keeps at most `keep` free ones.
pub(super) struct BufPool {
    free: Rc<Free>,
    size: usize,
    keep: usize,
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("size", &self.size)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl BufPool {
    pub(super) fn new(size: usize, keep: usize) -> Self {
        BufPool {
            free: Rc::new(Free::default()),
            size: size.max(1),
            keep,
        }
    }

    /// A buffer of `size` bytes: a free one, or a new one when none is free.
    pub(super) fn get(&self) -> RecvBuf {
        let mut bufs = self.free.bufs.take();
        let data = bufs.pop().unwrap_or_else(|| vec![0; self.size]);
        self.free.bufs.set(bufs);
        RecvBuf {
            data,
            len: 0,
            free: Rc::clone(&self.free),
            keep: self.keep,
        }
    }

    /// Free buffers held right now.
    #[cfg(test)]
    pub(super) fn free_count(&self) -> usize {
        let bufs = self.free.bufs.take();
        let n = bufs.len();
        self.free.bufs.set(bufs);
        n
    }
}

/// Bytes received on one connection. Dropping it returns its buffer to the driver's pool.
pub struct RecvBuf {
    data: Vec<u8>,
    /// Bytes of `data` that were received.
    len: usize,
    free: Rc<Free>,
    keep: usize,
}

impl RecvBuf {
    /// The whole buffer, to read into.
    pub(super) fn space(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Marks the first `len` bytes as received.
    pub(super) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.data.len());
    }
}

impl Deref for RecvBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.data.get(..self.len).unwrap_or_default()
    }
}

impl DerefMut for RecvBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.data.get_mut(..self.len).unwrap_or_default()
    }
}

impl fmt::Debug for RecvBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBuf")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        let mut bufs = self.free.bufs.take();
        if bufs.len() < self.keep {
            bufs.push(std::mem::take(&mut self.data));
        }
        self.free.bufs.set(bufs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_buffers_return_to_the_pool_up_to_keep() {
        let pool = BufPool::new(8, 2);
        let mut a = pool.get();
        a.space()[..3].copy_from_slice(b"abc");
        a.set_len(3);
        assert_eq!(&*a, b"abc");
        let b = pool.get();
        let c = pool.get();
        assert_eq!(pool.free_count(), 0);
        drop(a);
        drop(b);
        drop(c);
        assert_eq!(pool.free_count(), 2, "a third free buffer is not kept");
        let mut d = pool.get();
        assert_eq!(d.space().len(), 8);
        assert_eq!(d.len(), 0);
        d.set_len(100);
        assert_eq!(d.len(), 8, "length is clamped to the buffer");
        assert_eq!(pool.free_count(), 1);
    }
}
