//! The kTLS RX switch: the state machine with scripted completions and exact byte
//! accounting (a model of the socket, the multishot RECV, the link's record layer and the
//! kernel), then the ring's drain, re-arm and record RECVMSG on real loopback sockets
//! (where the kernel refuses TLS_RX, as this one without a `tls` ULP does).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use rustls::crypto::cipher::{AeadKey, Iv};
use rustls::ConnectionTrafficSecrets;

use super::switch::{AfterLast, Phase, RecvCqe, RxSwitch, Step, Verdict, MAX_TRIES};
use crate::sys::ktls::{self, content_type, CryptoInfo, KtlsVersion};
use crate::uring::{ConnId, Event, Ring, RingConfig};

// ----- the state machine ------------------------------------------------------------------

#[test]
fn completions_are_classified_by_result_and_mode() {
    use RecvCqe::*;
    let eio = -libc::EIO;
    assert_eq!(RecvCqe::of(512, true, false), Data);
    assert_eq!(RecvCqe::of(512, false, true), Data);
    assert_eq!(RecvCqe::of(0, false, false), Eof);
    assert_eq!(RecvCqe::of(-libc::ENOBUFS, false, true), NoBuffers);
    assert_eq!(RecvCqe::of(-libc::ECANCELED, false, false), Cancelled);
    // EIO is a waiting non-data record only under TLS_RX, and only as a last completion.
    assert_eq!(RecvCqe::of(eio, false, true), OtherRecord);
    assert_eq!(RecvCqe::of(eio, false, false), Failed);
    assert_eq!(RecvCqe::of(eio, true, true), Failed);
    assert_eq!(RecvCqe::of(-libc::ECONNRESET, false, true), Failed);
    assert_eq!(
        RecvCqe::of(-libc::EBADMSG, false, true),
        Failed,
        "a bad record"
    );
}

#[test]
fn a_non_data_record_is_read_with_its_type_only_in_kernel_mode() {
    let mut kernel = RxSwitch::default();
    kernel.request(true, false);
    assert_eq!(kernel.decide(true), Verdict::Switch);
    kernel.switched(true);
    assert_eq!(kernel.phase(), Phase::Kernel);
    let eio = RecvCqe::of(-libc::EIO, false, kernel.kernel_rx());
    assert_eq!(kernel.after_last(eio), AfterLast::ReadRecord);
    assert_eq!(kernel.after_last(RecvCqe::Data), AfterLast::Rearm);
    assert_eq!(
        kernel.after_last(RecvCqe::Cancelled),
        AfterLast::Rearm,
        "a pause"
    );
    assert_eq!(kernel.after_last(RecvCqe::NoBuffers), AfterLast::Starve);
    assert_eq!(kernel.phase(), Phase::Kernel, "the kernel keeps the keys");

    let mut user = RxSwitch::default();
    let eio = RecvCqe::of(-libc::EIO, false, user.kernel_rx());
    assert_eq!(
        user.after_last(eio),
        AfterLast::Ended,
        "a broken receive side"
    );
    assert_eq!(user.phase(), Phase::User);
}

#[test]
fn user_space_completions_rearm_as_before() {
    let mut s = RxSwitch::default();
    assert_eq!(s.after_last(RecvCqe::Data), AfterLast::Rearm);
    assert_eq!(s.after_last(RecvCqe::Cancelled), AfterLast::Rearm);
    assert_eq!(s.after_last(RecvCqe::NoBuffers), AfterLast::Starve);
    assert_eq!(s.after_last(RecvCqe::Eof), AfterLast::Ended);
    assert_eq!(s, RxSwitch::default(), "no switch asked: nothing changes");
    assert!(!s.holds_recv());
}

#[test]
fn requests_wait_mid_record_and_decide_at_once_when_nothing_reads() {
    let mut s = RxSwitch::default();
    assert_eq!(s.request(false, true), Step::Wait, "mid-record: no drain");
    assert_eq!(s.phase(), Phase::User);
    assert_eq!(
        s.request(true, false),
        Step::Decide,
        "paused: nothing reads"
    );
    assert_eq!(s.phase(), Phase::Drained);
    assert!(s.holds_recv());
    s.switched(false);
    assert_eq!(s.phase(), Phase::Never, "refused");
    assert_eq!(s.request(true, true), Step::Over);
    assert!(!s.holds_recv());
}

