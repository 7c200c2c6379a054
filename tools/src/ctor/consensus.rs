//! The C Tor relays of a network, read from its microdescriptor consensus and
//! microdescriptors with Arti's `tor-netdoc`.
//!
//! ```text
//! cached-certs ──parse, self-signature, validity──► authority certs ─┐
//! cached-microdesc-consensus ──parse──► signature (by those certs), validity now
//!      │ r: nickname, RSA identity, IPv4:ORPort   s: flags   w: bandwidth   m: digest
//!      ▼
//! cached-microdescs{,.new} ──parse──► by SHA-256: ntor-onion-key, id ed25519, p (policy)
//! ```
//!
//! A relay listed in the consensus whose microdescriptor has not arrived yet is reported by
//! nickname (the wait for a ready network retries until there are none).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use kistrel_pathsel::{ExitPolicy, Flag, RelayFlags, RelayInfo};
use tor_checkable::{ExternallySigned, SelfSigned, TimeBound};
use tor_netdoc::doc::authcert::AuthCert;
use tor_netdoc::doc::microdesc::{MicrodescAndHash, MicrodescReader};
use tor_netdoc::doc::netstatus::{MdConsensus, RelayWeight};
use tor_netdoc::types::policy::PortPolicy;
use tor_netdoc::types::relay_flags::RelayFlag;
use tor_netdoc::AllowAnnotations;

use super::error::CtorError;

/// One C Tor relay as the consensus and its microdescriptor describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtorRelay {
    /// Nickname.
    pub nickname: String,
    /// RSA identity digest (the fingerprint).
    pub identity: [u8; 20],
    /// Ed25519 master identity key.
    pub ed25519_identity: [u8; 32],
    /// ntor onion key.
    pub ntor_key: [u8; 32],
    /// IPv4 ORPort.
    pub address: SocketAddr,
    /// The flags kistrel's directory knows (Guard, Exit, Fast, Stable, Running, Valid).
    pub flags: RelayFlags,
    /// Consensus weight (`w Bandwidth=`).
    pub bandwidth: u32,
    /// The IPv4 policy summary as rules: `accept *:LO-HI, ..., reject *:*`.
    pub exit_policy: ExitPolicy,
}

impl CtorRelay {
    /// As an entry of kistrel's directory.
    pub fn relay_info(&self) -> RelayInfo {
        RelayInfo {
            nickname: self.nickname.clone(),
            identity: self.identity,
            ed25519_identity: self.ed25519_identity,
            ntor_key: self.ntor_key,
            address: self.address,
            bandwidth: self.bandwidth,
            flags: self.flags,
            family: Vec::new(),
            exit_policy: self.exit_policy.clone(),
        }
    }
}

/// What a consensus says, so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relays {
    /// Relays with their microdescriptor, in consensus order.
    pub relays: Vec<CtorRelay>,
    /// Nicknames listed without a microdescriptor yet.
    pub without_microdesc: Vec<String>,
}

/// The files of a directory cache (an authority's DataDirectory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocFiles {
    /// Authority certificates.
    pub certs: PathBuf,
    /// The microdescriptor-flavoured consensus.
    pub consensus: PathBuf,
    /// Microdescriptor store and journal (either may be absent).
    pub microdescs: [PathBuf; 2],
}

impl DocFiles {
    /// The cache files in a DataDirectory.
    pub fn in_data_dir(dir: &Path) -> DocFiles {
        DocFiles {
            certs: dir.join("cached-certs"),
            consensus: dir.join("cached-microdesc-consensus"),
            microdescs: [
                dir.join("cached-microdescs"),
                dir.join("cached-microdescs.new"),
            ],
        }
    }

    /// Read and check them at `now`; `Ok(None)` while there is no consensus yet.
    pub fn read(&self, now: SystemTime) -> Result<Option<Relays>, CtorError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CtorError::Io {
                what: "reading",
                path: path.to_path_buf(),
                source,
            })
        };
        if !self.consensus.exists() {
            return Ok(None);
        }
        let certs = read(&self.certs)?;
        let consensus = read(&self.consensus)?;
        let mut mds = String::new();
        for p in self.microdescs.iter().filter(|p| p.exists()) {
            mds.push_str(&read(p)?);
        }
        let docs = Docs {
            certs: (&certs, &self.certs),
            consensus: (&consensus, &self.consensus),
            microdescs: (&mds, &self.microdescs[0]),
        };
        docs.relays(now).map(Some)
    }
}

