use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use sha2::{Digest, Sha256};

use super::*;
use crate::wire::Certs;

/// A CERTS cell a C Tor relay sent in a chutney network (2020), as Arti's tor-cell test
/// vectors hold it (crates/tor-cell/tests/testvec_chanmsg.rs, `test_certs`): types 1 (the
/// TLS link certificate), 2, 4, 5 and 7.
const CTOR_CERTS: &str = "05
    01 023E 3082023A308201A3A003020102020872AB0FE86C771604300D06092A864886F70D01010B0500301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D301E170D3230303632373030303030305A170D3231303231363233353935395A301C311A301806035504030C117777772E617775676863646E732E6E657430820122300D06092A864886F70D01010105000382010F003082010A0282010100FE255E99E10BE986DDA5DFB4AD7C39E8EFE4E5D79E105AB976942B6829386EB1D7B7AFB5ED4FCBEC8C1A34C34FD2ED182F8B42A0363453B55EE371F21347235277E2357F28AA10DD82D4248F7D1894AB5D2979654F71C350F73AD9F918D71F34F1505F77EC16391C8340F392F3684BA4BB6A7B022C3954C1158F152F9E3B4E328FAB2E4E881903CA0E32204B0FDA8AB62B6E215A7BDEC3F2AE41DC58EEC1252F643A1812A5D71802F48D6133DF79955E01F0287BB4AB8CF95BEBCD2EC66EF5B38C7B5EC08DED3D6E2A1D57289D773D5CB932803B6D97784D1DA36AE71C073ADBB7393714001CD7A082512772A7076DC01166417AF7C50AEF7F15FD0806EB07FF0203010001300D06092A864886F70D01010B050003818100CDA4E06BB6BB238B91188A077EEB0A4722518090FD116AF6CDEEB0E85CF6D8E242CF861F973A252EB5116709373B5AC817E6F848E2CBD76AEF684350D3416AEE5F33D56B96982509CDAF11CCA7260E5ADF6DDD0D017AE9A575C999ADAE50B3FB7027E810D47C8C5C14618C0AA10D307E304FBE50E868ADECB2C9536E2DB51BE0
    02 01BD 308201B930820122A0030201020208607C28BE6C390943300D06092A864886F70D01010B0500301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D301E170D3230303831303030303030305A170D3231303831303030303030305A301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D30819F300D06092A864886F70D010101050003818D0030818902818100D38B1E6CEB946E0DB0751F4CBACE3DCB9688B6C25304227B4710C35AFB73627E50500F5913E158B621802612D1C75827003703338375237552EB3CD3C12F6AB3604E60C1A2D26BB1FBAD206FF023969A90909D6A65A5458A5312C26EBD3A3DAD30302D4515CDCD264146AC18E6FC60A04BD3EC327F04294D96BA5AA25B464C3F0203010001300D06092A864886F70D01010B0500038181003BCE561EA7F95CC00B78AAB5D69573FF301C282A751D4A651921D042F1BECDBA24D918A6D8A5E138DC07BBA0B335478AE37ABD2C93A93932442AE9084329E846170FE0FC4A50AAFC804F311CC3CA4F41D845A7BA5901CBBC3E021E9794AAC70CE1F37B0A951592DB1B64F2B4AFB81AE52DBD9B6FEDE96A5FB8125EB6251EE50A
    04 008C 01040006CC2A01F82294B866A31F01FC5D0DA8572850A9B929545C3266558D7D2316E3B74172B00100200400DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9FF1A5203FA27F86EF7528D89A0845D2520166E340754FFEA2AAE0F612B7CE5DA094A0236CDAC45034B0B6842C18E7F6B51B93A3CF7E60663B8AD061C30A62602
    05 0068 01050006C98A03B4FD606B64E4CBD466B8D76CB131069BAE6F3AA1878857C9F624E31D77A799B8007173E5F8068431D0D3F5EE16B4C9FFD59DF373E152A87281BAE744AA5FCF72171BF4B27C4E8FC1C6A9FC5CA11058BC49647063D7903CFD9F512F89099B27BC0C
    07 00A5 DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E90006DA3A805CF6006F9179066534DE6B45AD47A5C469063EE462762723396DC9F25452A0A52DA3F5087DD239F2A311F6B0D4DFEFF4ABD089DC3D0237A0ABAB19EB2045B91CDCAF04BE0A72D548A27BF2E77BD876ECFE5E1BE622350DA6BF31F6E306ED896488DD5B39409B23FC3EB7B2C9F7328EB18DA36D54D80575899EA6507CCBFCDF1F";

