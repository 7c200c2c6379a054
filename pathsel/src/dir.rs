//! The directory model: relays, flags, families, exit policies and Tor's position weights.
//!
//! The file format is kistrel's own TOML (see the crate README and docs/spec/wire.md, "Directory
//! file"). Parsing is strict: unknown keys, duplicate identities or nicknames, bad hex, bad
//! base64, bad addresses, unknown flags and bad policy rules are errors that name the line.
//!
//! Family rule (as Tor's, path-spec "family"): two relays are in the same family only when
//! *each* lists the other, by nickname or by `$<40 hex identity>`. A one-sided claim is
//! ignored, so a relay cannot push another out of paths by naming it. Entries naming relays
//! that are not in the directory are kept (they round-trip) but have no effect.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};

use base64::Engine as _;
use kistrel_base::control::HopSpec;
use serde::Deserialize;
use toml::Spanned;

use crate::policy::{ExitPolicy, PolicyError};

mod weights;
pub use weights::{Position, PositionWeights, WEIGHT_SCALE};

mod synthetic;
pub use synthetic::synthetic_directory;

/// The only directory file version this crate reads and writes.
pub const DIRECTORY_VERSION: u32 = 1;

/// A relay flag from the directory (Tor's consensus flags that path selection uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// Suitable as a first hop.
    Guard,
    /// Exit-flagged: counts as exit bandwidth in the position weights.
    Exit,
    /// Fast.
    Fast,
    /// Stable.
    Stable,
    /// Running: only running relays are used.
    Running,
    /// Valid: only valid relays are used.
    Valid,
}

impl Flag {
    /// All flags, in file order.
    pub const ALL: [Flag; 6] = [
        Flag::Guard,
        Flag::Exit,
        Flag::Fast,
        Flag::Stable,
        Flag::Running,
        Flag::Valid,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The flag's name in the directory file.
    pub fn name(self) -> &'static str {
        match self {
            Flag::Guard => "Guard",
            Flag::Exit => "Exit",
            Flag::Fast => "Fast",
            Flag::Stable => "Stable",
            Flag::Running => "Running",
            Flag::Valid => "Valid",
        }
    }

