//! Writes the seed corpora: `gen_seeds [CORPUS_DIR]` (default `corpus`, relative to the
//! current directory; `run.sh` runs it from engine/fuzz). Seeds are built with the engine's
//! own emitters from the values its tests use (Tor's ntor test vector, the SOCKS5 exchanges
//! of RFC 1928/1929, the sample directory and configs), plus, for `relay_state`, inputs found
//! by a deterministic search that reach new driver states. Deterministic: same files every
//! run.

use std::fs;
use std::path::{Path, PathBuf};

use kistrel_engine::crypto::ntor;
use kistrel_engine::harness::initiator_hello;
use kistrel_engine::wire::{
    Begin, Cell, ChanCmd, Connected, Create2, CreateFast, Created2, CreatedFast, Destroy,
    DestroyReason, End, EndReason, Extend2, Extended2, LinkSpec, Netinfo, RelayCellRepr, RelayCmd,
    Sendme, StreamId, Truncated, VarCell, Versions, CELL_BODY_LEN,
};
use kistrel_fuzz::relay_state::{self, Reached};
use rand::SeedableRng;

/// The client secret x of the ntor known-answer vector in engine/src/crypto/ntor/tests.rs
/// (from Arti, crates/tor-proto/src/crypto/handshake/ntor.rs, test `testvec`).
const NTOR_X: &str = "706f6461792069207075742e2e2e2e2e2e2e2e4a454c4c59206f6e2074686973";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        fs::write(dir.join(name), bytes).expect("write seed");
        self.written += 1;
    }
}

fn body_of(emit: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let mut b = [0u8; CELL_BODY_LEN];
    let n = emit(&mut b);
    b[..n.max(1)].to_vec()
}

fn cell_bytes(circ_id: u32, cmd: ChanCmd, body: &[u8]) -> Vec<u8> {
    let mut cell = Cell::new(circ_id, cmd);
    cell.body[..body.len()].copy_from_slice(body);
    let mut out = Vec::new();
    cell.append_to(&mut out);
    out
}

fn cell_decoder(c: &mut Corpus) {
    let hello = initiator_hello();
    // n = 0: no chunk sizes, the stream decoded in one piece and as one piece.
    c.put(
        "cell_decoder",
        "hello",
        &[[0u8].as_slice(), &hello].concat(),
    );
    let mut s = vec![3, 1, 8, 255];
    s.extend(&hello);
    s.extend(cell_bytes(0x8000_0001, ChanCmd::CREATE_FAST, &[9; 20]));
    let mut vp = Vec::new();
    VarCell {
        circ_id: 0,
        cmd: ChanCmd::VPADDING,
        payload: vec![0; 30],
    }
    .append_to(&mut vp, 4);
    s.extend(vp);
    s.extend(cell_bytes(0x8000_0001, ChanCmd::DESTROY, &[3]));
    c.put("cell_decoder", "hello_create_vpadding_destroy", &s);
    // A var cell over the cap (the decoder must reject it before buffering).
    c.put("cell_decoder", "too_long", &[1, 2, 0, 0, 7, 0xff, 0xff, 0]);
}

fn relay_payloads(c: &mut Corpus) {
    use kistrel_fuzz::payloads::PARSERS;
    let onion = ntor::client_create_with_secret([3; 32], &[7; 20], &[5; 32]).1;
    let mut seeds = chan_payload_seeds(&onion);
    seeds.extend(relay_msg_seeds(&onion));
    for (i, (name, seed)) in PARSERS.iter().zip(seeds).enumerate() {
        c.put(
            "relay_payloads",
            name,
            &[[i as u8].as_slice(), &seed].concat(),
        );
    }
}

