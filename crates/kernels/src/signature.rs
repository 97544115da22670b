//! What a kernel reads and writes: the one [`Signature`] type of every kernel, whatever
//! its front end (built in, a shared object, JIT-compiled source, later the C ABI).
//!
//! A signature lists the kernel's buffers (element type, length as a function of N and
//! the items, or given by the caller, read or written), its partial slots and how each
//! combines ([`Reduce`]), and the checks its scalar arguments must pass. [`Step::new`]
//! checks every step against it, whichever kernel it is, and executors read it to combine
//! partials. The built-in kernels describe themselves with it ([`builtin`]); a kernel with
//! a signature of its own is named [`KernelName::Custom`].
//!
//! ```
//! use kernelpool_kernels::signature::{Len, Signature};
//! use kernelpool_kernels::{Elem, Reduce};
//!
//! // out[i] = f(in[i]), plus the sum of the outputs as a float partial.
//! let sig = Signature::new("f")
//!     .input(Elem::F64, Len::Items(1))
//!     .output(Elem::F64, Len::Items(1))
//!     .partial(Reduce::SumF64);
//! assert_eq!(sig.to_string(), "in f64[items], out f64[items], sum f64");
//! assert_eq!(Signature::parse("f", "in f64[items], out f64[items], sum f64")?, sig);
//! # Ok::<(), kernelpool_kernels::Error>(())
//! ```
//!
//! # Partials
//! The C ABI's partial is [`PARTIAL_LEN`] `int64_t` slots (`kp_kargs::partial`). An
//! integer slot holds its value; a float slot ([`Reduce::SumF64`], [`Reduce::MaxF64`],
//! [`Reduce::MinF64`]) holds the bits of an IEEE-754 `double` (a kernel writes it through
//! a `double *` cast of `args->partial`, Fortran through `c_f_pointer` to `real(c_double)`).
//! Each slot starts at its operation's identity. Executors combine the partials of
//! consecutive chunks left to right, in chunk order. Integer slots are exact, so the
//! result never depends on the split. A float sum is not associative, so its result
//! depends on the chunk size, never on the executor or the number of workers; serial runs
//! the whole range as one chunk. Float max and min propagate NaN and order -0 below +0,
//! so they do not depend on the split either.
//!
//! [`Step::new`]: crate::Step::new
//! [`KernelName::Custom`]: crate::KernelName::Custom
//! [`PARTIAL_LEN`]: crate::step::PARTIAL_LEN

use crate::buffer::Elem;
use crate::error::{Error, Result};
use crate::registry::KernelName;
use crate::step::{MAX_BUFS, PARTIAL_LEN, StepArgs, factorial};
use kernelpool_kernels_sys as sys;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// How one slot of a reduction partial is combined. More may come: matches outside this
/// crate need a wildcard arm.
///
/// ```compile_fail,E0004
/// # use kernelpool_kernels::Reduce;
/// fn name(r: Reduce) -> &'static str { match r { Reduce::Sum => "sum", Reduce::Max => "max" } }
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum Reduce {
    /// Wrapping integer sum (identity 0).
    Sum,
    /// Integer maximum (identity `i64::MIN`).
    Max,
    /// Integer minimum (identity `i64::MAX`).
    Min,
    /// Sum of `f64` (identity -0.0, so that adding it changes no value, not even a zero's
    /// sign), combined in chunk order.
    SumF64,
    /// Maximum of `f64` (identity -inf); NaN wins, +0 is above -0.
    MaxF64,
    /// Minimum of `f64` (identity +inf); NaN wins, -0 is below +0.
    MinF64,
}

impl Reduce {
    /// The identity of the operation, as the slot stores it (float slots: the bits).
    pub fn identity(self) -> i64 {
        match self {
            Reduce::Sum => 0,
            Reduce::Max => i64::MIN,
            Reduce::Min => i64::MAX,
            Reduce::SumF64 => f64_slot(-0.0),
            Reduce::MaxF64 => f64_slot(f64::NEG_INFINITY),
            Reduce::MinF64 => f64_slot(f64::INFINITY),
        }
    }

    /// Combine `a` (the earlier chunks) with `b` (the next chunk).
    pub fn combine(self, a: i64, b: i64) -> i64 {
        let (fa, fb) = (slot_f64(a), slot_f64(b));
        match self {
            Reduce::Sum => a.wrapping_add(b),
            Reduce::Max => a.max(b),
            Reduce::Min => a.min(b),
            Reduce::SumF64 => f64_slot(fa + fb),
            Reduce::MaxF64 => f64_slot(float_pick(fa, fb, true)),
            Reduce::MinF64 => f64_slot(float_pick(fa, fb, false)),
        }
    }

