//! Turning completions into state changes and events.
//!
//! A completion whose connection or listener is gone (closed while the operation was in
//! flight) is an orphan: it only frees what its slot owns (send buffer, socket address),
//! gives its receive buffer back to the ring, or closes the socket an ACCEPT produced.

use std::io;
use std::net::TcpStream;
use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::{cqueue, opcode, types::Fd};

use super::ktls_rx::switch::{AfterLast, RecvCqe};
use super::op::{Op, OpKey};
use super::ring::Ring;
use super::{ConnId, Event, ListenerId, UringError};
use crate::slab::Key;

fn os_error(res: i32) -> io::Error {
    io::Error::from_raw_os_error(res.saturating_neg())
}

impl Ring {
    /// Handles one completion.
    pub(super) fn complete(
        &mut self,
        user_data: u64,
        res: i32,
        flags: u32,
    ) -> Result<(), UringError> {
        let key = OpKey(user_data);
        if key.is_sentinel() {
            // TIMEOUT (its -ETIME is reported by `run_once` as no completion), CANCEL.
            return Ok(());
        }
        let slot = key.slot();
        let more = cqueue::more(flags);
        let Some((op_key, op)) = self.ops.get_any_mut(slot) else {
            tracing::warn!(?key, res, "completion for an unknown operation");
            return Ok(());
        };
        match op {
            Op::Recv { conn } => {
                let conn = *conn;
                if !more {
                    self.ops.remove(op_key);
                }
                self.on_recv(conn, key, res, flags, more)
            }
            Op::Accept { listener } => {
                let listener = *listener;
                if !more {
                    self.ops.remove(op_key);
                }
                self.on_accept(listener, key, res, more)
            }
            Op::Connect { conn, .. } => {
                let conn = *conn;
                self.ops.remove(op_key);
                self.on_connect(conn, res)
            }
            Op::Send {
                conn, sent, stamp, ..
            } => {
                // A sampled SEND's first completion records its sample: arm the read of
                // its stamps.
                let (conn, sampled) = (*conn, *sent == 0 && stamp.is_some());
                self.on_send(op_key, res)?;
                if sampled {
                    self.arm_errqueue(conn)?;
                }
                Ok(())
            }
            Op::ErrQueue { .. } => self.on_errqueue(op_key, res),
            Op::RecvRecord { .. } => {
                let Some(Op::RecvRecord { conn, msg }) = self.ops.remove(op_key) else {
                    return Ok(());
                };
                self.on_recv_record(conn, key, res, flags, &msg)
            }
            Op::Close { fd } => {
                if res < 0 {
                    tracing::debug!(fd = *fd, err = %os_error(res), "io_uring close failed");
                }
                self.ops.remove(op_key);
                Ok(())
            }
        }
    }

    fn on_recv(
        &mut self,
        conn: ConnId,
        key: OpKey,
        res: i32,
        flags: u32,
        more: bool,
    ) -> Result<(), UringError> {
        // Wrap the buffer first, so it goes back to the ring whatever happens next.
        let data = match (cqueue::buffer_select(flags), u32::try_from(res)) {
            (Some(bid), Ok(len)) => {
                let data = self.bufs.take(bid, len);
                if data.is_none() {
                    tracing::error!(bid, len, "kernel named an impossible receive buffer");
                }
                data
            }
            _ => None,
        };
        let Some(c) = self.conns.get_mut(conn.0) else {
            return Ok(()); // orphan: `data` returns its buffer on drop
        };
        let last = !more && c.recv_op == Some(key);
        if last {
            c.recv_op = None;
        }
        let cqe = RecvCqe::of(res, more, c.rx_switch.kernel_rx());
        match cqe {
            RecvCqe::Data => {
                if let Some(data) = data {
                    self.stats.recvs += 1;
                    self.events.push_back(Event::Recv { conn, data });
                }
            }
            RecvCqe::Eof => {
                c.recv_done = true;
                self.events.push_back(Event::RecvClosed { conn, err: None });
            }
            // Not an error: the ring is empty. Re-armed once RxBufs have come back.
            RecvCqe::NoBuffers => self.stats.enobufs += 1,
            RecvCqe::Cancelled => {} // paused or draining; `arm_recv` respects both
            // Under kTLS RX: a non-data record waits; read below with its type.
            RecvCqe::OtherRecord => {}
            RecvCqe::Failed => {
                c.recv_done = true;
                self.events.push_back(Event::RecvClosed {
                    conn,
                    err: Some(os_error(res)),
                });
            }
        }
        if !last {
            return Ok(());
        }
        match c.rx_switch.after_last(cqe) {
            AfterLast::Rearm => {
                self.stats.recv_rearms += u64::from(res > 0);
                self.arm_recv(conn)
            }
            AfterLast::Starve => {
                self.starved.push(conn);
                Ok(())
            }
            AfterLast::Stopped => {
                self.events.push_back(Event::RecvStopped { conn });
                Ok(())
            }
            AfterLast::ReadRecord => self.arm_recv_record(conn),
            AfterLast::Ended => Ok(()),
        }
    }

