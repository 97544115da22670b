//! The eight kernels written in Rust, with the same operation order as the C reference
//! (`native/c/kernels.c`), so that results agree bit for bit. Rust never contracts `a*b+c`
//! into a fused multiply-add on its own, which matches `-ffp-contract=off` on the C side.
//!
//! Each kernel is a safe function over slices; [`raw`] adapts them to the one C-compatible
//! range-kernel signature so they sit in the registry beside the native ones.

// The published n-body constants are kept digit for digit as the Benchmarks Game prints them
// (and as the C, C++ and Fortran sources spell them), so one can diff them by eye.
#![allow(clippy::excessive_precision, clippy::approx_constant)]

/// The i-th output of splitmix64 seeded with `seed` (counter based: no state is shared).
pub fn splitmix64_at(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(k.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform double in [0, 1) from the top 53 bits.
fn unit(z: u64) -> f64 {
    (z >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// `seed`: `out[i]` is the wrapping sum of `x*x` over `iters` loop trips, `x = begin + i + 1`.
pub fn seed(iters: u64, begin: u64, out: &mut [i64]) {
    for (i, o) in out.iter_mut().enumerate() {
        let x = begin + i as u64 + 1;
        let mut j: u64 = 0;
        for _ in 0..iters {
            j = j.wrapping_add(x.wrapping_mul(x));
        }
        *o = j as i64;
    }
}

/// One body of the n-body system (shared with the tuned kernel in [`crate::tuned`]).
#[derive(Clone, Copy)]
pub(crate) struct Body {
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) z: f64,
    pub(crate) vx: f64,
    pub(crate) vy: f64,
    pub(crate) vz: f64,
    pub(crate) mass: f64,
}

const PI: f64 = 3.141592653589793;
const SOLAR_MASS: f64 = 4.0 * PI * PI;
const DAYS_PER_YEAR: f64 = 365.24;

pub(crate) fn nbody_init(system: u64) -> [Body; 5] {
    let mut b = [
        Body {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            vx: 0.0,
            vy: 0.0,
            vz: 0.0,
            mass: SOLAR_MASS,
        },
        Body {
            x: 4.84143144246472090e+00,
            y: -1.16032004402742839e+00,
            z: -1.03622044471123109e-01,
            vx: 1.66007664274403694e-03 * DAYS_PER_YEAR,
            vy: 7.69901118419740425e-03 * DAYS_PER_YEAR,
            vz: -6.90460016972063023e-05 * DAYS_PER_YEAR,
            mass: 9.54791938424326609e-04 * SOLAR_MASS,
        },
        Body {
            x: 8.34336671824457987e+00,
            y: 4.12479856412430479e+00,
            z: -4.03523417114321381e-01,
            vx: -2.76742510726862411e-03 * DAYS_PER_YEAR,
            vy: 4.99852801234917238e-03 * DAYS_PER_YEAR,
            vz: 2.30417297573763929e-05 * DAYS_PER_YEAR,
            mass: 2.85885980666130812e-04 * SOLAR_MASS,
        },
        Body {
            x: 1.28943695621391310e+01,
            y: -1.51111514016986312e+01,
            z: -2.23307578892655734e-01,
            vx: 2.96460137564761618e-03 * DAYS_PER_YEAR,
            vy: 2.37847173959480950e-03 * DAYS_PER_YEAR,
            vz: -2.96589568540237556e-05 * DAYS_PER_YEAR,
            mass: 4.36624404335156298e-05 * SOLAR_MASS,
        },
        Body {
            x: 1.53796971148509165e+01,
            y: -2.59193146099879641e+01,
            z: 1.79258772950371181e-01,
            vx: 2.68067772490389322e-03 * DAYS_PER_YEAR,
            vy: 1.62824170038242295e-03 * DAYS_PER_YEAR,
            vz: -9.51592254519715870e-05 * DAYS_PER_YEAR,
            mass: 5.15138902046400322e-05 * SOLAR_MASS,
        },
    ];
    if system > 0 {
        // planets' positions moved by up to +-0.0005 AU, keyed by (system, 3*body+axis)
        for (i, p) in b.iter_mut().enumerate().skip(1) {
            let k = 3 * i as u64;
            p.x += 1.0e-3 * (unit(splitmix64_at(system, k)) - 0.5);
            p.y += 1.0e-3 * (unit(splitmix64_at(system, k + 1)) - 0.5);
            p.z += 1.0e-3 * (unit(splitmix64_at(system, k + 2)) - 0.5);
        }
    }
    let (mut px, mut py, mut pz) = (0.0, 0.0, 0.0);
    for p in &b {
        px += p.vx * p.mass;
        py += p.vy * p.mass;
        pz += p.vz * p.mass;
    }
    b[0].vx = -px / SOLAR_MASS;
    b[0].vy = -py / SOLAR_MASS;
    b[0].vz = -pz / SOLAR_MASS;
    b
}

pub(crate) fn nbody_energy(b: &[Body; 5]) -> f64 {
    let mut e = 0.0;
    for i in 0..5 {
        e += 0.5 * b[i].mass * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for j in i + 1..5 {
            let dx = b[i].x - b[j].x;
            let dy = b[i].y - b[j].y;
            let dz = b[i].z - b[j].z;
            let distance = (dx * dx + dy * dy + dz * dz).sqrt();
            e -= (b[i].mass * b[j].mass) / distance;
        }
    }
    e
}

fn nbody_advance(b: &mut [Body; 5], dt: f64) {
    for i in 0..5 {
        for j in i + 1..5 {
            let dx = b[i].x - b[j].x;
            let dy = b[i].y - b[j].y;
            let dz = b[i].z - b[j].z;
            let distance = (dx * dx + dy * dy + dz * dz).sqrt();
            let mag = dt / (distance * distance * distance);
            let (mi, mj) = (b[i].mass, b[j].mass);
            b[i].vx -= dx * mj * mag;
            b[i].vy -= dy * mj * mag;
            b[i].vz -= dz * mj * mag;
            b[j].vx += dx * mi * mag;
            b[j].vy += dy * mi * mag;
            b[j].vz += dz * mi * mag;
        }
    }
    for p in b.iter_mut() {
        p.x += dt * p.vx;
        p.y += dt * p.vy;
        p.z += dt * p.vz;
    }
}

/// `nbody`: systems `begin..`, `out` holds (energy before, energy after) per system.
pub fn nbody(steps: u64, begin: u64, out: &mut [f64]) {
    for (s, pair) in out.chunks_exact_mut(2).enumerate() {
        let mut b = nbody_init(begin + s as u64);
        pair[0] = nbody_energy(&b);
        for _ in 0..steps {
            nbody_advance(&mut b, 0.01);
        }
        pair[1] = nbody_energy(&b);
    }
}

fn eval_a(i: i64, j: i64) -> f64 {
    1.0 / ((i + j) * (i + j + 1) / 2 + i + 1) as f64
}

/// `spectralnorm`: rows `begin..` of A*u (or A^T*u when `transpose`).
pub fn spectralnorm(transpose: bool, begin: u64, u: &[f64], out: &mut [f64]) {
    for (r, o) in out.iter_mut().enumerate() {
        let i = (begin as usize + r) as i64;
        let mut sum = 0.0;
        if transpose {
            for (j, uj) in u.iter().enumerate() {
                sum += eval_a(j as i64, i) * uj;
            }
        } else {
            for (j, uj) in u.iter().enumerate() {
                sum += eval_a(i, j as i64) * uj;
            }
        }
        *o = sum;
    }
}

/// `mandelbrot`: rows `begin..` of the N x N PBM bitmap, `(n+7)/8` bytes per row.
pub fn mandelbrot(n: u64, begin: u64, out: &mut [u8]) {
    let bpr = n.div_ceil(8) as usize;
    if bpr == 0 {
        return; // an empty image, as in C (and no chunks of 0 bytes)
    }
    let (w, h, limit) = (n as f64, n as f64, 2.0f64);
    for (r, row) in out.chunks_exact_mut(bpr).enumerate() {
        let y = begin + r as u64;
        let ci = 2.0 * y as f64 / h - 1.0;
        let (mut byte_acc, mut bit_num, mut pos) = (0u32, 0u32, 0usize);
        for x in 0..n {
            let cr = 2.0 * x as f64 / w - 1.5;
            let (mut zr, mut zi, mut tr, mut ti) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            let mut i = 0;
            while i < 50 && tr + ti <= limit * limit {
                zi = 2.0 * zr * zi + ci;
                zr = tr - ti + cr;
                tr = zr * zr;
                ti = zi * zi;
                i += 1;
            }
            byte_acc <<= 1;
            if tr + ti <= limit * limit {
                byte_acc |= 1;
            }
            bit_num += 1;
            if bit_num == 8 {
                row[pos] = byte_acc as u8;
                pos += 1;
                byte_acc = 0;
                bit_num = 0;
            } else if x == n - 1 {
                byte_acc <<= 8 - n % 8;
                row[pos] = byte_acc as u8;
                pos += 1;
                byte_acc = 0;
                bit_num = 0;
            }
        }
    }
}

/// `fannkuch`: permutation indices `[begin, end)` of n; returns (checksum, max flips).
///
/// # Panics
/// When `n` is not in `1..=12`; it may when `end` is past `n!`.
pub fn fannkuch(n: usize, begin: u64, end: u64) -> (i64, i64) {
    assert!((1..=12).contains(&n), "fannkuch n must be in 1..=12");
    if begin == end {
        return (0, 0);
    }
    let mut fact = [1i64; 13];
    for i in 1..=n {
        fact[i] = fact[i - 1] * i as i64;
    }
    let mut p = [0usize; 12];
    let mut pp = [0usize; 12];
    let mut count = [0usize; 12];
    for (i, v) in p.iter_mut().enumerate().take(n) {
        *v = i;
    }
    // first permutation of the block: decode `begin` in the factorial number system
    let mut idx = begin as i64;
    for i in (1..n).rev() {
        let d = (idx / fact[i]) as usize;
        count[i] = d;
        idx %= fact[i];
        pp[..=i].copy_from_slice(&p[..=i]);
        for j in 0..=i {
            p[j] = if j + d <= i {
                pp[j + d]
            } else {
                pp[j + d - i - 1]
            };
        }
    }
    let (mut checksum, mut max_flips) = (0i64, 0i64);
    for k in begin..end {
        let mut flips = 0i64;
        if p[0] != 0 {
            pp[..n].copy_from_slice(&p[..n]);
            loop {
                let first = pp[0];
                if first == 0 {
                    break;
                }
                pp[..=first].reverse();
                flips += 1;
            }
        }
        max_flips = max_flips.max(flips);
        checksum += if k % 2 == 0 { flips } else { -flips };
        if k + 1 < end {
            // next permutation in the same order as the sequential algorithm
            p.swap(0, 1);
            let mut first = p[0];
            let mut i = 1;
            loop {
                count[i] += 1;
                if count[i] <= i {
                    break;
                }
                count[i] = 0;
                i += 1;
                let next = p[1];
                p[0] = next;
                for j in 1..i {
                    p[j] = p[j + 1];
                }
                p[i] = first;
                first = next;
            }
        }
    }
    (checksum, max_flips)
}

/// STREAM operation `op` (0 init, 1 copy, 2 scale, 3 add, 4 triad) applied to elements of
/// `a`, `b`, `c`; false for an unknown op.
///
/// # Panics
/// Copy (op 1) when `a` and `c` differ in length.
pub fn triad(op: i64, scalar: f64, a: &mut [f64], b: &mut [f64], c: &mut [f64]) -> bool {
    match op {
        0 => {
            for ((a, b), c) in a.iter_mut().zip(b.iter_mut()).zip(c.iter_mut()) {
                *a = 1.0;
                *b = 2.0;
                *c = 0.0;
                *a *= 2.0;
            }
        }
        1 => c.copy_from_slice(a),
        2 => {
            for (b, c) in b.iter_mut().zip(c.iter()) {
                *b = scalar * c;
            }
        }
        3 => {
            for ((c, a), b) in c.iter_mut().zip(a.iter()).zip(b.iter()) {
                *c = a + b;
            }
        }
        4 => {
            for ((a, b), c) in a.iter_mut().zip(b.iter()).zip(c.iter()) {
                *a = b + scalar * c;
            }
        }
        _ => return false,
    }
    true
}

/// `pi`: number of samples in `[begin, end)` that fall inside the quarter disc.
pub fn pi_hits(seed: u64, begin: u64, end: u64) -> i64 {
    let mut hits = 0;
    for i in begin..end {
        let x = unit(splitmix64_at(seed, 2 * i));
        let y = unit(splitmix64_at(seed, 2 * i + 1));
        if x * x + y * y < 1.0 {
            hits += 1;
        }
    }
    hits
}

/// `laplace`: one Jacobi sweep of the rows of `out` (rows `begin..` of an `n` x `n`
/// row-major grid) from the previous iterate `old` (the whole grid). Boundary rows and
/// columns are copied; returns the larger of `err` and the largest `|new - old|` over the
/// interior points of those rows.
///
/// The max is taken on the bits of the differences as `i64`, as in C: non-negative
/// doubles order as their bits do (and `-inf`, the identity, is a negative `i64`), so it
/// is exactly the `f64` max, and it vectorises.
pub fn laplace(n: usize, begin: usize, old: &[f64], out: &mut [f64], err: f64) -> f64 {
    if n == 0 {
        return err;
    }
    let mut err = err.to_bits() as i64;
    for (k, x) in out.chunks_exact_mut(n).enumerate() {
        let i = begin + k;
        let o = &old[i * n..(i + 1) * n];
        if i == 0 || i == n - 1 {
            x.copy_from_slice(o);
            continue;
        }
        let up = &old[(i - 1) * n..i * n];
        let down = &old[(i + 1) * n..(i + 2) * n];
        x[0] = o[0];
        if n > 2 {
            let inner = x[1..n - 1]
                .iter_mut()
                .zip(o.windows(3))
                .zip(&up[1..n - 1])
                .zip(&down[1..n - 1]);
            for (((xj, w), u), d) in inner {
                let v = 0.25 * (((w[2] + w[0]) + u) + d);
                let bits = (v - w[1]).abs().to_bits() as i64;
                *xj = v;
                if bits > err {
                    err = bits;
                }
            }
        }
        x[n - 1] = o[n - 1];
    }
    f64::from_bits(err as u64)
}

/// The Rust kernels behind the C-compatible range-kernel signature.
pub mod raw {
    use kernelpool_kernels_sys::{
        KP_KERNEL_BAD_ARGS, KP_KERNEL_OK, KP_LAPLACE_MAX_N, KP_MANDELBROT_MAX_N, KP_MAX_ITEMS,
        KP_PI_MAX_SAMPLES, KP_SPECTRALNORM_MAX_N, kp_kargs,
    };
    use std::slice;

    /// Arguments checked for the range; `None` when the range is invalid.
    ///
    /// # Safety
    /// `a` is null or points to a valid `kp_kargs`.
    unsafe fn args<'a>(a: *const kp_kargs, begin: u64, end: u64) -> Option<&'a kp_kargs> {
        // SAFETY: the caller passes null or a valid pointer.
        let a = unsafe { a.as_ref()? };
        (begin <= end && end <= a.items && a.items <= KP_MAX_ITEMS as u64).then_some(a)
    }

    /// The part `[begin*per, end*per)` of buffer `slot` as a mutable slice.
    ///
    /// # Safety
    /// The buffer holds at least `end*per` elements of `T`, and no other live reference
    /// covers that part (the kernel contract: only this chunk writes its items).
    unsafe fn part<'a, T>(
        a: &kp_kargs,
        slot: usize,
        begin: u64,
        end: u64,
        per: u64,
    ) -> &'a mut [T] {
        let base = a.buf[slot] as *mut T;
        // SAFETY: guaranteed by the caller (see above).
        unsafe {
            slice::from_raw_parts_mut(
                base.add((begin * per) as usize),
                ((end - begin) * per) as usize,
            )
        }
    }

    macro_rules! raw_kernel {
        ($(#[$doc:meta])* $name:ident, |$a:ident, $b:ident, $e:ident| $body:block) => {
            $(#[$doc])*
            ///
            /// # Safety
            /// `args` satisfies the contract of `native/include/kernels.h` for this kernel.
            pub unsafe extern "C" fn $name(args: *const kp_kargs, begin: u64, end: u64) -> i32 {
                // SAFETY: forwarded from the caller.
                let Some($a) = (unsafe { args_checked(args, begin, end) }) else {
                    return KP_KERNEL_BAD_ARGS;
                };
                let ($b, $e) = (begin, end);
                // A panic must not unwind into a C caller: report it as an error code.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
                    Ok(code) => code,
                    Err(_) => kernelpool_kernels_sys::KP_KERNEL_EXCEPTION,
                }
            }
        };
    }

    unsafe fn args_checked<'a>(a: *const kp_kargs, begin: u64, end: u64) -> Option<&'a kp_kargs> {
        // SAFETY: forwarded from the caller.
        unsafe { args(a, begin, end) }
    }

    raw_kernel!(
        /// Rust `seed` kernel.
        seed, |a, b, e| {
        if a.iparam[0] < 0 {
            return KP_KERNEL_BAD_ARGS;
        }
        // SAFETY: buffer 0 holds `items` i64 values; this chunk owns [b, e).
        let out = unsafe { part::<i64>(a, 0, b, e, 1) };
        super::seed(a.iparam[0] as u64, b, out);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `nbody` kernel.
        nbody, |a, b, e| {
        if a.iparam[0] < 0 {
            return KP_KERNEL_BAD_ARGS;
        }
        // SAFETY: buffer 0 holds 2*items f64 values; this chunk owns [2b, 2e).
        let out = unsafe { part::<f64>(a, 0, b, e, 2) };
        super::nbody(a.iparam[0] as u64, b, out);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `spectralnorm` kernel.
        spectralnorm, |a, b, e| {
        if a.n > KP_SPECTRALNORM_MAX_N as u64 {
            return KP_KERNEL_BAD_ARGS;
        }
        // SAFETY: buffer 0 is the read-only input of n f64; no chunk writes it during the step.
        let u = unsafe { slice::from_raw_parts(a.buf[0] as *const f64, a.n as usize) };
        // SAFETY: buffer 1 holds n f64; this chunk owns rows [b, e).
        let out = unsafe { part::<f64>(a, 1, b, e, 1) };
        super::spectralnorm(a.iparam[0] != 0, b, u, out);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `mandelbrot` kernel.
        mandelbrot, |a, b, e| {
        if a.n > KP_MANDELBROT_MAX_N as u64 {
            return KP_KERNEL_BAD_ARGS;
        }
        let bpr = a.n.div_ceil(8);
        // SAFETY: buffer 0 holds n*bpr bytes; this chunk owns rows [b, e).
        let out = unsafe { part::<u8>(a, 0, b, e, bpr) };
        super::mandelbrot(a.n, b, out);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `fannkuch` kernel.
        fannkuch, |a, b, e| {
        if !(1..=kernelpool_kernels_sys::KP_FANNKUCH_MAX_N as u64).contains(&a.n) || a.partial.is_null() {
            return KP_KERNEL_BAD_ARGS;
        }
        let (sum, max) = super::fannkuch(a.n as usize, b, e);
        // SAFETY: partial is non-null and points to KP_PARTIAL_LEN slots owned by this chunk.
        let p = unsafe { slice::from_raw_parts_mut(a.partial, 2) };
        p[0] += sum;
        p[1] = p[1].max(max);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `triad` (STREAM) kernel.
        triad, |a, b, e| {
        // SAFETY: buffers 0..3 hold `items` f64 each; this chunk owns [b, e) of each.
        let (x, y, z) = unsafe { (part::<f64>(a, 0, b, e, 1), part::<f64>(a, 1, b, e, 1), part::<f64>(a, 2, b, e, 1)) };
        if super::triad(a.iparam[0], a.fparam[0], x, y, z) { KP_KERNEL_OK } else { KP_KERNEL_BAD_ARGS }
    });

    raw_kernel!(
        /// Rust `nbody` kernel, tuned ([`crate::tuned::nbody`]).
        nbody_tuned, |a, b, e| {
        if a.iparam[0] < 0 {
            return KP_KERNEL_BAD_ARGS;
        }
        // SAFETY: buffer 0 holds 2*items f64 values; this chunk owns [2b, 2e).
        let out = unsafe { part::<f64>(a, 0, b, e, 2) };
        crate::tuned::nbody(a.iparam[0] as u64, b, out);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `spectralnorm` kernel, tuned ([`crate::tuned::spectralnorm`]).
        spectralnorm_tuned, |a, b, e| {
        if a.n > KP_SPECTRALNORM_MAX_N as u64 {
            return KP_KERNEL_BAD_ARGS;
        }
        // SAFETY: buffer 0 is the read-only input of n f64; no chunk writes it during the step.
        let u = unsafe { slice::from_raw_parts(a.buf[0] as *const f64, a.n as usize) };
        // SAFETY: buffer 1 holds n f64; this chunk owns rows [b, e).
        let out = unsafe { part::<f64>(a, 1, b, e, 1) };
        crate::tuned::spectralnorm(a.iparam[0] != 0, b, u, out);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `mandelbrot` kernel, tuned ([`crate::tuned::mandelbrot`]).
        mandelbrot_tuned, |a, b, e| {
        if a.n > KP_MANDELBROT_MAX_N as u64 {
            return KP_KERNEL_BAD_ARGS;
        }
        let bpr = a.n.div_ceil(8);
        // SAFETY: buffer 0 holds n*bpr bytes; this chunk owns rows [b, e).
        let out = unsafe { part::<u8>(a, 0, b, e, bpr) };
        crate::tuned::mandelbrot(a.n, b, out);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `fannkuch` kernel, tuned ([`crate::tuned::fannkuch`]).
        fannkuch_tuned, |a, b, e| {
        if !(1..=kernelpool_kernels_sys::KP_FANNKUCH_MAX_N as u64).contains(&a.n) || a.partial.is_null() {
            return KP_KERNEL_BAD_ARGS;
        }
        let (sum, max) = crate::tuned::fannkuch(a.n as usize, b, e);
        // SAFETY: partial is non-null and points to KP_PARTIAL_LEN slots owned by this chunk.
        let p = unsafe { slice::from_raw_parts_mut(a.partial, 2) };
        p[0] += sum;
        p[1] = p[1].max(max);
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `triad` (STREAM) kernel, tuned ([`crate::tuned::triad`]).
        triad_tuned, |a, b, e| {
        // SAFETY: buffers 0..3 hold `items` f64 each; this chunk owns [b, e) of each.
        let (x, y, z) = unsafe { (part::<f64>(a, 0, b, e, 1), part::<f64>(a, 1, b, e, 1), part::<f64>(a, 2, b, e, 1)) };
        if crate::tuned::triad(a.iparam[0], a.fparam[0], a.items, x, y, z) { KP_KERNEL_OK } else { KP_KERNEL_BAD_ARGS }
    });

    raw_kernel!(
        /// Rust `pi` kernel, tuned ([`crate::tuned::pi_hits`]).
        pi_tuned, |a, b, e| {
        if a.partial.is_null() || a.items > KP_PI_MAX_SAMPLES as u64 {
            return KP_KERNEL_BAD_ARGS;
        }
        let hits = crate::tuned::pi_hits(a.iparam[0] as u64, b, e);
        // SAFETY: partial is non-null and points to KP_PARTIAL_LEN slots owned by this chunk.
        unsafe { *a.partial += hits };
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `pi` kernel.
        pi, |a, b, e| {
        if a.partial.is_null() || a.items > KP_PI_MAX_SAMPLES as u64 {
            return KP_KERNEL_BAD_ARGS;
        }
        let hits = super::pi_hits(a.iparam[0] as u64, b, e);
        // SAFETY: partial is non-null and points to KP_PARTIAL_LEN slots owned by this chunk.
        unsafe { *a.partial += hits };
        KP_KERNEL_OK
    });

    raw_kernel!(
        /// Rust `laplace` kernel (one Jacobi sweep).
        laplace, |a, b, e| {
        if a.n > KP_LAPLACE_MAX_N as u64 || a.items != a.n || a.partial.is_null() {
            return KP_KERNEL_BAD_ARGS;
        }
        let n = a.n as usize;
        // SAFETY: buffer 0 is the read-only previous iterate of n*n f64 (checked by the
        // step); no chunk writes it during the step.
        let old = unsafe { slice::from_raw_parts(a.buf[0] as *const f64, n * n) };
        // SAFETY: buffer 1 holds n*n f64; this chunk owns rows [b, e), n values each.
        let out = unsafe { part::<f64>(a, 1, b, e, a.n) };
        // SAFETY: partial is non-null and points to KP_PARTIAL_LEN slots owned by this
        // chunk; slot 0 holds a double's bits.
        let slot = unsafe { &mut *a.partial };
        let err = super::laplace(n, b as usize, old, out, f64::from_bits(*slot as u64));
        *slot = err.to_bits() as i64;
        KP_KERNEL_OK
    });
}
