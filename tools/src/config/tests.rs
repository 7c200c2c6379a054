use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kistrel_pathsel::{CbtConfig, PathConfig};

use super::*;
use crate::keys::{KeyError, KeygenOptions, RelayKeyFolder};

mod effective;

/// A folder with a key file and a directory file, for the file-existence checks.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("dir.toml"), "version = 1\n").unwrap();
        Fixture { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn relay(&self, text: &str, overrides: &[&str]) -> Result<RelayConf, ConfigError> {
        RelayConf::parse(&self.file("relay.toml"), text, &ov(overrides))
    }

    fn client(&self, text: &str, overrides: &[&str]) -> Result<ClientConf, ConfigError> {
        ClientConf::parse(&self.file("client.toml"), text, &ov(overrides))
    }

    /// The error text with the temp folder replaced by `D`.
    fn msg(&self, e: ConfigError) -> String {
        e.to_string()
            .replace(&self.dir.path().display().to_string(), "D")
    }
}

fn ov(list: &[&str]) -> Vec<Override> {
    list.iter().map(|o| Override::parse(o).unwrap()).collect()
}

const MINIMAL_RELAY: &str = "ORPort = \"127.0.0.1:9001\"\n";

#[test]
fn relay_defaults() {
    let f = Fixture::new();
    let c = f.relay(MINIMAL_RELAY, &[]).unwrap();
    assert_eq!(c.file, f.file("relay.toml"));
    assert_eq!(c.nickname, "Unnamed");
    assert_eq!(c.or_port, "127.0.0.1:9001".parse().unwrap());
    assert_eq!(c.key_dir, f.file("keys"));
    assert_eq!(c.exit_policy, None);
    assert!(c.address.is_empty());
    assert_eq!(c.runtime, RuntimeConf::default());
    assert_eq!(c.runtime.workers, 0);
    assert_eq!(c.runtime.backend, Backend::Auto);
    assert_eq!(c.runtime.schedulers, SchedulerKind::TOR_DEFAULT.to_vec());
    assert_eq!(c.runtime.kist_sched_run_interval, Duration::from_millis(10));
    assert_eq!(c.runtime.kist_sock_buf_size_factor, 1.0);
    assert_eq!(c.runtime.circuit_priority_halflife, Duration::from_secs(30));
    assert_eq!(c.max_mem_in_queues, 512 << 20);
    assert_eq!(c.max_circuit_queue_cells, 2500);
    assert_eq!(c.metrics_port, None);
    assert_eq!(c.bandwidth_rate, None);
    assert_eq!(c.runtime.cpu_affinity, None);
    assert_eq!(c.testing_cell_cost, Duration::ZERO);
    assert!(c.runtime.effective_workers() >= 1);
}

