/* The tuned variants in C (issue 13): the same contract, buffers and answers as the plain
 * kernels of native/c/kernels.c, written the way a careful C author writes them for speed.
 * Built, like the plain ones, with -O3 -ffp-contract=off and the build's -march: every
 * floating-point operation that reaches an output is the plain kernel's, in its order, so
 * all six are bit-identical to the plain ones (and so to the published outputs).
 *
 * The SIMD is GCC's generic vector extension (vector_size): it compiles for any target,
 * two AVX2 registers per 8-lane vector under -march=native here, four SSE2 registers
 * under x86-64-v2, so a portable build runs the same code with narrower registers. Where
 * the extension has no operation (sqrt, non-temporal stores) an intrinsic is chosen at
 * compile time from what -march enables, with SSE2 (every x86-64) as the floor and a
 * scalar path for other architectures. */
#include "kernels.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define CHECK_RANGE(a, b, e)                                  \
    do {                                                      \
        if ((a) == NULL || (b) > (e) || (e) > (a)->items ||   \
            (a)->items > (uint64_t)KP_MAX_ITEMS) {            \
            return KP_KERNEL_BAD_ARGS;                        \
        }                                                     \
    } while (0)

/* vd: the widest double vector the target has (AVX: 4 lanes; else 2: SSE2, NEON);
 * 8-lane quantities are NV of them. gcc handles a vector wider than the hardware's
 * through memory, so none is declared wider. */
#if defined(__AVX__)
#define VW 4
#else
#define VW 2
#endif
#define NV (8 / VW)
typedef double vd __attribute__((vector_size(VW * 8)));
typedef int64_t vl __attribute__((vector_size(VW * 8)));
typedef uint8_t v16u8 __attribute__((vector_size(16)));

/* splitmix64's finaliser (the part after the counter), as in kernels.c */
static inline uint64_t sm_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}
#define SM_GAMMA UINT64_C(0x9e3779b97f4a7c15)

static double unit(uint64_t z) { return (double)(int64_t)(z >> 11) * 0x1.0p-53; }

/* ---- mandelbrot, tuned ----
 * What makes it fast: one output byte (8 pixels) per step of the inner loop, as an 8-lane
 * vector, so the 9-cycle latency chain of z = z^2 + c is shared by 8 pixels instead of one;
 * the escape test is a lane mask ANDed every iteration (a lane that escaped stays out: its
 * bit is 0, as the plain loop's), and the loop leaves early, checked every 5 iterations,
 * once all 8 lanes have escaped. Bit-identical: each lane runs the plain iteration, same
 * operations in the same order, and its bit is "never above 4 in the first 50 iterations",
 * which is what the plain loop computes. Pixels past N in the last byte start escaped, so
 * they are the plain kernel's zero padding. */
int32_t kp_c_mandelbrot_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->n > (uint64_t)KP_MANDELBROT_MAX_N) return KP_KERNEL_BAD_ARGS;
    uint8_t *out = (uint8_t *)a->buf[0];
    const uint64_t n = a->n;
    const uint64_t bpr = (n + 7) / 8;
    const double w = (double)n, h = (double)n;
    for (uint64_t y = begin; y < end; y++) {
        uint8_t *row = out + y * bpr;
        const double ci = 2.0 * (double)y / h - 1.0;
        for (uint64_t xb = 0; xb < bpr; xb++) {
            /* lanes are built as scalars, then copied into the vectors */
            double crl[8];
            int64_t alivel[8];
            for (int l = 0; l < 8; l++) {
                const uint64_t x = 8 * xb + (uint64_t)l;
                crl[l] = 2.0 * (double)x / w - 1.5;
                alivel[l] = x < n ? -1 : 0;
            }
            vd cr[NV], zr[NV], zi[NV], tr[NV], ti[NV];
            vl alive[NV];
            memcpy(cr, crl, sizeof cr);
            memcpy(alive, alivel, sizeof alive);
            for (int v = 0; v < NV; v++) zr[v] = zi[v] = tr[v] = ti[v] = (vd){0};
            for (int block = 0; block < 10; block++) {
                for (int k = 0; k < 5; k++) {
                    for (int v = 0; v < NV; v++) {
                        zi[v] = 2.0 * zr[v] * zi[v] + ci;
                        zr[v] = tr[v] - ti[v] + cr[v];
                        tr[v] = zr[v] * zr[v];
                        ti[v] = zi[v] * zi[v];
                        alive[v] &= (tr[v] + ti[v] <= 4.0);
                    }
                }
                vl any = alive[0];
                for (int v = 1; v < NV; v++) any |= alive[v];
                int64_t some = 0;
                for (int l = 0; l < VW; l++) some |= any[l];
                if (some == 0) break;
            }
            unsigned byte = 0;
            for (int v = 0; v < NV; v++) {
                for (int l = 0; l < VW; l++) byte = (byte << 1) | (alive[v][l] != 0);
            }
            row[xb] = (uint8_t)byte;
        }
    }
    return KP_KERNEL_OK;
}

