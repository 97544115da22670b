// The eight kernels in C++17. Contract and per-kernel buffers: native/include/kernels.h.
// Built with -O3 -ffp-contract=off so that every floating-point operation is the one
// written here, in this order, as in the C reference (native/c/kernels.c) and the
// Fortran and Rust versions: results must agree bit for bit.
//
// The kernels live in an anonymous namespace as ordinary C++; the only exported symbols
// are the extern "C" shims at the end, which never let an exception cross the C ABI.
#include "kernels.h"

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace {

// ---- splitmix64, counter based: output k of the stream seeded with `seed` ----
constexpr std::uint64_t splitmix64_at(std::uint64_t seed, std::uint64_t k) noexcept {
    std::uint64_t z = seed + (k + 1u) * UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

// Vigna's reference values (reference-outputs/splitmix64-seed1234567-first5.txt).
static_assert(splitmix64_at(1234567, 0) == UINT64_C(6457827717110365317), "splitmix64");
static_assert(splitmix64_at(1234567, 4) == UINT64_C(16408922859458223821), "splitmix64");

// uniform double in [0, 1) from the top 53 bits (the conversion is exact)
constexpr double unit(std::uint64_t z) noexcept {
    return static_cast<double>(z >> 11) * 0x1.0p-53;
}

// Same test as the C CHECK_RANGE: unsigned comparisons, end may equal items.
bool range_ok(const kp_kargs *a, std::uint64_t begin, std::uint64_t end) noexcept {
    return a != nullptr && begin <= end && end <= a->items &&
           a->items <= static_cast<std::uint64_t>(KP_MAX_ITEMS);
}

template <typename T>
T *buffer(const kp_kargs &a, std::size_t slot) noexcept {
    return static_cast<T *>(a.buf[slot]);
}

// ---- seed ----
int32_t seed_kernel(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.iparam[0] < 0) return KP_KERNEL_BAD_ARGS;
    auto *out = buffer<std::int64_t>(a, 0);
    const auto iters = static_cast<std::uint64_t>(a.iparam[0]);
    for (std::uint64_t i = begin; i < end; i++) {
        // unsigned so that the sum wraps (defined) exactly like the C version
        const std::uint64_t x = i + 1u;
        std::uint64_t j = 0;
        for (std::uint64_t k = 0; k < iters; k++) {
            j += x * x;
        }
        out[i] = static_cast<std::int64_t>(j);
    }
    return KP_KERNEL_OK;
}

// ---- nbody ----
namespace nbody {

constexpr int bodies = 5;
constexpr double pi = 3.141592653589793;
constexpr double solar_mass = 4 * pi * pi;
constexpr double days_per_year = 365.24;

struct Body {
    double x, y, z, vx, vy, vz, mass;
};
using System = std::array<Body, bodies>;

// Products are folded at compile time exactly as the C initialiser is (one rounding each).
constexpr System initial_state{{
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
}};

System init(std::uint64_t system) {
    System b = initial_state;
    if (system > 0) {
        // planets' positions moved by up to +-0.0005 AU, keyed by (system, 3*body+axis)
        for (int i = 1; i < bodies; i++) {
            const auto k = static_cast<std::uint64_t>(3 * i);
            b[i].x = b[i].x + 1.0e-3 * (unit(splitmix64_at(system, k + 0)) - 0.5);
            b[i].y = b[i].y + 1.0e-3 * (unit(splitmix64_at(system, k + 1)) - 0.5);
            b[i].z = b[i].z + 1.0e-3 * (unit(splitmix64_at(system, k + 2)) - 0.5);
        }
    }
    double px = 0.0, py = 0.0, pz = 0.0;
    for (const Body &body : b) {
        px += body.vx * body.mass;
        py += body.vy * body.mass;
        pz += body.vz * body.mass;
    }
    b[0].vx = -px / solar_mass;
    b[0].vy = -py / solar_mass;
    b[0].vz = -pz / solar_mass;
    return b;
}

double energy(const System &b) {
    double e = 0.0;
    for (int i = 0; i < bodies; i++) {
        e += 0.5 * b[i].mass * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < bodies; j++) {
            const double dx = b[i].x - b[j].x;
            const double dy = b[i].y - b[j].y;
            const double dz = b[i].z - b[j].z;
            const double distance = std::sqrt(dx * dx + dy * dy + dz * dz);
            e -= (b[i].mass * b[j].mass) / distance;
        }
    }
    return e;
}

void advance(System &b, double dt) {
    for (int i = 0; i < bodies; i++) {
        for (int j = i + 1; j < bodies; j++) {
            const double dx = b[i].x - b[j].x;
            const double dy = b[i].y - b[j].y;
            const double dz = b[i].z - b[j].z;
            const double distance = std::sqrt(dx * dx + dy * dy + dz * dz);
            const double mag = dt / (distance * distance * distance);
            b[i].vx -= dx * b[j].mass * mag;
            b[i].vy -= dy * b[j].mass * mag;
            b[i].vz -= dz * b[j].mass * mag;
            b[j].vx += dx * b[i].mass * mag;
            b[j].vy += dy * b[i].mass * mag;
            b[j].vz += dz * b[i].mass * mag;
        }
    }
    for (Body &body : b) {
        body.x += dt * body.vx;
        body.y += dt * body.vy;
        body.z += dt * body.vz;
    }
}

}  // namespace nbody

