//! One parallel step of a kernel: the kernel, its scalar arguments and its buffers, checked
//! once, then callable on any sub-range of `[0, items)` from any thread.

use crate::buffer::{Buffer, Elem, Memory};
use crate::error::{Error, Result};
use crate::registry::{Kernel, KernelName};
use crate::signature::Signature;
use kernelpool_kernels_sys as sys;
use std::marker::PhantomData;
use std::ops::Range;

/// Number of buffer slots a step can have.
pub const MAX_BUFS: usize = sys::KP_MAX_BUFS as usize;
/// Number of partial slots of a reduction.
pub const PARTIAL_LEN: usize = sys::KP_PARTIAL_LEN as usize;

/// Scalar arguments of a step (everything but the buffers). Small and serialisable: this
/// is what crosses to worker processes, with buffer handles.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepArgs {
    /// Problem size parameter N.
    pub n: u64,
    /// Items of the step: `[0, items)` is what gets split.
    pub items: u64,
    /// Integer parameters.
    pub iparam: [i64; 4],
    /// Floating-point parameters.
    pub fparam: [f64; 4],
}

impl StepArgs {
    /// Arguments with `n` and `items` and zero parameters.
    pub fn new(n: u64, items: u64) -> StepArgs {
        StepArgs {
            n,
            items,
            iparam: [0; 4],
            fparam: [0.0; 4],
        }
    }
}

/// The combined reduction partial of a step (unused slots stay at their identity). Slots
/// of float operations ([`Reduce::SumF64`](crate::Reduce::SumF64), ...) hold the bits of
/// an `f64` ([`Partial::float`]); see [`signature`](crate::signature) for how slots
/// combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partial(pub [i64; PARTIAL_LEN]);

impl Partial {
    /// The identity partial of `kernel`'s reduction.
    pub fn identity(kernel: KernelName) -> Partial {
        Partial::identity_of(kernel.signature())
    }

    /// The identity partial of the reduction `sig` declares.
    pub fn identity_of(sig: &Signature) -> Partial {
        let mut p = [0; PARTIAL_LEN];
        for (slot, op) in p.iter_mut().zip(sig.partials()) {
            *slot = op.identity();
        }
        Partial(p)
    }

    /// Fold `next` (the partial of the following chunk) into `self`.
    pub fn combine(&mut self, kernel: KernelName, next: &Partial) {
        self.combine_of(kernel.signature(), next)
    }

    /// Fold `next` (the partial of the following chunk) into `self`, by `sig`'s
    /// operations.
    pub fn combine_of(&mut self, sig: &Signature, next: &Partial) {
        for (i, op) in sig.partials().iter().enumerate() {
            self.0[i] = op.combine(self.0[i], next.0[i]);
        }
    }

    /// Slot `slot` as an integer.
    ///
    /// # Panics
    /// When `slot >= PARTIAL_LEN`.
    pub fn int(&self, slot: usize) -> i64 {
        self.0[slot]
    }

    /// Slot `slot` as the `f64` a float slot holds.
    ///
    /// # Panics
    /// When `slot >= PARTIAL_LEN`.
    pub fn float(&self, slot: usize) -> f64 {
        crate::signature::slot_f64(self.0[slot])
    }
}

/// The largest N each kernel's arithmetic supports, in every language (N = 0 is refused
/// too):
///
/// | kernel | N is | largest N | because |
/// |---|---|---|---|
/// | seed | arguments | `isize::MAX / 8` | one `i64` per argument in one buffer |
/// | nbody | time steps | `i64::MAX` | the step count is an `int64` in every language |
/// | spectralnorm | matrix order | 2^30 | `(i+j)*(i+j+1)` stays inside `int64` |
/// | mandelbrot | width and height | 2^32 | `N*((N+7)/8)` bytes, `int64` offsets |
/// | fannkuch | permutation length | 12 | the permutation arrays |
/// | triad | array length | `isize::MAX / 8` | one `f64` per element in each buffer |
/// | pi | samples | 2^62 | counters `2i`, `2i+1` stay distinct in 64 bits |
/// | laplace | grid width and height | 2^24 | `N*N` doubles, `int64` offsets |
///
/// The native kernels refuse the same bounds themselves (`native/include/kernels.h`). A
/// kernel with its own signature: its [`Signature::max_n`].
pub fn max_n(kernel: KernelName) -> u64 {
    let per_f64 = isize::MAX as u64 / 8;
    match kernel {
        KernelName::Seed | KernelName::Triad => per_f64,
        KernelName::Nbody => i64::MAX as u64,
        KernelName::Spectralnorm => sys::KP_SPECTRALNORM_MAX_N as u64,
        KernelName::Mandelbrot => sys::KP_MANDELBROT_MAX_N as u64,
        KernelName::Fannkuch => sys::KP_FANNKUCH_MAX_N as u64,
        KernelName::Pi => sys::KP_PI_MAX_SAMPLES as u64,
        KernelName::Laplace => sys::KP_LAPLACE_MAX_N as u64,
        KernelName::Custom(sig) => sig.max_n(),
    }
}

