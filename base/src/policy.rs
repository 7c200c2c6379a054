//! Exit policies: `accept|reject ADDR[/BITS]:PORT[-PORT]`, first match wins.
//!
//! The syntax is the subset of Tor's exit-policy lines (dir-spec 2.1.3) that a hand-written
//! kistrel directory needs: `*` for any address or any port, an IPv4 or bracketed IPv6
//! address with an optional prefix length, and a single port or an inclusive port range.
//! An empty policy rejects everything (Tor's "reject *:*" default for a relay that is no exit).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a policy rule did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The rule does not start with `accept` or `reject`.
    #[error("rule must start with \"accept\" or \"reject\": {0:?}")]
    BadAction(String),
    /// No `:PORT` part.
    #[error("rule has no \":PORT\" part: {0:?}")]
    MissingPort(String),
    /// The address is neither `*`, an IPv4 address, nor a bracketed IPv6 address.
    #[error("bad address in rule: {0:?}")]
    BadAddress(String),
    /// The prefix length is not a number or is longer than the address.
    #[error("bad prefix length in rule: {0:?}")]
    BadPrefix(String),
    /// The port is not `*`, `N` or `LO-HI` with `1 <= LO <= HI <= 65535`.
    #[error("bad port or port range in rule: {0:?}")]
    BadPort(String),
}

/// Accept or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// Let the connection out.
    Accept,
    /// Refuse the connection.
    Reject,
}

/// Which addresses a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrPattern {
    /// `*`: any IPv4 or IPv6 address.
    Any,
    /// An address and prefix length; only addresses of the same family match.
    /// INVARIANT: `bits <= 32` for IPv4, `<= 128` for IPv6, and host bits of `addr` are zero.
    Prefix {
        /// Network address (host bits cleared).
        addr: IpAddr,
        /// Prefix length in bits.
        bits: u8,
    },
}

impl AddrPattern {
    fn new_prefix(addr: IpAddr, bits: u8) -> Self {
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(bits))
                };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(bits))
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        AddrPattern::Prefix { addr, bits }
    }

    fn matches(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (AddrPattern::Any, _) => true,
            (
                AddrPattern::Prefix {
                    addr: IpAddr::V4(net),
                    bits,
                },
                IpAddr::V4(ip),
            ) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(bits))
                };
                u32::from(ip) & mask == u32::from(net)
            }
            (
                AddrPattern::Prefix {
                    addr: IpAddr::V6(net),
                    bits,
                },
                IpAddr::V6(ip),
            ) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(bits))
                };
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

/// One rule of an [`ExitPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRule {
    /// What happens on a match.
    pub action: PolicyAction,
    /// Which destination addresses match.
    pub addr: AddrPattern,
    /// First port covered (inclusive). INVARIANT: `1 <= port_lo <= port_hi`.
    pub port_lo: u16,
    /// Last port covered (inclusive).
    pub port_hi: u16,
}

impl PolicyRule {
    fn matches(&self, ip: IpAddr, port: u16) -> bool {
        (self.port_lo..=self.port_hi).contains(&port) && self.addr.matches(ip)
    }

    fn covers_port(&self, port: u16) -> bool {
        (self.port_lo..=self.port_hi).contains(&port)
    }
}

impl FromStr for PolicyRule {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (action, rest) = if let Some(rest) = text.strip_prefix("accept ") {
            (PolicyAction::Accept, rest)
        } else if let Some(rest) = text.strip_prefix("reject ") {
            (PolicyAction::Reject, rest)
        } else {
            return Err(PolicyError::BadAction(s.to_owned()));
        };
        let rest = rest.trim();
        // The port follows the LAST colon: IPv6 addresses are bracketed, so this is unambiguous.
        let (addr_part, port_part) = rest
            .rsplit_once(':')
            .ok_or_else(|| PolicyError::MissingPort(s.to_owned()))?;
        let addr = parse_addr_pattern(addr_part, s)?;
        let (port_lo, port_hi) =
            parse_ports(port_part).ok_or_else(|| PolicyError::BadPort(s.to_owned()))?;
        Ok(PolicyRule {
            action,
            addr,
            port_lo,
            port_hi,
        })
    }
}

