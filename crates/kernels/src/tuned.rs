//! The tuned variants in Rust (issue 13): the same contract, buffers and answers as the
//! plain kernels of [`crate::rust`], written for speed. [`crate::rust::raw`] adapts them to
//! the C-compatible range signature (`raw::*_tuned`), beside the plain ones.
//!
//! How: the hot loops run over fixed-size lane arrays (`[f64; 8]`, `[f64; 4]`) that LLVM
//! vectorises, each compiled twice, for the build's CPU and with AVX2 enabled, and chosen
//! at run time with `is_x86_feature_detected!` (so a portable `x86-64-v2` build still runs
//! the 4-lane code on a CPU that has it, and the 2-lane SSE2 code elsewhere). fannkuch and
//! STREAM use `std::arch` directly (SSSE3 `pshufb`, SSE2 non-temporal stores) with the
//! plain kernel as the fallback. Rust never contracts `a*b+c` into an FMA, so, with the
//! plain kernels' operation order kept, every variant here is bit-identical to the plain
//! one (each function says why).

/// Defines `$name`, which runs `$body` compiled with AVX2 when the CPU has it (checked at
/// run time; x86-64 only) and as compiled for the build's CPU otherwise.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked on the line above), the one feature
                // `avx2` is compiled for; it is otherwise `body`, which is safe.
                return unsafe { avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}

with_avx2! {
    /// `mandelbrot`, tuned: rows `begin..` of the N x N PBM bitmap, `(n+7)/8` bytes a row.
    ///
    /// What makes it fast: eight pixels (one output byte) per step, as 8-lane arrays, so the
    /// latency chain of z = z^2 + c is shared by eight pixels; the escape test is a lane mask
    /// ANDed every iteration, and the loop leaves early (checked every 5 iterations) when all
    /// eight have escaped. Bit-identical: each lane runs the plain iteration in the plain
    /// order, and its bit is "never above 4 in 50 iterations", which the plain loop computes;
    /// pixels past N start escaped (the zero padding).
    pub fn mandelbrot(n: u64, begin: u64, out: &mut [u8]) {
        let bpr = n.div_ceil(8) as usize;
        if bpr == 0 {
            return;
        }
        let (w, h) = (n as f64, n as f64);
        for (r, row) in out.chunks_exact_mut(bpr).enumerate() {
            let y = begin + r as u64;
            let ci = 2.0 * y as f64 / h - 1.0;
            for (xb, byte) in row.iter_mut().enumerate() {
                let mut cr = [0.0f64; 8];
                let mut alive = [0u64; 8];
                for l in 0..8 {
                    let x = 8 * xb as u64 + l as u64;
                    cr[l] = 2.0 * x as f64 / w - 1.5;
                    alive[l] = (x < n) as u64;
                }
                let (mut zr, mut zi, mut tr, mut ti) = ([0.0f64; 8], [0.0f64; 8], [0.0f64; 8], [0.0f64; 8]);
                for _block in 0..10 {
                    for _ in 0..5 {
                        for l in 0..8 {
                            zi[l] = 2.0 * zr[l] * zi[l] + ci;
                            zr[l] = tr[l] - ti[l] + cr[l];
                            tr[l] = zr[l] * zr[l];
                            ti[l] = zi[l] * zi[l];
                            alive[l] &= (tr[l] + ti[l] <= 4.0) as u64;
                        }
                    }
                    if alive.iter().fold(0, |acc, &a| acc | a) == 0 {
                        break;
                    }
                }
                *byte = alive.iter().fold(0u8, |acc, &a| (acc << 1) | a as u8);
            }
        }
    }
}

/// Largest N for which spectralnorm's denominators, carried in doubles, stay exact
/// integers (below 2^53).
const SPECTRAL_EXACT_MAX_N: usize = 1 << 25;

