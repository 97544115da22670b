/* The eight kernels in C. Contract and per-kernel buffers: native/include/kernels.h.
 * Built with -O3 -ffp-contract=off so that every floating-point operation is the one
 * written here, in this order, as in the C++, Fortran and Rust versions. */
#include "kernels.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define CHECK_RANGE(a, b, e)                                  \
    do {                                                      \
        if ((a) == NULL || (b) > (e) || (e) > (a)->items ||   \
            (a)->items > (uint64_t)KP_MAX_ITEMS) {            \
            return KP_KERNEL_BAD_ARGS;                        \
        }                                                     \
    } while (0)

/* ---- splitmix64, counter based: output k of the stream seeded with `seed` ----
 * The kernels call the static copy: under -fPIC an exported function may be interposed,
 * so gcc would not inline it into the hot loops. */
static inline uint64_t splitmix64_at(uint64_t seed, uint64_t k) {
    uint64_t z = seed + (k + 1u) * UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t kp_c_splitmix64_at(uint64_t seed, uint64_t k) { return splitmix64_at(seed, k); }

/* uniform double in [0, 1) from the top 53 bits */
/* z >> 11 < 2^53 converts exactly either way; through int64_t gcc can vectorise it */
static double unit(uint64_t z) { return (double)(int64_t)(z >> 11) * 0x1.0p-53; }

/* ---- seed ---- */
int32_t kp_c_seed(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->iparam[0] < 0) return KP_KERNEL_BAD_ARGS;
    int64_t *out = (int64_t *)a->buf[0];
    const uint64_t iters = (uint64_t)a->iparam[0];
    for (uint64_t i = begin; i < end; i++) {
        const uint64_t x = i + 1u;
        uint64_t j = 0;
        for (uint64_t k = 0; k < iters; k++) {
            j += x * x;
        }
        out[i] = (int64_t)j;
    }
    return KP_KERNEL_OK;
}

/* ---- nbody ---- */
#define NBODIES 5
#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24

typedef struct {
    double x, y, z, vx, vy, vz, mass;
} body;

static void nbody_init(body *b, uint64_t system) {
    const body init[NBODIES] = {
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
    for (int i = 0; i < NBODIES; i++) {
        b[i] = init[i];
    }
    if (system > 0) {
        /* planets' positions moved by up to +-0.0005 AU, keyed by (system, 3*body+axis) */
        for (int i = 1; i < NBODIES; i++) {
            b[i].x = b[i].x + 1.0e-3 * (unit(splitmix64_at(system, (uint64_t)(3 * i + 0))) - 0.5);
            b[i].y = b[i].y + 1.0e-3 * (unit(splitmix64_at(system, (uint64_t)(3 * i + 1))) - 0.5);
            b[i].z = b[i].z + 1.0e-3 * (unit(splitmix64_at(system, (uint64_t)(3 * i + 2))) - 0.5);
        }
    }
    double px = 0.0, py = 0.0, pz = 0.0;
    for (int i = 0; i < NBODIES; i++) {
        px += b[i].vx * b[i].mass;
        py += b[i].vy * b[i].mass;
        pz += b[i].vz * b[i].mass;
    }
    b[0].vx = -px / SOLAR_MASS;
    b[0].vy = -py / SOLAR_MASS;
    b[0].vz = -pz / SOLAR_MASS;
}

static double nbody_energy(const body *b) {
    double e = 0.0;
    for (int i = 0; i < NBODIES; i++) {
        e += 0.5 * b[i].mass * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < NBODIES; j++) {
            const double dx = b[i].x - b[j].x;
            const double dy = b[i].y - b[j].y;
            const double dz = b[i].z - b[j].z;
            const double distance = sqrt(dx * dx + dy * dy + dz * dz);
            e -= (b[i].mass * b[j].mass) / distance;
        }
    }
    return e;
}

static void nbody_advance(body *b, double dt) {
    for (int i = 0; i < NBODIES; i++) {
        for (int j = i + 1; j < NBODIES; j++) {
            const double dx = b[i].x - b[j].x;
            const double dy = b[i].y - b[j].y;
            const double dz = b[i].z - b[j].z;
            const double distance = sqrt(dx * dx + dy * dy + dz * dz);
            const double mag = dt / (distance * distance * distance);
            b[i].vx -= dx * b[j].mass * mag;
            b[i].vy -= dy * b[j].mass * mag;
            b[i].vz -= dz * b[j].mass * mag;
            b[j].vx += dx * b[i].mass * mag;
            b[j].vy += dy * b[i].mass * mag;
            b[j].vz += dz * b[i].mass * mag;
        }
    }
    for (int i = 0; i < NBODIES; i++) {
        b[i].x += dt * b[i].vx;
        b[i].y += dt * b[i].vy;
        b[i].z += dt * b[i].vz;
    }
}

