//! The torrc files of a private C Tor network (chutney's templates, trimmed to what a
//! loopback network of authorities and exit relays needs).
//!
//! Every node gets chutney's "rapid bootstrap" options under `TestingTorNetwork 1`
//! (`AssumeReachable 1`, `TestingDirAuthVoteGuard *`, `TestingDirAuthVoteExit *`,
//! `TestingMinExitFlagThreshold 0`, `V3AuthNIntervalsValid 2`), the network's `DirAuthority`
//! lines, `SafeLogging 0` and `ProtocolWarnings 1` (so a peer's protocol violations are
//! logged at `warn` with its address), and a `notice` log file (`info` too when asked).
//! Authorities vote every 10 s (the first vote after 5 s); relays are exits that accept
//! 127.0.0.0/8 and, as chutney's exits do, everything else: a microdescriptor's policy
//! summary speaks only of public addresses (tor#11264), so an exit that accepts only
//! 127.0.0.0/8 would be summarised as "reject 1-65535" and no client reading
//! microdescriptors would pick it. Nothing on this network asks for a public address.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A v3 directory authority (also a relay, not an exit).
    Authority,
    /// An exit relay.
    Relay,
}

/// An authority as the `DirAuthority` line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityLine {
    /// Its nickname.
    pub nickname: String,
    /// Its ORPort.
    pub or_port: SocketAddr,
    /// Its DirPort.
    pub dir_port: SocketAddr,
    /// Its relay identity fingerprint (40 hex digits).
    pub fingerprint: String,
    /// Its v3 authority identity fingerprint (`tor-gencert`'s `fingerprint` line).
    pub v3ident: String,
}

impl AuthorityLine {
    /// The torrc line.
    pub fn line(&self) -> String {
        format!(
            "DirAuthority {} orport={} no-v2 v3ident={} {} {}",
            self.nickname,
            self.or_port.port(),
            self.v3ident,
            self.dir_port,
            self.fingerprint
        )
    }
}

/// One node's torrc settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTorrc {
    /// Nickname.
    pub nickname: String,
    /// Authority or relay.
    pub role: Role,
    /// Its DataDirectory (absolute).
    pub data_dir: PathBuf,
    /// ORPort (on 127.0.0.1).
    pub or_port: SocketAddr,
    /// DirPort, authorities only.
    pub dir_port: Option<SocketAddr>,
    /// Also log at `info` into `DataDirectory/info.log`.
    pub info_log: bool,
    /// `__OwningControllerProcess`: tor exits when this process is gone (so a SIGKILLed
    /// `kistrel net` leaves no tor behind for long).
    pub owner_pid: Option<u32>,
}

/// The notice log of a node whose DataDirectory is `data_dir`.
pub fn notice_log(data_dir: &Path) -> PathBuf {
    data_dir.join("notice.log")
}

