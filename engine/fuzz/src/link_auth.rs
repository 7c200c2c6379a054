//! The checks behind the `link_auth` target: the link-authentication cell bodies and Tor's
//! certificate formats on arbitrary bytes, certificate-chain verification on whatever
//! parses, and a relay's link handshake fed arbitrary handshake cells.

use std::time::{Duration, SystemTime};

use kistrel_engine::crypto::identity::{verify_certs, CertsRole};
use kistrel_engine::harness::{epoch, initiator_hello, relay_keys};
use kistrel_engine::relay::{PlainLinkAuth, Relay, RelayConfig};
use kistrel_engine::time::Instant;
use kistrel_engine::wire::{
    Auth3, AuthChallenge, Authenticate, Certs, ChanCmd, Ed25519Cert, RsaCrosscert, VarCell,
    MAX_VAR_PAYLOAD_LEN,
};
use rand::SeedableRng;

/// Names of the checks, by selector (`selector % CHECKS.len()`).
pub const CHECKS: [&str; 6] = [
    "certs",
    "auth_challenge",
    "authenticate",
    "ed25519_cert",
    "rsa_crosscert",
    "handshake",
];

fn cap(input: &[u8]) -> &[u8] {
    &input[..input.len().min(MAX_VAR_PAYLOAD_LEN)]
}

/// Runs check `selector % CHECKS.len()` on `input`.
pub fn check(selector: u8, input: &[u8]) {
    let input = cap(input);
    match usize::from(selector) % CHECKS.len() {
        0 => certs(input),
        1 => {
            if let Ok(ac) = AuthChallenge::parse(input) {
                let cell = ac.to_var_cell().expect("a parsed AUTH_CHALLENGE emits");
                assert_eq!(AuthChallenge::parse(&cell.payload).expect("re-parses"), ac);
                assert_eq!(&input[..cell.payload.len()], &cell.payload[..]);
            }
        }
        2 => {
            if let Ok(a) = Authenticate::parse(input) {
                let cell = a.to_var_cell().expect("a parsed AUTHENTICATE emits");
                assert_eq!(&input[..cell.payload.len()], &cell.payload[..]);
                if let Ok(auth) = Auth3::parse(a.auth) {
                    let signed = auth.fields.signed_bytes(&auth.rand);
                    assert_eq!(&auth.signed[..Auth3::SIGNED_LEN], &signed[..]);
                    assert_eq!(auth.signed.len() + 64, a.auth.len());
                }
            }
        }
        3 => {
            if let Ok(cert) = Ed25519Cert::parse(input) {
                let mut out = vec![0u8; cert.unsigned_len()];
                let n = cert.emit_unsigned(&mut out).expect("a parsed cert emits");
                // Unknown extensions that do not affect validation are ignored (tor-spec
                // cert-spec 2.2) and not re-emitted: with none, the re-encoding is exact;
                // otherwise the fixed fields (39 bytes) are, and only the known extension
                // is counted.
                let kept = u8::from(cert.signed_with.is_some());
                if cert.signed[39] == kept {
                    assert_eq!(
                        &out[..n],
                        cert.signed,
                        "re-encoding differs from the signed part"
                    );
                } else {
                    assert_eq!(&out[..39], &cert.signed[..39], "fixed fields differ");
                    assert_eq!(out[39], kept, "extension count of the re-encoding");
                }
            }
        }
        4 => {
            if let Ok(cc) = RsaCrosscert::parse(input) {
                let signed = RsaCrosscert::signed_part(&cc.ed_key, cc.expiration_hours);
                let again = RsaCrosscert::encode(&signed, cc.signature).expect("emits");
                assert_eq!(again, input);
            }
        }
        _ => handshake(input),
    }
}

/// CERTS: round trip, then verification in both roles at two times (never a panic; a
/// success must name the identities the certificates carry).
fn certs(input: &[u8]) {
    let Ok(certs) = Certs::parse(input) else {
        return;
    };
    let cell = certs.to_var_cell().expect("a parsed CERTS emits");
    assert_eq!(&input[..cell.payload.len()], &cell.payload[..]);
    // The C Tor vector's time, and the harness epoch (generated seeds).
    let times = [
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_601_000_000),
        epoch(),
    ];
    for now in times {
        for role in [
            CertsRole::Initiator,
            CertsRole::Responder {
                tls_cert_sha256: None,
            },
        ] {
            if let Ok(v) = verify_certs(&certs, role, now) {
                assert_eq!(v.auth_key.is_some(), role == CertsRole::Initiator);
            }
        }
    }
}

/// A relay's responder side fed VERSIONS, then the input as a stream of handshake cells
/// (4-byte circuit ids): it must not panic, must keep its invariants, and either opens,
/// waits or closes the channel with a typed error.
fn handshake(input: &[u8]) {
    let cfg = RelayConfig {
        keys: Some(relay_keys(7)),
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(cfg, rand_chacha::ChaCha12Rng::seed_from_u64(1));
    relay.set_wall_clock(epoch());
    let chan = relay.accept_channel(Instant::ZERO, ([10, 0, 0, 1], 1).into());
    let hello = initiator_hello();
    relay.handle_recv(
        Instant::ZERO,
        chan,
        &hello[..hello.len() - 514],
        &PlainLinkAuth,
    );
    // Split the input into var cells of the commands a handshake carries.
    let cmds = [
        ChanCmd::CERTS,
        ChanCmd::AUTHENTICATE,
        ChanCmd::VPADDING,
        ChanCmd::NETINFO,
    ];
    let mut bytes = Vec::new();
    for chunk in input.chunks(700) {
        let cmd = cmds[usize::from(chunk.first().copied().unwrap_or(0)) % cmds.len()];
        let payload = chunk.get(1..).unwrap_or_default().to_vec();
        if cmd == ChanCmd::NETINFO {
            let mut cell = kistrel_engine::wire::Cell::new(0, cmd);
            let n = payload.len().min(cell.body.len());
            cell.body[..n].copy_from_slice(&payload[..n]);
            cell.append_to(&mut bytes);
        } else {
            VarCell {
                circ_id: 0,
                cmd,
                payload,
            }
            .append_to(&mut bytes, 4);
        }
    }
    relay.handle_recv(Instant::ZERO, chan, &bytes, &PlainLinkAuth);
    relay.check_invariants().expect("invariants hold");
    let open = relay.channel_is_open(chan);
    let closed = relay.channel_count() == 0;
    assert!(!(open && closed));
}