/// Eight rows of A*u (or A^T*u) starting at row `i`.
#[inline(always)]
fn spectral_rows<const TRANSPOSE: bool>(i: i64, u: &[f64], out: &mut [f64]) {
    let (mut d, mut inc, mut sum) = ([0.0f64; 8], [0.0f64; 8], [0.0f64; 8]);
    for l in 0..8 {
        let r = i + l as i64;
        d[l] = (r * (r + 1) / 2 + if TRANSPOSE { 0 } else { r } + 1) as f64;
        inc[l] = (r + 1 + TRANSPOSE as i64) as f64;
    }
    for &uj in u {
        for l in 0..8 {
            sum[l] += (1.0 / d[l]) * uj;
            d[l] += inc[l];
            inc[l] += 1.0;
        }
    }
    out.copy_from_slice(&sum);
}

with_avx2! {
    /// `spectralnorm`, tuned: rows `begin..` of A*u (or A^T*u when `transpose`).
    ///
    /// What makes it fast: eight rows at once, so the divisions 1/A(i,j) (this kernel's
    /// cost) go a vector at a time and eight add chains hide the add latency; A's
    /// denominators are doubles stepped by additions (d(i,j+1) = d(i,j) + i+j+1, one more
    /// for A^T), exact below 2^53, so N above 2^25 takes the plain loop. Bit-identical:
    /// each row still adds `(1/d)*u[j]` in order j = 0, 1, ... with the same d.
    pub fn spectralnorm(transpose: bool, begin: u64, u: &[f64], out: &mut [f64]) {
        let mut done = 0;
        if u.len() <= SPECTRAL_EXACT_MAX_N {
            for (b, rows) in out.chunks_exact_mut(8).enumerate() {
                let i = (begin + 8 * b as u64) as i64;
                if transpose {
                    spectral_rows::<true>(i, u, rows);
                } else {
                    spectral_rows::<false>(i, u, rows);
                }
                done += 8;
            }
        }
        crate::rust::spectralnorm(transpose, begin + done as u64, u, &mut out[done..]);
    }
}

/// Body b's partner in velocity update k = 0, 1, 2 of a step, for b = 0..4 (`PARTNER[k][b]`):
/// the plain pair loop gives body b its updates in the order of its partners, k for
/// k < b, else k + 1; in update 3 every lane's partner is body 4.
const PARTNER: [[usize; 4]; 3] = [[1, 0, 0, 0], [2, 2, 1, 1], [3, 3, 3, 2]];

/// One system during the steps: bodies 0..3 as 4-lane arrays, body 4 apart.
#[derive(Clone, Copy)]
struct Lanes {
    x: [f64; 4],
    y: [f64; 4],
    z: [f64; 4],
    vx: [f64; 4],
    vy: [f64; 4],
    vz: [f64; 4],
    x4: f64,
    y4: f64,
    z4: f64,
    vx4: f64,
    vy4: f64,
    vz4: f64,
}

/// `v[b] += (d*m[p])*mag` with `d = x[p] - x[b]`, `mag = dt/|d|^3`, for the partner p of
/// each lane b (positions `p`, masses `mp`); returns mag.
#[inline(always)]
fn nbody_update(s: &mut Lanes, p: [[f64; 4]; 3], mp: &[f64; 4], dt: f64) -> [f64; 4] {
    let mut mag = [0.0f64; 4];
    for b in 0..4 {
        let dx = p[0][b] - s.x[b];
        let dy = p[1][b] - s.y[b];
        let dz = p[2][b] - s.z[b];
        let dist = (dx * dx + dy * dy + dz * dz).sqrt();
        mag[b] = dt / (dist * dist * dist);
        s.vx[b] += dx * mp[b] * mag[b];
        s.vy[b] += dy * mp[b] * mag[b];
        s.vz[b] += dz * mp[b] * mag[b];
    }
    mag
}

