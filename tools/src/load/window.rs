//! Per-circuit flow control of the load side: Tor's circuit-level window, end to end between
//! pump and sink (the relay in between forwards acks like any other cell).
//!
//! ```text
//!   sender: credit 1000 --(chunk of 100 data cells)--> credit 900 ... 0: waits
//!           <-- ack (any cell back on the circuit) -- credit += 100
//!   receiver: every 100th data cell -> one ack cell back
//! ```
//!
//! Each circuit carries data one way only (its [`Role`]), so on the sending side every cell
//! that comes back is an ack, and nothing in a data cell has to be read.

use serde::{Deserialize, Serialize};

/// Data cells a sender may have unacknowledged on one circuit (Tor's `CIRCWINDOW_START`).
pub const WINDOW: u32 = 1000;
/// Data cells per ack (Tor's `CIRCWINDOW_INCREMENT`), and per chunk the sender writes.
pub const ACK_EVERY: u32 = 100;

/// Which way a circuit's data flows, seen from the pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Pump to sink (the relay's forward direction: one AES layer removed per cell).
    Forward,
    /// Sink to pump (backward: one AES layer added per cell).
    Backward,
}

impl Direction {
    /// The marker a start cell carries (the relay data of its DROP cell).
    pub(super) fn marker(self) -> &'static [u8] {
        match self {
            Direction::Forward => b"kistrel-load start fwd",
            Direction::Backward => b"kistrel-load start bwd",
        }
    }

    /// The direction a start cell's relay data names, if any.
    pub(super) fn from_marker(data: &[u8]) -> Option<Direction> {
        [Direction::Forward, Direction::Backward]
            .into_iter()
            .find(|d| d.marker() == data)
    }
}

/// One end's part in a circuit's data flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This end sends data and reads acks.
    Send,
    /// This end reads data and sends acks.
    Receive,
}

/// What a cell arriving on a circuit was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A data cell; `ack_due`: send one ack now.
    Data {
        /// This was the [`ACK_EVERY`]-th data cell since the last ack.
        ack_due: bool,
    },
    /// An ack: the window grew by [`ACK_EVERY`].
    Ack,
}

/// An ack arrived that acknowledges cells never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckBeyondWindow;

/// One circuit end's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircWindow {
    role: Role,
    /// Send: data cells that may still go out. INVARIANT: `<= WINDOW`.
    credit: u32,
    /// Receive: data cells since the last ack. INVARIANT: `< ACK_EVERY`.
    unacked: u32,
}

impl CircWindow {
    /// A fresh window for `role`.
    pub fn new(role: Role) -> Self {
        CircWindow {
            role,
            credit: WINDOW,
            unacked: 0,
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// A cell arrived on the circuit.
    #[inline]
    pub fn on_cell(&mut self) -> Result<Arrival, AckBeyondWindow> {
        match self.role {
            Role::Receive => {
                self.unacked += 1;
                let ack_due = self.unacked == ACK_EVERY;
                if ack_due {
                    self.unacked = 0;
                }
                Ok(Arrival::Data { ack_due })
            }
            Role::Send => {
                if self.credit + ACK_EVERY > WINDOW {
                    return Err(AckBeyondWindow);
                }
                self.credit += ACK_EVERY;
                Ok(Arrival::Ack)
            }
        }
    }

    /// Takes the credit for one chunk of [`ACK_EVERY`] data cells; false when the window
    /// does not allow it (or this end receives).
    #[inline]
    pub fn take_chunk(&mut self) -> bool {
        if self.role == Role::Send && self.credit >= ACK_EVERY {
            self.credit -= ACK_EVERY;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_stops_at_the_window_and_resumes_per_ack() {
        let mut w = CircWindow::new(Role::Send);
        let chunks = std::iter::from_fn(|| w.take_chunk().then_some(())).count();
        assert_eq!(chunks as u32 * ACK_EVERY, WINDOW);
        assert!(!w.take_chunk());
        assert_eq!(w.on_cell(), Ok(Arrival::Ack));
        assert!(w.take_chunk());
        assert!(!w.take_chunk());
        // Acks for all ten chunks in flight are fine; an eleventh is not.
        for _ in 0..10 {
            assert_eq!(w.on_cell(), Ok(Arrival::Ack));
        }
        assert_eq!(w.on_cell(), Err(AckBeyondWindow));
    }

    #[test]
    fn a_receiver_acks_every_hundredth_cell() {
        let mut w = CircWindow::new(Role::Receive);
        let due: Vec<usize> = (1..=350)
            .filter(|_| w.on_cell() == Ok(Arrival::Data { ack_due: true }))
            .collect();
        assert_eq!(due.len(), 3);
        assert!(!w.take_chunk(), "a receiver never sends data");
    }

    #[test]
    fn start_markers_name_their_direction_only() {
        for d in [Direction::Forward, Direction::Backward] {
            assert_eq!(Direction::from_marker(d.marker()), Some(d));
        }
        assert_eq!(Direction::from_marker(b"kistrel-load start"), None);
        assert_eq!(Direction::from_marker(b""), None);
    }
}