/* ---- spectralnorm, tuned ----
 * What makes it fast: eight rows at once, one 8-lane vector of running sums, so the
 * divisions 1/A(i,j) (the cost of this kernel) go four to a vdivpd instead of one to a
 * divsd, and eight independent add chains hide the add latency. A's denominators are
 * carried in doubles and stepped by additions (d(i,j+1) = d(i,j) + i+j+1, +1 more for
 * A^T), exact integers while they stay below 2^53: for N above 2^25 the kernel takes the
 * plain row loop. Bit-identical: every row's sum still adds (1/d)*u[j] for j = 0, 1, ...
 * in order, with the same d, so it is the plain sum to the last bit; only the rows are
 * interleaved. */
#define SN_ROWS 8
#define SN_EXACT_MAX_N (INT64_C(1) << 25)

static double sn_eval_a(int64_t i, int64_t j) {
    return 1.0 / (double)((i + j) * (i + j + 1) / 2 + i + 1);
}

static double sn_row(int64_t i, int64_t n, int transpose, const double *u) {
    double sum = 0.0;
    if (transpose) {
        for (int64_t j = 0; j < n; j++) sum += sn_eval_a(j, i) * u[j];
    } else {
        for (int64_t j = 0; j < n; j++) sum += sn_eval_a(i, j) * u[j];
    }
    return sum;
}

int32_t kp_c_spectralnorm_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->n > (uint64_t)KP_SPECTRALNORM_MAX_N) return KP_KERNEL_BAD_ARGS;
    const double *u = (const double *)a->buf[0];
    double *au = (double *)a->buf[1];
    const int64_t n = (int64_t)a->n;
    const int transpose = a->iparam[0] != 0;
    int64_t i = (int64_t)begin;
    if (n <= SN_EXACT_MAX_N) {
        for (; i + SN_ROWS <= (int64_t)end; i += SN_ROWS) {
            double dl[SN_ROWS], incl[SN_ROWS];
            for (int l = 0; l < SN_ROWS; l++) {
                const int64_t r = i + l;
                dl[l] = (double)(r * (r + 1) / 2 + (transpose ? 0 : r) + 1);
                incl[l] = (double)(r + 1 + transpose);
            }
            vd d[NV], inc[NV], sum[NV];
            memcpy(d, dl, sizeof d);
            memcpy(inc, incl, sizeof inc);
            for (int v = 0; v < NV; v++) sum[v] = (vd){0};
            for (int64_t j = 0; j < n; j++) {
                const double uj = u[j];
                for (int v = 0; v < NV; v++) {
                    sum[v] += (1.0 / d[v]) * uj;
                    d[v] += inc[v];
                    inc[v] += 1.0;
                }
            }
            for (int v = 0; v < NV; v++) {
                for (int l = 0; l < VW; l++) au[i + VW * v + l] = sum[v][l];
            }
        }
    }
    for (; i < (int64_t)end; i++) au[i] = sn_row(i, n, transpose, u);
    return KP_KERNEL_OK;
}

