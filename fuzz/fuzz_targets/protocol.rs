#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| synwall_fuzz::protocol::check(data));
