use std::net::IpAddr;

use super::super::*;
use super::unhex;

/// Emit into a 0xa5-filled fixed body; check the written bytes and that nothing else moved.
#[track_caller]
fn check_emit(emit: impl FnOnce(&mut [u8]) -> Result<usize>, expected: &str) {
    let expected = unhex(expected);
    let mut body = [0xa5; CELL_BODY_LEN];
    let written = emit(&mut body).unwrap();
    assert_eq!(written, expected.len());
    assert_eq!(&body[..written], &expected[..]);
    assert!(body[written..].iter().all(|&b| b == 0xa5));
}

/// A fixed body holding `hex` then zeros, as a cell would carry it.
fn fixed_body(hex: &str) -> [u8; CELL_BODY_LEN] {
    let bytes = unhex(hex);
    let mut body = [0; CELL_BODY_LEN];
    body[..bytes.len()].copy_from_slice(&bytes);
    body
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn test_versions() {
    // Arti (captured): VERSIONS 3, 4, 5.
    let versions = Versions::parse(&unhex("000300040005")).unwrap();
    assert_eq!(versions.versions, vec![3, 4, 5]);
    assert_eq!(versions.best_common(&[4, 5]), Some(5));
    assert_eq!(versions.best_common(&[6]), None);
    check_emit(|b| versions.emit(b), "000300040005");
    let mut out = Vec::new();
    versions.to_var_cell().append_to(&mut out, 2);
    assert_eq!(out, unhex("0000 07 0006 000300040005"));
}

#[test]
fn test_versions_odd_length() {
    assert_eq!(
        Versions::parse(&unhex("000300")).unwrap_err(),
        Error::BadLength {
            field: "versions",
            len: 3
        }
    );
}

#[test]
fn test_versions_empty() {
    assert_eq!(
        Versions::parse(&[]).unwrap_err(),
        Error::BadLength {
            field: "versions",
            len: 0
        }
    );
}

#[test]
fn test_netinfo() {
    // Arti (captured): a client's NETINFO, a relay's, and an IPv6 relay's.
    let client = "00000000 04 04 7F000001 00";
    let netinfo = Netinfo::parse(&fixed_body(client)).unwrap();
    assert_eq!(
        netinfo,
        Netinfo {
            time: 0,
            other_addr: Some(ip("127.0.0.1")),
            my_addrs: vec![]
        }
    );
    check_emit(|b| netinfo.emit(b), client);

    let relay = "5F6F80E1 04 04 7F000001 01 04 04 7F000001";
    let netinfo = Netinfo::parse(&fixed_body(relay)).unwrap();
    assert_eq!(netinfo.time, 0x5f6f_80e1);
    assert_eq!(netinfo.my_addrs, vec![ip("127.0.0.1")]);
    check_emit(|b| netinfo.emit(b), relay);

    let relay6 = "5F6F859C 06 10 00000000000000000000000000000001
                  02 04 04 7F000001 06 10 00000000000000000000000000000001";
    let netinfo = Netinfo::parse(&fixed_body(relay6)).unwrap();
    assert_eq!(
        netinfo,
        Netinfo {
            time: 0x5f6f_859c,
            other_addr: Some(ip("::1")),
            my_addrs: vec![ip("127.0.0.1"), ip("::1")]
        }
    );
    check_emit(|b| netinfo.emit(b), relay6);
}

#[test]
fn test_netinfo_no_other_addr() {
    // Arti (hand-generated): a zero other address is "none", and is written as 0.0.0.0.
    let bytes = "00000000 04 04 00000000 00";
    let netinfo = Netinfo::parse(&fixed_body(bytes)).unwrap();
    assert_eq!(netinfo.other_addr, None);
    check_emit(|b| netinfo.emit(b), bytes);
}

#[test]
fn test_netinfo_skips_unknown_addresses() {
    // Arti (hand-generated): a bad-length IPv6, a bad-length IPv4, an unknown type.
    let bytes = "5F6F859C 06 09 000000000000000000
                 03 04 06 7F0000010000 BB 02 FFFF 06 10 00000000000000000000000000000001";
    let netinfo = Netinfo::parse(&unhex(bytes)).unwrap();
    assert_eq!(netinfo.other_addr, None);
    assert_eq!(netinfo.my_addrs, vec![ip("::1")]);
}

#[test]
fn test_netinfo_truncated() {
    assert_eq!(
        Netinfo::parse(&unhex("00000000 04 04 7F00")).unwrap_err(),
        Error::Truncated {
            field: "netinfo other address"
        }
    );
    assert_eq!(
        Netinfo::parse(&unhex("00000000 04 04 7F000001 02 04 04 7F000001")).unwrap_err(),
        Error::Truncated {
            field: "netinfo my address"
        }
    );
}

#[test]
fn test_netinfo_emit_limits() {
    let many = Netinfo {
        time: 1,
        other_addr: None,
        my_addrs: vec![ip("10.0.0.1"); 256],
    };
    assert_eq!(
        many.emit(&mut [0; 4096]).unwrap_err(),
        Error::TooLong {
            field: "netinfo address count",
            len: 256
        }
    );
    let one = Netinfo {
        my_addrs: vec![ip("10.0.0.1")],
        ..many
    };
    assert_eq!(
        one.emit(&mut [0; 12]).unwrap_err(),
        Error::NoSpace {
            field: "netinfo my address"
        }
    );
}

/// Arti (captured): a CREATE2 ntor onionskin, and the CREATED2 answer.
const CREATE2_HDATA: &str = "09164430E84D3BC56EC7E1D22734742345E2DECE0DE535B66B8E8A0EBBDAE3263C53E02EC2215685CD3A977DC7946FF47F84CD7025F75D252D1B35DEA28F32FA912513889A207E5049992DBC9BC541194C13624A";
const CREATED2_HDATA: &str = "0108907A701030ADB6CA9C6AF097DC4855614655659B6A7BF21C1097DCE7C66EE0E4EF287DE7CED40BEECA8B90140C05DB6138AEB551CE0C037068C315E307A0";

#[test]
fn test_create2() {
    let hex = format!("0002 0054 {CREATE2_HDATA}");
    let body = fixed_body(&hex);
    let create2 = Create2::parse(&body).unwrap();
    assert_eq!(create2.htype, 2);
    assert_eq!(create2.hdata, &unhex(CREATE2_HDATA)[..]);
    assert_eq!(create2.hdata.len(), 84);
    check_emit(|b| create2.emit(b), &hex);
}

#[test]
fn test_create2_truncated() {
    assert_eq!(
        Create2::parse(&unhex("0002 0054 0916")).unwrap_err(),
        Error::Truncated {
            field: "create2 hdata"
        }
    );
    assert_eq!(
        Create2::parse(&unhex("0002 00")).unwrap_err(),
        Error::Truncated {
            field: "create2 hlen"
        }
    );
    // A declared length past the end of a full body.
    let mut body = [0; CELL_BODY_LEN];
    body[2..4].copy_from_slice(&506u16.to_be_bytes());
    assert!(matches!(
        Create2::parse(&body),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn test_create2_emit_no_space() {
    let hdata = [1; 600];
    let create2 = Create2 {
        htype: 2,
        hdata: &hdata,
    };
    assert_eq!(
        create2.emit(&mut [0; CELL_BODY_LEN]).unwrap_err(),
        Error::NoSpace {
            field: "create2 hdata"
        }
    );
}

#[test]
fn test_create2_emit_too_long() {
    // A u16 hlen cannot say 65536.
    let hdata = vec![1; usize::from(u16::MAX) + 1];
    let create2 = Create2 {
        htype: 2,
        hdata: &hdata,
    };
    let mut out = [0xa5; CELL_BODY_LEN];
    assert_eq!(
        create2.emit(&mut out).unwrap_err(),
        Error::TooLong {
            field: "create2 hlen",
            len: 65536
        }
    );
}

#[test]
fn test_created2() {
    let hex = format!("0040 {CREATED2_HDATA}");
    let body = fixed_body(&hex);
    let created2 = Created2::parse(&body).unwrap();
    assert_eq!(created2.hdata, &unhex(CREATED2_HDATA)[..]);
    check_emit(|b| created2.emit(b), &hex);
    assert_eq!(
        Created2::parse(&unhex("0040 0108")).unwrap_err(),
        Error::Truncated {
            field: "created2 hdata"
        }
    );
}

#[test]
fn test_create_fast() {
    // Arti (captured).
    let hex = "0DC2A5EB921EF4B71F41184A99F4FAD99620A648";
    let create_fast = CreateFast::parse(&fixed_body(hex)).unwrap();
    assert_eq!(create_fast.x[..], unhex(hex)[..]);
    check_emit(|b| create_fast.emit(b), hex);
    assert_eq!(
        CreateFast::parse(&unhex(hex)[..19]).unwrap_err(),
        Error::Truncated {
            field: "create_fast x"
        }
    );
}

#[test]
fn test_created_fast() {
    // Arti (captured).
    let hex = "03B74250B01D09FDA72B70D63AE7994926F13055BED23485F6B3C8C3CEAFE1DF48A9FF8BAC4993FC";
    let created_fast = CreatedFast::parse(&fixed_body(hex)).unwrap();
    assert_eq!(created_fast.y[..], unhex(hex)[..20]);
    assert_eq!(created_fast.kh[..], unhex(hex)[20..]);
    check_emit(|b| created_fast.emit(b), hex);
    assert_eq!(
        CreatedFast::parse(&unhex(hex)[..39]).unwrap_err(),
        Error::Truncated {
            field: "created_fast kh"
        }
    );
}

#[test]
fn test_destroy() {
    // Arti (captured): DESTROY reason 4 (HIBERNATING).
    let destroy = Destroy::parse(&fixed_body("04")).unwrap();
    assert_eq!(destroy.reason, DestroyReason::HIBERNATING);
    check_emit(|b| destroy.emit(b), "04");
    assert_eq!(
        Destroy::parse(&[]).unwrap_err(),
        Error::Truncated {
            field: "destroy reason"
        }
    );
}
