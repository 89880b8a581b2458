//! Fuzz target `session`: see `presence_sync::conformance::hostile::fuzz::session`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    presence_sync::conformance::hostile::fuzz::session(data);
});
