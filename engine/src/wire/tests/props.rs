//! Property tests: parse(emit(x)) == x for every message, cells survive the decoder however
//! the stream is split, and arbitrary bytes give cells or a typed error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use proptest::collection::vec;
use proptest::prelude::*;

use super::super::*;

/// Emit into a fresh buffer of `cap` bytes and parse back what was written.
macro_rules! roundtrip {
    ($ty:ident, $value:expr, $cap:expr) => {{
        let value = $value;
        let mut buf = vec![0u8; $cap];
        let len = value.emit(&mut buf).unwrap();
        prop_assert_eq!($ty::parse(&buf[..len]).unwrap(), value);
    }};
}

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ]
}

fn specified_ip() -> impl Strategy<Value = IpAddr> {
    ip_addr().prop_filter("unspecified means none", |ip| !ip.is_unspecified())
}

fn link_spec() -> impl Strategy<Value = LinkSpec> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(o, p)| LinkSpec::Ipv4(SocketAddrV4::new(o.into(), p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(o, p)| LinkSpec::Ipv6(SocketAddrV6::new(
            o.into(),
            p,
            0,
            0
        ))),
        any::<[u8; 20]>().prop_map(LinkSpec::LegacyId),
        any::<[u8; 32]>().prop_map(LinkSpec::Ed25519),
    ]
}

/// Hosts BEGIN accepts: DNS-ish names, IPv4 text, IPv6 text (bracketed on the wire).
fn begin_host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9.-]{1,60}",
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        any::<[u8; 16]>().prop_map(|o| Ipv6Addr::from(o).to_string()),
    ]
}

proptest! {
    #[test]
    fn versions_roundtrip(versions in vec(any::<u16>(), 1..200)) {
        roundtrip!(Versions, Versions { versions }, 400);
    }

    #[test]
    fn netinfo_roundtrip(
        time in any::<u32>(),
        other_addr in proptest::option::of(specified_ip()),
        my_addrs in vec(ip_addr(), 0..20),
    ) {
        roundtrip!(Netinfo, Netinfo { time, other_addr, my_addrs }, CELL_BODY_LEN);
    }

    #[test]
    fn create2_roundtrip(htype in any::<u16>(), hdata in vec(any::<u8>(), 0..=505)) {
        roundtrip!(Create2, Create2 { htype, hdata: &hdata }, CELL_BODY_LEN);
    }

    #[test]
    fn created2_roundtrip(hdata in vec(any::<u8>(), 0..=507)) {
        roundtrip!(Created2, Created2 { hdata: &hdata }, CELL_BODY_LEN);
    }

    #[test]
    fn fast_and_destroy_roundtrip(x in any::<[u8; 20]>(), kh in any::<[u8; 20]>(), r in any::<u8>()) {
        roundtrip!(CreateFast, CreateFast { x }, CELL_BODY_LEN);
        roundtrip!(CreatedFast, CreatedFast { y: x, kh }, CELL_BODY_LEN);
        roundtrip!(Destroy, Destroy { reason: DestroyReason(r) }, CELL_BODY_LEN);
    }

    #[test]
    fn begin_roundtrip(host in begin_host(), port in 1..=u16::MAX, flags in any::<u32>()) {
        roundtrip!(Begin, Begin { host: &host, port, flags }, RELAY_DATA_LEN);
    }

    #[test]
    fn connected_roundtrip(addr in proptest::option::of((specified_ip(), any::<u32>()))) {
        roundtrip!(Connected, Connected { addr }, RELAY_DATA_LEN);
    }

    #[test]
    fn small_relay_msgs_roundtrip(
        reason in any::<u8>(),
        digest in proptest::option::of(any::<[u8; 20]>()),
    ) {
        roundtrip!(End, End { reason: EndReason(reason) }, RELAY_DATA_LEN);
        roundtrip!(Sendme, Sendme { digest }, RELAY_DATA_LEN);
        roundtrip!(Truncated, Truncated { reason: DestroyReason(reason) }, RELAY_DATA_LEN);
    }

    #[test]
    fn extend2_roundtrip(
        link_specs in vec(link_spec(), 0..6),
        htype in any::<u16>(),
        hdata in vec(any::<u8>(), 0..200),
    ) {
        roundtrip!(Extend2, Extend2 { link_specs, htype, hdata: &hdata }, RELAY_DATA_LEN);
    }

    #[test]
    fn extended2_roundtrip(hdata in vec(any::<u8>(), 0..=496)) {
        roundtrip!(Extended2, Extended2 { hdata: &hdata }, RELAY_DATA_LEN);
    }

    #[test]
    fn relay_cell_roundtrip(
        cmd in any::<u8>(),
        stream in any::<u16>(),
        data in vec(any::<u8>(), 0..=RELAY_DATA_LEN),
        seed in any::<u64>(),
    ) {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut body = [0; CELL_BODY_LEN];
        emit_relay_cell(&mut body, RelayCmd(cmd), StreamId::new(stream), &data, &mut rng).unwrap();
        let view = RelayCellView::new_checked(&body[..]).unwrap();
        prop_assert_eq!(view.cmd(), RelayCmd(cmd));
        prop_assert_eq!(view.stream_id(), StreamId::new(stream));
        prop_assert_eq!(view.recognized(), 0);
        prop_assert_eq!(view.digest(), [0; 4]);
        prop_assert_eq!(view.data(), &data[..]);
    }
}