    /// True for the operations on `f64` slots.
    pub fn is_float(self) -> bool {
        matches!(self, Reduce::SumF64 | Reduce::MaxF64 | Reduce::MinF64)
    }

    /// The element type of the slot: [`Elem::I64`] or [`Elem::F64`].
    pub fn elem(self) -> Elem {
        if self.is_float() {
            Elem::F64
        } else {
            Elem::I64
        }
    }

    /// The operation's word in a signature spec: `sum`, `max` or `min`.
    pub fn op_name(self) -> &'static str {
        match self {
            Reduce::Sum | Reduce::SumF64 => "sum",
            Reduce::Max | Reduce::MaxF64 => "max",
            Reduce::Min | Reduce::MinF64 => "min",
        }
    }

    /// `op` on `elem` (`("sum", Elem::F64)` is [`Reduce::SumF64`]); `None` for an
    /// unknown operation or a `u8` slot.
    pub fn from_parts(op: &str, elem: Elem) -> Option<Reduce> {
        Some(match (op, elem) {
            ("sum", Elem::I64) => Reduce::Sum,
            ("max", Elem::I64) => Reduce::Max,
            ("min", Elem::I64) => Reduce::Min,
            ("sum", Elem::F64) => Reduce::SumF64,
            ("max", Elem::F64) => Reduce::MaxF64,
            ("min", Elem::F64) => Reduce::MinF64,
            _ => return None,
        })
    }
}

/// The slot holding `v`: the bits of the double.
pub fn f64_slot(v: f64) -> i64 {
    v.to_bits() as i64
}

/// The double a float slot holds.
pub fn slot_f64(slot: i64) -> f64 {
    f64::from_bits(slot as u64)
}

/// max (`max == true`) or min of two doubles: a NaN wins (the earlier one if both are),
/// and of two zeros +0 is the larger. Associative and commutative up to NaN payloads.
fn float_pick(a: f64, b: f64, max: bool) -> f64 {
    if a.is_nan() {
        return a;
    }
    if b.is_nan() {
        return b;
    }
    let a_wins = match a.partial_cmp(&b) {
        Some(std::cmp::Ordering::Greater) => max,
        Some(std::cmp::Ordering::Less) => !max,
        // Equal: only zeros can differ (in sign).
        _ => a.is_sign_negative() != max,
    };
    if a_wins { a } else { b }
}

/// Whether a kernel reads a buffer, writes it, or both.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum Access {
    /// Only read (an input).
    Read,
    /// Only written (an output; items are written by the chunk that owns them).
    Write,
    /// Read and written (each item by the chunk that owns it).
    ReadWrite,
}

impl Access {
    /// The word in a signature spec: `in`, `out`, `inout`.
    pub fn word(self) -> &'static str {
        match self {
            Access::Read => "in",
            Access::Write => "out",
            Access::ReadWrite => "inout",
        }
    }

    /// True when the kernel writes the buffer.
    pub fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// The length of a buffer in elements: a function of the step's N and items, or given by
/// the caller. A step's buffer may be longer than this, never shorter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum Len {
    /// `k x items` elements (spec: `items`, `2*items`).
    Items(u64),
    /// `k x n` elements (spec: `n`, `3*n`).
    N(u64),
    /// N rows of N bits, 8 to a byte: `n x ceil(n / 8)` (mandelbrot's PBM bitmap; spec:
    /// `n*ceil(n/8)`).
    BitRows,
    /// N rows of N elements: `n x n` (laplace's grid; spec: `n*n`).
    Square,
    /// This many elements (spec: a number).
    Fixed(u64),
    /// Any length: the caller gives it, the kernel reads `args->len[i]` (spec: `*`).
    Any,
}

impl Len {
    /// The least number of elements for `args`; `None` for [`Len::Any`].
    pub fn of(self, args: &StepArgs) -> Option<u128> {
        let (items, n) = (args.items as u128, args.n as u128);
        Some(match self {
            Len::Items(k) => k as u128 * items,
            Len::N(k) => k as u128 * n,
            Len::BitRows => n * n.div_ceil(8),
            Len::Square => n * n,
            Len::Fixed(len) => len as u128,
            Len::Any => return None,
        })
    }

    /// How many elements each item owns when the buffer is laid out item after item
    /// (item `i` owns elements `[i*k, (i+1)*k)`): `k` for [`Len::Items`]`(k)`, and, when
    /// `items == n` (one item per row), `k` for [`Len::N`]`(k)`, `ceil(n/8)` for
    /// [`Len::BitRows`] and `n` for [`Len::Square`]. `None` when the length says nothing
    /// about which item owns which element ([`Len::Fixed`], [`Len::Any`], or rows that are
    /// not the items). Executors that keep a buffer in pieces (MPI ranks) move items by it.
    pub fn per_item(self, args: &StepArgs) -> Option<u64> {
        let rows = args.items == args.n;
        match self {
            Len::Items(k) => Some(k),
            Len::N(k) if rows => Some(k),
            Len::BitRows if rows => Some(args.n.div_ceil(8)),
            Len::Square if rows => Some(args.n),
            _ => None,
        }
    }
}

