#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambda_loop_guard_fuzz::checks::sns_envelope(data);
});
