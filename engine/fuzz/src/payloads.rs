//! The parse/emit round trip behind the `relay_payloads` target: one parser per selector
//! byte, each given at most the bytes its container can hold (a fixed cell body, a relay
//! cell's data, a variable cell's payload), as the relay would give it.

use kistrel_engine::wire::{
    Begin, Cell, CellView, Connected, Create2, CreateFast, Created2, CreatedFast, Destroy, End,
    Extend2, Extended2, LinkSpec, Netinfo, RelayCellRepr, RelayCellView, Resolve, Resolved,
    ResolvedAnswer, Sendme, Truncated, VarCellView, Versions, CELL_BODY_LEN, CELL_LEN,
    MAX_VAR_PAYLOAD_LEN, RELAY_DATA_LEN,
};
use rand::SeedableRng;

/// Names of the parsers, by selector (`selector % PARSERS.len()`). The seed generator writes
/// one seed directory entry per name.
pub const PARSERS: [&str; 19] = [
    "versions",
    "netinfo",
    "create2",
    "created2",
    "create_fast",
    "created_fast",
    "destroy",
    "fixed_cell",
    "var_cell",
    "relay_cell",
    "begin",
    "connected",
    "end",
    "sendme",
    "extend2",
    "extended2",
    "truncated",
    "resolve",
    "resolved",
];

/// A cell-body message: parse the (truncated) body, emit into a zeroed body, parse that whole
/// body again (padding included, as a receiver sees it) and compare.
macro_rules! body_round_trip {
    ($ty:ident, $input:expr) => {{
        let input = cap($input, CELL_BODY_LEN);
        if let Ok(msg) = $ty::parse(input) {
            let mut body = [0u8; CELL_BODY_LEN];
            let n = msg.emit(&mut body).expect("a parsed body emits");
            assert!(n <= CELL_BODY_LEN);
            assert_eq!($ty::parse(&body).expect("emitted body parses"), msg);
        }
    }};
}

/// A relay message: parse `data` (at most one relay cell's), emit, parse exactly the emitted
/// bytes (a relay cell's `length` covers only those) and compare.
macro_rules! data_round_trip {
    ($ty:ident, $input:expr) => {{
        let input = cap($input, RELAY_DATA_LEN);
        if let Ok(msg) = $ty::parse(input) {
            let mut data = [0u8; RELAY_DATA_LEN];
            let n = msg.emit(&mut data).expect("a parsed message emits");
            assert_eq!($ty::parse(&data[..n]).expect("emitted data parses"), msg);
        }
    }};
}

fn cap(input: &[u8], max: usize) -> &[u8] {
    &input[..input.len().min(max)]
}

/// Runs parser `selector % PARSERS.len()` on `input` and checks its round trip.
pub fn check(selector: u8, input: &[u8]) {
    match usize::from(selector) % PARSERS.len() {
        0 => {
            let input = cap(input, MAX_VAR_PAYLOAD_LEN);
            if let Ok(v) = Versions::parse(input) {
                let mut out = vec![0u8; input.len()];
                let n = v.emit(&mut out).expect("versions emit");
                assert_eq!(&out[..n], input, "VERSIONS is a plain u16 list");
                assert_eq!(v.to_var_cell().payload, input);
            }
        }
        1 => body_round_trip!(Netinfo, input),
        2 => body_round_trip!(Create2, input),
        3 => body_round_trip!(Created2, input),
        4 => body_round_trip!(CreateFast, input),
        5 => body_round_trip!(CreatedFast, input),
        6 => body_round_trip!(Destroy, input),
        7 => {
            let input = cap(input, CELL_LEN + 8);
            if let Ok(view) = CellView::new_checked(input) {
                let cell = Cell::from_view(&view);
                let mut out = Vec::new();
                cell.append_to(&mut out);
                assert_eq!(&out[..], &input[..CELL_LEN]);
                assert!(Cell::parse(input) == Ok(cell));
            }
        }
        8 => {
            let (id_len, input) = match input.split_first() {
                Some((b, rest)) if b & 1 == 0 => (2, rest),
                Some((_, rest)) => (4, rest),
                None => return,
            };
            let input = cap(input, MAX_VAR_PAYLOAD_LEN + 16);
            if let Ok(view) = VarCellView::new_checked(input, id_len) {
                let total = view.total_len();
                assert!(total <= input.len());
                assert_eq!(view.payload().len(), usize::from(view.length()));
                let cell = kistrel_engine::wire::VarCell::from_view(&view);
                let mut out = Vec::new();
                cell.append_to(&mut out, id_len);
                assert_eq!(&out[..], &input[..total]);
            }
        }
        9 => {
            let input = cap(input, CELL_BODY_LEN);
            if let Ok(view) = RelayCellView::new_checked(input) {
                // Every getter of a checked view is safe to call.
                let _ = (
                    view.cmd(),
                    view.recognized(),
                    view.stream_id(),
                    view.digest(),
                );
                assert!(view.data().len() <= RELAY_DATA_LEN);
            }
            if let Ok(repr) = RelayCellRepr::parse(input) {
                let mut body = [0u8; CELL_BODY_LEN];
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
                repr.emit(&mut body, &mut rng)
                    .expect("parsed relay cell emits");
                assert_eq!(RelayCellRepr::parse(&body), Ok(repr));
            }
        }
        10 => data_round_trip!(Begin, input),
        11 => data_round_trip!(Connected, input),
        12 => data_round_trip!(End, input),
        13 => data_round_trip!(Sendme, input),
        14 => {
            let input = cap(input, RELAY_DATA_LEN);
            if let Ok(msg) = Extend2::parse(input) {
                let mut data = [0u8; RELAY_DATA_LEN];
                match msg.emit(&mut data) {
                    Ok(n) => assert_eq!(Extend2::parse(&data[..n]), Ok(msg)),
                    // Only an unrecognized specifier (value not kept) cannot be re-emitted.
                    Err(_) => assert!(msg
                        .link_specs
                        .iter()
                        .any(|s| matches!(s, LinkSpec::Unrecognized { .. }))),
                }
            }
        }
        15 => data_round_trip!(Extended2, input),
        16 => data_round_trip!(Truncated, input),
        17 => data_round_trip!(Resolve, input),
        _ => resolved_round_trip(input),
    }
}

/// RESOLVED: parse, emit, parse again. Emitting may refuse only an unknown answer type
/// (its value is not kept) or run out of room with error answers (an error's value is
/// C Tor's text, which can be longer than what was read).
fn resolved_round_trip(input: &[u8]) {
    let input = cap(input, RELAY_DATA_LEN);
    if let Ok(msg) = Resolved::parse(input) {
        let mut data = [0u8; RELAY_DATA_LEN];
        match msg.emit(&mut data) {
            Ok(n) => assert_eq!(Resolved::parse(&data[..n]), Ok(msg)),
            Err(_) => assert!(msg.answers.iter().any(|a| matches!(
                a,
                ResolvedAnswer::Unknown { .. } | ResolvedAnswer::Error { .. }
            ))),
        }
    }
}