/// One time step; `mp[k]` holds the masses of update k's partners, `m4` those of bodies
/// 0..3 (body 4's partners).
#[inline(always)]
fn nbody_advance(s: &mut Lanes, mp: &[[f64; 4]; 4], m4: &[f64; 4], dt: f64) {
    for (k, idx) in PARTNER.iter().enumerate() {
        let p = [
            idx.map(|i| s.x[i]),
            idx.map(|i| s.y[i]),
            idx.map(|i| s.z[i]),
        ];
        nbody_update(s, p, &mp[k], dt);
    }
    let (x4, y4, z4) = (s.x4, s.y4, s.z4);
    let mag = nbody_update(s, [[x4; 4], [y4; 4], [z4; 4]], &mp[3], dt);
    // body 4 gets (x[b] - x[4])*m[b]*mag from b = 0..3, in order (update 3's pairs)
    for b in 0..4 {
        s.vx4 += (s.x[b] - x4) * m4[b] * mag[b];
        s.vy4 += (s.y[b] - y4) * m4[b] * mag[b];
        s.vz4 += (s.z[b] - z4) * m4[b] * mag[b];
    }
    for b in 0..4 {
        s.x[b] += dt * s.vx[b];
        s.y[b] += dt * s.vy[b];
        s.z[b] += dt * s.vz[b];
    }
    s.x4 += dt * s.vx4;
    s.y4 += dt * s.vy4;
    s.z4 += dt * s.vz4;
}

with_avx2! {
    /// `steps` time steps of one system. Not inlined into [`nbody`]: there, with the
    /// system a local whose fields LLVM keeps as scalars, its SLP vectoriser splits the
    /// 4-lane updates into scalar and 2-lane pieces (30 % slower than this, which it
    /// vectorises as written: through the `&mut`, every update is one 4-lane operation).
    #[inline(never)]
    fn nbody_steps(s: &mut Lanes, mp: &[[f64; 4]; 4], m4: &[f64; 4], steps: u64) {
        for _ in 0..steps {
            nbody_advance(s, mp, m4, 0.01);
        }
    }
}

with_avx2! {
    /// `nbody`, tuned: systems `begin..`, `out` holds (energy before, energy after) per
    /// system.
    ///
    /// What makes it fast: the velocity update is vectorised across bodies, with no lane
    /// shuffles between the pair arithmetic and the additions. The plain pair loop gives
    /// every body exactly four velocity updates, in the order of its partners (body b's
    /// k-th partner is k for k < b, else k + 1), so update k is one 4-lane operation over
    /// bodies 0..3: lane b computes its pair with its partner from scratch (`d = x[p] - x[b]`,
    /// d^2, sqrt, dt/d^3) and adds `d*m[p]*mag` to `v[b]`; the partners' positions are one
    /// permute of the position lanes (`PARTNER`; a broadcast of body 4 in update 3).
    /// Body 4's four updates, from bodies 0..3 in order, are the lanes of update 3's own
    /// pairs, added in lane order. Each pair's root and division is done twice (once per
    /// body; four `vsqrtpd` and four `vdivpd` a step), cheaper than the permutes a pair
    /// layout needs to bring its results back to the bodies; the state stays in registers.
    /// Bit-identical: with `d = x[p] - x[b]`, the plain j-side update `v[j] += (dx*m[i])*mag`
    /// (`dx = x[i] - x[j]`) is the same expression, and its i-side update
    /// `v[i] -= (dx*m[j])*mag` is `v[b] += ((-dx)*m[p])*mag`: negation is exact (rounding to
    /// nearest is symmetric, and a - y == a + (-y)); d^2 and mag do not depend on the sign;
    /// each velocity gets its four updates in the plain order. The initial state and the
    /// energies are the plain code's.
    pub fn nbody(steps: u64, begin: u64, out: &mut [f64]) {
        for (s, pair) in out.chunks_exact_mut(2).enumerate() {
            let bodies = crate::rust::nbody_init(begin + s as u64);
            pair[0] = crate::rust::nbody_energy(&bodies);
            let m: [f64; 5] = bodies.map(|b| b.mass);
            let mut mp = [[m[4]; 4]; 4];
            for (k, idx) in PARTNER.iter().enumerate() {
                mp[k] = idx.map(|i| m[i]);
            }
            let m4 = [m[0], m[1], m[2], m[3]];
            let lanes = |f: fn(&crate::rust::Body) -> f64| -> [f64; 4] {
                std::array::from_fn(|b| f(&bodies[b]))
            };
            let mut sys = Lanes {
                x: lanes(|b| b.x),
                y: lanes(|b| b.y),
                z: lanes(|b| b.z),
                vx: lanes(|b| b.vx),
                vy: lanes(|b| b.vy),
                vz: lanes(|b| b.vz),
                x4: bodies[4].x,
                y4: bodies[4].y,
                z4: bodies[4].z,
                vx4: bodies[4].vx,
                vy4: bodies[4].vy,
                vz4: bodies[4].vz,
            };
            nbody_steps(&mut sys, &mp, &m4, steps);
            let mut after = bodies;
            for (b, body) in after.iter_mut().enumerate().take(4) {
                (body.x, body.y, body.z) = (sys.x[b], sys.y[b], sys.z[b]);
                (body.vx, body.vy, body.vz) = (sys.vx[b], sys.vy[b], sys.vz[b]);
            }
            (after[4].x, after[4].y, after[4].z) = (sys.x4, sys.y4, sys.z4);
            (after[4].vx, after[4].vy, after[4].vz) = (sys.vx4, sys.vy4, sys.vz4);
            pair[1] = crate::rust::nbody_energy(&after);
        }
    }
}

