//! The cells our side of the link handshake sends, and the running digests of the handshake
//! that AUTHENTICATE's SLOG and CLOG are made of.

use std::net::{IpAddr, SocketAddr};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::crypto::identity::{LinkCerts, RelayIdentity};
use crate::wire::{
    Auth3Fields, AuthChallenge, Authenticate, Cell, CertType, Certs, ChanCell, ChanCmd, Netinfo,
    VarCell, Versions,
};

use super::{LinkError, LINK_VERSIONS};

/// The only authentication method kistrel offers and uses: Ed25519-SHA256-RFC5705.
pub(super) const AUTH_METHOD: u16 = Authenticate::ED25519_SHA256_RFC5705;
/// The RFC 5705 exporter label of AUTH0003 (tor-spec 4.4.2).
pub(super) const EXPORTER_LABEL: &[u8] = b"EXPORTER FOR TOR TLS CLIENT BINDING AUTH0003";

/// SHA-256 of every handshake byte each way (tor-spec 4.4.1 SLOG / CLOG), fed with cells as
/// they are sent and received; a digest is taken by finishing a copy.
#[derive(Clone, Default)]
pub(super) struct HandshakeLog {
    sent: Sha256,
    received: Sha256,
}

impl HandshakeLog {
    /// Bytes we sent (whole cells, as on the wire).
    pub(super) fn sent(&mut self, bytes: &[u8]) {
        self.sent.update(bytes);
    }

    /// A cell we received, re-encoded exactly as it came: VERSIONS with its 2-byte circuit
    /// id (it is always a channel's first cell), everything else with 4.
    pub(super) fn received(&mut self, cell: &ChanCell) {
        match cell {
            ChanCell::Fixed(c) => {
                self.received.update(c.circ_id.to_be_bytes());
                self.received.update([c.cmd.0]);
                self.received.update(c.body);
            }
            ChanCell::Var(v) => {
                let id = v.circ_id.to_be_bytes();
                let id = if v.cmd == ChanCmd::VERSIONS {
                    &id[2..]
                } else {
                    &id[..]
                };
                // Decoded payloads are at most MAX_VAR_PAYLOAD_LEN bytes.
                let len = u16::try_from(v.payload.len()).unwrap_or(u16::MAX);
                self.received.update(id);
                self.received.update([v.cmd.0]);
                self.received.update(len.to_be_bytes());
                self.received.update(&v.payload);
            }
        }
    }

    /// The digest of what we sent so far.
    pub(super) fn sent_digest(&self) -> [u8; 32] {
        self.sent.clone().finalize().into()
    }

    /// The digest of what we received so far.
    pub(super) fn received_digest(&self) -> [u8; 32] {
        self.received.clone().finalize().into()
    }
}

impl core::fmt::Debug for HandshakeLog {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeLog").finish_non_exhaustive()
    }
}

/// Appends our VERSIONS cell (2-byte circuit id, as every VERSIONS) to `out`.
pub(crate) fn append_versions(out: &mut Vec<u8>) {
    let v = Versions {
        versions: LINK_VERSIONS.to_vec(),
    };
    v.to_var_cell().append_to(out, 2);
}

/// Appends a variable-length handshake cell (4-byte circuit id) to `out`.
pub(super) fn append_var(out: &mut Vec<u8>, cell: &VarCell) {
    cell.append_to(out, 4);
}

/// Our NETINFO cell: `time` (0 for clients, tor-spec 4.5), the peer's address as we see it,
/// and our own addresses.
pub(crate) fn netinfo_cell(time: u32, peer: Option<SocketAddr>, mine: &[IpAddr]) -> Cell {
    let mut cell = Cell::new(0, ChanCmd::NETINFO);
    let netinfo = Netinfo {
        time,
        other_addr: peer.map(|p| p.ip()),
        my_addrs: mine.to_vec(),
    };
    // Our own addresses always fit: NETINFO has room for far more than a relay announces.
    let _ = netinfo.emit(&mut cell.body[..]);
    cell
}

/// Our CERTS cell: types 2, 7, 4, then 5 (responder) or 6 (initiator), as C Tor orders them.
pub(super) fn certs_cell(
    id: &RelayIdentity,
    link: &LinkCerts,
    responder: bool,
) -> Result<VarCell, LinkError> {
    let mut certs = Certs::default();
    certs.certs.extend(id.long_term_certs());
    certs.certs.push(if responder {
        (CertType::ED_SIGNING_LINK, link.link_cert())
    } else {
        (CertType::ED_SIGNING_AUTH, link.auth_cert())
    });
    certs.to_var_cell().map_err(|_| LinkError::OwnCerts)
}

/// An AUTH_CHALLENGE with a fresh challenge, offering method 3.
pub(super) fn auth_challenge_cell<R: RngCore + ?Sized>(rng: &mut R) -> Result<VarCell, LinkError> {
    let mut challenge = [0u8; 32];
    rng.fill_bytes(&mut challenge);
    AuthChallenge {
        challenge,
        methods: vec![AUTH_METHOD],
    }
    .to_var_cell()
    .map_err(|_| LinkError::OwnCerts)
}

/// Our AUTHENTICATE: `fields`, fresh RAND, signed with the link-authentication key.
pub(super) fn authenticate_cell<R: RngCore + ?Sized>(
    fields: &Auth3Fields,
    link: &LinkCerts,
    rng: &mut R,
) -> Result<VarCell, LinkError> {
    let mut rand = [0u8; 24];
    rng.fill_bytes(&mut rand);
    let signed = fields.signed_bytes(&rand);
    let mut auth = Vec::with_capacity(signed.len() + 64);
    auth.extend_from_slice(&signed);
    auth.extend_from_slice(&link.sign_auth(&signed));
    Authenticate {
        auth_type: AUTH_METHOD,
        auth: &auth,
    }
    .to_var_cell()
    .map_err(|_| LinkError::OwnCerts)
}

/// TLSSECRETS: the exporter value bound to `cid`; zeros on a plain link (no certificate,
/// no exporter: both ends agree on zeros); an error when TLS is there but cannot export.
pub(super) fn tls_secrets(
    auth: &dyn super::LinkAuth,
    has_tls_cert: bool,
    cid: &[u8; 32],
) -> Result<[u8; 32], LinkError> {
    match auth.export_keying_material(EXPORTER_LABEL, cid) {
        Some(secret) => Ok(secret),
        None if has_tls_cert => Err(LinkError::NoTlsExporter),
        None => Ok([0; 32]),
    }
}
