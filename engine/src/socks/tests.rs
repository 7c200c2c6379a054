//! SOCKS5 server tests: byte-exact exchanges (RFC 1928 / RFC 1929 message layouts), one test
//! per rejection rule with the exact reply, every split of the input, and property tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

/// What feeding a byte stream in chunks produced.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Run {
    /// Everything queued for the client, in order.
    output: Vec<u8>,
    /// The request and the total bytes consumed up to its end, or `None` if still waiting.
    result: Result<Option<(ConnectRequest, usize)>, SocksError>,
}

/// Feed `input` cut at the (sorted) positions `cuts`, draining output after every call.
#[track_caller]
fn run_cut(server: &mut SocksServer, input: &[u8], cuts: &[usize]) -> Run {
    let mut output = Vec::new();
    let mut consumed = 0;
    let mut start = 0;
    for end in cuts.iter().copied().chain([input.len()]) {
        let chunk = &input[start..end];
        start = end;
        let result = server.handle(chunk);
        server.take_output(&mut output);
        assert!(server.partial_len <= MAX_MESSAGE_LEN);
        match result {
            Ok((n, SocksProgress::NeedMore)) => {
                assert_eq!(n, chunk.len(), "NeedMore must consume everything");
                consumed += n;
            }
            Ok((n, SocksProgress::Request(request))) => {
                assert!(n <= chunk.len());
                return Run {
                    output,
                    result: Ok(Some((request, consumed + n))),
                };
            }
            Err(err) => {
                return Run {
                    output,
                    result: Err(err),
                }
            }
        }
    }
    Run {
        output,
        result: Ok(None),
    }
}

fn run(input: &[u8]) -> Run {
    run_cut(&mut SocksServer::new(), input, &[])
}

