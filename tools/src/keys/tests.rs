use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// One generated folder's worth of keys for the whole test binary (RSA is slow).
fn keys() -> &'static RelayKeyFolder {
    static K: OnceLock<RelayKeyFolder> = OnceLock::new();
    K.get_or_init(|| {
        RelayKeyFolder::generate(
            &mut ChaCha8Rng::seed_from_u64(7),
            now(),
            &KeygenOptions::default(),
        )
        .unwrap()
    })
}

#[test]
fn save_load_round_trip_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    k.save_new(dir.path()).unwrap();
    for name in [
        RSA_ID,
        MASTER_PUBLIC,
        MASTER_SECRET,
        SIGNING_SECRET,
        SIGNING_CERT,
        NTOR,
    ] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let pem = std::fs::read_to_string(dir.path().join(RSA_ID)).unwrap();
    assert!(
        pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "C Tor's format"
    );
    let back = RelayKeyFolder::load(dir.path()).unwrap();
    assert_eq!(back.rsa_id(), k.rsa_id());
    assert_eq!(back.ed_id(), k.ed_id());
    assert_eq!(back.ntor_public(), k.ntor_public());
    let engine = back.relay_keys(dir.path(), now()).unwrap();
    assert_eq!(engine.rsa_id(), k.rsa_id());
    assert_eq!(engine.identity.ed_id(), k.ed_id());
    assert_eq!(engine.ntor.public(), k.ntor_public());
    assert!(matches!(
        k.save_new(dir.path()),
        Err(KeyError::Exists { .. })
    ));
}

#[test]
fn the_master_key_may_be_kept_offline() {
    let dir = tempfile::tempdir().unwrap();
    keys().save_new(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join(MASTER_SECRET)).unwrap();
    let back = RelayKeyFolder::load(dir.path()).unwrap();
    assert!(back.parts.master_seed.is_none());
    assert!(back.relay_keys(dir.path(), now()).is_ok());
}

#[test]
fn corrupt_or_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    keys().save_new(dir.path()).unwrap();
    let p = dir.path();
    std::fs::write(p.join(SIGNING_CERT), b"garbage").unwrap();
    let e = RelayKeyFolder::load(p).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadConfig);
    assert_eq!(
        e.to_string(),
        format!(
            "key file {}: does not start with its tag",
            p.join(SIGNING_CERT).display()
        )
    );
    // Another relay's signing key with this relay's certificate.
    keys().save_new(&p.join("b")).unwrap();
    let other = RelayKeyFolder::generate(
        &mut ChaCha8Rng::seed_from_u64(8),
        now(),
        &KeygenOptions::default(),
    )
    .unwrap();
    let c = p.join("c");
    other.save_new(&c).unwrap();
    std::fs::copy(p.join("b").join(SIGNING_CERT), c.join(SIGNING_CERT)).unwrap();
    let e = RelayKeyFolder::load(&c)
        .unwrap()
        .relay_keys(&c, now())
        .unwrap_err();
    assert!(matches!(e, KeyError::Identity { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::BadConfig);
    std::fs::remove_file(c.join(NTOR)).unwrap();
    let e = RelayKeyFolder::load(&c).unwrap_err();
    assert!(e.to_string().starts_with(&format!(
        "cannot read key file {}: ",
        c.join(NTOR).display()
    )));
    std::fs::write(
        c.join(RSA_ID),
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = RelayKeyFolder::load(&c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadConfig);
}

#[test]
fn backdated_keys_have_an_expired_signing_certificate() {
    let opts = KeygenOptions {
        signing_cert_lifetime: Duration::from_secs(86_400),
        backdate: Duration::from_secs(3 * 86_400),
    };
    let k = RelayKeyFolder::generate(&mut ChaCha8Rng::seed_from_u64(9), now(), &opts).unwrap();
    let engine = k.relay_keys(Path::new("k"), now()).unwrap();
    assert!(engine.identity.signing_cert_expiry() < now());
}