int32_t nbody_kernel(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.iparam[0] < 0) return KP_KERNEL_BAD_ARGS;
    auto *out = buffer<double>(a, 0);
    const std::int64_t steps = a.iparam[0];
    for (std::uint64_t s = begin; s < end; s++) {
        nbody::System b = nbody::init(s);
        out[2 * s] = nbody::energy(b);
        for (std::int64_t k = 0; k < steps; k++) {
            nbody::advance(b, 0.01);
        }
        out[2 * s + 1] = nbody::energy(b);
    }
    return KP_KERNEL_OK;
}

// ---- spectralnorm ----
constexpr double eval_a(std::int64_t i, std::int64_t j) noexcept {
    return 1.0 / static_cast<double>((i + j) * (i + j + 1) / 2 + i + 1);
}

// One row of A*u (Transpose = false) or A^T*u (true); the sum is kept strictly
// sequential (no reassociation) so every language adds in the same order.
template <bool Transpose>
double spectral_row(std::int64_t i, std::int64_t n, const double *u) noexcept {
    double sum = 0.0;
    for (std::int64_t j = 0; j < n; j++) {
        sum += (Transpose ? eval_a(j, i) : eval_a(i, j)) * u[j];
    }
    return sum;
}

int32_t spectralnorm_kernel(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.n > static_cast<std::uint64_t>(KP_SPECTRALNORM_MAX_N)) return KP_KERNEL_BAD_ARGS;
    const auto *u = buffer<const double>(a, 0);
    auto *au = buffer<double>(a, 1);
    const auto n = static_cast<std::int64_t>(a.n);
    const bool transpose = a.iparam[0] != 0;
    for (auto i = static_cast<std::int64_t>(begin); i < static_cast<std::int64_t>(end); i++) {
        au[i] = transpose ? spectral_row<true>(i, n, u) : spectral_row<false>(i, n, u);
    }
    return KP_KERNEL_OK;
}

// ---- mandelbrot ----
int32_t mandelbrot_kernel(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.n > static_cast<std::uint64_t>(KP_MANDELBROT_MAX_N)) return KP_KERNEL_BAD_ARGS;
    auto *out = buffer<std::uint8_t>(a, 0);
    const std::uint64_t n = a.n;
    const std::uint64_t bpr = (n + 7) / 8;
    const double w = static_cast<double>(n), h = static_cast<double>(n);
    constexpr double limit = 2.0;
    for (std::uint64_t y = begin; y < end; y++) {
        std::uint8_t *row = out + y * bpr;
        unsigned byte_acc = 0;
        int bit_num = 0;
        std::uint64_t pos = 0;
        const double ci = 2.0 * static_cast<double>(y) / h - 1.0;
        for (std::uint64_t x = 0; x < n; x++) {
            const double cr = 2.0 * static_cast<double>(x) / w - 1.5;
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
                row[pos++] = static_cast<std::uint8_t>(byte_acc);
                byte_acc = 0;
                bit_num = 0;
            } else if (x == n - 1) {
                // last, partial byte of an odd-width row: pad with zero bits on the right
                byte_acc <<= (8 - n % 8);
                row[pos++] = static_cast<std::uint8_t>(byte_acc);
                byte_acc = 0;
                bit_num = 0;
            }
        }
    }
    return KP_KERNEL_OK;
}