/// The model: the peer's stream of records (2-byte length, then the body), the socket
/// (`sent` bytes written by the peer, `taken` read out of it), the bytes the link opened in
/// user space, and the bytes the kernel took after a switch. The worker asks for the switch
/// after every delivery and on `RecvStopped`, as `Worker::try_ktls_rx` does.
struct Model {
    stream: Vec<u8>,
    sent: usize,
    taken: usize,
    user: Vec<u8>,
    kernel: Vec<u8>,
    sw: RxSwitch,
    armed: bool,
    stopped: usize,
}

/// A script step.
#[derive(Clone, Copy, Debug)]
enum Ev {
    /// The peer writes `n` more bytes.
    Peer(usize),
    /// A RECV completion reading `n` bytes, with F_MORE or not.
    Read(usize, bool),
    /// A RECV's last completion with `res` <= 0.
    End(i32),
}

impl Model {
    fn new(bodies: &[usize]) -> Self {
        let mut stream = Vec::new();
        for (i, &len) in bodies.iter().enumerate() {
            stream.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            stream.extend((0..len).map(|j| (i * 31 + j) as u8));
        }
        Model {
            stream,
            sent: 0,
            taken: 0,
            user: Vec::new(),
            kernel: Vec::new(),
            sw: RxSwitch::default(),
            armed: true,
            stopped: 0,
        }
    }

    /// Whether the link's bytes end exactly at the end of a record (nothing staged).
    fn on_boundary(&self) -> bool {
        let mut at = 0;
        while let Some(h) = self.user.get(at..at + 2) {
            at += 2 + usize::from(u16::from_be_bytes([h[0], h[1]]));
        }
        at == self.user.len()
    }

    fn worker_asks(&mut self) {
        match self.sw.request(self.on_boundary(), self.armed) {
            Step::Decide => match self.sw.decide(self.on_boundary()) {
                Verdict::Switch => {
                    self.sw.switched(true);
                    self.armed = true;
                    self.kernel_reads();
                }
                Verdict::Retry | Verdict::GiveUp => self.armed = true,
            },
            Step::Cancel | Step::Wait | Step::Over => {}
        }
    }

    fn kernel_reads(&mut self) {
        if self.sw.kernel_rx() {
            self.kernel
                .extend_from_slice(&self.stream[self.taken..self.sent]);
            self.taken = self.sent;
        }
    }

    fn last(&mut self, cqe: RecvCqe) {
        self.armed = false;
        match self.sw.after_last(cqe) {
            AfterLast::Rearm | AfterLast::Starve => self.armed = true,
            AfterLast::Stopped => {
                self.stopped += 1;
                self.worker_asks();
            }
            AfterLast::ReadRecord | AfterLast::Ended => {}
        }
    }

    fn run(&mut self, script: &[Ev]) {
        for &ev in script {
            match ev {
                Ev::Peer(n) => {
                    self.sent = (self.sent + n).min(self.stream.len());
                    self.kernel_reads();
                }
                Ev::Read(n, more) => {
                    assert!(self.armed, "a completion with no RECV armed: {ev:?}");
                    assert!(!self.sw.kernel_rx(), "the model's kernel reads by itself");
                    assert!(self.taken + n <= self.sent, "read more than sent: {ev:?}");
                    let bytes = &self.stream[self.taken..self.taken + n];
                    self.user.extend_from_slice(bytes);
                    self.taken += n;
                    if more {
                        self.worker_asks();
                    } else {
                        self.last(RecvCqe::Data);
                        self.worker_asks();
                    }
                }
                Ev::End(res) => {
                    assert!(self.armed, "a completion with no RECV armed: {ev:?}");
                    self.last(RecvCqe::of(res, false, self.sw.kernel_rx()));
                }
            }
        }
    }