/* ---- nbody, tuned ----
 * What makes it fast: the velocity update is vectorised across bodies, with no lane
 * shuffles between the pair arithmetic and the additions. In the plain loop every body
 * receives exactly four velocity updates, one from each other body, in the order of its
 * partners: body b's k-th partner is p(k, b) = k for k < b, else k + 1. So step k
 * (k = 0..3) of the update is one 4-lane operation over bodies 0..3: lane b computes its
 * pair with p(k, b) from scratch (d = x[p] - x[b], d^2, sqrt, dt/d^3) and adds
 * d*m[p]*mag to v[b]; the lanes x[p(k, b)] are one permute of the position vector (a
 * broadcast of body 4 for k = 3). Body 4's four updates, from bodies 0..3 in order, are
 * lanes of the k = 3 step's own vector, which has the same distances: they are added in
 * lane order. Each of the ten pairs' roots and divisions is thus done twice (once per
 * body), four vsqrtpd and four vdivpd a step (two sqrtpd each under SSE2), cheaper than
 * the permutes a pair layout needs to bring its results back to the bodies. Positions,
 * velocities and the x += dt*v update stay in registers: bodies 0..3 as one 4-lane vector
 * per coordinate, body 4 as scalars.
 * Bit-identical: with d = x[p] - x[b] the j-side update of the plain kernel,
 * v[j] += (dx*m[i])*mag with dx = x[i] - x[j], is the same expression; its i-side update
 * v[i] -= (dx*m[j])*mag, dx = x[i] - x[j], is v[b] += ((-dx)*m[p])*mag, and negation is
 * exact (rounding to nearest is symmetric, and a - y == a + (-y)). d^2 is the same for
 * both signs, so is mag; each velocity gets its four updates in the plain order. */
#define NB 5

typedef struct {
    double x[NB], y[NB], z[NB], vx[NB], vy[NB], vz[NB], m[NB];
} nb_system;

/* bodies 0..3 as lanes: one vd under AVX, two under SSE2 */
#define NV4 (4 / VW)

#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24

/* the plain kernel's initial state and perturbation, operation for operation */
static void nb_init(nb_system *s, uint64_t system) {
    static const double init[NB][7] = {
        {0, 0, 0, 0, 0, 0, SOLAR_MASS},
        {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
         1.66007664274403694e-03 * DAYS_PER_YEAR, 7.69901118419740425e-03 * DAYS_PER_YEAR,
         -6.90460016972063023e-05 * DAYS_PER_YEAR, 9.54791938424326609e-04 * SOLAR_MASS},
        {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
         -2.76742510726862411e-03 * DAYS_PER_YEAR, 4.99852801234917238e-03 * DAYS_PER_YEAR,
         2.30417297573763929e-05 * DAYS_PER_YEAR, 2.85885980666130812e-04 * SOLAR_MASS},
        {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
         2.96460137564761618e-03 * DAYS_PER_YEAR, 2.37847173959480950e-03 * DAYS_PER_YEAR,
         -2.96589568540237556e-05 * DAYS_PER_YEAR, 4.36624404335156298e-05 * SOLAR_MASS},
        {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
         2.68067772490389322e-03 * DAYS_PER_YEAR, 1.62824170038242295e-03 * DAYS_PER_YEAR,
         -9.51592254519715870e-05 * DAYS_PER_YEAR, 5.15138902046400322e-05 * SOLAR_MASS},
    };
    for (int b = 0; b < NB; b++) {
        s->x[b] = init[b][0];
        s->y[b] = init[b][1];
        s->z[b] = init[b][2];
        s->vx[b] = init[b][3];
        s->vy[b] = init[b][4];
        s->vz[b] = init[b][5];
        s->m[b] = init[b][6];
    }
    if (system > 0) {
        for (int b = 1; b < NB; b++) {
            const uint64_t k = (uint64_t)(3 * b);
            s->x[b] = s->x[b] + 1.0e-3 * (unit(sm_mix(system + (k + 1) * SM_GAMMA)) - 0.5);
            s->y[b] = s->y[b] + 1.0e-3 * (unit(sm_mix(system + (k + 2) * SM_GAMMA)) - 0.5);
            s->z[b] = s->z[b] + 1.0e-3 * (unit(sm_mix(system + (k + 3) * SM_GAMMA)) - 0.5);
        }
    }
    double px = 0.0, py = 0.0, pz = 0.0;
    for (int b = 0; b < NB; b++) {
        px += s->vx[b] * s->m[b];
        py += s->vy[b] * s->m[b];
        pz += s->vz[b] * s->m[b];
    }
    s->vx[0] = -px / SOLAR_MASS;
    s->vy[0] = -py / SOLAR_MASS;
    s->vz[0] = -pz / SOLAR_MASS;
}

