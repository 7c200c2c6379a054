//! CERTS, AUTH_CHALLENGE, AUTHENTICATE and the cert-spec formats.

use super::super::*;
use super::unhex;

/// Arti (captured): AUTH_CHALLENGE offering methods 1 and 3.
const AUTH_CHALLENGE: &str =
    "00DA5C085DEE4F3656710DA3B73652E48ACD5BAE608335FCA3FB6C4DEE104A51 0002 0001 0003";

/// Arti (captured): an AUTHENTICATE of type 3 (AUTH0003), 0x160 = 352 bytes.
const AUTHENTICATE: &str = "0003 0160 4155544830303033ED6B2ACBAC868D87D1500505BF59196FD38DEF15E1078C46BF97C7EBCC26C2A26AAF7E6B8FF0C27AB8F0047426017D03A413D8C1D00077ED441112C3E88EEE535BA78B2FD74C3910C5FECBD700677DCA931F4B90EA5CD24D4E64F7E9EC9E0F38E4E1E55E42BC72F59E9224E328EB1BBE3D079013B2A04CDBCEB43B7135D365E81B01B6845D789F66F0F62AAF52D906D2252E5F105215A627123C05AF782D7B0D64C41C30AFB6660B3DB1028868104E2560CB527568241992B80855101D3BF6EFA987F7A56C132A0CF38B0097AA215CC58FF089AFCC15C0ABB3947E68137CD8554E336C435E4633F88909919E5448F80CDDBD5987D85407A95A2BBC898C7004318265719D99C7B549C276CDEE38CE9202395CB7E1EBD9B3D47C1F4BC254AA12798BA1480400A3CC8067518A9BBDD453E601579429CF2E72D6C175DA0A412D99ECA1079015651E95E8F40AD8BEC3CB496E83C0C66D10F4C606";

/// Arti (captured, tor-cert `test_valid_ed`): a type-4 certificate with the
/// signed-with-key extension.
const ED_CERT_4: &str = "01 04 0006CC2A 01 F82294B866A31F01FC5D0DA8572850A9B929545C3266558D7D2316E3B74172B0
    01 0020 04 00 DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9
    FF1A5203FA27F86EF7528D89A0845D2520166E340754FFEA2AAE0F612B7CE5DA094A0236CDAC45034B0B6842C18E7F6B51B93A3CF7E60663B8AD061C30A62602";

/// Arti (captured, tor-cert `test_valid_rsa_cc`): a cross-certificate.
const CROSSCERT: &str = "DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9 0006DA3A 80
    5CF6006F9179066534DE6B45AD47A5C469063EE462762723396DC9F25452A0A52DA3F5087DD239F2A311F6B0D4DFEFF4ABD089DC3D0237A0ABAB19EB2045B91CDCAF04BE0A72D548A27BF2E77BD876ECFE5E1BE622350DA6BF31F6E306ED896488DD5B39409B23FC3EB7B2C9F7328EB18DA36D54D80575899EA6507CCBFCDF1F";

#[test]
fn test_auth_challenge() {
    let bytes = unhex(AUTH_CHALLENGE);
    let ac = AuthChallenge::parse(&bytes).unwrap();
    assert_eq!(ac.challenge[..4], [0x00, 0xDA, 0x5C, 0x08]);
    assert_eq!(ac.methods, vec![1, 3]);
    let cell = ac.to_var_cell().unwrap();
    assert_eq!(cell.cmd, ChanCmd::AUTH_CHALLENGE);
    assert_eq!(cell.payload, bytes);
    // Extra bytes after the methods are ignored (tor-spec 4.3).
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[1, 2, 3]);
    assert_eq!(AuthChallenge::parse(&longer).unwrap(), ac);
    // A method list running past the end.
    let short = &bytes[..bytes.len() - 1];
    assert_eq!(
        AuthChallenge::parse(short),
        Err(Error::Truncated {
            field: "auth_challenge methods"
        })
    );
}

#[test]
fn test_authenticate() {
    let bytes = unhex(AUTHENTICATE);
    let a = Authenticate::parse(&bytes).unwrap();
    assert_eq!(a.auth_type, Authenticate::ED25519_SHA256_RFC5705);
    assert_eq!(a.auth.len(), 352);
    assert_eq!(a.to_var_cell().unwrap().payload, bytes);
    let auth = Auth3::parse(a.auth).unwrap();
    assert_eq!(auth.signed.len(), Auth3::SIGNED_LEN);
    assert_eq!(auth.fields.cid[..4], [0xED, 0x6B, 0x2A, 0xCB]);
    assert_eq!(&auth.sig[60..], &[0x10, 0xF4, 0xC6, 0x06][..]);
    // The fields and RAND re-encode to the signed part.
    assert_eq!(&auth.fields.signed_bytes(&auth.rand)[..], auth.signed);
    // AuthLen past the payload.
    assert_eq!(
        Authenticate::parse(&bytes[..100]),
        Err(Error::Truncated {
            field: "authenticate authenticator"
        })
    );
}