    /// Every byte the peer sent went exactly once to the link or the kernel, in order, and
    /// the kernel's part starts on a record boundary.
    fn assert_accounted(&self, user: usize) {
        assert_eq!(self.user.len(), user, "bytes opened in user space");
        let mut all = self.user.clone();
        all.extend_from_slice(&self.kernel);
        assert_eq!(all, self.stream[..self.taken], "each byte once, in order");
        assert!(self.on_boundary() || self.kernel.is_empty());
    }
}

const ECANCELED: i32 = -libc::ECANCELED;

#[test]
fn a_drain_ending_on_a_boundary_switches_and_the_kernel_takes_the_rest() {
    // Records of 102, 52 and 202 bytes on the wire.
    let mut m = Model::new(&[100, 50, 200]);
    m.run(&[Ev::Peer(356), Ev::Read(102, true)]);
    assert_eq!(m.sw.phase(), Phase::Cancelling, "on a boundary: cancel");
    assert!(m.sw.holds_recv());
    // Bytes read after the cancel was asked for still go to the link.
    m.run(&[Ev::Read(52, true)]);
    assert_eq!(m.sw.phase(), Phase::Cancelling);
    m.run(&[Ev::End(ECANCELED)]);
    assert_eq!(
        (m.sw.phase(), m.stopped, m.sw.tries()),
        (Phase::Kernel, 1, 0)
    );
    m.assert_accounted(154);
    assert_eq!(m.kernel.len(), 202);
    m.run(&[Ev::Peer(10)]);
    m.assert_accounted(154);
}

#[test]
fn a_drain_ending_mid_record_rearms_and_switches_at_the_next_boundary() {
    let mut m = Model::new(&[100, 50, 200, 30]);
    m.run(&[Ev::Peer(100_000), Ev::Read(102, true)]);
    assert_eq!(m.sw.phase(), Phase::Cancelling);
    // 30 bytes of the next record came before the cancel took: staged in the link.
    m.run(&[Ev::Read(30, true), Ev::End(ECANCELED)]);
    assert_eq!(
        (m.sw.phase(), m.sw.tries(), m.armed),
        (Phase::User, 1, true)
    );
    // The rest of that record: on a boundary again, the next drain starts.
    m.run(&[Ev::Read(22, true)]);
    assert_eq!(m.sw.phase(), Phase::Cancelling);
    m.run(&[Ev::End(ECANCELED)]);
    assert_eq!(
        (m.sw.phase(), m.stopped, m.sw.tries()),
        (Phase::Kernel, 2, 1)
    );
    m.assert_accounted(154);
    assert_eq!(m.kernel.len(), 202 + 32);
}

#[test]
fn a_peer_never_pausing_on_a_boundary_leaves_the_link_in_user_space() {
    let bodies = vec![100; 2 * MAX_TRIES as usize + 2];
    let mut m = Model::new(&bodies);
    m.run(&[Ev::Peer(usize::MAX / 2)]);
    for i in 0..MAX_TRIES {
        // A whole record, then the drain catches half of the next one.
        m.run(&[Ev::Read(if i == 0 { 102 } else { 51 }, true)]);
        assert_eq!(m.sw.phase(), Phase::Cancelling, "try {i}");
        m.run(&[Ev::Read(51, true), Ev::End(ECANCELED)]);
    }
    assert_eq!((m.sw.phase(), m.sw.tries()), (Phase::Never, MAX_TRIES));
    assert!(m.armed, "receiving on in user space");
    // Everything else is opened in user space, once.
    m.run(&[Ev::Read(51, true), Ev::Read(102, false)]);
    assert_eq!(m.sw.phase(), Phase::Never);
    let user = 102 + 51 * (2 * MAX_TRIES as usize - 1) + 51 + 102;
    m.assert_accounted(user);
    assert!(m.kernel.is_empty());
}

