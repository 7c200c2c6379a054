//! `--print-config`: every key with the value in force, loading back to the same config.

use super::*;

#[test]
fn relay_effective_config_names_every_key_and_loads_back_the_same() {
    let f = Fixture::new();
    let text = "ORPort = \"127.0.0.1:9001\"\nNickname = \"guard1\"\n\
                ExitPolicy = [\"accept 127.0.0.0/8:80\", \"reject *:*\"]\n\
                MaxMemInQueues = \"64 MB\"\nKISTSchedRunInterval = 5\n\
                DoSCircuitCreationEnabled = 0\nWorkers = 2\n";
    let c = f.relay(text, &[]).unwrap();
    let keys: Vec<&str> = c.effective().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, RelayConf::keys());
    let printed = c.effective_toml();
    assert!(
        printed.contains("MaxMemInQueues = \"64 MB\"\n"),
        "{printed}"
    );
    assert!(
        printed.contains("KISTSchedRunInterval = \"5ms\"\n"),
        "{printed}"
    );
    assert!(printed.contains("# MetricsPort = (unset)\n"), "{printed}");
    assert!(
        printed.contains("ChannelHandshakeTimeout = \"30s\"\n"),
        "{printed}"
    );
    let back = f.relay(&printed, &[]).unwrap();
    assert_eq!(format!("{back:?}"), format!("{c:?}"));
}

#[test]
fn client_effective_config_names_every_key_and_loads_back_the_same() {
    let f = Fixture::new();
    let text = "DirectoryFile = \"dir.toml\"\nEnforceDistinctSubnets = false\n\
                cbtquantile = 70.0\nCircuitPriorityHalflife = \"1.5s\"\n";
    let c = f.client(text, &[]).unwrap();
    let keys: Vec<&str> = c.effective().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ClientConf::keys());
    // Only MetricsPort and CPUAffinity are unset in a client's defaults.
    let unset: Vec<&str> = c
        .effective()
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(unset, ["MetricsPort", "CPUAffinity"]);
    let printed = c.effective_toml();
    assert!(
        printed.contains("EnforceDistinctSubnets = false\n"),
        "{printed}"
    );
    assert!(
        printed.contains("SocksPort = \"127.0.0.1:9050\"\n"),
        "{printed}"
    );
    assert!(printed.contains("NumEntryGuards = 3\n"), "{printed}");
    let back = f.client(&printed, &[]).unwrap();
    assert_eq!(back.effective(), c.effective());
    assert!(!c.data_directory_set && back.data_directory_set);
}