#[test]
fn test_auth3_rejections() {
    let bytes = unhex(AUTHENTICATE);
    let auth = &bytes[4..];
    assert_eq!(
        Auth3::parse(&auth[..351]),
        Err(Error::BadLength {
            field: "auth3",
            len: 351
        })
    );
    let mut other_type = auth.to_vec();
    other_type[7] = b'1';
    assert_eq!(
        Auth3::parse(&other_type),
        Err(Error::BadValue {
            field: "auth3 type"
        })
    );
    // Extra signed bytes between RAND and SIG are allowed and signed.
    let mut longer = auth[..Auth3::SIGNED_LEN].to_vec();
    longer.extend_from_slice(b"extra");
    longer.extend_from_slice(&auth[Auth3::SIGNED_LEN..]);
    let parsed = Auth3::parse(&longer).unwrap();
    assert_eq!(parsed.signed.len(), Auth3::SIGNED_LEN + 5);
}

#[test]
fn test_certs() {
    let c4 = unhex(ED_CERT_4);
    let cc = unhex(CROSSCERT);
    let certs = Certs {
        certs: vec![
            (CertType::ED_ID_SIGNING, &c4),
            (CertType::RSA_ED_CROSSCERT, &cc),
        ],
    };
    let cell = certs.to_var_cell().unwrap();
    assert_eq!(cell.cmd, ChanCmd::CERTS);
    assert_eq!(cell.payload.len(), certs.buffer_len());
    assert_eq!(&cell.payload[..4], &[2, 4, 0x00, 0x8C]);
    let parsed = Certs::parse(&cell.payload).unwrap();
    assert_eq!(parsed, certs);
    assert_eq!(parsed.only(CertType::ED_ID_SIGNING), Ok(Some(&c4[..])));
    assert_eq!(parsed.only(CertType::RSA_ID), Ok(None));
    let mut dup = parsed.clone();
    dup.certs.push(dup.certs[0]);
    assert_eq!(
        dup.only(CertType::ED_ID_SIGNING),
        Err(CertType::ED_ID_SIGNING)
    );
    // A length running past the payload.
    assert_eq!(
        Certs::parse(&cell.payload[..50]),
        Err(Error::Truncated {
            field: "certs certificate"
        })
    );
    assert_eq!(
        Certs::parse(&[]),
        Err(Error::Truncated {
            field: "certs count"
        })
    );
}

#[test]
fn test_ed25519_cert() {
    let bytes = unhex(ED_CERT_4);
    let cert = Ed25519Cert::parse(&bytes).unwrap();
    assert_eq!(cert.cert_type, 4);
    assert_eq!(cert.expiration_hours, 0x0006_CC2A);
    assert_eq!(cert.key_type, tor_cert::key_type::ED25519);
    assert_eq!(cert.certified_key[..2], [0xF8, 0x22]);
    assert_eq!(cert.signed_with.unwrap()[..2], [0xDC, 0xB6]);
    assert_eq!(cert.signed.len(), bytes.len() - 64);
    // Re-encoding the unsigned part gives the signed bytes back.
    let mut out = vec![0xa5; cert.unsigned_len()];
    assert_eq!(cert.emit_unsigned(&mut out), Ok(cert.unsigned_len()));
    assert_eq!(&out[..], cert.signed);

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        Ed25519Cert::parse(&trailing),
        Err(Error::BadLength { .. })
    ));
    let mut version2 = bytes.clone();
    version2[0] = 2;
    assert!(matches!(
        Ed25519Cert::parse(&version2),
        Err(Error::BadValue { .. })
    ));
    // An unknown extension that affects validation makes the certificate unusable; one
    // that does not is skipped.
    let mut critical = bytes.clone();
    critical[42] = 9; // extension type
    critical[43] = 1; // AFFECTS_VALIDATION
    assert!(matches!(
        Ed25519Cert::parse(&critical),
        Err(Error::BadValue { .. })
    ));
    critical[43] = 0;
    assert_eq!(Ed25519Cert::parse(&critical).unwrap().signed_with, None);
    // The signed-with-key extension's flags are kept: a cert whose flags byte is not 0
    // (found by the link_auth fuzz target: 6) still emits exactly the bytes it was signed
    // over.
    let mut flagged = bytes.clone();
    flagged[43] = 6;
    let cert = Ed25519Cert::parse(&flagged).unwrap();
    assert_eq!(cert.signed_with_flags, 6);
    let mut out = vec![0; cert.unsigned_len()];
    assert_eq!(cert.emit_unsigned(&mut out), Ok(cert.unsigned_len()));
    assert_eq!(&out[..], cert.signed);
}

#[test]
fn test_rsa_crosscert() {
    let bytes = unhex(CROSSCERT);
    let cc = RsaCrosscert::parse(&bytes).unwrap();
    assert_eq!(cc.ed_key[..2], [0xDC, 0xB6]);
    assert_eq!(cc.expiration_hours, 0x0006_DA3A);
    assert_eq!(cc.signature.len(), 128);
    assert_eq!(
        RsaCrosscert::signed_part(&cc.ed_key, cc.expiration_hours)[..],
        *cc.signed
    );
    let again = RsaCrosscert::encode(
        &RsaCrosscert::signed_part(&cc.ed_key, cc.expiration_hours),
        cc.signature,
    )
    .unwrap();
    assert_eq!(again, bytes);
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        RsaCrosscert::parse(&trailing),
        Err(Error::BadLength { .. })
    ));
    assert!(matches!(
        RsaCrosscert::parse(&bytes[..100]),
        Err(Error::Truncated { .. })
    ));
}
