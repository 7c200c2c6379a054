use super::*;

fn counting_bytes() -> [u8; KEY_MATERIAL_LEN] {
    let mut b = [0u8; KEY_MATERIAL_LEN];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = i as u8;
    }
    b
}

#[test]
fn test_key_material_from_bytes_order() {
    let b = counting_bytes();
    let km = KeyMaterial::from_bytes(&b);
    assert_eq!(km.df[0], 0);
    assert_eq!(km.df[19], 19);
    assert_eq!(km.db[0], 20);
    assert_eq!(km.kf[0], 40);
    assert_eq!(km.kb[0], 56);
    assert_eq!(km.kh[0], 72);
    assert_eq!(km.kh[19], 91);
    assert_eq!(km.to_bytes(), b);
}

#[test]
fn test_key_material_eq_and_debug() {
    let b = counting_bytes();
    let a = KeyMaterial::from_bytes(&b);
    assert_eq!(a, KeyMaterial::from_bytes(&b));
    for i in 0..KEY_MATERIAL_LEN {
        let mut c = b;
        c[i] ^= 1;
        assert_ne!(a, KeyMaterial::from_bytes(&c), "byte {i} ignored by ==");
    }
    let shown = format!("{a:?}");
    assert_eq!(shown, "KeyMaterial { .. }");
}

#[test]
fn test_handshake_error_kind() {
    use crate::{ErrorKind, HasKind};

    let cases = [
        (HandshakeError::BadLength, ErrorKind::PeerProtocol),
        (HandshakeError::UnknownRelay, ErrorKind::PeerProtocol),
        (HandshakeError::BadAuth, ErrorKind::PeerProtocol),
        (HandshakeError::ZeroSharedSecret, ErrorKind::PeerProtocol),
        (HandshakeError::Internal, ErrorKind::Internal),
    ];
    for (error, kind) in cases {
        assert_eq!(error.kind(), kind, "{error:?}");
    }
}
