//! [`Driver`] for the poll backend: the trait's methods are [`PollDriver`]'s own.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use kistrel_sched::SocketSnapshot;

use crate::driver::{no_such_conn, Driver, DriverStats};
use crate::sys;

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

    fn drain_tx_stamps(&mut self, record: &mut dyn FnMut(sys::txstamp::KernelStage, u64)) {
        PollDriver::drain_tx_stamps(self, record);
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

    fn socket_snapshot(&self, conn: ConnId) -> io::Result<SocketSnapshot> {
        sys::socket_snapshot(PollDriver::conn_fd(self, conn).ok_or_else(no_such_conn)?)
    }

    fn set_nodelay(&self, conn: ConnId, on: bool) -> io::Result<()> {
        sys::set_tcp_nodelay(
            PollDriver::conn_fd(self, conn).ok_or_else(no_such_conn)?,
            on,
        )
    }

    fn enable_ktls_tx(&mut self, conn: ConnId, info: &sys::ktls::CryptoInfo) -> io::Result<()> {
        sys::ktls::enable_tx(
            PollDriver::conn_fd(self, conn).ok_or_else(no_such_conn)?,
            info,
        )
    }

    fn enable_ktls_rx(
        &mut self,
        conn: ConnId,
        info: Option<&sys::ktls::CryptoInfo>,
    ) -> io::Result<()> {
        // Reads happen only in `run_once`: mid-record, the next read brings the worker back.
        let info = info.ok_or(io::ErrorKind::WouldBlock)?;
        PollDriver::enable_ktls_rx(self, conn, info)
    }

    fn poll_event(&mut self) -> Option<PollEvent> {
        PollDriver::poll_event(self)
    }

    fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        PollDriver::run_once(self, timeout)
    }

    fn stats(&self) -> DriverStats {
        let s = PollDriver::stats(self);
        DriverStats {
            waits: s.polls,
            recvs: s.reads,
            sends: s.writes,
            short_sends: s.short_writes,
            recv_no_buffers: 0,
        }
    }

    fn hold_accepted(&mut self, listener: ListenerId) {
        PollDriver::hold_accepted(self, listener);
    }

    fn detach(&mut self, conn: ConnId) -> Option<std::net::TcpStream> {
        PollDriver::detach(self, conn)
    }

    fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<ConnId> {
        PollDriver::adopt(self, stream)
    }

    fn has_tcp_info(&self) -> bool {
        // Snapshots are the same `sys::socket_snapshot` as io_uring's: KIST runs on this
        // backend wherever they carry TCP_INFO (Linux), so both backends run one scheduler.
        sys::SNAPSHOT_HAS_TCP_INFO
    }
}
