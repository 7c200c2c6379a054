//! kTLS RX on io_uring: the switch of a connection's receive side to the kernel at a record
//! boundary (the decision logic is [`switch`], pure), and the read of a record that is not
//! application data once the kernel opens them ([`record`]).
//!
//! ```text
//!  worker                          Ring (this file)                      kernel
//!  enable_ktls_rx(conn, info?) --> switch.request --Cancel--> ASYNC_CANCEL(RECV)
//!                                  RECV CQEs (F_MORE): Event::Recv <----- bytes read ahead
//!                                  last RECV CQE: Event::RecvStopped
//!  (has opened every byte read)
//!  enable_ktls_rx(conn, info?) --> switch.decide --Switch--> setsockopt TLS_RX (seq, keys)
//!                                                --Retry/GiveUp--> re-arm RECV (user space)
//!                                  re-arm multishot RECV: plaintext of data records
//!                                  RECV -EIO (non-data record) --> RECVMSG + control buffer
//!                                  Event::TlsRecord { content_type, data } ; re-arm RECV
//! ```
//!
//! **Untested on the development kernel** (no `tls` ULP): the setsockopt and the EIO path
//! run only where the probe succeeds. The state machine is unit-tested with scripted
//! completions, and the drain, the re-arm after a refused switch and the record RECVMSG run
//! on plain sockets in the tests.

pub(super) mod record;
pub(super) mod switch;
#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types::Fd};

use self::record::RecordMsg;
use self::switch::{Step, Verdict};
use super::op::{Op, OpKey};
use super::ring::Ring;
use super::{ConnId, Event, UringError};
use crate::sys::ktls::CryptoInfo;
use crate::{ErrorKind, HasKind};

/// Why a connection's receive side stays in user space.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KtlsRxError {
    /// Every drain ended off a record boundary (a peer that never pauses between records).
    #[error("no record boundary in {tries} drains of the receive side")]
    NoRecordBoundary {
        /// Drains tried.
        tries: u8,
    },
    /// The switch is over already (the kernel has the keys, or it was refused before).
    #[error("the receive side's switch to kTLS is over")]
    Over,
}

impl HasKind for KtlsRxError {
    fn kind(&self) -> ErrorKind {
        match self {
            KtlsRxError::NoRecordBoundary { .. } => ErrorKind::Unavailable,
            KtlsRxError::Over => ErrorKind::BadApiUsage,
        }
    }
}

