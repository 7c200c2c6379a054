use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

fn h<const N: usize>(s: &str) -> [u8; N] {
    let v = hex::decode(s).unwrap();
    v.try_into().unwrap()
}

/// Known-answer test. Vector from Arti, crates/tor-proto/src/crypto/handshake/ntor.rs, test
/// `testvec` (zydou/arti @ cadcd0d3, a mirror of gitlab.torproject.org/tpo/core/arti): fixed
/// b, x, y and ID; the expected CREATE2 / CREATED2 handshake data and the first 72 bytes of
/// key material (Df | Db | Kf | Kb).
#[test]
fn test_ntor_known_answer() {
    let b_sk: [u8; 32] = h("4820544f4c4420594f5520444f474954204b454550532048415050454e494e47");
    let b_pk: [u8; 32] = h("ccbc8541904d18af08753eae967874749e6149f873de937f57f8fd903a21c471");
    let x_sk: [u8; 32] = h("706f6461792069207075742e2e2e2e2e2e2e2e4a454c4c59206f6e2074686973");
    let y_sk: [u8; 32] = h("70686520737175697272656c2e2e2e2e2e2e2e2e686173206869732067616d65");
    let id: [u8; 20] = h("69546f6c64596f7541626f75745374616972732e");
    let client_hdata: [u8; 84] = h(concat!(
        "69546f6c64596f7541626f75745374616972732e",
        "ccbc8541904d18af08753eae967874749e6149f873de937f57f8fd903a21c471",
        "e65dfdbef8b2635837fe2cebc086a8096eae3213e6830dc407516083d412b078"
    ));
    let server_hdata: [u8; 64] = h(concat!(
        "390480a14362761d6aec1fea840f6e9e928fb2adb7b25c670be1045e35133a37",
        "1cbdf68b89923e1f85e8e18ee6e805ea333fe4849c790ffd2670bd80fec95cc8"
    ));
    let keys72: [u8; 72] = h(concat!(
        "0c62dee7f48893370d0ef896758d35729867beef1a5121df80e00f79ed349af3",
        "9b51cae125719182f19d932a667dae1afbf2e336e6910e7822223e763afad0a1",
        "3342157969dc6b79"
    ));

    let relay = NtorKeypair::from_secret(b_sk);
    assert_eq!(relay.public(), b_pk);
    assert_eq!(relay.secret_bytes(), b_sk);

    let (client, create) = client_create_with_secret(x_sk, &id, &b_pk);
    assert_eq!(create, client_hdata);

    let (created, server_keys) = server_respond_with_secret(y_sk, &id, &relay, &create).unwrap();
    assert_eq!(created, server_hdata);

    let client_keys = client.finish(&created).unwrap();
    assert_eq!(client_keys, server_keys);
    assert_eq!(&client_keys.to_bytes()[..72], &keys72[..]);
}

/// Independent recomputation of KH (beyond the 72 bytes in the vector) straight from the
/// spec: HKDF-SHA256(salt = t_key, ikm = secret_input, info = m_expand), bytes 72..92.
#[test]
fn test_ntor_kh_matches_spec_recomputation() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let relay = NtorKeypair::generate(&mut rng);
    let id = [0x42; 20];
    let x = [0x11; 32];
    let y = [0x22; 32];
    let (client, create) = client_create_with_secret(x, &id, &relay.public());
    let (created, server_keys) = server_respond_with_secret(y, &id, &relay, &create).unwrap();
    let client_keys = client.finish(&created).unwrap();
    assert_eq!(client_keys, server_keys);

    let xs = StaticSecret::from(x);
    let ys = StaticSecret::from(y);
    let bs = StaticSecret::from(relay.secret_bytes());
    let xp = PublicKey::from(&xs);
    let yp = PublicKey::from(&ys);
    let mut secret_input = Vec::new();
    secret_input.extend_from_slice(ys.diffie_hellman(&xp).as_bytes());
    secret_input.extend_from_slice(bs.diffie_hellman(&xp).as_bytes());
    secret_input.extend_from_slice(&id);
    secret_input.extend_from_slice(&relay.public());
    secret_input.extend_from_slice(xp.as_bytes());
    secret_input.extend_from_slice(yp.as_bytes());
    secret_input.extend_from_slice(b"ntor-curve25519-sha256-1");
    let mut okm = [0u8; 92];
    Hkdf::<Sha256>::new(Some(b"ntor-curve25519-sha256-1:key_extract"), &secret_input)
        .expand(b"ntor-curve25519-sha256-1:key_expand", &mut okm)
        .unwrap();
    assert_eq!(server_keys.to_bytes(), okm);
    assert_eq!(&created[..32], yp.as_bytes());
}

#[test]
fn test_ntor_agreement_random() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let relay = NtorKeypair::generate(&mut rng);
    let id = [9u8; 20];
    for _ in 0..8 {
        let (client, create) = client_create(&mut rng, &id, &relay.public());
        let (created, server_keys) = server_respond(&mut rng, &id, &relay, &create).unwrap();
        let client_keys = client.finish(&created).unwrap();
        assert_eq!(client_keys, server_keys);
    }
}

#[test]
fn test_ntor_keypair_roundtrip_and_debug() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let k = NtorKeypair::generate(&mut rng);
    let k2 = NtorKeypair::from_secret(k.secret_bytes());
    assert_eq!(k.public(), k2.public());
    let shown = format!("{k:?}");
    assert!(!shown.contains(&format!("{:?}", k.secret_bytes())));
    // Two generated pairs differ.
    assert_ne!(NtorKeypair::generate(&mut rng).public(), k.public());
}

