//! In-flight operations: the slab entry behind each `user_data`, and its key.

use std::fmt;

use super::ktls_rx::record::RecordMsg;
use super::stamp::{ErrMsg, SendMsg};
use super::{ConnId, ListenerId};
use crate::sys::RawSockAddr;

/// What an operation is, packed into the low byte of its [`OpKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OpKind {
    /// Multishot ACCEPT on a listener.
    Accept = 1,
    /// CONNECT of a new outgoing connection.
    Connect = 2,
    /// Multishot RECV with buffer select.
    Recv = 3,
    /// SEND of a connection's owned buffer.
    Send = 4,
    /// CLOSE of a descriptor given up by a connection or listener.
    Close = 5,
    /// RECVMSG of one non-data record of a kTLS RX socket, with its type.
    RecvRecord = 6,
    /// RECVMSG with MSG_ERRQUEUE: one kernel transmit timestamp.
    ErrQueue = 7,
}

impl OpKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Accept,
            2 => Self::Connect,
            3 => Self::Recv,
            4 => Self::Send,
            5 => Self::Close,
            6 => Self::RecvRecord,
            7 => Self::ErrQueue,
            _ => return None,
        })
    }
}

/// The `user_data` of an operation: its slab slot in the high bits, its kind in the low byte.
/// Values from [`OpKey::SENTINEL_FLOOR`] up are reserved for operations that own nothing
/// (as monoio does: timeouts, cancels, wakeups).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpKey(pub u64);

impl OpKey {
    /// The worker's deadline TIMEOUT (only used when the kernel lacks EXT_ARG waits).
    pub const TIMEOUT: u64 = u64::MAX;
    /// ASYNC_CANCEL requests; their completions are ignored.
    pub const CANCEL: u64 = u64::MAX - 1;
    /// Reserved for a future eventfd wakeup from the control thread.
    pub const WAKEUP: u64 = u64::MAX - 2;
    /// The setup probe's socket commands (reaped during setup; `uring::sockopt`).
    pub const PROBE: u64 = u64::MAX - 3;
    /// Every `user_data` at or above this is a sentinel, not a slab key.
    pub const SENTINEL_FLOOR: u64 = u64::MAX - 15;

    pub(crate) fn new(slot: u32, kind: OpKind) -> Self {
        Self((u64::from(slot) << 8) | kind as u64)
    }

    /// The slab slot of a non-sentinel key.
    pub fn slot(self) -> u32 {
        // A slot is at most u32::MAX, so this never truncates for keys built by `new`.
        (self.0 >> 8) as u32
    }

    /// The kind of a non-sentinel key, `None` for sentinels and foreign values.
    pub fn kind(self) -> Option<OpKind> {
        if self.is_sentinel() {
            return None;
        }
        OpKind::from_u8((self.0 & 0xff) as u8)
    }

    /// Whether this key is one of the reserved top values.
    pub fn is_sentinel(self) -> bool {
        self.0 >= Self::SENTINEL_FLOOR
    }
}

impl fmt::Debug for OpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Self::TIMEOUT => f.write_str("OpKey(TIMEOUT)"),
            Self::CANCEL => f.write_str("OpKey(CANCEL)"),
            Self::WAKEUP => f.write_str("OpKey(WAKEUP)"),
            Self::PROBE => f.write_str("OpKey(PROBE)"),
            _ => write!(f, "OpKey({}:{:?})", self.slot(), self.kind()),
        }
    }
}

// Slots are u32, so the largest real key stays below the sentinels.
const _: () = assert!(((u32::MAX as u64) << 8 | 0xff) < OpKey::SENTINEL_FLOOR);

/// An operation the kernel may still be working on, and everything it owns.
///
/// INVARIANT: a slot is freed only when the kernel posts the operation's last completion
/// (for multishot ops, the one without F_MORE), so memory an SQE points to (a send buffer's
/// heap block, a boxed socket address) lives until the kernel is done with it. Moving an
/// `Op` inside the slab's `Vec` moves only the `Vec`/`Box` headers, never the pointed-to bytes.
pub(crate) enum Op {
    Accept {
        listener: ListenerId,
    },
    Connect {
        conn: ConnId,
        /// Read by the kernel when it prepares the CONNECT.
        addr: Box<RawSockAddr>,
    },
    Recv {
        conn: ConnId,
    },
    Send {
        conn: ConnId,
        /// The bytes being sent; `buf[sent..]` is what the SQE in flight points to.
        buf: Vec<u8>,
        sent: usize,
        /// The SENDMSG block of a sampled send (read by the kernel until completion).
        stamp: Option<Box<SendMsg>>,
    },
    Close {
        /// Kept only for debugging: the descriptor number is given to the kernel to close.
        fd: i32,
    },
    RecvRecord {
        conn: ConnId,
        /// The `msghdr` and control buffer the kernel writes until completion.
        msg: Box<RecordMsg>,
    },
    ErrQueue {
        conn: ConnId,
        /// The header and control buffer the kernel writes the stamp into.
        msg: Box<ErrMsg>,
    },
}

impl Op {
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Accept { .. } => OpKind::Accept,
            Op::Connect { .. } => OpKind::Connect,
            Op::Recv { .. } => OpKind::Recv,
            Op::Send { .. } => OpKind::Send,
            Op::Close { .. } => OpKind::Close,
            Op::RecvRecord { .. } => OpKind::RecvRecord,
            Op::ErrQueue { .. } => OpKind::ErrQueue,
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Accept { listener } => write!(f, "Accept({listener:?})"),
            Op::Connect { conn, addr } => write!(f, "Connect({conn:?}, {addr:?})"),
            Op::Recv { conn } => write!(f, "Recv({conn:?})"),
            Op::Send {
                conn, buf, sent, ..
            } => write!(f, "Send({conn:?}, {sent}/{})", buf.len()),
            Op::Close { fd } => write!(f, "Close({fd})"),
            Op::RecvRecord { conn, .. } => write!(f, "RecvRecord({conn:?})"),
            Op::ErrQueue { conn, .. } => write!(f, "ErrQueue({conn:?})"),
        }
    }
}

impl super::Ring {
    /// The operations the kernel has not finished with, each described (`Recv(ConnId(..))`,
    /// `Send(conn, sent/len)`, ...): for the message of a wait for them that timed out.
    pub fn describe_ops_in_flight(&self) -> Vec<String> {
        self.ops.iter().map(|(_, op)| format!("{op:?}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pack_slot_and_kind() {
        let k = OpKey::new(0x1234_5678, OpKind::Send);
        assert_eq!(k.0, 0x12_3456_7804);
        assert_eq!(k.slot(), 0x1234_5678);
        assert_eq!(k.kind(), Some(OpKind::Send));
        assert!(!k.is_sentinel());
        let max = OpKey::new(u32::MAX, OpKind::Close);
        assert!(!max.is_sentinel());
        for s in [OpKey::TIMEOUT, OpKey::CANCEL, OpKey::WAKEUP, OpKey::PROBE] {
            assert!(OpKey(s).is_sentinel());
            assert_eq!(OpKey(s).kind(), None);
        }
        assert_eq!(OpKey(7 << 8).kind(), None, "kind 0 is not an op");
    }
}
