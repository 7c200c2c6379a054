use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};

use super::*;

fn random_body(rng: &mut ChaCha8Rng) -> [u8; BODY_LEN] {
    let mut body = [0u8; BODY_LEN];
    rng.fill_bytes(&mut body);
    body
}

/// The reference: the `sha1` crate's hasher fed the same bodies, finalized on a clone.
struct Reference(Sha1);

impl Reference {
    fn seal(&mut self, body: &[u8; BODY_LEN]) -> [u8; 20] {
        let mut b = *body;
        b[RECOGNIZED].fill(0);
        b[DIGEST].fill(0);
        self.0.update(b);
        self.0.clone().finalize().into()
    }
}

#[test]
fn seals_match_the_sha1_crate_across_every_buffer_offset() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let seed: [u8; 20] = rng.random();
    let mut mine = RunningDigest::new(&seed);
    let mut reference = Reference(Sha1::new_with_prefix(seed));
    // 509 = 7 * 64 + 61: 64 bodies walk the partial block through all 64 offsets, so both
    // the one- and the two-block finalizations occur.
    for i in 0..130 {
        let mut body = random_body(&mut rng);
        let want = reference.seal(&body);
        mine.seal(&mut body);
        assert_eq!(mine.last, want, "body {i}");
        assert_eq!(body[RECOGNIZED], [0, 0]);
        assert_eq!(body[DIGEST], want[..4]);
    }
}

#[test]
fn seals_in_lanes_equal_seals_one_at_a_time() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // Seven directions: one pass of four lanes and one of three; each starts at a different
    // offset in its partial block (different numbers of sealed bodies before).
    let seeds: Vec<[u8; 20]> = (0..7).map(|_| rng.random()).collect();
    let mut lanes: Vec<RunningDigest> = seeds.iter().map(RunningDigest::new).collect();
    let mut alone: Vec<RunningDigest> = seeds.iter().map(RunningDigest::new).collect();
    for (i, (l, a)) in lanes.iter_mut().zip(&mut alone).enumerate() {
        for _ in 0..i * 3 {
            let body = random_body(&mut rng);
            l.seal(&mut body.clone());
            a.seal(&mut body.clone());
        }
    }
    for round in 0..40 {
        let bodies: Vec<[u8; BODY_LEN]> = (0..7).map(|_| random_body(&mut rng)).collect();
        let mut works: Vec<SealWork> = (0..7).map(|_| SealWork::new()).collect();
        let mut in_lanes = bodies.clone();
        for ((d, b), w) in lanes.iter().zip(&mut in_lanes).zip(&mut works) {
            zero_fields(b);
            d.prepare(b, w);
        }
        seal_lanes(&mut works);
        for ((d, b), w) in lanes.iter_mut().zip(&mut in_lanes).zip(&works) {
            d.finish_seal(w, b);
        }
        for (i, ((d, a), b)) in lanes.iter().zip(&mut alone).zip(&bodies).enumerate() {
            let mut single = *b;
            a.seal(&mut single);
            assert_eq!(d.last, a.last, "round {round}, direction {i}");
            assert_eq!(in_lanes[i], single, "round {round}, direction {i}");
        }
    }
}

#[test]
fn check_accepts_a_sealed_body_and_rejects_a_changed_one_without_advancing() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let seed: [u8; 20] = rng.random();
    let mut sender = RunningDigest::new(&seed);
    let mut receiver = RunningDigest::new(&seed);
    for i in 0..70 {
        let mut body = random_body(&mut rng);
        sender.seal(&mut body);
        let mut forged = body;
        forged[100 + i] ^= 1;
        assert!(!receiver.check(&forged), "body {i}: a changed byte passed");
        let mut not_ours = body;
        not_ours[RECOGNIZED.start] = 1;
        assert!(!receiver.check(&not_ours));
        // Neither failure advanced the state: the real body still checks.
        assert!(receiver.check(&body), "body {i}");
        assert_eq!(receiver.last, sender.last);
    }
}
