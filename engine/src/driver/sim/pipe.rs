//! One direction of a simulated TCP connection: the SEND in flight, the kernel's send queue,
//! a bottleneck with a fixed congestion window, and the wire (the model of
//! sched/tests/scheduler/sim.rs, in bytes instead of cells).
//!
//! ```text
//!   driver send buffer --run_once--> [sending] --sndbuf--> [kernel] --rate, cwnd,
//!        receiver's buffer--> [wire: arrives rtt/2 later] --> peer's receive queue
//!                                   acknowledged rtt after it left (frees cwnd)
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use kistrel_sched::{SocketSnapshot, TcpInfo};

use crate::time::Instant;

/// The shape of one direction of a simulated connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeConfig {
    /// Bottleneck rate, bytes per second; `None`: as fast as the window allows.
    pub rate: Option<u64>,
    /// Round-trip time: bytes arrive `rtt / 2` after they leave and are acknowledged `rtt`
    /// after.
    pub rtt: Duration,
    /// Congestion window in packets (fixed, as in the scheduler's simulation); `None`: no
    /// limit.
    pub cwnd: Option<u32>,
    /// Segment size, bytes.
    pub mss: u32,
    /// The kernel's send buffer (SO_SNDBUF), bytes.
    pub sndbuf: u64,
    /// The receiver's buffer: the sender stops while this many bytes wait unread there.
    pub rcvbuf: u64,
}

impl Default for PipeConfig {
    /// Loopback-like: no rate limit, no delay, 4 MiB buffers.
    fn default() -> Self {
        PipeConfig {
            rate: None,
            rtt: Duration::ZERO,
            cwnd: None,
            mss: 1448,
            sndbuf: 4 << 20,
            rcvbuf: 4 << 20,
        }
    }
}

/// The congestion window a pipe without one reports in TCP_INFO.
const UNLIMITED_CWND: u32 = 100_000;

/// See the module docs.
#[derive(Debug)]
pub(super) struct Pipe {
    cfg: PipeConfig,
    /// The SEND in flight: bytes the kernel has not accepted yet.
    sending: VecDeque<u8>,
    /// Accepted by the kernel, not yet on the wire.
    kernel: VecDeque<u8>,
    /// On the wire: arrival time and bytes.
    wire: VecDeque<(Instant, Vec<u8>)>,
    wire_bytes: u64,
    /// Sent and not yet acknowledged: send time and bytes.
    unacked: VecDeque<(Instant, u64)>,
    unacked_bytes: u64,
    /// Bottleneck time not yet spent, in byte-nanoseconds per second (rate x ns).
    credit: u128,
}

impl Pipe {
    pub(super) fn new(cfg: PipeConfig) -> Self {
        Pipe {
            cfg,
            sending: VecDeque::new(),
            kernel: VecDeque::new(),
            wire: VecDeque::new(),
            wire_bytes: 0,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            credit: 0,
        }
    }

    /// Queues `bytes` behind the SEND in flight.
    pub(super) fn send(&mut self, bytes: &[u8]) {
        self.sending.extend(bytes);
    }

    /// Bytes of the SEND in flight the kernel has not taken.
    pub(super) fn sending(&self) -> usize {
        self.sending.len()
    }

    /// Drops the SEND in flight (the connection was closed); the kernel keeps its bytes.
    pub(super) fn drop_sending(&mut self) {
        self.sending.clear();
    }

    /// Nothing left in the kernel or on the wire: a FIN would be next.
    pub(super) fn drained(&self) -> bool {
        self.kernel.is_empty() && self.wire.is_empty()
    }

    /// Bytes on their way to the receiver (for its buffer limit).
    pub(super) fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// What TCP_INFO would say (`tcpi_notsent_bytes` for `notsent`).
    pub(super) fn snapshot(&self) -> SocketSnapshot {
        let mss = self.cfg.mss.max(1);
        let unacked = self.unacked_bytes.div_ceil(u64::from(mss));
        let kernel = self.kernel.len() as u64;
        SocketSnapshot {
            tcp: Some(TcpInfo {
                cwnd: self.cfg.cwnd.unwrap_or(UNLIMITED_CWND),
                unacked: u32::try_from(unacked).unwrap_or(u32::MAX),
                mss,
                rtt_us: u32::try_from(self.cfg.rtt.as_micros()).unwrap_or(u32::MAX),
            }),
            notsent: Some(u32::try_from(kernel).unwrap_or(u32::MAX)),
        }
    }