static double nb_energy(const nb_system *s) {
    double e = 0.0;
    for (int i = 0; i < NB; i++) {
        e += 0.5 * s->m[i] * (s->vx[i] * s->vx[i] + s->vy[i] * s->vy[i] + s->vz[i] * s->vz[i]);
        for (int j = i + 1; j < NB; j++) {
            const double dx = s->x[i] - s->x[j];
            const double dy = s->y[i] - s->y[j];
            const double dz = s->z[i] - s->z[j];
            e -= (s->m[i] * s->m[j]) / sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

/* correctly rounded square roots of the lanes, as sqrt() is */
static inline vd nb_sqrt(vd d) {
#if defined(__AVX__)
    return (vd)_mm256_sqrt_pd((__m256d)d);
#elif defined(__SSE2__)
    return (vd)_mm_sqrt_pd((__m128d)d);
#else
    for (int l = 0; l < VW; l++) d[l] = sqrt(d[l]);
    return d;
#endif
}

/* The state of one system during the steps: bodies 0..3 as lanes, body 4 apart. */
typedef struct {
    vd x[NV4], y[NV4], z[NV4], vx[NV4], vy[NV4], vz[NV4];
    double x4, y4, z4, vx4, vy4, vz4;
} nb_lanes;

/* p[v] = lanes x[p(k, b)] for update k = 0, 1, 2 (partners 1000, 2211, 3332) */
static inline void nb_partners(const vd *x, int k, vd *p) {
#if VW == 4
    static const vl idx[3] = {{1, 0, 0, 0}, {2, 2, 1, 1}, {3, 3, 3, 2}};
    p[0] = __builtin_shuffle(x[0], idx[k]);
#else
    static const vl idx[3][2] = {{{1, 0}, {0, 0}}, {{2, 2}, {1, 1}}, {{3, 3}, {3, 2}}};
    p[0] = __builtin_shuffle(x[0], x[1], idx[k][0]);
    p[1] = __builtin_shuffle(x[0], x[1], idx[k][1]);
#endif
}

/* v[b] += (d*m[p])*mag with d = x[p] - x[b], mag = dt/|d|^3, for the partner p of each
 * lane b (positions px, py, pz, masses mp); mag is left in mag[] */
static inline void nb_update(nb_lanes *s, const vd *px, const vd *py, const vd *pz,
                             const vd *mp, double dt, vd *mag) {
    for (int v = 0; v < NV4; v++) {
        const vd dx = px[v] - s->x[v];
        const vd dy = py[v] - s->y[v];
        const vd dz = pz[v] - s->z[v];
        const vd dist = nb_sqrt(dx * dx + dy * dy + dz * dz);
        mag[v] = dt / (dist * dist * dist);
        s->vx[v] += dx * mp[v] * mag[v];
        s->vy[v] += dy * mp[v] * mag[v];
        s->vz[v] += dz * mp[v] * mag[v];
    }
}

/* One time step; mp[k] holds the masses of update k's partners, m4 those of bodies 0..3
 * (body 4's partners). */
static inline void nb_advance(nb_lanes *s, vd mp[4][NV4], const vd *m4, double dt) {
    vd px[NV4], py[NV4], pz[NV4], mag[NV4];
    for (int k = 0; k < 3; k++) {
        nb_partners(s->x, k, px);
        nb_partners(s->y, k, py);
        nb_partners(s->z, k, pz);
        nb_update(s, px, py, pz, mp[k], dt, mag);
    }
    /* body 4 in every lane: lane 0 broadcast (exact; 0 + x would turn -0.0 into +0.0) */
    const vl lane0 = {0};
    for (int v = 0; v < NV4; v++) {
        px[v] = __builtin_shuffle((vd){s->x4}, lane0);
        py[v] = __builtin_shuffle((vd){s->y4}, lane0);
        pz[v] = __builtin_shuffle((vd){s->z4}, lane0);
    }
    nb_update(s, px, py, pz, mp[3], dt, mag);
    /* body 4 gets (x[b] - x[4])*m[b]*mag from b = 0..3, in order (the k = 3 pairs) */
    for (int v = 0; v < NV4; v++) {
        const vd ux = (s->x[v] - px[v]) * m4[v] * mag[v];
        const vd uy = (s->y[v] - py[v]) * m4[v] * mag[v];
        const vd uz = (s->z[v] - pz[v]) * m4[v] * mag[v];
        for (int l = 0; l < VW; l++) {
            s->vx4 += ux[l];
            s->vy4 += uy[l];
            s->vz4 += uz[l];
        }
    }
    for (int v = 0; v < NV4; v++) {
        s->x[v] += dt * s->vx[v];
        s->y[v] += dt * s->vy[v];
        s->z[v] += dt * s->vz[v];
    }
    s->x4 += dt * s->vx4;
    s->y4 += dt * s->vy4;
    s->z4 += dt * s->vz4;
}

/* lanes of bodies 0..3 of a 5-body coordinate array */
static inline void nb_load4(const double *c, vd *v) { memcpy(v, c, 4 * sizeof(double)); }
static inline void nb_store4(const vd *v, double *c) { memcpy(c, v, 4 * sizeof(double)); }

static void nb_to_lanes(const nb_system *s, nb_lanes *l) {
    nb_load4(s->x, l->x);
    nb_load4(s->y, l->y);
    nb_load4(s->z, l->z);
    nb_load4(s->vx, l->vx);
    nb_load4(s->vy, l->vy);
    nb_load4(s->vz, l->vz);
    l->x4 = s->x[4];
    l->y4 = s->y[4];
    l->z4 = s->z[4];
    l->vx4 = s->vx[4];
    l->vy4 = s->vy[4];
    l->vz4 = s->vz[4];
}

static void nb_from_lanes(const nb_lanes *l, nb_system *s) {
    nb_store4(l->x, s->x);
    nb_store4(l->y, s->y);
    nb_store4(l->z, s->z);
    nb_store4(l->vx, s->vx);
    nb_store4(l->vy, s->vy);
    nb_store4(l->vz, s->vz);
    s->x[4] = l->x4;
    s->y[4] = l->y4;
    s->z[4] = l->z4;
    s->vx[4] = l->vx4;
    s->vy[4] = l->vy4;
    s->vz[4] = l->vz4;
}

int32_t kp_c_nbody_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->iparam[0] < 0) return KP_KERNEL_BAD_ARGS;
    double *out = (double *)a->buf[0];
    const int64_t steps = a->iparam[0];
    for (uint64_t sys = begin; sys < end; sys++) {
        nb_system s;
        nb_init(&s, sys);
        /* partners' masses of each update (as nb_partners), and bodies 0..3's */
        const double *m = s.m;
        const double mpl[4][4] = {
            {m[1], m[0], m[0], m[0]},
            {m[2], m[2], m[1], m[1]},
            {m[3], m[3], m[3], m[2]},
            {m[4], m[4], m[4], m[4]},
        };
        vd mp[4][NV4], m4[NV4];
        memcpy(mp, mpl, sizeof mp);
        nb_load4(m, m4);
        out[2 * sys] = nb_energy(&s);
        nb_lanes l;
        nb_to_lanes(&s, &l);
        for (int64_t k = 0; k < steps; k++) nb_advance(&l, mp, m4, 0.01);
        nb_from_lanes(&l, &s);
        out[2 * sys + 1] = nb_energy(&s);
    }
    return KP_KERNEL_OK;
}

/* ---- fannkuch-redux, tuned ----
 * What makes it fast: the permutation lives in one 16-byte vector. A flip (reverse the
 * first f+1 elements) is computed in registers from the vector itself: broadcast its
 * first byte f, form the shuffle indices f - l (negative, so pshufb writes zero, past f),
 * shuffle, and OR back the lanes past f: four one-cycle SSSE3 instructions on the
 * critical path, no table load, no element loop. The next-permutation step rotates a
 * prefix with one shuffle through a table of 16 masks. Without SSSE3 (x86-64-v2 has it)
 * both use gcc's generic __builtin_shuffle through tables. Bit-identical by
 * construction: integers only, the same permutations in the same order. */
#define FK_MAX 16

#if defined(__SSSE3__)
typedef __m128i fk_vec;
#define FK_SHUFFLE(v, m) _mm_shuffle_epi8((v), (m))
#define FK_FIRST(v) ((unsigned)_mm_cvtsi128_si32(v) & 0xffu)
/* q with its first q[0]+1 lanes reversed */
static inline __m128i fk_flip(__m128i q, __m128i iota) {
    const __m128i f = _mm_shuffle_epi8(q, _mm_setzero_si128());
    const __m128i idx = _mm_sub_epi8(f, iota);
    const __m128i rest = _mm_and_si128(_mm_cmpgt_epi8(iota, f), q);
    return _mm_or_si128(_mm_shuffle_epi8(q, idx), rest);
}
#define FK_FLIP(q, first) fk_flip((q), iota)
#else
typedef v16u8 fk_vec;
#define FK_SHUFFLE(v, m) __builtin_shuffle((v), (m))
#define FK_FIRST(v) ((unsigned)(v)[0])
#define FK_FLIP(q, first) __builtin_shuffle((q), rev[(first)])
#endif

int32_t kp_c_fannkuch_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->n < 1 || a->n > KP_FANNKUCH_MAX_N || a->partial == NULL) return KP_KERNEL_BAD_ARGS;
    const int n = (int)a->n;
    int64_t fact[FK_MAX + 1];
    fact[0] = 1;
    for (int i = 1; i <= n; i++) fact[i] = fact[i - 1] * i;
    if (end > (uint64_t)fact[n]) return KP_KERNEL_BAD_ARGS;
    if (begin == end) return KP_KERNEL_OK;
    /* rev[f] reverses lanes 0..=f; rot[i] rotates lanes 0..=i left by one */
    fk_vec rev[FK_MAX], rot[FK_MAX], iota;
    for (int f = 0; f < FK_MAX; f++) {
        uint8_t rv[FK_MAX], rt[FK_MAX];
        for (int l = 0; l < FK_MAX; l++) {
            rv[l] = (uint8_t)(l <= f ? f - l : l);
            rt[l] = (uint8_t)(l < f ? l + 1 : (l == f ? 0 : l));
        }
        memcpy(&rev[f], rv, sizeof rev[f]);
        memcpy(&rot[f], rt, sizeof rot[f]);
    }
    (void)rev;
    int p[FK_MAX], pp[FK_MAX], count[FK_MAX];
    for (int i = 0; i < FK_MAX; i++) p[i] = i;
    {
        uint8_t il[FK_MAX];
        for (int l = 0; l < FK_MAX; l++) il[l] = (uint8_t)l;
        memcpy(&iota, il, sizeof iota);
    }
    (void)iota;
    int64_t idx = (int64_t)begin;
    for (int i = n - 1; i > 0; i--) {
        const int d = (int)(idx / fact[i]);
        count[i] = d;
        idx = idx % fact[i];
        for (int j = 0; j <= i; j++) pp[j] = p[j];
        for (int j = 0; j <= i; j++) p[j] = (j + d <= i) ? pp[j + d] : pp[j + d - i - 1];
    }
    fk_vec perm;
    {
        uint8_t pl[FK_MAX];
        for (int l = 0; l < FK_MAX; l++) pl[l] = (uint8_t)p[l];
        memcpy(&perm, pl, sizeof perm);
    }
    int64_t checksum = 0, max_flips = 0;
    for (uint64_t k = begin; k < end; k++) {
        int64_t flips = 0;
        unsigned first = FK_FIRST(perm);
        if (first != 0) {
            fk_vec q = perm;
            do {
                q = FK_FLIP(q, first);
                flips++;
                first = FK_FIRST(q);
            } while (first != 0);
        }
        if (flips > max_flips) max_flips = flips;
        checksum += (k % 2 == 0) ? flips : -flips;
        if (k + 1 < end) {
            perm = FK_SHUFFLE(perm, rot[1]);
            int i = 1;
            while (++count[i] > i) {
                count[i++] = 0;
                perm = FK_SHUFFLE(perm, rot[i]);
            }
        }
    }
    a->partial[0] += checksum;
    if (max_flips > a->partial[1]) a->partial[1] = max_flips;
    return KP_KERNEL_OK;
}