/// One valid payload per channel-cell parser, in `PARSERS` order.
fn chan_payload_seeds(onion: &[u8]) -> Vec<Vec<u8>> {
    vec![
        {
            let mut v = [0u8; 4];
            let n = Versions {
                versions: vec![4, 5],
            }
            .emit(&mut v)
            .expect("versions");
            v[..n].to_vec()
        },
        body_of(|b| {
            Netinfo {
                time: 1_700_000_000,
                other_addr: Some("127.0.0.1".parse().expect("ip")),
                my_addrs: vec!["10.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")],
            }
            .emit(b)
            .expect("netinfo")
        }),
        body_of(|b| {
            Create2 {
                htype: ntor::HTYPE,
                hdata: onion,
            }
            .emit(b)
            .expect("create2")
        }),
        body_of(|b| Created2 { hdata: &[6; 64] }.emit(b).expect("created2")),
        body_of(|b| CreateFast { x: [1; 20] }.emit(b).expect("create_fast")),
        body_of(|b| {
            CreatedFast {
                y: [2; 20],
                kh: [3; 20],
            }
            .emit(b)
            .expect("created_fast")
        }),
        body_of(|b| {
            Destroy {
                reason: DestroyReason::PROTOCOL,
            }
            .emit(b)
            .expect("destroy")
        }),
        cell_bytes(0x8000_0001, ChanCmd::RELAY, &[2, 0, 0, 0, 1]),
        {
            let mut v = vec![1];
            VarCell {
                circ_id: 5,
                cmd: ChanCmd::VPADDING,
                payload: vec![1, 2, 3],
            }
            .append_to(&mut v, 4);
            v
        },
    ]
}

/// One valid payload per relay-cell parser, in `PARSERS` order (after the channel ones).
fn relay_msg_seeds(onion: &[u8]) -> Vec<Vec<u8>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    vec![
        {
            let mut body = [0u8; CELL_BODY_LEN];
            RelayCellRepr {
                cmd: RelayCmd::DATA,
                stream_id: StreamId::new(1),
                data: b"hello",
            }
            .emit(&mut body, &mut rng)
            .expect("relay cell");
            body.to_vec()
        },
        body_of(|b| {
            Begin {
                host: "127.0.0.1",
                port: 80,
                flags: 1,
            }
            .emit(b)
            .expect("begin")
        }),
        body_of(|b| {
            Connected {
                addr: Some(("127.0.0.1".parse().expect("ip"), 300)),
            }
            .emit(b)
            .expect("c")
        }),
        body_of(|b| {
            End {
                reason: EndReason::DONE,
            }
            .emit(b)
            .expect("end")
        }),
        body_of(|b| {
            Sendme {
                digest: Some([4; 20]),
            }
            .emit(b)
            .expect("sendme")
        }),
        body_of(|b| {
            Extend2 {
                link_specs: vec![
                    LinkSpec::Ipv4("127.0.0.2:9001".parse().expect("addr")),
                    LinkSpec::LegacyId([8; 20]),
                ],
                htype: ntor::HTYPE,
                hdata: onion,
            }
            .emit(b)
            .expect("extend2")
        }),
        body_of(|b| Extended2 { hdata: &[6; 64] }.emit(b).expect("extended2")),
        body_of(|b| {
            Truncated {
                reason: DestroyReason::CONNECTFAILED,
            }
            .emit(b)
            .expect("t")
        }),
    ]
}

fn ntor_server(c: &mut Corpus) {
    // Mode 1 with a 32-byte rest: the rest is used as the client's x (Tor's test vector).
    c.put(
        "ntor_server",
        "tor_vector_x",
        &[[1u8].as_slice(), &unhex(NTOR_X)].concat(),
    );
    // Mode 0: a whole onion for another relay (UnknownRelay).
    let onion = ntor::client_create_with_secret([3; 32], &[7; 20], &[5; 32]).1;
    c.put(
        "ntor_server",
        "other_relay_onion",
        &[[0u8].as_slice(), &onion].concat(),
    );
    // Mode 1 with X = 0 (a low-order point: all-zero shared secret).
    c.put(
        "ntor_server",
        "zero_x",
        &[1u8; 1]
            .iter()
            .chain(&[0u8; 32])
            .copied()
            .collect::<Vec<_>>(),
    );
}