/// A cell that may follow VERSIONS on a v4/v5 link.
fn chan_cell() -> impl Strategy<Value = ChanCell> {
    prop_oneof![
        (any::<u32>(), 0u8..128, vec(any::<u8>(), CELL_BODY_LEN))
            .prop_filter("not VERSIONS", |(_, cmd, _)| *cmd != ChanCmd::VERSIONS.0)
            .prop_map(|(circ_id, cmd, body)| {
                let mut cell = Cell::new(circ_id, ChanCmd(cmd));
                cell.body.copy_from_slice(&body);
                ChanCell::Fixed(cell)
            }),
        (any::<u32>(), 128u8..=255, vec(any::<u8>(), 0..1200)).prop_map(
            |(circ_id, cmd, payload)| ChanCell::Var(VarCell {
                circ_id,
                cmd: ChanCmd(cmd),
                payload,
            })
        ),
    ]
}

/// Feed `bytes` in chunks of the given sizes (cycled); collect cells until the first error.
fn feed(decoder: &mut CellDecoder, bytes: &[u8], sizes: &[usize]) -> Result<Vec<ChanCell>> {
    let mut cells = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(rest.len());
        i += 1;
        let (mut chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        while !chunk.is_empty() {
            let (used, cell) = decoder.decode(chunk)?;
            assert!(used <= chunk.len());
            assert!(cell.is_some() || used == chunk.len());
            assert!(decoder.buffered_len() <= 7 + MAX_VAR_PAYLOAD_LEN);
            chunk = &chunk[used..];
            cells.extend(cell);
        }
    }
    Ok(cells)
}

