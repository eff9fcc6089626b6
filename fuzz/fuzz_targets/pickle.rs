//! The pickle receiver on arbitrary bytes: frames come straight off TCP port 2004 from any
//! client, so framing, unpickling and carbon's item handling must never panic, and must
//! stay within the frame-scaled limits whatever the bytes claim.
//!
//! The input is fed through `FrameDecoder` in two chunks split by the first byte (exercising
//! partial frames), with a small maximum so that length prefixes hit both sides of it, and
//! the raw input is also decoded directly as one payload.
#![no_main]

use std::ops::ControlFlow;

use carbide::ingest::pickle::{decode_frame, FrameDecoder, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::for_frame(4096);
    let _ = decode_frame(data, &limits);

    let split = data.first().map_or(0, |&b| b as usize).min(data.len());
    let mut decoder = FrameDecoder::new(4096);
    for chunk in [&data[..split], &data[split..]] {
        let fed = decoder.feed(chunk, |frame| {
            assert!(frame.len() <= 4096);
            let _ = decode_frame(frame, &limits);
            ControlFlow::Continue(())
        });
        if fed.is_err() {
            break;
        }
    }
    assert!(decoder.buffered() <= 4096 + 4);
});