/// A reply with address 0.0.0.0:0, as sent for errors.
fn zero_reply(code: u8) -> Vec<u8> {
    vec![5, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

// Byte layouts: RFC 1928 sections 3 (greeting), 4 (request), 5 (addresses), 6 (reply);
// RFC 1929 section 2 (username/password).

/// No-auth, IPv4 CONNECT to 127.0.0.1:80, then success with BND 127.0.0.1:1080.
#[test]
fn test_no_auth_ipv4_connect() {
    let mut server = SocksServer::new();
    let mut out = Vec::new();
    assert_eq!(
        server.handle(&[0x05, 0x01, 0x00]),
        Ok((3, SocksProgress::NeedMore))
    );
    server.take_output(&mut out);
    assert_eq!(out, [0x05, 0x00]);

    let request = [0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50];
    let expected = ConnectRequest {
        target: TargetAddr::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port: 80,
        isolation: None,
    };
    assert_eq!(
        server.handle(&request),
        Ok((10, SocksProgress::Request(expected)))
    );
    out.clear();
    server.take_output(&mut out);
    assert!(out.is_empty(), "nothing is sent before the reply");
    assert!(!server.is_open());

    server.reply(
        SocksReply::Succeeded,
        SocketAddr::from(([127, 0, 0, 1], 1080)),
    );
    server.take_output(&mut out);
    assert_eq!(out, [0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0x04, 0x38]);
    assert!(server.is_open());
    assert_eq!(server.handle(b"GET /"), Err(SocksError::HandshakeOver));
}

/// Username/password (offered with no-auth: username/password wins), then a domain CONNECT.
#[test]
fn test_username_password_domain_connect() {
    let mut server = SocksServer::new();
    let mut out = Vec::new();
    assert_eq!(
        server.handle(&[0x05, 0x02, 0x00, 0x02]),
        Ok((4, SocksProgress::NeedMore))
    );
    server.take_output(&mut out);
    assert_eq!(out, [0x05, 0x02]);

    let auth = b"\x01\x04user\x06secret";
    assert_eq!(
        server.handle(auth),
        Ok((auth.len(), SocksProgress::NeedMore))
    );
    out.clear();
    server.take_output(&mut out);
    assert_eq!(out, [0x01, 0x00]);

    let request = b"\x05\x01\x00\x03\x0bexample.com\x01\xbb";
    let expected = ConnectRequest {
        target: TargetAddr::Domain("example.com".into()),
        port: 443,
        isolation: Some((b"user".to_vec(), b"secret".to_vec())),
    };
    assert_eq!(
        server.handle(request),
        Ok((request.len(), SocksProgress::Request(expected)))
    );
    assert_eq!(
        TargetAddr::Domain("example.com".into()).to_string(),
        "example.com"
    );

    server.reply(SocksReply::HostUnreachable, unspecified());
    out.clear();
    server.take_output(&mut out);
    assert_eq!(out, zero_reply(4));
    assert!(!server.is_open());
    assert_eq!(server.handle(&[0]), Err(SocksError::HandshakeOver));
}

/// IPv6 CONNECT to [2001:db8::1]:8080 and an IPv6 BND in the reply.
#[test]
fn test_ipv6_connect() {
    let mut input = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x04];
    let target: Ipv6Addr = "2001:db8::1".parse().unwrap();
    input.extend_from_slice(&target.octets());
    input.extend_from_slice(&[0x1f, 0x90]);
    let mut server = SocksServer::new();
    let run = run_cut(&mut server, &input, &[]);
    assert_eq!(run.output, [0x05, 0x00]);
    let expected = ConnectRequest {
        target: TargetAddr::Ip(IpAddr::V6(target)),
        port: 8080,
        isolation: None,
    };
    assert_eq!(run.result, Ok(Some((expected.clone(), input.len()))));
    // Unbracketed, as wire::Begin wants its host.
    assert_eq!(expected.target.to_string(), "2001:db8::1");

    server.reply(
        SocksReply::Succeeded,
        SocketAddr::from((Ipv6Addr::LOCALHOST, 9050)),
    );
    let mut out = Vec::new();
    server.take_output(&mut out);
    let mut expected_reply = vec![0x05, 0x00, 0x00, 0x04];
    expected_reply.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    expected_reply.extend_from_slice(&[0x23, 0x5a]);
    assert_eq!(out, expected_reply);
    assert!(server.is_open());
}

/// Greeting, sub-negotiation and request in one read, followed by stream data: the data is
/// not consumed, and all replies come out in order.
#[test]
fn test_pipelined_handshake_leaves_stream_data() {
    let handshake = b"\x05\x01\x02\x01\x01u\x00\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x16";
    let mut input = handshake.to_vec();
    input.extend_from_slice(b"SSH-2.0-x\r\n");
    let run = run(&input);
    assert_eq!(run.output, [0x05, 0x02, 0x01, 0x00]);
    let expected = ConnectRequest {
        target: TargetAddr::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
        port: 22,
        isolation: Some((b"u".to_vec(), Vec::new())),
    };
    assert_eq!(run.result, Ok(Some((expected, handshake.len()))));
}

#[test]
fn test_no_auth_chosen_when_username_password_not_offered() {
    // GSSAPI (1), a private method (0x80) and no-auth.
    let run = run(&[0x05, 0x03, 0x01, 0x80, 0x00]);
    assert_eq!(run.output, [0x05, 0x00]);
    assert_eq!(run.result, Ok(None));
}

#[test]
fn test_longest_auth_message_fits_the_buffer() {
    let mut input = vec![0x05, 0x01, 0x02, 0x01, 255];
    input.extend_from_slice(&[b'u'; 255]);
    input.push(255);
    input.extend_from_slice(&[b'p'; 255]);
    assert_eq!(input.len() - 3, MAX_MESSAGE_LEN);
    let domain = "d".repeat(255);
    input.extend_from_slice(&[0x05, 0x01, 0x00, 0x03, 255]);
    input.extend_from_slice(domain.as_bytes());
    input.extend_from_slice(&[0x00, 0x01]);
    let cuts: Vec<usize> = (1..input.len()).collect();
    let run = run_cut(&mut SocksServer::new(), &input, &cuts);
    assert_eq!(run.output, [0x05, 0x02, 0x01, 0x00]);
    let expected = ConnectRequest {
        target: TargetAddr::Domain(domain),
        port: 1,
        isolation: Some((vec![b'u'; 255], vec![b'p'; 255])),
    };
    assert_eq!(run.result, Ok(Some((expected, input.len()))));
}

// One test per rejection rule, with the exact reply bytes.

#[test]
fn test_reject_socks4() {
    // A SOCKS4 CONNECT: rejected on its first byte, nothing sent.
    let mut server = SocksServer::new();
    assert_eq!(
        server.handle(&[0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0x00]),
        Err(SocksError::BadVersion(4))
    );
    let mut out = Vec::new();
    server.take_output(&mut out);
    assert!(out.is_empty());
    assert_eq!(server.handle(&[0x05]), Err(SocksError::HandshakeOver));
}

#[test]
fn test_reject_no_acceptable_method() {
    let run1 = run(&[0x05, 0x01, 0x01]);
    assert_eq!(run1.result, Err(SocksError::NoAcceptableMethod));
    assert_eq!(run1.output, [0x05, 0xff]);
    // NMETHODS 0 offers nothing either.
    let run2 = run(&[0x05, 0x00]);
    assert_eq!(run2.result, Err(SocksError::NoAcceptableMethod));
    assert_eq!(run2.output, [0x05, 0xff]);
}

#[test]
fn test_reject_bad_auth_version() {
    // The client skipped the sub-negotiation and sent its request.
    let run = run(&[0x05, 0x01, 0x02, 0x05, 0x01, 0x00, 0x01]);
    assert_eq!(run.result, Err(SocksError::BadAuthVersion(5)));
    assert_eq!(run.output, [0x05, 0x02]);
}

#[test]
fn test_reject_empty_username() {
    let run = run(&[0x05, 0x01, 0x02, 0x01, 0x00, 0x00]);
    assert_eq!(run.result, Err(SocksError::EmptyUsername));
    assert_eq!(run.output, [0x05, 0x02, 0x01, 0x01]);
}

#[test]
fn test_reject_bad_request_version() {
    let run = run(&[0x05, 0x01, 0x00, 0x04, 0x01, 0x00, 0x50]);
    assert_eq!(run.result, Err(SocksError::BadVersion(4)));
    assert_eq!(run.output, [0x05, 0x00]);
}

#[test]
fn test_reject_bind_and_udp_associate() {
    for cmd in [2u8, 3] {
        let run = run(&[0x05, 0x01, 0x00, 0x05, cmd, 0x00, 0x01, 127, 0, 0, 1, 0, 80]);
        assert_eq!(run.result, Err(SocksError::UnsupportedCommand(cmd)));
        let mut expected = vec![0x05, 0x00];
        expected.extend(zero_reply(7));
        assert_eq!(run.output, expected);
    }
}

#[test]
fn test_reject_bad_reserved() {
    let run = run(&[
        0x05, 0x01, 0x00, 0x05, 0x01, 0x01, 0x01, 127, 0, 0, 1, 0, 80,
    ]);
    assert_eq!(run.result, Err(SocksError::BadReserved(1)));
    let mut expected = vec![0x05, 0x00];
    expected.extend(zero_reply(1));
    assert_eq!(run.output, expected);
}

#[test]
fn test_reject_unknown_address_type() {
    for atyp in [0u8, 2, 5, 0xff] {
        let run = run(&[0x05, 0x01, 0x00, 0x05, 0x01, 0x00, atyp, 1, 2, 3, 4, 0, 80]);
        assert_eq!(run.result, Err(SocksError::UnsupportedAddressType(atyp)));
        let mut expected = vec![0x05, 0x00];
        expected.extend(zero_reply(8));
        assert_eq!(run.output, expected);
    }
}

#[test]
fn test_reject_bad_domain() {
    let cases: [&[u8]; 4] = [
        b"\x00",             // empty
        b"\x03\xff\xfe\xfd", // not UTF-8
        b"\x04a\x00bc",      // NUL inside
        b"\x02\xc3\x28",     // invalid two-byte sequence
    ];
    for name in cases {
        let mut input = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03];
        input.extend_from_slice(name);
        input.extend_from_slice(&[0x00, 0x50]);
        let run = run(&input);
        assert_eq!(run.result, Err(SocksError::BadDomain), "{name:?}");
        let mut expected = vec![0x05, 0x00];
        expected.extend(zero_reply(1));
        assert_eq!(run.output, expected);
    }
    // A name cut inside a multi-byte character is not UTF-8...
    let mut input = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0x02];
    input.extend_from_slice(&"bü".as_bytes()[..2]);
    input.extend_from_slice(&[0x00, 0x50]);
    assert_eq!(run(&input).result, Err(SocksError::BadDomain));
    // ...while whole non-ASCII UTF-8 is accepted here (BEGIN's own rules apply later).
    let mut input = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0x07];
    input.extend_from_slice("bücher".as_bytes());
    input.extend_from_slice(&[0x00, 0x50]);
    let expected = ConnectRequest {
        target: TargetAddr::Domain("bücher".into()),
        port: 80,
        isolation: None,
    };
    assert_eq!(run(&input).result, Ok(Some((expected, input.len()))));
}

