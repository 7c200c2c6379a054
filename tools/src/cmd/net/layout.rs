//! The files of a local network: relay keys and configs, the directory, the client config.
//!
//! ```text
//! DIR/relay1.toml relay1-keys.toml relay1.log   ... relayN.*
//! DIR/directory.toml  client.toml  client.log  client-data/
//! ```
//!
//! Every relay is on 127.0.0.1 with Guard, Fast, Running, Valid and Stable; the last one is
//! also the exit (`accept 127.0.0.0/8:*`). The client turns `EnforceDistinctSubnets` off,
//! since all relays share one /16.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use kistrel_pathsel::{Directory, ExitPolicy, Flag, RelayFlags, RelayInfo};
use toml::Value;

use super::NetError;
use crate::config::{Backend, SchedulerName};
use crate::fsutil::write_atomic;
use crate::keys::RelayKeyFile;

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
    pub scheduler: Option<SchedulerName>,
    /// `Backend` for every node.
    pub backend: Option<Backend>,
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
    /// `DIR/relayK-keys.toml`.
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
    if let Some(k) = opts.scheduler {
        s.push_str(&format!("Schedulers = [{}]\n", quote(k.name())));
    }
    s
}

/// The relay config text.
pub fn relay_config_text(r: &RelayFiles, exit: bool, opts: &LayoutOptions) -> String {
    let mut s = format!(
        "# kistrel net: relay {nick}\nNickname = {}\nORPort = {}\nKeyFile = {}\n",
        quote(&r.nickname),
        quote(&r.or_port.to_string()),
        quote(&file_name(&r.keys)),
        nick = r.nickname,
    );
    if exit {
        s.push_str(&format!("ExitPolicy = [{}]\n", quote(EXIT_POLICY)));
    }
    s.push_str(&runtime_keys(opts));
    s
}

/// The client config text (paths relative to the folder).
pub fn client_config_text(socks: SocketAddr, opts: &LayoutOptions) -> String {
    let mut s = format!(
        "# kistrel net: client\nSocksPort = {}\nDirectoryFile = \"directory.toml\"\n\
         DataDirectory = \"client-data\"\n\
         # All relays are on 127.0.0.1: one /16.\nEnforceDistinctSubnets = false\n",
        quote(&socks.to_string())
    );
    s.push_str(&runtime_keys(opts));
    s
}

/// The directory listing every relay with its public keys.
pub fn directory_for(relays: &[(RelayFiles, RelayKeyFile)]) -> Result<Directory, NetError> {
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
            let exit_policy = if i == last {
                flags.insert(Flag::Exit);
                EXIT_POLICY
                    .parse::<ExitPolicy>()
                    .map_err(|e| NetError::Layout {
                        problem: format!("exit policy {EXIT_POLICY:?}: {e}"),
                    })?
            } else {
                ExitPolicy::default()
            };
            Ok(RelayInfo {
                nickname: files.nickname.clone(),
                identity: keys.identity,
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
    keys: Vec<RelayKeyFile>,
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
    let relays: Vec<(RelayFiles, RelayKeyFile)> = or_ports
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (&or_port, k))| {
            let nickname = format!("relay{}", i + 1);
            let files = RelayFiles {
                config: dir.join(format!("{nickname}.toml")),
                keys: dir.join(format!("{nickname}-keys.toml")),
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
    write(&directory, &directory_for(&relays)?.to_toml(), 0o644)?;
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
