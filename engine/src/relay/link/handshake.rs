//! The in-protocol ("v3") handshake of one channel after VERSIONS: CERTS, AUTH_CHALLENGE,
//! AUTHENTICATE and NETINFO, for both roles (tor-spec 4; C Tor's channeltls.c is the
//! reference for what each side accepts).
//!
//! ```text
//!   initiator                                responder
//!   VERSIONS ------------------------------> VERSIONS, CERTS(2,7,4,5), AUTH_CHALLENGE, NETINFO
//!   <- CERTS: verify against the target      (SLOG: VERSIONS..AUTH_CHALLENGE as sent)
//!   <- AUTH_CHALLENGE: relay: CERTS(2,7,4,6),
//!      AUTHENTICATE, NETINFO; client: NETINFO -> CERTS: verify (types 2,7,4,6)
//!                                             AUTHENTICATE: fields + signature
//!   <- NETINFO: open                          NETINFO: open (authenticated or a client)
//! ```

use tracing::info;

use crate::crypto::identity::{verify_certs, CertsRole, VerifiedCerts};
use crate::wire::{
    Auth3, Auth3Fields, AuthChallenge, Authenticate, Certs, ChanCmd, Netinfo, VarCell,
};

use super::cells::{
    append_var, auth_challenge_cell, authenticate_cell, certs_cell, netinfo_cell, tls_secrets,
    HandshakeLog, AUTH_METHOD,
};
use super::{Expected, LinkCtx, LinkError, PeerIds};

/// What a channel knows mid-handshake. Boxed in the link state: freed when the channel
/// opens, so open channels carry none of it.
#[derive(Debug, Default)]
pub(super) struct Handshake {
    /// Negotiated version, once the peer's VERSIONS arrived.
    pub(super) version: Option<u16>,
    pub(super) log: HandshakeLog,
    /// The peer's verified CERTS (responder's, or an initiator's).
    peer_certs: Option<VerifiedCerts>,
    /// Responder: SLOG, frozen after our AUTH_CHALLENGE went out.
    slog: Option<[u8; 32]>,
    /// Initiator: an AUTH_CHALLENGE arrived.
    got_auth_challenge: bool,
    /// Responder: the initiator's AUTHENTICATE verified.
    authenticated: bool,
    /// Our NETINFO went out.
    pub(super) sent_netinfo: bool,
}

impl Handshake {
    /// Records a cell we send (whole cells, as on the wire) and appends it to `out`.
    fn send(&mut self, out: &mut Vec<u8>, cell: &VarCell) {
        let start = out.len();
        append_var(out, cell);
        self.log.sent(&out[start..]);
    }

    /// Our NETINFO (never part of SLOG / CLOG). Relays send their clock; clients 0.
    pub(super) fn send_netinfo(&mut self, ctx: &LinkCtx<'_>, out: &mut Vec<u8>) {
        let time = if ctx.keys.is_some() {
            ctx.unix_secs()
        } else {
            0
        };
        netinfo_cell(time, ctx.peer, ctx.my_addrs).append_to(out);
        self.sent_netinfo = true;
    }

    /// Responder, after the peer's VERSIONS: CERTS, AUTH_CHALLENGE (a node without keys has
    /// nothing to prove and sends neither), then NETINFO.
    pub(super) fn respond(
        &mut self,
        ctx: &mut LinkCtx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), LinkError> {
        if let Some(id) = ctx.keys {
            let tls = ctx.auth.own_cert_sha256();
            let link = ctx.link_keys.ensure(id, ctx.rng, ctx.wall, tls)?;
            let certs = certs_cell(id, link, true)?;
            self.send(out, &certs);
            let challenge = auth_challenge_cell(ctx.rng)?;
            self.send(out, &challenge);
            self.slog = Some(self.log.sent_digest());
        }
        self.send_netinfo(ctx, out);
        Ok(())
    }

    /// A CERTS cell from the peer.
    pub(super) fn on_certs(
        &mut self,
        initiator: bool,
        expected: Option<&Expected>,
        v: &VarCell,
        ctx: &mut LinkCtx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), LinkError> {
        if self.peer_certs.is_some() {
            return Err(LinkError::Duplicate { cmd: v.cmd });
        }
        let certs =
            Certs::parse(&v.payload).map_err(|error| LinkError::Malformed { cmd: v.cmd, error })?;
        let role = if initiator {
            CertsRole::Responder {
                tls_cert_sha256: ctx.auth.peer_cert_sha256(),
            }
        } else {
            CertsRole::Initiator
        };
        let verified = verify_certs(&certs, role, ctx.wall).map_err(LinkError::Certs)?;
        if let Some(want) = expected {
            if verified.rsa_id != want.rsa_id {
                return Err(LinkError::wrong_rsa(want.rsa_id, verified.rsa_id));
            }
            if let Some(ed) = want.ed_id.filter(|ed| *ed != verified.ed_id) {
                return Err(LinkError::wrong_ed(ed, verified.ed_id));
            }
        }
        self.peer_certs = Some(verified);
        if initiator && ctx.keys.is_none() {
            // A client knows whom it reached and will not authenticate: NETINFO now, as
            // C Tor's clients do.
            self.send_netinfo(ctx, out);
        }
        Ok(())
    }