#[test]
fn a_recv_ending_on_its_own_before_the_cancel_still_ends_the_drain() {
    // Its last completion carries data (no F_MORE): delivered, then the drain is over.
    let mut m = Model::new(&[100, 50, 200]);
    m.run(&[Ev::Peer(356), Ev::Read(102, true), Ev::Read(52, false)]);
    assert_eq!((m.sw.phase(), m.stopped), (Phase::Kernel, 1));
    m.assert_accounted(154);
    // It ran out of buffers: not starved and re-armed, the drain is over too.
    let mut m = Model::new(&[100, 50, 200]);
    m.run(&[Ev::Peer(356), Ev::Read(102, true), Ev::End(-libc::ENOBUFS)]);
    assert_eq!((m.sw.phase(), m.stopped), (Phase::Kernel, 1));
    m.assert_accounted(102);
    assert_eq!(m.kernel.len(), 254);
}

#[test]
fn eof_or_an_error_during_the_drain_ends_the_switch() {
    for res in [0, -libc::ECONNRESET] {
        let mut m = Model::new(&[100]);
        m.run(&[Ev::Peer(102), Ev::Read(102, true), Ev::End(res)]);
        assert_eq!((m.sw.phase(), m.stopped, m.armed), (Phase::Never, 0, false));
        m.assert_accounted(102);
    }
}

// ----- the ring, on real sockets ----------------------------------------------------------

fn ring() -> Option<Ring> {
    // Room for the whole stream of the tests below: the RECV never runs out of buffers
    // (then nothing would be reading, and the switch would be decided without a drain).
    let config = RingConfig {
        buf_entries: 1024,
        buf_size: 4096,
        ..RingConfig::default()
    };
    match Ring::new(&config) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("skipped: io_uring unavailable: {e}");
            None
        }
    }
}

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

