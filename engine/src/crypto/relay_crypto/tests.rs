use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};
use sha3::digest::{ExtendableOutput, Update, XofReader};

use super::*;
use crate::crypto::{ntor, KEY_MATERIAL_LEN};

mod tor1_vectors;

/// Tor's test_relaycrypt.c key material for hops 1..3 (`Df | Db | Kf | Kb | KH`, 92 bytes
/// each), padded to 92 bytes as in Arti's tor1.rs `testvec` (zydou/arti @ cadcd0d3).
const HOP_KEYS: [&[u8; KEY_MATERIAL_LEN]; 3] = [
    b"    'My public key is in this signed x509 object', said Tom assertively.      (N-PREG-VIRYL)",
    b"'Let's chart the pedal phlanges in the tomb', said Tom cryptographically.  (PELCG-GBR-TENCU)",
    b"     'Segmentation fault bugs don't _just happen_', said Tom seethingly.        (P-GUVAT-YL)",
];
/// Seed of the SHAKE-256 stream that fills the cells' data (same source).
const SHAKE_SEED: &[u8] = b"'You mean to tell me that there's a version of Sha-3 with no limit on the output length?', said Tom shakily.";

/// Builds the vector's 51 DATA cells (stream 1, length 498, data from SHAKE-256), sends each
/// from the client to hop 3 and compares the wire bytes with Tor's at the listed cells. The
/// three relays then peel the layers: only hop 3 recognizes, and the plaintext is intact.
#[test]
fn test_tor1_known_answer() {
    let keys = HOP_KEYS.map(KeyMaterial::from_bytes);
    let mut clients = keys.each_ref().map(ClientLayer::new);
    let mut relays = keys.each_ref().map(RelayLayer::new);
    let mut ciphers = CipherCache::new();
    let mut xof = sha3::Shake256::default();
    xof.update(SHAKE_SEED);
    let mut stream = xof.finalize_xof();

    let mut expected = tor1_vectors::CELLS.iter().peekable();
    for cell_no in 0..51 {
        let mut body = [0u8; BODY_LEN];
        body[0] = 2; // RELAY_DATA
        body[4] = 1; // stream id 1
        body[9..11].copy_from_slice(&498u16.to_be_bytes());
        stream.read(&mut body[11..]);
        let plain_before = body;

        clients[2].originate_forward(&mut body);
        let sealed_digest = clients[2].last_forward_digest();
        clients[1].encrypt_forward(&mut body);
        clients[0].encrypt_forward(&mut body);

        if let Some((_, hex_body)) = expected.next_if(|(n, _)| *n == cell_no) {
            assert_eq!(hex::encode_upper(body), *hex_body, "cell {cell_no}");
        }

        assert!(!relays[0].decrypt_forward(&mut ciphers, &mut body));
        assert!(!relays[1].decrypt_forward(&mut ciphers, &mut body));
        assert!(
            relays[2].decrypt_forward(&mut ciphers, &mut body),
            "cell {cell_no}"
        );
        assert_eq!(body[..DIGEST.start], plain_before[..DIGEST.start]);
        assert_eq!(body[DIGEST], sealed_digest[..4]);
        assert_eq!(body[DIGEST.end..], plain_before[DIGEST.end..]);
        assert_eq!(relays[2].last_forward_digest(), sealed_digest);
    }
    assert!(expected.next().is_none(), "not every vector was checked");
}

/// Independent check of one hop against the primitives: AES-128-CTR (IV 0) keystream and
/// SHA-1(Df | body with digest zeroed).
#[test]
fn test_single_hop_matches_primitives() {
    let keys = KeyMaterial::from_bytes(HOP_KEYS[0]);
    let mut client = ClientLayer::new(&keys);
    let mut body = [0u8; BODY_LEN];
    body[0] = 2;
    body[11..20].copy_from_slice(b"kistrel!!");
    let plain = body;
    client.originate_forward(&mut body);

    let d = Sha1::new_with_prefix(keys.df)
        .chain_update(plain)
        .finalize();
    assert_eq!(client.last_forward_digest()[..], d[..]);
    let mut expect = plain;
    expect[DIGEST].copy_from_slice(&d[..4]);
    // The reference CTR mode (the `ctr` crate), not kistrel's own keystream.
    use aes::cipher::{KeyIvInit, StreamCipher};
    let mut ctr = ctr::Ctr128BE::<aes::Aes128Enc>::new((&keys.kf).into(), &Default::default());
    ctr.apply_keystream(&mut expect);
    assert_eq!(body, expect);
}

/// A 3-hop circuit with ntor-derived keys: the client's three layers and the three relays.
struct Circuit {
    clients: [ClientLayer; 3],
    relays: [RelayLayer; 3],
    ciphers: CipherCache,
}