    fn on_accept(
        &mut self,
        listener: ListenerId,
        key: OpKey,
        res: i32,
        more: bool,
    ) -> Result<(), UringError> {
        let (alive, held) = match self.listeners.get_mut(listener.0) {
            Some(l) => {
                if !more && l.accept_op == Some(key) {
                    l.accept_op = None;
                    self.accept_rearm.push(listener);
                }
                (true, l.hold)
            }
            None => (false, false),
        };
        if res >= 0 {
            // SAFETY: a successful ACCEPT returns a new descriptor that nothing else owns.
            let stream = TcpStream::from(unsafe { OwnedFd::from_raw_fd(res) });
            if !alive {
                return Ok(()); // orphan: dropping `stream` closes it
            }
            let peer = stream.peer_addr().ok();
            let conn = self.adopt_nonblocking(stream, held)?;
            self.events.push_back(Event::Accepted {
                listener,
                conn,
                peer,
            });
        } else if alive && res != -libc::ECANCELED {
            self.events.push_back(Event::AcceptFailed {
                listener,
                err: os_error(res),
            });
        }
        Ok(())
    }

    fn on_connect(&mut self, conn: ConnId, res: i32) -> Result<(), UringError> {
        let Some(c) = self.conns.get_mut(conn.0) else {
            return Ok(()); // closed while connecting
        };
        c.connect_op = None;
        if res < 0 {
            self.close(conn)?;
            self.events.push_back(Event::ConnectFailed {
                conn,
                err: os_error(res),
            });
            return Ok(());
        }
        c.connecting = false;
        c.stamping
            .enable(std::os::fd::AsRawFd::as_raw_fd(&c.stream));
        self.events.push_back(Event::Connected { conn });
        self.arm_recv(conn)?;
        self.start_send(conn)?;
        let idle = self.conns.get(conn.0).is_some_and(|c| c.send_op.is_none());
        if idle {
            self.run_after_flush(conn)?;
        }
        Ok(())
    }

    fn on_send(&mut self, op_key: Key, res: i32) -> Result<(), UringError> {
        let slot = op_key.index();
        let Some((
            _,
            Op::Send {
                conn,
                buf,
                sent,
                stamp,
            },
        )) = self.ops.get_any_mut(slot)
        else {
            return Ok(());
        };
        let conn = *conn;
        let Some(c) = self.conns.get_mut(conn.0) else {
            self.ops.remove(op_key); // orphan: frees the buffer
            return Ok(());
        };
        if *sent == 0 {
            c.stamping.on_first_completion(res, stamp.is_some());
        } else {
            c.stamping.on_more_sent(res);
        }
        if let Ok(n @ 1..) = usize::try_from(res) {
            *sent = sent.saturating_add(n).min(buf.len());
            if *sent < buf.len() {
                // Short send: the rest goes out from the same slot before anything queued.
                self.stats.short_sends += 1;
                let rest = &buf[*sent..];
                let (ptr, len) = (rest.as_ptr(), rest.len());
                c.in_flight = len;
                let fd = std::os::fd::AsRawFd::as_raw_fd(&c.stream);
                let entry = opcode::Send::new(Fd(fd), ptr, u32::try_from(len).unwrap_or(u32::MAX))
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(OpKey::new(slot, super::OpKind::Send).0);
                // SAFETY: `ptr..ptr+len` is the unsent tail of the Vec owned by op slot
                // `slot`, which stays in the slab, unwritten, until this SEND completes.
                unsafe { self.push(entry) };
                return Ok(());
            }
        }
        let Some(Op::Send { mut buf, stamp, .. }) = self.ops.remove(op_key) else {
            return Ok(());
        };
        let Some(c) = self.conns.get_mut(conn.0) else {
            return Ok(());
        };
        c.stamping.give_back(stamp);
        c.send_op = None;
        c.in_flight = 0;
        buf.clear();
        if c.spare.capacity() < buf.capacity() {
            c.spare = buf; // keep the larger buffer for the next swap
        }
        if res <= 0 {
            // res == 0 for a non-empty buffer would loop forever: treat it as a failure.
            let err = if res == 0 {
                io::Error::from(io::ErrorKind::WriteZero)
            } else {
                os_error(res)
            };
            c.send_broken = true;
            c.out.clear();
            self.events.push_back(Event::SendFailed { conn, err });
            return self.run_after_flush(conn);
        }
        if !c.out.is_empty() {
            return self.start_send(conn);
        }
        self.events.push_back(Event::SendDone { conn });
        self.run_after_flush(conn)
    }
}
