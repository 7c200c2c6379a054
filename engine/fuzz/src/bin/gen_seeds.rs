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
        body_of(|b| {
            kistrel_engine::wire::Resolve {
                host: "example.com",
            }
            .emit(b)
            .expect("resolve")
        }),
        body_of(|b| {
            kistrel_engine::wire::Resolved {
                answers: vec![kistrel_engine::wire::ResolvedAnswer::Addr {
                    ip: "127.0.0.1".parse().expect("ip"),
                    ttl: 300,
                }],
            }
            .emit(b)
            .expect("resolved")
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
ed25519_identity = "3LYE2yA0sA/RaYbUrbnRayHLTkRXoz3sD1OJA2g+luk="
ntor_key = "yQyQKaOgLK6hpJPh0hAQYXL0YmvWR0Ek4T1u3L+wyFE="
address = "127.0.0.1:33005"
bandwidth = 1000
flags = ["Guard", "Fast", "Stable", "Running", "Valid"]
family = ["relay2"]

[[relay]]
nickname = "relay2"
identity = "DDF9F1993A271E28BD869F06E8AA5ADB68A2755E"
ed25519_identity = "+CKUuGajHwH8XQ2oVyhQqbkpVFwyZlWNfSMW47dBcrA="
ntor_key = "OFZU9rFSR05XVNMsgBFIAP2BbayuU4tX23M8UKRZ0CA="
address = "[::1]:34733"
bandwidth = 1000
flags = ["Guard", "Fast", "Stable", "Running", "Valid"]
family = ["$EC1E9280623EF90004A915A6FB75CDE2C645D7D4"]

[[relay]]
nickname = "relay3"
identity = "AE117165D27ECDD1B252C341853EA33B95698DDB"
ed25519_identity = "tP1ga2Tky9RmuNdssTEGm65vOqGHiFfJ9iTjHXenmbg="
ntor_key = "tAhreO0wKw8GdXOmM4X7YRrz17wTFeW7k74JYbkRtVM="
address = "10.0.0.3:38195"
bandwidth = 1000
flags = ["Guard", "Exit", "Fast", "Stable", "Running", "Valid"]
exit_policy = ["accept 127.0.0.0/8:*", "reject *:*"]
"#;

/// Link-authentication seeds: C Tor's captured cells (Arti's tor-cell and tor-cert test
/// vectors, from a chutney network) and what a kistrel relay sends.
fn link_auth(c: &mut Corpus) {
    use kistrel_fuzz::link_auth::CHECKS;
    let ctor_certs = unhex(CTOR_CERTS);
    // A kistrel relay's own CERTS (types 2, 7, 4, 5), as it answers a VERSIONS.
    let keys = kistrel_engine::harness::relay_keys(7);
    let hello =
        kistrel_engine::harness::responder_hello(&keys, kistrel_engine::harness::epoch(), None);
    let mut dec = kistrel_engine::wire::CellDecoder::new();
    let mut rest = &hello[..];
    let mut ours = Vec::new();
    while !rest.is_empty() {
        let (used, cell) = dec.decode(rest).expect("our handshake decodes");
        rest = &rest[used..];
        if let Some(kistrel_engine::wire::ChanCell::Var(v)) = cell {
            if v.cmd == ChanCmd::CERTS {
                ours = v.payload;
            }
        }
    }
    let seeds: [(&str, u8, Vec<u8>); 8] = [
        ("certs_ctor", 0, ctor_certs.clone()),
        ("certs_kistrel", 0, ours.clone()),
        ("auth_challenge_ctor", 1, unhex(CTOR_AUTH_CHALLENGE)),
        ("authenticate_ctor", 2, unhex(CTOR_AUTHENTICATE)),
        ("ed25519_cert_ctor", 3, unhex(CTOR_ED_CERT_4)),
        ("rsa_crosscert_ctor", 4, unhex(CTOR_CROSSCERT)),
        ("handshake_certs", 5, [[0u8].as_slice(), &ours].concat()),
        (
            "handshake_netinfo",
            5,
            vec![3, 0, 0, 0, 0, 4, 4, 127, 0, 0, 1, 0],
        ),
    ];
    for (name, which, bytes) in seeds {
        assert!(CHECKS.len() > usize::from(which));
        c.put("link_auth", name, &[[which].as_slice(), &bytes].concat());
    }
}

/// Arti (captured, tor-cell `test_certs`): a C Tor relay's CERTS, types 1, 2, 4, 5, 7.
const CTOR_CERTS: &str = "05010\
23E3082023A308201A3A003020102020872AB0FE86C771604300D06092A864886F70D01010B0500301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D301E170D3230303632373030303030305A170D3231303231363233353935395A301C311A301806035504030C117777772E617775676863646E732E6E657430820122300D06092A864886F70D01010105000382010F003082010A0282010100FE255E99E10BE986DDA5DFB4AD7C39E8EFE4E5D79E105AB976942B6829386EB1D7B7AFB5ED4FCBEC8C1A34C34FD2ED182F8B42A0363453B55EE371F21347235277E2357F28AA10DD82D4248F7D1894AB5D2979654F71C350F73AD9F918D71F34F1505F77EC16391C8340F392F3684BA4BB6A7B022C3954C1158F152F9E3B4E328FAB2E4E881903CA0E32204B0FDA8AB62B6E215A7BDEC3F2AE41DC58EEC1252F643A1812A5D71802F48D6133DF79955E01F0287BB4AB8CF95BEBCD2EC66EF5B38C7B5EC08DED3D6E2A1D57289D773D5CB932803B6D97784D1DA36AE71C073ADBB7393714001CD7A082512772A7076DC01166417AF7C50AEF7F15FD0806EB07FF0203010001300D06092A864886F70D01010B050003818100CDA4E06BB6BB238B91188A077EEB0A4722518090FD116AF6CDEEB0E85CF6D8E242CF861F973A252EB5116709373B5AC817E6F848E2CBD76AEF684350D3416AEE5F33D56B96982509CDAF11CCA7260E5ADF6DDD0D017AE9A575C999ADAE50B3FB7027E810D47C8C5C14618C0AA10D307E304FBE50E868ADECB2C9536E2DB51BE0\
0201BD308201B930820122A0030201020208607C28BE6C390943300D06092A864886F70D01010B0500301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D301E170D3230303831303030303030305A170D3231303831303030303030305A301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D30819F300D06092A864886F70D010101050003818D0030818902818100D38B1E6CEB946E0DB0751F4CBACE3DCB9688B6C25304227B4710C35AFB73627E50500F5913E158B621802612D1C75827003703338375237552EB3CD3C12F6AB3604E60C1A2D26BB1FBAD206FF023969A90909D6A65A5458A5312C26EBD3A3DAD30302D4515CDCD264146AC18E6FC60A04BD3EC327F04294D96BA5AA25B464C3F0203010001300D06092A864886F70D01010B0500038181003BCE561EA7F95CC00B78AAB5D69573FF301C282A751D4A651921D042F1BECDBA24D918A6D8A5E138DC07BBA0B335478AE37ABD2C93A93932442AE9084329E846170FE0FC4A50AAFC804F311CC3CA4F41D845A7BA5901CBBC3E021E9794AAC70CE1F37B0A951592DB1B64F2B4AFB81AE52DBD9B6FEDE96A5FB8125EB6251EE50A\
04008C01040006CC2A01F82294B866A31F01FC5D0DA8572850A9B929545C3266558D7D2316E3B74172B00100200400DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9FF1A5203FA27F86EF7528D89A0845D2520166E340754FFEA2AAE0F612B7CE5DA094A0236CDAC45034B0B6842C18E7F6B51B93A3CF7E60663B8AD061C30A62602\
05006801050006C98A03B4FD606B64E4CBD466B8D76CB131069BAE6F3AA1878857C9F624E31D77A799B8007173E5F8068431D0D3F5EE16B4C9FFD59DF373E152A87281BAE744AA5FCF72171BF4B27C4E8FC1C6A9FC5CA11058BC49647063D7903CFD9F512F89099B27BC0C\
0700A5DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E90006DA3A805CF6006F9179066534DE6B45AD47A5C469063EE462762723396DC9F25452A0A52DA3F5087DD239F2A311F6B0D4DFEFF4ABD089DC3D0237A0ABAB19EB2045B91CDCAF04BE0A72D548A27BF2E77BD876ECFE5E1BE622350DA6BF31F6E306ED896488DD5B39409B23FC3EB7B2C9F7328EB18DA36D54D80575899EA6507CCBFCDF1F";
/// Arti (captured, tor-cell `test_auth_challenge`).
const CTOR_AUTH_CHALLENGE: &str =
    "00DA5C085DEE4F3656710DA3B73652E48ACD5BAE608335FCA3FB6C4DEE104A51000200010003";
/// Arti (captured, tor-cell `test_authenticate`): type 3, 352 bytes.
const CTOR_AUTHENTICATE: &str = "000301604155544830303033ED6B2ACBAC868D87D1500505BF59196FD38DEF15E1078C46BF97C7EBCC26C2A26AAF7E6B8FF0C27AB8F0047426017D03A413D8C1D00077ED441112C3E88EEE535BA78B2FD74C3910C5FECBD700677DCA931F4B90EA5CD24D4E64F7E9EC9E0F38E4E1E55E42BC72F59E9224E328EB1BBE3D079013B2A04CDBCEB43B7135D365E81B01B6845D789F66F0F62AAF52D906D2252E5F105215A627123C05AF782D7B0D64C41C30AFB6660B3DB1028868104E2560CB527568241992B80855101D3BF6EFA987F7A56C132A0CF38B0097AA215CC58FF089AFCC15C0ABB3947E68137CD8554E336C435E4633F88909919E5448F80CDDBD5987D85407A95A2BBC898C7004318265719D99C7B549C276CDEE38CE9202395CB7E1EBD9B3D47C1F4BC254AA12798BA1480400A3CC8067518A9BBDD453E601579429CF2E72D6C175DA0A412D99ECA1079015651E95E8F40AD8BEC3CB496E83C0C66D10F4C606";
/// Arti (captured, tor-cert `test_valid_ed`): a type-4 certificate.
const CTOR_ED_CERT_4: &str = "01040006CC2A01F82294B866A31F01FC5D0DA8572850A9B929545C3266558D7D2316E3B74172B00100200400DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9FF1A5203FA27F86EF7528D89A0845D2520166E340754FFEA2AAE0F612B7CE5DA094A0236CDAC45034B0B6842C18E7F6B51B93A3CF7E60663B8AD061C30A62602";
/// Arti (captured, tor-cert `test_valid_rsa_cc`): a cross-certificate.
const CTOR_CROSSCERT: &str = "DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E90006DA3A805CF6006F9179066534DE6B45AD47A5C469063EE462762723396DC9F25452A0A52DA3F5087DD239F2A311F6B0D4DFEFF4ABD089DC3D0237A0ABAB19EB2045B91CDCAF04BE0A72D548A27BF2E77BD876ECFE5E1BE622350DA6BF31F6E306ED896488DD5B39409B23FC3EB7B2C9F7328EB18DA36D54D80575899EA6507CCBFCDF1F";

fn directory(c: &mut Corpus) {
    c.put("directory", "three_relays", DIRECTORY.as_bytes());
    let no_weights = DIRECTORY.replace("[weights]\nWgg = 5000\nWgd = 0\n", "");
    c.put("directory", "no_weights", no_weights.as_bytes());
}

fn config(c: &mut Corpus) {
    let relay = "Nickname = \"relay1\"\nORPort = \"127.0.0.1:9001\"\nKeyDirectory = \"keys\"\n\
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
    link_auth(&mut c);
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
