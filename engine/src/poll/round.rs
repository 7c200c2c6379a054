//! One round of the poll backend: write what is queued, poll, act on readiness.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::driver::IoEvent;
use crate::sys::poll_sys::{Interest, Readiness};
use crate::sys::txstamp;

use super::{AfterFlush, ConnId, ListenerId, Owner, PollDriver};

/// Most connections accepted from one listener per round (bounded work).
const ACCEPT_BUDGET: usize = 256;

impl PollDriver {
    /// One loop iteration: one writev per connection with new bytes, then one poll(2) for up
    /// to `timeout` (no wait if events are already queued; `None`: no limit), then connects
    /// finished, connections accepted, bytes read and more bytes written on the sockets
    /// that are ready. Drain the results with [`PollDriver::poll_event`].
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        for id in dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(id.0) {
                c.dirty = false;
            }
            self.write(id);
        }
        self.dirty = dirty;

        if self.set_changed {
            self.rebuild();
        }
        self.refresh_interest();
        let timeout = if self.events.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        self.stats.polls += 1;
        let ready = self.set.wait(timeout)?;
        if ready == 0 {
            return Ok(());
        }
        for i in 0..self.owners.len() {
            let r = self.set.readiness(i);
            if !r.any() {
                continue;
            }
            match self.owners.get(i).copied() {
                Some(Owner::Listener(l)) => self.accept(l),
                Some(Owner::Conn(c)) => self.on_ready(c, r),
                None => {}
            }
        }
        Ok(())
    }

    /// Lays the pollfd array out anew from the live listeners and connections.
    fn rebuild(&mut self) {
        self.stats.rebuilds += 1;
        self.set.clear();
        self.owners.clear();
        for (key, l) in self.listeners.iter() {
            self.set.push(
                std::os::fd::AsRawFd::as_raw_fd(l),
                Interest {
                    read: true,
                    write: false,
                },
            );
            self.owners.push(Owner::Listener(ListenerId(key)));
        }
        for (key, c) in self.conns.iter() {
            self.set.push(
                std::os::fd::AsRawFd::as_raw_fd(&c.stream),
                Interest::default(),
            );
            self.owners.push(Owner::Conn(ConnId(key)));
        }
        self.set_changed = false;
    }

    /// Sets each connection's entry to what it waits for now: the end of a connect, room
    /// for queued bytes, and bytes to read unless paused or ended.
    fn refresh_interest(&mut self) {
        for (i, owner) in self.owners.iter().enumerate() {
            let Owner::Conn(id) = *owner else { continue };
            let Some(c) = self.conns.get(id.0) else {
                continue;
            };
            let interest = if c.connecting {
                Interest {
                    read: false,
                    write: true,
                }
            } else {
                Interest {
                    read: !c.recv_paused && !c.recv_done,
                    write: !c.send_broken && c.queued() > 0,
                }
            };
            self.set.set_interest(i, interest);
        }
    }

    fn accept(&mut self, id: ListenerId) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listeners.get(id.0) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => match self.adopt(stream) {
                    Ok(conn) => {
                        if self.holding.contains(&id) {
                            if let Some(c) = self.conns.get_mut(conn.0) {
                                (c.held, c.recv_paused) = (true, true);
                            }
                        }
                        self.events.push_back(IoEvent::Accepted {
                            listener: id,
                            conn,
                            peer: Some(peer),
                        })
                    }
                    Err(err) => {
                        tracing::warn!(listener = ?id, %err, "cannot adopt accepted connection")
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {} // gone before accept
                Err(err) => {
                    // E.g. EMFILE: retried next round, as the io_uring backend does.
                    tracing::warn!(listener = ?id, %err, "accept failed (will retry)");
                    return;
                }
            }
        }
    }

    fn on_ready(&mut self, id: ConnId, r: Readiness) {
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        if c.connecting {
            self.finish_connect(id);
            return;
        }
        let (recv_paused, recv_done) = (c.recv_paused, c.recv_done);
        if r.error && c.tx.outstanding() {
            // Timestamps keep POLLERR raised until read: read them now, keep the delays.
            self.read_stamps(id);
        }
        if (r.readable || r.error || r.hangup || r.invalid) && !recv_paused && !recv_done {
            self.read(id);
        }
        if r.writable || r.error || r.hangup || r.invalid {
            self.write(id);
        }
    }

    /// The connect of `id` ended: SO_ERROR says how.
    fn finish_connect(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        // SO_ERROR first; a socket without one but also without a peer did not connect
        // either (some kernels report only POLLHUP).
        let failed = match c.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => c.stream.peer_addr().err(),
        };
        if let Some(err) = failed {
            self.close(id);
            self.events
                .push_back(IoEvent::ConnectFailed { conn: id, err });
            return;
        }
        c.connecting = false;
        c.enable_stamps();
        self.events.push_back(IoEvent::Connected { conn: id });
        self.write(id);
        self.after_flush_if_idle(id);
    }

    /// Reads up to the per-round budget into pooled buffers.
    fn read(&mut self, id: ConnId) {
        let mut budget = self.config.recv_budget;
        while budget > 0 {
            let Some(c) = self.conns.get_mut(id.0) else {
                return;
            };
            let mut buf = self.pool.get();
            let space = buf.space();
            let want = space.len().min(budget);
            let Some(space) = space.get_mut(..want) else {
                return;
            };
            match (&c.stream).read(space) {
                Ok(0) => {
                    c.recv_done = true;
                    self.events.push_back(IoEvent::RecvClosed {
                        conn: id,
                        err: None,
                    });
                    return;
                }
                Ok(n) => {
                    self.stats.reads += 1;
                    buf.set_len(n);
                    budget = budget.saturating_sub(n);
                    self.events.push_back(IoEvent::Recv {
                        conn: id,
                        data: buf,
                    });
                    if n < want {
                        return; // drained for now
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if c.ktls_rx && e.raw_os_error() == Some(libc::EIO) => {
                    // kTLS RX: a record that is not application data; read it with its type.
                    match crate::sys::ktls::recv_record(c.stream.as_raw_fd(), space) {
                        Ok(rec) => {
                            self.stats.reads += 1;
                            buf.set_len(rec.len);
                            budget = budget.saturating_sub(rec.len.max(1));
                            self.events.push_back(IoEvent::TlsRecord {
                                conn: id,
                                content_type: rec.content_type,
                                data: buf,
                            });
                        }
                        Err(err) => {
                            c.recv_done = true;
                            self.events.push_back(IoEvent::RecvClosed {
                                conn: id,
                                err: Some(err),
                            });
                            return;
                        }
                    }
                }
                Err(err) => {
                    c.recv_done = true;
                    self.events.push_back(IoEvent::RecvClosed {
                        conn: id,
                        err: Some(err),
                    });
                    return;
                }
            }
        }
    }

    /// One writev of everything queued on `id` (the unsent tail of the last one, then the
    /// bytes appended since). `SendDone` when nothing is left, `SendFailed` on an error.
    fn write(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        if c.connecting || c.send_broken || c.queued() == 0 {
            return;
        }
        if c.sent >= c.inflight.len() {
            // The last writev finished: what was appended since becomes the next one.
            c.inflight.clear();
            c.sent = 0;
            std::mem::swap(&mut c.inflight, &mut c.out);
        }
        let head = c.inflight.get(c.sent..).unwrap_or_default();
        let head_len = head.len();
        let bufs = [IoSlice::new(head), IoSlice::new(&c.out)];
        // At most one sampled send per batch, about one per 1,024 cells: the others are the
        // plain writev.
        let sampled = c.tx.sample(head_len + c.out.len());
        let res = if sampled {
            self.stats.stamped_sends += 1;
            txstamp::sendmsg_sampled(c.stream.as_raw_fd(), &bufs, &txstamp::SampleCmsg::new())
        } else {
            (&c.stream).write_vectored(&bufs)
        };
        c.tx.on_sent(*res.as_ref().unwrap_or(&0), sampled);
        match res {
            Ok(0) => self.send_failed(id, io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                self.stats.writes += 1;
                if n < head_len {
                    c.sent += n;
                } else {
                    // The in-flight bytes are all out; the rest of `n` came from `out`.
                    c.inflight.clear();
                    std::mem::swap(&mut c.inflight, &mut c.out);
                    c.sent = (n - head_len).min(c.inflight.len());
                }
                if c.queued() > 0 {
                    self.stats.short_writes += 1;
                    return;
                }
                c.inflight.clear();
                c.sent = 0;
                self.events.push_back(IoEvent::SendDone { conn: id });
                self.after_flush_if_idle(id);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(err) => self.send_failed(id, err),
        }
    }

    /// Reads `id`'s error queue into the driver's backlog of measured delays.
    fn read_stamps(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let stamps = &mut self.stamps;
        let fd = c.stream.as_raw_fd();
        let calls = c.tx.drain(fd, &mut |stage, us| {
            if stamps.len() < stamps.capacity() {
                stamps.push((stage, us));
            }
        });
        self.stats.errqueue_reads += u64::from(calls);
    }

    fn send_failed(&mut self, id: ConnId, err: io::Error) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        c.send_broken = true;
        c.inflight.clear();
        c.sent = 0;
        c.out.clear();
        self.events.push_back(IoEvent::SendFailed { conn: id, err });
        self.after_flush_if_idle(id);
    }

    /// Runs a pending `close_when_flushed` once nothing is queued (or sending broke).
    fn after_flush_if_idle(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        if c.after_flush == AfterFlush::Close && !c.connecting && (c.queued() == 0 || c.send_broken)
        {
            self.close(id);
        }
    }
}
