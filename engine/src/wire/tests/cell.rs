use super::super::*;
use super::unhex;

/// Arti's hand-generated RELAY body, in a cell on circuit 0x80000001 (top bit: opener's id).
const RELAY_TEXT: &[u8] = b"not validated at this stage";

fn relay_cell_bytes() -> Vec<u8> {
    let mut bytes = vec![0x80, 0x00, 0x00, 0x01, 0x03];
    bytes.extend_from_slice(RELAY_TEXT);
    bytes.resize(CELL_LEN, 0);
    bytes
}

#[test]
fn test_deconstruct() {
    let bytes = relay_cell_bytes();
    let view = CellView::new_checked(&bytes[..]).unwrap();
    assert_eq!(view.circ_id(), 0x8000_0001);
    assert_eq!(view.cmd(), ChanCmd::RELAY);
    assert_eq!(view.body().len(), CELL_BODY_LEN);
    assert_eq!(&view.body()[..RELAY_TEXT.len()], RELAY_TEXT);
    assert!(view.body()[RELAY_TEXT.len()..].iter().all(|&b| b == 0));
}

#[test]
fn test_construct() {
    let mut buf = [0xa5; CELL_LEN];
    let mut view = CellView::new_unchecked(&mut buf[..]);
    view.set_circ_id(0x8000_0001);
    view.set_cmd(ChanCmd::RELAY);
    let body = view.body_mut();
    body.fill(0);
    body[..RELAY_TEXT.len()].copy_from_slice(RELAY_TEXT);
    assert_eq!(&buf[..], &relay_cell_bytes()[..]);
}

#[test]
fn test_parse() {
    let cell = Cell::parse(&relay_cell_bytes()).unwrap();
    assert_eq!(cell.circ_id, 0x8000_0001);
    assert_eq!(cell.circ(), CircId::new(0x8000_0001));
    assert_eq!(cell.cmd, ChanCmd::RELAY);
    assert_eq!(&cell.body[..RELAY_TEXT.len()], RELAY_TEXT);
}

#[test]
fn test_emit() {
    let mut cell = Cell::new(0x8000_0001, ChanCmd::RELAY);
    cell.body[..RELAY_TEXT.len()].copy_from_slice(RELAY_TEXT);
    let mut buf = [0xa5; CELL_LEN];
    cell.emit(&mut buf);
    assert_eq!(&buf[..], &relay_cell_bytes()[..]);

    let mut out = vec![0xee, 0xff];
    cell.append_to(&mut out);
    assert_eq!(out.len(), 2 + CELL_LEN);
    assert_eq!(&out[..2], &[0xee, 0xff]);
    assert_eq!(&out[2..], &relay_cell_bytes()[..]);
}

#[test]
fn test_cell_truncated() {
    let bytes = relay_cell_bytes();
    assert_eq!(
        CellView::new_checked(&bytes[..CELL_LEN - 1]).unwrap_err(),
        Error::Truncated { field: "cell" }
    );
    assert_eq!(
        Cell::parse(&[]).unwrap_err(),
        Error::Truncated { field: "cell" }
    );
}

#[test]
fn test_cell_circ_zero_is_none() {
    let cell = Cell::new(0, ChanCmd::NETINFO);
    assert_eq!(cell.circ(), None);
    assert!(cell.body.iter().all(|&b| b == 0));
}

#[test]
fn test_cell_debug_is_short() {
    let cell = Cell::new(7, ChanCmd::RELAY);
    assert_eq!(format!("{cell:?}"), "Cell { circ_id: 7, cmd: RELAY, .. }");
}

/// Arti's VERSIONS payload (3, 4, 5), framed with the 2-byte circuit id of a first cell.
const VERSIONS_2BYTE: &str = "0000 07 0006 000300040005";

#[test]
fn test_var_deconstruct() {
    let bytes = unhex(VERSIONS_2BYTE);
    let view = VarCellView::new_checked(&bytes[..], 2).unwrap();
    assert_eq!(view.circ_id_len(), 2);
    assert_eq!(view.circ_id(), 0);
    assert_eq!(view.cmd(), ChanCmd::VERSIONS);
    assert_eq!(view.length(), 6);
    assert_eq!(view.payload(), &unhex("000300040005")[..]);
    assert_eq!(view.total_len(), bytes.len());

    let bytes = unhex("12345678 81 0002 abcd ffff");
    let view = VarCellView::new_checked(&bytes[..], 4).unwrap();
    assert_eq!(view.circ_id(), 0x1234_5678);
    assert_eq!(view.cmd(), ChanCmd::CERTS);
    assert_eq!(view.payload(), &[0xab, 0xcd]);
    assert_eq!(view.total_len(), 9);
}

#[test]
fn test_var_parse_and_emit() {
    let cell =
        VarCell::from_view(&VarCellView::new_checked(&unhex(VERSIONS_2BYTE)[..], 2).unwrap());
    assert_eq!(
        cell,
        VarCell {
            circ_id: 0,
            cmd: ChanCmd::VERSIONS,
            payload: vec![0, 3, 0, 4, 0, 5],
        }
    );
    let mut out = Vec::new();
    cell.append_to(&mut out, 2);
    assert_eq!(out, unhex(VERSIONS_2BYTE));

    let cell = VarCell {
        circ_id: 0x1234_5678,
        cmd: ChanCmd::VPADDING,
        payload: vec![0; 3],
    };
    let mut out = vec![0xa5];
    cell.append_to(&mut out, 4);
    assert_eq!(out, unhex("a5 12345678 80 0003 000000"));
}

#[test]
fn test_var_truncated() {
    let bytes = unhex(VERSIONS_2BYTE);
    assert_eq!(
        VarCellView::new_checked(&bytes[..4], 2).unwrap_err(),
        Error::Truncated {
            field: "var cell header"
        }
    );
    assert_eq!(
        VarCellView::new_checked(&bytes[..bytes.len() - 1], 2).unwrap_err(),
        Error::Truncated {
            field: "var cell payload"
        }
    );
}

#[test]
fn test_commands() {
    assert!(ChanCmd::VERSIONS.is_var());
    assert!(ChanCmd::VPADDING.is_var());
    assert!(ChanCmd(255).is_var());
    assert!(!ChanCmd::RELAY.is_var());
    assert!(!ChanCmd(127).is_var());
    assert_eq!(format!("{:?}", ChanCmd::CREATE2), "CREATE2");
    assert_eq!(format!("{:?}", ChanCmd(200)), "ChanCmd(200)");
    assert_eq!(format!("{:?}", RelayCmd::EXTENDED2), "EXTENDED2");
    assert_eq!(format!("{:?}", RelayCmd(99)), "RelayCmd(99)");
    assert_eq!(format!("{:?}", DestroyReason::OR_IDENTITY), "OR_IDENTITY");
    assert_eq!(format!("{}", EndReason::TORPROTOCOL), "TORPROTOCOL");
    assert_eq!(EndReason::TORPROTOCOL.0, 13);
    assert_eq!(DestroyReason::DESTROYED.0, 11);
    assert_eq!(RelayCmd::EXTENDED2.0, 15);
    assert_eq!(ChanCmd::AUTHENTICATE.0, 131);
}

#[test]
fn test_ids() {
    assert_eq!(CircId::new(0), None);
    assert_eq!(CircId::new(5).map(CircId::get), Some(5));
    assert_eq!(StreamId::new(0), None);
    assert_eq!(StreamId::new(65535).map(StreamId::get), Some(65535));
}
