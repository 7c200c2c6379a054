use std::net::{IpAddr, SocketAddrV4, SocketAddrV6};

use super::super::*;
use super::unhex;

/// Emit into a 0xa5-filled data area; check the written bytes and that nothing else moved.
#[track_caller]
fn check_emit(emit: impl FnOnce(&mut [u8]) -> Result<usize>, expected: &str) {
    let expected = unhex(expected);
    let mut data = [0xa5; RELAY_DATA_LEN];
    let written = emit(&mut data).unwrap();
    assert_eq!(written, expected.len());
    assert_eq!(&data[..written], &expected[..]);
    assert!(data[written..].iter().all(|&b| b == 0xa5));
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn test_begin() {
    // Arti (captured): "127.0.0.1:7003\0".
    let hex = "3132372E302E302E313A3730303300";
    let bytes = unhex(hex);
    let begin = Begin::parse(&bytes).unwrap();
    assert_eq!(
        begin,
        Begin {
            host: "127.0.0.1",
            port: 7003,
            flags: 0
        }
    );
    check_emit(|b| begin.emit(b), hex);

    // Arti (hand-generated): flags set.
    let hex = "7777772e786b63642e636f6d3a34343300 00000003";
    let bytes = unhex(hex);
    let begin = Begin::parse(&bytes).unwrap();
    assert_eq!(
        (begin.host, begin.port, begin.flags),
        ("www.xkcd.com", 443, 3)
    );
    check_emit(|b| begin.emit(b), hex);

    // Arti (hand-generated): IPv6 literal, bracketed on the wire.
    let hex = "5b323030313a6462383a3a315d3a323200";
    let bytes = unhex(hex);
    let begin = Begin::parse(&bytes).unwrap();
    assert_eq!((begin.host, begin.port), ("2001:db8::1", 22));
    check_emit(|b| begin.emit(b), hex);
}

#[test]
fn test_begin_short_flags_ignored() {
    // Fewer than 4 bytes after the NUL: no flags (C Tor's begin_cell_parse).
    let begin = Begin::parse(b"a.b:1\0\x01\x02").unwrap();
    assert_eq!((begin.host, begin.port, begin.flags), ("a.b", 1, 0));
}

#[test]
fn test_begin_without_nul() {
    // Arti (hand-generated): "[::]!" with no NUL.
    assert_eq!(
        Begin::parse(&unhex("5b3a3a5d21")).unwrap_err(),
        Error::Truncated {
            field: "begin address"
        }
    );
}

#[test]
fn test_begin_bad_address() {
    let bad = Error::BadValue {
        field: "begin address",
    };
    // Arti (hand-generated): "torproject™.org:443", not ASCII.
    assert_eq!(
        Begin::parse(&unhex("746f7270726f6a656374e284a22e6f72673a34343300")).unwrap_err(),
        bad
    );
    for input in [
        &b"[::]!\0"[..],
        b"example.com\0",
        b":80\0",
        b"[]:80\0",
        b"[example.com]:80\0",
        b"::1:80\0",
        b"a]b:80\0",
        b"[::1:80\0",
    ] {
        assert_eq!(Begin::parse(input).unwrap_err(), bad, "{input:?}");
    }
}

#[test]
fn test_begin_bad_port() {
    let bad = Error::BadValue {
        field: "begin port",
    };
    for input in [
        &b"a:0\0"[..],
        b"a:65536\0",
        b"a:\0",
        b"a:+80\0",
        b"a:8a\0",
        b"a:000080\0",
        b"a:80:81\0",
    ] {
        assert_eq!(Begin::parse(input).unwrap_err(), bad, "{input:?}");
    }
    assert_eq!(Begin::parse(b"a:65535\0").unwrap().port, 65535);
}

#[test]
fn test_begin_emit_rejects() {
    let mut out = [0; RELAY_DATA_LEN];
    let bad_host = Error::Unencodable {
        field: "begin address",
    };
    for host in ["", "a:b", "a\0b", "[::1]", "caf\u{e9}"] {
        let begin = Begin {
            host,
            port: 80,
            flags: 0,
        };
        assert_eq!(begin.emit(&mut out).unwrap_err(), bad_host, "{host:?}");
    }
    let begin = Begin {
        host: "a",
        port: 0,
        flags: 0,
    };
    assert_eq!(
        begin.emit(&mut out).unwrap_err(),
        Error::Unencodable {
            field: "begin port"
        }
    );
}

#[test]
fn test_connected() {
    // Arti (captured): empty, and 127.0.0.1 with TTL 3600.
    let empty = Connected::parse(&[]).unwrap();
    assert_eq!(empty.addr, None);
    check_emit(|b| empty.emit(b), "");

    let hex = "7F000001 00000E10";
    let bytes = unhex(hex);
    let v4 = Connected::parse(&bytes).unwrap();
    assert_eq!(v4.addr, Some((ip("127.0.0.1"), 3600)));
    check_emit(|b| v4.emit(b), hex);

    // Arti (hand-generated): IPv6.
    let hex = "00000000 06 20010db8 00000000 00000000 00001122 00000E10";
    let bytes = unhex(hex);
    let v6 = Connected::parse(&bytes).unwrap();
    assert_eq!(v6.addr, Some((ip("2001:db8::1122"), 3600)));
    check_emit(|b| v6.emit(b), hex);
}

#[test]
fn test_connected_bad_address_type() {
    // Arti (hand-generated): type 7.
    let hex = "00000000 07 20010db8 00000000 00000000 00001122 00000E10";
    assert_eq!(
        Connected::parse(&unhex(hex)).unwrap_err(),
        Error::BadValue {
            field: "connected address type"
        }
    );
}

#[test]
fn test_connected_truncated() {
    assert_eq!(
        Connected::parse(&unhex("7F000001 0000")).unwrap_err(),
        Error::Truncated {
            field: "connected ttl"
        }
    );
    assert_eq!(
        Connected::parse(&unhex("00000000 06 2001")).unwrap_err(),
        Error::Truncated {
            field: "connected address"
        }
    );
}

#[test]
fn test_connected_emit_unspecified_v4() {
    let connected = Connected {
        addr: Some((ip("0.0.0.0"), 1)),
    };
    assert_eq!(
        connected.emit(&mut [0; RELAY_DATA_LEN]).unwrap_err(),
        Error::Unencodable {
            field: "connected address"
        }
    );
}

#[test]
fn test_end() {
    // Arti (captured): MISC and DONE.
    let end = End::parse(&unhex("01")).unwrap();
    assert_eq!(end.reason, EndReason::MISC);
    check_emit(|b| end.emit(b), "01");
    let end = End::parse(&unhex("06")).unwrap();
    assert_eq!(end.reason, EndReason::DONE);
    check_emit(|b| end.emit(b), "06");
    // Arti (hand-generated): EXITPOLICY with address and TTL, which we do not keep.
    let end = End::parse(&unhex("04 7f000007 00000100")).unwrap();
    assert_eq!(end.reason, EndReason::EXITPOLICY);
}

#[test]
fn test_end_empty_is_misc() {
    assert_eq!(End::parse(&[]).unwrap().reason, EndReason::MISC);
}

#[test]
fn test_sendme() {
    // Arti (hand-generated): empty (v0) and v1 with a 20-byte tag.
    let v0 = Sendme::parse(&[]).unwrap();
    assert_eq!(v0.digest, None);
    check_emit(|b| v0.emit(b), "");
    assert_eq!(Sendme::parse(&[0]).unwrap().digest, None);

    let hex = "01 0014 F01234989823478bcdefabcdef01234567890123";
    let bytes = unhex(hex);
    let v1 = Sendme::parse(&bytes).unwrap();
    assert_eq!(
        v1.digest.map(|d| d.to_vec()),
        Some(unhex("F01234989823478bcdefabcdef01234567890123"))
    );
    check_emit(|b| v1.emit(b), hex);
}

#[test]
fn test_sendme_bad_version() {
    assert_eq!(
        Sendme::parse(&unhex("02 0014")).unwrap_err(),
        Error::BadValue {
            field: "sendme version"
        }
    );
}

#[test]
fn test_sendme_bad_length() {
    assert_eq!(
        Sendme::parse(&unhex("01 0013 F01234989823478bcdefabcdef012345678901")).unwrap_err(),
        Error::BadLength {
            field: "sendme data length",
            len: 19
        }
    );
    assert_eq!(
        Sendme::parse(&unhex("01 0014 F012")).unwrap_err(),
        Error::Truncated {
            field: "sendme digest"
        }
    );
}

/// Arti (captured): EXTEND2 to 127.0.0.1:5000 with a legacy id, ntor onionskin.
const EXTEND2_ID: &str = "03479E93EBF3FF2C58C1C9DBF2DE9DE9C2801B3E";
const EXTEND2_HDATA: &str = "03479E93EBF3FF2C58C1C9DBF2DE9DE9C2801B3E36A3E0BDB1F1A10579820243DD2E228B902940EB49EF842646E3926768C28410074BEE50A535116D657C6BFB7E5114119DC69F05DF907EF62002EA782B0A357F";

fn id20(hex: &str) -> [u8; 20] {
    unhex(hex).try_into().unwrap()
}

#[test]
fn test_extend2() {
    let hex = format!("02 00 06 7F0000011388 02 14 {EXTEND2_ID} 0002 0054 {EXTEND2_HDATA}");
    let data = unhex(&hex);
    let extend2 = Extend2::parse(&data).unwrap();
    assert_eq!(
        extend2.link_specs,
        vec![
            LinkSpec::Ipv4("127.0.0.1:5000".parse::<SocketAddrV4>().unwrap()),
            LinkSpec::LegacyId(id20(EXTEND2_ID)),
        ]
    );
    assert_eq!(extend2.htype, 2);
    assert_eq!(extend2.hdata, &unhex(EXTEND2_HDATA)[..]);
    check_emit(|b| extend2.emit(b), &hex);
}

#[test]
fn test_extend2_ipv6_and_ed25519() {
    let hex = "02 01 12 20010db8000000000000000000000001 01bb
               03 20 0101010101010101010101010101010101010101010101010101010101010101
               0002 0002 abcd";
    let bytes = unhex(hex);
    let extend2 = Extend2::parse(&bytes).unwrap();
    assert_eq!(
        extend2.link_specs,
        vec![
            LinkSpec::Ipv6("[2001:db8::1]:443".parse::<SocketAddrV6>().unwrap()),
            LinkSpec::Ed25519([1; 32]),
        ]
    );
    check_emit(|b| extend2.emit(b), hex);
}

#[test]
fn test_extend2_unrecognized_spec_skipped() {
    let hex = format!("02 07 03 616263 02 14 {EXTEND2_ID} 0002 0000");
    let bytes = unhex(&hex);
    let extend2 = Extend2::parse(&bytes).unwrap();
    assert_eq!(
        extend2.link_specs,
        vec![
            LinkSpec::Unrecognized { ty: 7, len: 3 },
            LinkSpec::LegacyId(id20(EXTEND2_ID)),
        ]
    );
    assert_eq!(extend2.hdata, &[] as &[u8]);
    // Its value was not kept, so it cannot be written back.
    assert_eq!(
        extend2.emit(&mut [0; RELAY_DATA_LEN]).unwrap_err(),
        Error::Unencodable {
            field: "link specifier"
        }
    );
}

#[test]
fn test_extend2_emit_too_many_specs() {
    let extend2 = Extend2 {
        link_specs: vec![LinkSpec::LegacyId([7; 20]); 256],
        htype: 2,
        hdata: &[],
    };
    assert_eq!(
        extend2.emit(&mut [0; RELAY_DATA_LEN]).unwrap_err(),
        Error::TooLong {
            field: "extend2 nspec",
            len: 256
        }
    );
}

#[test]
fn test_extend2_bad_link_spec_length() {
    assert_eq!(
        Extend2::parse(&unhex("01 00 05 7F00000113 0002 0000")).unwrap_err(),
        Error::BadLength {
            field: "link specifier",
            len: 5
        }
    );
}

#[test]
fn test_extend2_truncated() {
    assert_eq!(
        Extend2::parse(&unhex("02 00 06 7F0000011388")).unwrap_err(),
        Error::Truncated {
            field: "link specifier type"
        }
    );
    assert_eq!(
        Extend2::parse(&unhex("01 02 14 0347")).unwrap_err(),
        Error::Truncated {
            field: "link specifier"
        }
    );
    assert_eq!(
        Extend2::parse(&unhex("00 0002 0054 0347")).unwrap_err(),
        Error::Truncated {
            field: "extend2 hdata"
        }
    );
}

#[test]
fn test_extended2() {
    // Arti (captured).
    let hdata = "0026619058EB2661834D54C2624828728F28915587CDAD1AD3373B85F33A480EEA9D3B2CEF8D39C1DBD2FA519E75296B96960690C79A28D6A0D9454F8E9634BD";
    let hex = format!("0040 {hdata}");
    let bytes = unhex(&hex);
    let extended2 = Extended2::parse(&bytes).unwrap();
    assert_eq!(extended2.hdata, &unhex(hdata)[..]);
    check_emit(|b| extended2.emit(b), &hex);
    assert_eq!(
        Extended2::parse(&unhex("0040 0026")).unwrap_err(),
        Error::Truncated {
            field: "extended2 hdata"
        }
    );
}

#[test]
fn test_truncated() {
    // Arti (captured): TRUNCATED reason 8 (CHANNEL_CLOSED).
    let truncated = Truncated::parse(&unhex("08")).unwrap();
    assert_eq!(truncated.reason, DestroyReason::CHANNEL_CLOSED);
    check_emit(|b| truncated.emit(b), "08");
    assert_eq!(
        Truncated::parse(&[]).unwrap_err(),
        Error::Truncated {
            field: "truncated reason"
        }
    );
}

#[test]
fn test_resolve_and_resolved() {
    // RESOLVE: the name and its NUL.
    let r = Resolve::parse(b"example.com\0").unwrap();
    assert_eq!(r.host, "example.com");
    let mut out = [0xa5u8; 16];
    assert_eq!(r.emit(&mut out), Ok(12));
    assert_eq!(&out[..12], b"example.com\0");
    assert_eq!(
        Resolve::parse(b"example.com"),
        Err(Error::Truncated {
            field: "resolve hostname"
        })
    );
    assert_eq!(
        Resolve::parse(b"\0"),
        Err(Error::BadValue {
            field: "resolve hostname"
        })
    );
    // RESOLVED, tor-spec 6.4 layout: IPv4 first, then IPv6; an error answer alone.
    let bytes = unhex(
        "04 04 7F000001 0000012C
         06 10 00000000000000000000000000000001 0000003C",
    );
    let resolved = Resolved::parse(&bytes).unwrap();
    assert_eq!(
        resolved.answers,
        [
            ResolvedAnswer::Addr {
                ip: "127.0.0.1".parse().unwrap(),
                ttl: 300
            },
            ResolvedAnswer::Addr {
                ip: "::1".parse().unwrap(),
                ttl: 60
            }
        ]
    );
    let mut out = [0u8; RELAY_DATA_LEN];
    let n = resolved.emit(&mut out).unwrap();
    assert_eq!(&out[..n], &bytes[..]);
    let error = Resolved {
        answers: vec![ResolvedAnswer::Error {
            transient: false,
            ttl: 0,
        }],
    };
    let n = error.emit(&mut out).unwrap();
    // C Tor's error text, then the TTL.
    assert_eq!(&out[..2], &[0xF1, 24]);
    assert_eq!(&out[2..26], b"Error resolving hostname");
    assert_eq!(Resolved::parse(&out[..n]).unwrap(), error);
    assert!(matches!(
        Resolved::parse(&unhex("04 03 7F0000 00000000")),
        Err(Error::BadLength { .. })
    ));
}