impl Ring {
    /// The io_uring side of [`crate::driver::Driver::enable_ktls_rx`]: `info` is the link's
    /// receive crypto info when it stands on a record boundary, `None` mid-record.
    /// `WouldBlock` while the drain runs or the link is mid-record ([`Event::RecvStopped`]
    /// or the next [`Event::Recv`] brings the worker back); `Ok` once the kernel took the
    /// keys; another error when the link stays in user space for good.
    pub fn enable_ktls_rx(&mut self, conn: ConnId, info: Option<&CryptoInfo>) -> io::Result<()> {
        // Bytes read but not yet given to the worker: the link cannot know its boundary.
        let undelivered = self
            .events
            .iter()
            .any(|e| matches!(e, Event::Recv { conn: c, .. } if *c == conn));
        if undelivered {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let c = self
            .conns
            .get_mut(conn.0)
            .ok_or_else(crate::driver::no_such_conn)?;
        let reading = c.recv_op.is_some();
        match c.rx_switch.request(info.is_some(), reading) {
            Step::Wait => Err(io::ErrorKind::WouldBlock.into()),
            Step::Cancel => {
                if let Some(key) = c.recv_op {
                    self.push_cancel(key);
                }
                Err(io::ErrorKind::WouldBlock.into())
            }
            Step::Decide => self.decide_ktls_rx(conn, info),
            Step::Over => Err(io::Error::other(KtlsRxError::Over)),
        }
    }

    /// The drain is over and the worker has every byte read: switch on a boundary, else
    /// re-arm (and retry later, or give up).
    fn decide_ktls_rx(&mut self, conn: ConnId, info: Option<&CryptoInfo>) -> io::Result<()> {
        let c = self
            .conns
            .get_mut(conn.0)
            .ok_or_else(crate::driver::no_such_conn)?;
        let result = match (c.rx_switch.decide(info.is_some()), info) {
            (Verdict::Switch, Some(info)) => {
                let r = crate::sys::ktls::enable_rx(c.stream.as_raw_fd(), info);
                c.rx_switch.switched(r.is_ok());
                r
            }
            (Verdict::Retry, _) => Err(io::ErrorKind::WouldBlock.into()),
            (Verdict::Switch | Verdict::GiveUp, _) => {
                Err(io::Error::other(KtlsRxError::NoRecordBoundary {
                    tries: c.rx_switch.tries(),
                }))
            }
        };
        // Plaintext after a switch, TLS records otherwise: the RECV reads on either way.
        self.arm_recv(conn).map_err(io::Error::other)?;
        result
    }

    /// Reads the non-data record waiting on a kTLS RX socket (its RECV failed with EIO):
    /// one RECVMSG into a provided buffer with a control buffer for the record's type.
    pub(super) fn arm_recv_record(&mut self, id: ConnId) -> Result<(), UringError> {
        let Some(conn) = self.conns.get(id.0) else {
            return Ok(());
        };
        if conn.recv_op.is_some() || conn.recv_done {
            return Ok(());
        }
        let fd = conn.stream.as_raw_fd();
        let mut msg = RecordMsg::new();
        let hdr = msg.hdr_ptr();
        let key = self.insert_op(Op::RecvRecord { conn: id, msg })?;
        if let Some(conn) = self.conns.get_mut(id.0) {
            conn.recv_op = Some(key);
        }
        let entry = opcode::RecvMsg::new(Fd(fd), hdr)
            .buf_group(self.bufs.bgid())
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(key.0);
        // SAFETY: `hdr` points into the boxed `RecordMsg` owned by op slot `key` (its
        // control buffer in the same block) until the RECVMSG completes; the payload goes
        // into the registered buffer ring, mapped while the io_uring exists.
        unsafe { self.push(entry) };
        Ok(())
    }

    /// The completion of a record RECVMSG: the record with its type, then the multishot
    /// RECV again.
    pub(super) fn on_recv_record(
        &mut self,
        conn: ConnId,
        key: OpKey,
        res: i32,
        flags: u32,
        msg: &RecordMsg,
    ) -> Result<(), UringError> {
        let data = match (io_uring::cqueue::buffer_select(flags), u32::try_from(res)) {
            (Some(bid), Ok(len)) => self.bufs.take(bid, len),
            _ => None,
        };
        let Some(c) = self.conns.get_mut(conn.0) else {
            return Ok(()); // orphan: `data` returns its buffer on drop
        };
        if c.recv_op == Some(key) {
            c.recv_op = None;
        }
        match res {
            1.. => {
                if let Some(data) = data {
                    let content_type = msg.content_type();
                    self.events.push_back(Event::TlsRecord {
                        conn,
                        content_type,
                        data,
                    });
                }
            }
            0 => {
                c.recv_done = true;
                self.events.push_back(Event::RecvClosed { conn, err: None });
            }
            _ if res == -libc::ENOBUFS => {
                // The RECV re-armed once buffers are back fails with EIO again: read then.
                self.stats.enobufs += 1;
                self.starved.push(conn);
                return Ok(());
            }
            _ if res == -libc::ECANCELED => {}
            _ => {
                c.recv_done = true;
                self.events.push_back(Event::RecvClosed {
                    conn,
                    err: Some(io::Error::from_raw_os_error(res.saturating_neg())),
                });
            }
        }
        self.arm_recv(conn)
    }
}