fn unhex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).expect("hex")
}

/// The vector's notional time (Arti's `test_valid_ed`): 2020-09-25T02:13:20Z.
fn ctor_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_601_000_000)
}

fn ctor_tls_digest(payload: &[u8]) -> [u8; 32] {
    let certs = Certs::parse(payload).unwrap();
    let link = certs.only(CertType::RSA_LINK).unwrap().unwrap();
    Sha256::digest(link).into()
}

#[test]
fn ctor_certs_cell_verifies_with_its_tls_certificate() {
    let payload = unhex(CTOR_CERTS);
    let certs = Certs::parse(&payload).unwrap();
    let digest = ctor_tls_digest(&payload);
    // The type-5 certificate certifies exactly this digest (Arti's vector says so too).
    assert_eq!(
        hex::encode_upper(digest),
        "B4FD606B64E4CBD466B8D76CB131069BAE6F3AA1878857C9F624E31D77A799B8"
    );
    let role = CertsRole::Responder {
        tls_cert_sha256: Some(digest),
    };
    let v = verify_certs(&certs, role, ctor_time()).unwrap();
    // The fingerprint of the RSA key in the type-2 certificate (Arti's `test_valid_rsa_cc`).
    assert_eq!(
        hex::encode_upper(v.rsa_id),
        "2F1FB49BB332A9EEC617E41E911C33FB3890AEF3"
    );
    assert_eq!(
        hex::encode_upper(v.ed_id),
        "DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9"
    );
    assert_eq!(v.auth_key, None);
}

#[test]
fn ctor_certs_cell_fails_each_check_it_should() {
    let payload = unhex(CTOR_CERTS);
    let certs = Certs::parse(&payload).unwrap();
    let digest = ctor_tls_digest(&payload);
    let ok = CertsRole::Responder {
        tls_cert_sha256: Some(digest),
    };
    // Another TLS certificate than the one type 5 certifies.
    let other = CertsRole::Responder {
        tls_cert_sha256: Some([7; 32]),
    };
    assert_eq!(
        verify_certs(&certs, other, ctor_time()),
        Err(CertError::TlsCertMismatch)
    );
    // Type 5 expired at 2020-09-28T18:00Z (hour 444810).
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(444_810 * 3600 + 1);
    assert_eq!(
        verify_certs(&certs, ok, later),
        Err(CertError::Expired(CertType::ED_SIGNING_LINK))
    );
    // As an initiator's certificates it lacks type 6.
    assert_eq!(
        verify_certs(&certs, CertsRole::Initiator, ctor_time()),
        Err(CertError::Missing(CertType::ED_SIGNING_AUTH))
    );
    // The 2048-bit TLS certificate offered as the identity certificate.
    let mut swapped = certs.clone();
    let link = certs.only(CertType::RSA_LINK).unwrap().unwrap();
    swapped.certs.retain(|(t, _)| *t != CertType::RSA_ID);
    swapped.certs.push((CertType::RSA_ID, link));
    assert_eq!(
        verify_certs(&swapped, ok, ctor_time()),
        Err(CertError::NotRsa1024)
    );
}

#[test]
fn a_flipped_bit_anywhere_in_a_checked_certificate_is_refused() {
    let payload = unhex(CTOR_CERTS);
    let certs = Certs::parse(&payload).unwrap();
    let role = CertsRole::Responder {
        tls_cert_sha256: Some(ctor_tls_digest(&payload)),
    };
    for ty in [2u8, 4, 5, 7].map(CertType) {
        let body = certs.only(ty).unwrap().unwrap();
        // A byte in the middle (signed data) and the last one (signature).
        for at in [body.len() / 2, body.len() - 1] {
            let mut bad = body.to_vec();
            bad[at] ^= 0x01;
            let mut tampered = certs.clone();
            for (t, c) in tampered.certs.iter_mut() {
                if *t == ty {
                    *c = &bad;
                }
            }
            let err = verify_certs(&tampered, role, ctor_time()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PeerProtocol);
        }
    }
}