#[test]
fn test_ntor_rejects_wrong_id() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let relay = NtorKeypair::generate(&mut rng);
    let (_, create) = client_create(&mut rng, &[13; 20], &relay.public());
    let err = server_respond(&mut rng, &[12; 20], &relay, &create).unwrap_err();
    assert_eq!(err, HandshakeError::UnknownRelay);
}

#[test]
fn test_ntor_rejects_wrong_onion_key() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let relay = NtorKeypair::generate(&mut rng);
    let other = NtorKeypair::generate(&mut rng);
    let (_, create) = client_create(&mut rng, &[12; 20], &other.public());
    let err = server_respond(&mut rng, &[12; 20], &relay, &create).unwrap_err();
    assert_eq!(err, HandshakeError::UnknownRelay);
}

#[test]
fn test_ntor_rejects_tampered_auth_and_y() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let relay = NtorKeypair::generate(&mut rng);
    let id = [12; 20];
    for flip_at in [0usize, 31, 32, 60, 63] {
        let (client, create) = client_create(&mut rng, &id, &relay.public());
        let (mut created, _) = server_respond(&mut rng, &id, &relay, &create).unwrap();
        created[flip_at] ^= 0x04;
        assert_eq!(
            client.finish(&created).unwrap_err(),
            HandshakeError::BadAuth,
            "flip at {flip_at}"
        );
    }
}

#[test]
fn test_ntor_client_detects_wrong_relay_key() {
    // A relay with another onion key that skips the B check (as C Tor answers with a wrong
    // key, docs/spec/wire.md): the client must see an AUTH mismatch.
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let published = NtorKeypair::generate(&mut rng);
    let impostor = NtorKeypair::generate(&mut rng);
    let id = [1; 20];
    let (client, mut create) = client_create(&mut rng, &id, &published.public());
    create[20..52].copy_from_slice(&impostor.public());
    let (created, _) = server_respond(&mut rng, &id, &impostor, &create).unwrap();
    assert_eq!(
        client.finish(&created).unwrap_err(),
        HandshakeError::BadAuth
    );
}

#[test]
fn test_ntor_rejects_bad_lengths() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let relay = NtorKeypair::generate(&mut rng);
    let id = [3; 20];
    let (client, create) = client_create(&mut rng, &id, &relay.public());
    for len in [0, 83, 85] {
        let mut data = vec![0u8; len];
        let n = len.min(84);
        data[..n].copy_from_slice(&create[..n]);
        assert_eq!(
            server_respond(&mut rng, &id, &relay, &data).unwrap_err(),
            HandshakeError::BadLength
        );
    }
    let (created, _) = server_respond(&mut rng, &id, &relay, &create).unwrap();
    assert_eq!(
        client.finish(&created[..63]).unwrap_err(),
        HandshakeError::BadLength
    );
}

#[test]
fn test_ntor_server_rejects_low_order_x() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let relay = NtorKeypair::generate(&mut rng);
    let id = [4; 20];
    // u = 0 (order 2) and u = 1 (order 4): clamped scalars are multiples of 8, so EXP gives 0.
    let mut one = [0u8; 32];
    one[0] = 1;
    for x in [[0u8; 32], one] {
        let mut create = [0u8; CLIENT_HDATA_LEN];
        create[..20].copy_from_slice(&id);
        create[20..52].copy_from_slice(&relay.public());
        create[52..].copy_from_slice(&x);
        assert_eq!(
            server_respond(&mut rng, &id, &relay, &create).unwrap_err(),
            HandshakeError::ZeroSharedSecret
        );
    }
}

#[test]
fn test_ntor_client_rejects_zero_y() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let relay = NtorKeypair::generate(&mut rng);
    let (client, _) = client_create(&mut rng, &[5; 20], &relay.public());
    let created = [0u8; SERVER_HDATA_LEN];
    assert_eq!(
        client.finish(&created).unwrap_err(),
        HandshakeError::ZeroSharedSecret
    );
}

proptest::proptest! {
    // A fixed seed keeps the suite deterministic.
    #![proptest_config(proptest::test_runner::Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(31),
        ..proptest::test_runner::Config::default()
    })]

    /// Arbitrary bytes from a peer give a typed error (or, for a well-formed CREATE2 to us,
    /// keys), never a panic.
    #[test]
    fn prop_server_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..100), ours in proptest::bool::ANY) {
        let relay = NtorKeypair::from_secret([7; 32]);
        let id = [8; 20];
        let mut data = data;
        if ours && data.len() == CLIENT_HDATA_LEN {
            data[..20].copy_from_slice(&id);
            data[20..52].copy_from_slice(&relay.public());
        }
        let res = server_respond_with_secret([9; 32], &id, &relay, &data);
        if data.len() != CLIENT_HDATA_LEN {
            proptest::prop_assert_eq!(res.unwrap_err(), HandshakeError::BadLength);
        } else if !ours {
            proptest::prop_assert_eq!(res.unwrap_err(), HandshakeError::UnknownRelay);
        }
    }

    #[test]
    fn prop_client_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
        let relay = NtorKeypair::from_secret([7; 32]);
        let (client, _) = client_create_with_secret([3; 32], &[8; 20], &relay.public());
        let res = client.finish(&data);
        if data.len() != SERVER_HDATA_LEN {
            proptest::prop_assert_eq!(res.unwrap_err(), HandshakeError::BadLength);
        } else {
            // Random bytes are never a valid proof.
            proptest::prop_assert!(res.is_err());
        }
    }
}