// ---- fannkuch-redux, over blocks of permutation indices ----
namespace fannkuch {

constexpr int max_n = KP_FANNKUCH_MAX_N;
using Perm = std::array<int, max_n>;

constexpr std::array<std::int64_t, max_n + 1> factorials() noexcept {
    std::array<std::int64_t, max_n + 1> f{};
    f[0] = 1;
    for (int i = 1; i <= max_n; i++) f[i] = f[i - 1] * i;
    return f;
}
constexpr auto fact = factorials();

// flips are only ever at indices <= pp[0] < n, so copying all of `p` is harmless
std::int64_t count_flips(const Perm &p) noexcept {
    if (p[0] == 0) return 0;
    Perm pp = p;
    std::int64_t flips = 0;
    for (int first = pp[0]; first != 0; first = pp[0]) {
        for (int lo = 0, hi = first; lo < hi; lo++, hi--) {
            const int t = pp[lo];
            pp[lo] = pp[hi];
            pp[hi] = t;
        }
        flips++;
    }
    return flips;
}

}  // namespace fannkuch

int32_t fannkuch_kernel(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    using namespace fannkuch;
    if (a.n < 1 || a.n > static_cast<std::uint64_t>(max_n) || a.partial == nullptr) {
        return KP_KERNEL_BAD_ARGS;
    }
    const int n = static_cast<int>(a.n);
    if (begin == end) return KP_KERNEL_OK;
    // indices past n! have no permutation (the C version does not check this)
    if (end > static_cast<std::uint64_t>(fact[n])) return KP_KERNEL_BAD_ARGS;
    Perm p{}, pp{}, count{};
    // first permutation of the block: decode `begin` in the factorial number system
    for (int i = 0; i < n; i++) p[i] = i;
    auto idx = static_cast<std::int64_t>(begin);
    for (int i = n - 1; i > 0; i--) {
        const int d = static_cast<int>(idx / fact[i]);
        count[i] = d;
        idx = idx % fact[i];
        for (int j = 0; j <= i; j++) pp[j] = p[j];
        for (int j = 0; j <= i; j++) p[j] = (j + d <= i) ? pp[j + d] : pp[j + d - i - 1];
    }
    std::int64_t checksum = 0, max_flips = 0;
    for (std::uint64_t k = begin; k < end; k++) {
        const std::int64_t flips = count_flips(p);
        if (flips > max_flips) max_flips = flips;
        checksum += (k % 2 == 0) ? flips : -flips;
        if (k + 1 < end) {
            // next permutation in the same order as the sequential algorithm
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
    a.partial[0] += checksum;
    if (max_flips > a.partial[1]) a.partial[1] = max_flips;
    return KP_KERNEL_OK;
}

// ---- STREAM (copy, scale, add, triad) ----
template <typename Op>
void stream_loop(std::uint64_t begin, std::uint64_t end, Op op) {
    for (std::uint64_t j = begin; j < end; j++) op(j);
}

int32_t triad_kernel(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    double *__restrict va = buffer<double>(a, 0);
    double *__restrict vb = buffer<double>(a, 1);
    double *__restrict vc = buffer<double>(a, 2);
    const double scalar = a.fparam[0];
    switch (a.iparam[0]) {
    case 0:
        stream_loop(begin, end, [=](std::uint64_t j) {
            va[j] = 1.0;
            vb[j] = 2.0;
            vc[j] = 0.0;
            va[j] = 2.0 * va[j];
        });
        break;
    case 1:
        stream_loop(begin, end, [=](std::uint64_t j) { vc[j] = va[j]; });
        break;
    case 2:
        stream_loop(begin, end, [=](std::uint64_t j) { vb[j] = scalar * vc[j]; });
        break;
    case 3:
        stream_loop(begin, end, [=](std::uint64_t j) { vc[j] = va[j] + vb[j]; });
        break;
    case 4:
        stream_loop(begin, end, [=](std::uint64_t j) { va[j] = vb[j] + scalar * vc[j]; });
        break;
    default:
        return KP_KERNEL_BAD_ARGS;
    }
    return KP_KERNEL_OK;
}

// ---- Monte Carlo pi ----
int32_t pi_kernel(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.partial == nullptr || a.items > static_cast<std::uint64_t>(KP_PI_MAX_SAMPLES)) {
        return KP_KERNEL_BAD_ARGS;
    }
    const auto seed = static_cast<std::uint64_t>(a.iparam[0]);
    std::int64_t hits = 0;
    for (std::uint64_t i = begin; i < end; i++) {
        const double x = unit(splitmix64_at(seed, 2 * i));
        const double y = unit(splitmix64_at(seed, 2 * i + 1));
        if (x * x + y * y < 1.0) hits++;
    }
    a.partial[0] += hits;
    return KP_KERNEL_OK;
}

// ---- laplace: one Jacobi sweep of rows [begin, end) from buf[0] into buf[1] ----
int32_t laplace_kernel(const kp_kargs &a, std::uint64_t begin, std::uint64_t end) {
    if (a.n > static_cast<std::uint64_t>(KP_LAPLACE_MAX_N) || a.items != a.n ||
        a.partial == nullptr) {
        return KP_KERNEL_BAD_ARGS;
    }
    const std::uint64_t n = a.n;
    const auto *old = buffer<const double>(a, 0);
    auto *next = buffer<double>(a, 1);
    // The max of |new - old| >= 0 is taken on the doubles' bits as int64, as in C (see
    // there): exactly the double max, and vectorisable.
    std::int64_t err = a.partial[0];
    for (std::uint64_t i = begin; i < end; i++) {
        const double *o = old + i * n;
        double *x = next + i * n;
        if (i == 0 || i == n - 1) {
            for (std::uint64_t j = 0; j < n; j++) x[j] = o[j];
            continue;
        }
        const double *up = o - n;
        const double *down = o + n;
        x[0] = o[0];
        for (std::uint64_t j = 1; j + 1 < n; j++) {
            const double v = 0.25 * (((o[j + 1] + o[j - 1]) + up[j]) + down[j]);
            const double d = std::fabs(v - o[j]);
            std::int64_t bits;
            std::memcpy(&bits, &d, sizeof bits);
            x[j] = v;
            if (bits > err) err = bits;
        }
        x[n - 1] = o[n - 1];
    }
    a.partial[0] = err;
    return KP_KERNEL_OK;
}

}  // namespace

