//! The files of a local network: relay keys and configs, the directory, the client config.
//!
//! ```text
//! DIR/relay1.toml relay1-keys.toml relay1.log   ... relayN.*
//! DIR/directory.toml  client.toml  client.log  client-data/
//! ```
//!
//! Every relay is on 127.0.0.1 with Fast, Running, Valid and Stable; all but the last have the
//! Guard flag, and the last one is the exit (`accept 127.0.0.0/8:*`) without Guard: with one
//! exit among three relays, a guard that is also the only exit would leave no path (Tor's
//! position weights keep scarce exits out of the guard position the same way). The client
//! turns `EnforceDistinctSubnets` off, since all relays share one /16.
//!
//! The shaped testbed (`--bottleneck`) changes two things through [`LayoutOptions`]: relays
//! bind their namespace addresses and the exit accepts the testbed's range
//! ([`LayoutOptions::exit_policy`]), and only the first relay is a guard
//! ([`LayoutOptions::fixed_roles`]), so every path is relay1 -> relay2..N-1 -> relayN and the
//! bottleneck in front of the middle namespace is on every circuit's middle-exit link.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use kistrel_pathsel::{Directory, ExitPolicy, Flag, RelayFlags, RelayInfo};
use toml::Value;

use super::error::NetError;
use kistrel_sched::SchedulerKind;

use crate::config::{Backend, LinksMode};
use crate::fsutil::write_atomic;
use crate::keys::RelayKeyFolder;
use crate::placement::Placement;

/// The exit relay's policy.
pub const EXIT_POLICY: &str = "accept 127.0.0.0/8:*";
/// Directory bandwidth weight of every relay (all equal).
pub const BANDWIDTH: u32 = 1000;

/// What to put in the configs.
#[derive(Debug, Clone, Default)]
pub struct LayoutOptions {
    /// `Workers` for every node.
    pub workers: Option<usize>,
    /// `Schedulers = [one]` for every node.
    pub scheduler: Option<SchedulerKind>,
    /// `Backend` for every node.
    pub backend: Option<Backend>,
    /// `Links` for every node.
    pub links: Option<LinksMode>,
    /// `MetricsPort` on port 0 of each node's address (each prints `metrics addr=ADDR`).
    pub metrics: bool,
    /// The exit's policy; `None`: [`EXIT_POLICY`].
    pub exit_policy: Option<String>,
    /// Only relay1 gets the Guard flag, so roles are fixed: guard relay1, exit relayN,
    /// middles in between.
    pub fixed_roles: bool,
    /// `CPUAffinity` of each node (by name: `relayK`, `client`) when pinned.
    pub placement: Option<Placement>,
    /// `--path`: the client's EntryNodes, MiddleNodes and ExitNodes.
    pub path: Option<super::PathPins>,
}

impl LayoutOptions {
    fn exit_policy_or_default(&self) -> &str {
        self.exit_policy.as_deref().unwrap_or(EXIT_POLICY)
    }

    /// The `CPUAffinity` line of node `name`, if it is pinned.
    fn cpu_affinity(&self, name: &str) -> String {
        let cpus = self.placement.as_ref().and_then(|p| p.cpus_of(name));
        cpus.map(|c| format!("CPUAffinity = {}\n", quote(&c.to_string())))
            .unwrap_or_default()
    }
}

/// One relay's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayFiles {
    /// `relayK` (1-based).
    pub nickname: String,
    /// Its ORPort.
    pub or_port: SocketAddr,
    /// `DIR/relayK.toml`.
    pub config: PathBuf,
    /// `DIR/relayK-keys/`: the key folder.
    pub keys: PathBuf,
    /// `DIR/relayK.log`: the child's stdout and stderr.
    pub log: PathBuf,
}

/// Everything written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The folder.
    pub dir: PathBuf,
    /// Relays in directory order; the last is the exit.
    pub relays: Vec<RelayFiles>,
    /// `DIR/directory.toml`.
    pub directory: PathBuf,
    /// `DIR/client.toml`.
    pub client_config: PathBuf,
    /// `DIR/client.log`.
    pub client_log: PathBuf,
    /// The client's SocksPort.
    pub socks: SocketAddr,
}