impl Circuit {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        let mut client_keys = Vec::new();
        let mut relay_keys = Vec::new();
        for hop in 0..3u8 {
            let id = [hop; 20];
            let onion = ntor::NtorKeypair::generate(rng);
            let (state, create) = ntor::client_create(rng, &id, &onion.public());
            let (created, server) = ntor::server_respond(rng, &id, &onion, &create).unwrap();
            client_keys.push(state.finish(&created).unwrap());
            relay_keys.push(server);
        }
        Circuit {
            clients: [0, 1, 2].map(|i| ClientLayer::new(&client_keys[i])),
            relays: [0, 1, 2].map(|i| RelayLayer::new(&relay_keys[i])),
            ciphers: CipherCache::new(),
        }
    }

    /// Client sends `body` to hop `target`; returns the index of the relay that recognized it.
    fn forward(&mut self, target: usize, body: &mut [u8; BODY_LEN]) -> Option<usize> {
        self.forward_mixed(target, body, [false; 3])
    }

    /// [`Circuit::forward`], each relay hop `h` with `from_slot[h]` removing its layer out of
    /// place as a forwarding relay does (`decrypt_forward_from`: the received body in, a
    /// fresh slot out; [`via_slot`]).
    fn forward_mixed(
        &mut self,
        target: usize,
        body: &mut [u8; BODY_LEN],
        from_slot: [bool; 3],
    ) -> Option<usize> {
        self.clients[target].originate_forward(body);
        for hop in (0..target).rev() {
            self.clients[hop].encrypt_forward(body);
        }
        (0..3).find(|&hop| {
            let (relay, ciphers) = (&mut self.relays[hop], &mut self.ciphers);
            if from_slot[hop] {
                via_slot(body, |src, slot| {
                    relay.decrypt_forward_from(ciphers, src, slot)
                })
            } else {
                relay.decrypt_forward(ciphers, body)
            }
        })
    }

    /// Relay `from` sends `body` to the client; returns the hop the client recognized it from.
    fn backward(&mut self, from: usize, body: &mut [u8; BODY_LEN]) -> Option<usize> {
        self.backward_mixed(from, body, [false; 3])
    }

    /// [`Circuit::backward`], the relays before `from` adding their layers out of place where
    /// `from_slot` says (`encrypt_backward_from`, as [`Circuit::forward_mixed`]).
    fn backward_mixed(
        &mut self,
        from: usize,
        body: &mut [u8; BODY_LEN],
        from_slot: [bool; 3],
    ) -> Option<usize> {
        self.relays[from].originate_backward(&mut self.ciphers, body);
        for hop in (0..from).rev() {
            let (relay, ciphers) = (&mut self.relays[hop], &mut self.ciphers);
            if from_slot[hop] {
                via_slot(body, |src, slot| {
                    relay.encrypt_backward_from(ciphers, src, slot)
                });
            } else {
                relay.encrypt_backward(ciphers, body);
            }
        }
        (0..3).find(|&hop| self.clients[hop].decrypt_backward(body))
    }
}

/// Runs an out-of-place form from `body` into a fresh slot filled with 0xa5 (so that every
/// byte must be written), then makes the slot the body.
fn via_slot<R>(
    body: &mut [u8; BODY_LEN],
    out_of_place: impl FnOnce(&[u8; BODY_LEN], &mut [u8; BODY_LEN]) -> R,
) -> R {
    let mut slot = [0xa5; BODY_LEN];
    let r = out_of_place(body, &mut slot);
    *body = slot;
    r
}

/// A relay body with a random payload and zeroed recognized / digest fields.
fn random_body(rng: &mut ChaCha8Rng) -> [u8; BODY_LEN] {
    let mut body = [0u8; BODY_LEN];
    rng.fill_bytes(&mut body);
    body[RECOGNIZED].fill(0);
    body[DIGEST].fill(0);
    body
}

fn assert_same_except_digest(got: &[u8; BODY_LEN], sent: &[u8; BODY_LEN]) {
    assert_eq!(got[..DIGEST.start], sent[..DIGEST.start]);
    assert_eq!(got[DIGEST.end..], sent[DIGEST.end..]);
}

#[test]
fn test_three_hops_each_target() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut circ = Circuit::new(&mut rng);
    for target in 0..3 {
        let sent = random_body(&mut rng);
        let mut body = sent;
        assert_eq!(circ.forward(target, &mut body), Some(target));
        assert_same_except_digest(&body, &sent);
        assert_eq!(
            circ.relays[target].last_forward_digest(),
            circ.clients[target].last_forward_digest()
        );
        assert_eq!(
            body[DIGEST],
            circ.clients[target].last_forward_digest()[..4]
        );

        let sent = random_body(&mut rng);
        let mut body = sent;
        assert_eq!(circ.backward(target, &mut body), Some(target));
        assert_same_except_digest(&body, &sent);
        assert_eq!(
            circ.relays[target].last_backward_digest(),
            circ.clients[target].last_backward_digest()
        );
    }
}

