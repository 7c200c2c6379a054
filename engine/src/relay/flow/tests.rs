//! Flow control on its own: windows, SENDME timing and digests, without a relay around it.

use super::*;

const T0: Instant = Instant::ZERO;

/// A distinct digest per cell number, as a running digest would be.
fn digest_of(n: u64) -> SendmeDigest {
    let mut d = [0u8; 20];
    d[..8].copy_from_slice(&n.to_be_bytes());
    d
}

#[test]
fn circuit_window_closes_after_1000_cells_and_a_sendme_reopens_it_by_100() {
    let mut w = FixedCircWindow::default();
    for n in 1..=1000u64 {
        assert!(w.can_send(), "cell {n} refused");
        w.on_data_sent(T0, || digest_of(n));
    }
    assert!(!w.can_send());
    assert_eq!(w.expected.len(), 10, "one digest per 100 cells");
    w.on_sendme(T0, Some(&digest_of(100)))
        .expect("first SENDME");
    for n in 1001..=1100u64 {
        assert!(w.can_send(), "cell {n} refused");
        w.on_data_sent(T0, || digest_of(n));
    }
    assert!(!w.can_send());
}

#[test]
fn digests_are_recorded_only_for_every_100th_cell_sent() {
    let mut w = FixedCircWindow::default();
    let mut asked = Vec::new();
    for n in 1..=250u64 {
        w.on_data_sent(T0, || {
            asked.push(n);
            digest_of(n)
        });
    }
    assert_eq!(asked, vec![100, 200]);
    assert_eq!(
        w.expected.iter().copied().collect::<Vec<_>>(),
        vec![digest_of(100), digest_of(200)]
    );
}

#[test]
fn sendmes_must_echo_the_recorded_digests_in_order() {
    let mut w = FixedCircWindow::default();
    for n in 1..=200u64 {
        w.on_data_sent(T0, || digest_of(n));
    }
    // The second digest first: wrong, and it consumes the first expectation.
    assert_eq!(
        w.on_sendme(T0, Some(&digest_of(200))),
        Err(FlowError::SendmeDigestMismatch)
    );
    let mut w = FixedCircWindow::default();
    for n in 1..=200u64 {
        w.on_data_sent(T0, || digest_of(n));
    }
    assert_eq!(w.on_sendme(T0, Some(&digest_of(100))), Ok(()));
    assert_eq!(w.on_sendme(T0, Some(&digest_of(200))), Ok(()));
    assert_eq!(w.package, CIRC_WINDOW_START - 200 + 200);
}

#[test]
fn an_unauthenticated_or_early_circuit_sendme_is_refused() {
    let mut w = FixedCircWindow::default();
    assert_eq!(
        w.on_sendme(T0, Some(&digest_of(100))),
        Err(FlowError::UnexpectedSendme),
        "nothing sent yet"
    );
    for n in 1..=99u64 {
        w.on_data_sent(T0, || digest_of(n));
    }
    assert_eq!(
        w.on_sendme(T0, Some(&digest_of(99))),
        Err(FlowError::UnexpectedSendme),
        "99 cells are not acknowledged yet"
    );
    w.on_data_sent(T0, || digest_of(100));
    assert_eq!(
        w.on_sendme(T0, None),
        Err(FlowError::SendmeDigestMismatch),
        "v0 SENDMEs are not accepted"
    );
    assert_eq!(w.package, CIRC_WINDOW_START - 100);
}

#[test]
fn a_sendme_is_due_after_every_100th_cell_received_with_its_digest() {
    let mut w = FixedCircWindow::default();
    let mut due = Vec::new();
    for n in 1..=1000u64 {
        if let Some(d) = w.on_data_received(|| digest_of(n)).expect("within window") {
            due.push((n, d));
        }
    }
    let want: Vec<_> = (1..=10).map(|k| (k * 100, digest_of(k * 100))).collect();
    assert_eq!(due, want);
    // Each SENDME we send reopens our deliver window: all 1000 fit and 100 more still do.
    assert_eq!(w.deliver, CIRC_WINDOW_START);
}

#[test]
fn data_beyond_the_circuit_deliver_window_is_a_violation() {
    // A receiver that never got to send its SENDMEs (window accounting only).
    let mut w = FixedCircWindow {
        deliver: 3,
        ..FixedCircWindow::default()
    };
    for _ in 0..3 {
        w.on_data_received(|| [0; 20]).expect("within window");
    }
    assert_eq!(
        w.on_data_received(|| [0; 20]),
        Err(FlowError::CircuitWindowExceeded)
    );
}

#[test]
fn stream_window_closes_after_500_and_a_stream_sendme_adds_50() {
    let mut s = FixedStreamWindow::default();
    for _ in 0..500 {
        assert!(s.can_send());
        s.on_data_sent();
    }
    assert!(!s.can_send());
    s.on_sendme().expect("window has room");
    for _ in 0..50 {
        assert!(s.can_send());
        s.on_data_sent();
    }
    assert!(!s.can_send());
}

#[test]
fn a_stream_sendme_past_the_start_window_is_refused() {
    let mut s = FixedStreamWindow::default();
    assert_eq!(s.on_sendme(), Err(FlowError::StreamSendmeOverflow));
    for _ in 0..49 {
        s.on_data_sent();
    }
    assert_eq!(s.on_sendme(), Err(FlowError::StreamSendmeOverflow));
    s.on_data_sent();
    assert_eq!(s.on_sendme(), Ok(()));
    assert_eq!(s.package, STREAM_WINDOW_START);
}

#[test]
fn stream_data_beyond_the_deliver_window_is_a_violation() {
    let mut s = FixedStreamWindow::default();
    for _ in 0..500 {
        s.on_data_received().expect("within window");
    }
    assert_eq!(s.on_data_received(), Err(FlowError::StreamWindowExceeded));
}

#[test]
fn stream_sendmes_wait_for_half_a_window_and_for_the_reader() {
    let mut s = FixedStreamWindow::default();
    for _ in 0..49 {
        s.on_data_received().expect("within window");
    }
    assert!(!s.sendme_due(0), "less than 50 cells used");
    s.on_data_received().expect("within window");
    // 50 cells arrived, but the application has not read them.
    assert!(!s.sendme_due(STREAM_RX_LOW_WATER));
    assert!(s.sendme_due(STREAM_RX_LOW_WATER - 1));
    assert!(!s.sendme_due(0), "one SENDME per 50 cells");
    // 120 more unread-then-read cells: two more SENDMEs, then none.
    for _ in 0..120 {
        s.on_data_received().expect("within window");
    }
    assert!(s.sendme_due(0));
    assert!(s.sendme_due(0));
    assert!(!s.sendme_due(0));
    assert_eq!(s.deliver, STREAM_WINDOW_START - 20);
}
