// The tuned variants in C++17 (issue 13): the same contract, buffers and answers as the
// plain kernels of native/cpp/kernels.cpp, written the way a careful C++ author writes
// them for speed. Built, like the plain ones, with -O3 -ffp-contract=off and the build's
// -march: every floating-point operation that reaches an output is the plain kernel's, in
// its order, so all six are bit-identical to the plain ones.
//
// SIMD is GCC's generic vector extension, wrapped in small templates: a Vec is the widest
// double vector the target has (4 lanes under AVX, 2 under SSE2 or NEON), so the same
// source runs on a portable x86-64-v2 build with narrower registers. Tables (the
// fannkuch shuffle masks, the n-body pair lists) are constexpr, built by the compiler.
// As in kernels.cpp, everything is in an anonymous namespace behind extern "C" shims
// that never let an exception cross the C ABI.
#include "kernels.h"

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

#if defined(__AVX__)
constexpr int kWidth = 4;
#else
constexpr int kWidth = 2;
#endif
using Vec = double __attribute__((vector_size(kWidth * sizeof(double))));
using Mask = std::int64_t __attribute__((vector_size(kWidth * sizeof(double))));
using Bytes16 = std::uint8_t __attribute__((vector_size(16)));

// N lanes as N / kWidth native vectors (gcc spills vectors wider than the hardware's).
template <int N>
struct Lanes {
    static_assert(N % kWidth == 0, "whole vectors");
    static constexpr int count = N / kWidth;
    Vec v[count];

    static Lanes from(const double (&x)[N]) noexcept {
        Lanes l;
        std::memcpy(l.v, x, sizeof l.v);
        return l;
    }
    static Lanes zero() noexcept {
        Lanes l;
        for (auto &v : l.v) v = Vec{};
        return l;
    }
};

bool range_ok(const kp_kargs *a, std::uint64_t begin, std::uint64_t end) noexcept {
    return a != nullptr && begin <= end && end <= a->items &&
           a->items <= static_cast<std::uint64_t>(KP_MAX_ITEMS);
}

template <typename T>
T *buffer(const kp_kargs &a, std::size_t slot) noexcept {
    return static_cast<T *>(a.buf[slot]);
}

constexpr std::uint64_t kGamma = UINT64_C(0x9e3779b97f4a7c15);

// splitmix64's finaliser: output k of the stream is mix(seed + (k + 1) * gamma).
constexpr std::uint64_t mix(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}
static_assert(mix(1234567 + kGamma) == UINT64_C(6457827717110365317), "splitmix64");

constexpr double unit(std::uint64_t z) noexcept {
    return static_cast<double>(z >> 11) * 0x1.0p-53;
}

// ---- mandelbrot, tuned ----
// What makes it fast: a template over the pixels per step (8: one output byte), run as
// Lanes<8> of native vectors, so the long latency chain of z = z^2 + c is shared by eight
// pixels; escape is a lane mask ANDed every iteration, and the loop leaves early (checked
// every 5 iterations) once every lane has escaped. Bit-identical: each lane runs the plain
// iteration in the plain order, and its bit is "never above 4 in 50 iterations", which is
// what the plain loop computes; pixels past N start escaped (the zero padding).
template <int P>
void mandelbrot_row(std::uint8_t *row, std::uint64_t n, double ci, double w) noexcept {
    static_assert(P == 8, "one byte of pixels per step");
    using L = Lanes<P>;
    const std::uint64_t bpr = (n + 7) / 8;
    for (std::uint64_t xb = 0; xb < bpr; xb++) {
        double crl[P];
        std::int64_t alivel[P];
        for (int l = 0; l < P; l++) {
            const std::uint64_t x = P * xb + static_cast<std::uint64_t>(l);
            crl[l] = 2.0 * static_cast<double>(x) / w - 1.5;
            alivel[l] = x < n ? -1 : 0;
        }
        const L cr = L::from(crl);
        Mask alive[L::count];
        std::memcpy(alive, alivel, sizeof alive);
        L zr = L::zero(), zi = L::zero(), tr = L::zero(), ti = L::zero();
        for (int block = 0; block < 10; block++) {
            for (int k = 0; k < 5; k++) {
                for (int v = 0; v < L::count; v++) {
                    zi.v[v] = 2.0 * zr.v[v] * zi.v[v] + ci;
                    zr.v[v] = tr.v[v] - ti.v[v] + cr.v[v];
                    tr.v[v] = zr.v[v] * zr.v[v];
                    ti.v[v] = zi.v[v] * zi.v[v];
                    alive[v] &= (tr.v[v] + ti.v[v] <= 4.0);
                }
            }
            Mask any = alive[0];
            for (int v = 1; v < L::count; v++) any |= alive[v];
            std::int64_t some = 0;
            for (int l = 0; l < kWidth; l++) some |= any[l];
            if (some == 0) break;
        }
        unsigned byte = 0;
        for (int v = 0; v < L::count; v++) {
            for (int l = 0; l < kWidth; l++) byte = (byte << 1) | (alive[v][l] != 0 ? 1u : 0u);
        }
        row[xb] = static_cast<std::uint8_t>(byte);
    }
}

