//! A private C Tor network on 127.0.0.1, set up as chutney sets one up, for circuits that
//! mix kistrel and C Tor relays (`kistrel net --ctor-relays C`, tests/ctor.rs).
//!
//! ```text
//! DIR/ctor/auth1/  torrc, keys/ (tor-gencert + tor --list-fingerprint), notice.log, cached-*
//! DIR/ctor/ctor1/  torrc, keys/ (made by tor at start), notice.log
//! ...
//! ```
//!
//! [`CtorNet::create`] makes the folders, the authorities' keys and every torrc;
//! [`CtorNode::command`] is the `tor` process to start for a node (the caller supervises
//! the processes: `kistrel net` starts them with its other children and stops them all
//! together); [`CtorNet::status`] reads the authority's consensus and microdescriptors and
//! the relays' logs until every relay is listed, Running and bootstrapped
//! ([`Status::Ready`] with the relays, else what is still missing).
//!
//! Only `tor` and `tor-gencert` from the system's tor package are needed
//! ([`programs::Programs::find`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use kistrel_pathsel::Flag;

pub mod authority;
pub mod consensus;
pub mod error;
pub mod programs;
pub mod torrc;

pub use consensus::{CtorRelay, DocFiles, Relays};
pub use error::CtorError;
pub use programs::Programs;
use torrc::{AuthorityLine, NodeTorrc, Role};

/// One node of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtorNode {
    /// Its settings (nickname, role, DataDirectory, ports).
    pub torrc: NodeTorrc,
    /// `DataDirectory/torrc`.
    pub torrc_file: PathBuf,
    /// `DataDirectory/stdout.log`: what tor prints before its log file is open.
    pub stdout_log: PathBuf,
}

impl CtorNode {
    /// Its nickname.
    pub fn nickname(&self) -> &str {
        &self.torrc.nickname
    }

    /// Its ORPort.
    pub fn or_port(&self) -> SocketAddr {
        self.torrc.or_port
    }

    /// Its notice log.
    pub fn notice_log(&self) -> PathBuf {
        torrc::notice_log(&self.torrc.data_dir)
    }

    /// The `tor` process for this node (`tor -f torrc`; stdio left to the caller).
    pub fn command(&self, tor: &Path) -> Command {
        let mut cmd = Command::new(tor);
        cmd.arg("-f").arg(&self.torrc_file);
        cmd
    }

    /// Whether its notice log says it bootstrapped.
    fn bootstrapped(&self) -> bool {
        std::fs::read_to_string(self.notice_log()).is_ok_and(|t| t.contains("Bootstrapped 100%"))
    }
}

/// How many of each kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtorOptions {
    /// Directory authorities (at least 1).
    pub authorities: usize,
    /// Exit relays.
    pub relays: usize,
    /// Also log at `info` (large; for development).
    pub info_log: bool,
    /// `__OwningControllerProcess` for every node.
    pub owner_pid: Option<u32>,
}

/// A network's nodes, keys and torrc files (not yet running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtorNet {
    /// `DIR/ctor`.
    pub dir: PathBuf,
    /// Authorities first, then relays.
    pub nodes: Vec<CtorNode>,
    /// The `DirAuthority` lines every torrc carries.
    pub authorities: Vec<AuthorityLine>,
}

/// What [`CtorNet::status`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every node is listed with its microdescriptor, Running and Valid (relays also Guard
    /// and Exit, with a policy that accepts something), and has bootstrapped.
    Ready(Vec<CtorRelay>),
    /// What is still missing, one item per node.
    Waiting(Vec<String>),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CtorError {
    let path = path.to_path_buf();
    move |source| CtorError::Io { what, path, source }
}