    /// Acknowledgements due by `now` free the window.
    pub(super) fn ack(&mut self, now: Instant) {
        while let Some(&(sent, n)) = self.unacked.front() {
            if sent + self.cfg.rtt > now {
                break;
            }
            self.unacked.pop_front();
            self.unacked_bytes -= n;
        }
    }

    /// Bytes that reached the receiver by `now`, in order.
    pub(super) fn arrivals(&mut self, now: Instant, mut arrived: impl FnMut(Vec<u8>)) {
        while self.wire.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, bytes)) = self.wire.pop_front() {
                self.wire_bytes -= bytes.len() as u64;
                arrived(bytes);
            }
        }
    }

    /// One step of `dt` at the bottleneck: moves what the rate, the window and the
    /// receiver's free buffer (`rx_free`) allow from the kernel onto the wire.
    pub(super) fn transmit(&mut self, now: Instant, dt: Duration, rx_free: u64) {
        let step_credit = |rate: u64| u128::from(rate) * dt.as_nanos();
        let by_rate = match self.cfg.rate {
            Some(rate) => {
                // An idle link cannot bank capacity for later.
                self.credit = (self.credit + step_credit(rate)).min(2 * step_credit(rate));
                u64::try_from(self.credit / 1_000_000_000).unwrap_or(u64::MAX)
            }
            None => u64::MAX,
        };
        let by_window = match self.cfg.cwnd {
            Some(cwnd) => {
                (u64::from(cwnd) * u64::from(self.cfg.mss)).saturating_sub(self.unacked_bytes)
            }
            None => u64::MAX,
        };
        let n = by_rate
            .min(by_window)
            .min(rx_free)
            .min(self.kernel.len() as u64);
        if n == 0 {
            return;
        }
        if self.cfg.rate.is_some() {
            self.credit -= u128::from(n) * 1_000_000_000;
        }
        let Ok(take) = usize::try_from(n) else { return };
        let bytes: Vec<u8> = self.kernel.drain(..take).collect();
        self.wire.push_back((now + self.cfg.rtt / 2, bytes));
        self.wire_bytes += n;
        self.unacked.push_back((now, n));
        self.unacked_bytes += n;
    }

    /// The kernel takes what its send buffer has room for; true when the SEND in flight was
    /// taken whole by this call (it completes).
    pub(super) fn accept(&mut self) -> bool {
        if self.sending.is_empty() {
            return false;
        }
        let room = self.cfg.sndbuf.saturating_sub(self.kernel.len() as u64);
        let n = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(self.sending.len());
        self.kernel.extend(self.sending.drain(..n));
        self.sending.is_empty()
    }

    /// The receiver's buffer size.
    pub(super) fn rcvbuf(&self) -> u64 {
        self.cfg.rcvbuf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shaped_pipe_keeps_rate_window_and_buffers() {
        let cfg = PipeConfig {
            rate: Some(1_000_000), // 1000 bytes per ms
            rtt: Duration::from_millis(10),
            cwnd: Some(4),
            mss: 1000,
            sndbuf: 8_000,
            rcvbuf: 1 << 20,
        };
        let mut p = Pipe::new(cfg);
        let ms = Duration::from_millis(1);
        let mut now = Instant::from_millis(0);
        p.send(&[7; 10_000]);
        assert!(!p.accept(), "8000 of 10000 fit the send buffer");
        assert_eq!((p.sending(), p.snapshot().notsent), (2_000, Some(8_000)));
        let mut got = 0;
        for _ in 0..5 {
            now += ms;
            p.ack(now);
            p.arrivals(now, |b| got += b.len());
            p.transmit(now, ms, u64::MAX);
        }
        // 1000 bytes per ms until the 4-packet window is full; nothing is acknowledged yet.
        let s = p.snapshot();
        assert_eq!(
            s.tcp.map(|t| (t.cwnd, t.unacked, t.rtt_us)),
            Some((4, 4, 10_000))
        );
        assert_eq!(s.notsent, Some(4_000));
        assert_eq!(got, 0, "nothing arrives before rtt/2");
        assert!(p.accept(), "the kernel took the rest of the SEND");
        for _ in 0..30 {
            now += ms;
            p.ack(now);
            p.arrivals(now, |b| got += b.len());
            p.transmit(now, ms, u64::MAX);
        }
        assert_eq!(got, 10_000);
        assert!(p.drained());
        // The receiver's buffer stops the sender.
        p.send(&[1; 500]);
        p.accept();
        p.transmit(now + ms, ms, 0);
        assert_eq!(p.snapshot().notsent, Some(500));
    }
}