/// Which elements of a buffer the chunk of items `[b, e)` reads, for executors that keep
/// buffers in pieces (MPI ranks own ranges of items and move only what a step reads).
/// More may come: matches outside this crate need a wildcard arm.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[non_exhaustive]
pub enum Reads {
    /// Any element (spectralnorm's vector): the default, and the only safe assumption
    /// for a kernel that does not say.
    #[default]
    All,
    /// Only the elements its own items own (STREAM's arrays; spec: `own`).
    Own,
    /// The elements of items `[b - h, e + h)` (a stencil: laplace reads the rows above
    /// and below; spec: `halo(h)`).
    Halo(u64),
}

impl fmt::Display for Reads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reads::All => f.write_str("all"),
            Reads::Own => f.write_str("own"),
            Reads::Halo(h) => write!(f, "halo({h})"),
        }
    }
}

impl fmt::Display for Len {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Len::Items(1) => f.write_str("items"),
            Len::Items(k) => write!(f, "{k}*items"),
            Len::N(1) => f.write_str("n"),
            Len::N(k) => write!(f, "{k}*n"),
            Len::BitRows => f.write_str("n*ceil(n/8)"),
            Len::Square => f.write_str("n*n"),
            Len::Fixed(len) => write!(f, "{len}"),
            Len::Any => f.write_str("*"),
        }
    }
}

/// One buffer of a signature.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct BufferSpec {
    /// Element type.
    pub elem: Elem,
    /// Least length.
    pub len: Len,
    /// Read, written or both.
    pub access: Access,
    /// Which elements a chunk reads (for a buffer it reads).
    pub reads: Reads,
}

impl fmt::Display for BufferSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}[{}]",
            self.access.word(),
            elem_name(self.elem),
            self.len
        )?;
        if self.reads != Reads::All {
            write!(f, " {}", self.reads)?;
        }
        Ok(())
    }
}

/// A condition on a step's scalar arguments, checked by [`Step::new`](crate::Step::new)
/// before any buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Check {
    /// `1 <= n <= max` ([`Error::InvalidSize`]; spec: `n<=MAX`).
    NAtMost(u64),
    /// `items <= max` ([`Error::InvalidSize`] naming the items as `what`; spec:
    /// `items<=MAX`).
    ItemsAtMost {
        /// The bound.
        max: u64,
        /// What the items are, for the message (`samples`).
        what: String,
    },
    /// `items == n` (spec: `items==n`).
    ItemsEqualN,
    /// `items == n!` (spec: `items==n!`).
    ItemsEqualFactorialN,
    /// `min <= iparam[slot] <= max` (spec: `iparam[0]>=0`, `iparam[0] in 0..=4`).
    IParam {
        /// Which of the four integer parameters.
        slot: u8,
        /// Least value.
        min: i64,
        /// Largest value.
        max: i64,
        /// What the parameter is, for the message (`a loop count`); may be empty.
        what: String,
    },
}

