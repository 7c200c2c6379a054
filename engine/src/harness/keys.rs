//! Relay keys for in-memory networks, tests, fuzz targets and benches: generated from a
//! seed with certificates valid at [`epoch`], and cached for the process (RSA key
//! generation takes tens of milliseconds; a test suite asks for the same few relays often).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::crypto::identity::{Lifetimes, RelayIdentity};
use crate::crypto::ntor::NtorKeypair;
use crate::relay::RelayKeys;
use crate::time::Instant;

/// The wall-clock time of virtual time zero, in seconds since the Unix epoch
/// (2027-01-15T08:00:00Z).
pub const EPOCH_SECS: u64 = 1_800_000_000;

/// The wall-clock time of virtual time zero.
pub fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS)
}

/// The wall clock at virtual time `now`.
pub fn wall_clock(now: Instant) -> SystemTime {
    epoch() + (now - Instant::ZERO)
}

/// The keys of the relay made from `seed`: the same seed gives the same keys, made once
/// per process. Certificates are valid from [`epoch`] for Tor's default lifetimes.
pub fn relay_keys(seed: u64) -> RelayKeys {
    relay_keys_at(seed, epoch(), &Lifetimes::default())
}

/// As [`relay_keys`], with certificates made at `made` for `lifetimes` (e.g. long expired
/// at [`epoch`], for tests of expired certificates).
pub fn relay_keys_at(seed: u64, made: SystemTime, lifetimes: &Lifetimes) -> RelayKeys {
    type Cache = Mutex<HashMap<(u64, SystemTime, [Duration; 3]), RelayKeys>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (
        seed,
        made,
        [
            lifetimes.signing_cert,
            lifetimes.link_certs,
            lifetimes.identity_certs,
        ],
    );
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(keys) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return keys.clone();
    }
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let keys = match RelayIdentity::generate(&mut rng, made, lifetimes) {
        Ok(identity) => RelayKeys {
            identity: Arc::new(identity),
            ntor: NtorKeypair::generate(&mut rng),
        },
        // Generation fails only for times the certificates cannot encode: a test bug.
        Err(e) => panic!("cannot make test relay keys: {e}"),
    };
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, keys.clone());
    keys
}
