//! `Driver` for the poll backend: the trait's methods are [`PollDriver`]'s own.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::time::Duration;

use crate::runtime::Driver;

use super::{ConnId, ListenerId, PollDriver, PollEvent, RecvBuf};

impl Driver for PollDriver {
    type Conn = ConnId;
    type Listener = ListenerId;
    type Buf = RecvBuf;

    fn add_listener(&mut self, listener: TcpListener) -> io::Result<ListenerId> {
        PollDriver::add_listener(self, listener)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        PollDriver::connect(self, addr)
    }

    fn send_buf(&mut self, conn: ConnId) -> Option<&mut Vec<u8>> {
        PollDriver::send_buf(self, conn)
    }

    fn queued_len(&self, conn: ConnId) -> usize {
        PollDriver::queued_len(self, conn)
    }

    fn set_recv_paused(&mut self, conn: ConnId, paused: bool) {
        PollDriver::set_recv_paused(self, conn, paused);
    }

    fn close(&mut self, conn: ConnId) {
        PollDriver::close(self, conn);
    }

    fn close_when_flushed(&mut self, conn: ConnId) {
        PollDriver::close_when_flushed(self, conn);
    }

    fn conn_fd(&self, conn: ConnId) -> Option<RawFd> {
        PollDriver::conn_fd(self, conn)
    }

    fn poll_event(&mut self) -> Option<PollEvent> {
        PollDriver::poll_event(self)
    }

    fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        PollDriver::run_once(self, timeout)
    }

    fn has_tcp_info(&self) -> bool {
        // No TCP_INFO through this backend (on every target alike), so KIST falls back to
        // KISTLite, which needs only the send queue length.
        false
    }
}
