//! Relays with real key folders (`kistrel relay`) and clients with hand-written directories
//! (`kistrel client`), for the link-authentication tests (tests/link_auth.rs,
//! tests/link_auth_sig.rs): each test picks which relays a client's directory lists and
//! under which identities.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use kistrel::keys::{KeygenOptions, RelayKeyFolder};
use kistrel_base::ExitPolicy;
use kistrel_pathsel::{Directory, Flag, RelayFlags, RelayInfo};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{free_port, wait_for, RelayProcess};

/// How long a relay or client may take to listen.
const WAIT: Duration = Duration::from_secs(30);

/// A `kistrel relay` process with its keys and log.
pub struct TestRelay {
    pub nick: String,
    pub addr: SocketAddr,
    pub keys: RelayKeyFolder,
    pub log: PathBuf,
    _process: RelayProcess,
}

impl TestRelay {
    /// Relay `R{n}` in `dir` with `keys` (an exit to 127.0.0.0/8 if `exit`), listening.
    pub fn start(dir: &Path, n: usize, keys: RelayKeyFolder, exit: bool) -> TestRelay {
        let nick = format!("R{n}");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let key_dir = dir.join(format!("{nick}-keys"));
        keys.save_new(&key_dir).expect("key folder");
        let policy = if exit {
            "ExitPolicy = [\"accept 127.0.0.0/8:*\"]\n"
        } else {
            ""
        };
        let config = dir.join(format!("{nick}.toml"));
        std::fs::write(
            &config,
            format!(
                "Nickname = \"{nick}\"\nORPort = \"{addr}\"\nKeyDirectory = \"{}\"\nWorkers = 1\n{policy}",
                key_dir.display()
            ),
        )
        .expect("relay config");
        let log = dir.join(format!("{nick}.log"));
        let process = RelayProcess::start(&config, &log, &[]);
        assert!(
            wait_for(WAIT, || TcpStream::connect(addr).is_ok()),
            "{nick} did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        TestRelay {
            nick,
            addr,
            keys,
            log,
            _process: process,
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A directory entry for it (with `flags`), optionally lying about its identities.
    pub fn entry(&self, flags: &[Flag], rsa: Option<[u8; 20]>, ed: Option<[u8; 32]>) -> RelayInfo {
        relay_info(
            &self.nick,
            self.addr,
            (
                rsa.unwrap_or_else(|| self.keys.rsa_id()),
                ed.unwrap_or_else(|| self.keys.ed_id()),
                self.keys.ntor_public(),
            ),
            flags,
        )
    }
}

/// A directory entry: `nick` at `addr` with (RSA id, Ed25519 id, ntor key) `ids`, Fast,
/// Running, Valid, Stable and `flags` (an exit to 127.0.0.0/8 with [`Flag::Exit`]).
pub fn relay_info(
    nick: &str,
    addr: SocketAddr,
    ids: ([u8; 20], [u8; 32], [u8; 32]),
    flags: &[Flag],
) -> RelayInfo {
    let mut all = vec![Flag::Fast, Flag::Running, Flag::Valid, Flag::Stable];
    all.extend_from_slice(flags);
    let exit = flags.contains(&Flag::Exit);
    RelayInfo {
        nickname: nick.to_owned(),
        identity: ids.0,
        ed25519_identity: ids.1,
        ntor_key: ids.2,
        address: addr,
        bandwidth: 1000,
        flags: RelayFlags::from_flags(&all),
        family: Vec::new(),
        exit_policy: if exit {
            "accept 127.0.0.0/8:*"
                .parse::<ExitPolicy>()
                .expect("policy")
        } else {
            ExitPolicy::default()
        },
    }
}

/// `kistrel client` with `relays` as its directory; killed on drop.
pub struct Client {
    child: Child,
    pub socks: SocketAddr,
    pub log: PathBuf,
}

impl Client {
    pub fn start(dir: &Path, name: &str, relays: Vec<RelayInfo>) -> Client {
        let dir = dir.join(name);
        std::fs::create_dir_all(dir.join("data")).expect("client dir");
        let directory = Directory::from_relays(relays, None).expect("directory");
        std::fs::write(dir.join("directory.toml"), directory.to_toml()).expect("directory");
        let socks: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let config = dir.join("client.toml");
        std::fs::write(
            &config,
            format!(
                "SocksPort = \"{socks}\"\nDirectoryFile = \"directory.toml\"\n\
                 DataDirectory = \"data\"\nEnforceDistinctSubnets = false\nWorkers = 1\n"
            ),
        )
        .expect("client config");
        let log = dir.join("client.log");
        let child = Command::new(env!("CARGO_BIN_EXE_kistrel"))
            .args(["-v", "client", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("client log"))
            .spawn()
            .expect("start kistrel client");
        assert!(
            wait_for(WAIT, || TcpStream::connect(socks).is_ok()),
            "client {name} did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Client { child, socks, log }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay key folder made from `seed` now, with `opts`.
pub fn keys(seed: u64, opts: &KeygenOptions) -> RelayKeyFolder {
    RelayKeyFolder::generate(
        &mut ChaCha8Rng::seed_from_u64(seed),
        SystemTime::now(),
        opts,
    )
    .expect("keys")
}
