//! The messages between the pool and a worker: serde enums encoded with postcard, one per
//! frame of a [`Channel`](crate::channel::Channel). Only small things cross: function
//! offsets, kernel names, step arguments, buffer ids, index ranges, and the serialised
//! arguments and results of user functions up to 256 KiB. Buffer contents never do; their
//! memfds travel once per worker attached to a `Map` frame. Larger arguments and results
//! travel in sealed memfds attached the same way to the frame that names them (see
//! [`crate::bulk`]).

use kernelpool_kernels::{Elem, KernelName, Lang, Partial, StepArgs, Variant};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::PathBuf;

/// Name of the environment variable that turns a process into a worker:
/// `<socket fd>,<parent pid>,<socket inode>` (see `worker::enter_if_token`).
pub(crate) const TOKEN: &str = "KERNELPOOL_WORKER";

/// Bytes that serialise as one length-prefixed byte string (serde's `&[u8]` would
/// serialise element by element).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("borrowed bytes")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A function that crosses to a worker: offsets from `func::anchor` of the
/// user's function and of the monomorphised trampoline that decodes, calls and encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FnRef {
    pub f: i64,
    pub call: i64,
}

/// A kernel named in a way that survives process boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KernelRef {
    /// A built-in kernel, in one of its variants.
    Builtin {
        name: KernelName,
        lang: Lang,
        variant: Variant,
    },
    /// A kernel loaded from a shared object, following the contract of `name`. A kernel
    /// with a signature of its own (`KernelName::Custom`, JIT-compiled ones) carries it
    /// here: `name` serializes as the whole signature and the worker interns it again, so
    /// `Kernel::load` in the worker follows the very signature the pool's kernel has.
    Library {
        name: KernelName,
        lang: Lang,
        path: PathBuf,
        symbol: String,
        /// The file the pool loaded (the one at `path` may have been replaced since).
        file: FileId,
    },
}

pub(crate) use kernelpool_kernels::mapped_file::{FileId, mapped_file, parse_maps_line};

/// A buffer of a step: which shared memory, seen as what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BufRef {
    pub id: u64,
    pub elem: Elem,
    pub len: u64,
}

/// Pool -> worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker<'a> {
    /// First frame; the control block's memfd is attached.
    Setup {
        /// Size of the control block.
        ctrl_bytes: u64,
        /// (device, inode) of the pool's executable, when functions may be sent.
        exe: Option<(u64, u64)>,
        /// The function to run once before the worker is ready, and its encoded argument.
        init: Option<(FnRef, Vec<u8>)>,
    },
    /// A memfd is attached: map it and keep it under `id`.
    Map { id: u64, bytes: u64, kind: MapKind },
    /// Forget these buffers and arrays.
    Unmap { ids: Vec<u64> },
    /// Call a function on each argument; task ids `first`, `first + 1`, ... `args` holds
    /// the postcard encodings of `count` [`Value`]s one after the other (written by
    /// [`push_inline_value`] and [`push_sealed_value`]).
    Call {
        first: u64,
        fun: FnRef,
        count: u32,
        #[serde(borrow)]
        args: Bytes<'a>,
    },
    /// Run a kernel step on each range; task ids `first`, `first + 1`, ...
    /// (The pool encodes its step's kernel and buffer list in place, with no copy per
    /// batch; the worker decodes them into owned values.)
    Step {
        first: u64,
        kernel: Cow<'a, KernelRef>,
        args: StepArgs,
        bufs: Cow<'a, [BufRef]>,
        ranges: Vec<(u64, u64)>,
    },
}

/// What a mapped memfd is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MapKind {
    /// A kernel buffer (read and written by kernel steps).
    Buffer,
    /// A shared array sealed against writes, mapped read-only (`SharedSlice`).
    ReadOnlyArray,
    /// An output array, mapped writable (`SharedChunkMut`).
    OutputArray,
}

/// An encoded argument of a function.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum Value<'a> {
    /// In the frame itself.
    #[serde(borrow)]
    Inline(Bytes<'a>),
    /// In a sealed memfd of `bytes` bytes (see [`crate::bulk`]); the frame carries the
    /// descriptors of its sealed values, in order.
    Sealed { bytes: u64 },
}

