//! Splitting a link's byte stream into fixed-length cells after the handshake, reading only
//! each cell's circuit id and command: the load side's whole per-cell receive work.
//!
//! ```text
//!   recv bytes: [..partial cell from the last read][cell][cell]...[cell][partial ->carry]
//!                 `-- completed in `carry` (at most 513 bytes copied per read)
//! ```

use kistrel_engine::wire::{CELL_BODY_LEN, CELL_LEN};

use super::{Fault, LoadError};

/// The first command byte of the variable-length cells (tor-spec: 128 and up, and VERSIONS).
const FIRST_VAR_CMD: u8 = 128;

/// One fixed cell as the scanner hands it over: circuit id, command, body (borrowed).
#[derive(Debug, Clone, Copy)]
pub(super) struct CellRef<'a> {
    pub(super) circ: u32,
    pub(super) cmd: u8,
    pub(super) body: &'a [u8; CELL_BODY_LEN],
}

/// Cuts a stream of fixed-length cells into cells. A variable-length cell (it could only be
/// VPADDING this late) is a [`Fault::VarCellAfterHandshake`]: the load side's peers never
/// send one.
#[derive(Debug)]
pub(super) struct CellScanner {
    /// The start of a cell whose end has not arrived yet.
    carry: [u8; CELL_LEN],
    /// INVARIANT: `carried < CELL_LEN`.
    carried: usize,
}

impl Default for CellScanner {
    fn default() -> Self {
        CellScanner {
            carry: [0; CELL_LEN],
            carried: 0,
        }
    }
}

impl CellScanner {
    /// Bytes of a partial cell kept from earlier calls.
    #[cfg(test)]
    pub(super) fn carried(&self) -> usize {
        self.carried
    }

    /// Calls `f` on every cell completed by `bytes`, in order; keeps a trailing partial
    /// cell for the next call. Stops at the first error (of `f` or a variable-length cell).
    pub(super) fn scan(
        &mut self,
        mut bytes: &[u8],
        mut f: impl FnMut(CellRef<'_>) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        if self.carried > 0 {
            let need = CELL_LEN - self.carried;
            let take = need.min(bytes.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&bytes[..take]);
            self.carried += take;
            bytes = &bytes[take..];
            if self.carried < CELL_LEN {
                return Ok(());
            }
            self.carried = 0;
            let carry = self.carry;
            dispatch(&carry, &mut f)?;
        }
        let mut cells = bytes.chunks_exact(CELL_LEN);
        for cell in &mut cells {
            dispatch(cell, &mut f)?;
        }
        let rest = cells.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
        Ok(())
    }
}

/// Hands one whole cell (`cell.len() == CELL_LEN`) to `f`.
#[inline]
fn dispatch(
    cell: &[u8],
    f: &mut impl FnMut(CellRef<'_>) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let (Some(head), Some(body)) = (cell.first_chunk::<5>(), cell[5..].first_chunk()) else {
        return Ok(());
    };
    let cmd = head[4];
    if cmd >= FIRST_VAR_CMD || cmd == 7 {
        return Err(Fault::VarCellAfterHandshake { cmd }.into());
    }
    f(CellRef {
        circ: u32::from_be_bytes([head[0], head[1], head[2], head[3]]),
        cmd,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(circ: u32, cmd: u8, fill: u8) -> Vec<u8> {
        let mut c = vec![fill; CELL_LEN];
        c[..4].copy_from_slice(&circ.to_be_bytes());
        c[4] = cmd;
        c
    }

    fn collect(scanner: &mut CellScanner, bytes: &[u8], out: &mut Vec<(u32, u8, u8)>) {
        scanner
            .scan(bytes, |c| {
                out.push((c.circ, c.cmd, c.body[CELL_BODY_LEN - 1]));
                Ok(())
            })
            .unwrap();
    }

    /// Three cells cut at every possible pair of places come out whole and in order, with
    /// their bodies intact.
    #[test]
    fn cells_split_anywhere_come_out_whole() {
        let stream: Vec<u8> = [
            cell(1, 3, 0xa1),
            cell(0x8000_0002, 3, 0xb2),
            cell(7, 4, 0xc3),
        ]
        .concat();
        let want = vec![(1, 3, 0xa1), (0x8000_0002, 3, 0xb2), (7, 4, 0xc3)];
        for a in (0..=stream.len()).step_by(37) {
            for b in (a..=stream.len()).step_by(53) {
                let mut s = CellScanner::default();
                let mut got = Vec::new();
                for part in [&stream[..a], &stream[a..b], &stream[b..]] {
                    collect(&mut s, part, &mut got);
                }
                assert_eq!(got, want, "cut at {a} and {b}");
                assert_eq!(s.carried(), 0);
            }
        }
    }

    #[test]
    fn a_partial_cell_waits_for_its_end() {
        let mut s = CellScanner::default();
        let mut got = Vec::new();
        let c = cell(9, 3, 0x55);
        collect(&mut s, &c[..CELL_LEN - 1], &mut got);
        assert!(got.is_empty());
        assert_eq!(s.carried(), CELL_LEN - 1);
        collect(&mut s, &c[CELL_LEN - 1..], &mut got);
        assert_eq!(got, [(9, 3, 0x55)]);
    }

    #[test]
    fn variable_length_cells_and_callback_errors_stop_the_scan() {
        for cmd in [7, 128, 129] {
            let mut s = CellScanner::default();
            let e = s.scan(&cell(1, cmd, 0), |_| Ok(())).unwrap_err();
            assert!(
                matches!(e, LoadError::Protocol(Fault::VarCellAfterHandshake { cmd: c }) if c == cmd),
                "{e:?}"
            );
        }
        let mut s = CellScanner::default();
        let mut seen = 0;
        let two = [cell(1, 3, 0), cell(2, 3, 0)].concat();
        let e = s
            .scan(&two, |c| {
                seen += 1;
                Err(Fault::UnknownCircuit {
                    circ: c.circ,
                    cmd: c.cmd,
                }
                .into())
            })
            .unwrap_err();
        assert_eq!(seen, 1);
        assert!(matches!(
            e,
            LoadError::Protocol(Fault::UnknownCircuit { circ: 1, cmd: 3 })
        ));
    }
}