/// `fannkuch`, tuned: permutation indices `[begin, end)` of n; returns (checksum, max
/// flips).
///
/// What makes it fast: the permutation is one 16-byte SSE register. A flip (reverse the
/// first f+1) is computed in registers from the permutation itself: broadcast its first
/// byte f, form the indices f - l (negative past f, where `pshufb` writes zero), shuffle,
/// and OR back the lanes past f: four one-cycle instructions on the critical path, no
/// table load, no element loop. The next-permutation rotation is one `pshufb` through a
/// table of masks. SSSE3 is checked at run time (x86-64-v2 has it); without it, the plain
/// kernel runs. Bit-identical by construction: integers only, the same permutations in
/// the same order.
///
/// # Panics
/// When `n` is not in `1..=12`; it may when `end` is past `n!`.
pub fn fannkuch(n: usize, begin: u64, end: u64) -> (i64, i64) {
    assert!((1..=12).contains(&n), "fannkuch n must be in 1..=12");
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("ssse3") {
        // SAFETY: the CPU has SSSE3 (checked on the line above), the feature
        // `fannkuch_ssse3` is compiled for.
        return unsafe { fannkuch_ssse3(n, begin, end) };
    }
    crate::rust::fannkuch(n, begin, end)
}

/// Shuffle masks: `ROTATE[i]` rotates lanes `0..=i` left by one; the other lanes stay
/// (`ROTATE[0]` is the identity).
const ROTATE: [[u8; 16]; 16] = {
    let mut m = [[0u8; 16]; 16];
    let mut i = 0;
    while i < 16 {
        let mut l = 0;
        while l < 16 {
            m[i][l] = if l < i {
                (l + 1) as u8
            } else if l == i {
                0
            } else {
                l as u8
            };
            l += 1;
        }
        i += 1;
    }
    m
};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
fn fannkuch_ssse3(n: usize, begin: u64, end: u64) -> (i64, i64) {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpgt_epi8, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_or_si128,
        _mm_setzero_si128, _mm_shuffle_epi8, _mm_sub_epi8,
    };
    if begin == end {
        return (0, 0);
    }
    let load = |m: &[u8; 16]| -> __m128i {
        // SAFETY: `m` is 16 readable bytes; the load has no alignment requirement.
        unsafe { _mm_loadu_si128(m.as_ptr().cast()) }
    };
    let iota = load(&ROTATE[0]);
    // q with its first q[0]+1 lanes reversed
    let flip = |q: __m128i| {
        let f = _mm_shuffle_epi8(q, _mm_setzero_si128());
        let rest = _mm_and_si128(_mm_cmpgt_epi8(iota, f), q);
        _mm_or_si128(_mm_shuffle_epi8(q, _mm_sub_epi8(f, iota)), rest)
    };
    let rot: [__m128i; 16] = std::array::from_fn(|i| load(&ROTATE[i]));
    let mut fact = [1i64; 13];
    for i in 1..=n {
        fact[i] = fact[i - 1] * i as i64;
    }
    // first permutation of the block: decode `begin` in the factorial number system
    let mut p: [u8; 16] = std::array::from_fn(|l| l as u8);
    let mut pp = [0u8; 16];
    let mut count = [0usize; 16];
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
    let mut perm = load(&p);
    let first_of = |v: __m128i| (_mm_cvtsi128_si32(v) & 0xff) as usize;
    let (mut checksum, mut max_flips) = (0i64, 0i64);
    for k in begin..end {
        let mut flips = 0i64;
        let mut first = first_of(perm);
        if first != 0 {
            let mut q = perm;
            while first != 0 {
                q = flip(q);
                flips += 1;
                first = first_of(q);
            }
        }
        max_flips = max_flips.max(flips);
        checksum += if k % 2 == 0 { flips } else { -flips };
        if k + 1 < end {
            perm = _mm_shuffle_epi8(perm, rot[1]);
            let mut i = 1;
            loop {
                count[i] += 1;
                if count[i] <= i {
                    break;
                }
                count[i] = 0;
                i += 1;
                perm = _mm_shuffle_epi8(perm, rot[i]);
            }
        }
    }
    (checksum, max_flips)
}

