//! Tests of the wire formats, one file per layout, smoltcp-style: `test_deconstruct`,
//! `test_construct`, `test_parse`, `test_emit` on hand-written bytes, one test per rejection
//! rule, then property tests.
//!
//! Vectors marked "Arti" are from Arti's tor-cell `tests/testvec_chanmsg.rs` and
//! `tests/testvec_relaymsg.rs` (zydou/arti mirror), which were captured from C Tor
//! 0.4.5.0-alpha-dev in a chutney network unless Arti notes them as hand-generated.

mod cell;
mod chan_msg;
mod codec;
mod link_auth;
mod props;
mod relay_cell;
mod relay_msg;

/// Decode hex that may contain whitespace. Test-only: panics on bad hex.
fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(s).expect("test vector is valid hex")
}

/// Every variant's kind: peer bytes that fail to parse are the peer's fault; an emit refusing
/// its input is a caller's misuse; an emit buffer too small is our bug.
#[test]
fn test_error_kind() {
    use super::{ChanCmd, Error};
    use crate::{ErrorKind, HasKind};

    let cases = [
        (Error::Truncated { field: "f" }, ErrorKind::PeerProtocol),
        (
            Error::BadLength { field: "f", len: 1 },
            ErrorKind::PeerProtocol,
        ),
        (Error::BadValue { field: "f" }, ErrorKind::PeerProtocol),
        (Error::VarCellTooLong { len: 4097 }, ErrorKind::PeerProtocol),
        (
            Error::ExpectedVersions {
                cmd: ChanCmd::NETINFO,
            },
            ErrorKind::PeerProtocol,
        ),
        (
            Error::TooLong { field: "f", len: 1 },
            ErrorKind::BadApiUsage,
        ),
        (Error::Unencodable { field: "f" }, ErrorKind::BadApiUsage),
        (Error::NoSpace { field: "f" }, ErrorKind::Internal),
    ];
    for (error, kind) in cases {
        assert_eq!(error.kind(), kind, "{error:?}");
    }
}