impl CtorNet {
    /// Make `dir` (`DIR/ctor`), the authorities' keys and every torrc. `ports` gives two
    /// free loopback ports per authority (OR, Dir) then one per relay.
    pub fn create(
        programs: &Programs,
        dir: &Path,
        opts: &CtorOptions,
        ports: &[SocketAddr],
    ) -> Result<CtorNet, CtorError> {
        let want = 2 * opts.authorities + opts.relays;
        if opts.authorities == 0 || ports.len() < want {
            return Err(CtorError::Missing {
                what: "enough ports or authorities for the network",
                path: dir.to_path_buf(),
            });
        }
        let mut nodes = Vec::with_capacity(opts.authorities + opts.relays);
        let mut authorities = Vec::with_capacity(opts.authorities);
        for i in 0..opts.authorities {
            let (or_port, dir_port) = (ports[2 * i], ports[2 * i + 1]);
            let nickname = format!("auth{}", i + 1);
            let data_dir = dir.join(&nickname);
            authorities.push(authority::make_keys(
                programs, &data_dir, &nickname, or_port, dir_port,
            )?);
            nodes.push((nickname, Role::Authority, data_dir, or_port, Some(dir_port)));
        }
        for i in 0..opts.relays {
            let nickname = format!("ctor{}", i + 1);
            let data_dir = dir.join(&nickname);
            let or_port = ports[2 * opts.authorities + i];
            nodes.push((nickname, Role::Relay, data_dir, or_port, None));
        }
        let nodes = nodes
            .into_iter()
            .map(|(nickname, role, data_dir, or_port, dir_port)| {
                std::fs::create_dir_all(&data_dir).map_err(io("creating", &data_dir))?;
                // tor wants its DataDirectory private and fixes it with a warning otherwise.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(io("restricting", &data_dir))?;
                let node = CtorNode {
                    torrc_file: data_dir.join("torrc"),
                    stdout_log: data_dir.join("stdout.log"),
                    torrc: NodeTorrc {
                        nickname,
                        role,
                        data_dir,
                        or_port,
                        dir_port,
                        info_log: opts.info_log,
                        owner_pid: opts.owner_pid,
                    },
                };
                let text = torrc::torrc(&node.torrc, &authorities);
                crate::fsutil::write_atomic(&node.torrc_file, text.as_bytes(), 0o644)
                    .map_err(io("writing", &node.torrc_file))?;
                Ok(node)
            })
            .collect::<Result<Vec<_>, CtorError>>()?;
        Ok(CtorNet {
            dir: dir.to_path_buf(),
            nodes,
            authorities,
        })
    }

    /// The first authority's directory cache files.
    pub fn doc_files(&self) -> Option<DocFiles> {
        self.nodes
            .iter()
            .find(|n| n.torrc.role == Role::Authority)
            .map(|n| DocFiles::in_data_dir(&n.torrc.data_dir))
    }

    /// Read the first authority's consensus at `now` and each node's log: ready, or what is
    /// still missing.
    pub fn status(&self, now: SystemTime) -> Result<Status, CtorError> {
        let Some(files) = self.doc_files() else {
            return Ok(Status::Waiting(vec!["no authority".into()]));
        };
        let Some(found) = files.read(now)? else {
            return Ok(Status::Waiting(vec![format!(
                "no consensus yet ({})",
                files.consensus.display()
            )]));
        };
        let mut missing = Vec::new();
        for node in &self.nodes {
            let nick = node.nickname();
            let mut want = vec![Flag::Running, Flag::Valid];
            if node.torrc.role == Role::Relay {
                want.extend([Flag::Guard, Flag::Exit]);
            }
            match found.relays.iter().find(|r| r.nickname == nick) {
                None if found.without_microdesc.iter().any(|n| n == nick) => {
                    missing.push(format!("{nick}: no microdescriptor yet"));
                }
                None => missing.push(format!("{nick}: not in the consensus")),
                Some(r) => {
                    let lacking: Vec<&str> = want
                        .iter()
                        .filter(|f| !r.flags.contains(**f))
                        .map(|f| f.name())
                        .collect();
                    if !lacking.is_empty() {
                        missing.push(format!("{nick}: no {} flag", lacking.join("/")));
                    } else if node.torrc.role == Role::Relay && r.exit_policy.is_reject_all() {
                        missing.push(format!("{nick}: its policy summary rejects every port"));
                    }
                }
            }
            if !node.bootstrapped() {
                missing.push(format!(
                    "{nick}: not bootstrapped (see {})",
                    node.notice_log().display()
                ));
            }
        }
        Ok(if missing.is_empty() {
            Status::Ready(found.relays)
        } else {
            Status::Waiting(missing)
        })
    }
}