impl Check {
    fn apply(&self, kernel: &'static str, args: &StepArgs) -> Result<()> {
        let bad = |reason: String| Err(Error::BadBuffers { kernel, reason });
        match self {
            Check::NAtMost(max) => {
                if !(1..=*max).contains(&args.n) {
                    return Err(Error::InvalidSize {
                        kernel,
                        n: args.n,
                        reason: if args.n == 0 {
                            "N must be at least 1".into()
                        } else {
                            format!("{kernel} supports N up to {max}")
                        },
                    });
                }
            }
            Check::ItemsAtMost { max, what } => {
                if args.items > *max {
                    return Err(Error::InvalidSize {
                        kernel,
                        n: args.items,
                        reason: format!("{kernel} supports up to {max} {what}"),
                    });
                }
            }
            Check::ItemsEqualN => {
                if args.items != args.n {
                    return bad(format!("{kernel} needs items == n"));
                }
            }
            Check::ItemsEqualFactorialN => {
                if Some(args.items) != factorial(args.n) {
                    return bad(format!("{kernel} needs items == n!"));
                }
            }
            Check::IParam {
                slot,
                min,
                max,
                what,
            } => {
                let v = args.iparam[usize::from(*slot)];
                if !(*min..=*max).contains(&v) {
                    let what = if what.is_empty() {
                        String::new()
                    } else {
                        format!("{what} ")
                    };
                    return bad(format!(
                        "{kernel} needs {what}{} (got {v})",
                        IParamRange(*slot, *min, *max)
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `iparam[0]>=0`, `iparam[0]<=9`, `iparam[0] in 0..=4`.
struct IParamRange(u8, i64, i64);

impl fmt::Display for IParamRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let IParamRange(slot, min, max) = *self;
        match (min, max) {
            (min, i64::MAX) => write!(f, "iparam[{slot}] >= {min}"),
            (i64::MIN, max) => write!(f, "iparam[{slot}] <= {max}"),
            (min, max) => write!(f, "iparam[{slot}] in {min}..={max}"),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::NAtMost(max) => write!(f, "n<={max}"),
            Check::ItemsAtMost { max, .. } => write!(f, "items<={max}"),
            Check::ItemsEqualN => f.write_str("items==n"),
            Check::ItemsEqualFactorialN => f.write_str("items==n!"),
            Check::IParam { slot, min, max, .. } => match (*min, *max) {
                (min, i64::MAX) => write!(f, "iparam[{slot}]>={min}"),
                (i64::MIN, max) => write!(f, "iparam[{slot}]<={max}"),
                (min, max) => write!(f, "iparam[{slot}] in {min}..={max}"),
            },
        }
    }
}

/// What a kernel reads and writes: its buffers, its partial slots and their combining
/// operations, and the checks on its arguments. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Signature {
    name: String,
    buffers: Vec<BufferSpec>,
    partials: Vec<Reduce>,
    checks: Vec<Check>,
}

impl Signature {
    /// A signature named `name` (the name errors give the kernel) with no buffers, no
    /// partials and no checks; add them with the builder methods.
    pub fn new(name: impl Into<String>) -> Signature {
        Signature {
            name: name.into(),
            buffers: Vec::new(),
            partials: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Add a buffer.
    #[must_use]
    pub fn buffer(mut self, elem: Elem, len: Len, access: Access) -> Signature {
        self.buffers.push(BufferSpec {
            elem,
            len,
            access,
            reads: Reads::All,
        });
        self
    }

    /// Say which elements a chunk reads of the buffer added last (default [`Reads::All`]).
    #[must_use]
    pub fn reading(mut self, reads: Reads) -> Signature {
        if let Some(b) = self.buffers.last_mut() {
            b.reads = reads;
        }
        self
    }

    /// Add a buffer the kernel only reads.
    #[must_use]
    pub fn input(self, elem: Elem, len: Len) -> Signature {
        self.buffer(elem, len, Access::Read)
    }

    /// Add a buffer the kernel only writes.
    #[must_use]
    pub fn output(self, elem: Elem, len: Len) -> Signature {
        self.buffer(elem, len, Access::Write)
    }

    /// Add a buffer the kernel reads and writes.
    #[must_use]
    pub fn inout(self, elem: Elem, len: Len) -> Signature {
        self.buffer(elem, len, Access::ReadWrite)
    }

    /// Add a partial slot combined by `op`.
    #[must_use]
    pub fn partial(mut self, op: Reduce) -> Signature {
        self.partials.push(op);
        self
    }

    /// Add a check on the arguments (checked in the order added).
    #[must_use]
    pub fn check(mut self, check: Check) -> Signature {
        self.checks.push(check);
        self
    }

    /// The same signature under another name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Signature {
        self.name = name.into();
        self
    }

    /// The kernel's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The buffers, in slot order.
    pub fn buffers(&self) -> &[BufferSpec] {
        &self.buffers
    }

    /// The partial slots, in slot order (empty: not a reduction).
    pub fn partials(&self) -> &[Reduce] {
        &self.partials
    }

    /// The checks on the arguments.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Refuse a signature that the contract cannot carry.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] for an empty name, more than [`MAX_BUFS`] buffers,
    /// more than [`PARTIAL_LEN`] partial slots, or a check on an `iparam` slot past 3 or
    /// with an empty range.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidSignature {
                name: self.name.clone(),
                reason,
            })
        };
        if self.name.is_empty() {
            return bad("the name is empty".into());
        }
        if self.buffers.len() > MAX_BUFS {
            return bad(format!(
                "{} buffers, more than the {MAX_BUFS} of the kernel contract",
                self.buffers.len()
            ));
        }
        if self.partials.len() > PARTIAL_LEN {
            return bad(format!(
                "{} partial slots, more than the {PARTIAL_LEN} of the kernel contract",
                self.partials.len()
            ));
        }
        for c in &self.checks {
            if let Check::IParam { slot, min, max, .. } = c {
                if usize::from(*slot) >= 4 {
                    return bad(format!("iparam[{slot}] does not exist (there are 4)"));
                }
                if min > max {
                    return bad(format!("the check {c} accepts no value"));
                }
            }
        }
        Ok(())
    }

    /// Check `args` and give the buffers a step needs: (element type, least length;
    /// `None` for [`Len::Any`]) per slot. The signature is a `'static` one (a built-in
    /// kernel's, or interned: [`SignatureRef::new`]), whose name errors carry.
    ///
    /// # Errors
    /// [`Error::InvalidSize`] for more items than a step may have or for N or the items
    /// outside the signature's bounds; [`Error::BadBuffers`] when another check fails.
    pub fn buffers_for(&'static self, args: &StepArgs) -> Result<Vec<(Elem, Option<u128>)>> {
        self.check_args(args)?;
        Ok(self
            .buffers
            .iter()
            .map(|b| (b.elem, b.len.of(args)))
            .collect())
    }

    /// The argument checks of [`Signature::buffers_for`], without building its list (the
    /// step's hot path reads the buffer descriptions in place).
    pub(crate) fn check_args(&'static self, args: &StepArgs) -> Result<()> {
        let kernel = self.name.as_str();
        if args.items > sys::KP_MAX_ITEMS as u64 {
            return Err(Error::InvalidSize {
                kernel,
                n: args.n,
                reason: format!(
                    "{} items, more than the {} a step may have",
                    args.items,
                    sys::KP_MAX_ITEMS
                ),
            });
        }
        for c in &self.checks {
            c.apply(kernel, args)?;
        }
        Ok(())
    }

    /// The largest N the signature accepts (its [`Check::NAtMost`], or `u64::MAX`).
    pub fn max_n(&self) -> u64 {
        self.checks
            .iter()
            .find_map(|c| match c {
                Check::NAtMost(max) => Some(*max),
                _ => None,
            })
            .unwrap_or(u64::MAX)
    }

    /// Parse a spec: comma-separated buffers (`in|out|inout ELEM[LEN]`, ELEM one of
    /// `i64`, `f64`, `u8`, LEN one of `items`, `K*items`, `n`, `K*n`, `n*ceil(n/8)`, `n*n`, a
    /// number or `*`), partial slots (`sum|max|min i64|f64`) and checks (`n<=MAX`,
    /// `items<=MAX`, `items==n`, `items==n!`, `iparam[K]>=MIN`, `iparam[K]<=MAX`,
    /// `iparam[K] in MIN..=MAX`), in slot order. The [`Display`](fmt::Display) of a
    /// signature is its spec.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] naming the part that does not parse, or what
    /// [`Signature::validate`] refuses.
    pub fn parse(name: &str, spec: &str) -> Result<Signature> {
        let mut sig = Signature::new(name);
        let bad = |part: &str, why: &str| Error::InvalidSignature {
            name: name.to_string(),
            reason: format!("`{part}`: {why}"),
        };
        for part in spec.split([',', ';']).map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let compact: String = part.chars().filter(|c| !c.is_whitespace()).collect();
            if let Some(check) = parse_check(&compact, part).map_err(|why| bad(part, &why))? {
                sig.checks.push(check);
                continue;
            }
            let (word, rest) = part.split_once(char::is_whitespace).ok_or_else(|| {
                bad(
                    part,
                    "expected `in|out|inout TYPE[LEN]` or `sum|max|min TYPE`",
                )
            })?;
            let rest: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
            match word {
                "in" | "out" | "inout" => {
                    let access = match word {
                        "in" => Access::Read,
                        "out" => Access::Write,
                        _ => Access::ReadWrite,
                    };
                    // `TYPE[LEN]`, then what a chunk reads: `own`, `halo(H)` (default: all).
                    let (shape, reads) = match rest.split_once(']') {
                        Some((shape, tail)) => (shape, tail),
                        None => (rest.as_str(), ""),
                    };
                    let reads = match reads {
                        "" | "all" => Reads::All,
                        "own" => Reads::Own,
                        r => r
                            .strip_prefix("halo(")
                            .and_then(|h| h.strip_suffix(')'))
                            .and_then(|h| h.parse().ok())
                            .map(Reads::Halo)
                            .ok_or_else(|| {
                                bad(part, "after TYPE[LEN] comes all, own or halo(H)")
                            })?,
                    };
                    let (ty, len) = shape
                        .split_once('[')
                        .filter(|_| rest.contains(']'))
                        .ok_or_else(|| bad(part, "expected TYPE[LEN], e.g. f64[items]"))?;
                    let elem = parse_elem(ty).ok_or_else(|| bad(part, "types are i64, f64, u8"))?;
                    let len = parse_len(len).ok_or_else(|| {
                        bad(
                            part,
                            "lengths are items, K*items, n, K*n, n*ceil(n/8), n*n, a number or *",
                        )
                    })?;
                    sig.buffers.push(BufferSpec {
                        elem,
                        len,
                        access,
                        reads,
                    });
                }
                "sum" | "max" | "min" => {
                    let op = parse_elem(&rest)
                        .and_then(|e| Reduce::from_parts(word, e))
                        .ok_or_else(|| bad(part, "partial slots are i64 or f64"))?;
                    sig.partials.push(op);
                }
                _ => {
                    return Err(bad(
                        part,
                        "expected in, out, inout (a buffer), sum, max, min (a partial) or a check",
                    ));
                }
            }
        }
        sig.validate()?;
        Ok(sig)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { ", " };
            first = false;
            f.write_str(s)
        };
        for b in &self.buffers {
            sep(f)?;
            write!(f, "{b}")?;
        }
        for p in &self.partials {
            sep(f)?;
            write!(f, "{} {}", p.op_name(), elem_name(p.elem()))?;
        }
        for c in &self.checks {
            sep(f)?;
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// `i64`, `f64`, `u8`.
pub fn elem_name(elem: Elem) -> &'static str {
    match elem {
        Elem::I64 => "i64",
        Elem::F64 => "f64",
        Elem::U8 => "u8",
    }
}

fn parse_elem(s: &str) -> Option<Elem> {
    match s {
        "i64" | "int64" | "int64_t" => Some(Elem::I64),
        "f64" | "double" => Some(Elem::F64),
        "u8" | "uint8" | "uint8_t" => Some(Elem::U8),
        _ => None,
    }
}

fn parse_len(s: &str) -> Option<Len> {
    let times = |unit: &str| -> Option<u64> {
        if s == unit {
            return Some(1);
        }
        s.strip_suffix(unit)?.strip_suffix('*')?.parse().ok()
    };
    if s == "*" {
        Some(Len::Any)
    } else if s == "n*ceil(n/8)" {
        Some(Len::BitRows)
    } else if s == "n*n" {
        Some(Len::Square)
    } else if let Some(k) = times("items") {
        Some(Len::Items(k))
    } else if let Some(k) = times("n") {
        Some(Len::N(k))
    } else {
        s.parse().ok().map(Len::Fixed)
    }
}

/// A check, `Ok(None)` when `compact` (the part without spaces) is not one.
fn parse_check(compact: &str, part: &str) -> std::result::Result<Option<Check>, String> {
    let num = |s: &str| -> std::result::Result<u64, String> {
        s.parse().map_err(|_| format!("`{s}` is not a number"))
    };
    let int = |s: &str| -> std::result::Result<i64, String> {
        s.parse().map_err(|_| format!("`{s}` is not an integer"))
    };
    if let Some(max) = compact.strip_prefix("n<=") {
        return Ok(Some(Check::NAtMost(num(max)?)));
    }
    if let Some(max) = compact.strip_prefix("items<=") {
        return Ok(Some(Check::ItemsAtMost {
            max: num(max)?,
            what: "items".into(),
        }));
    }
    match compact {
        "items==n" => return Ok(Some(Check::ItemsEqualN)),
        "items==n!" => return Ok(Some(Check::ItemsEqualFactorialN)),
        _ => {}
    }
    let Some(rest) = compact.strip_prefix("iparam[") else {
        return Ok(None);
    };
    let (slot, cond) = rest
        .split_once(']')
        .ok_or_else(|| format!("`{part}`: expected iparam[K]"))?;
    let slot: u8 = slot
        .parse()
        .map_err(|_| format!("`{slot}` is not a slot number"))?;
    let (min, max) = if let Some(v) = cond.strip_prefix(">=") {
        (int(v)?, i64::MAX)
    } else if let Some(v) = cond.strip_prefix("<=") {
        (i64::MIN, int(v)?)
    } else if let Some((lo, hi)) = cond.strip_prefix("in").and_then(|r| r.split_once("..=")) {
        (int(lo)?, int(hi)?)
    } else {
        return Err("expected iparam[K]>=MIN, iparam[K]<=MAX or iparam[K] in MIN..=MAX".into());
    };
    Ok(Some(Check::IParam {
        slot,
        min,
        max,
        what: String::new(),
    }))
}

/// Signatures with a `'static` life: interned once per process, so that a
/// [`KernelName::Custom`] stays a small `Copy` value.
static INTERNED: OnceLock<Mutex<HashSet<&'static Signature>>> = OnceLock::new();

/// The one `'static` copy of `sig` in this process. Each distinct signature is kept for
/// the life of the process (a few hundred bytes each, like a symbol table).
pub(crate) fn intern(sig: Signature) -> &'static Signature {
    let mut set = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = set.get(&sig) {
        return s;
    }
    let s: &'static Signature = Box::leak(Box::new(sig));
    set.insert(s);
    s
}

