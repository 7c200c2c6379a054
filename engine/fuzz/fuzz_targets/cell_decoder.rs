//! The streaming `CellDecoder` on arbitrary bytes, split into chunks the input chooses.
//!
//! Input: `n | n chunk sizes | stream`. The stream is decoded twice, in one piece and in the
//! chosen chunks, and both must give the same cells and the same error. Every decoded cell
//! re-encodes to exactly the bytes it was decoded from, and the decoder keeps its documented
//! contract: `(k, None)` consumes all of the input, the buffer holds less than one cell.
#![no_main]

use kistrel_engine::wire::{CellDecoder, ChanCell, Error, MAX_VAR_PAYLOAD_LEN};
use libfuzzer_sys::fuzz_target;

/// Feeds `stream` in pieces of the given sizes (cycled; 0 means a 1-byte piece).
fn decode_all(stream: &[u8], sizes: &[u8]) -> (Vec<ChanCell>, Option<Error>) {
    let mut dec = CellDecoder::new();
    let mut cells = Vec::new();
    let mut pos = 0;
    let mut piece = 0;
    while pos < stream.len() {
        let size = sizes
            .get(piece % sizes.len().max(1))
            .map_or(stream.len(), |&s| {
                // Pieces up to 255 * 8 bytes: big enough to hold whole cells, or split them.
                usize::from(s.max(1)) * if s & 1 == 0 { 8 } else { 1 }
            });
        piece += 1;
        let end = stream.len().min(pos + size);
        let mut chunk = &stream[pos..end];
        pos = end;
        while !chunk.is_empty() {
            match dec.decode(chunk) {
                Ok((used, cell)) => {
                    assert!(used <= chunk.len(), "consumed more than given");
                    if cell.is_none() {
                        assert_eq!(used, chunk.len(), "(k, None) must consume everything");
                    }
                    assert!(dec.buffered_len() < 7 + MAX_VAR_PAYLOAD_LEN);
                    chunk = &chunk[used..];
                    cells.extend(cell);
                }
                Err(err) => {
                    // Poisoned: the same error forever after.
                    assert_eq!(dec.decode(&[0; 8]), Err(err));
                    return (cells, Some(err));
                }
            }
        }
    }
    (cells, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let whole = decode_all(stream, &[]);
    let chunked = decode_all(stream, sizes);
    assert_eq!(whole, chunked, "chunking changed the result");
    // Re-encoding the cells gives back the front of the stream, byte for byte.
    let mut again = Vec::new();
    for (i, cell) in whole.0.iter().enumerate() {
        match cell {
            ChanCell::Fixed(c) => c.append_to(&mut again),
            ChanCell::Var(v) => v.append_to(&mut again, if i == 0 { 2 } else { 4 }),
        }
    }
    assert_eq!(&stream[..again.len()], &again[..], "re-encoding differs");
});