/// 1000 cells in random directions to random hops keep every keystream and digest in step;
/// the SENDME digests agree at both ends after every cell.
#[test]
fn test_thousand_cells_stay_in_step() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let mut circ = Circuit::new(&mut rng);
    for i in 0..1000 {
        let hop = rng.random_range(0..3);
        let sent = random_body(&mut rng);
        let mut body = sent;
        if rng.random::<bool>() {
            assert_eq!(circ.forward(hop, &mut body), Some(hop), "cell {i}");
        } else {
            assert_eq!(circ.backward(hop, &mut body), Some(hop), "cell {i}");
        }
        assert_same_except_digest(&body, &sent);
        for h in 0..3 {
            assert_eq!(
                circ.relays[h].last_forward_digest(),
                circ.clients[h].last_forward_digest()
            );
            assert_eq!(
                circ.relays[h].last_backward_digest(),
                circ.clients[h].last_backward_digest()
            );
        }
    }
}

/// The out-of-place forms a forwarding relay uses give the bytes, verdicts and digests of
/// the in-place ones: two twin circuits (same keys) carry the same cells, one in place, the
/// other with each relay hop's form drawn at random per cell (so the forms interleave on one
/// keystream), from an empty cipher cache (the first cells take the miss path).
#[test]
fn test_out_of_place_forms_match_in_place() {
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    let mut in_place = Circuit::new(&mut rng.clone());
    let mut mixed = Circuit::new(&mut rng);
    let mut out_of_place_hops = 0;
    for i in 0..400 {
        let hop = rng.random_range(0..3);
        let from_slot: [bool; 3] = rng.random();
        out_of_place_hops += from_slot[..hop].iter().filter(|&&f| f).count();
        let sent = random_body(&mut rng);
        let (mut a, mut b) = (sent, sent);
        if rng.random::<bool>() {
            assert_eq!(in_place.forward(hop, &mut a), Some(hop), "cell {i}");
            assert_eq!(
                mixed.forward_mixed(hop, &mut b, from_slot),
                Some(hop),
                "cell {i}"
            );
        } else {
            assert_eq!(in_place.backward(hop, &mut a), Some(hop), "cell {i}");
            assert_eq!(
                mixed.backward_mixed(hop, &mut b, from_slot),
                Some(hop),
                "cell {i}"
            );
        }
        assert_eq!(a, b, "cell {i}");
        assert_same_except_digest(&b, &sent);
        for h in 0..3 {
            assert_eq!(
                mixed.relays[h].last_forward_digest(),
                in_place.relays[h].last_forward_digest()
            );
            assert_eq!(
                mixed.relays[h].last_backward_digest(),
                mixed.clients[h].last_backward_digest()
            );
        }
    }
    // Relays before the target pass the cell on: those are the out-of-place calls that ran.
    assert!(out_of_place_hops > 100, "{out_of_place_hops}");
    assert!(mixed.ciphers.misses() > 0);
}

#[test]
fn test_flipped_bit_forward_is_unrecognized_and_state_kept() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    // Flip a bit in the data, in recognized, and in the digest field.
    for flip_at in [300usize, 1, 2, 5, 8, 508] {
        let mut circ = Circuit::new(&mut rng);
        let mut body = random_body(&mut rng);
        circ.clients[2].originate_forward(&mut body);
        circ.clients[1].encrypt_forward(&mut body);
        circ.clients[0].encrypt_forward(&mut body);
        body[flip_at] ^= 0x20;
        assert!(!circ.relays[0].decrypt_forward(&mut circ.ciphers, &mut body));
        assert!(!circ.relays[1].decrypt_forward(&mut circ.ciphers, &mut body));
        assert!(
            !circ.relays[2].decrypt_forward(&mut circ.ciphers, &mut body),
            "flip at {flip_at}"
        );
        assert_eq!(circ.relays[2].last_forward_digest(), [0; 20]);

        // The relay's digest did not advance, so it now disagrees with the client's: the next
        // intact cell to hop 3 is rejected too (Tor kills the circuit here).
        let mut next = random_body(&mut rng);
        assert_eq!(circ.forward(2, &mut next), None);
    }
}