/// `n` distinct free loopback ports: all bound at once (so distinct), then released. Another
/// process may take one before our child binds it; the child then fails with "address in
/// use" and `kistrel net` reports it.
pub fn free_loopback_ports(n: usize) -> std::io::Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(TcpListener::local_addr).collect()
}

fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn runtime_keys(opts: &LayoutOptions) -> String {
    let mut s = String::new();
    if let Some(w) = opts.workers {
        s.push_str(&format!("Workers = {w}\n"));
    }
    if let Some(b) = opts.backend {
        s.push_str(&format!("Backend = {}\n", quote(b.name())));
    }
    if let Some(l) = opts.links {
        s.push_str(&format!("Links = {}\n", quote(l.name())));
    }
    if let Some(k) = opts.scheduler {
        s.push_str(&format!("Schedulers = [{}]\n", quote(k.name())));
    }
    s
}

/// The relay config text.
pub fn relay_config_text(r: &RelayFiles, exit: bool, opts: &LayoutOptions) -> String {
    let mut s = format!(
        "# kistrel net: relay {nick}\nNickname = {}\nORPort = {}\nKeyDirectory = {}\n",
        quote(&r.nickname),
        quote(&r.or_port.to_string()),
        quote(&file_name(&r.keys)),
        nick = r.nickname,
    );
    if exit {
        s.push_str(&format!(
            "ExitPolicy = [{}]\n",
            quote(opts.exit_policy_or_default())
        ));
    }
    if opts.metrics {
        let any_port = SocketAddr::new(r.or_port.ip(), 0);
        s.push_str(&format!("MetricsPort = {}\n", quote(&any_port.to_string())));
    }
    s.push_str(&runtime_keys(opts));
    s.push_str(&opts.cpu_affinity(&r.nickname));
    s
}

/// The client config text (paths relative to the folder).
pub fn client_config_text(socks: SocketAddr, opts: &LayoutOptions) -> String {
    let mut s = format!(
        "# kistrel net: client\nSocksPort = {}\nDirectoryFile = \"directory.toml\"\n\
         DataDirectory = \"client-data\"\n\
         # All relays share one /16.\nEnforceDistinctSubnets = false\n",
        quote(&socks.to_string())
    );
    if opts.metrics {
        let any_port = SocketAddr::new(socks.ip(), 0);
        s.push_str(&format!("MetricsPort = {}\n", quote(&any_port.to_string())));
    }
    if let Some(super::PathPins([guard, middle, exit])) = &opts.path {
        s.push_str(&format!(
            "# --path\nEntryNodes = [{}]\nMiddleNodes = [{}]\nExitNodes = [{}]\n",
            quote(guard),
            quote(middle),
            quote(exit)
        ));
    }
    s.push_str(&runtime_keys(opts));
    s.push_str(&opts.cpu_affinity("client"));
    s
}

/// The directory listing every relay with its public keys.
pub fn directory_for(
    relays: &[(RelayFiles, RelayKeyFolder)],
    opts: &LayoutOptions,
) -> Result<Directory, NetError> {
    let last = relays.len().saturating_sub(1);
    let infos = relays
        .iter()
        .enumerate()
        .map(|(i, (files, keys))| {
            let mut flags = RelayFlags::from_flags(&[
                Flag::Guard,
                Flag::Fast,
                Flag::Running,
                Flag::Valid,
                Flag::Stable,
            ]);
            if opts.fixed_roles && i != 0 {
                flags.remove(Flag::Guard);
            }
            let exit_policy = if i == last {
                flags.remove(Flag::Guard);
                flags.insert(Flag::Exit);
                let policy = opts.exit_policy_or_default();
                policy.parse::<ExitPolicy>().map_err(|e| NetError::Layout {
                    problem: format!("exit policy {policy:?}: {e}"),
                })?
            } else {
                ExitPolicy::default()
            };
            Ok(RelayInfo {
                nickname: files.nickname.clone(),
                identity: keys.rsa_id(),
                ed25519_identity: keys.ed_id(),
                ntor_key: keys.ntor_public(),
                address: files.or_port,
                bandwidth: BANDWIDTH,
                flags,
                family: Vec::new(),
                exit_policy,
            })
        })
        .collect::<Result<Vec<_>, NetError>>()?;
    Directory::from_relays(infos, None).map_err(|e| NetError::Layout {
        problem: e.to_string(),
    })
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), NetError> {
    write_atomic(path, text.as_bytes(), mode).map_err(|source| NetError::Io {
        what: "writing",
        path: path.to_path_buf(),
        source,
    })
}