/* ---- STREAM (copy, scale, add, triad), tuned ----
 * What makes it fast: on arrays too large for the caches (over 1M elements), the output
 * is written with non-temporal stores (vmovntpd/movntpd), which skip reading each
 * destination line into the cache before it is overwritten: a quarter to a third less
 * memory traffic. The operations are the plain kernel's, so the arrays are bit-identical
 * (STREAM's validation is exact). Smaller arrays take the ordinary vectorised loops. */
#define ST_STREAM_MIN_ITEMS (UINT64_C(1) << 20)

#if defined(__AVX__)
#define ST_W 4
#define ST_VEC __m256d
#define ST_LOAD _mm256_loadu_pd
#define ST_SET1 _mm256_set1_pd
#define ST_ADD _mm256_add_pd
#define ST_MUL _mm256_mul_pd
#define ST_STORE_NT _mm256_stream_pd
#define ST_HAVE_NT 1
#elif defined(__SSE2__)
#define ST_W 2
#define ST_VEC __m128d
#define ST_LOAD _mm_loadu_pd
#define ST_SET1 _mm_set1_pd
#define ST_ADD _mm_add_pd
#define ST_MUL _mm_mul_pd
#define ST_STORE_NT _mm_stream_pd
#define ST_HAVE_NT 1
#else
#define ST_HAVE_NT 0
#endif

