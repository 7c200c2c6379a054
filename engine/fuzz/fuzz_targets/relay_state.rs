//! Stateful: fuzzer-chosen actions (handshakes with real keys, CREATE2/CREATE_FAST, relay
//! cells with the right keys, EXTEND2 and next-hop answers, DESTROY, garbage, stalled
//! readers, time) drive one sans-IO `Relay`; its invariants are checked after every step.
//! See `kistrel_fuzz::relay_state`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: kistrel_fuzz::relay_state::Scenario| {
    kistrel_fuzz::relay_state::run(&scenario);
});