#[test]
fn test_flipped_bit_backward_is_unrecognized() {
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    for flip_at in [0usize, 2, 6, 100, 508] {
        let mut circ = Circuit::new(&mut rng);
        let mut body = random_body(&mut rng);
        circ.relays[1].originate_backward(&mut circ.ciphers, &mut body);
        circ.relays[0].encrypt_backward(&mut circ.ciphers, &mut body);
        body[flip_at] ^= 0x01;
        assert!(!circ.clients[0].decrypt_backward(&mut body));
        assert!(
            !circ.clients[1].decrypt_backward(&mut body),
            "flip at {flip_at}"
        );
        assert!(!circ.clients[2].decrypt_backward(&mut body));
        assert_eq!(circ.clients[1].last_backward_digest(), [0; 20]);
    }
}

/// An unrecognized cell leaves the digest state alone: a cell for hop 3 passing hop 1 and a
/// forged cell at hop 3 with recognized == 0 but a wrong digest do not disturb later cells.
#[test]
fn test_unrecognized_cell_keeps_digest_state() {
    let mut rng = ChaCha8Rng::seed_from_u64(25);
    let mut circ = Circuit::new(&mut rng);
    // Encrypt a cell for hop 3 whose plaintext has recognized == 0 and a wrong digest.
    let mut forged = random_body(&mut rng);
    forged[DIGEST].copy_from_slice(&[1, 2, 3, 4]);
    for hop in (0..3).rev() {
        circ.clients[hop].encrypt_forward(&mut forged);
    }
    assert_eq!(
        (0..3).find(|&h| circ.relays[h].decrypt_forward(&mut circ.ciphers, &mut forged)),
        None
    );
    assert_eq!(forged[RECOGNIZED], [0, 0]);
    // The check zeroes the digest field to hash the body, and puts it back.
    assert_eq!(forged[DIGEST], [1, 2, 3, 4]);
    // The keystreams moved on together and the digests are untouched: normal cells still work.
    for target in [2, 0, 1] {
        let mut body = random_body(&mut rng);
        assert_eq!(circ.forward(target, &mut body), Some(target));
    }
}

#[test]
fn test_originate_zeroes_header_fields() {
    let keys = KeyMaterial::from_bytes(HOP_KEYS[1]);
    let mut client = ClientLayer::new(&keys);
    let mut relay = RelayLayer::new(&keys);
    let mut body = [0x5a; BODY_LEN];
    client.originate_forward(&mut body);
    assert!(relay.decrypt_forward(&mut CipherCache::new(), &mut body));
    assert_eq!(body[RECOGNIZED], [0, 0]);
    assert_eq!(body[0], 0x5a);
    assert_eq!(body[9..], [0x5a; BODY_LEN - 9][..]);
}

/// More layers than the cache has slots, used round robin: every direction keeps being
/// evicted and rebuilt from its key and position, and the keystream stays the one an
/// uncached cipher (the client's) produces, cell after cell.
#[test]
fn test_cache_misses_rebuild_the_keystream_where_it_was() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let n = CIPHER_CACHE_SLOTS + 9;
    let mut pairs: Vec<(ClientLayer, RelayLayer)> = (0..n)
        .map(|_| {
            let mut km = [0u8; KEY_MATERIAL_LEN];
            rng.fill_bytes(&mut km);
            let keys = KeyMaterial::from_bytes(&km);
            (ClientLayer::new(&keys), RelayLayer::new(&keys))
        })
        .collect();
    let mut ciphers = CipherCache::new();
    for round in 0..3 {
        for (i, (client, relay)) in pairs.iter_mut().enumerate() {
            // Not a multiple of 16 per cell: each rebuild starts inside a block.
            let mut body = [0u8; BODY_LEN];
            rng.fill_bytes(&mut body);
            body[RECOGNIZED].copy_from_slice(&[0xff, 0xff]);
            let plain = body;
            client.encrypt_forward(&mut body);
            assert!(!relay.decrypt_forward(&mut ciphers, &mut body));
            assert_eq!(body, plain, "layer {i}, round {round}");
        }
    }
    // More layers than slots: rounds after the first must miss (pigeonhole).
    assert!(ciphers.misses() > n as u64, "{}", ciphers.misses());
    // Forgetting a layer drops its entries; it rebuilds on its next cell.
    let (client, relay) = &mut pairs[0];
    relay.forget(&mut ciphers);
    let misses = ciphers.misses();
    let mut body = [7u8; BODY_LEN];
    client.encrypt_forward(&mut body);
    assert!(!relay.decrypt_forward(&mut ciphers, &mut body));
    assert_eq!((body, ciphers.misses()), ([7u8; BODY_LEN], misses + 1));
}

#[test]
fn test_debug_is_redacted() {
    let keys = KeyMaterial::from_bytes(HOP_KEYS[0]);
    assert_eq!(format!("{:?}", RelayLayer::new(&keys)), "RelayLayer { .. }");
    assert_eq!(
        format!("{:?}", ClientLayer::new(&keys)),
        "ClientLayer { .. }"
    );
}
