//! The message decoders on arbitrary frames, and the text parsers of the worker token and
//! of `/proc/self/maps` lines on arbitrary text.
//!
//! Checked:
//! - decoding a frame as `ToWorker` (what a worker does) or `FromWorker` (what the pool
//!   does) never panics: garbage is an error;
//! - a message that decodes encodes again (canonically: encoding what that decodes to
//!   gives the same bytes and the same message), in no more bytes than the frame held;
//! - a token the parser accepts is three numbers that print back to a token it parses to
//!   the same numbers; a maps line it accepts names a file (inode not 0);
//! - no panic, whatever the bytes.

#![no_main]

use kernelpool_pool::fuzzing::{
    Decoded, decode_from_worker, decode_to_worker, parse_maps_line, parse_token,
};
use libfuzzer_sys::fuzz_target;

fn round_trip(frame: &[u8], decode: fn(&[u8]) -> Result<Decoded, String>) {
    let Ok(first) = decode(frame) else {
        return;
    };
    assert!(
        first.encoded.len() <= frame.len(),
        "{} decoded from {} bytes encodes to {}",
        first.debug,
        frame.len(),
        first.encoded.len()
    );
    let again = decode(&first.encoded)
        .unwrap_or_else(|e| panic!("{} encodes to bytes that do not decode: {e}", first.debug));
    assert_eq!(again, first, "encoding is not canonical");
}

fuzz_target!(|data: &[u8]| {
    round_trip(data, decode_to_worker);
    round_trip(data, decode_from_worker);

    let text = String::from_utf8_lossy(data);
    if let Some((fd, ppid, inode)) = parse_token(&text) {
        assert_eq!(text.split(',').count(), 3, "{text:?}");
        let printed = format!("{fd},{ppid},{inode}");
        assert_eq!(parse_token(&printed), Some((fd, ppid, inode)), "{text:?}");
    }
    for line in text.lines() {
        if let Some((_range, (_major, _minor, inode))) = parse_maps_line(line) {
            assert_ne!(inode, 0, "{line:?}");
        }
    }
});