/// Two f64 from `v[j..j + 2]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn load2(v: &[f64], j: usize) -> std::arch::x86_64::__m128d {
    let two = &v[j..j + 2];
    // SAFETY: `two` is two in-bounds f64 and the load needs no alignment; SSE2 is part of
    // the x86-64 baseline.
    unsafe { std::arch::x86_64::_mm_loadu_pd(two.as_ptr()) }
}

/// `$dst[j] = $scalar` for every j, through SSE2 non-temporal stores (`movntpd`) of
/// `$vector` (elements j, j+1) where `$dst` is 16-byte aligned.
#[cfg(target_arch = "x86_64")]
macro_rules! stream_store {
    ($dst:ident, |$j:ident| $scalar:expr, $vector:expr) => {{
        let head = $dst.as_ptr().align_offset(16).min($dst.len());
        for $j in 0..head {
            $dst[$j] = $scalar;
        }
        let mut $j = head;
        while $j + 2 <= $dst.len() {
            let v = $vector;
            // SAFETY: $dst[j..j+2] is in bounds and 16-byte aligned (j starts at the first
            // aligned element and steps by two f64); $dst is borrowed mutably, so nothing
            // else reads it before the fence at the end of the operation.
            unsafe { std::arch::x86_64::_mm_stream_pd($dst.as_mut_ptr().add($j), v) };
            $j += 2;
        }
        for $j in $j..$dst.len() {
            $dst[$j] = $scalar;
        }
    }};
}

/// Arrays of at least this many elements are written with non-temporal stores.
const STREAM_MIN_ITEMS: u64 = 1 << 20;

