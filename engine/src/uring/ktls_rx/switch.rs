//! The decision logic of one connection's switch to kTLS RX on io_uring: pure (no ring, no
//! socket, no clock), fed by the ring with what its completions said and by the worker with
//! whether the link is on a record boundary, so every path is unit-tested with scripted
//! completions (`super::tests`) although this kernel cannot take the keys.
//!
//! ```text
//!  User --request: on a boundary, RECV armed----------> Cancelling   (ASYNC_CANCEL pushed;
//!   |  \--request: on a boundary, nothing reading--+                  data CQEs still delivered)
//!   |                                              v
//!   |   Cancelling --last RECV CQE (data, ECANCELED, ENOBUFS)--> Drained (RecvStopped posted)
//!   |   Cancelling --last RECV CQE (EOF, error)----------------> Never
//!   |   Drained --decide: boundary--> Switch: setsockopt TLS_RX --ok--> Kernel / --err--> Never
//!   +<--Drained --decide: no boundary, try < MAX_TRIES (RECV re-armed, retried at the next
//!   |                                                   boundary the link reaches)
//!       Drained --decide: no boundary, try = MAX_TRIES--> Never (one log line, user space)
//! ```
//!
//! Why the drain: the multishot RECV reads ahead of the worker into provided buffers, so
//! bytes of the next record may already be out of the socket when the link asks. Only after
//! the RECV's last completion (the one without F_MORE) is nothing reading; every byte read
//! is then in the event queue ahead of `RecvStopped`, and once the link has opened them all
//! it knows whether it stands on a record boundary: then the rest is still in the socket,
//! whole records for the kernel, and nothing is lost or read twice.
//!
//! Under TLS_RX a record that is not application data makes a plain RECV fail with EIO (the
//! kernel needs a control buffer to say its type, and keeps the record): the ring then reads
//! that one record with a single-shot RECVMSG and a control buffer ([`AfterLast::ReadRecord`])
//! and re-arms the multishot RECV, so data records keep the one-RECV path with no per-buffer
//! header to parse.

/// Drains that may end off a record boundary before the link gives up and stays in user
/// space (each costs one cancel and one re-arm).
pub(crate) const MAX_TRIES: u8 = 4;

/// Where one connection's switch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Records are opened in user space; the switch was not asked for yet, or is retried at
    /// the link's next record boundary.
    User,
    /// The multishot RECV is being cancelled: its completions still deliver bytes; its last
    /// one ends the drain.
    Cancelling,
    /// Nothing reads the socket; the worker decides with the link.
    Drained,
    /// The kernel opens the records (TLS_RX set).
    Kernel,
    /// The switch will not happen: refused, given up, or the receive side ended.
    Never,
}

/// One connection's switch state. INVARIANT: `tries <= MAX_TRIES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RxSwitch {
    phase: Phase,
    tries: u8,
}

impl Default for RxSwitch {
    fn default() -> Self {
        RxSwitch {
            phase: Phase::User,
            tries: 0,
        }
    }
}

/// What a RECV completion says, for the switch (`res` as the kernel gave it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecvCqe {
    /// Bytes in a provided buffer.
    Data,
    /// The peer's orderly EOF.
    Eof,
    /// The buffer ring was empty.
    NoBuffers,
    /// Cancelled (a pause, a close, or the switch's drain).
    Cancelled,
    /// Under TLS_RX, the last completion with EIO: a record that is not application data
    /// waits in the socket (read it with its type).
    OtherRecord,
    /// Any other error: the receive side is broken.
    Failed,
}

impl RecvCqe {
    /// Classifies a RECV completion; `kernel_rx`: the socket has TLS_RX set.
    pub(crate) fn of(res: i32, more: bool, kernel_rx: bool) -> Self {
        match res {
            1.. => RecvCqe::Data,
            0 => RecvCqe::Eof,
            _ if res == -libc::ENOBUFS => RecvCqe::NoBuffers,
            _ if res == -libc::ECANCELED => RecvCqe::Cancelled,
            _ if res == -libc::EIO && kernel_rx && !more => RecvCqe::OtherRecord,
            _ => RecvCqe::Failed,
        }
    }
}

