//! The error-queue RECVMSG of a connection with samples waiting for their stamps
//! (`stamp.rs` says why it is read through the ring): arming, completion, collection.

use std::os::fd::AsRawFd;

use super::op::Op;
use super::ring::Ring;
use super::{ConnId, UringError};
use crate::slab::Key;
use crate::sys::txstamp::KernelStage;

impl Ring {
    /// Arms the error-queue RECVMSG of `conn` if it has samples waiting and none is armed.
    pub(super) fn arm_errqueue(&mut self, conn: ConnId) -> Result<(), UringError> {
        let Some(c) = self.conns.get_mut(conn.0) else {
            return Ok(());
        };
        let fd = c.stream.as_raw_fd();
        let Some((entry, msg)) = c.stamping.errqueue_entry(fd) else {
            return Ok(());
        };
        let key = match self.insert_op(Op::ErrQueue { conn, msg }) {
            Ok(key) => key,
            Err(e) => {
                // The block went with the op: this connection reads by recvmsg(2) from now.
                if let Some(c) = self.conns.get_mut(conn.0) {
                    c.stamping.errq_lost();
                }
                return Err(e);
            }
        };
        if let Some(c) = self.conns.get_mut(conn.0) {
            c.stamping.errq_op = Some(key.0);
        }
        self.stats.errqueue_arms += 1;
        // SAFETY: the entry points to the msghdr and control buffer of the boxed `ErrMsg`
        // owned by op slot `key`, which stays in the slab, unmoved on the heap and unread by
        // us, until this RECVMSG's completion.
        unsafe { self.push(entry.user_data(key.0)) };
        Ok(())
    }

    /// The completion of an error-queue RECVMSG (`op_key`: its slab entry): the stamp goes
    /// to its connection, which re-arms while samples remain. An orphan (connection closed)
    /// only frees its block.
    pub(super) fn on_errqueue(&mut self, op_key: Key, res: i32) -> Result<(), UringError> {
        let Some(Op::ErrQueue { conn, msg }) = self.ops.remove(op_key) else {
            return Ok(());
        };
        let Some(c) = self.conns.get_mut(conn.0) else {
            return Ok(()); // orphan: dropping `msg` frees the block
        };
        if res >= 0 {
            self.stats.errqueue_recvs += 1;
        }
        if c.stamping.on_errqueue(res, msg) {
            self.arm_errqueue(conn)?;
        }
        Ok(())
    }

    /// Hands every connection's measured delays to `record` (see `Stamping::collect`).
    pub(super) fn collect_tx_stamps(&mut self, record: &mut dyn FnMut(KernelStage, u64)) {
        for (_, c) in self.conns.iter_mut() {
            let fd = c.stream.as_raw_fd();
            self.stats.errqueue_reads += u64::from(c.stamping.collect(fd, record));
            self.stats.stamps_missing += u64::from(c.stamping.tx.take_missing());
        }
    }
}