fn socks(c: &mut Corpus) {
    // RFC 1928: greeting (no-auth), CONNECT 127.0.0.1:80, then stream data.
    let mut v = vec![0, 5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80];
    v.extend(b"GET /");
    c.put("socks", "noauth_ipv4", &v);
    let mut v = vec![3, 5, 1, 0, 5, 1, 0, 3, 11];
    v.extend(b"example.com");
    v.extend([1, 187]);
    c.put("socks", "noauth_domain", &v);
    let mut v = vec![7, 5, 1, 0, 5, 1, 0, 4];
    v.extend([0; 15]);
    v.extend([1, 0, 80]);
    c.put("socks", "noauth_ipv6", &v);
    // RFC 1929 username/password, then the request.
    let mut v = vec![1, 5, 2, 0, 2, 1, 4];
    v.extend(b"user");
    v.push(4);
    v.extend(b"pass");
    v.extend([5, 1, 0, 1, 10, 0, 0, 1, 0x1f, 0x90]);
    c.put("socks", "userpass_ipv4", &v);
    c.put("socks", "socks4", &[0, 4, 1, 0, 80, 127, 0, 0, 1, 0]);
}

const DIRECTORY: &str = r#"# kistrel directory
version = 1

[weights]
Wgg = 5000
Wgd = 0

[[relay]]
nickname = "relay1"
identity = "EC1E9280623EF90004A915A6FB75CDE2C645D7D4"
ntor_key = "yQyQKaOgLK6hpJPh0hAQYXL0YmvWR0Ek4T1u3L+wyFE="
address = "127.0.0.1:33005"
bandwidth = 1000
flags = ["Guard", "Fast", "Stable", "Running", "Valid"]
family = ["relay2"]

[[relay]]
nickname = "relay2"
identity = "DDF9F1993A271E28BD869F06E8AA5ADB68A2755E"
ntor_key = "OFZU9rFSR05XVNMsgBFIAP2BbayuU4tX23M8UKRZ0CA="
address = "[::1]:34733"
bandwidth = 1000
flags = ["Guard", "Fast", "Stable", "Running", "Valid"]
family = ["$EC1E9280623EF90004A915A6FB75CDE2C645D7D4"]

[[relay]]
nickname = "relay3"
identity = "AE117165D27ECDD1B252C341853EA33B95698DDB"
ntor_key = "tAhreO0wKw8GdXOmM4X7YRrz17wTFeW7k74JYbkRtVM="
address = "10.0.0.3:38195"
bandwidth = 1000
flags = ["Guard", "Exit", "Fast", "Stable", "Running", "Valid"]
exit_policy = ["accept 127.0.0.0/8:*", "reject *:*"]
"#;

fn directory(c: &mut Corpus) {
    c.put("directory", "three_relays", DIRECTORY.as_bytes());
    let no_weights = DIRECTORY.replace("[weights]\nWgg = 5000\nWgd = 0\n", "");
    c.put("directory", "no_weights", no_weights.as_bytes());
}

fn config(c: &mut Corpus) {
    let relay = "Nickname = \"relay1\"\nORPort = \"127.0.0.1:9001\"\nKeyFile = \"keys.toml\"\n\
                 ExitPolicy = [\"accept 127.0.0.0/8:*\"]\nWorkers = 2\nMaxMemInQueues = \"64 MB\"\n\
                 Address = [\"10.0.0.1\"]\nBandwidthRate = \"1 MB\"\n";
    c.put(
        "config",
        "relay",
        &[b"\x00".as_slice(), relay.as_bytes()].concat(),
    );
    let client = "SocksPort = \"127.0.0.1:9050\"\nDirectoryFile = \"directory.toml\"\n\
                  DataDirectory = \"client-data\"\nEnforceDistinctSubnets = false\nWorkers = 1\n";
    c.put(
        "config",
        "client",
        &[b"\x01".as_slice(), client.as_bytes()].concat(),
    );
    c.put("config", "override", b"\x02MaxMemInQueues=512 MB");
    let keys = "identity = \"EC1E9280623EF90004A915A6FB75CDE2C645D7D4\"\n\
                ntor_secret = \"j4JtiVcDhXy9CWU5YNAX6DPxTvCdBwRZ1NE1iQ+zSYY=\"\n";
    c.put(
        "config",
        "keys",
        &[b"\x03".as_slice(), keys.as_bytes()].concat(),
    );
}