/// A signature interned for the life of the process: what [`KernelName::Custom`] holds.
/// It serializes as the whole signature, and deserializing interns it again, so a
/// kernel's contract crosses to worker processes by value.
#[derive(Clone, Copy)]
pub struct SignatureRef(&'static Signature);

impl SignatureRef {
    /// Validate and intern `sig`.
    ///
    /// # Errors
    /// What [`Signature::validate`] refuses.
    pub fn new(sig: Signature) -> Result<SignatureRef> {
        sig.validate()?;
        Ok(SignatureRef(intern(sig)))
    }

    /// The signature.
    pub fn get(self) -> &'static Signature {
        self.0
    }
}

impl std::ops::Deref for SignatureRef {
    type Target = Signature;
    fn deref(&self) -> &Signature {
        self.0
    }
}

impl fmt::Debug for SignatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.0.name, self.0)
    }
}

impl PartialEq for SignatureRef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0 == other.0
    }
}
impl Eq for SignatureRef {}

impl std::hash::Hash for SignatureRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialOrd for SignatureRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SignatureRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(other.0)
    }
}

impl Serialize for SignatureRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SignatureRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let sig = Signature::deserialize(d)?;
        SignatureRef::new(sig).map_err(serde::de::Error::custom)
    }
}

/// The signatures of the built-in kernels, in [`KernelName::ALL`] order.
fn builtins() -> &'static [Signature; 8] {
    static ALL: OnceLock<[Signature; 8]> = OnceLock::new();
    ALL.get_or_init(|| KernelName::ALL.map(make_builtin))
}

