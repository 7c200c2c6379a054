//! The ntor server handshake (`server_respond_with_secret`) on arbitrary client bytes, with
//! fixed server keys. The first byte picks the mode:
//! - even: the rest is the whole CREATE2 HDATA (any length, any ID/B);
//! - odd: our ID and B are put in front of the rest, so X (and a trailing tail) is fuzzed
//!   past the identity check. If the rest is a 32-byte client secret `x`, a real client
//!   finishes the handshake and must derive the same keys.
#![no_main]

use kistrel_engine::crypto::ntor::{self, NtorKeypair, CLIENT_HDATA_LEN};
use kistrel_engine::crypto::HandshakeError;
use libfuzzer_sys::fuzz_target;

const SERVER_ID: [u8; 20] = [7; 20];
const SERVER_SECRET: [u8; 32] = [0x42; 32];
const SERVER_EPHEMERAL: [u8; 32] = [0x24; 32];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = NtorKeypair::from_secret(SERVER_SECRET);
    let hdata: Vec<u8> = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut h = Vec::with_capacity(52 + rest.len());
        h.extend_from_slice(&SERVER_ID);
        h.extend_from_slice(&keys.public());
        h.extend_from_slice(rest);
        h
    };
    let result = ntor::server_respond_with_secret(SERVER_EPHEMERAL, &SERVER_ID, &keys, &hdata);
    match &result {
        Ok(_) => assert_eq!(hdata.len(), CLIENT_HDATA_LEN),
        Err(HandshakeError::BadLength) => assert_ne!(hdata.len(), CLIENT_HDATA_LEN),
        Err(_) => {}
    }
    // Deterministic given y: a second run agrees.
    let again = ntor::server_respond_with_secret(SERVER_EPHEMERAL, &SERVER_ID, &keys, &hdata);
    match (&result, &again) {
        (Ok((reply, km)), Ok((reply2, km2))) => {
            assert_eq!(reply, reply2);
            assert!(km == km2);
        }
        (Err(e), Err(e2)) => assert_eq!(e, e2),
        _ => panic!("server_respond is not deterministic"),
    }
    // With a 32-byte rest in mode 1, use it as a client secret: the real client and the
    // server must agree on the keys (or the server must have refused a low-order X).
    if mode & 1 == 1 {
        if let Ok(x) = <[u8; 32]>::try_from(rest) {
            let (client, onion) = ntor::client_create_with_secret(x, &SERVER_ID, &keys.public());
            if let Ok((reply, server_keys)) =
                ntor::server_respond_with_secret(SERVER_EPHEMERAL, &SERVER_ID, &keys, &onion)
            {
                let client_keys = client.finish(&reply).expect("client accepts a real reply");
                assert!(
                    client_keys == server_keys,
                    "both sides derive the same keys"
                );
            }
        }
    }
});
