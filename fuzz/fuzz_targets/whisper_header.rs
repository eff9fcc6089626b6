//! `Header::parse` on arbitrary bytes: a whisper file's first bytes come from disk and may be
//! anything (truncated, corrupt, not whisper at all); parsing must fail cleanly, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = carbide::whisper::Header::parse(data);
});