/// Document texts with the files they came from (for errors).
#[derive(Debug, Clone, Copy)]
pub struct Docs<'a> {
    /// Authority certificates.
    pub certs: (&'a str, &'a Path),
    /// The microdescriptor consensus.
    pub consensus: (&'a str, &'a Path),
    /// All microdescriptors, concatenated (annotations allowed).
    pub microdescs: (&'a str, &'a Path),
}

impl Docs<'_> {
    fn doc_err(what: &'static str, path: &Path) -> impl FnOnce(tor_netdoc::Error) -> CtorError {
        let path = path.to_path_buf();
        move |source| CtorError::Document {
            what,
            path,
            source: Box::new(source),
        }
    }

    fn authority_certs(&self, now: SystemTime) -> Result<Vec<AuthCert>, CtorError> {
        let (text, path) = self.certs;
        let unverified = |problem| CtorError::Unverified {
            path: path.to_path_buf(),
            problem,
        };
        AuthCert::parse_multiple(text)
            .map_err(Self::doc_err("authority certificates", path))?
            .map(|c| {
                let c = c.map_err(Self::doc_err("authority certificates", path))?;
                c.check_signature()
                    .map_err(|_| unverified("an authority certificate's signature is bad"))?
                    .if_valid_at(&now)
                    .map_err(|_| unverified("an authority certificate is not valid now"))
            })
            .collect()
    }

    /// Check the consensus (signed by the certs, valid at `now`) and join each relay with its
    /// microdescriptor.
    ///
    /// A consensus without a single router entry lists no relays: an authority's first
    /// consensus can be such, made before any relay's descriptor arrived, and `tor-netdoc`
    /// refuses it ("unexpected entry ... directory-footer"). It is read as no relays yet, so
    /// the wait for a ready network goes on (a CI run failed on it) rather than ending with
    /// an error; it says nothing about any relay, so nothing is trusted without a signature.
    pub fn relays(&self, now: SystemTime) -> Result<Relays, CtorError> {
        let certs = self.authority_certs(now)?;
        let (text, path) = self.consensus;
        let routerless = text.starts_with("network-status-version ")
            && text.lines().any(|l| l == "directory-footer")
            && !text.lines().any(|l| l.starts_with("r "));
        if routerless {
            return Ok(Relays::default());
        }
        let unverified = |problem| CtorError::Unverified {
            path: path.to_path_buf(),
            problem,
        };
        let (_, _, unchecked) =
            MdConsensus::parse(text).map_err(Self::doc_err("consensus", path))?;
        let consensus = unchecked
            .if_valid_at(&now)
            .map_err(|_| unverified("it is not valid now"))?
            .set_n_authorities(certs.len())
            .check_signature(&certs)
            .map_err(|_| unverified("it is not signed by the network's authorities"))?;
        let (md_text, md_path) = self.microdescs;
        let mut by_digest: HashMap<[u8; 32], MicrodescAndHash> = HashMap::new();
        for md in MicrodescReader::new(md_text, &AllowAnnotations::AnnotationsAllowed)
            .map_err(Self::doc_err("microdescriptors", md_path))?
        {
            let md = md
                .map_err(Self::doc_err("microdescriptors", md_path))?
                .into_microdesc();
            by_digest.insert(md.sha256, md);
        }
        let mut out = Relays::default();
        for rs in consensus.relays() {
            let Some(md) = by_digest.get(rs.md_digest()) else {
                out.without_microdesc.push(rs.nickname().to_owned());
                continue;
            };
            let Some(address) = rs.addrs().find(SocketAddr::is_ipv4) else {
                continue;
            };
            // Fixed-size keys behind slices: a length other than 20/32 cannot come out of
            // the parser.
            let (Ok(identity), Ok(ed25519_identity)) = (
                <[u8; 20]>::try_from(rs.rsa_identity().as_bytes()),
                <[u8; 32]>::try_from(md.md.ed25519_id().as_bytes()),
            ) else {
                continue;
            };
            let known = [
                (RelayFlag::Guard, Flag::Guard),
                (RelayFlag::Exit, Flag::Exit),
                (RelayFlag::Fast, Flag::Fast),
                (RelayFlag::Stable, Flag::Stable),
                (RelayFlag::Running, Flag::Running),
                (RelayFlag::Valid, Flag::Valid),
            ];
            let mut flags = RelayFlags::empty();
            for (theirs, ours) in known {
                if rs.flags().contains(theirs) {
                    flags.insert(ours);
                }
            }
            out.relays.push(CtorRelay {
                nickname: rs.nickname().to_owned(),
                identity,
                ed25519_identity,
                ntor_key: *md.md.ntor_key().as_bytes(),
                address,
                flags,
                bandwidth: match rs.weight() {
                    RelayWeight::Measured(w) | RelayWeight::Unmeasured(w) => *w,
                    // A weight kind newer than this parser: no weight.
                    _ => 0,
                },
                exit_policy: policy_from_summary(md.md.ipv4_policy()),
            });
        }
        Ok(out)
    }
}