fn rx_info() -> CryptoInfo {
    let secrets = ConnectionTrafficSecrets::Aes256Gcm {
        key: AeadKey::from([7; 32]),
        iv: Iv::from([9; 12]),
    };
    CryptoInfo::new_rx(KtlsVersion::Tls13, &secrets, 3).unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// What a switch attempt on a real ring gave.
struct Switched {
    got: Vec<u8>,
    stopped: usize,
    outcome: Option<std::io::Error>,
}

/// Bounds a test's ring loop by turns, not by the clock: each turn either makes progress or
/// waits at most its 10 ms timeout, so a hang fails after `MAX` turns whatever the load.
#[derive(Default)]
struct Turns(u32);

impl Turns {
    const MAX: u32 = 100_000;

    fn next(&mut self, what: &str) {
        self.0 += 1;
        assert!(
            self.0 <= Self::MAX,
            "{what}: not done in {} ring turns",
            Self::MAX
        );
    }
}

/// The peer streams `len` bytes, 16 KiB per loop iteration (so that the drains happen
/// long before its EOF); the "link" asks for the switch after every delivery and on every
/// `RecvStopped` until the switch is over, with `info` when `on_boundary(asked on
/// RecvStopped)`.
fn stream_through_switch(len: usize, on_boundary: impl Fn(bool) -> bool) -> Option<Switched> {
    let mut ring = ring()?;
    let (local, mut peer) = pair();
    let conn = ring.adopt(local).unwrap();
    let want = pattern(len);
    let info = rx_info();
    let mut s = Switched {
        got: Vec::new(),
        stopped: 0,
        outcome: None,
    };
    let mut turns = Turns::default();
    let (mut written, mut eof) = (0, false);
    while !eof {
        turns.next("the stream through the switch");
        if written < len {
            let end = (written + (16 << 10)).min(len);
            peer.write_all(&want[written..end]).unwrap();
            written = end;
            if written == len {
                peer.shutdown(std::net::Shutdown::Write).unwrap();
            }
        }
        ring.run_once(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = ring.poll_event() {
            let at_stop = match ev {
                Event::Recv { data, .. } => {
                    s.got.extend_from_slice(&data);
                    false
                }
                Event::RecvStopped { conn: c } => {
                    assert_eq!(c, conn);
                    s.stopped += 1;
                    true
                }
                Event::RecvClosed { err: None, .. } => {
                    eof = true;
                    continue;
                }
                Event::Timeout => continue,
                other => panic!("unexpected {other:?}"),
            };
            if s.outcome.is_none() {
                let info = on_boundary(at_stop).then_some(&info);
                match ring.enable_ktls_rx(conn, info) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Ok(()) => panic!("the kernel took TLS_RX keys without a tls ULP"),
                    Err(e) => s.outcome = Some(e),
                }
            }
        }
    }
    assert_eq!(s.got.len(), want.len(), "every byte once");
    assert!(s.got == want, "in order");
    assert_eq!(ring.bufs.outstanding(), 0, "every buffer back");
    Some(s)
}

fn ktls_available() -> bool {
    // Where the kernel has the ULP, TLS_RX with these made-up keys would be taken.
    if ktls::probe().is_available() {
        eprintln!("skipped: this kernel has kTLS; the test needs it to refuse");
        return true;
    }
    false
}

#[test]
fn a_refused_switch_after_the_drain_loses_no_byte_and_receives_on() {
    if ktls_available() {
        return;
    }
    let Some(s) = stream_through_switch(1 << 20, |_| true) else {
        return;
    };
    assert_eq!(s.stopped, 1, "one drain");
    let err = s.outcome.expect("the kernel refused the keys");
    assert_ne!(err.kind(), std::io::ErrorKind::WouldBlock, "{err}");
}

#[test]
fn drains_off_a_boundary_rearm_then_give_up_with_every_byte_delivered() {
    if ktls_available() {
        return;
    }
    // The link is on a boundary whenever it asks after a delivery (a drain starts) and
    // mid-record at every drain's end (a retry, until the last allowed one).
    let Some(s) = stream_through_switch(1 << 20, |at_stop| !at_stop) else {
        return;
    };
    let err = s.outcome.expect("given up");
    assert!(
        err.to_string().contains("no record boundary"),
        "{err} after {} drains",
        s.stopped
    );
    assert_eq!(s.stopped, usize::from(MAX_TRIES), "one drain per try");
}

#[test]
fn a_record_recvmsg_reads_with_the_type_control_buffer_and_rearms() {
    let Some(mut ring) = ring() else {
        return;
    };
    let (local, mut peer) = pair();
    let conn: ConnId = ring.adopt(local).unwrap();
    // Stop the multishot RECV (a pause), so the RECVMSG is the only reader.
    ring.set_recv_paused(conn, true).unwrap();
    let mut turns = Turns::default();
    while ring.conns.get(conn.0).unwrap().recv_op.is_some() {
        turns.next("the cancel");
        ring.run_once(Some(Duration::from_millis(10))).unwrap();
        while ring.poll_event().is_some() {}
    }
    peer.write_all(b"a record").unwrap();
    ring.arm_recv_record(conn).unwrap();
    let mut record = None;
    while record.is_none() {
        turns.next("the record RECVMSG");
        ring.run_once(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = ring.poll_event() {
            match ev {
                Event::TlsRecord {
                    conn: c,
                    content_type,
                    data,
                } => record = Some((c, content_type, data.to_vec())),
                Event::Timeout => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // No TLS_GET_RECORD_TYPE message on a plain socket: application data.
    let want = (conn, content_type::APPLICATION_DATA, b"a record".to_vec());
    assert_eq!(record, Some(want));
    assert!(ring.conns.get(conn.0).unwrap().recv_op.is_none(), "paused");
    assert_eq!(ring.bufs.outstanding(), 0, "the buffer went back");
    // Resumed: the multishot RECV reads on.
    ring.set_recv_paused(conn, false).unwrap();
    peer.write_all(b"more").unwrap();
    drop(peer);
    let mut got = Vec::new();
    let mut eof = false;
    while !eof {
        turns.next("the resumed RECV");
        ring.run_once(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = ring.poll_event() {
            match ev {
                Event::Recv { data, .. } => got.extend_from_slice(&data),
                Event::RecvClosed { err: None, .. } => eof = true,
                Event::Timeout => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(got, b"more");
}
