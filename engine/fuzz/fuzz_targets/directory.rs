//! `kistrel_pathsel::Directory::parse` on arbitrary text. A directory that parses must
//! write back (`to_toml`) to text that parses to an equal value, and path selection over it
//! (seeded RNG) must return distinct, in-range relays or a typed error, never panic.
#![no_main]

use kistrel_pathsel::{Directory, ExitTarget, PathConfig, PathSelector};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dir) = Directory::parse(text) else {
        return;
    };
    let again = Directory::parse(&dir.to_toml()).expect("to_toml output parses");
    assert_eq!(again, dir, "to_toml round trip");
    let n = dir.relays().len();
    let selector = PathSelector::new(&dir, PathConfig::default());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n as u64);
    let target = Some(ExitTarget {
        addr: Some("127.0.0.1".parse().expect("literal")),
        port: 80,
    });
    for t in [None, target] {
        if let Ok(path) = selector.select_path(&mut rng, t, None) {
            assert!(path.guard < n && path.middle < n && path.exit < n);
            assert!(path.guard != path.middle && path.middle != path.exit);
            assert!(path.guard != path.exit);
        }
    }
});