proptest! {
    #[test]
    fn cells_survive_decoder(
        versions in vec(any::<u16>(), 1..8),
        cells in vec(chan_cell(), 0..12),
        sizes in vec(1usize..1500, 1..10),
    ) {
        let first = Versions { versions }.to_var_cell();
        let mut bytes = Vec::new();
        first.append_to(&mut bytes, 2);
        for cell in &cells {
            match cell {
                ChanCell::Fixed(c) => c.append_to(&mut bytes),
                ChanCell::Var(c) => c.append_to(&mut bytes, 4),
            }
        }
        let mut decoder = CellDecoder::new();
        let got = feed(&mut decoder, &bytes, &sizes).unwrap();
        prop_assert_eq!(&got[0], &ChanCell::Var(first));
        prop_assert_eq!(&got[1..], &cells[..]);
        prop_assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn decoder_never_panics(
        prefix in any::<bool>(),
        bytes in vec(any::<u8>(), 0..6000),
        sizes in vec(1usize..3000, 1..10),
    ) {
        // Half the inputs start with a valid VERSIONS so the fuzz reaches the 4-byte layout.
        let mut input = if prefix { vec![0, 0, 7, 0, 2, 0, 5] } else { Vec::new() };
        input.extend_from_slice(&bytes);
        let mut decoder = CellDecoder::new();
        if let Err(err) = feed(&mut decoder, &input, &sizes) {
            prop_assert_eq!(decoder.decode(&[0; 600]).unwrap_err(), err);
            prop_assert_eq!(decoder.buffered_len(), 0);
        }
    }

    #[test]
    fn parsers_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let _ = Versions::parse(&bytes);
        let _ = Netinfo::parse(&bytes);
        let _ = Create2::parse(&bytes);
        let _ = Created2::parse(&bytes);
        let _ = CreateFast::parse(&bytes);
        let _ = CreatedFast::parse(&bytes);
        let _ = Destroy::parse(&bytes);
        let _ = Begin::parse(&bytes);
        let _ = Connected::parse(&bytes);
        let _ = End::parse(&bytes);
        let _ = Sendme::parse(&bytes);
        let _ = Extend2::parse(&bytes);
        let _ = Extended2::parse(&bytes);
        let _ = Truncated::parse(&bytes);
        let _ = Cell::parse(&bytes);
        let _ = VarCellView::new_checked(&bytes[..], 4).map(|v| VarCell::from_view(&v));
        if let Ok(view) = RelayCellView::new_checked(&bytes[..]) {
            prop_assert!(view.data().len() <= RELAY_DATA_LEN);
            prop_assert_eq!(view.data().len(), usize::from(view.length()));
        }
    }
}

proptest! {
    /// CERTS: any list of certificates emits and parses back; arbitrary bytes parse or give
    /// a typed error, and what parses re-encodes to the bytes it was read from.
    #[test]
    fn certs_round_trip(entries in vec((any::<u8>(), vec(any::<u8>(), 0..300)), 0..8)) {
        let certs = Certs {
            certs: entries.iter().map(|(t, c)| (CertType(*t), &c[..])).collect(),
        };
        let cell = certs.to_var_cell().unwrap();
        prop_assert_eq!(Certs::parse(&cell.payload).unwrap(), certs);
    }

    #[test]
    fn link_auth_parsers_take_garbage(bytes in vec(any::<u8>(), 0..600)) {
        if let Ok(certs) = Certs::parse(&bytes) {
            let cell = certs.to_var_cell().unwrap();
            prop_assert_eq!(&bytes[..cell.payload.len()], &cell.payload[..]);
        }
        if let Ok(ac) = AuthChallenge::parse(&bytes) {
            let cell = ac.to_var_cell().unwrap();
            prop_assert_eq!(&bytes[..cell.payload.len()], &cell.payload[..]);
        }
        if let Ok(a) = Authenticate::parse(&bytes) {
            if let Ok(auth) = Auth3::parse(a.auth) {
                let signed = auth.fields.signed_bytes(&auth.rand);
                prop_assert_eq!(&auth.signed[..Auth3::SIGNED_LEN], &signed[..]);
            }
        }
        if let Ok(cert) = Ed25519Cert::parse(&bytes) {
            let mut out = vec![0u8; cert.unsigned_len()];
            let n = cert.emit_unsigned(&mut out).unwrap();
            prop_assert_eq!(&out[..n], cert.signed);
        }
        if let Ok(cc) = RsaCrosscert::parse(&bytes) {
            let signed = RsaCrosscert::signed_part(&cc.ed_key, cc.expiration_hours);
            prop_assert_eq!(RsaCrosscert::encode(&signed, cc.signature).unwrap(), bytes);
        }
    }

    /// AUTH_CHALLENGE round trip for any challenge and method list.
    #[test]
    fn auth_challenge_round_trip(challenge in any::<[u8; 32]>(), methods in vec(any::<u16>(), 0..20)) {
        let ac = AuthChallenge { challenge, methods };
        let cell = ac.to_var_cell().unwrap();
        prop_assert_eq!(AuthChallenge::parse(&cell.payload).unwrap(), ac);
    }
}