#[test]
fn test_reply_without_request_does_nothing() {
    let mut server = SocksServer::new();
    server.reply(SocksReply::Succeeded, unspecified());
    let mut out = Vec::new();
    server.take_output(&mut out);
    assert!(out.is_empty());
    assert!(!server.is_open());
    // Still negotiating normally.
    assert_eq!(
        server.handle(&[0x05, 0x01, 0x00]),
        Ok((3, SocksProgress::NeedMore))
    );

    // A second reply after the first is ignored.
    let mut server = SocksServer::new();
    let _ = run_cut(&mut server, &[5, 1, 0, 5, 1, 0, 1, 1, 2, 3, 4, 0, 1], &[]);
    server.reply(SocksReply::ConnectionRefused, unspecified());
    server.reply(SocksReply::Succeeded, unspecified());
    server.take_output(&mut out);
    assert_eq!(out, zero_reply(5));
    assert!(!server.is_open());
}

#[test]
fn test_handle_while_awaiting_reply() {
    let mut server = SocksServer::new();
    let _ = run_cut(&mut server, &[5, 1, 0, 5, 1, 0, 1, 1, 2, 3, 4, 0, 1], &[]);
    assert_eq!(server.handle(b"early"), Err(SocksError::HandshakeOver));
    // The pending request can still be answered.
    server.reply(SocksReply::Succeeded, unspecified());
    assert!(server.is_open());
}