fn parse_addr_pattern(text: &str, rule: &str) -> Result<AddrPattern, PolicyError> {
    if text == "*" {
        return Ok(AddrPattern::Any);
    }
    let (ip_text, bits_text) = match text.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (text, None),
    };
    let ip = if let Some(inner) = ip_text.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| PolicyError::BadAddress(rule.to_owned()))?;
        IpAddr::V6(
            inner
                .parse::<Ipv6Addr>()
                .map_err(|_| PolicyError::BadAddress(rule.to_owned()))?,
        )
    } else {
        IpAddr::V4(
            ip_text
                .parse::<Ipv4Addr>()
                .map_err(|_| PolicyError::BadAddress(rule.to_owned()))?,
        )
    };
    let max_bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits_text {
        None => max_bits,
        Some(b) => {
            // Only plain decimal digits: `u8::from_str` would also take a leading '+'.
            if b.is_empty() || !b.bytes().all(|c| c.is_ascii_digit()) {
                return Err(PolicyError::BadPrefix(rule.to_owned()));
            }
            match b.parse::<u8>() {
                Ok(n) if n <= max_bits => n,
                _ => return Err(PolicyError::BadPrefix(rule.to_owned())),
            }
        }
    };
    Ok(AddrPattern::new_prefix(ip, bits))
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p != 0)
}

fn parse_ports(text: &str) -> Option<(u16, u16)> {
    if text == "*" {
        return Some((1, u16::MAX));
    }
    match text.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (parse_port(lo)?, parse_port(hi)?);
            (lo <= hi).then_some((lo, hi))
        }
        None => parse_port(text).map(|p| (p, p)),
    }
}

impl fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            PolicyAction::Accept => "accept",
            PolicyAction::Reject => "reject",
        };
        write!(f, "{action} ")?;
        match self.addr {
            AddrPattern::Any => write!(f, "*")?,
            AddrPattern::Prefix {
                addr: IpAddr::V4(a),
                bits,
            } => {
                write!(f, "{a}")?;
                if bits != 32 {
                    write!(f, "/{bits}")?;
                }
            }
            AddrPattern::Prefix {
                addr: IpAddr::V6(a),
                bits,
            } => {
                write!(f, "[{a}]")?;
                if bits != 128 {
                    write!(f, "/{bits}")?;
                }
            }
        }
        if self.port_lo == 1 && self.port_hi == u16::MAX {
            write!(f, ":*")
        } else if self.port_lo == self.port_hi {
            write!(f, ":{}", self.port_lo)
        } else {
            write!(f, ":{}-{}", self.port_lo, self.port_hi)
        }
    }
}

/// An ordered list of rules; the first rule that matches decides; no match rejects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitPolicy {
    rules: Vec<PolicyRule>,
}

impl ExitPolicy {
    /// A policy from rules in order.
    pub fn new(rules: Vec<PolicyRule>) -> Self {
        ExitPolicy { rules }
    }

    /// `accept *:*`.
    pub fn accept_all() -> Self {
        ExitPolicy::new(vec![PolicyRule {
            action: PolicyAction::Accept,
            addr: AddrPattern::Any,
            port_lo: 1,
            port_hi: u16::MAX,
        }])
    }

    /// The rules in order.
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    /// Parse rule strings, one per element (the directory file's form).
    pub fn from_rules<S: AsRef<str>>(rules: &[S]) -> Result<Self, PolicyError> {
        rules
            .iter()
            .map(|r| r.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(ExitPolicy::new)
    }

    /// Whether a connection to `ip:port` may leave. Port 0 is never allowed.
    pub fn allows(&self, ip: IpAddr, port: u16) -> bool {
        self.rules
            .iter()
            .find(|r| r.matches(ip, port))
            .is_some_and(|r| r.action == PolicyAction::Accept)
    }

    /// Whether some destination address on `port` could be allowed: used to choose an exit
    /// before the address is known (the hostname is resolved by the exit).
    ///
    /// Walks the rules for `port`: an accept rule reached first means "some address could get
    /// out"; a reject rule only ends the search when it covers every address (`*`), since a
    /// narrower reject leaves other addresses to later rules.
    pub fn allows_port(&self, port: u16) -> bool {
        for rule in self.rules.iter().filter(|r| r.covers_port(port)) {
            match (rule.action, rule.addr) {
                (PolicyAction::Accept, _) => return true,
                (PolicyAction::Reject, AddrPattern::Any) => return false,
                (PolicyAction::Reject, AddrPattern::Prefix { .. }) => {}
            }
        }
        false
    }

    /// Whether the policy accepts nothing at all (no accept rule).
    pub fn is_reject_all(&self) -> bool {
        !self.rules.iter().any(|r| r.action == PolicyAction::Accept)
    }
}

impl FromStr for ExitPolicy {
    type Err = PolicyError;

    /// Rules separated by `,` or newlines; empty text is the empty (reject-all) policy.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split([',', '\n'])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(ExitPolicy::new)
    }
}

impl fmt::Display for ExitPolicy {
    /// Rules joined by `", "`; parses back to an equal policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