/// STREAM operation `op` (0..=4) with non-temporal stores, then a store fence.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn triad_streaming(op: i64, scalar: f64, a: &mut [f64], b: &mut [f64], c: &mut [f64]) {
    use std::arch::x86_64::{_mm_add_pd, _mm_mul_pd, _mm_set1_pd, _mm_sfence};
    let s = _mm_set1_pd(scalar);
    match op {
        0 => {
            // the plain init's values: a = 2.0 * 1.0, b = 2.0, c = 0.0
            stream_store!(a, |j| 2.0, _mm_set1_pd(2.0));
            stream_store!(b, |j| 2.0, _mm_set1_pd(2.0));
            stream_store!(c, |j| 0.0, _mm_set1_pd(0.0));
        }
        1 => stream_store!(c, |j| a[j], load2(a, j)),
        2 => stream_store!(b, |j| scalar * c[j], _mm_mul_pd(s, load2(c, j))),
        3 => stream_store!(c, |j| a[j] + b[j], _mm_add_pd(load2(a, j), load2(b, j))),
        _ => stream_store!(
            a,
            |j| b[j] + scalar * c[j],
            _mm_add_pd(load2(b, j), _mm_mul_pd(s, load2(c, j)))
        ),
    }
    // Non-temporal stores are weakly ordered: make them visible before returning.
    _mm_sfence();
}

/// STREAM operation `op` (0 init, 1 copy, 2 scale, 3 add, 4 triad), tuned, over slices
/// of an array of `items` elements; false for an unknown op.
///
/// What makes it fast: arrays too large for the caches (at least 2^20 elements) are
/// written with SSE2 non-temporal stores, which do not read each destination line before
/// overwriting it (a quarter to a third less memory traffic); smaller ones run the plain
/// (vectorised) loops. Bit-identical: the same operations on the same values.
///
/// # Panics
/// When the slices differ in length.
pub fn triad(
    op: i64,
    scalar: f64,
    items: u64,
    a: &mut [f64],
    b: &mut [f64],
    c: &mut [f64],
) -> bool {
    assert!(
        a.len() == b.len() && b.len() == c.len(),
        "STREAM slices differ in length"
    );
    #[cfg(target_arch = "x86_64")]
    if items >= STREAM_MIN_ITEMS && (0..=4).contains(&op) {
        // SAFETY: SSE2, the one feature `triad_streaming` is compiled for, is part of the
        // x86-64 baseline.
        unsafe { triad_streaming(op, scalar, a, b, c) };
        return true;
    }
    let _ = items;
    crate::rust::triad(op, scalar, a, b, c)
}

with_avx2! {
    /// `pi`, tuned: samples in `[begin, end)` inside the quarter disc.
    ///
    /// What makes it fast: splitmix64's counter term seed + (k+1)*gamma advances by one
    /// addition per output instead of a multiplication, and eight samples are drawn per
    /// step into independent lanes (vectorised), so the remaining multiplies overlap.
    /// Bit-identical: the same integers (wrapping), doubles and comparison; an exact count.
    pub fn pi_hits(seed: u64, begin: u64, end: u64) -> i64 {
        const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let unit = |z: u64| (z >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0);
        let mut hits = 0i64;
        let mut i = begin;
        // counter term of output 2i
        let mut z = seed.wrapping_add((2 * i + 1).wrapping_mul(GAMMA));
        while end - i >= 8 {
            let mut inside = [0i64; 8];
            for (l, hit) in inside.iter_mut().enumerate() {
                let zx = z.wrapping_add((2 * l as u64).wrapping_mul(GAMMA));
                let x = unit(mix(zx));
                let y = unit(mix(zx.wrapping_add(GAMMA)));
                *hit = (x * x + y * y < 1.0) as i64;
            }
            hits += inside.iter().sum::<i64>();
            z = z.wrapping_add(16u64.wrapping_mul(GAMMA));
            i += 8;
        }
        while i < end {
            let x = unit(mix(z));
            let y = unit(mix(z.wrapping_add(GAMMA)));
            if x * x + y * y < 1.0 {
                hits += 1;
            }
            z = z.wrapping_add(2u64.wrapping_mul(GAMMA));
            i += 1;
        }
        hits
    }
}