int32_t mandelbrot_tuned(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.n > static_cast<std::uint64_t>(KP_MANDELBROT_MAX_N)) return KP_KERNEL_BAD_ARGS;
    auto *out = buffer<std::uint8_t>(a, 0);
    const std::uint64_t n = a.n;
    const std::uint64_t bpr = (n + 7) / 8;
    const double w = static_cast<double>(n), h = static_cast<double>(n);
    for (std::uint64_t y = begin; y < end; y++) {
        const double ci = 2.0 * static_cast<double>(y) / h - 1.0;
        mandelbrot_row<8>(out + y * bpr, n, ci, w);
    }
    return KP_KERNEL_OK;
}

// ---- spectralnorm, tuned ----
// What makes it fast: Rows rows at once (a template parameter, 8 here), so the divisions
// 1/A(i,j) go a vector at a time and eight add chains hide the add latency; the
// denominators are doubles stepped by additions (d(i,j+1) = d(i,j) + i+j+1, one more for
// A^T), exact while below 2^53, so N above 2^25 takes the plain row loop. Bit-identical:
// each row's sum adds (1/d)*u[j] in the plain order with the same d.
constexpr std::int64_t kSpectralExactMaxN = std::int64_t{1} << 25;

constexpr double eval_a(std::int64_t i, std::int64_t j) noexcept {
    return 1.0 / static_cast<double>((i + j) * (i + j + 1) / 2 + i + 1);
}

template <bool Transpose>
double spectral_row(std::int64_t i, std::int64_t n, const double *u) noexcept {
    double sum = 0.0;
    for (std::int64_t j = 0; j < n; j++) sum += (Transpose ? eval_a(j, i) : eval_a(i, j)) * u[j];
    return sum;
}

template <bool Transpose, int Rows>
void spectral_rows(std::int64_t i, std::int64_t n, const double *u, double *au) noexcept {
    using L = Lanes<Rows>;
    double dl[Rows], incl[Rows];
    for (int l = 0; l < Rows; l++) {
        const std::int64_t r = i + l;
        dl[l] = static_cast<double>(r * (r + 1) / 2 + (Transpose ? 0 : r) + 1);
        incl[l] = static_cast<double>(r + 1 + (Transpose ? 1 : 0));
    }
    L d = L::from(dl), inc = L::from(incl), sum = L::zero();
    for (std::int64_t j = 0; j < n; j++) {
        const double uj = u[j];
        for (int v = 0; v < L::count; v++) {
            sum.v[v] += (1.0 / d.v[v]) * uj;
            d.v[v] += inc.v[v];
            inc.v[v] += 1.0;
        }
    }
    std::memcpy(au + i, sum.v, sizeof sum.v);
}

template <bool Transpose>
void spectral_range(std::int64_t begin, std::int64_t end, std::int64_t n, const double *u,
                    double *au) noexcept {
    constexpr int rows = 8;
    std::int64_t i = begin;
    if (n <= kSpectralExactMaxN) {
        for (; i + rows <= end; i += rows) spectral_rows<Transpose, rows>(i, n, u, au);
    }
    for (; i < end; i++) au[i] = spectral_row<Transpose>(i, n, u);
}

int32_t spectralnorm_tuned(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.n > static_cast<std::uint64_t>(KP_SPECTRALNORM_MAX_N)) return KP_KERNEL_BAD_ARGS;
    const auto *u = buffer<const double>(a, 0);
    auto *au = buffer<double>(a, 1);
    const auto n = static_cast<std::int64_t>(a.n);
    const auto b = static_cast<std::int64_t>(begin), e = static_cast<std::int64_t>(end);
    if (a.iparam[0] != 0) {
        spectral_range<true>(b, e, n, u, au);
    } else {
        spectral_range<false>(b, e, n, u, au);
    }
    return KP_KERNEL_OK;
}