int32_t kp_c_nbody(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->iparam[0] < 0) return KP_KERNEL_BAD_ARGS;
    double *out = (double *)a->buf[0];
    const int64_t steps = a->iparam[0];
    for (uint64_t s = begin; s < end; s++) {
        body b[NBODIES];
        nbody_init(b, s);
        out[2 * s] = nbody_energy(b);
        for (int64_t k = 0; k < steps; k++) {
            nbody_advance(b, 0.01);
        }
        out[2 * s + 1] = nbody_energy(b);
    }
    return KP_KERNEL_OK;
}

/* ---- spectralnorm ---- */
static double eval_a(int64_t i, int64_t j) {
    return 1.0 / (double)((i + j) * (i + j + 1) / 2 + i + 1);
}

int32_t kp_c_spectralnorm(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->n > (uint64_t)KP_SPECTRALNORM_MAX_N) return KP_KERNEL_BAD_ARGS;
    const double *u = (const double *)a->buf[0];
    double *au = (double *)a->buf[1];
    const int64_t n = (int64_t)a->n;
    const int transpose = a->iparam[0] != 0;
    for (int64_t i = (int64_t)begin; i < (int64_t)end; i++) {
        double sum = 0.0;
        if (transpose) {
            for (int64_t j = 0; j < n; j++) sum += eval_a(j, i) * u[j];
        } else {
            for (int64_t j = 0; j < n; j++) sum += eval_a(i, j) * u[j];
        }
        au[i] = sum;
    }
    return KP_KERNEL_OK;
}

/* ---- mandelbrot ---- */
int32_t kp_c_mandelbrot(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->n > (uint64_t)KP_MANDELBROT_MAX_N) return KP_KERNEL_BAD_ARGS;
    uint8_t *out = (uint8_t *)a->buf[0];
    const uint64_t n = a->n;
    const uint64_t bpr = (n + 7) / 8;
    const double w = (double)n, h = (double)n, limit = 2.0;
    for (uint64_t y = begin; y < end; y++) {
        uint8_t *row = out + y * bpr;
        unsigned byte_acc = 0;
        int bit_num = 0;
        uint64_t pos = 0;
        const double ci = 2.0 * (double)y / h - 1.0;
        for (uint64_t x = 0; x < n; x++) {
            const double cr = 2.0 * (double)x / w - 1.5;
            double zr = 0.0, zi = 0.0, tr = 0.0, ti = 0.0;
            for (int i = 0; i < 50 && (tr + ti <= limit * limit); i++) {
                zi = 2.0 * zr * zi + ci;
                zr = tr - ti + cr;
                tr = zr * zr;
                ti = zi * zi;
            }
            byte_acc <<= 1;
            if (tr + ti <= limit * limit) byte_acc |= 1u;
            bit_num++;
            if (bit_num == 8) {
                row[pos++] = (uint8_t)byte_acc;
                byte_acc = 0;
                bit_num = 0;
            } else if (x == n - 1) {
                byte_acc <<= (8 - n % 8);
                row[pos++] = (uint8_t)byte_acc;
                byte_acc = 0;
                bit_num = 0;
            }
        }
    }
    return KP_KERNEL_OK;
}

/* ---- fannkuch-redux, over blocks of permutation indices ---- */
#define FK_MAX 16 /* array room; n itself is at most KP_FANNKUCH_MAX_N */