/// The torrc text of `node` in a network with `authorities`.
pub fn torrc(node: &NodeTorrc, authorities: &[AuthorityLine]) -> String {
    let dir = node.data_dir.display();
    let mut s = format!(
        "# kistrel net: C Tor {role} {nick}\n\
         TestingTorNetwork 1\n\
         # chutney's rapid bootstrap options\n\
         AssumeReachable 1\n\
         PathsNeededToBuildCircuits 0.25\n\
         TestingDirAuthVoteExit *\n\
         TestingDirAuthVoteGuard *\n\
         TestingMinExitFlagThreshold 0\n\
         V3AuthNIntervalsValid 2\n\
         DataDirectory {dir}\n\
         Nickname {nick}\n\
         RunAsDaemon 0\n\
         ShutdownWaitLength 0\n\
         Log notice file {notice}\n",
        role = match node.role {
            Role::Authority => "authority",
            Role::Relay => "relay",
        },
        nick = node.nickname,
        notice = notice_log(&node.data_dir).display(),
    );
    if node.info_log {
        let _ = writeln!(s, "Log info file {dir}/info.log");
    }
    s.push_str("ProtocolWarnings 1\nSafeLogging 0\n");
    if let Some(pid) = node.owner_pid {
        let _ = writeln!(s, "__OwningControllerProcess {pid}");
    }
    for a in authorities {
        let _ = writeln!(s, "{}", a.line());
    }
    let _ = write!(
        s,
        "SocksPort 0\nAddress {ip}\nORPort {or}\n",
        ip = node.or_port.ip(),
        or = node.or_port
    );
    match node.role {
        Role::Authority => {
            if let Some(d) = node.dir_port {
                let _ = writeln!(s, "DirPort {d}");
            }
            let _ = write!(
                s,
                "AuthoritativeDirectory 1\n\
                 V3AuthoritativeDirectory 1\n\
                 ContactInfo {nick}@test.test\n\
                 # the fastest consensus cycle tor allows\n\
                 TestingV3AuthInitialVotingInterval 5\n\
                 V3AuthVotingInterval 10\n\
                 TestingV3AuthInitialVoteDelay 2\n\
                 V3AuthVoteDelay 2\n\
                 TestingV3AuthInitialDistDelay 2\n\
                 V3AuthDistDelay 2\n\
                 ExitRelay 0\n",
                nick = node.nickname
            );
        }
        Role::Relay => s.push_str(
            "ExitRelay 1\n\
             ExitPolicyRejectPrivate 0\n\
             ExitPolicy accept 127.0.0.0/8:*\n\
             ExitPolicy accept *:*\n",
        ),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> AuthorityLine {
        AuthorityLine {
            nickname: "auth1".into(),
            or_port: "127.0.0.1:7100".parse().unwrap(),
            dir_port: "127.0.0.1:7101".parse().unwrap(),
            fingerprint: "73FA0D40D26A6E112B9A16AF77859D83A56DFBF4".into(),
            v3ident: "5BCEC78A161FA14F7101019171755FDDBC00428F".into(),
        }
    }

    fn lines(s: &str) -> Vec<&str> {
        s.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn authority_line_is_tors_syntax() {
        assert_eq!(
            auth().line(),
            "DirAuthority auth1 orport=7100 no-v2 \
             v3ident=5BCEC78A161FA14F7101019171755FDDBC00428F 127.0.0.1:7101 \
             73FA0D40D26A6E112B9A16AF77859D83A56DFBF4"
        );
    }

    #[test]
    fn relay_torrc_is_an_exit_for_loopback_with_the_authorities() {
        let node = NodeTorrc {
            nickname: "ctor1".into(),
            role: Role::Relay,
            data_dir: "/n/ctor1".into(),
            or_port: "127.0.0.1:7102".parse().unwrap(),
            dir_port: None,
            info_log: false,
            owner_pid: Some(42),
        };
        let text = torrc(&node, &[auth()]);
        let l = lines(&text);
        for want in [
            "TestingTorNetwork 1",
            "AssumeReachable 1",
            "DataDirectory /n/ctor1",
            "Nickname ctor1",
            "Log notice file /n/ctor1/notice.log",
            "ProtocolWarnings 1",
            "SafeLogging 0",
            "__OwningControllerProcess 42",
            auth().line().as_str(),
            "SocksPort 0",
            "Address 127.0.0.1",
            "ORPort 127.0.0.1:7102",
            "ExitRelay 1",
            "ExitPolicyRejectPrivate 0",
            "ExitPolicy accept 127.0.0.0/8:*",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }
        for absent in ["DirPort", "AuthoritativeDirectory", "Log info"] {
            assert!(!text.contains(absent), "{absent} in a relay's torrc");
        }
        // Each option once (tor would take a repeated one as a list or refuse it).
        let mut keys: Vec<&str> = l
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|k| *k != "ExitPolicy")
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "{text}");
    }

    #[test]
    fn authority_torrc_votes_fast_and_is_no_exit() {
        let node = NodeTorrc {
            nickname: "auth1".into(),
            role: Role::Authority,
            data_dir: "/n/auth1".into(),
            or_port: "127.0.0.1:7100".parse().unwrap(),
            dir_port: Some("127.0.0.1:7101".parse().unwrap()),
            info_log: true,
            owner_pid: None,
        };
        let text = torrc(&node, &[auth()]);
        let l = lines(&text);
        for want in [
            "DirPort 127.0.0.1:7101",
            "AuthoritativeDirectory 1",
            "V3AuthoritativeDirectory 1",
            "TestingV3AuthInitialVotingInterval 5",
            "V3AuthVotingInterval 10",
            "ExitRelay 0",
            "Log info file /n/auth1/info.log",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("ExitPolicy"));
        assert!(!text.contains("__OwningControllerProcess"));
    }
}