/// What the ring does after a RECV's last completion (no F_MORE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterLast {
    /// Re-arm the multishot RECV (if not paused).
    Rearm,
    /// Re-arm once buffers are back.
    Starve,
    /// The drain is over: post `RecvStopped`; re-arm only on the worker's verdict.
    Stopped,
    /// Read the waiting non-data record with RECVMSG, then re-arm.
    ReadRecord,
    /// The receive side is over (EOF or error): nothing.
    Ended,
}

/// What the ring does when the worker asks for the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Cancel the armed RECV; `RecvStopped` follows its last completion.
    Cancel,
    /// Nothing reads the socket: decide now ([`RxSwitch::decide`]).
    Decide,
    /// Nothing to do now (draining, or the link is mid-record: asked again later).
    Wait,
    /// The switch is over one way or the other ([`RxSwitch::phase`]).
    Over,
}

/// The outcome of a drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// On a boundary: give the kernel the keys, then [`RxSwitch::switched`].
    Switch,
    /// Off a boundary: re-arm the RECV and try at the next boundary.
    Retry,
    /// Off a boundary for the last allowed time: re-arm, stay in user space.
    GiveUp,
}

impl RxSwitch {
    /// Where the switch stands.
    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Drains that ended off a record boundary so far.
    pub(crate) fn tries(&self) -> u8 {
        self.tries
    }

    /// Whether the socket has TLS_RX set.
    pub(crate) fn kernel_rx(&self) -> bool {
        self.phase == Phase::Kernel
    }

    /// Whether the RECV must stay disarmed (draining, or waiting for the verdict).
    pub(crate) fn holds_recv(&self) -> bool {
        matches!(self.phase, Phase::Cancelling | Phase::Drained)
    }

    /// The worker asks for the switch: `on_boundary`, the link has nothing staged and the
    /// worker has every byte read so far; `reading`, a RECV is armed.
    pub(crate) fn request(&mut self, on_boundary: bool, reading: bool) -> Step {
        match self.phase {
            // Mid-record: a drain now would most likely end mid-record too.
            Phase::User if !on_boundary => Step::Wait,
            Phase::User if reading => {
                self.phase = Phase::Cancelling;
                Step::Cancel
            }
            Phase::User => {
                self.phase = Phase::Drained;
                Step::Decide
            }
            Phase::Cancelling => Step::Wait,
            Phase::Drained => Step::Decide,
            Phase::Kernel | Phase::Never => Step::Over,
        }
    }

    /// A RECV's last completion (no F_MORE) of kind `cqe`: what the ring does next.
    pub(crate) fn after_last(&mut self, cqe: RecvCqe) -> AfterLast {
        match (self.phase, cqe) {
            (Phase::Cancelling | Phase::Drained, RecvCqe::Eof | RecvCqe::Failed) => {
                self.phase = Phase::Never;
                AfterLast::Ended
            }
            (_, RecvCqe::Eof | RecvCqe::Failed) => AfterLast::Ended,
            // Bytes that came after the cancel (delivered ahead of `RecvStopped`), the
            // cancel itself, or a RECV that ended on its own: nothing reads any more.
            (Phase::Cancelling | Phase::Drained, _) => {
                self.phase = Phase::Drained;
                AfterLast::Stopped
            }
            (Phase::Kernel, RecvCqe::OtherRecord) => AfterLast::ReadRecord,
            (_, RecvCqe::NoBuffers) => AfterLast::Starve,
            (_, RecvCqe::Data | RecvCqe::Cancelled | RecvCqe::OtherRecord) => AfterLast::Rearm,
        }
    }

    /// The verdict of a drain (phase [`Phase::Drained`]): `on_boundary` as in
    /// [`RxSwitch::request`]. Any other phase: [`Verdict::GiveUp`] without a change.
    pub(crate) fn decide(&mut self, on_boundary: bool) -> Verdict {
        if self.phase != Phase::Drained {
            return Verdict::GiveUp;
        }
        if on_boundary {
            return Verdict::Switch;
        }
        self.tries = (self.tries + 1).min(MAX_TRIES);
        if self.tries == MAX_TRIES {
            self.phase = Phase::Never;
            Verdict::GiveUp
        } else {
            self.phase = Phase::User;
            Verdict::Retry
        }
    }

    /// The kernel took the keys (`accepted`) or refused them.
    pub(crate) fn switched(&mut self, accepted: bool) {
        self.phase = if accepted {
            Phase::Kernel
        } else {
            Phase::Never
        };
    }
}
