//! The frame decoder (`RecvBuffer`, `next_frame`) fed a byte stream in arbitrary chunks.
//!
//! Input: one byte that seeds the chunk sizes, then the stream. Checked:
//! - fed in chunks (1 byte, a few, many, all at once), the receive buffer yields exactly
//!   the frames, and the error, that `next_frame` finds in the whole stream at once;
//! - there is always room to receive into (an empty room would read as end of stream);
//! - the buffer never grows beyond about twice the bytes that arrived (a length read from
//!   the wire must not make it allocate what did not come), whatever the chunks;
//! - no panic, whatever the bytes.

#![no_main]

use kernelpool_pool::fuzzing::{FrameReader, MAX_FRAME, next_frame};
use libfuzzer_sys::fuzz_target;

/// The receive buffer's initial size (channel.rs `RECV_INITIAL`).
const RECV_INITIAL: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };

    // The whole stream at once.
    let mut want = Vec::new();
    let mut want_err = None;
    let mut pos = 0;
    loop {
        match next_frame(stream, &mut pos) {
            Ok(Some(f)) => {
                assert!(f.len() <= MAX_FRAME);
                want.push(f.to_vec());
            }
            Ok(None) => break,
            Err(e) => {
                want_err = Some(e);
                break;
            }
        }
    }

    // The same stream in chunks, as receives bring it.
    let mut reader = FrameReader::new();
    let mut got = Vec::new();
    let mut got_err = None;
    let mut fed = 0;
    let mut rng = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while fed < stream.len() && got_err.is_none() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let spare = reader.spare();
        let room = spare.len();
        assert!(room >= RECV_INITIAL / 4, "only {room} bytes of room");
        assert!(
            room <= 2 * fed + RECV_INITIAL,
            "{room} bytes of room after {fed} bytes received"
        );
        let left = stream.len() - fed;
        let n = match rng % 4 {
            0 => 1,
            1 => 1 + (rng >> 8) as usize % 7,
            2 => 1 + (rng >> 8) as usize % 64,
            _ => left,
        }
        .min(left)
        .min(room);
        spare[..n].copy_from_slice(&stream[fed..fed + n]);
        reader.filled(n);
        fed += n;
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => got.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    got_err = Some(e);
                    break;
                }
            }
        }
    }
    assert_eq!(got, want, "frames differ");
    assert_eq!(got_err, want_err, "errors differ");
    if got_err.is_none() {
        assert_eq!(fed, stream.len());
    }
});