// ---- nbody, tuned ----
// What makes it fast: the velocity update is vectorised across bodies, with no lane
// shuffles between the pair arithmetic and the additions. In the plain loop every body
// gets exactly four velocity updates, one from each other body, in the order of its
// partners: body b's k-th partner is p(k, b) = k for k < b, else k + 1 (partner(), a
// constexpr table). So update k (0..3) is one Lanes<4> operation over bodies 0..3: lane b
// computes its pair with p(k, b) from scratch (d = x[p] - x[b], d^2, sqrt, dt/d^3) and
// adds d*m[p]*mag to v[b]; the partners' positions are one permute of the position vector
// (a broadcast of body 4 for k = 3). Body 4's four updates, from bodies 0..3 in order, are
// the lanes of update 3's own vector (same distances), added in lane order. Each pair's
// root and division is done twice (once per body), four vsqrtpd and four vdivpd a step,
// cheaper than the permutes a pair layout needs to bring results back to the bodies; the
// whole state stays in registers (bodies 0..3 one Lanes<4> per coordinate, body 4 scalars).
// Bit-identical: with d = x[p] - x[b], the plain j-side update v[j] += (dx*m[i])*mag,
// dx = x[i] - x[j], is the same expression, and its i-side update v[i] -= (dx*m[j])*mag
// is v[b] += ((-dx)*m[p])*mag: negation is exact (rounding to nearest is symmetric, and
// a - y == a + (-y)); d^2 and mag do not depend on the sign; each velocity gets its four
// updates in the plain order.
namespace nbody {

constexpr int bodies = 5;
constexpr double pi = 3.141592653589793;
constexpr double solar_mass = 4 * pi * pi;
constexpr double days_per_year = 365.24;

struct System {
    std::array<double, bodies> x, y, z, vx, vy, vz, m;
};

constexpr double initial[bodies][7] = {
    {0, 0, 0, 0, 0, 0, solar_mass},
    {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
     1.66007664274403694e-03 * days_per_year, 7.69901118419740425e-03 * days_per_year,
     -6.90460016972063023e-05 * days_per_year, 9.54791938424326609e-04 * solar_mass},
    {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
     -2.76742510726862411e-03 * days_per_year, 4.99852801234917238e-03 * days_per_year,
     2.30417297573763929e-05 * days_per_year, 2.85885980666130812e-04 * solar_mass},
    {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
     2.96460137564761618e-03 * days_per_year, 2.37847173959480950e-03 * days_per_year,
     -2.96589568540237556e-05 * days_per_year, 4.36624404335156298e-05 * solar_mass},
    {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
     2.68067772490389322e-03 * days_per_year, 1.62824170038242295e-03 * days_per_year,
     -9.51592254519715870e-05 * days_per_year, 5.15138902046400322e-05 * solar_mass},
};

// the plain kernel's initial state and perturbation, operation for operation
System init(std::uint64_t system) noexcept {
    System s{};
    for (int b = 0; b < bodies; b++) {
        s.x[b] = initial[b][0];
        s.y[b] = initial[b][1];
        s.z[b] = initial[b][2];
        s.vx[b] = initial[b][3];
        s.vy[b] = initial[b][4];
        s.vz[b] = initial[b][5];
        s.m[b] = initial[b][6];
    }
    if (system > 0) {
        for (int b = 1; b < bodies; b++) {
            const auto k = static_cast<std::uint64_t>(3 * b);
            s.x[b] = s.x[b] + 1.0e-3 * (unit(mix(system + (k + 1) * kGamma)) - 0.5);
            s.y[b] = s.y[b] + 1.0e-3 * (unit(mix(system + (k + 2) * kGamma)) - 0.5);
            s.z[b] = s.z[b] + 1.0e-3 * (unit(mix(system + (k + 3) * kGamma)) - 0.5);
        }
    }
    double px = 0.0, py = 0.0, pz = 0.0;
    for (int b = 0; b < bodies; b++) {
        px += s.vx[b] * s.m[b];
        py += s.vy[b] * s.m[b];
        pz += s.vz[b] * s.m[b];
    }
    s.vx[0] = -px / solar_mass;
    s.vy[0] = -py / solar_mass;
    s.vz[0] = -pz / solar_mass;
    return s;
}

double energy(const System &s) noexcept {
    double e = 0.0;
    for (int i = 0; i < bodies; i++) {
        e += 0.5 * s.m[i] * (s.vx[i] * s.vx[i] + s.vy[i] * s.vy[i] + s.vz[i] * s.vz[i]);
        for (int j = i + 1; j < bodies; j++) {
            const double dx = s.x[i] - s.x[j];
            const double dy = s.y[i] - s.y[j];
            const double dz = s.z[i] - s.z[j];
            e -= (s.m[i] * s.m[j]) / std::sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

using L4 = Lanes<4>;  // bodies 0..3: one AVX vector, two SSE2 ones

// correctly rounded square roots, as std::sqrt is
inline Vec sqrt_lanes(Vec d) noexcept {
#if defined(__AVX__)
    return reinterpret_cast<Vec>(_mm256_sqrt_pd(reinterpret_cast<__m256d>(d)));
#elif defined(__SSE2__)
    return reinterpret_cast<Vec>(_mm_sqrt_pd(reinterpret_cast<__m128d>(d)));
#else
    for (int l = 0; l < kWidth; l++) d[l] = std::sqrt(d[l]);
    return d;
#endif
}

// body b's k-th partner in the plain pair order (k = 0..3, b = 0..4)
constexpr int partner(int k, int b) noexcept { return k < b ? k : k + 1; }

// shuffle masks: lanes x[partner(k, b)] of bodies 0..3's lanes, b = v*kWidth + lane
template <std::size_t... Lane>
constexpr Mask partner_mask(int k, int v, std::index_sequence<Lane...>) noexcept {
    return Mask{partner(k, v * kWidth + static_cast<int>(Lane))...};
}
struct PartnerMasks {
    Mask m[3][L4::count];
};
constexpr PartnerMasks make_partner_masks() noexcept {
    PartnerMasks p{};
    for (int k = 0; k < 3; k++) {
        for (int v = 0; v < L4::count; v++) {
            p.m[k][v] = partner_mask(k, v, std::make_index_sequence<kWidth>{});
        }
    }
    return p;
}
constexpr PartnerMasks partner_masks = make_partner_masks();
static_assert(partner(0, 0) == 1 && partner(2, 3) == 2 && partner(3, 4) == 3, "pair order");

inline L4 partners(const L4 &x, int k) noexcept {
    L4 p;
    for (int v = 0; v < L4::count; v++) {
        if constexpr (L4::count == 1) {
            p.v[v] = __builtin_shuffle(x.v[0], partner_masks.m[k][v]);
        } else {
            p.v[v] = __builtin_shuffle(x.v[0], x.v[1], partner_masks.m[k][v]);
        }
    }
    return p;
}

// x in every lane: lane 0 broadcast (exact; Vec{} + x would turn -0.0 into +0.0)
inline L4 broadcast(double x) noexcept {
    L4 l;
    for (auto &v : l.v) v = __builtin_shuffle(Vec{x}, Mask{});
    return l;
}

// The system during the steps: bodies 0..3 as lanes, body 4 apart.
struct LaneSystem {
    L4 x, y, z, vx, vy, vz;
    double x4, y4, z4, vx4, vy4, vz4;
};

// Masses: of each update's partners (mp[k] lane b = m[partner(k, b)]), and of bodies 0..3
// (body 4's partners).
struct Masses {
    L4 mp[4];
    L4 m4;
};

// v[b] += (d*m[p])*mag, d = x[p] - x[b], mag = dt/|d|^3, for the partner p of each lane b;
// returns mag
inline L4 update(LaneSystem &s, const L4 &px, const L4 &py, const L4 &pz, const L4 &mp,
                 double dt) noexcept {
    L4 mag;
    for (int v = 0; v < L4::count; v++) {
        const Vec dx = px.v[v] - s.x.v[v];
        const Vec dy = py.v[v] - s.y.v[v];
        const Vec dz = pz.v[v] - s.z.v[v];
        const Vec dist = sqrt_lanes(dx * dx + dy * dy + dz * dz);
        mag.v[v] = dt / (dist * dist * dist);
        s.vx.v[v] += dx * mp.v[v] * mag.v[v];
        s.vy.v[v] += dy * mp.v[v] * mag.v[v];
        s.vz.v[v] += dz * mp.v[v] * mag.v[v];
    }
    return mag;
}

inline void advance(LaneSystem &s, const Masses &m, double dt) noexcept {
    for (int k = 0; k < 3; k++) {
        update(s, partners(s.x, k), partners(s.y, k), partners(s.z, k), m.mp[k], dt);
    }
    const L4 x4 = broadcast(s.x4), y4 = broadcast(s.y4), z4 = broadcast(s.z4);
    const L4 mag = update(s, x4, y4, z4, m.mp[3], dt);
    // body 4 gets (x[b] - x[4])*m[b]*mag from b = 0..3, in order (update 3's pairs)
    for (int v = 0; v < L4::count; v++) {
        const Vec ux = (s.x.v[v] - x4.v[v]) * m.m4.v[v] * mag.v[v];
        const Vec uy = (s.y.v[v] - y4.v[v]) * m.m4.v[v] * mag.v[v];
        const Vec uz = (s.z.v[v] - z4.v[v]) * m.m4.v[v] * mag.v[v];
        for (int l = 0; l < kWidth; l++) {
            s.vx4 += ux[l];
            s.vy4 += uy[l];
            s.vz4 += uz[l];
        }
    }
    for (int v = 0; v < L4::count; v++) {
        s.x.v[v] += dt * s.vx.v[v];
        s.y.v[v] += dt * s.vy.v[v];
        s.z.v[v] += dt * s.vz.v[v];
    }
    s.x4 += dt * s.vx4;
    s.y4 += dt * s.vy4;
    s.z4 += dt * s.vz4;
}

// bodies 0..3 of a coordinate as lanes, and back
inline L4 lanes(const std::array<double, bodies> &c) noexcept {
    L4 l;
    std::memcpy(l.v, c.data(), sizeof l.v);
    return l;
}
inline void unlanes(const L4 &l, std::array<double, bodies> &c) noexcept {
    std::memcpy(c.data(), l.v, sizeof l.v);
}

LaneSystem to_lanes(const System &s) noexcept {
    return {lanes(s.x), lanes(s.y), lanes(s.z), lanes(s.vx), lanes(s.vy), lanes(s.vz),
            s.x[4],     s.y[4],     s.z[4],     s.vx[4],     s.vy[4],     s.vz[4]};
}

void from_lanes(const LaneSystem &l, System &s) noexcept {
    unlanes(l.x, s.x);
    unlanes(l.y, s.y);
    unlanes(l.z, s.z);
    unlanes(l.vx, s.vx);
    unlanes(l.vy, s.vy);
    unlanes(l.vz, s.vz);
    s.x[4] = l.x4;
    s.y[4] = l.y4;
    s.z[4] = l.z4;
    s.vx[4] = l.vx4;
    s.vy[4] = l.vy4;
    s.vz[4] = l.vz4;
}

Masses masses(const System &s) noexcept {
    Masses m{};
    double mp[4][4], m4[4];
    for (int k = 0; k < 4; k++) {
        for (int b = 0; b < 4; b++) mp[k][b] = s.m[partner(k, b)];
    }
    for (int b = 0; b < 4; b++) m4[b] = s.m[partner(b, 4)];
    for (int k = 0; k < 4; k++) m.mp[k] = L4::from(mp[k]);
    m.m4 = L4::from(m4);
    return m;
}

}  // namespace nbody

int32_t nbody_tuned(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.iparam[0] < 0) return KP_KERNEL_BAD_ARGS;
    auto *out = buffer<double>(a, 0);
    const std::int64_t steps = a.iparam[0];
    for (std::uint64_t sys = begin; sys < end; sys++) {
        nbody::System s = nbody::init(sys);
        const nbody::Masses m = nbody::masses(s);
        out[2 * sys] = nbody::energy(s);
        nbody::LaneSystem l = nbody::to_lanes(s);
        for (std::int64_t k = 0; k < steps; k++) nbody::advance(l, m, 0.01);
        nbody::from_lanes(l, s);
        out[2 * sys + 1] = nbody::energy(s);
    }
    return KP_KERNEL_OK;
}

// ---- fannkuch-redux, tuned ----
// What makes it fast: the permutation is one 16-byte vector. A flip (reverse the first
// f+1) is computed in registers from the vector itself under SSSE3 (x86-64-v2 has it):
// broadcast the first byte f, indices f - l (negative past f, where pshufb writes zero),
// shuffle, OR back the lanes past f; four one-cycle instructions on the critical path and
// no table load. The next-permutation rotation is one shuffle through a constexpr table
// of masks. Without SSSE3, gcc's generic shuffle runs through tables for both.
// Bit-identical by construction: integers only, the same permutations in the same order.
namespace fannkuch {

constexpr int max_n = KP_FANNKUCH_MAX_N;
constexpr int lanes = 16;
using Masks = std::array<std::array<std::uint8_t, lanes>, lanes>;

constexpr Masks make_reverse() noexcept {
    Masks m{};
    for (int f = 0; f < lanes; f++) {
        for (int l = 0; l < lanes; l++) m[f][l] = static_cast<std::uint8_t>(l <= f ? f - l : l);
    }
    return m;
}
constexpr Masks make_rotate() noexcept {
    Masks m{};
    for (int i = 0; i < lanes; i++) {
        for (int l = 0; l < lanes; l++) {
            m[i][l] = static_cast<std::uint8_t>(l < i ? l + 1 : (l == i ? 0 : l));
        }
    }
    return m;
}
constexpr Masks reverse_masks = make_reverse();
constexpr Masks rotate_masks = make_rotate();

#if defined(__SSSE3__)
using Perm = __m128i;
inline Perm shuffle(Perm v, Perm m) noexcept { return _mm_shuffle_epi8(v, m); }
inline unsigned first_of(Perm v) noexcept {
    return static_cast<unsigned>(_mm_cvtsi128_si32(v)) & 0xffu;
}
// v with its first v[0]+1 lanes reversed, from v alone
inline Perm flip(Perm v, Perm iota, const Perm *) noexcept {
    const Perm f = _mm_shuffle_epi8(v, _mm_setzero_si128());
    const Perm rest = _mm_and_si128(_mm_cmpgt_epi8(iota, f), v);
    return _mm_or_si128(_mm_shuffle_epi8(v, _mm_sub_epi8(f, iota)), rest);
}
#else
using Perm = Bytes16;
inline Perm shuffle(Perm v, Perm m) noexcept { return __builtin_shuffle(v, m); }
inline unsigned first_of(Perm v) noexcept { return v[0]; }
inline Perm flip(Perm v, Perm, const Perm *reverse) noexcept {
    return __builtin_shuffle(v, reverse[v[0]]);
}
#endif

template <typename T>
inline Perm load(const T &bytes) noexcept {
    static_assert(sizeof(T) == sizeof(Perm), "16 bytes");
    Perm v;
    std::memcpy(&v, &bytes, sizeof v);
    return v;
}

constexpr std::array<std::int64_t, max_n + 1> factorials() noexcept {
    std::array<std::int64_t, max_n + 1> f{};
    f[0] = 1;
    for (int i = 1; i <= max_n; i++) f[i] = f[i - 1] * i;
    return f;
}
constexpr auto fact = factorials();

}  // namespace fannkuch

int32_t fannkuch_tuned(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    using namespace fannkuch;
    if (a.n < 1 || a.n > static_cast<std::uint64_t>(max_n) || a.partial == nullptr) {
        return KP_KERNEL_BAD_ARGS;
    }
    const int n = static_cast<int>(a.n);
    if (begin == end) return KP_KERNEL_OK;
    if (end > static_cast<std::uint64_t>(fact[n])) return KP_KERNEL_BAD_ARGS;
    Perm rev[lanes], rot[lanes];
    for (int f = 0; f < lanes; f++) {
        rev[f] = load(reverse_masks[f]);
        rot[f] = load(rotate_masks[f]);
    }
    const Perm iota = load(rotate_masks[0]);  // rotating one lane: the identity
    // first permutation of the block: decode `begin` in the factorial number system
    std::array<int, lanes> p{}, pp{}, count{};
    for (int i = 0; i < lanes; i++) p[i] = i;
    auto idx = static_cast<std::int64_t>(begin);
    for (int i = n - 1; i > 0; i--) {
        const int d = static_cast<int>(idx / fact[i]);
        count[i] = d;
        idx = idx % fact[i];
        for (int j = 0; j <= i; j++) pp[j] = p[j];
        for (int j = 0; j <= i; j++) p[j] = (j + d <= i) ? pp[j + d] : pp[j + d - i - 1];
    }
    std::array<std::uint8_t, lanes> bytes{};
    for (int l = 0; l < lanes; l++) bytes[l] = static_cast<std::uint8_t>(p[l]);
    Perm perm = load(bytes);
    std::int64_t checksum = 0, max_flips = 0;
    for (std::uint64_t k = begin; k < end; k++) {
        std::int64_t flips = 0;
        if (first_of(perm) != 0) {
            Perm q = perm;
            do {
                q = flip(q, iota, rev);
                flips++;
            } while (first_of(q) != 0);
        }
        if (flips > max_flips) max_flips = flips;
        checksum += (k % 2 == 0) ? flips : -flips;
        if (k + 1 < end) {
            perm = shuffle(perm, rot[1]);
            int i = 1;
            while (++count[i] > i) {
                count[i++] = 0;
                perm = shuffle(perm, rot[i]);
            }
        }
    }
    a.partial[0] += checksum;
    if (max_flips > a.partial[1]) a.partial[1] = max_flips;
    return KP_KERNEL_OK;
}

// ---- STREAM (copy, scale, add, triad), tuned ----
// What makes it fast: arrays too large for the caches (over 1M elements) are written with
// non-temporal stores (vmovntpd / movntpd), which do not read each destination line
// before overwriting it: a quarter to a third less memory traffic. One template runs each
// operation, given as a lambda for the scalar and the vector form of the same expression;
// the arrays come out bit-identical to the plain kernel's.
constexpr std::uint64_t kStreamMinItems = std::uint64_t{1} << 20;

#if defined(__AVX__)
using StreamVec = __m256d;
constexpr int kStreamWidth = 4;
inline StreamVec sv_load(const double *p) noexcept { return _mm256_loadu_pd(p); }
inline StreamVec sv_set(double x) noexcept { return _mm256_set1_pd(x); }
inline StreamVec sv_add(StreamVec a, StreamVec b) noexcept { return _mm256_add_pd(a, b); }
inline StreamVec sv_mul(StreamVec a, StreamVec b) noexcept { return _mm256_mul_pd(a, b); }
inline void sv_stream(double *p, StreamVec v) noexcept { _mm256_stream_pd(p, v); }
#define KP_STREAM_NT 1
#elif defined(__SSE2__)
using StreamVec = __m128d;
constexpr int kStreamWidth = 2;
inline StreamVec sv_load(const double *p) noexcept { return _mm_loadu_pd(p); }
inline StreamVec sv_set(double x) noexcept { return _mm_set1_pd(x); }
inline StreamVec sv_add(StreamVec a, StreamVec b) noexcept { return _mm_add_pd(a, b); }
inline StreamVec sv_mul(StreamVec a, StreamVec b) noexcept { return _mm_mul_pd(a, b); }
inline void sv_stream(double *p, StreamVec v) noexcept { _mm_stream_pd(p, v); }
#define KP_STREAM_NT 1
#else
#define KP_STREAM_NT 0
#endif

#if KP_STREAM_NT
template <typename Scalar, typename Vector>
void stream_store(double *dst, std::uint64_t begin, std::uint64_t end, Scalar scalar,
                  Vector vector) noexcept {
    std::uint64_t j = begin;
    constexpr std::uintptr_t align = kStreamWidth * sizeof(double);
    for (; j < end && reinterpret_cast<std::uintptr_t>(dst + j) % align != 0; j++) dst[j] = scalar(j);
    for (; j + kStreamWidth <= end; j += kStreamWidth) sv_stream(dst + j, vector(j));
    for (; j < end; j++) dst[j] = scalar(j);
}
#endif

int32_t triad_tuned(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    double *__restrict va = buffer<double>(a, 0);
    double *__restrict vb = buffer<double>(a, 1);
    double *__restrict vc = buffer<double>(a, 2);
    const double s = a.fparam[0];
    const std::int64_t op = a.iparam[0];
    if (op < 0 || op > 4) return KP_KERNEL_BAD_ARGS;
#if KP_STREAM_NT
    if (a.items >= kStreamMinItems) {
        const StreamVec sv = sv_set(s);
        switch (op) {
        case 0:  // the plain init's values: a = 2.0 * 1.0, b = 2.0, c = 0.0
            stream_store(va, begin, end, [](std::uint64_t) { return 2.0; },
                         [](std::uint64_t) { return sv_set(2.0); });
            stream_store(vb, begin, end, [](std::uint64_t) { return 2.0; },
                         [](std::uint64_t) { return sv_set(2.0); });
            stream_store(vc, begin, end, [](std::uint64_t) { return 0.0; },
                         [](std::uint64_t) { return sv_set(0.0); });
            break;
        case 1:
            stream_store(vc, begin, end, [=](std::uint64_t j) { return va[j]; },
                         [=](std::uint64_t j) { return sv_load(va + j); });
            break;
        case 2:
            stream_store(vb, begin, end, [=](std::uint64_t j) { return s * vc[j]; },
                         [=](std::uint64_t j) { return sv_mul(sv, sv_load(vc + j)); });
            break;
        case 3:
            stream_store(vc, begin, end, [=](std::uint64_t j) { return va[j] + vb[j]; },
                         [=](std::uint64_t j) { return sv_add(sv_load(va + j), sv_load(vb + j)); });
            break;
        default:
            stream_store(va, begin, end, [=](std::uint64_t j) { return vb[j] + s * vc[j]; },
                         [=](std::uint64_t j) {
                             return sv_add(sv_load(vb + j), sv_mul(sv, sv_load(vc + j)));
                         });
            break;
        }
        _mm_sfence();
        return KP_KERNEL_OK;
    }
#endif
    switch (op) {
    case 0:
        for (std::uint64_t j = begin; j < end; j++) {
            va[j] = 2.0;
            vb[j] = 2.0;
            vc[j] = 0.0;
        }
        break;
    case 1:
        for (std::uint64_t j = begin; j < end; j++) vc[j] = va[j];
        break;
    case 2:
        for (std::uint64_t j = begin; j < end; j++) vb[j] = s * vc[j];
        break;
    case 3:
        for (std::uint64_t j = begin; j < end; j++) vc[j] = va[j] + vb[j];
        break;
    default:
        for (std::uint64_t j = begin; j < end; j++) va[j] = vb[j] + s * vc[j];
        break;
    }
    return KP_KERNEL_OK;
}

// ---- Monte Carlo pi, tuned ----
// What makes it fast: the counter term seed + (k+1)*gamma advances by one addition per
// output instead of a multiplication, and Lanes samples are drawn per step into
// independent lanes (vectorised by gcc), so the remaining multiplies overlap.
// Bit-identical: the same integers, doubles and comparison; an exact count.
template <int Lanes>
std::int64_t pi_hits(std::uint64_t seed, std::uint64_t begin, std::uint64_t end) noexcept {
    std::int64_t hits = 0;
    std::uint64_t i = begin;
    std::uint64_t z = seed + (2 * i + 1) * kGamma;  // counter term of output 2i
    for (; i + Lanes <= end; i += Lanes) {
        std::int64_t in[Lanes];
        for (int l = 0; l < Lanes; l++) {
            const std::uint64_t zx = z + static_cast<std::uint64_t>(2 * l) * kGamma;
            const double x = unit(mix(zx));
            const double y = unit(mix(zx + kGamma));
            in[l] = x * x + y * y < 1.0;
        }
        for (int l = 0; l < Lanes; l++) hits += in[l];
        z += static_cast<std::uint64_t>(2 * Lanes) * kGamma;
    }
    for (; i < end; i++, z += 2 * kGamma) {
        const double x = unit(mix(z));
        const double y = unit(mix(z + kGamma));
        if (x * x + y * y < 1.0) hits++;
    }
    return hits;
}

int32_t pi_tuned(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.partial == nullptr || a.items > static_cast<std::uint64_t>(KP_PI_MAX_SAMPLES)) {
        return KP_KERNEL_BAD_ARGS;
    }
    a.partial[0] += pi_hits<8>(static_cast<std::uint64_t>(a.iparam[0]), begin, end);
    return KP_KERNEL_OK;
}

// One shim per kernel: range check, then the kernel; no exception crosses the C ABI.
template <int32_t (*Kernel)(const kp_kargs &, std::uint64_t, std::uint64_t)>
int32_t shim(const kp_kargs *a, std::uint64_t begin, std::uint64_t end) noexcept {
    try {
        return range_ok(a, begin, end) ? Kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

}  // namespace

extern "C" int32_t kp_cpp_nbody_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    return shim<nbody_tuned>(a, begin, end);
}

extern "C" int32_t kp_cpp_spectralnorm_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    return shim<spectralnorm_tuned>(a, begin, end);
}

extern "C" int32_t kp_cpp_mandelbrot_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    return shim<mandelbrot_tuned>(a, begin, end);
}

extern "C" int32_t kp_cpp_fannkuch_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    return shim<fannkuch_tuned>(a, begin, end);
}

extern "C" int32_t kp_cpp_triad_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    return shim<triad_tuned>(a, begin, end);
}

extern "C" int32_t kp_cpp_pi_tuned(const kp_kargs *a, uint64_t begin, uint64_t end) {
    return shim<pi_tuned>(a, begin, end);
}