/// Write keys, relay configs, the directory and the client config into `dir` (created if
/// missing). `or_ports` and `keys` give one entry per relay (at least 3); `socks` is the
/// client's SocksPort.
pub fn write_layout(
    dir: &Path,
    or_ports: &[SocketAddr],
    keys: Vec<RelayKeyFolder>,
    socks: SocketAddr,
    opts: &LayoutOptions,
) -> Result<Layout, NetError> {
    if or_ports.len() != keys.len() || or_ports.len() < 3 {
        return Err(NetError::Layout {
            problem: format!(
                "{} ports and {} key sets for a network of at least 3 relays",
                or_ports.len(),
                keys.len()
            ),
        });
    }
    std::fs::create_dir_all(dir.join("client-data")).map_err(|source| NetError::Io {
        what: "creating",
        path: dir.join("client-data"),
        source,
    })?;
    let relays: Vec<(RelayFiles, RelayKeyFolder)> = or_ports
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (&or_port, k))| {
            let nickname = format!("relay{}", i + 1);
            let files = RelayFiles {
                config: dir.join(format!("{nickname}.toml")),
                keys: dir.join(format!("{nickname}-keys")),
                log: dir.join(format!("{nickname}.log")),
                nickname,
                or_port,
            };
            (files, k)
        })
        .collect();
    let last = relays.len() - 1;
    for (i, (files, k)) in relays.iter().enumerate() {
        k.save(&files.keys)?;
        write(
            &files.config,
            &relay_config_text(files, i == last, opts),
            0o644,
        )?;
    }
    let directory = dir.join("directory.toml");
    write(&directory, &directory_for(&relays, opts)?.to_toml(), 0o644)?;
    let client_config = dir.join("client.toml");
    write(&client_config, &client_config_text(socks, opts), 0o644)?;
    Ok(Layout {
        dir: dir.to_path_buf(),
        relays: relays.into_iter().map(|(f, _)| f).collect(),
        directory,
        client_config,
        client_log: dir.join("client.log"),
        socks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientConf, Override, RelayConf};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn keys(rng: &mut ChaCha8Rng) -> RelayKeyFolder {
        let now = std::time::SystemTime::now();
        RelayKeyFolder::generate(rng, now, &Default::default()).unwrap()
    }

    fn layout(dir: &Path, n: usize, opts: &LayoutOptions) -> (Layout, Vec<RelayKeyFolder>) {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let keys: Vec<RelayKeyFolder> = (0..n).map(|_| keys(&mut rng)).collect();
        // Fixed ports: nothing binds them in this test.
        let ports: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16)))
            .collect();
        let socks = SocketAddr::from(([127, 0, 0, 1], 19_050));
        (
            write_layout(dir, &ports, keys.clone(), socks, opts).unwrap(),
            keys,
        )
    }

    #[test]
    fn written_network_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        let opts = LayoutOptions {
            metrics: false,
            workers: Some(2),
            scheduler: Some(SchedulerKind::KistLite),
            backend: Some(Backend::Poll),
            links: Some(LinksMode::Plain),
            ..LayoutOptions::default()
        };
        let (l, keys) = layout(&dir, 4, &opts);
        assert_eq!(l.dir, dir);
        assert_eq!(l.relays.len(), 4);
        assert_eq!(l.directory, dir.join("directory.toml"));
        assert_eq!(l.client_log, dir.join("client.log"));

        // The directory parses with pathsel and lists every relay with its public key.
        let d = Directory::load(&l.directory).unwrap();
        assert_eq!(d.relays().len(), 4);
        for (i, (r, k)) in d.relays().iter().zip(&keys).enumerate() {
            assert_eq!(r.nickname, format!("relay{}", i + 1));
            assert_eq!(r.identity, k.rsa_id());
            assert_eq!(r.ed25519_identity, k.ed_id());
            assert_eq!(r.ntor_key, k.ntor_public());
            assert_eq!(r.address, l.relays[i].or_port);
            assert_eq!(r.bandwidth, BANDWIDTH);
            let is_exit = i == 3;
            assert_eq!(r.flags.contains(Flag::Guard), !is_exit);
            for flag in [Flag::Fast, Flag::Running, Flag::Valid, Flag::Stable] {
                assert!(r.flags.contains(flag), "{} lacks {flag:?}", r.nickname);
            }
            assert_eq!(r.flags.contains(Flag::Exit), is_exit);
            assert_eq!(
                r.exit_policy.allows("127.0.0.1".parse().unwrap(), 80),
                is_exit
            );
            assert!(!r.exit_policy.allows("10.0.0.1".parse().unwrap(), 80));
        }

        // Relay configs load with the config loader; keys load and match.
        for (i, (files, k)) in l.relays.iter().zip(&keys).enumerate() {
            let c = RelayConf::load(&files.config, &[]).unwrap();
            assert_eq!(c.nickname, files.nickname);
            assert_eq!(c.or_port, files.or_port);
            assert_eq!(c.key_dir, files.keys);
            assert_eq!(c.exit_policy.is_some(), i == 3);
            assert_eq!(c.runtime.workers, 2);
            assert_eq!(c.runtime.backend, Backend::Poll);
            assert_eq!(c.runtime.links, LinksMode::Plain);
            assert_eq!(c.runtime.schedulers, vec![SchedulerKind::KistLite]);
            let loaded = RelayKeyFolder::load(&c.key_dir).unwrap();
            assert_eq!(loaded.rsa_id(), k.rsa_id());
            assert_eq!(loaded.ed_id(), k.ed_id());
            assert_eq!(loaded.ntor_public(), k.ntor_public());
        }

        // The client config loads, points at the directory, and allows one /16.
        let c = ClientConf::load(&l.client_config, &[]).unwrap();
        assert_eq!(c.socks_port, l.socks);
        assert_eq!(c.directory_file, l.directory);
        assert_eq!(c.data_directory, dir.join("client-data"));
        assert!(c.data_directory.is_dir());
        assert!(!c.path.enforce_distinct_subnets);
        assert_eq!(c.load_directory().unwrap(), d);
        super::super::check_layout(&l, &[], true).unwrap();

        // A path can be picked from it with the client's settings.
        let sel = kistrel_pathsel::PathSelector::new(&d, c.path.clone());
        let p = sel
            .select_path(&mut ChaCha8Rng::seed_from_u64(2), None, None)
            .unwrap();
        assert_eq!(p.exit, 3);
        assert!(p.guard != p.middle && p.guard != p.exit && p.middle != p.exit);
    }

    #[test]
    fn defaults_leave_runtime_keys_out() {
        let tmp = tempfile::tempdir().unwrap();
        let (l, _) = layout(tmp.path(), 3, &LayoutOptions::default());
        let c = RelayConf::load(&l.relays[0].config, &[]).unwrap();
        assert_eq!(c.runtime, crate::config::RuntimeConf::default());
        assert_eq!(c.exit_policy, None);
    }

    #[test]
    fn bad_forwarded_override_is_a_config_error() {
        let tmp = tempfile::tempdir().unwrap();
        let (l, _) = layout(tmp.path(), 3, &LayoutOptions::default());
        let ok = [Override::parse("MaxMemInQueues=64 MB").unwrap()];
        super::super::check_layout(&l, &ok, true).unwrap();
        let bad = [Override::parse("Wrokers=2").unwrap()];
        let e = super::super::check_layout(&l, &bad, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} (override -o): unknown key `Wrokers` (did you mean `Workers`?)",
                l.relays[0].config.display()
            )
        );
    }

    #[test]
    fn fixed_roles_make_relay1_the_only_guard_and_the_policy_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = LayoutOptions {
            exit_policy: Some("accept 10.77.0.0/16:*".into()),
            fixed_roles: true,
            ..LayoutOptions::default()
        };
        let (l, _) = layout(tmp.path(), 4, &opts);
        let d = Directory::load(&l.directory).unwrap();
        let guards: Vec<bool> = d
            .relays()
            .iter()
            .map(|r| r.flags.contains(Flag::Guard))
            .collect();
        assert_eq!(guards, [true, false, false, false]);
        let exit = &d.relays()[3];
        assert!(exit.flags.contains(Flag::Exit));
        assert!(exit.exit_policy.allows("10.77.0.2".parse().unwrap(), 8000));
        assert!(!exit.exit_policy.allows("127.0.0.1".parse().unwrap(), 80));
        let c = RelayConf::load(&l.relays[3].config, &[]).unwrap();
        assert!(c
            .exit_policy
            .unwrap()
            .allows("10.77.200.9".parse().unwrap(), 1));
        // Every path is relay1 -> relay2|relay3 -> relay4.
        let c = ClientConf::load(&l.client_config, &[]).unwrap();
        let sel = kistrel_pathsel::PathSelector::new(&d, c.path.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..20 {
            let p = sel.select_path(&mut rng, None, None).unwrap();
            assert_eq!((p.guard, p.exit), (0, 3));
            assert!(p.middle == 1 || p.middle == 2);
        }
    }

    /// With 8 CPUs (a fake count: nothing is started), every node's config carries its own
    /// CPUs and no two nodes share one; with 2, no config pins anything.
    #[test]
    fn nodes_get_disjoint_cpus_or_none() {
        use crate::placement::{plan, CpuList};
        let tmp = tempfile::tempdir().unwrap();
        let eight = CpuList::first(8).unwrap();
        let opts = LayoutOptions {
            placement: Some(plan(&eight, &super::super::cpus::nodes(4, 1))),
            ..LayoutOptions::default()
        };
        let (l, _) = layout(tmp.path(), 4, &opts);
        let mut sets: Vec<CpuList> = l
            .relays
            .iter()
            .map(|r| {
                RelayConf::load(&r.config, &[])
                    .unwrap()
                    .runtime
                    .cpu_affinity
                    .unwrap()
            })
            .collect();
        let client = ClientConf::load(&l.client_config, &[]).unwrap();
        sets.push(client.runtime.cpu_affinity.unwrap());
        assert_eq!(sets.len(), 5);
        for (i, a) in sets.iter().enumerate() {
            assert!(a.is_subset(&eight));
            for b in &sets[i + 1..] {
                assert!(!a.overlaps(b), "{a} and {b} share a CPU");
            }
        }
        let two = CpuList::first(2).unwrap();
        let opts = LayoutOptions {
            placement: Some(plan(&two, &super::super::cpus::nodes(4, 1))),
            ..LayoutOptions::default()
        };
        let (l, _) = layout(&tmp.path().join("small"), 4, &opts);
        for r in &l.relays {
            assert_eq!(
                RelayConf::load(&r.config, &[])
                    .unwrap()
                    .runtime
                    .cpu_affinity,
                None
            );
        }
        let client = ClientConf::load(&l.client_config, &[]).unwrap();
        assert_eq!(client.runtime.cpu_affinity, None);
    }

    #[test]
    fn path_pins_go_into_the_client_config() {
        let tmp = tempfile::tempdir().unwrap();
        let pins = super::super::PathPins(["relay2".into(), "relay1".into(), "relay4".into()]);
        let opts = LayoutOptions {
            path: Some(pins),
            ..LayoutOptions::default()
        };
        let (l, _) = layout(tmp.path(), 4, &opts);
        let c = ClientConf::load(&l.client_config, &[]).unwrap();
        assert_eq!(c.path.entry_nodes.to_string(), "relay2");
        assert_eq!(c.path.middle_nodes.to_string(), "relay1");
        assert_eq!(c.path.exit_nodes.to_string(), "relay4");
        let d = c.load_directory().unwrap();
        let sel = kistrel_pathsel::PathSelector::new(&d, c.path.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..20 {
            let p = sel.select_path(&mut rng, None, None).unwrap();
            assert_eq!((p.guard, p.middle, p.exit), (1, 0, 3));
        }
    }

    #[test]
    fn too_few_relays_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let ports = free_loopback_ports(2).unwrap();
        assert_ne!(ports[0], ports[1]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let keys = vec![keys(&mut rng), keys(&mut rng)];
        let e = write_layout(
            tmp.path(),
            &ports,
            keys,
            ports[0],
            &LayoutOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, NetError::Layout { .. }));
    }
}