#[test]
fn relay_every_key() {
    let f = Fixture::new();
    let text = r#"
Nickname = "guard1"
ORPort = "[::1]:9001"
KeyDirectory = "keys"
ExitPolicy = ["accept 127.0.0.0/8:*", "reject *:*"]
Address = ["127.0.0.1", "::1"]
Workers = 4
Backend = "poll"
Links = "PLAIN"
Schedulers = "kistlite, Vanilla"
KISTSchedRunInterval = "2 ms"
KISTSockBufSizeFactor = 1.5
CircuitPriorityHalflife = 0
MaxMemInQueues = "64 MB"
MaxCircuitQueueCells = 1000
MetricsPort = "127.0.0.1:9100"
BandwidthRate = "100 MBits"
CPUAffinity = "0,2-3"
TestingCellCost = "500 ns"
"#;
    let c = f.relay(text, &[]).unwrap();
    assert_eq!(c.nickname, "guard1");
    assert_eq!(c.or_port, "[::1]:9001".parse().unwrap());
    let policy = c.exit_policy.unwrap();
    assert!(policy.allows("127.0.0.1".parse().unwrap(), 80));
    assert!(!policy.allows("10.0.0.1".parse().unwrap(), 80));
    assert_eq!(
        c.address,
        vec![
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(c.runtime.workers, 4);
    assert_eq!(c.runtime.effective_workers(), 4);
    assert_eq!(c.runtime.backend, Backend::Poll);
    assert_eq!(c.runtime.links, LinksMode::Plain);
    assert_eq!(
        c.runtime.schedulers,
        vec![SchedulerKind::KistLite, SchedulerKind::Vanilla]
    );
    assert_eq!(c.runtime.kist_sched_run_interval, Duration::from_millis(2));
    assert_eq!(c.runtime.kist_sock_buf_size_factor, 1.5);
    assert_eq!(c.runtime.circuit_priority_halflife, Duration::ZERO);
    assert_eq!(c.max_mem_in_queues, 64 << 20);
    assert_eq!(c.max_circuit_queue_cells, 1000);
    assert_eq!(c.metrics_port, Some("127.0.0.1:9100".parse().unwrap()));
    // Tor's bit units: 1 Mbit = 2^20 / 8 bytes.
    assert_eq!(c.bandwidth_rate, Some(100 << 17));
    assert_eq!(c.runtime.cpu_affinity.unwrap().cpus(), [0, 2, 3]);
    assert_eq!(c.testing_cell_cost, Duration::from_nanos(500));
}

#[test]
fn value_forms() {
    let f = Fixture::new();
    let get = |extra: &str| f.relay(&format!("{MINIMAL_RELAY}{extra}\n"), &[]).unwrap();
    assert_eq!(get("MaxMemInQueues = 1000").max_mem_in_queues, 1000);
    assert_eq!(get("MaxMemInQueues = \"2GB\"").max_mem_in_queues, 2 << 30);
    assert_eq!(get("MaxMemInQueues = \"1.5 KB\"").max_mem_in_queues, 1536);
    assert_eq!(
        get("Schedulers = [\"Vanilla\"]").runtime.schedulers,
        vec![SchedulerKind::Vanilla]
    );
    assert_eq!(
        get("CircuitPriorityHalflife = \"2 s\"")
            .runtime
            .circuit_priority_halflife,
        Duration::from_secs(2)
    );
    assert_eq!(
        get("KISTSchedRunInterval = 100")
            .runtime
            .kist_sched_run_interval,
        Duration::from_millis(100)
    );
    // Bare numbers take the key's torrc unit: msec here, seconds (a float) for the halflife.
    assert_eq!(
        get("KISTSchedRunInterval = \"2 ms\"")
            .runtime
            .kist_sched_run_interval,
        Duration::from_millis(2)
    );
    assert_eq!(
        get("CircuitPriorityHalflife = 2")
            .runtime
            .circuit_priority_halflife,
        Duration::from_secs(2)
    );
    assert_eq!(
        get("CircuitPriorityHalflife = 0.5")
            .runtime
            .circuit_priority_halflife,
        Duration::from_millis(500)
    );
    assert_eq!(
        get("CircuitPriorityHalflife = \"1min\"")
            .runtime
            .circuit_priority_halflife,
        Duration::from_secs(60)
    );
    assert_eq!(
        get("Address = \"10.0.0.1\"").address,
        vec![IpAddr::from([10, 0, 0, 1])]
    );
    assert_eq!(
        get("KISTSockBufSizeFactor = 2")
            .runtime
            .kist_sock_buf_size_factor,
        2.0
    );
    let cpus = |extra: &str| get(extra).runtime.cpu_affinity.unwrap().to_string();
    assert_eq!(cpus("CPUAffinity = 3"), "3");
    assert_eq!(cpus("CPUAffinity = \" 5,1-2 \""), "1-2,5");
    let p = get("ExitPolicy = \"accept *:80, reject *:*\"")
        .exit_policy
        .unwrap();
    assert!(p.allows("1.2.3.4".parse().unwrap(), 80));
    assert!(!p.allows("1.2.3.4".parse().unwrap(), 81));
}

#[test]
fn overrides_parse_as_toml_or_string() {
    let o = Override::parse("Workers=2").unwrap();
    assert_eq!(
        (o.key.as_str(), &o.value),
        ("Workers", &toml::Value::Integer(2))
    );
    let o = Override::parse(" ORPort = 127.0.0.1:9002 ").unwrap();
    assert_eq!(o.key, "ORPort");
    assert_eq!(o.value, toml::Value::String("127.0.0.1:9002".into()));
    let o = Override::parse("Schedulers=[\"KIST\"]").unwrap();
    assert_eq!(
        o.value,
        toml::Value::Array(vec![toml::Value::String("KIST".into())])
    );
    let o = Override::parse("MaxMemInQueues=512 MB").unwrap();
    assert_eq!(o.value, toml::Value::String("512 MB".into()));
    // A value smuggling a second key stays one string.
    let o = Override::parse("Nickname=1\nWorkers = 3").unwrap();
    assert_eq!(o.value, toml::Value::String("1\nWorkers = 3".into()));
    for bad in ["Workers", "=3", "a b=3"] {
        let e = Override::parse(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("bad override {bad:?}: want -o KEY=VALUE, e.g. -o Workers=2")
        );
    }
}

#[test]
fn overrides_win_over_the_file_and_fill_missing_keys() {
    let f = Fixture::new();
    let text = "ORPort = \"127.0.0.1:9001\"\nWorkers = 8\n";
    let c = f
        .relay(
            text,
            &["Workers=2", "ORPort=127.0.0.1:9002", "Nickname=over"],
        )
        .unwrap();
    assert_eq!(c.runtime.workers, 2);
    assert_eq!(c.or_port, "127.0.0.1:9002".parse().unwrap());
    assert_eq!(c.nickname, "over");
    // A required key given only by override.
    let c = f.relay("", &["ORPort=127.0.0.1:9003"]).unwrap();
    assert_eq!(c.or_port.port(), 9003);
}

#[test]
fn error_syntax_names_the_line() {
    let f = Fixture::new();
    let e = f
        .relay("ORPort = \"127.0.0.1:9001\"\nWorkers = = 2\n", &[])
        .unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Syntax {
                origin: Origin::Line(2),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(f.msg(e).starts_with("D/relay.toml:2: TOML syntax error: "));
}

#[test]
fn error_unknown_key() {
    let f = Fixture::new();
    let e = f
        .relay("ORPort = \"127.0.0.1:9001\"\n\nORprt = 3\n", &[])
        .unwrap_err();
    assert_eq!(
        f.msg(e),
        "D/relay.toml:3: unknown key `ORprt` (did you mean `ORPort`?)"
    );
    let e = f.relay(MINIMAL_RELAY, &["Bogus=1"]).unwrap_err();
    assert_eq!(f.msg(e), "D/relay.toml (override -o): unknown key `Bogus`");
    // A client key in a relay config is unknown there.
    let e = f
        .relay(MINIMAL_RELAY, &["SocksPort=127.0.0.1:1"])
        .unwrap_err();
    assert!(matches!(
        e,
        ConfigError::UnknownKey {
            suggestion: None,
            ..
        }
    ));
    // Sections are not keys.
    let e = f
        .relay("ORPort = \"127.0.0.1:9001\"\n[extra]\nx = 1\n", &[])
        .unwrap_err();
    assert!(matches!(&e, ConfigError::UnknownKey { key, .. } if key == "extra"));
}

#[test]
fn error_missing_key() {
    let f = Fixture::new();
    let e = f.relay("Nickname = \"a\"\n", &[]).unwrap_err();
    assert_eq!(f.msg(e), "D/relay.toml: missing required key `ORPort`");
    let e = f.client("", &[]).unwrap_err();
    assert_eq!(
        f.msg(e),
        "D/client.toml: missing required key `DirectoryFile`"
    );
}

#[test]
fn error_bad_values() {
    let f = Fixture::new();
    let cases = [
        (
            "ORPort = \"localhost\"",
            "D/relay.toml:1: key `ORPort`: bad address \"localhost\": want IP:PORT, e.g. \"127.0.0.1:9001\" or \"[::1]:9001\"",
        ),
        (
            "ORPort = 9001",
            "D/relay.toml:1: key `ORPort`: expected a quoted \"IP:PORT\" string, found an integer",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nWorkers = \"two\"",
            "D/relay.toml:2: key `Workers`: expected a non-negative integer, found a string",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nBackend = \"epoll\"",
            "D/relay.toml:2: key `Backend`: unknown backend \"epoll\": want \"auto\", \"uring\" or \"poll\"",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nLinks = \"ssl\"",
            "D/relay.toml:2: key `Links`: unknown links \"ssl\": want \"tls\" (the default) or \"plain\" (a benchmark mode)",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nSchedulers = \"KIST,Fast\"",
            "D/relay.toml:2: key `Schedulers`: unknown scheduler \"Fast\": want KIST, KISTLite or Vanilla",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nKISTSchedRunInterval = 0",
            "D/relay.toml:2: key `KISTSchedRunInterval`: 0 ms is out of range: want 1 to 100 ms",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nKISTSockBufSizeFactor = -1.0",
            "D/relay.toml:2: key `KISTSockBufSizeFactor`: -1 is negative: want a factor >= 0 (Tor default 1.0)",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nMaxMemInQueues = \"512 XB\"",
            "D/relay.toml:2: key `MaxMemInQueues`: \"512 XB\": unknown unit \"XB\": want e.g. \"4096\", \"64 KiB\" or \"512 MB\"",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nNickname = \"has space\"",
            "D/relay.toml:2: key `Nickname`: bad nickname \"has space\": want 1-19 ASCII letters or digits",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nExitPolicy = [\"allow *:*\"]",
            "D/relay.toml:2: key `ExitPolicy`: rule must start with \"accept\" or \"reject\": \"allow *:*\"",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nAddress = [\"1.2.3\"]",
            "D/relay.toml:2: key `Address`: bad IP address \"1.2.3\": want e.g. \"127.0.0.1\" or \"::1\"",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nCPUAffinity = \"3-1\"",
            "D/relay.toml:2: key `CPUAffinity`: bad CPU range \"3-1\": the end is below the start",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nTestingCellCost = \"2 ms\"",
            "D/relay.toml:2: key `TestingCellCost`: 2ms is too long: want at most 1 ms per cell",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nCPUAffinity = 4096",
            "D/relay.toml:2: key `CPUAffinity`: CPU 4096 is out of range: want 0 to 1023",
        ),
        (
            "ORPort = \"127.0.0.1:9001\"\nCPUAffinity = [0, 1]",
            "D/relay.toml:2: key `CPUAffinity`: expected a CPU list like \"0,2-3\" or a CPU number, found an array",
        ),
    ];
    for (text, want) in cases {
        let e = f.relay(text, &[]).unwrap_err();
        assert!(matches!(e, ConfigError::BadValue { .. }), "{e:?}");
        assert_eq!(f.msg(e), want, "for {text:?}");
    }
    let e = f.relay(MINIMAL_RELAY, &["Workers=-3"]).unwrap_err();
    assert_eq!(
        f.msg(e),
        "D/relay.toml (override -o): key `Workers`: -3 is negative: want 0 or more"
    );
}

#[test]
fn error_missing_file() {
    let f = Fixture::new();
    let e = f
        .relay(
            "ORPort = \"127.0.0.1:9001\"\nKeyDirectory = \"nope\"\n",
            &[],
        )
        .unwrap_err();
    match &e {
        ConfigError::MissingFile {
            key, path, origin, ..
        } => {
            assert_eq!(*key, "KeyDirectory");
            assert_eq!(path, &f.file("nope"));
            assert_eq!(*origin, Origin::Line(2));
        }
        other => panic!("wrong error {other:?}"),
    }
    assert!(f
        .msg(e)
        .starts_with("D/relay.toml:2: key `KeyDirectory`: cannot open D/nope: "));
    let e = RelayConf::load(&f.file("absent.toml"), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(f
        .msg(e)
        .starts_with("cannot read config file D/absent.toml: "));
}

#[test]
fn port_in_use_message() {
    let f = Fixture::new();
    let c = f.relay(MINIMAL_RELAY, &[]).unwrap();
    let e = c.port_in_use("ORPort", c.or_port);
    assert_eq!(
        f.msg(e),
        "D/relay.toml: key `ORPort`: address 127.0.0.1:9001 is already in use (pick another port or stop the process using it)"
    );
}

#[test]
fn client_defaults_and_path_keys() {
    let f = Fixture::new();
    let c = f.client("DirectoryFile = \"dir.toml\"\n", &[]).unwrap();
    assert_eq!(c.socks_port, "127.0.0.1:9050".parse().unwrap());
    assert_eq!(c.directory_file, f.file("dir.toml"));
    assert_eq!(c.data_directory, f.file("."));
    assert_eq!(c.path, PathConfig::default());
    assert_eq!(c.cbt, CbtConfig::default());
    assert_eq!(c.runtime, RuntimeConf::default());

    let text = r#"
DirectoryFile = "dir.toml"
SocksPort = "127.0.0.1:1080"
DataDirectory = "state"
EnforceDistinctSubnets = false
UseEntryGuards = false
NumEntryGuards = 5
LearnCircuitBuildTimeout = false
CircuitBuildTimeout = 30
Workers = 1
"#;
    let c = f.client(text, &["NumEntryGuards=2"]).unwrap();
    assert_eq!(c.socks_port.port(), 1080);
    assert_eq!(c.data_directory, f.file("state"));
    assert!(!c.path.enforce_distinct_subnets);
    assert!(!c.path.use_entry_guards);
    assert_eq!(c.path.num_entry_guards, 2);
    assert!(!c.cbt.learn);
    assert_eq!(c.cbt.circuit_build_timeout_secs, 30);
    assert_eq!(c.runtime.workers, 1);
}

#[test]
fn every_listed_pathsel_key_is_a_pathsel_key() {
    // Each key with a value of its type: pathsel's structs must accept all of them, else
    // our key lists have drifted from pathsel's serde names.
    let f = Fixture::new();
    let text = r#"
DirectoryFile = "dir.toml"
EnforceDistinctSubnets = true
UseEntryGuards = true
NumEntryGuards = 3
NumPrimaryGuardsToUse = 2
GuardFailureRule = "relative"
GuardFailureMargin = 0.2
GuardCircuitsToObserve = 500
GuardMaxSampleSize = 40
GuardMaxSampleThresholdPercent = 30
GuardLifetimeDays = 100
GuardConfirmedMinLifetimeDays = 50
EntryNodes = ["relay1"]
MiddleNodes = "relay2,ctor1"
ExitNodes = []
LearnCircuitBuildTimeout = true
CircuitBuildTimeout = 60
cbtquantile = 70.0
cbtclosequantile = 95.0
cbtmincircs = 50
cbtnummodes = 5
cbtmintimeout = 20
cbtrecentcount = 10
cbtmaxtimeouts = 8
ncircuits_to_observe = 500
"#;
    let c = f.client(text, &[]).unwrap();
    assert_eq!(c.path.num_primary_guards_to_use, 2);
    assert_eq!(c.path.guard_confirmed_min_lifetime_days, 50);
    assert_eq!(c.cbt.quantile_pct, 70.0);
    assert_eq!(c.cbt.ncircuits_to_observe, 500);
    assert_eq!(c.path.middle_nodes.to_string(), "relay2,ctor1");
    assert_eq!(ClientConf::keys().len(), 4 + 8 + 14 + 10);
    assert_eq!(RelayConf::keys().len(), 11 + 3 + 8);
    // A misspelt key of any section gets its suggestion.
    let e = f
        .client("DirectoryFile = \"dir.toml\"\ncbtquantil = 70.0\n", &[])
        .unwrap_err();
    assert_eq!(
        f.msg(e),
        "D/client.toml:2: unknown key `cbtquantil` (did you mean `cbtquantile`?)"
    );
}

#[test]
fn client_pins_are_checked_against_the_directory() {
    let f = Fixture::new();
    let relay = |nick: &str, id: u8, flags: &str| {
        let key = "A".repeat(43);
        format!(
            "[[relay]]\nnickname = \"{nick}\"\nidentity = \"{}\"\n\
             ed25519_identity = \"{key}\"\nntor_key = \"{key}\"\naddress = \"127.0.0.1:{}\"\n\
             bandwidth = 10\nflags = [{flags}]\n",
            hex::encode([id; 20]),
            9000 + u16::from(id),
        )
    };
    let running = "\"Running\", \"Valid\"";
    let guard = "\"Running\", \"Valid\", \"Guard\"";
    let text = format!(
        "version = 1\n{}{}",
        relay("relay1", 1, guard),
        relay("relay2", 2, running)
    );
    std::fs::write(f.file("dir.toml"), text).unwrap();
    let base = "DirectoryFile = \"dir.toml\"\n";
    let c = f
        .client(base, &["EntryNodes=relay1", "MiddleNodes=relay2"])
        .unwrap();
    assert_eq!(c.path.entry_nodes.to_string(), "relay1");
    c.load_directory().unwrap();
    let c = f.client(base, &["EntryNodes=relay9"]).unwrap();
    assert_eq!(
        f.msg(c.load_directory().unwrap_err()),
        "D/client.toml: EntryNodes: relay9 is not in the directory (directory D/dir.toml)"
    );
    let c = f.client(base, &["EntryNodes=relay2"]).unwrap();
    let e = f.msg(c.load_directory().unwrap_err());
    assert!(
        e.starts_with("D/client.toml: EntryNodes: none of relay2 can take this position"),
        "{e}"
    );
    let e = f.client(base, &["ExitNodes={us}"]).unwrap_err();
    assert!(f
        .msg(e)
        .starts_with("D/client.toml (override -o): key `ExitNodes`: \"{us}\": want a nickname"));
}

#[test]
fn client_errors() {
    let f = Fixture::new();
    let e = f
        .client(
            "DirectoryFile = \"dir.toml\"\nNumEntryGuards = \"three\"\n",
            &[],
        )
        .unwrap_err();
    match &e {
        ConfigError::BadValue { key, origin, .. } => {
            assert_eq!(key, "NumEntryGuards");
            assert_eq!(*origin, Origin::Line(2));
        }
        other => panic!("wrong error {other:?}"),
    }
    assert!(f
        .msg(e)
        .starts_with("D/client.toml:2: key `NumEntryGuards`: invalid type: string \"three\""));
    let e = f
        .client("DirectoryFile = \"missing.toml\"\n", &[])
        .unwrap_err();
    assert!(f
        .msg(e)
        .starts_with("D/client.toml:1: key `DirectoryFile`: cannot open D/missing.toml: "));
    // The directory exists but is malformed: named with its own line.
    std::fs::write(
        f.file("bad-dir.toml"),
        "version = 1\n\n[[relay]]\nnickname = 3\n",
    )
    .unwrap();
    let c = f.client("DirectoryFile = \"bad-dir.toml\"\n", &[]).unwrap();
    let e = c.load_directory().unwrap_err();
    assert!(f
        .msg(e)
        .starts_with("D/client.toml: key `DirectoryFile`: D/bad-dir.toml directory file line 4: "),);
    // DataDirectory that is a file.
    let e = f
        .client(
            "DirectoryFile = \"dir.toml\"\nDataDirectory = \"dir.toml\"\n",
            &[],
        )
        .unwrap_err();
    assert_eq!(
        f.msg(e),
        "D/client.toml:2: key `DataDirectory`: D/dir.toml exists and is not a directory"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    assert_eq!(
        relative_to(Path::new("/etc/k/relay.toml"), "keys.toml"),
        PathBuf::from("/etc/k/keys.toml")
    );
    assert_eq!(
        relative_to(Path::new("/etc/k/relay.toml"), "/abs/keys.toml"),
        PathBuf::from("/abs/keys.toml")
    );
    assert_eq!(
        relative_to(Path::new("relay.toml"), "keys.toml"),
        PathBuf::from("keys.toml")
    );
}

/// A key folder at `keys` in the fixture, from `seed`.
fn test_keys(f: &Fixture, seed: u64) -> RelayKeyFolder {
    use rand::SeedableRng;
    let keys = RelayKeyFolder::generate(
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        std::time::SystemTime::now(),
        &KeygenOptions::default(),
    )
    .unwrap();
    keys.save_new(&f.file("keys")).unwrap();
    keys
}

#[test]
fn engine_config_from_relay_conf() {
    let f = Fixture::new();
    let keys = test_keys(&f, 5);
    let text = "ORPort = \"127.0.0.1:9001\"\nExitPolicy = [\"accept *:80\"]\n\
                MaxMemInQueues = \"1 MB\"\nMaxCircuitQueueCells = 7\n";
    let e = f.relay(text, &[]).unwrap().engine_config().unwrap();
    let k = e.keys.as_ref().unwrap();
    assert_eq!(k.rsa_id(), keys.rsa_id());
    assert_eq!(k.identity.ed_id(), keys.ed_id());
    assert_eq!(k.ntor.public(), keys.ntor_public());
    assert!(e.exit_policy.as_ref().unwrap().allows_port(80));
    assert_eq!(e.my_addrs, vec![IpAddr::from([127, 0, 0, 1])]);
    assert_eq!(e.max_mem_in_queues, 1 << 20);
    assert_eq!(e.max_circuit_queue_cells, 7);
    let e = f
        .relay("ORPort = \"0.0.0.0:9001\"\n", &[])
        .unwrap()
        .engine_config()
        .unwrap();
    assert!(e.my_addrs.is_empty());
    assert!(e.exit_policy.is_none());
    let e = f
        .relay("ORPort = \"0.0.0.0:9001\"\nAddress = \"10.1.2.3\"\n", &[])
        .unwrap()
        .engine_config()
        .unwrap();
    assert_eq!(e.my_addrs, vec![IpAddr::from([10, 1, 2, 3])]);
    // A key folder without its ntor key is found (the path check passes) but does not load.
    std::fs::remove_file(f.file("keys").join("secret_onion_key_ntor")).unwrap();
    let err = f
        .relay(MINIMAL_RELAY, &[])
        .unwrap()
        .engine_config()
        .unwrap_err();
    assert!(matches!(err, KeyError::Read { .. }), "{err:?}");
}

#[test]
fn handshake_timeout_and_circuit_creation_limit_keys() {
    use kistrel_engine::relay::CircuitCreationLimit;
    let f = Fixture::new();
    let c = f.relay(MINIMAL_RELAY, &[]).unwrap();
    assert_eq!(c.channel_handshake_timeout, Duration::from_secs(30));
    assert_eq!(
        c.circuit_creation_limit,
        Some(CircuitCreationLimit {
            rate: 100,
            burst: 2000
        })
    );
    let text = format!(
        "{MINIMAL_RELAY}ChannelHandshakeTimeout = \"1.5 s\"\n\
         DoSCircuitCreationRate = 3\nDoSCircuitCreationBurst = 90\n"
    );
    let c = f.relay(&text, &[]).unwrap();
    assert_eq!(c.channel_handshake_timeout, Duration::from_millis(1500));
    assert_eq!(
        c.circuit_creation_limit,
        Some(CircuitCreationLimit { rate: 3, burst: 90 })
    );
    let c = f
        .relay(MINIMAL_RELAY, &["DoSCircuitCreationEnabled=0"])
        .unwrap();
    assert_eq!(c.circuit_creation_limit, None);
    let c = f
        .relay(MINIMAL_RELAY, &["ChannelHandshakeTimeout=250ms"])
        .unwrap();
    assert_eq!(c.channel_handshake_timeout, Duration::from_millis(250));
    let bad = [
        (
            "ChannelHandshakeTimeout = \"0s\"",
            "D/relay.toml:2: key `ChannelHandshakeTimeout`: 0 ms is out of range: want 100 ms to 1 hour (default 30 s)",
        ),
        (
            // kistrel's own key has no unit of its own: a bare number is refused.
            "ChannelHandshakeTimeout = 250",
            "D/relay.toml:2: key `ChannelHandshakeTimeout`: 250 has no unit: write e.g. \"500 ms\" or \"30 s\" (a quoted string)",
        ),
        (
            "DoSCircuitCreationEnabled = 2",
            "D/relay.toml:2: key `DoSCircuitCreationEnabled`: 2 is not 0 or 1",
        ),
        (
            "DoSCircuitCreationRate = 0",
            "D/relay.toml:2: key `DoSCircuitCreationRate`: 0 is out of range: want 1 to 2147483647",
        ),
        (
            "DoSCircuitCreationBurst = 2147483648",
            "D/relay.toml:2: key `DoSCircuitCreationBurst`: 2147483648 is out of range: want 1 to 2147483647",
        ),
        (
            "DoSCircuitCreationBurst = \"many\"",
            "D/relay.toml:2: key `DoSCircuitCreationBurst`:",
        ),
    ];
    for (extra, want) in bad {
        let e = f
            .relay(&format!("{MINIMAL_RELAY}{extra}\n"), &[])
            .unwrap_err();
        let msg = f.msg(e);
        assert!(msg.starts_with(want), "{extra}: {msg}");
    }
}

#[test]
fn engine_config_carries_handshake_timeout_and_creation_limit() {
    use kistrel_engine::relay::CircuitCreationLimit;
    let f = Fixture::new();
    test_keys(&f, 6);
    let text =
        format!("{MINIMAL_RELAY}ChannelHandshakeTimeout = \"2 s\"\nDoSCircuitCreationRate = 7\n");
    let e = f.relay(&text, &[]).unwrap().engine_config().unwrap();
    assert_eq!(e.handshake_timeout, Duration::from_secs(2));
    assert_eq!(
        e.circuit_creation_limit,
        Some(CircuitCreationLimit {
            rate: 7,
            burst: 2000
        })
    );
    let e = f
        .relay(MINIMAL_RELAY, &["DoSCircuitCreationEnabled=0"])
        .unwrap()
        .engine_config()
        .unwrap();
    assert_eq!(e.circuit_creation_limit, None);
}

// ---- --print-config ----
