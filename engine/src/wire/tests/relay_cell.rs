use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::super::*;
use super::unhex;

/// Arti's hand-generated DATA payload.
const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
/// DATA on stream 5, digest deadbeef, length 18.
const HEADER: &str = "02 0000 0005 deadbeef 0012";

fn body_with(header: &str, data: &[u8]) -> [u8; CELL_BODY_LEN] {
    let mut body = [0; CELL_BODY_LEN];
    let header = unhex(header);
    body[..header.len()].copy_from_slice(&header);
    body[RELAY_HEADER_LEN..][..data.len()].copy_from_slice(data);
    body
}

#[test]
fn test_deconstruct() {
    let body = body_with(HEADER, GET);
    let view = RelayCellView::new_checked(&body[..]).unwrap();
    assert_eq!(view.cmd(), RelayCmd::DATA);
    assert_eq!(view.recognized(), 0);
    assert_eq!(view.stream_id(), StreamId::new(5));
    assert_eq!(view.digest(), [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(view.length(), 18);
    assert_eq!(view.data(), GET);
    assert_eq!(&body[RELAY_DIGEST], &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(&body[RELAY_RECOGNIZED], &[0, 0]);
}

#[test]
fn test_construct() {
    let mut buf = [0xa5; CELL_BODY_LEN];
    let mut view = RelayCellView::new_unchecked(&mut buf[..]);
    view.set_cmd(RelayCmd::DATA);
    view.set_recognized(0);
    view.set_stream_id(StreamId::new(5));
    view.set_digest(&[0xde, 0xad, 0xbe, 0xef]);
    view.set_length(18);
    let area = view.data_area_mut();
    assert_eq!(area.len(), RELAY_DATA_LEN);
    area.fill(0);
    area[..GET.len()].copy_from_slice(GET);
    assert_eq!(buf, body_with(HEADER, GET));

    let mut view = RelayCellView::new_unchecked(&mut buf[..]);
    view.set_stream_id(None);
    view.set_recognized(0xbeef);
    assert_eq!(&buf[..5], &unhex("02 beef 0000"));
}

#[test]
fn test_emit() {
    let mut body = [0xa5; CELL_BODY_LEN];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    emit_relay_cell(&mut body, RelayCmd::DATA, StreamId::new(5), GET, &mut rng).unwrap();

    let data_end = RELAY_HEADER_LEN + GET.len();
    assert_eq!(
        &body[..RELAY_HEADER_LEN],
        &unhex("02 0000 0005 00000000 0012")[..]
    );
    assert_eq!(&body[RELAY_HEADER_LEN..data_end], GET);
    assert_eq!(&body[data_end..data_end + 4], &[0; 4]);
    let mut expected_pad = vec![0; CELL_BODY_LEN - data_end - 4];
    ChaCha8Rng::seed_from_u64(1).fill_bytes(&mut expected_pad);
    assert_eq!(&body[data_end + 4..], &expected_pad[..]);

    let view = RelayCellView::new_checked(&body[..]).unwrap();
    assert_eq!(view.data(), GET);
}

#[test]
fn test_finish_relay_cell() {
    let mut body = [0xa5; CELL_BODY_LEN];
    body[RELAY_HEADER_LEN..][..3].copy_from_slice(b"abc");
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    finish_relay_cell(&mut body, RelayCmd::BEGIN_DIR, None, 3, &mut rng).unwrap();
    let view = RelayCellView::new_checked(&body[..]).unwrap();
    assert_eq!(view.cmd(), RelayCmd::BEGIN_DIR);
    assert_eq!(view.stream_id(), None);
    assert_eq!(view.digest(), [0; 4]);
    assert_eq!(view.recognized(), 0);
    assert_eq!(view.data(), b"abc");
    assert_eq!(&body[14..18], &[0; 4]);
}

#[test]
fn test_emit_padding_near_full() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // 498 bytes: no room for padding at all.
    let mut body = [0xa5; CELL_BODY_LEN];
    emit_relay_cell(
        &mut body,
        RelayCmd::DATA,
        None,
        &[7; RELAY_DATA_LEN],
        &mut rng,
    )
    .unwrap();
    assert!(body[RELAY_HEADER_LEN..].iter().all(|&b| b == 7));
    // 496 bytes: the 2 bytes left are zeros, no random bytes.
    let mut body = [0xa5; CELL_BODY_LEN];
    emit_relay_cell(&mut body, RelayCmd::DATA, None, &[7; 496], &mut rng).unwrap();
    assert_eq!(&body[CELL_BODY_LEN - 2..], &[0, 0]);
}

#[test]
fn test_relay_length_too_long() {
    let mut body = body_with(HEADER, GET);
    body[9..11].copy_from_slice(&499u16.to_be_bytes());
    assert_eq!(
        RelayCellView::new_checked(&body[..]).unwrap_err(),
        Error::BadLength {
            field: "relay length",
            len: 499
        }
    );
}

#[test]
fn test_relay_header_truncated() {
    let body = body_with(HEADER, GET);
    assert_eq!(
        RelayCellView::new_checked(&body[..10]).unwrap_err(),
        Error::Truncated {
            field: "relay header"
        }
    );
    assert_eq!(
        RelayCellView::new_checked(&body[..RELAY_HEADER_LEN + 17]).unwrap_err(),
        Error::Truncated {
            field: "relay data"
        }
    );
}

#[test]
fn test_emit_data_too_long() {
    let mut body = [0; CELL_BODY_LEN];
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let err = Error::TooLong {
        field: "relay data",
        len: 499,
    };
    assert_eq!(
        emit_relay_cell(&mut body, RelayCmd::DATA, None, &[0; 499], &mut rng).unwrap_err(),
        err
    );
    assert_eq!(
        finish_relay_cell(&mut body, RelayCmd::DATA, None, 499, &mut rng).unwrap_err(),
        err
    );
    assert_eq!(body, [0; CELL_BODY_LEN], "nothing written on error");
}

#[test]
fn test_repr_parse_and_emit() {
    let body = body_with(HEADER, GET);
    let repr = RelayCellRepr::parse(&body).unwrap();
    assert_eq!(
        repr,
        RelayCellRepr {
            cmd: RelayCmd::DATA,
            stream_id: StreamId::new(5),
            data: GET,
        }
    );
    let mut out = [0xa5; CELL_BODY_LEN];
    repr.emit(&mut out, &mut ChaCha8Rng::seed_from_u64(5))
        .unwrap();
    // Same header except the digest, which emit leaves zero for the crypto layer.
    assert_eq!(
        &out[..RELAY_HEADER_LEN],
        &unhex("02 0000 0005 00000000 0012")[..]
    );
    assert_eq!(&out[RELAY_HEADER_LEN..][..GET.len()], GET);
}
