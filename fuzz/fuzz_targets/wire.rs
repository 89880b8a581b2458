//! Fuzz target `wire`: see `presence_sync::conformance::hostile::fuzz::wire`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    presence_sync::conformance::hostile::fuzz::wire(data);
});