    fn from_name(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A set of [`Flag`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RelayFlags(u8);

impl RelayFlags {
    /// The empty set.
    pub const fn empty() -> Self {
        RelayFlags(0)
    }

    /// A set from a list of flags.
    pub fn from_flags(flags: &[Flag]) -> Self {
        RelayFlags(flags.iter().fold(0, |acc, f| acc | f.bit()))
    }

    /// Whether `flag` is in the set.
    pub fn contains(self, flag: Flag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// Add `flag`.
    pub fn insert(&mut self, flag: Flag) {
        self.0 |= flag.bit();
    }

    /// Remove `flag`.
    pub fn remove(&mut self, flag: Flag) {
        self.0 &= !flag.bit();
    }

    /// The flags in file order.
    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

/// One relay as listed in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayInfo {
    /// Tor nickname: 1-19 ASCII letters or digits.
    pub nickname: String,
    /// 20-byte identity digest (RSA identity fingerprint in Tor).
    pub identity: [u8; 20],
    /// The relay's Ed25519 master identity (file key `ed25519_identity`, base64): the
    /// link handshake checks it and EXTEND2 names it.
    pub ed25519_identity: [u8; 32],
    /// The relay's ntor onion key (curve25519 public key).
    pub ntor_key: [u8; 32],
    /// Where the relay listens (OR port).
    pub address: SocketAddr,
    /// Bandwidth weight (consensus `w Bandwidth=`), arbitrary unit.
    pub bandwidth: u32,
    /// Flags.
    pub flags: RelayFlags,
    /// Declared family: nicknames or `$<hex identity>` (see the module doc for the rule).
    pub family: Vec<String>,
    /// Exit policy; empty rejects everything.
    pub exit_policy: ExitPolicy,
}

impl RelayInfo {
    /// Running and Valid: the relay may appear in a path at all.
    pub fn is_usable(&self) -> bool {
        self.flags.contains(Flag::Running) && self.flags.contains(Flag::Valid)
    }

    /// What a worker needs to build a circuit through this relay.
    pub fn hop_spec(&self) -> HopSpec {
        HopSpec {
            id: self.identity,
            ed_id: self.ed25519_identity,
            ntor_key: self.ntor_key,
            addr: self.address,
        }
    }

    /// Whether this relay's family list names `other` (by nickname or `$hex` identity).
    fn names(&self, other: &RelayInfo) -> bool {
        self.family
            .iter()
            .any(|entry| match entry.strip_prefix('$') {
                Some(hex_id) => hex::decode(hex_id).is_ok_and(|id| id == other.identity),
                None => entry.eq_ignore_ascii_case(&other.nickname),
            })
    }
}

/// What was wrong in a malformed directory file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirProblem {
    /// TOML syntax, a missing or unknown key, or a wrong type (the toml crate's message).
    #[error("{0}")]
    Toml(String),
    /// `version` is not [`DIRECTORY_VERSION`].
    #[error("unsupported directory version {0} (this build reads version 1)")]
    UnsupportedVersion(u32),
    /// Nickname not 1-19 ASCII alphanumerics.
    #[error("bad nickname {0:?}: want 1-19 ASCII letters or digits")]
    BadNickname(String),
    /// Identity is not 40 hex digits.
    #[error("bad identity {0:?}: want 40 hex digits (20 bytes)")]
    BadIdentity(String),
    /// `ed25519_identity` is not base64 of 32 bytes.
    #[error("bad ed25519_identity {0:?}: want base64 of 32 bytes")]
    BadEd25519Identity(String),
    /// `ntor_key` is not base64 of 32 bytes.
    #[error("bad ntor_key {0:?}: want base64 of 32 bytes")]
    BadNtorKey(String),
    /// Address is not `IPv4:port` or `[IPv6]:port`.
    #[error("bad address {0:?}: want IPv4:port or [IPv6]:port")]
    BadAddress(String),
    /// A flag name this crate does not know.
    #[error("unknown flag {0:?} (known: Guard, Exit, Fast, Stable, Running, Valid)")]
    UnknownFlag(String),
    /// A family entry that is neither a nickname nor `$<40 hex>`.
    #[error("bad family entry {0:?}: want a nickname or $<40 hex digits>")]
    BadFamily(String),
    /// An exit policy rule that does not parse.
    #[error("bad exit policy rule: {0}")]
    BadPolicy(#[from] PolicyError),
    /// A second relay with an identity already listed.
    #[error("duplicate identity {0}")]
    DuplicateIdentity(String),
    /// A second relay with a nickname already listed (families name relays by nickname).
    #[error("duplicate nickname {0:?}")]
    DuplicateNickname(String),
    /// A position weight above the scale.
    #[error("weight {name} = {value} is above the scale {WEIGHT_SCALE}")]
    WeightOutOfRange {
        /// Which weight.
        name: &'static str,
        /// Its value.
        value: u32,
    },
}

/// Error reading a directory file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// The file could not be read.
    #[error("cannot read directory file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed at `line` (1-based; 0 when the toml crate gave no position).
    #[error("directory file line {line}: {problem}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        problem: DirProblem,
    },
}

impl DirError {
    /// The 1-based line of a malformed file, if this is a parse error with a position.
    pub fn line(&self) -> Option<usize> {
        match self {
            DirError::Malformed { line, .. } if *line > 0 => Some(*line),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    version: Spanned<u32>,
    weights: Option<Spanned<RawWeights>>,
    #[serde(default)]
    relay: Vec<RawRelay>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)] // the keys are Tor's consensus weight names
struct RawWeights {
    Wgg: u32,
    Wgm: u32,
    Wgd: u32,
    Wmg: u32,
    Wmm: u32,
    Wme: u32,
    Wmd: u32,
    Weg: u32,
    Wee: u32,
    Wed: u32,
    Wbd: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    nickname: Spanned<String>,
    identity: Spanned<String>,
    ed25519_identity: Spanned<String>,
    ntor_key: Spanned<String>,
    address: Spanned<String>,
    bandwidth: u32,
    flags: Vec<Spanned<String>>,
    #[serde(default)]
    family: Vec<Spanned<String>>,
    #[serde(default)]
    exit_policy: Vec<Spanned<String>>,
}

/// A parsed directory: relays in file order, position weights, and mutual families.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    relays: Vec<RelayInfo>,
    weights: PositionWeights,
    /// Whether the weights came from the file (written back by `to_toml`) or were computed.
    weights_given: bool,
    /// INVARIANT: `families[i]` is sorted and holds `j` iff relays i and j name each other.
    families: Vec<Vec<u32>>,
    /// INVARIANT: maps each relay's identity to its index in `relays`.
    by_identity: HashMap<[u8; 20], usize>,
}

/// `relay N "NICK", key `KEY`: ` (or `key `KEY`: `) for an error at `path` in `text`, so a
/// type error says which relay and which key. The nickname is looked up in the raw TOML.
fn where_in(text: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let segs: Vec<&Segment> = path.iter().collect();
    let key = segs.iter().rev().find_map(|s| match s {
        // toml's `Spanned` shows up as a private key: skip it.
        Segment::Map { key } if !key.starts_with("$__") => Some(key.as_str()),
        _ => None,
    });
    let relay = match segs.as_slice() {
        [Segment::Map { key }, Segment::Seq { index }, ..] if key == "relay" => Some(*index),
        _ => None,
    };
    let key = match (key, relay) {
        (Some("relay"), Some(_)) | (None, _) => String::new(),
        (Some(k), _) => format!("key `{k}`: "),
    };
    match relay {
        Some(i) => {
            let nick = toml::from_str::<toml::Table>(text)
                .ok()
                .and_then(|t| {
                    let r = t.get("relay")?.as_array()?.get(i)?.get("nickname")?.clone();
                    r.as_str().map(|n| format!(" {n:?}"))
                })
                .unwrap_or_default();
            format!("relay {}{nick}, {key}", i + 1)
        }
        None => key,
    }
}

/// Line (1-based) of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(at)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn malformed(text: &str, span: Range<usize>, problem: DirProblem) -> DirError {
    DirError::Malformed {
        line: line_of(text, span.start),
        problem,
    }
}

fn valid_nickname(s: &str) -> bool {
    (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn parse_identity(s: &str) -> Option<[u8; 20]> {
    let mut id = [0u8; 20];
    hex::decode_to_slice(s, &mut id).ok().map(|()| id)
}

/// A base64 32-byte key (ntor keys, Ed25519 identities).
fn parse_ntor_key(s: &str) -> Option<[u8; 32]> {
    // Accept with or without '=' padding, as Tor writes both (dir-spec: method 30 dropped it).
    let unpadded = s.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .ok()?;
    bytes.try_into().ok()
}

impl Directory {
    /// Build a directory from relays (what `kistrel net` does before `to_toml`); computes the
    /// position weights (dir-spec 3.8.3) when `weights` is `None`. Nicknames and family
    /// entries follow the file's rules; identities and nicknames must be unique.
    pub fn from_relays(
        relays: Vec<RelayInfo>,
        weights: Option<PositionWeights>,
    ) -> Result<Self, DirProblem> {
        let mut ids = HashMap::with_capacity(relays.len());
        let mut nicks = HashMap::with_capacity(relays.len());
        for r in &relays {
            // The same rules as the file parser, so `to_toml` always writes a file that
            // parses back (plain quoting relies on names without quotes or backslashes).
            if !valid_nickname(&r.nickname) {
                return Err(DirProblem::BadNickname(r.nickname.clone()));
            }
            if let Some(bad) = r.family.iter().find(|f| match f.strip_prefix('$') {
                Some(h) => parse_identity(h).is_none(),
                None => !valid_nickname(f),
            }) {
                return Err(DirProblem::BadFamily(bad.clone()));
            }
            if ids.insert(r.identity, ()).is_some() {
                return Err(DirProblem::DuplicateIdentity(hex::encode_upper(r.identity)));
            }
            if nicks.insert(r.nickname.to_ascii_lowercase(), ()).is_some() {
                return Err(DirProblem::DuplicateNickname(r.nickname.clone()));
            }
        }
        Ok(Self::assemble(relays, weights))
    }

    fn assemble(relays: Vec<RelayInfo>, weights: Option<PositionWeights>) -> Self {
        let by_nick: HashMap<String, usize> = relays
            .iter()
            .enumerate()
            .map(|(i, r)| (r.nickname.to_ascii_lowercase(), i))
            .collect();
        let by_identity: HashMap<[u8; 20], usize> = relays
            .iter()
            .enumerate()
            .map(|(i, r)| (r.identity, i))
            .collect();
        let mut families = vec![Vec::new(); relays.len()];
        for (i, r) in relays.iter().enumerate() {
            for entry in &r.family {
                let j = match entry.strip_prefix('$') {
                    Some(h) => parse_identity(h).and_then(|id| by_identity.get(&id).copied()),
                    None => by_nick.get(&entry.to_ascii_lowercase()).copied(),
                };
                if let Some(j) = j {
                    if j != i && relays[j].names(r) {
                        families[i].push(j as u32);
                    }
                }
            }
        }
        for f in &mut families {
            f.sort_unstable();
            f.dedup();
        }
        let weights_given = weights.is_some();
        let weights = weights.unwrap_or_else(|| PositionWeights::compute(&relays));
        Directory {
            relays,
            weights,
            weights_given,
            families,
            by_identity,
        }
    }

    /// Parse the TOML directory file text. A type error names the relay and the key
    /// (`relay 1 "guard1", key `bandwidth`: invalid type ...`).
    pub fn parse(text: &str) -> Result<Self, DirError> {
        let raw: RawDirectory = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let at = where_in(text, e.path());
                let e = e.into_inner();
                DirError::Malformed {
                    line: e.span().map_or(0, |s| line_of(text, s.start)),
                    problem: DirProblem::Toml(format!("{at}{}", e.message().trim())),
                }
            })?;
        if *raw.version.get_ref() != DIRECTORY_VERSION {
            return Err(malformed(
                text,
                raw.version.span(),
                DirProblem::UnsupportedVersion(*raw.version.get_ref()),
            ));
        }
        let weights = match raw.weights {
            None => None,
            Some(w) => {
                let span = w.span();
                let w = w.into_inner();
                let pw = PositionWeights {
                    wgg: w.Wgg,
                    wgm: w.Wgm,
                    wgd: w.Wgd,
                    wmg: w.Wmg,
                    wmm: w.Wmm,
                    wme: w.Wme,
                    wmd: w.Wmd,
                    weg: w.Weg,
                    wee: w.Wee,
                    wed: w.Wed,
                    wbd: w.Wbd,
                };
                if let Some((name, value)) = pw.named().into_iter().find(|(_, v)| *v > WEIGHT_SCALE)
                {
                    return Err(malformed(
                        text,
                        span,
                        DirProblem::WeightOutOfRange { name, value },
                    ));
                }
                Some(pw)
            }
        };
        let mut relays = Vec::with_capacity(raw.relay.len());
        let mut ids: HashMap<[u8; 20], ()> = HashMap::with_capacity(raw.relay.len());
        let mut nicks: HashMap<String, ()> = HashMap::with_capacity(raw.relay.len());
        for r in raw.relay {
            relays.push(Self::relay_from_raw(text, r, &mut ids, &mut nicks)?);
        }
        Ok(Self::assemble(relays, weights))
    }

    fn relay_from_raw(
        text: &str,
        r: RawRelay,
        ids: &mut HashMap<[u8; 20], ()>,
        nicks: &mut HashMap<String, ()>,
    ) -> Result<RelayInfo, DirError> {
        let nickname = r.nickname.get_ref();
        if !valid_nickname(nickname) {
            return Err(malformed(
                text,
                r.nickname.span(),
                DirProblem::BadNickname(nickname.clone()),
            ));
        }
        if nicks.insert(nickname.to_ascii_lowercase(), ()).is_some() {
            return Err(malformed(
                text,
                r.nickname.span(),
                DirProblem::DuplicateNickname(nickname.clone()),
            ));
        }
        let identity = parse_identity(r.identity.get_ref()).ok_or_else(|| {
            malformed(
                text,
                r.identity.span(),
                DirProblem::BadIdentity(r.identity.get_ref().clone()),
            )
        })?;
        if ids.insert(identity, ()).is_some() {
            return Err(malformed(
                text,
                r.identity.span(),
                DirProblem::DuplicateIdentity(hex::encode_upper(identity)),
            ));
        }
        let ed25519_identity = parse_ntor_key(r.ed25519_identity.get_ref()).ok_or_else(|| {
            malformed(
                text,
                r.ed25519_identity.span(),
                DirProblem::BadEd25519Identity(r.ed25519_identity.get_ref().clone()),
            )
        })?;
        let ntor_key = parse_ntor_key(r.ntor_key.get_ref()).ok_or_else(|| {
            malformed(
                text,
                r.ntor_key.span(),
                DirProblem::BadNtorKey(r.ntor_key.get_ref().clone()),
            )
        })?;
        let address = r.address.get_ref().parse::<SocketAddr>().map_err(|_| {
            malformed(
                text,
                r.address.span(),
                DirProblem::BadAddress(r.address.get_ref().clone()),
            )
        })?;
        let mut flags = RelayFlags::empty();
        for f in &r.flags {
            let flag = Flag::from_name(f.get_ref()).ok_or_else(|| {
                malformed(text, f.span(), DirProblem::UnknownFlag(f.get_ref().clone()))
            })?;
            flags.insert(flag);
        }
        let mut family = Vec::with_capacity(r.family.len());
        for entry in r.family {
            let ok = match entry.get_ref().strip_prefix('$') {
                Some(h) => parse_identity(h).is_some(),
                None => valid_nickname(entry.get_ref()),
            };
            if !ok {
                return Err(malformed(
                    text,
                    entry.span(),
                    DirProblem::BadFamily(entry.get_ref().clone()),
                ));
            }
            family.push(entry.into_inner());
        }
        let mut rules = Vec::with_capacity(r.exit_policy.len());
        for rule in &r.exit_policy {
            rules.push(
                rule.get_ref()
                    .parse()
                    .map_err(|e| malformed(text, rule.span(), DirProblem::BadPolicy(e)))?,
            );
        }
        Ok(RelayInfo {
            nickname: r.nickname.into_inner(),
            identity,
            ed25519_identity,
            ntor_key,
            address,
            bandwidth: r.bandwidth,
            flags,
            family,
            exit_policy: ExitPolicy::new(rules),
        })
    }

    /// Read and parse a directory file.
    pub fn load(path: impl AsRef<FsPath>) -> Result<Self, DirError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| DirError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Write the directory file text; [`Directory::parse`] reads it back to an equal value.
    /// Weights are written only when they came from a file or [`Directory::from_relays`].
    pub fn to_toml(&self) -> String {
        let mut out = String::with_capacity(256 * self.relays.len() + 256);
        out.push_str("# kistrel directory\n");
        let _ = writeln!(out, "version = {DIRECTORY_VERSION}");
        if self.weights_given {
            out.push_str("\n[weights]\n");
            for (name, value) in self.weights.named() {
                let _ = writeln!(out, "{name} = {value}");
            }
        }
        for r in &self.relays {
            out.push_str("\n[[relay]]\n");
            // Nicknames, family entries and policy rules are validated to contain no quote
            // or backslash, so plain quoting is exact.
            let _ = writeln!(out, "nickname = \"{}\"", r.nickname);
            let _ = writeln!(out, "identity = \"{}\"", hex::encode_upper(r.identity));
            let ed = base64::engine::general_purpose::STANDARD.encode(r.ed25519_identity);
            let _ = writeln!(out, "ed25519_identity = \"{ed}\"");
            let key = base64::engine::general_purpose::STANDARD.encode(r.ntor_key);
            let _ = writeln!(out, "ntor_key = \"{key}\"");
            let _ = writeln!(out, "address = \"{}\"", r.address);
            let _ = writeln!(out, "bandwidth = {}", r.bandwidth);
            let _ = writeln!(
                out,
                "flags = [{}]",
                quoted_list(r.flags.iter().map(Flag::name))
            );
            if !r.family.is_empty() {
                let _ = writeln!(out, "family = [{}]", quoted_list(r.family.iter()));
            }
            if !r.exit_policy.rules().is_empty() {
                let rules: Vec<String> = r
                    .exit_policy
                    .rules()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let _ = writeln!(out, "exit_policy = [{}]", quoted_list(rules.iter()));
            }
        }
        out
    }

    /// The relays in file order; paths and guards refer to them by index.
    pub fn relays(&self) -> &[RelayInfo] {
        &self.relays
    }

    /// The relay at `index`, if any.
    pub fn relay(&self, index: usize) -> Option<&RelayInfo> {
        self.relays.get(index)
    }

    /// Index of the relay with `identity`.
    pub fn index_of(&self, identity: &[u8; 20]) -> Option<usize> {
        self.by_identity.get(identity).copied()
    }

    /// Whether any two relays are in the same family.
    pub fn has_families(&self) -> bool {
        self.families.iter().any(|f| !f.is_empty())
    }

    /// Position weights in use (given or computed).
    pub fn weights(&self) -> &PositionWeights {
        &self.weights
    }

    /// Whether relays `a` and `b` are in the same (mutually declared) family.
    pub fn same_family(&self, a: usize, b: usize) -> bool {
        self.families
            .get(a)
            .is_some_and(|f| f.binary_search(&(b as u32)).is_ok())
    }
}

fn quoted_list<S: fmt::Display>(items: impl Iterator<Item = S>) -> String {
    let mut s = String::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "\"{item}\"");
    }
    s
}

#[cfg(test)]
mod tests;