/// The most nbody systems one run can have: two `f64` energies per system in one buffer.
pub fn max_systems() -> u64 {
    isize::MAX as u64 / 16
}

/// Refuse N outside `1..=max_n(kernel)`.
///
/// # Errors
/// [`Error::InvalidSize`] naming the kernel, N and the bound.
pub fn check_n(kernel: KernelName, n: u64) -> Result<()> {
    let max = max_n(kernel);
    if (1..=max).contains(&n) {
        return Ok(());
    }
    Err(Error::InvalidSize {
        kernel: kernel.name(),
        n,
        reason: if n == 0 {
            "N must be at least 1".into()
        } else {
            format!("{kernel} supports N up to {max}")
        },
    })
}

/// Buffers a kernel expects for `args`: (element type, minimum length) per slot, from its
/// [`Signature`] (a length the caller gives, [`Len::Any`](crate::signature::Len::Any),
/// is 0 here).
///
/// # Errors
/// [`Error::InvalidSize`] when N or the items are outside the kernel's bounds
/// ([`max_n`]); [`Error::BadBuffers`] when the other arguments do not fit the kernel
/// (spectralnorm and mandelbrot need `items == n`, fannkuch `items == n!`, seed and nbody
/// a loop count `iparam[0] >= 0`, triad a STREAM op in `0..=4`).
pub fn expected_buffers(kernel: KernelName, args: &StepArgs) -> Result<Vec<(Elem, u128)>> {
    Ok(kernel
        .signature()
        .buffers_for(args)?
        .into_iter()
        .map(|(elem, len)| (elem, len.unwrap_or(0)))
        .collect())
}

/// n! for n <= 20.
pub fn factorial(n: u64) -> Option<u64> {
    (1..=n).try_fold(1u64, |acc, k| acc.checked_mul(k))
}

/// One buffer of a [`Step`] as an executor sees it: element type, length and memory
/// handle, but no view of its contents.
#[derive(Debug, Clone, Copy)]
pub struct StepBuffer<'s> {
    elem: Elem,
    len: usize,
    memory: &'s dyn Memory,
}

impl<'s> StepBuffer<'s> {
    /// Element type.
    pub fn elem(&self) -> Elem {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory behind the buffer (executors downcast it to recognise their own).
    pub fn memory(&self) -> &'s dyn Memory {
        self.memory
    }
}

/// A checked, ready-to-run step. It borrows its buffers mutably for its whole life, so no
/// Rust reference can observe them while chunks are being written.
#[derive(Debug)]
pub struct Step<'a> {
    kernel: Kernel,
    args: StepArgs,
    raw: sys::kp_kargs,
    /// The first `buf_count` are `Some`, in slot order.
    bufs: [Option<&'a Buffer>; MAX_BUFS],
    buf_count: usize,
    _exclusive: PhantomData<&'a mut Buffer>,
}

// SAFETY: the raw pointers in `raw` point into buffers exclusively borrowed for 'a; calls on
// disjoint ranges write disjoint items (the kernel contract), reductions write a partial
// owned by the calling chunk, so sharing the step between threads is sound.
unsafe impl Sync for Step<'_> {}
// SAFETY: as above; nothing in the step is tied to the creating thread.
unsafe impl Send for Step<'_> {}

/// The buffers of a step, in slot order ([`Step::buffers`]).
struct StepBuffers<'s>(std::slice::Iter<'s, Option<&'s Buffer>>);

impl<'s> Iterator for StepBuffers<'s> {
    type Item = StepBuffer<'s>;

