//! Every cell and relay-message payload parser in `engine::wire` on arbitrary bytes; the
//! first byte picks the parser. What parses must emit again, and the emitted bytes must
//! parse to the same value (a parse/emit round trip).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    kistrel_fuzz::payloads::check(which, body);
});
