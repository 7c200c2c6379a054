use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::super::*;
use super::unhex;

/// Feed `chunks` in order, draining each; stop at the first error.
fn decode_chunks<'a>(
    decoder: &mut CellDecoder,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<ChanCell>> {
    let mut cells = Vec::new();
    for mut chunk in chunks {
        while !chunk.is_empty() {
            let (used, cell) = decoder.decode(chunk)?;
            assert!(used <= chunk.len());
            if cell.is_none() {
                assert_eq!(used, chunk.len(), "(n, None) must consume everything");
            }
            chunk = &chunk[used..];
            cells.extend(cell);
            assert!(decoder.buffered_len() <= 7 + MAX_VAR_PAYLOAD_LEN);
        }
    }
    Ok(cells)
}

/// VERSIONS (2-byte id), NETINFO and RELAY (fixed, 4-byte id), VPADDING (var, 4-byte id),
/// a second VERSIONS (var, now 4-byte id), DESTROY.
fn stream() -> (Vec<u8>, Vec<ChanCell>) {
    let versions = Versions {
        versions: vec![4, 5],
    }
    .to_var_cell();
    let mut netinfo = Cell::new(0, ChanCmd::NETINFO);
    netinfo.body[..11].copy_from_slice(&unhex("00000000 04 04 7F000001 00"));
    let mut relay = Cell::new(0x8000_0002, ChanCmd::RELAY);
    relay
        .body
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    let vpadding = VarCell {
        circ_id: 0,
        cmd: ChanCmd::VPADDING,
        payload: vec![0x11; 300],
    };
    let versions_again = VarCell {
        circ_id: 0,
        cmd: ChanCmd::VERSIONS,
        payload: vec![0, 4],
    };
    let mut destroy = Cell::new(0x8000_0002, ChanCmd::DESTROY);
    destroy.body[0] = DestroyReason::FINISHED.0;

    let mut bytes = Vec::new();
    versions.append_to(&mut bytes, 2);
    netinfo.append_to(&mut bytes);
    relay.append_to(&mut bytes);
    vpadding.append_to(&mut bytes, 4);
    versions_again.append_to(&mut bytes, 4);
    destroy.append_to(&mut bytes);
    let cells = vec![
        ChanCell::Var(versions),
        ChanCell::Fixed(netinfo),
        ChanCell::Fixed(relay),
        ChanCell::Var(vpadding),
        ChanCell::Var(versions_again),
        ChanCell::Fixed(destroy),
    ];
    (bytes, cells)
}

#[test]
fn test_decode_whole_stream() {
    let (bytes, cells) = stream();
    assert_eq!(bytes.len(), 9 + CELL_LEN * 3 + 307 + 9);
    let mut decoder = CellDecoder::new();
    let mut rest = &bytes[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let (used, cell) = decoder.decode(rest).unwrap();
        // Whole cells are parsed straight from the input, never buffered.
        assert_eq!(decoder.buffered_len(), 0);
        got.push(cell.unwrap());
        rest = &rest[used..];
    }
    assert_eq!(got, cells);
}

#[test]
fn test_decode_one_byte_feeds() {
    let (bytes, cells) = stream();
    let mut decoder = CellDecoder::new();
    let got = decode_chunks(&mut decoder, bytes.chunks(1)).unwrap();
    assert_eq!(got, cells);
    assert_eq!(decoder.buffered_len(), 0);
}

#[test]
fn test_decode_split_at_every_boundary() {
    let (bytes, cells) = stream();
    for split in 0..=bytes.len() {
        let mut decoder = CellDecoder::new();
        let (a, b) = bytes.split_at(split);
        let got = decode_chunks(&mut decoder, [a, b]).unwrap();
        assert_eq!(got, cells, "split at {split}");
    }
}

#[test]
fn test_decode_random_splits() {
    let (bytes, cells) = stream();
    let mut rng = ChaCha8Rng::seed_from_u64(0x6b69_7374);
    for _ in 0..200 {
        let mut chunks = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = rng.random_range(1..=rest.len().min(700));
            let (chunk, tail) = rest.split_at(len);
            chunks.push(chunk);
            rest = tail;
        }
        let mut decoder = CellDecoder::new();
        assert_eq!(decode_chunks(&mut decoder, chunks).unwrap(), cells);
    }
}

#[test]
fn test_decode_partial_reports_buffered() {
    let (bytes, _) = stream();
    let mut decoder = CellDecoder::new();
    assert_eq!(decoder.decode(&bytes[..4]).unwrap(), (4, None));
    assert_eq!(decoder.buffered_len(), 4);
    // The rest of VERSIONS plus part of NETINFO: only VERSIONS' bytes are taken.
    let (used, cell) = decoder.decode(&bytes[4..20]).unwrap();
    assert_eq!(used, 5);
    assert_eq!(cell.map(|c| c.cmd()), Some(ChanCmd::VERSIONS));
    assert_eq!(decoder.buffered_len(), 0);
}