    /// Initiator: the responder's AUTH_CHALLENGE. A relay authenticates (if method 3 is
    /// offered); then NETINFO.
    pub(super) fn on_auth_challenge(
        &mut self,
        v: &VarCell,
        ctx: &mut LinkCtx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), LinkError> {
        let cmd = v.cmd;
        let Some(responder) = self.peer_certs.clone() else {
            return Err(LinkError::BeforeCerts { cmd });
        };
        if self.got_auth_challenge {
            return Err(LinkError::Duplicate { cmd });
        }
        self.got_auth_challenge = true;
        let ac = AuthChallenge::parse(&v.payload)
            .map_err(|error| LinkError::Malformed { cmd, error })?;
        if let (Some(id), true) = (ctx.keys, ac.methods.contains(&AUTH_METHOD)) {
            let slog = self.log.received_digest();
            let link = ctx.link_keys.ensure(id, ctx.rng, ctx.wall, None)?;
            let certs = certs_cell(id, link, false)?;
            self.send(out, &certs);
            let scert = ctx.auth.peer_cert_sha256();
            let cid = id.rsa_der_sha256();
            let fields = Auth3Fields {
                cid,
                sid: responder.rsa_der_sha256,
                cid_ed: id.ed_id(),
                sid_ed: responder.ed_id,
                slog,
                clog: self.log.sent_digest(),
                scert: scert.unwrap_or([0; 32]),
                tlssecrets: tls_secrets(ctx.auth, scert.is_some(), &cid)?,
            };
            let authenticate = authenticate_cell(&fields, link, ctx.rng)?;
            self.send(out, &authenticate);
        }
        if !self.sent_netinfo {
            self.send_netinfo(ctx, out);
        }
        Ok(())
    }

    /// Responder: the initiator's AUTHENTICATE, checked field by field, then its signature.
    pub(super) fn on_authenticate(
        &mut self,
        v: &VarCell,
        ctx: &mut LinkCtx<'_>,
    ) -> Result<(), LinkError> {
        let cmd = v.cmd;
        let (Some(id), Some(slog)) = (ctx.keys, self.slog) else {
            return Err(LinkError::UnexpectedHandshakeCell { cmd });
        };
        let Some(initiator) = self.peer_certs.as_ref() else {
            return Err(LinkError::BeforeCerts { cmd });
        };
        if self.authenticated {
            return Err(LinkError::Duplicate { cmd });
        }
        let a =
            Authenticate::parse(&v.payload).map_err(|error| LinkError::Malformed { cmd, error })?;
        if a.auth_type != AUTH_METHOD {
            return Err(LinkError::UnsupportedAuthType(a.auth_type));
        }
        let auth = Auth3::parse(a.auth).map_err(|error| LinkError::Malformed { cmd, error })?;
        let scert = ctx.auth.own_cert_sha256();
        let expected = Auth3Fields {
            cid: initiator.rsa_der_sha256,
            sid: id.rsa_der_sha256(),
            cid_ed: initiator.ed_id,
            sid_ed: id.ed_id(),
            slog,
            clog: self.log.received_digest(),
            scert: scert.unwrap_or([0; 32]),
            tlssecrets: tls_secrets(ctx.auth, scert.is_some(), &initiator.rsa_der_sha256)?,
        };
        if let Some(field) = first_difference(&expected, &auth.fields) {
            return Err(LinkError::AuthenticateMismatch { field });
        }
        let key = initiator
            .auth_key
            .ok_or(LinkError::AuthenticateBadSignature)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|_| LinkError::AuthenticateBadSignature)?;
        key.verify_strict(
            auth.signed,
            &ed25519_dalek::Signature::from_bytes(&auth.sig),
        )
        .map_err(|_| LinkError::AuthenticateBadSignature)?;
        self.authenticated = true;
        Ok(())
    }

    /// NETINFO from the peer: the handshake ends. Returns who the peer proved to be (None:
    /// an unauthenticated client) and the clock skew worth checking (relays' clocks only).
    pub(super) fn on_netinfo(
        &mut self,
        initiator: bool,
        body: &[u8],
        ctx: &mut LinkCtx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(Option<PeerIds>, Option<i64>), LinkError> {
        let cmd = ChanCmd::NETINFO;
        if initiator && self.peer_certs.is_none() {
            return Err(LinkError::BeforeCerts { cmd });
        }
        let netinfo = Netinfo::parse(body).map_err(|error| LinkError::Malformed { cmd, error })?;
        if initiator && !self.sent_netinfo {
            // No AUTH_CHALLENGE came: we do not authenticate, but still owe NETINFO.
            self.send_netinfo(ctx, out);
        }
        let proven = initiator || self.authenticated;
        let peer = self
            .peer_certs
            .as_ref()
            .filter(|_| proven)
            .map(|c| PeerIds {
                rsa_id: c.rsa_id,
                ed_id: c.ed_id,
            });
        let skew =
            (proven && netinfo.time != 0).then(|| ctx.unix_secs_i64() - i64::from(netinfo.time));
        if !initiator && self.peer_certs.is_some() && !self.authenticated {
            info!("initiator sent CERTS but no AUTHENTICATE: treating it as a client");
        }
        Ok((peer, skew))
    }
}

/// The first AUTH0003 field (in tor-spec order) that differs, by its spec name.
fn first_difference(want: &Auth3Fields, got: &Auth3Fields) -> Option<&'static str> {
    let pairs: [(&'static str, &[u8; 32], &[u8; 32]); 8] = [
        ("CID", &want.cid, &got.cid),
        ("SID", &want.sid, &got.sid),
        ("CID_ED", &want.cid_ed, &got.cid_ed),
        ("SID_ED", &want.sid_ed, &got.sid_ed),
        ("SLOG", &want.slog, &got.slog),
        ("CLOG", &want.clog, &got.clog),
        ("SCERT", &want.scert, &got.scert),
        ("TLSSECRETS", &want.tlssecrets, &got.tlssecrets),
    ];
    pairs
        .iter()
        .find(|(_, w, g)| w != g)
        .map(|(name, _, _)| *name)
}
