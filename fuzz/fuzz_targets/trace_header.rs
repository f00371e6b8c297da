#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambda_loop_guard_fuzz::checks::trace_header(data);
});