#[test]
fn test_first_cell_not_versions() {
    // A CREATE2 first, read with the 2-byte id: rejected once its command byte arrives.
    let mut decoder = CellDecoder::new();
    assert_eq!(decoder.decode(&[0, 0]).unwrap(), (2, None));
    let err = Error::ExpectedVersions {
        cmd: ChanCmd::CREATE2,
    };
    assert_eq!(decoder.decode(&[10]).unwrap_err(), err);
    assert_eq!(decoder.buffered_len(), 0);
    // Poisoned: the same error, even for good bytes.
    assert_eq!(
        decoder.decode(&unhex("0000 07 0002 0004")).unwrap_err(),
        err
    );

    let mut decoder = CellDecoder::new();
    let netinfo_first = Cell::new(0, ChanCmd::NETINFO);
    let mut bytes = Vec::new();
    netinfo_first.append_to(&mut bytes);
    assert_eq!(
        decoder.decode(&bytes).unwrap_err(),
        Error::ExpectedVersions { cmd: ChanCmd(0) }
    );
}

#[test]
fn test_var_cell_too_long() {
    // VERSIONS declaring 4097 bytes: rejected from its header alone, nothing buffered.
    let mut decoder = CellDecoder::new();
    let err = Error::VarCellTooLong { len: 4097 };
    assert_eq!(decoder.decode(&unhex("0000 07 1001 00")).unwrap_err(), err);
    assert_eq!(decoder.buffered_len(), 0);
    assert_eq!(decoder.decode(&[]).unwrap_err(), err);

    // After VERSIONS, a VPADDING of 0xffff bytes, fed byte by byte.
    let mut decoder = CellDecoder::new();
    let mut bytes = unhex("0000 07 0002 0004");
    bytes.extend_from_slice(&unhex("00000000 80 ffff"));
    let result = decode_chunks(&mut decoder, bytes.chunks(1));
    assert_eq!(result.unwrap_err(), Error::VarCellTooLong { len: 0xffff });
    // Poisoned after the handshake: a whole fixed cell (the decoder's per-cell fast path)
    // still gets the error, not the cell.
    let mut relay = Vec::new();
    Cell::new(0x8000_0002, ChanCmd::RELAY).append_to(&mut relay);
    let err = decoder.decode_ref(&relay).map(|_| ()).unwrap_err();
    assert_eq!(err, Error::VarCellTooLong { len: 0xffff });
}

/// After the handshake, whole fixed cells are viewed where they lie (one per call, 514
/// bytes used), a var cell among them is not taken for a fixed one, and a cell cut short
/// is held and completed by the next bytes.
#[test]
fn test_fixed_cells_viewed_in_place_after_versions() {
    let mut bytes = unhex("0000 07 0002 0004");
    let mut relay = Cell::new(0x8000_0002, ChanCmd::RELAY);
    relay.body[0] = 0x42;
    relay.append_to(&mut bytes);
    let vpadding = VarCell {
        circ_id: 0,
        cmd: ChanCmd::VPADDING,
        payload: vec![7; 600],
    };
    vpadding.append_to(&mut bytes, 4);
    relay.append_to(&mut bytes);
    let mut decoder = CellDecoder::new();
    let mut rest = &bytes[..];
    let mut seen = Vec::new();
    while !rest.is_empty() {
        // The last cell arrives in two parts.
        let cut = if rest.len() == CELL_LEN {
            100
        } else {
            rest.len()
        };
        match decoder.decode_ref(&rest[..cut]).unwrap() {
            Decoded::Cell { used, cell } => {
                seen.push((used, cell.to_owned_cell()));
                rest = &rest[used..];
            }
            Decoded::Partial { used } => {
                assert_eq!((used, decoder.buffered_len()), (100, 100));
                rest = &rest[used..];
            }
            Decoded::Carried { used } => {
                let carried = decoder.take_carried().unwrap();
                seen.push((100 + used, carried.cell().unwrap().to_owned_cell()));
                rest = &rest[used..];
            }
        }
    }
    let want = [
        (7, None),
        (CELL_LEN, Some(ChanCell::Fixed(relay.clone()))),
        (4 + 1 + 2 + 600, Some(ChanCell::Var(vpadding))),
        (CELL_LEN, Some(ChanCell::Fixed(relay))),
    ];
    assert_eq!(seen.len(), 4);
    for ((used, cell), (want_used, want_cell)) in seen.iter().zip(want) {
        assert_eq!(*used, want_used);
        if let Some(want_cell) = want_cell {
            assert_eq!(*cell, want_cell);
        }
    }
}

#[test]
fn test_var_cell_at_cap() {
    let big = VarCell {
        circ_id: 0,
        cmd: ChanCmd(200),
        payload: vec![0x5a; MAX_VAR_PAYLOAD_LEN],
    };
    let mut bytes = unhex("0000 07 0002 0005");
    big.append_to(&mut bytes, 4);
    let mut decoder = CellDecoder::new();
    let got = decode_chunks(&mut decoder, bytes.chunks(1000)).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], ChanCell::Var(big));
}

#[test]
fn test_empty_input() {
    let mut decoder = CellDecoder::default();
    assert_eq!(decoder.decode(&[]).unwrap(), (0, None));
    assert_eq!(decoder.buffered_len(), 0);
}