int32_t kp_c_fannkuch(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->n < 1 || a->n > KP_FANNKUCH_MAX_N || a->partial == NULL) return KP_KERNEL_BAD_ARGS;
    const int n = (int)a->n;
    int64_t fact[FK_MAX + 1];
    fact[0] = 1;
    for (int i = 1; i <= n; i++) fact[i] = fact[i - 1] * i;
    if (end > (uint64_t)fact[n]) return KP_KERNEL_BAD_ARGS;
    if (begin == end) return KP_KERNEL_OK;
    int p[FK_MAX], pp[FK_MAX], count[FK_MAX];
    /* first permutation of the block: decode `begin` in the factorial number system */
    for (int i = 0; i < n; i++) p[i] = i;
    int64_t idx = (int64_t)begin;
    for (int i = n - 1; i > 0; i--) {
        const int d = (int)(idx / fact[i]);
        count[i] = d;
        idx = idx % fact[i];
        for (int j = 0; j <= i; j++) pp[j] = p[j];
        for (int j = 0; j <= i; j++) p[j] = (j + d <= i) ? pp[j + d] : pp[j + d - i - 1];
    }
    int64_t checksum = 0, max_flips = 0;
    for (uint64_t k = begin; k < end; k++) {
        /* count the flips of this permutation */
        int64_t flips = 0;
        if (p[0] != 0) {
            for (int i = 0; i < n; i++) pp[i] = p[i];
            int first;
            while ((first = pp[0]) != 0) {
                for (int lo = 0, hi = first; lo < hi; lo++, hi--) {
                    const int t = pp[lo];
                    pp[lo] = pp[hi];
                    pp[hi] = t;
                }
                flips++;
            }
        }
        if (flips > max_flips) max_flips = flips;
        checksum += (k % 2 == 0) ? flips : -flips;
        if (k + 1 < end) {
            /* next permutation in the same order as the sequential algorithm */
            int first = p[1];
            p[1] = p[0];
            p[0] = first;
            int i = 1;
            while (++count[i] > i) {
                count[i++] = 0;
                const int next = p[0] = p[1];
                for (int j = 1; j < i; j++) p[j] = p[j + 1];
                p[i] = first;
                first = next;
            }
        }
    }
    a->partial[0] += checksum;
    if (max_flips > a->partial[1]) a->partial[1] = max_flips;
    return KP_KERNEL_OK;
}

/* ---- STREAM (copy, scale, add, triad) ---- */
int32_t kp_c_triad(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    double *restrict va = (double *)a->buf[0];
    double *restrict vb = (double *)a->buf[1];
    double *restrict vc = (double *)a->buf[2];
    const double scalar = a->fparam[0];
    switch (a->iparam[0]) {
    case 0:
        for (uint64_t j = begin; j < end; j++) {
            va[j] = 1.0;
            vb[j] = 2.0;
            vc[j] = 0.0;
            va[j] = 2.0 * va[j];
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
    case 4:
        for (uint64_t j = begin; j < end; j++) va[j] = vb[j] + scalar * vc[j];
        break;
    default:
        return KP_KERNEL_BAD_ARGS;
    }
    return KP_KERNEL_OK;
}

/* ---- Monte Carlo pi ---- */
int32_t kp_c_pi(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->partial == NULL || a->items > (uint64_t)KP_PI_MAX_SAMPLES) return KP_KERNEL_BAD_ARGS;
    const uint64_t seed = (uint64_t)a->iparam[0];
    int64_t hits = 0;
    for (uint64_t i = begin; i < end; i++) {
        const double x = unit(splitmix64_at(seed, 2 * i));
        const double y = unit(splitmix64_at(seed, 2 * i + 1));
        if (x * x + y * y < 1.0) hits++;
    }
    a->partial[0] += hits;
    return KP_KERNEL_OK;
}

/* ---- laplace: one Jacobi sweep of rows [begin, end) from buf[0] into buf[1] ----
 * The partial slot holds a double's bits. The error is a max of |new - old| >= 0, and
 * non-negative doubles order as their bits do as int64 (the slot's -inf identity is a
 * negative int64, below all of them; a NaN's bits are above +inf): so the max is taken
 * on the bits, exactly the double max, which the compiler can vectorise (a double
 * compare-and-select it cannot, without -ffast-math). */
int32_t kp_c_laplace(const kp_kargs *a, uint64_t begin, uint64_t end) {
    CHECK_RANGE(a, begin, end);
    if (a->n > (uint64_t)KP_LAPLACE_MAX_N || a->items != a->n || a->partial == NULL) {
        return KP_KERNEL_BAD_ARGS;
    }
    const uint64_t n = a->n;
    const double *restrict old = (const double *)a->buf[0];
    double *restrict next = (double *)a->buf[1];
    int64_t err = a->partial[0];
    for (uint64_t i = begin; i < end; i++) {
        const double *o = old + i * n;
        double *x = next + i * n;
        if (i == 0 || i == n - 1) {
            for (uint64_t j = 0; j < n; j++) x[j] = o[j];
            continue;
        }
        const double *up = o - n;
        const double *down = o + n;
        x[0] = o[0];
        for (uint64_t j = 1; j + 1 < n; j++) {
            const double v = 0.25 * (((o[j + 1] + o[j - 1]) + up[j]) + down[j]);
            const double d = fabs(v - o[j]);
            int64_t bits;
            memcpy(&bits, &d, sizeof bits);
            x[j] = v;
            if (bits > err) err = bits;
        }
        x[n - 1] = o[n - 1];
    }
    a->partial[0] = err;
    return KP_KERNEL_OK;
}