/// One generated identity for the whole test binary (RSA key generation is slow).
fn identity() -> &'static RelayIdentity {
    static ID: OnceLock<RelayIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        let mut rng = ChaCha12Rng::seed_from_u64(5);
        RelayIdentity::generate(&mut rng, now(), &Lifetimes::default()).unwrap()
    })
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn our_certs<'a>(id: &'a RelayIdentity, link: &'a LinkCerts, responder: bool) -> Certs<'a> {
    let mut certs = Certs::default();
    certs.certs.extend(id.long_term_certs());
    if responder {
        certs
            .certs
            .push((CertType::ED_SIGNING_LINK, link.link_cert()));
    } else {
        certs
            .certs
            .push((CertType::ED_SIGNING_AUTH, link.auth_cert()));
    }
    certs
}

#[test]
fn generated_certificates_verify_in_both_roles() {
    let id = identity();
    let mut rng = ChaCha12Rng::seed_from_u64(6);
    let link = id
        .link_certs(&mut rng, now(), &Lifetimes::default(), [9; 32])
        .unwrap();
    let role = CertsRole::Responder {
        tls_cert_sha256: Some([9; 32]),
    };
    let v = verify_certs(&our_certs(id, &link, true), role, now()).unwrap();
    assert_eq!(v.rsa_id, id.rsa_id());
    assert_eq!(v.rsa_der_sha256, id.rsa_der_sha256());
    assert_eq!(v.ed_id, id.ed_id());
    let v = verify_certs(&our_certs(id, &link, false), CertsRole::Initiator, now()).unwrap();
    assert_eq!(v.ed_id, id.ed_id());
    // The type-6 key is the one that signs AUTHENTICATE.
    let key = ed25519_dalek::VerifyingKey::from_bytes(&v.auth_key.unwrap()).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&link.sign_auth(b"signed part"));
    assert!(key.verify_strict(b"signed part", &sig).is_ok());
    // Plain link: no TLS certificate to bind to, the chain is still checked.
    let plain = CertsRole::Responder {
        tls_cert_sha256: None,
    };
    assert!(verify_certs(&our_certs(id, &link, true), plain, now()).is_ok());
}

#[test]
fn expiry_and_structure_faults_have_their_own_errors() {
    let id = identity();
    let mut rng = ChaCha12Rng::seed_from_u64(7);
    let life = Lifetimes::default();
    let link = id.link_certs(&mut rng, now(), &life, [9; 32]).unwrap();
    let certs = our_certs(id, &link, false);
    // Link certificates end (rounded up to the hour) two days on; the signing cert later.
    let after = link.expires() + Duration::from_secs(1);
    assert_eq!(
        verify_certs(&certs, CertsRole::Initiator, after),
        Err(CertError::Expired(CertType::ED_SIGNING_AUTH))
    );
    let mut dup = certs.clone();
    dup.certs.push(dup.certs[0]);
    assert_eq!(
        verify_certs(&dup, CertsRole::Initiator, now()),
        Err(CertError::Duplicate(CertType::RSA_ID))
    );
    // A type-5 certificate offered as type 6.
    let mut wrong = certs.clone();
    wrong.certs.pop();
    wrong
        .certs
        .push((CertType::ED_SIGNING_AUTH, link.link_cert()));
    assert_eq!(
        verify_certs(&wrong, CertsRole::Initiator, now()),
        Err(CertError::Malformed(CertType::ED_SIGNING_AUTH))
    );
}

#[test]
fn another_relays_crosscert_is_a_mismatch() {
    let id = identity();
    let mut rng = ChaCha12Rng::seed_from_u64(8);
    let other = RelayIdentity::generate(&mut rng, now(), &Lifetimes::default()).unwrap();
    let link = id
        .link_certs(&mut rng, now(), &Lifetimes::default(), [1; 32])
        .unwrap();
    let mut certs = our_certs(id, &link, false);
    let theirs = other.long_term_certs();
    for (t, c) in certs.certs.iter_mut() {
        if *t == CertType::RSA_ED_CROSSCERT {
            *c = theirs[1].1;
        }
    }
    assert_eq!(
        verify_certs(&certs, CertsRole::Initiator, now()),
        Err(CertError::CrosscertMismatch)
    );
    // Their cross-certificate and RSA certificate together: signed by the wrong RSA key
    // for our Ed25519 identity? No: it names their identity, so still a mismatch.
    assert_ne!(other.rsa_id(), id.rsa_id());
}

