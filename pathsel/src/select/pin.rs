//! Pinned positions: torrc's `EntryNodes`, `MiddleNodes` and `ExitNodes`.
//!
//! A set names relays by nickname or by `$` and the 40 hex digits of the RSA identity (Tor
//! also takes `$HEX=nick`, `$HEX~nick`, country codes and address patterns; kistrel takes
//! the first two forms, which name one relay each, and refuses the rest with a message).
//! An empty set pins nothing. A non-empty set restricts its position to the named relays:
//! they must still qualify for the position (usable; a guard needs the Guard flag, an exit a
//! policy that allows the target), as in Tor, where `EntryNodes` narrows the guard sample
//! and `ExitNodes` the exits.
//!
//! In a config file a set is a list (`EntryNodes = ["relay1", "$0123...CDEF"]`) or torrc's
//! comma-separated string (`EntryNodes = "relay1,relay2"`, also `-o EntryNodes=relay1`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dir::RelayInfo;

/// One entry of a [`NodeSet`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeSpec {
    /// A nickname (matched without regard to ASCII case, as Tor matches nicknames).
    Nickname(String),
    /// An RSA identity fingerprint (`$` + 40 hex digits).
    Identity([u8; 20]),
}

impl NodeSpec {
    /// Parse `nick` or `$HEX40`.
    pub fn parse(s: &str) -> Result<NodeSpec, NodeSetError> {
        let s = s.trim();
        if let Some(hex_id) = s.strip_prefix('$') {
            let mut id = [0u8; 20];
            return match hex::decode_to_slice(hex_id, &mut id) {
                Ok(()) => Ok(NodeSpec::Identity(id)),
                Err(_) => Err(NodeSetError::Unsupported(s.to_owned())),
            };
        }
        if (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(NodeSpec::Nickname(s.to_owned()));
        }
        Err(NodeSetError::Unsupported(s.to_owned()))
    }

    /// Whether this entry names `relay`.
    pub fn matches(&self, relay: &RelayInfo) -> bool {
        match self {
            NodeSpec::Nickname(n) => n.eq_ignore_ascii_case(&relay.nickname),
            NodeSpec::Identity(id) => *id == relay.identity,
        }
    }
}

impl fmt::Display for NodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeSpec::Nickname(n) => f.write_str(n),
            NodeSpec::Identity(id) => write!(f, "${}", hex::encode_upper(id)),
        }
    }
}

/// A set entry kistrel cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeSetError {
    /// Neither a nickname nor `$` + 40 hex digits.
    #[error(
        "{0:?}: want a nickname (1-19 letters or digits) or $ and 40 hex digits \
         (country codes, address patterns and $HEX=nick are not supported)"
    )]
    Unsupported(String),
}

/// A pinned position that the directory cannot fill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// An entry names no relay of the directory.
    #[error("{key}: {entry} is not in the directory")]
    Unknown {
        /// `EntryNodes`, `MiddleNodes` or `ExitNodes`.
        key: &'static str,
        /// The entry.
        entry: String,
    },
    /// No named relay qualifies for the position.
    #[error(
        "{key}: none of {set} can take this position (every relay must be Running and \
         Valid; a guard needs the Guard flag, an exit a policy that accepts something)"
    )]
    NoneEligible {
        /// `EntryNodes`, `MiddleNodes` or `ExitNodes`.
        key: &'static str,
        /// The set as written.
        set: String,
    },
}

/// torrc's `EntryNodes` / `MiddleNodes` / `ExitNodes`: the relays a position may take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSet(Vec<NodeSpec>);

impl NodeSet {
    /// A set from its entries.
    pub fn new(entries: Vec<NodeSpec>) -> Self {
        NodeSet(entries)
    }

    /// Parse torrc's comma-separated form (`"relay1,$HEX"`; blanks around commas ignored).
    pub fn parse_list(s: &str) -> Result<NodeSet, NodeSetError> {
        s.split(',')
            .filter(|e| !e.trim().is_empty())
            .map(NodeSpec::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(NodeSet)
    }

    /// No entries: the position is not pinned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries.
    pub fn entries(&self) -> &[NodeSpec] {
        &self.0
    }

    /// Whether the position admits `relay`: any relay when the set is empty, else a named one.
    pub fn admits(&self, relay: &RelayInfo) -> bool {
        self.0.is_empty() || self.0.iter().any(|e| e.matches(relay))
    }
}

impl fmt::Display for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// What a config file may write: a list of entries or one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSet {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for NodeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawSet::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a list of nicknames or $fingerprints, or one comma-separated string",
            )
        })?;
        let joined = match raw {
            RawSet::One(s) => s,
            RawSet::Many(v) => {
                // An entry with a comma inside a list is an error, not two entries.
                if let Some(bad) = v.iter().find(|e| e.contains(',') || e.trim().is_empty()) {
                    return Err(serde::de::Error::custom(NodeSetError::Unsupported(
                        bad.clone(),
                    )));
                }
                v.join(",")
            }
        };
        NodeSet::parse_list(&joined).map_err(serde::de::Error::custom)
    }
}

impl Serialize for NodeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Conf {
        #[serde(rename = "EntryNodes", default)]
        entry: NodeSet,
    }

    fn conf(text: &str) -> Result<NodeSet, String> {
        toml::from_str::<Conf>(text)
            .map(|c| c.entry)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn test_parse() {
        let hex = "0123456789ABCDEF0123456789abcdef01234567";
        let s = NodeSet::parse_list(&format!(" relay1 , ${hex},ctor2,")).unwrap();
        let mut id = [0u8; 20];
        hex::decode_to_slice(hex, &mut id).unwrap();
        assert_eq!(
            s.entries(),
            [
                NodeSpec::Nickname("relay1".into()),
                NodeSpec::Identity(id),
                NodeSpec::Nickname("ctor2".into())
            ]
        );
        assert_eq!(
            s.to_string(),
            format!("relay1,${},ctor2", hex.to_uppercase())
        );
        assert!(NodeSet::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn list_and_string_forms_are_the_same() {
        assert_eq!(
            conf("EntryNodes = [\"a\", \"b\"]").unwrap(),
            conf("EntryNodes = \"a,b\"").unwrap()
        );
        assert!(conf("").unwrap().is_empty());
    }

    #[test]
    fn unsupported_forms_are_refused_with_the_entry() {
        for bad in [
            "{us}",
            "10.0.0.0/8",
            "$ABCD",
            "$0123456789ABCDEF0123456789ABCDEF01234567=n",
            "a-b",
        ] {
            let e = NodeSet::parse_list(bad).unwrap_err();
            assert_eq!(e, NodeSetError::Unsupported(bad.to_owned()), "{bad}");
        }
        let e = conf("EntryNodes = [\"a,b\"]").unwrap_err();
        assert!(e.contains("\"a,b\""), "{e}");
        let e = conf("EntryNodes = 3").unwrap_err();
        assert!(e.contains("expected a list of nicknames"), "{e}");
    }

    #[test]
    fn admits_by_nickname_any_case_or_identity() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let r = crate::dir::synthetic_directory(1, &mut rng).relays()[0].clone();
        let by_nick = NodeSet::parse_list(&r.nickname.to_uppercase()).unwrap();
        let by_id = NodeSet::new(vec![NodeSpec::Identity(r.identity)]);
        let other = NodeSet::parse_list("nobody").unwrap();
        assert!(by_nick.admits(&r));
        assert!(by_id.admits(&r));
        assert!(!other.admits(&r));
        assert!(NodeSet::default().admits(&r));
    }
}
