//! Exit side: which BEGIN requests a relay accepts.
//!
//! A relay is an exit only when its configuration carries an exit policy; the default policy
//! rejects everything. A BEGIN naming a literal address is checked against the policy right
//! away; a host name is checked by port here, and the runtime checks the resolved address with
//! [`ExitPolicy::allows`] before it connects (name resolution stays off the data path).

use std::net::IpAddr;

pub use kistrel_base::policy::ExitPolicy;

use crate::wire::EndReason;

/// What a BEGIN asks for, once it passed the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectTarget {
    /// Host name or address literal, as the client sent it (IPv6 without brackets).
    pub host: String,
    /// Target port.
    pub port: u16,
    /// The address, when `host` was a literal.
    pub ip: Option<IpAddr>,
}

/// Checks a BEGIN against the exit policy (`None`: this relay is not an exit).
pub fn check_begin(
    policy: Option<&ExitPolicy>,
    host: &str,
    port: u16,
) -> Result<ConnectTarget, EndReason> {
    let policy = policy.ok_or(EndReason::EXITPOLICY)?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip = bare.parse::<IpAddr>().ok();
    let allowed = match ip {
        Some(ip) => policy.allows(ip, port),
        None => policy.allows_port(port),
    };
    if !allowed {
        return Err(EndReason::EXITPOLICY);
    }
    Ok(ConnectTarget {
        host: bare.to_owned(),
        port,
        ip,
    })
}