#[test]
fn test_reply_codes() {
    let all = [
        SocksReply::Succeeded,
        SocksReply::GeneralFailure,
        SocksReply::NotAllowed,
        SocksReply::NetworkUnreachable,
        SocksReply::HostUnreachable,
        SocksReply::ConnectionRefused,
        SocksReply::TtlExpired,
        SocksReply::CommandNotSupported,
        SocksReply::AddressTypeNotSupported,
    ];
    let codes: Vec<u8> = all.iter().map(|r| r.code()).collect();
    assert_eq!(codes, (0..=8).collect::<Vec<u8>>());
}

/// C Tor's `connection_edge_end_reason_socks5_response` (src/core/or/reasons.c).
#[test]
fn test_from_end_reason() {
    use SocksReply::*;
    let table = [
        (EndReason::MISC, GeneralFailure),
        (EndReason::RESOLVEFAILED, HostUnreachable),
        (EndReason::CONNECTREFUSED, ConnectionRefused),
        (EndReason::EXITPOLICY, NotAllowed),
        (EndReason::DESTROY, GeneralFailure),
        (EndReason::DONE, ConnectionRefused),
        (EndReason::TIMEOUT, TtlExpired),
        (EndReason::NOROUTE, HostUnreachable),
        (EndReason::HIBERNATING, GeneralFailure),
        (EndReason::INTERNAL, GeneralFailure),
        (EndReason::RESOURCELIMIT, GeneralFailure),
        (EndReason::CONNRESET, ConnectionRefused),
        (EndReason::TORPROTOCOL, GeneralFailure),
        (EndReason(0), GeneralFailure),
        (EndReason(200), GeneralFailure),
    ];
    for (reason, reply) in table {
        assert_eq!(SocksReply::from_end_reason(reason), reply, "{reason}");
    }
}

/// Complete handshakes (with trailing stream data) and broken ones.
fn vectors() -> Vec<Vec<u8>> {
    let mut v6 = vec![5, 1, 0, 5, 1, 0, 4];
    v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v6.extend_from_slice(&[0x1f, 0x90, b'x']);
    vec![
        b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50GET".to_vec(),
        b"\x05\x02\x00\x02\x01\x04user\x06secret\x05\x01\x00\x03\x0bexample.com\x01\xbbdata"
            .to_vec(),
        v6,
        b"\x05\x01\x02\x01\x00\x00".to_vec(),
        b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50".to_vec(),
        b"\x05\x01\x00\x05\x01\x00\x03\x03a\x00b\x00\x50".to_vec(),
    ]
}

