//! The consumer of a ring of frames in the shared control block (`ring::RingRx`), its
//! indices and bytes forged by a peer.
//!
//! Input: 16 bytes of head and tail, then the ring's bytes. Checked: no panic and no read
//! outside the ring, whatever they are; the frames taken never add up to more than the
//! ring holds (asserted inside `drain_forged`).

#![no_main]

use kernelpool_pool::fuzzing::drain_forged_ring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let head = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    // Tails near the head are the interesting ones: fold most of them close to it.
    let raw = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
    let tail = if raw >> 63 == 0 {
        head.wrapping_add(raw % 4096)
    } else {
        raw
    };
    let (frames, _) = drain_forged_ring(head, tail, &data[16..]);
    assert!(frames.iter().map(Vec::len).sum::<usize>() <= data.len().max(64));
});
