//! [`Driver`] for the io_uring backend: a thin mapping onto [`Ring`].

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use kistrel_sched::SocketSnapshot;

use crate::driver::{no_such_conn, Driver, DriverStats, IoEvent};
use crate::sys;

use super::{ConnId, Event, ListenerId, Ring, RxBuf};

impl Driver for Ring {
    type Conn = ConnId;
    type Listener = ListenerId;
    type Buf = RxBuf;

    fn add_listener(&mut self, listener: TcpListener) -> io::Result<ListenerId> {
        Ring::add_listener(self, listener).map_err(io::Error::other)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        Ring::connect(self, addr).map_err(io::Error::other)
    }

    fn send_buf(&mut self, conn: ConnId) -> Option<&mut Vec<u8>> {
        Ring::send_buf(self, conn).ok()
    }

    /// The stamps were read by the error-queue RECVMSGs as they came (no system call);
    /// this hands their delays over and gives up samples whose stamps never came.
    fn drain_tx_stamps(&mut self, record: &mut dyn FnMut(sys::txstamp::KernelStage, u64)) {
        self.collect_tx_stamps(record);
    }

    fn queued_len(&self, conn: ConnId) -> usize {
        Ring::queued_len(self, conn).unwrap_or(0)
    }

    fn set_recv_paused(&mut self, conn: ConnId, paused: bool) {
        // A dead connection has nothing to pause.
        let _ = Ring::set_recv_paused(self, conn, paused);
    }

    fn close(&mut self, conn: ConnId) {
        let _ = Ring::close(self, conn);
    }

    fn close_when_flushed(&mut self, conn: ConnId) {
        let _ = Ring::close_when_flushed(self, conn);
    }

    /// One getsockopt(2): the ring cannot read TCP_INFO on Linux up to at least 6.18
    /// (`RingFeatures::tcp_info_cmd`, probed at setup).
    fn socket_snapshot(&self, conn: ConnId) -> io::Result<SocketSnapshot> {
        let fd = Ring::conn_fd(self, conn).map_err(|_| no_such_conn())?;
        sys::socket_snapshot(fd)
    }

    fn set_nodelay(&self, conn: ConnId, on: bool) -> io::Result<()> {
        let fd = Ring::conn_fd(self, conn).map_err(|_| no_such_conn())?;
        sys::set_tcp_nodelay(fd, on)
    }

    fn enable_ktls_tx(&mut self, conn: ConnId, info: &sys::ktls::CryptoInfo) -> io::Result<()> {
        let fd = Ring::conn_fd(self, conn).map_err(|_| no_such_conn())?;
        sys::ktls::enable_tx(fd, info)
    }

    fn enable_ktls_rx(
        &mut self,
        conn: ConnId,
        info: Option<&sys::ktls::CryptoInfo>,
    ) -> io::Result<()> {
        Ring::enable_ktls_rx(self, conn, info)
    }

    fn poll_event(&mut self) -> Option<IoEvent<ConnId, ListenerId, RxBuf>> {
        loop {
            let ev = Ring::poll_event(self)?;
            return Some(match ev {
                Event::Accepted {
                    listener,
                    conn,
                    peer,
                } => IoEvent::Accepted {
                    listener,
                    conn,
                    peer,
                },
                Event::Connected { conn } => IoEvent::Connected { conn },
                Event::ConnectFailed { conn, err } => IoEvent::ConnectFailed { conn, err },
                Event::Recv { conn, data } => IoEvent::Recv { conn, data },
                Event::TlsRecord {
                    conn,
                    content_type,
                    data,
                } => IoEvent::TlsRecord {
                    conn,
                    content_type,
                    data,
                },
                Event::RecvStopped { conn } => IoEvent::RecvStopped { conn },
                Event::RecvClosed { conn, err } => IoEvent::RecvClosed { conn, err },
                Event::SendDone { conn } => IoEvent::SendDone { conn },
                Event::SendFailed { conn, err } => IoEvent::SendFailed { conn, err },
                Event::AcceptFailed { listener, err } => {
                    tracing::warn!(?listener, %err, "accept failed (will retry)");
                    continue;
                }
                Event::Timeout => continue,
            });
        }
    }

    fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        Ring::run_once(self, timeout).map_err(io::Error::other)
    }

    fn has_tcp_info(&self) -> bool {
        true
    }

    fn stats(&self) -> DriverStats {
        let s = Ring::stats(self);
        DriverStats {
            waits: s.waits,
            recvs: s.recvs,
            sends: s.sends,
            short_sends: s.short_sends,
            recv_no_buffers: s.enobufs,
        }
    }

    fn hold_accepted(&mut self, listener: ListenerId) {
        // A listener of this ring always exists while the worker holds its id.
        let _ = Ring::hold_accepted(self, listener);
    }

    fn detach(&mut self, conn: ConnId) -> Option<std::net::TcpStream> {
        Ring::detach(self, conn)
    }

    fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<ConnId> {
        Ring::adopt(self, stream).map_err(io::Error::other)
    }
}
