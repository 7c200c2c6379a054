//! Link authentication over real sockets: relays with real key folders (`kistrel relay`),
//! clients with hand-written directories (`kistrel client`), curl through SOCKS.
//!
//! Two clients share guard R1 and exit R3. Client A's directory lists only good relays and
//! downloads through R1-R2-R3 while client B's directory offers as middles only relays its
//! guard must refuse: R4 under another RSA identity, R5 under another Ed25519 identity, R6
//! whose signing certificate has expired. R1 closes each bad channel with a logged reason
//! (expected vs got), and A's download finishes intact through the same guard.
#![cfg(target_os = "linux")]

#[macro_use]
mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use kistrel::keys::{KeygenOptions, RelayKeyFolder};
use kistrel_base::ExitPolicy;
use kistrel_pathsel::{Directory, Flag, RelayFlags, RelayInfo};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use support::{fetch_at, serial, skip_without_tools, wait_for, Http, RelayProcess, MIB};

const WAIT: Duration = Duration::from_secs(30);

struct TestRelay {
    nick: String,
    addr: SocketAddr,
    keys: RelayKeyFolder,
    log: PathBuf,
    _process: RelayProcess,
}

fn start_relay(dir: &Path, n: usize, keys: RelayKeyFolder, exit: bool) -> TestRelay {
    let nick = format!("R{n}");
    let addr: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .expect("addr");
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

/// A directory entry for `r` (with `flags`), optionally lying about its identities.
fn entry(r: &TestRelay, flags: &[Flag], rsa: Option<[u8; 20]>, ed: Option<[u8; 32]>) -> RelayInfo {
    let mut all = vec![Flag::Fast, Flag::Running, Flag::Valid, Flag::Stable];
    all.extend_from_slice(flags);
    let exit = flags.contains(&Flag::Exit);
    RelayInfo {
        nickname: r.nick.clone(),
        identity: rsa.unwrap_or_else(|| r.keys.rsa_id()),
        ed25519_identity: ed.unwrap_or_else(|| r.keys.ed_id()),
        ntor_key: r.keys.ntor_public(),
        address: r.addr,
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
struct Client {
    child: Child,
    socks: SocketAddr,
    log: PathBuf,
}

impl Client {
    fn start(dir: &Path, name: &str, relays: Vec<RelayInfo>) -> Client {
        let dir = dir.join(name);
        std::fs::create_dir_all(dir.join("data")).expect("client dir");
        let directory = Directory::from_relays(relays, None).expect("directory");
        std::fs::write(dir.join("directory.toml"), directory.to_toml()).expect("directory");
        let socks: SocketAddr = format!("127.0.0.1:{}", support::free_port())
            .parse()
            .expect("addr");
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
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keys(seed: u64, opts: &KeygenOptions) -> RelayKeyFolder {
    RelayKeyFolder::generate(
        &mut ChaCha8Rng::seed_from_u64(seed),
        SystemTime::now(),
        opts,
    )
    .expect("keys")
}

#[test]
fn wrong_identities_and_an_expired_certificate_close_the_link_while_another_circuit_fetches() {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let good = KeygenOptions::default();
    // Made 40 days ago with the default 30-day signing certificate: expired.
    let expired = KeygenOptions {
        backdate: Duration::from_secs(40 * 86_400),
        ..KeygenOptions::default()
    };
    let r: Vec<TestRelay> = (1..=6)
        .map(|n| {
            let opts = if n == 6 { &expired } else { &good };
            start_relay(dir, n, keys(100 + n as u64, opts), n == 3)
        })
        .collect();
    let (guard, middle, exit) = (&r[0], &r[1], &r[2]);
    let wrong_rsa = [0xAB; 20];
    let wrong_ed = [0xCD; 32];

    let a = Client::start(
        dir,
        "a",
        vec![
            entry(guard, &[Flag::Guard], None, None),
            entry(middle, &[], None, None),
            entry(exit, &[Flag::Exit], None, None),
        ],
    );
    let b = Client::start(
        dir,
        "b",
        vec![
            entry(guard, &[Flag::Guard], None, None),
            entry(&r[3], &[], Some(wrong_rsa), None),
            entry(&r[4], &[], None, Some(wrong_ed)),
            entry(&r[5], &[], None, None),
            entry(exit, &[Flag::Exit], None, None),
        ],
    );

    // A's download, rate-limited so it spans B's attempts.
    let http = Http::start(16 * MIB, 41);
    let (url, socks_a, out_a) = (http.url(), a.socks, dir.join("got-a"));
    let download = std::thread::spawn(move || fetch_at(socks_a, "a", &url, &out_a, Some("4M")));

    let reasons = [
        format!(
            "wrong RSA identity: expected {}, got {}",
            hex::encode_upper(wrong_rsa),
            hex::encode_upper(r[3].keys.rsa_id())
        ),
        format!(
            "wrong Ed25519 identity: expected {}, got {}",
            hex::encode_upper(wrong_ed),
            hex::encode_upper(r[4].keys.ed_id())
        ),
        "bad CERTS cell: certificate of type 4 has expired".to_owned(),
    ];
    let guard_log = || std::fs::read_to_string(&guard.log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut attempt = 0;
    while !reasons.iter().all(|why| guard_log().contains(why.as_str())) {
        assert!(
            Instant::now() < deadline,
            "R1 did not log every refusal; R1 log:\n{}\nclient b log:\n{}",
            guard_log(),
            std::fs::read_to_string(&b.log).unwrap_or_default()
        );
        // Every circuit of B fails at its middle: the fetch is expected to fail.
        let out = dir.join(format!("got-b{attempt}"));
        let url = http.url();
        let ok = fetch_at(b.socks, &format!("b{attempt}"), &url, &out, None).is_some();
        assert!(!ok, "no path of client b can work");
        attempt += 1;
    }
    // The refusals name the peer's address with the reason.
    for (why, bad) in reasons.iter().zip(&r[3..]) {
        let line = guard_log()
            .lines()
            .find(|l| l.contains(why.as_str()))
            .map(str::to_owned)
            .expect("logged");
        assert!(line.contains(&bad.addr.to_string()), "{line}");
    }

    let (sha, len) = download
        .join()
        .expect("download thread")
        .expect("client a's download through R1 finishes");
    assert_eq!(len, 16 * MIB);
    assert_eq!(sha, http.sha);
    // R1 never closed A's circuit: its client saw no failure.
    let a_log = std::fs::read_to_string(&a.log).unwrap_or_default();
    assert!(!a_log.contains("circuit failed"), "{a_log}");
}
