//! Ending connections and listeners: cancels, the deferred ends of [`AfterFlush`], and the
//! CLOSE that gives the descriptor back.
//!
//! A cancel does not always end its operation. The error-queue RECVMSG is the case seen:
//! io_uring polls a MSG_ERRQUEUE RECVMSG for EPOLLRDNORM and EPOLLERR (it clears only
//! EPOLLIN), so ordinary traffic keeps waking it, and an ASYNC_CANCEL aimed at it can find
//! nothing (-ENOENT; Linux 6.18) while it stays in flight. It then held the socket (CLOSE
//! drops only the descriptor) until the ring was dropped: the peer never saw the connection
//! end, and `echo_64_mib_through_two_rings` timed out in CI (runs 15 and 23) waiting for it.
//! Sending the same cancel again did not help (16 tries, all -ENOENT). So [`Ring::close`]
//! shuts the socket down first: the peer sees the end at once, and the wakeup ends whatever
//! still waits on the socket (the RECVMSG completes with -EAGAIN within milliseconds).

use std::net::Shutdown;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use io_uring::opcode;
use io_uring::types::Fd;

use super::op::{Op, OpKey};
use super::ring::{AfterFlush, Ring};
use super::{ConnId, ListenerId, UringError};

impl Ring {
    /// Cancels one operation by its key; the cancel's own completion is ignored.
    pub(super) fn push_cancel(&mut self, key: OpKey) {
        let entry = opcode::AsyncCancel::new(key.0)
            .build()
            .user_data(OpKey::CANCEL);
        // SAFETY: ASYNC_CANCEL carries no pointer.
        unsafe { self.push(entry) }
    }

    /// Closes `fd` through the ring (so in-flight ops still holding it finish first).
    pub(super) fn push_close(&mut self, fd: OwnedFd) {
        let raw = fd.as_raw_fd();
        match self.insert_op(Op::Close { fd: raw }) {
            Ok(key) => {
                let raw = fd.into_raw_fd();
                let entry = opcode::Close::new(Fd(raw)).build().user_data(key.0);
                // SAFETY: CLOSE carries no pointer; the descriptor now belongs to the op.
                unsafe { self.push(entry) }
            }
            Err(_) => drop(fd), // closes synchronously
        }
    }

    /// Stops accepting and closes the listener. Connections it accepted are unaffected; a
    /// connection accepted in the meantime is closed when its completion arrives.
    pub fn close_listener(&mut self, id: ListenerId) -> Result<(), UringError> {
        let l = self
            .listeners
            .remove(id.0)
            .ok_or(UringError::NoSuchListener(id))?;
        if let Some(key) = l.accept_op {
            self.push_cancel(key);
        }
        self.push_close(OwnedFd::from(l.listener));
        Ok(())
    }

    /// Closes `conn`: shuts the socket down (the peer reads EOF now), cancels its
    /// operations (their buffers stay in the slab until their completions arrive) and closes
    /// the descriptor. `conn` is dead at once (no more events); the kernel acts on the
    /// cancels and the close at the next [`Ring::run_once`] (or when the ring is dropped).
    pub fn close(&mut self, conn: ConnId) -> Result<(), UringError> {
        let c = self
            .conns
            .remove(conn.0)
            .ok_or(UringError::NoSuchConn(conn))?;
        // Not left to the cancels: one the kernel does not match leaves its operation
        // holding the socket, and with it the connection, open (see the module doc). One
        // system call per connection end; it fails only where nothing is connected.
        if let Err(e) = c.stream.shutdown(Shutdown::Both) {
            tracing::debug!(?conn, err = %e, "shutdown(SHUT_RDWR) on close failed");
        }
        let errq = c.stamping.errq_op.map(OpKey);
        for key in [c.connect_op, c.recv_op, c.send_op, errq].iter().flatten() {
            self.push_cancel(*key);
        }
        self.push_close(OwnedFd::from(c.stream));
        Ok(())
    }

    /// Closes `conn` once every queued byte has been handed to the kernel (or a SEND failed);
    /// at once if nothing is queued.
    pub fn close_when_flushed(&mut self, conn: ConnId) -> Result<(), UringError> {
        self.set_after_flush(conn, AfterFlush::Close)
    }

    /// Shuts down the sending half of `conn` (the peer reads EOF) once every queued byte has
    /// been handed to the kernel; at once if nothing is queued. Receiving goes on.
    pub fn shutdown_write_when_flushed(&mut self, conn: ConnId) -> Result<(), UringError> {
        self.set_after_flush(conn, AfterFlush::ShutdownWrite)
    }

    fn set_after_flush(&mut self, conn: ConnId, what: AfterFlush) -> Result<(), UringError> {
        let c = self.conn_mut(conn)?;
        if c.after_flush == AfterFlush::Close {
            return Ok(());
        }
        c.after_flush = what;
        if c.send_op.is_none() && (c.out.is_empty() || c.send_broken) && !c.connecting {
            return self.run_after_flush(conn);
        }
        Ok(())
    }

    /// Runs the connection's pending end (see [`AfterFlush`]).
    pub(super) fn run_after_flush(&mut self, conn: ConnId) -> Result<(), UringError> {
        let c = self.conn_mut(conn)?;
        match std::mem::replace(&mut c.after_flush, AfterFlush::Nothing) {
            AfterFlush::Nothing => Ok(()),
            AfterFlush::ShutdownWrite => {
                // One system call per connection end, not per cell; an error (the peer is
                // already gone) leaves nothing to shut down.
                if let Err(e) = c.stream.shutdown(Shutdown::Write) {
                    tracing::debug!(?conn, err = %e, "shutdown(SHUT_WR) failed");
                }
                Ok(())
            }
            AfterFlush::Close => self.close(conn),
        }
    }
}