/// A policy summary (which ports a relay accepts for most addresses) as kistrel's rules:
/// one `accept *:LO-HI` per allowed range, then `reject *:*`; nothing allowed: no rules.
pub fn policy_from_summary(summary: &PortPolicy) -> ExitPolicy {
    use kistrel_pathsel::policy::{AddrPattern, PolicyAction, PolicyRule};
    let rule = |action, port_lo, port_hi| PolicyRule {
        action,
        addr: AddrPattern::Any,
        port_lo,
        port_hi,
    };
    let mut rules = Vec::new();
    let mut start: Option<u16> = None;
    for port in 1..=u16::MAX {
        match (summary.allows_port(port), start) {
            (true, None) => start = Some(port),
            (false, Some(lo)) => {
                rules.push(rule(PolicyAction::Accept, lo, port - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(lo) = start {
        rules.push(rule(PolicyAction::Accept, lo, u16::MAX));
    }
    if !rules.is_empty() {
        rules.push(rule(PolicyAction::Reject, 1, u16::MAX));
    }
    ExitPolicy::new(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // A consensus, its authority's certificate and the microdescriptors, as written by a
    // 1-authority, 3-relay network of tor 0.4.9.11 (valid 23:14:00-23:14:20 on 2026-12-04).
    const CERTS: &str = include_str!("testdata/cached-certs");
    const CONSENSUS: &str = include_str!("testdata/cached-microdesc-consensus");
    const MICRODESCS: &str = include_str!("testdata/cached-microdescs.new");
    const VALID_AFTER: u64 = 1_796_426_040;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn docs<'a>(certs: &'a str, consensus: &'a str, mds: &'a str) -> Docs<'a> {
        Docs {
            certs: (certs, Path::new("certs")),
            consensus: (consensus, Path::new("consensus")),
            microdescs: (mds, Path::new("mds")),
        }
    }

    fn id(hex40: &str) -> [u8; 20] {
        let mut id = [0u8; 20];
        hex::decode_to_slice(hex40, &mut id).unwrap();
        id
    }

    fn ed(b64: &str) -> [u8; 32] {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64)
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// The same consensus with its router entries cut (what an authority can publish before
    /// any relay has uploaded a descriptor): no relays, not an error.
    #[test]
    fn a_consensus_without_routers_lists_no_relays() {
        let start = CONSENSUS.find("\nr ").unwrap() + 1;
        let end = CONSENSUS.find("directory-footer").unwrap();
        let empty = format!("{}{}", &CONSENSUS[..start], &CONSENSUS[end..]);
        assert!(MdConsensus::parse(&empty).is_err(), "tor-netdoc refuses it");
        let found = docs(CERTS, &empty, MICRODESCS)
            .relays(at(VALID_AFTER + 10))
            .unwrap();
        assert_eq!(found, Relays::default());
    }

    #[test]
    fn reads_every_relay_with_its_keys_flags_and_policy() {
        let found = docs(CERTS, CONSENSUS, MICRODESCS)
            .relays(at(VALID_AFTER + 10))
            .unwrap();
        assert!(found.without_microdesc.is_empty());
        let nicks: Vec<&str> = found.relays.iter().map(|r| r.nickname.as_str()).collect();
        assert_eq!(nicks, ["ctor2", "ctor1", "auth1", "ctor3"]);
        let ctor1 = &found.relays[1];
        // The identities tor itself wrote into ctor1's DataDirectory (fingerprint files).
        assert_eq!(
            ctor1.identity,
            id("3814745FCE626AFB8148AD6260C4434285378616")
        );
        assert_eq!(
            ctor1.ed25519_identity,
            ed("VpG4qsGaWo/2exDtpVLOmXsFOlzYj6QaAiL9hPcykDk")
        );
        assert_eq!(
            ctor1.ntor_key,
            ed("d3fRZZhQRwaOnaYSWM6WtBYdmC5Z2OQQnHrsjcmQQwc")
        );
        assert_eq!(ctor1.address, "127.0.0.1:7102".parse().unwrap());
        assert_eq!(ctor1.bandwidth, 3);
        let flags: Vec<Flag> = ctor1.flags.iter().collect();
        assert_eq!(
            flags,
            [
                Flag::Guard,
                Flag::Exit,
                Flag::Stable,
                Flag::Running,
                Flag::Valid
            ]
        );
        assert_eq!(
            ctor1.exit_policy.to_string(),
            "accept *:*, reject *:*",
            "p accept 1-65535"
        );
        assert!(ctor1.exit_policy.allows("127.0.0.1".parse().unwrap(), 8080));
        let auth = &found.relays[2];
        assert_eq!(
            auth.identity,
            id("73FA0D40D26A6E112B9A16AF77859D83A56DFBF4")
        );
        assert!(auth.exit_policy.is_reject_all(), "no p line: rejects all");
        assert!(auth.flags.contains(Flag::Fast));
        // As a directory entry.
        let info = ctor1.relay_info();
        assert_eq!(
            (info.identity, info.ntor_key),
            (ctor1.identity, ctor1.ntor_key)
        );
        assert_eq!(info.nickname, "ctor1");
        assert_eq!(info.address, ctor1.address);
    }

    #[test]
    fn a_relay_without_its_microdescriptor_is_named() {
        // Only the first microdescriptor (ctor2's).
        let first_end = MICRODESCS[1..].find("@last-listed").unwrap() + 1;
        let found = docs(CERTS, CONSENSUS, &MICRODESCS[..first_end])
            .relays(at(VALID_AFTER))
            .unwrap();
        let nicks: Vec<&str> = found.relays.iter().map(|r| r.nickname.as_str()).collect();
        assert_eq!(nicks, ["ctor2"]);
        assert_eq!(found.without_microdesc, ["ctor1", "auth1", "ctor3"]);
    }

    #[test]
    fn an_expired_or_unsigned_consensus_is_refused() {
        let e = docs(CERTS, CONSENSUS, MICRODESCS)
            .relays(at(VALID_AFTER + 3600))
            .unwrap_err();
        assert!(
            matches!(
                e,
                CtorError::Unverified {
                    problem: "it is not valid now",
                    ..
                }
            ),
            "{e}"
        );
        // One changed flag breaks the authority's signature.
        let forged = CONSENSUS.replacen("s Exit Guard Running", "s Exit Fast Guard Running", 1);
        assert_ne!(forged, CONSENSUS);
        let e = docs(CERTS, &forged, MICRODESCS)
            .relays(at(VALID_AFTER))
            .unwrap_err();
        assert!(
            matches!(
                e,
                CtorError::Unverified {
                    problem: "it is not signed by the network's authorities",
                    ..
                }
            ),
            "{e}"
        );
        let e = docs(CERTS, "not a consensus", MICRODESCS)
            .relays(at(VALID_AFTER))
            .unwrap_err();
        assert!(
            matches!(
                e,
                CtorError::Document {
                    what: "consensus",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn policy_summaries_become_accept_ranges() {
        let p = |s: &str| policy_from_summary(&s.parse().unwrap()).to_string();
        assert_eq!(p("accept 80,443"), "accept *:80, accept *:443, reject *:*");
        assert_eq!(
            p("reject 25,119-120"),
            "accept *:1-24, accept *:26-118, accept *:121-65535, reject *:*"
        );
        assert_eq!(p("reject 1-65535"), "");
        assert_eq!(p("accept 65535"), "accept *:65535, reject *:*");
    }
}