/* dst[j] = EXPR for j in [begin, end): scalar up to dst's vector alignment, then
 * non-temporal vector stores, then the scalar tail. */
#define ST_LOOP(dst, SCALAR, VECTOR)                                                  \
    do {                                                                          \
        uint64_t j = begin;                                                       \
        for (; j < end && ((uintptr_t)((dst) + j) % (ST_W * sizeof(double))) != 0; j++) { \
            (dst)[j] = (SCALAR);                                                  \
        }                                                                         \
        for (; j + ST_W <= end; j += ST_W) ST_STORE_NT((dst) + j, (VECTOR));      \
        for (; j < end; j++) (dst)[j] = (SCALAR);                                 \
    } while (0)

int32_t kp_c_triad_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    double *restrict va = (double *)a->buf[0];
    double *restrict vb = (double *)a->buf[1];
    double *restrict vc = (double *)a->buf[2];
    const double scalar = a->fparam[0];
    if (a->iparam[0] < 0 || a->iparam[0] > 4) return KP_KERNEL_BAD_ARGS;
#if ST_HAVE_NT
    if (a->items >= ST_STREAM_MIN_ITEMS) {
        const ST_VEC s = ST_SET1(scalar);
        switch (a->iparam[0]) {
        case 0: /* the plain init's values: a = 2.0 * 1.0, b = 2.0, c = 0.0 */
            ST_LOOP(va, 2.0, ST_SET1(2.0));
            ST_LOOP(vb, 2.0, ST_SET1(2.0));
            ST_LOOP(vc, 0.0, ST_SET1(0.0));
            break;
        case 1:
            ST_LOOP(vc, va[j], ST_LOAD(va + j));
            break;
        case 2:
            ST_LOOP(vb, scalar * vc[j], ST_MUL(s, ST_LOAD(vc + j)));
            break;
        case 3:
            ST_LOOP(vc, va[j] + vb[j], ST_ADD(ST_LOAD(va + j), ST_LOAD(vb + j)));
            break;
        default:
            ST_LOOP(va, vb[j] + scalar * vc[j], ST_ADD(ST_LOAD(vb + j), ST_MUL(s, ST_LOAD(vc + j))));
            break;
        }
        _mm_sfence();
        return KP_KERNEL_OK;
    }