/// Append `v` as a postcard varint.
fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Append the postcard encoding of `Value::Inline(Bytes(bytes))` (written by hand: it is
/// the per-task part of a batch, and the hand-written form costs a fraction of serde's).
pub(crate) fn push_inline_value(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(0);
    push_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Append the postcard encoding of `Value::Sealed { bytes }`.
pub(crate) fn push_sealed_value(out: &mut Vec<u8>, bytes: u64) {
    out.push(1);
    push_varint(out, bytes);
}

/// The `count` values encoded one after the other in `bytes` (a `Call`'s arguments), in
/// order; `Err` for bytes that are not that.
pub(crate) fn values(bytes: &[u8], count: u32) -> impl Iterator<Item = Result<Value<'_>, String>> {
    let mut rest = Ok(bytes);
    let mut left = count;
    std::iter::from_fn(move || {
        let bytes = rest.as_ref().ok()?;
        if left == 0 {
            if bytes.is_empty() {
                return None;
            }
            let n = bytes.len();
            rest = Err(());
            return Some(Err(format!(
                "{n} bytes after the {count} arguments of a batch"
            )));
        }
        left -= 1;
        // The common inline argument by hand, anything else (and the errors) by serde.
        let taken = match take_variant_0_bytes(bytes) {
            Some((v, r)) => Ok((Value::Inline(Bytes(v)), r)),
            None => postcard::take_from_bytes::<Value<'_>>(bytes),
        };
        match taken {
            Ok((v, r)) => {
                rest = Ok(r);
                Some(Ok(v))
            }
            Err(e) => {
                rest = Err(());
                Some(Err(format!("an undecodable argument: {e}")))
            }
        }
    })
}

/// A postcard varint at the start of `bytes` and the bytes after it; `None` when there is
/// no complete one that fits a `u64`.
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None;
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, &bytes[i + 1..]));
        }
    }
    None
}

/// The [`Outcome`] at the start of `bytes` and the bytes after it, as
/// `postcard::take_from_bytes` gives them; the common `Outcome::Value` is read by hand (a
/// fraction of serde's cost), anything else by serde, which also reports the errors.
pub(crate) fn take_outcome(bytes: &[u8]) -> postcard::Result<(Outcome<'_>, &[u8])> {
    match take_variant_0_bytes(bytes) {
        Some((value, rest)) => Ok((Outcome::Value(Bytes(value)), rest)),
        None => postcard::take_from_bytes(bytes),
    }
}

/// The encoding of variant 0 holding a byte string (`Outcome::Value`, `Value::Inline`,
/// which [`push_inline_value`] writes) at the start of `bytes`: the string and the bytes
/// after it; `None` for anything else.
fn take_variant_0_bytes(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&0, rest) = bytes.split_first()? else {
        return None;
    };
    let (len, rest) = take_varint(rest)?;
    let value = rest.get(..usize::try_from(len).ok()?)?;
    Some((value, &rest[value.len()..]))
}

/// Worker -> pool.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker<'a> {
    /// The worker has mapped its control block (and run the initializer) and waits for
    /// tasks.
    Ready { pid: u32, same_exe: bool },
    /// The pool's initializer failed in this worker (it exits).
    InitFailed {
        #[serde(borrow)]
        message: Cow<'a, str>,
    },
    /// The outcome of task `id`.
    Done {
        id: u64,
        #[serde(borrow)]
        outcome: Outcome<'a>,
    },
    /// The outcomes of tasks `first`, `first + 1`, ... (`count` of them): their postcard
    /// encodings one after the other (none of them `Sealed`: a result that travels in a
    /// memfd comes in a `Done` of its own, which carries the descriptor).
    Results {
        first: u64,
        count: u32,
        #[serde(borrow)]
        outcomes: Bytes<'a>,
    },
}

