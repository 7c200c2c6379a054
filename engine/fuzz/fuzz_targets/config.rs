//! The `kistrel` tool's config parsers on arbitrary text; the first byte picks which:
//! 0 relay config (`RelayConf::parse`, then loading the key folder it names), 1 client
//! config (`ClientConf::parse`), 2 a `-o` override (`Override::parse`) applied to a valid
//! relay config. (Key and certificate bytes are fuzzed by the `link_auth` target.)
//!
//! The config parsers check that the files they name exist, so a fixed directory holds a
//! `directory.toml` and a key folder `keys`; configs are "read" from a path inside it.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kistrel::config::{ClientConf, Override, RelayConf};
use kistrel::keys::RelayKeyFolder;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

const RELAY: &str = "Nickname = \"relay1\"\nORPort = \"127.0.0.1:9001\"\nKeyDirectory = \"keys\"\n";

/// The directory the fuzzed configs live in (created once per process).
fn conf_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kistrel-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let keys = RelayKeyFolder::generate(
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
            std::time::SystemTime::now(),
            &Default::default(),
        )
        .expect("keys");
        keys.save(&dir.join("keys")).expect("key folder");
        std::fs::write(dir.join("directory.toml"), "version = 1\n").expect("directory file");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let file = conf_dir().join("fuzz.toml");
    match which % 3 {
        0 => {
            if let Ok(conf) = RelayConf::parse(&file, text, &[]) {
                assert!((1..=19).contains(&conf.nickname.len()));
                // Reads the key folder the config names (only `keys` or the directory
                // file exist, so this is a real key folder or a typed error).
                let _ = conf.engine_config();
            }
        }
        1 => {
            let _ = ClientConf::parse(&file, text, &[]);
        }
        _ => {
            if let Ok(o) = Override::parse(text) {
                assert!(!o.key.is_empty());
                let _ = RelayConf::parse(&file, RELAY, &[o]);
            }
        }
    }
});