#endif
    switch (a->iparam[0]) {
    case 0:
        for (uint64_t j = begin; j < end; j++) {
            va[j] = 2.0;
            vb[j] = 2.0;
            vc[j] = 0.0;
        }
        break;
    case 1:
        for (uint64_t j = begin; j < end; j++) vc[j] = va[j];
        break;
    case 2:
        for (uint64_t j = begin; j < end; j++) vb[j] = scalar * vc[j];
        break;
    case 3:
        for (uint64_t j = begin; j < end; j++) vc[j] = va[j] + vb[j];
        break;
    default:
        for (uint64_t j = begin; j < end; j++) va[j] = vb[j] + scalar * vc[j];
        break;
    }
    return KP_KERNEL_OK;
}

/* ---- Monte Carlo pi, tuned ----
 * What makes it fast: splitmix64's counter term seed + (k+1)*gamma is stepped by one
 * addition per output instead of a multiplication, and the samples are taken eight at a
 * time into independent lanes (arrays gcc vectorises), so the two remaining multiplies
 * of each output overlap. Bit-identical: the same 64-bit integers (addition and
 * multiplication wrap alike), the same doubles, the same comparison, an exact count. */
#define PI_LANES 8

int32_t kp_c_pi_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->partial == NULL || a->items > (uint64_t)KP_PI_MAX_SAMPLES) return KP_KERNEL_BAD_ARGS;
    const uint64_t seed = (uint64_t)a->iparam[0];
    int64_t hits = 0;
    uint64_t i = begin;
    /* counter term of output 2i: seed + (2i + 1) * gamma; sample i+1's is 2*gamma on */
    uint64_t zbase = seed + (2 * i + 1) * SM_GAMMA;
    for (; i + PI_LANES <= end; i += PI_LANES) {
        int64_t in[PI_LANES];
        for (int l = 0; l < PI_LANES; l++) {
            const uint64_t zx = zbase + (uint64_t)(2 * l) * SM_GAMMA;
            const double x = unit(sm_mix(zx));
            const double y = unit(sm_mix(zx + SM_GAMMA));
            in[l] = x * x + y * y < 1.0;
        }
        for (int l = 0; l < PI_LANES; l++) hits += in[l];
        zbase += (uint64_t)(2 * PI_LANES) * SM_GAMMA;
    }
    for (; i < end; i++) {
        const double x = unit(sm_mix(zbase));
        const double y = unit(sm_mix(zbase + SM_GAMMA));
        if (x * x + y * y < 1.0) hits++;
        zbase += 2 * SM_GAMMA;
    }
    a->partial[0] += hits;
    return KP_KERNEL_OK;
}