/// How one task ended in the worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome<'a> {
    /// The serialised result of a function.
    #[serde(borrow)]
    Value(Bytes<'a>),
    /// The serialised result of a function, in a sealed memfd of `bytes` bytes whose
    /// descriptor the frame carries (see [`crate::bulk`]).
    Sealed { bytes: u64 },
    /// The partial of a kernel chunk.
    Partial(Partial),
    /// The function panicked.
    Panicked(Cow<'a, str>),
    /// The kernel returned a non-zero status.
    KernelFailed { code: i32 },
    /// Anything else (argument could not be decoded, step could not be rebuilt, ...).
    Failed(Cow<'a, str>),
    /// A step's chunk that the pool took back before it started (see
    /// [`Control::take_back`](crate::control::Control::take_back)): it did not run here.
    TakenBack,
}

/// Append a postcard encoding of `value` to `out` (no frame).
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), postcard::Error> {
    let start = out.len();
    postcard::to_io(value, &mut *out)
        .map(drop)
        .inspect_err(|_| out.truncate(start))
}

/// Largest encoded argument or result of a function (such values travel in sealed memfds,
/// not in frames).
pub(crate) const MAX_VALUE: usize = 1 << 30;

/// Longest message (a panic's, an error's) a worker sends back; longer ones are cut.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// `message` cut to [`MAX_MESSAGE`] bytes (at a character boundary).
pub(crate) fn clip_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(" [...]");
    }
    message
}

