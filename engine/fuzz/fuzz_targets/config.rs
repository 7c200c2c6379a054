//! The `kistrel` tool's config parsers on arbitrary text; the first byte picks which:
//! 0 relay config (`RelayConf::parse`), 1 client config (`ClientConf::parse`), 2 a `-o`
//! override (`Override::parse`) applied to a valid relay config, 3 a relay key file
//! (`RelayKeyFile::parse`, which must write back to an equal value).
//!
//! The config parsers check that the files they name exist, so a fixed directory holds a
//! `directory.toml` and a `keys.toml`; configs are "read" from a path inside it.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kistrel::config::{ClientConf, Override, RelayConf};
use kistrel::keys::RelayKeyFile;
use libfuzzer_sys::fuzz_target;

const KEYS: &str = "identity = \"EC1E9280623EF90004A915A6FB75CDE2C645D7D4\"\n\
                    ntor_secret = \"j4JtiVcDhXy9CWU5YNAX6DPxTvCdBwRZ1NE1iQ+zSYY=\"\n";
const RELAY: &str = "Nickname = \"relay1\"\nORPort = \"127.0.0.1:9001\"\nKeyFile = \"keys.toml\"\n";

/// The directory the fuzzed configs live in (created once per process).
fn conf_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kistrel-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("keys.toml"), KEYS).expect("keys file");
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
    match which % 4 {
        0 => {
            if let Ok(conf) = RelayConf::parse(&file, text, &[]) {
                assert!((1..=19).contains(&conf.nickname.len()));
                // Reads the key file the config names (only `keys.toml` or the
                // directory file exist, so this is a real key file or a typed error).
                let _ = conf.engine_config();
            }
        }
        1 => {
            let _ = ClientConf::parse(&file, text, &[]);
        }
        2 => {
            if let Ok(o) = Override::parse(text) {
                assert!(!o.key.is_empty());
                let _ = RelayConf::parse(&file, RELAY, &[o]);
            }
        }
        _ => {
            if let Ok(keys) = RelayKeyFile::parse(&file, text) {
                let again = RelayKeyFile::parse(&file, &keys.to_toml()).expect("to_toml parses");
                assert_eq!(again.relay_keys().identity, keys.relay_keys().identity);
                assert_eq!(
                    again.relay_keys().ntor.public(),
                    keys.relay_keys().ntor.public()
                );
            }
        }
    }
});