/// The hand-written scenarios (encoded, checked to decode back), then random inputs kept
/// when they reach a driver state no kept input reached before.
fn relay_state(c: &mut Corpus) {
    for (i, (name, s)) in relay_state::seed_scenarios().into_iter().enumerate() {
        let bytes = relay_state::encode(&s);
        assert_eq!(
            relay_state::decode(&bytes),
            Some(s.clone()),
            "encode/decode of {name}"
        );
        let reached = relay_state::run(&s);
        if i == 0 {
            let all = Reached {
                open_circuits: true,
                streams: true,
                outbound: true,
                extended: true,
                oom_closed: true,
                circuits_rejected: reached.circuits_rejected,
                channels_rejected: true,
                queued: true,
            };
            assert_eq!(reached, all, "the deep seed lost depth");
        }
        c.put("relay_state", name, &bytes);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut seen: Vec<Reached> = Vec::new();
    let mut kept = 0;
    for attempt in 0..20_000 {
        let len = 64 + attempt % 960;
        let bytes = relay_state::random_input(&mut rng, len);
        let Some(scenario) = relay_state::decode(&bytes) else {
            continue;
        };
        let reached = relay_state::run(&scenario);
        if reached != Reached::default() && !seen.contains(&reached) && kept < 20 {
            seen.push(reached);
            c.put("relay_state", &format!("search_{kept:02}"), &bytes);
            kept += 1;
        }
    }
}

/// `gen_seeds --reach DIR`: the driver states the `relay_state` inputs in DIR reach (to see
/// how deep a fuzzing run got).
fn report_reach(dir: &Path) {
    let mut all = Vec::new();
    for entry in fs::read_dir(dir).expect("read corpus dir").flatten() {
        let bytes = fs::read(entry.path()).expect("read input");
        if let Some(s) = relay_state::decode(&bytes) {
            all.push(relay_state::run(&s));
        }
    }
    let count = |f: fn(&Reached) -> bool| all.iter().filter(|r| f(r)).count();
    println!("{} inputs", all.len());
    println!("open circuit:        {}", count(|r| r.open_circuits));
    println!("exit stream:         {}", count(|r| r.streams));
    println!("outbound channel:    {}", count(|r| r.outbound));
    println!("extended (CREATE2 out): {}", count(|r| r.extended));
    println!("cells queued:        {}", count(|r| r.queued));
    println!("OOM close:           {}", count(|r| r.oom_closed));
    println!("circuit rejected:    {}", count(|r| r.circuits_rejected));
    println!("channel rejected:    {}", count(|r| r.channels_rejected));
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    if first.as_deref() == Some(std::ffi::OsStr::new("--demo")) {
        for (name, s) in relay_state::seed_scenarios() {
            println!("{name}: {:?}", relay_state::run(&s));
        }
        return;
    }
    if first.as_deref() == Some(std::ffi::OsStr::new("--reach")) {
        report_reach(Path::new(&args.next().expect("--reach DIR")));
        return;
    }
    let root = first.map_or_else(|| PathBuf::from("corpus"), PathBuf::from);
    let mut c = Corpus {
        root: root.clone(),
        written: 0,
    };
    cell_decoder(&mut c);
    relay_payloads(&mut c);
    ntor_server(&mut c);
    socks(&mut c);
    directory(&mut c);
    config(&mut c);
    relay_state(&mut c);
    println!(
        "wrote {} seeds under {}",
        c.written,
        Path::new(&root).display()
    );
}