/// The signature of a built-in kernel (see `native/include/kernels.h`); a
/// [`KernelName::Custom`]'s own.
pub fn builtin(kernel: KernelName) -> &'static Signature {
    match kernel {
        KernelName::Custom(sig) => sig.get(),
        k => {
            let i = KernelName::ALL
                .iter()
                .position(|b| *b == k)
                .unwrap_or_default();
            &builtins()[i]
        }
    }
}

fn make_builtin(kernel: KernelName) -> Signature {
    use crate::step::max_n;
    let iparam = |min, max, what: &str| Check::IParam {
        slot: 0,
        min,
        max,
        what: what.into(),
    };
    let sig = Signature::new(kernel.name());
    match kernel {
        KernelName::Seed => {
            sig.output(Elem::I64, Len::Items(1))
                .check(iparam(0, i64::MAX, "a loop count"))
        }
        KernelName::Nbody => {
            sig.output(Elem::F64, Len::Items(2))
                .check(iparam(0, i64::MAX, "a step count"))
        }
        KernelName::Spectralnorm => sig
            .input(Elem::F64, Len::N(1))
            .reading(Reads::All)
            .output(Elem::F64, Len::N(1))
            .check(Check::NAtMost(max_n(kernel)))
            .check(Check::ItemsEqualN)
            .check(iparam(0, 1, "a product (0: A*u, 1: A^T*u)")),
        KernelName::Mandelbrot => sig
            .output(Elem::U8, Len::BitRows)
            .check(Check::NAtMost(max_n(kernel)))
            .check(Check::ItemsEqualN),
        KernelName::Fannkuch => sig
            .partial(Reduce::Sum)
            .partial(Reduce::Max)
            .check(Check::NAtMost(max_n(kernel)))
            .check(Check::ItemsEqualFactorialN),
        KernelName::Triad => sig
            .inout(Elem::F64, Len::Items(1))
            .reading(Reads::Own)
            .inout(Elem::F64, Len::Items(1))
            .reading(Reads::Own)
            .inout(Elem::F64, Len::Items(1))
            .reading(Reads::Own)
            .check(iparam(0, 4, "a STREAM op")),
        KernelName::Pi => sig.partial(Reduce::Sum).check(Check::ItemsAtMost {
            max: max_n(kernel),
            what: "samples".into(),
        }),
        KernelName::Laplace => sig
            .input(Elem::F64, Len::Square)
            .reading(Reads::Halo(1))
            .output(Elem::F64, Len::Square)
            .partial(Reduce::MaxF64)
            .check(Check::NAtMost(max_n(kernel)))
            .check(Check::ItemsEqualN),
        KernelName::Custom(s) => s.get().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_spec_round_trips_through_parse() {
        for k in KernelName::ALL {
            let sig = builtin(k);
            sig.validate().expect("valid");
            let spec = sig.to_string();
            let back = Signature::parse(k.name(), &spec).expect("parses");
            // Checks parsed from a spec carry no description; the rest is equal.
            assert_eq!(back.buffers(), sig.buffers(), "{k}: {spec}");
            assert_eq!(back.partials(), sig.partials(), "{k}: {spec}");
            assert_eq!(back.to_string(), spec, "{k}");
        }
        assert_eq!(
            builtin(KernelName::Mandelbrot).to_string(),
            "out u8[n*ceil(n/8)], n<=4294967296, items==n"
        );
    }

    #[test]
    fn read_patterns_and_per_item_layouts() {
        let sig = Signature::parse("s", "in f64[n*n] halo(1), inout f64[items] own, in u8[7]")
            .expect("parses");
        let reads: Vec<Reads> = sig.buffers().iter().map(|b| b.reads).collect();
        assert_eq!(reads, [Reads::Halo(1), Reads::Own, Reads::All]);
        assert_eq!(
            sig.to_string(),
            "in f64[n*n] halo(1), inout f64[items] own, in u8[7]"
        );
        assert_eq!(
            builtin(KernelName::Laplace).to_string(),
            "in f64[n*n] halo(1), out f64[n*n], max f64, n<=16777216, items==n"
        );
        let rows = StepArgs::new(10, 10);
        let other = StepArgs::new(10, 4);
        assert_eq!(Len::Items(2).per_item(&other), Some(2));
        assert_eq!(Len::Square.per_item(&rows), Some(10));
        assert_eq!(Len::BitRows.per_item(&rows), Some(2));
        assert_eq!(Len::N(3).per_item(&rows), Some(3));
        assert_eq!(Len::Square.per_item(&other), None);
        assert_eq!(Len::Fixed(10).per_item(&rows), None);
        assert_eq!(Len::Any.per_item(&rows), None);
    }

    #[test]
    fn bad_specs_are_errors_naming_the_part() {
        for (spec, needle) in [
            ("in f32[items]", "in f32[items]"),
            ("out i64[items", "TYPE[LEN]"),
            ("avg i64", "avg i64"),
            ("sum u8", "i64 or f64"),
            ("in i64[3*m]", "lengths"),
            ("in f64[items] sideways", "all, own or halo(H)"),
            ("in f64[items] halo(x)", "all, own or halo(H)"),
            ("iparam[7]>=0", "iparam[7]"),
            ("iparam[0] in 5..=1", "accepts no value"),
            (
                "in u8[*], in u8[*], in u8[*], in u8[*], in u8[*]",
                "more than the 4",
            ),
            (
                "sum i64, sum i64, sum i64, sum i64, max f64",
                "partial slots",
            ),
        ] {
            let e = Signature::parse("k", spec).expect_err(spec);
            assert!(matches!(e, Error::InvalidSignature { .. }), "{spec}: {e}");
            assert!(e.to_string().contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn float_slots_combine_by_the_documented_rules() {
        let f = f64_slot;
        let sum = |a: f64, b: f64| slot_f64(Reduce::SumF64.combine(f(a), f(b)));
        assert_eq!(sum(1.5, 2.25), 3.75);
        // -0.0 is the identity: adding it keeps a zero's sign.
        assert!(sum(slot_f64(Reduce::SumF64.identity()), -0.0).is_sign_negative());
        let max = |a: f64, b: f64| slot_f64(Reduce::MaxF64.combine(f(a), f(b)));
        let min = |a: f64, b: f64| slot_f64(Reduce::MinF64.combine(f(a), f(b)));
        assert_eq!(max(1.0, 2.0), 2.0);
        assert_eq!(min(1.0, 2.0), 1.0);
        assert!(max(-0.0, 0.0).is_sign_positive() && max(0.0, -0.0).is_sign_positive());
        assert!(min(-0.0, 0.0).is_sign_negative() && min(0.0, -0.0).is_sign_negative());
        assert!(max(f64::NAN, 1.0).is_nan() && max(1.0, f64::NAN).is_nan());
        assert!(min(f64::NAN, 1.0).is_nan() && min(1.0, f64::NAN).is_nan());
        assert_eq!(
            max(slot_f64(Reduce::MaxF64.identity()), -1e300),
            -1e300,
            "-inf is the identity of max"
        );
        assert_eq!(Reduce::Min.combine(3, -4), -4);
        assert_eq!(Reduce::Min.identity(), i64::MAX);
    }

    #[test]
    fn interned_signatures_are_shared_and_cross_by_value() {
        let a = SignatureRef::new(Signature::parse("g", "out i64[items], sum f64").unwrap())
            .expect("valid");
        let b = SignatureRef::new(Signature::parse("g", "out i64[items], sum f64").unwrap())
            .expect("valid");
        assert!(std::ptr::eq(a.get(), b.get()));
        let name = KernelName::Custom(a);
        let bytes = serde_json::to_vec(&name).expect("encode");
        let back: KernelName = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back, name);
        assert_eq!(back.name(), "g");
        let json = serde_json::to_string(&KernelName::Seed).expect("encode");
        assert_eq!(json, "\"seed\"");
    }
}