    fn next(&mut self) -> Option<StepBuffer<'s>> {
        // The first `buf_count` slots, which this iterates, are all set (Step::new).
        self.0.next().copied().flatten().map(|b| StepBuffer {
            elem: b.elem(),
            len: b.len(),
            memory: b.memory(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for StepBuffers<'_> {}

impl<'a> Step<'a> {
    /// Check `args` and `bufs` against the kernel's [`Signature`] and build the step: the
    /// one checking path of every kernel, built in, loaded or JIT-compiled.
    ///
    /// # Errors
    /// Those of [`Signature::buffers_for`] ([`Error::InvalidSize`],
    /// [`Error::BadBuffers`]), and [`Error::BadBuffers`] when a buffer is missing, extra,
    /// of another element type or too short.
    #[inline]
    pub fn new(
        kernel: Kernel,
        args: StepArgs,
        bufs: impl IntoIterator<Item = &'a mut Buffer>,
    ) -> Result<Step<'a>> {
        let name = kernel.name();
        let sig = kernel.signature();
        sig.check_args(&args)?;
        let expected = sig.buffers();
        let mut raw = sys::kp_kargs {
            n: args.n,
            items: args.items,
            iparam: args.iparam,
            fparam: args.fparam,
            buf: [std::ptr::null_mut(); MAX_BUFS],
            len: [0; MAX_BUFS],
            partial: std::ptr::null_mut(),
        };
        // No allocation: this is the hot path of every step, from Rust and from C.
        let mut held: [Option<&'a Buffer>; MAX_BUFS] = [None; MAX_BUFS];
        let mut count = 0;
        for (i, b) in bufs.into_iter().enumerate() {
            count = i + 1;
            let Some(want) = expected.get(i) else {
                continue; // counted, then refused below
            };
            let min = want.len.of(&args).unwrap_or(0);
            if b.elem() != want.elem || (b.len() as u128) < min {
                return Err(Error::BadBuffers {
                    kernel: name.name(),
                    reason: format!(
                        "buffer {i} is {} x {:?}, needs at least {min} x {:?}",
                        b.len(),
                        b.elem(),
                        want.elem
                    ),
                });
            }
            raw.buf[i] = b.raw_ptr() as *mut std::ffi::c_void;
            raw.len[i] = b.len() as u64;
            held[i] = Some(&*b);
        }
        if count != expected.len() {
            return Err(Error::BadBuffers {
                kernel: name.name(),
                reason: format!("expected {} buffers, got {count}", expected.len()),
            });
        }
        Ok(Step {
            kernel,
            args,
            raw,
            bufs: held,
            buf_count: count,
            _exclusive: PhantomData,
        })
    }

    /// The kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The scalar arguments.
    pub fn args(&self) -> &StepArgs {
        &self.args
    }

    /// Number of items (`[0, items)` is split by executors).
    pub fn items(&self) -> u64 {
        self.args.items
    }

    /// What an executor may know of the buffers, in slot order: element type, length and
    /// the memory behind each (to recognise shared memory), never their contents, which
    /// the kernel writes while the step runs.
    ///
    /// ```compile_fail,E0599
    /// # use kernelpool_kernels::{Buffer, Elem, Kernel, KernelName, Lang, Step, StepArgs};
    /// let mut buf = Buffer::heap(Elem::I64, 4, "out").unwrap();
    /// let step = Step::new(Kernel::get(KernelName::Seed, Lang::C), StepArgs::new(4, 4),
    ///                      vec![&mut buf]).unwrap();
    /// // A slice of a buffer the kernel writes cannot be had from the step.
    /// let view: &[i64] = step.buffers().next().unwrap().as_slice::<i64>().unwrap();
    /// ```
    pub fn buffers(&self) -> impl ExactSizeIterator<Item = StepBuffer<'_>> + '_ {
        StepBuffers(self.bufs[..self.buf_count].iter())
    }

    /// The bytes of buffer `slot` (in slot order), for an executor that moves a step's
    /// items between processes (MPI ranks) between the chunks it runs. `None` past the
    /// last buffer.
    ///
    /// # Safety
    /// While the slice lives, no chunk of this step runs ([`Step::run_chunk`] writes
    /// through the same memory) and no other slice from this method for the same `slot`
    /// is used. The step borrows its buffers exclusively, so nothing outside it can see
    /// them.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn buffer_bytes(&self, slot: usize) -> Option<&mut [u8]> {
        let b = self.bufs[..self.buf_count].get(slot).copied().flatten()?;
        let bytes = b.len() * b.elem().size();
        // SAFETY: the buffer holds `bytes` initialised bytes and is exclusively borrowed
        // by this step for 'a; the caller guarantees that no chunk and no other slice
        // touches it meanwhile (see # Safety).
        Some(unsafe { std::slice::from_raw_parts_mut(b.raw_ptr(), bytes) })
    }

    /// Run the kernel on `range` and return the chunk's partial.
    ///
    /// # Errors
    /// [`Error::BadBuffers`] when `range` is not inside `[0, items)`;
    /// [`Error::KernelFailed`] when the kernel returns a non-zero status.
    pub fn run_chunk(&self, range: Range<u64>) -> Result<Partial> {
        if range.start > range.end || range.end > self.args.items {
            return Err(Error::BadBuffers {
                kernel: self.kernel.name().name(),
                reason: format!("range {range:?} outside 0..{}", self.args.items),
            });
        }
        let mut partial = Partial::identity_of(self.kernel.signature());
        let mut raw = self.raw;
        raw.partial = partial.0.as_mut_ptr();
        // SAFETY: `raw` was checked against the kernel's buffer needs in `new`, the buffers
        // live and are exclusively borrowed for 'a, the range is inside [0, items), and the
        // partial is local to this call; `self.kernel` keeps the kernel's library loaded
        // for the whole call. Concurrent calls on disjoint ranges write disjoint
        // items (the kernel contract).
        let code = unsafe { (self.kernel.raw())(&raw, range.start, range.end) };
        if code != 0 {
            return Err(Error::KernelFailed {
                kernel: self.kernel.name().to_string(),
                lang: self.kernel.lang().to_string(),
                code,
                begin: range.start,
                end: range.end,
            });
        }
        Ok(partial)
    }

    /// Run the chunks in order and combine their partials in that order.
    ///
    /// # Errors
    /// The first error of [`Step::run_chunk`]; later chunks are not run.
    pub fn run_chunks(&self, chunks: impl IntoIterator<Item = Range<u64>>) -> Result<Partial> {
        let sig = self.kernel.signature();
        let mut total = Partial::identity_of(sig);
        for c in chunks {
            total.combine_of(sig, &self.run_chunk(c)?);
        }
        Ok(total)
    }
}