/// Why a value of `bytes` bytes cannot cross, if it cannot.
pub(crate) fn check_value_size(what: &str, bytes: usize) -> Result<(), String> {
    if bytes > MAX_VALUE {
        return Err(format!(
            "{what} takes {bytes} bytes encoded, more than the {MAX_VALUE} bytes a message \
             between the pool and a worker can carry"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{next_frame, push_frame};

    #[test]
    fn messages_round_trip_and_borrow() {
        let mut out = Vec::new();
        let args = [
            Value::Inline(Bytes(b"abc")),
            Value::Sealed { bytes: 5 },
            Value::Inline(Bytes(b"")),
        ];
        let mut encoded = Vec::new();
        push_inline_value(&mut encoded, b"abc");
        push_sealed_value(&mut encoded, 5);
        push_inline_value(&mut encoded, b"");
        let mut by_serde = Vec::new();
        for v in &args {
            encode_into(&mut by_serde, v).unwrap();
        }
        assert_eq!(encoded, by_serde, "written as postcard writes them");
        let mut long = Vec::new();
        push_inline_value(&mut long, &[7; 300]);
        push_sealed_value(&mut long, u64::MAX);
        let mut by_serde = Vec::new();
        encode_into(&mut by_serde, &Value::Inline(Bytes(&[7; 300]))).unwrap();
        encode_into(&mut by_serde, &Value::Sealed { bytes: u64::MAX }).unwrap();
        assert_eq!(long, by_serde);
        push_frame(
            &mut out,
            &ToWorker::Call {
                first: 7,
                fun: FnRef { f: -5, call: 9 },
                count: 3,
                args: Bytes(&encoded),
            },
        )
        .unwrap();
        push_frame(
            &mut out,
            &FromWorker::Done {
                id: 3,
                outcome: Outcome::Value(Bytes(&[1, 2])),
            },
        )
        .unwrap();
        let mut outcomes = Vec::new();
        encode_into(&mut outcomes, &Outcome::Value(Bytes(&[4]))).unwrap();
        encode_into(&mut outcomes, &Outcome::Failed("no".into())).unwrap();
        push_frame(
            &mut out,
            &FromWorker::Results {
                first: 9,
                count: 2,
                outcomes: Bytes(&outcomes),
            },
        )
        .unwrap();
        let mut pos = 0;
        let f1 = next_frame(&out, &mut pos).unwrap().unwrap();
        match postcard::from_bytes::<ToWorker<'_>>(f1).unwrap() {
            ToWorker::Call {
                first,
                fun,
                count,
                args,
            } => {
                assert_eq!((first, fun), (7, FnRef { f: -5, call: 9 }));
                let args = values(args.0, count)
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                assert!(matches!(
                    args[..],
                    [
                        Value::Inline(Bytes(b"abc")),
                        Value::Sealed { bytes: 5 },
                        Value::Inline(Bytes(b""))
                    ]
                ));
            }
            other => panic!("{other:?}"),
        }
        let f2 = next_frame(&out, &mut pos).unwrap().unwrap();
        assert!(matches!(
            postcard::from_bytes::<FromWorker<'_>>(f2).unwrap(),
            FromWorker::Done {
                id: 3,
                outcome: Outcome::Value(Bytes(&[1, 2]))
            }
        ));
        let f3 = next_frame(&out, &mut pos).unwrap().unwrap();
        let Ok(FromWorker::Results {
            first: 9,
            count: 2,
            outcomes: Bytes(rest),
        }) = postcard::from_bytes::<FromWorker<'_>>(f3)
        else {
            panic!("not the results sent");
        };
        let (a, rest) = postcard::take_from_bytes::<Outcome<'_>>(rest).unwrap();
        let (b, rest) = postcard::take_from_bytes::<Outcome<'_>>(rest).unwrap();
        assert!(matches!(a, Outcome::Value(Bytes(&[4]))));
        assert!(matches!(b, Outcome::Failed(m) if m == "no"));
        assert!(rest.is_empty());
        assert!(check_value_size("x", MAX_VALUE).is_ok());
        assert!(check_value_size("x", MAX_VALUE + 1).is_err());
    }

    #[test]
    fn arguments_that_are_not_what_the_count_says_are_refused() {
        let mut encoded = Vec::new();
        push_inline_value(&mut encoded, b"ab");
        push_inline_value(&mut encoded, b"c");
        assert!(values(&encoded, 2).all(|v| v.is_ok()));
        assert_eq!(values(&encoded, 2).count(), 2);
        // One too few announced: the rest is refused; one too many: the missing one is.
        assert!(values(&encoded, 1).last().unwrap().is_err());
        assert!(values(&encoded, 3).last().unwrap().is_err());
        assert_eq!(values(&encoded, 3).count(), 3);
        assert!(values(&[9, 9], 1).next().unwrap().is_err());
        assert_eq!(values(&[], 0).count(), 0);
    }

    #[test]
    fn outcomes_read_by_hand_are_read_as_serde_reads_them() {
        let mut encoded = Vec::new();
        let long = vec![3u8; 20_000];
        let outcomes = [
            Outcome::Value(Bytes(b"")),
            Outcome::Value(Bytes(b"ab")),
            Outcome::Value(Bytes(&long)),
            Outcome::Failed("no".into()),
            Outcome::Sealed { bytes: 7 },
        ];
        for o in &outcomes {
            encode_into(&mut encoded, o).unwrap();
        }
        let mut rest = &encoded[..];
        for o in &outcomes {
            let (by_hand, after) = take_outcome(rest).unwrap();
            let (by_serde, after_serde) = postcard::take_from_bytes::<Outcome<'_>>(rest).unwrap();
            assert_eq!(format!("{by_hand:?}"), format!("{o:?}"));
            assert_eq!(format!("{by_hand:?}"), format!("{by_serde:?}"));
            assert_eq!(after, after_serde);
            rest = after;
        }
        assert!(rest.is_empty());
        // `Outcome::Value` is written as `push_inline_value` writes.
        let mut by_hand = Vec::new();
        push_inline_value(&mut by_hand, &long);
        let mut by_serde = Vec::new();
        encode_into(&mut by_serde, &Outcome::Value(Bytes(&long))).unwrap();
        assert_eq!(by_hand, by_serde);
        // Cut short, a length too long, a varint that never ends or overflows: errors
        // (from serde), as serde gives them.
        for bad in [
            &[0u8][..],
            &[0, 5, 1, 2],
            &[0, 0x80],
            &[
                0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1,
            ],
        ] {
            assert!(take_outcome(bad).is_err(), "{bad:?}");
            assert!(postcard::take_from_bytes::<Outcome<'_>>(bad).is_err());
        }
        assert_eq!(
            take_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Some((u64::MAX, &[][..]))
        );
        assert_eq!(
            take_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
    }

    #[test]
    fn long_messages_are_clipped_at_a_character_boundary() {
        let m = clip_message("é".repeat(MAX_MESSAGE));
        assert!(
            m.len() <= MAX_MESSAGE + 6 && m.ends_with("[...]"),
            "{}",
            m.len()
        );
        assert_eq!(clip_message("short".into()), "short");
    }
}