/// Cutting the input into three chunks anywhere (empty chunks included) changes nothing.
#[test]
fn test_every_split_gives_the_same_result() {
    for input in vectors() {
        let whole = run(&input);
        assert_ne!(whole.result, Ok(None));
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let split = run_cut(&mut SocksServer::new(), &input, &[i, j]);
                assert_eq!(split, whole, "cuts at {i} and {j} of {input:?}");
            }
        }
        let cuts: Vec<usize> = (1..input.len()).collect();
        assert_eq!(run_cut(&mut SocksServer::new(), &input, &cuts), whole);
    }
}

/// Sorted cut positions within `0..=len`.
fn cuts_for(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

fn arb_target() -> impl Strategy<Value = (u8, Vec<u8>, TargetAddr)> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| (1, a.to_vec(), TargetAddr::Ip(IpAddr::from(a)))),
        any::<[u8; 16]>().prop_map(|a| (4, a.to_vec(), TargetAddr::Ip(IpAddr::from(a)))),
        // At most 80 chars of at most 2 bytes: always fits the 255-byte length.
        "[a-z0-9.\u{e9}-]{1,80}".prop_map(|s| (3, s.clone().into_bytes(), TargetAddr::Domain(s))),
    ]
}

proptest! {
    // A fixed seed keeps the suite deterministic.
    #![proptest_config(proptest::test_runner::Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x50c5),
        ..proptest::test_runner::Config::default()
    })]

    /// Garbage never panics, never consumes more than given, keeps the buffer bounded, and
    /// the outcome does not depend on how it was cut. The prefixes reach every phase.
    #[test]
    fn prop_arbitrary_bytes(
        prefix in prop_oneof![
            Just(Vec::new()),
            Just(vec![5u8, 1, 0]),
            Just(vec![5u8, 1, 2]),
            Just(vec![5u8, 1, 0, 5, 1, 0]),
        ],
        tail in proptest::collection::vec(any::<u8>(), 0..1200),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut input = prefix;
        input.extend(tail);
        let whole = run(&input);
        if let Ok(Some((_, consumed))) = &whole.result {
            prop_assert!(*consumed <= input.len());
        }
        prop_assert!(whole.output.len() <= 26);
        let cuts = cuts_for(input.len(), &raw_cuts);
        prop_assert_eq!(run_cut(&mut SocksServer::new(), &input, &cuts), whole.clone());
        let every_byte: Vec<usize> = (1..input.len()).collect();
        prop_assert_eq!(run_cut(&mut SocksServer::new(), &input, &every_byte), whole);
    }

    /// Any well-formed handshake, cut anywhere, yields exactly its request, and the stream
    /// data after it is left unconsumed.
    #[test]
    fn prop_valid_handshake(
        with_auth in any::<bool>(),
        username in proptest::collection::vec(any::<u8>(), 1..=255),
        password in proptest::collection::vec(any::<u8>(), 0..=255),
        (atyp, addr, target) in arb_target(),
        port in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut input = Vec::new();
        let mut expected_output = Vec::new();
        if with_auth {
            input.extend_from_slice(&[5, 2, 0, 2, 1, username.len() as u8]);
            input.extend_from_slice(&username);
            input.push(password.len() as u8);
            input.extend_from_slice(&password);
            expected_output.extend_from_slice(&[5, 2, 1, 0]);
        } else {
            input.extend_from_slice(&[5, 1, 0]);
            expected_output.extend_from_slice(&[5, 0]);
        }
        input.extend_from_slice(&[5, 1, 0, atyp]);
        if atyp == 3 {
            input.push(addr.len() as u8);
        }
        input.extend_from_slice(&addr);
        input.extend_from_slice(&port.to_be_bytes());
        let handshake_len = input.len();
        input.extend_from_slice(&data);

        let cuts = cuts_for(input.len(), &raw_cuts);
        let run = run_cut(&mut SocksServer::new(), &input, &cuts);
        let expected = ConnectRequest {
            target,
            port,
            isolation: with_auth.then(|| (username.clone(), password.clone())),
        };
        prop_assert_eq!(run.output, expected_output);
        prop_assert_eq!(run.result, Ok(Some((expected, handshake_len))));
    }
}
