//! CERTS, AUTH_CHALLENGE, AUTHENTICATE (with its AUTH0003 authenticator), Ed25519 and
//! RSA->Ed25519 certificates on arbitrary bytes, certificate-chain verification on what
//! parses, and a relay's link handshake fed arbitrary handshake cells; the first byte picks
//! which (see `kistrel_fuzz::link_auth::CHECKS`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    kistrel_fuzz::link_auth::check(which, body);
});
