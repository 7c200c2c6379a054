//! Handing an accepted connection to another worker: listeners whose connections start
//! held (no RECV armed), and taking a held connection out of the ring as its socket.
//!
//! A RECV armed at accept would be issued at the next `io_uring_enter` and could read the
//! peer's first bytes into this worker's buffers; a held connection has read nothing, so
//! its socket can move to another ring with every byte still in the kernel.

use std::net::TcpStream;

use super::ring::Ring;
use super::{ConnId, ListenerId, UringError};

impl Ring {
    /// Connections accepted on `listener` from now on start held: reads paused, no RECV
    /// armed, until [`Ring::set_recv_paused`]`(conn, false)` or [`Ring::detach`].
    pub fn hold_accepted(&mut self, listener: ListenerId) -> Result<(), UringError> {
        let l = self
            .listeners
            .get_mut(listener.0)
            .ok_or(UringError::NoSuchListener(listener))?;
        l.hold = true;
        Ok(())
    }

    /// Takes `conn` out of the ring and returns its socket, if nothing of it is in the
    /// kernel's hands or ours: no operation in flight (RECV, SEND, CONNECT, error-queue
    /// read), no byte queued. Otherwise `None`, and the connection stays.
    pub fn detach(&mut self, conn: ConnId) -> Option<TcpStream> {
        let c = self.conns.get(conn.0)?;
        let idle = !c.connecting
            && c.connect_op.is_none()
            && c.recv_op.is_none()
            && c.send_op.is_none()
            && c.in_flight == 0
            && c.out.is_empty()
            && c.stamping.errq_op.is_none()
            && !c.rx_switch.holds_recv();
        if !idle {
            return None;
        }
        // Its ids left on `dirty`/`starved` lists name a removed slot: skipped there.
        self.conns.remove(conn.0).map(|c| c.stream)
    }
}