#[test]
fn parts_round_trip_and_mixed_up_parts_are_refused() {
    let id = identity();
    let mut rng = ChaCha12Rng::seed_from_u64(9);
    let life = Lifetimes::default();
    let back = RelayIdentity::from_parts(&id.to_parts(), &mut rng, now(), &life).unwrap();
    assert_eq!(back.rsa_id(), id.rsa_id());
    assert_eq!(back.ed_id(), id.ed_id());
    assert_eq!(back.signing_cert_expiry(), id.signing_cert_expiry());
    // The remade type-2 and type-7 certificates verify with the stored ones.
    let link = back.link_certs(&mut rng, now(), &life, [2; 32]).unwrap();
    assert!(verify_certs(&our_certs(&back, &link, false), CertsRole::Initiator, now()).is_ok());
    let pem = id.rsa_key().to_pkcs1_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    let again = RsaIdentityKey::from_pkcs1_pem(&pem).unwrap();
    assert_eq!(again.fingerprint(), id.rsa_id());
    let mut mixed = id.to_parts();
    mixed.signing_seed = Zeroizing::new([3; 32]);
    assert_eq!(
        RelayIdentity::from_parts(&mixed, &mut rng, now(), &life).unwrap_err(),
        IdentityError::CertMismatch("signing")
    );
    let bad = RsaIdentityKey::from_pkcs1_der(&[0x30, 0x00]).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::BadConfig);
}

#[test]
fn same_seed_same_identity() {
    let a = RelayIdentity::generate(
        &mut ChaCha12Rng::seed_from_u64(5),
        now(),
        &Lifetimes::default(),
    )
    .unwrap();
    assert_eq!(a.rsa_id(), identity().rsa_id());
    assert_eq!(a.ed_id(), identity().ed_id());
}

/// A CERTS cell captured from C Tor 0.4.9.11 on this project's machine (a relay on
/// 127.0.0.1, `capture-ctor-certs.py`), with what C Tor itself logged for the relay.
#[test]
fn ctor_0_4_9_certs_verify_and_name_the_identities_tor_logged() {
    let payload = unhex(include_str!("ctor-0.4.9.11-certs.hex"));
    let certs = Certs::parse(&payload).unwrap();
    let types: Vec<u8> = certs.certs.iter().map(|c| c.0 .0).collect();
    assert_eq!(types, [1, 2, 4, 5, 7], "C Tor's responder CERTS");
    // The TLS certificate the relay presented (SHA-256 of its DER), and the capture time.
    let tls: [u8; 32] =
        hex::decode("B0FD6708866970A01834000C86A6340F9B0A16CD14336D6472F48A51717ECB84")
            .unwrap()
            .try_into()
            .unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_432_262);
    // Type 1 is that TLS certificate (C Tor's link cert); with Ed25519 certs present it is
    // not checked, as C Tor does not check it either.
    assert_eq!(ctor_tls_digest(&payload), tls);
    let role = CertsRole::Responder {
        tls_cert_sha256: Some(tls),
    };
    let v = verify_certs(&certs, role, at).unwrap();
    // tor's log: "identity key fingerprint is 'kistrelcap 224C3CBF...'" and "ed25519
    // fingerprint is 'kistrelcap uilxIBZMOyOYkDO1fWJ+9Yn9X4m8PWja59GI7QdJjk8'".
    assert_eq!(
        hex::encode_upper(v.rsa_id),
        "224C3CBF0B595B3F5EE7E703BB0EB6A05ABCE43E"
    );
    assert_eq!(
        hex::encode_upper(v.ed_id),
        "BA297120164C3B23989033B57D627EF589FD5F89BC3D68DAE7D188ED07498E4F"
    );
    let other = CertsRole::Responder {
        tls_cert_sha256: Some([0; 32]),
    };
    assert_eq!(
        verify_certs(&certs, other, at),
        Err(CertError::TlsCertMismatch)
    );
}