// ---- extern "C" shims: range check, then the kernel; no exception crosses the C ABI ----

extern "C" int32_t kp_cpp_seed(const kp_kargs *a, uint64_t begin, uint64_t end) {
    try {
        return range_ok(a, begin, end) ? seed_kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

extern "C" int32_t kp_cpp_nbody(const kp_kargs *a, uint64_t begin, uint64_t end) {
    try {
        return range_ok(a, begin, end) ? nbody_kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

extern "C" int32_t kp_cpp_spectralnorm(const kp_kargs *a, uint64_t begin, uint64_t end) {
    try {
        return range_ok(a, begin, end) ? spectralnorm_kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

extern "C" int32_t kp_cpp_mandelbrot(const kp_kargs *a, uint64_t begin, uint64_t end) {
    try {
        return range_ok(a, begin, end) ? mandelbrot_kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

extern "C" int32_t kp_cpp_fannkuch(const kp_kargs *a, uint64_t begin, uint64_t end) {
    try {
        return range_ok(a, begin, end) ? fannkuch_kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

extern "C" int32_t kp_cpp_triad(const kp_kargs *a, uint64_t begin, uint64_t end) {
    try {
        return range_ok(a, begin, end) ? triad_kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

extern "C" int32_t kp_cpp_pi(const kp_kargs *a, uint64_t begin, uint64_t end) {
    try {
        return range_ok(a, begin, end) ? pi_kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

extern "C" int32_t kp_cpp_laplace(const kp_kargs *a, uint64_t begin, uint64_t end) {
    try {
        return range_ok(a, begin, end) ? laplace_kernel(*a, begin, end) : KP_KERNEL_BAD_ARGS;
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

// Cannot throw (pure integer arithmetic), so it needs no try/catch.
extern "C" uint64_t kp_cpp_splitmix64_at(uint64_t seed, uint64_t k) {
    return splitmix64_at(seed, k);
}
