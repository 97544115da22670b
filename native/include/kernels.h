/*
 * kernels.h: the one kernel contract shared by every native kernel of kernelpool.
 *
 * Every kernel, whatever its language, is a function
 *
 *     int32_t kp_<lang>_<kernel>(const kp_kargs *args, uint64_t begin, uint64_t end);
 *
 * that computes the items [begin, end) of a problem of `args->items` items:
 *   - buffers listed as inputs are only read;
 *   - output element(s) of item i are written only by the call whose range holds i;
 *   - reduction kernels write a fixed-size partial into `args->partial` (KP_PARTIAL_LEN
 *     int64 slots, initialised by the caller to the identity of each slot's operation)
 *     and the caller combines partials of consecutive chunks in range order.
 *     The built-in kernels' reductions are over integers (sum, max), so they are exact
 *     and associative: the result never depends on how [0, items) was split. A kernel
 *     with a signature of its own (JIT) may also declare float slots (sum, max, min of
 *     double, stored as the double's bits in the int64 slot); a float sum depends on
 *     the chunk size (partials are combined in chunk order), never on the executor.
 * The return value is KP_KERNEL_OK, or a negative code (e.g. a C++ exception caught
 * by the extern "C" shim, or parameters outside what the kernel supports).
 *
 * Kernels never allocate large buffers, never print, and never keep state between
 * calls, so any executor (serial, threads, worker processes, MPI ranks) may run any
 * chunk anywhere.
 */
#ifndef KERNELPOOL_KERNELS_H
#define KERNELPOOL_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Number of buffer slots in kp_kargs. */
#define KP_MAX_BUFS 4
/** Number of int64 partial slots a reduction kernel may write. */
#define KP_PARTIAL_LEN 4
/** Kernel finished its range. */
#define KP_KERNEL_OK 0
/** Kernel rejected its parameters (size out of the supported range). */
#define KP_KERNEL_BAD_ARGS (-1)
/** A C++ kernel threw an exception (caught by its extern "C" shim). */
#define KP_KERNEL_EXCEPTION (-2)

/** Largest number of items of any step: every language counts items in int64 loops. */
#define KP_MAX_ITEMS 0x7fffffffffffffffLL
/** Largest N of spectralnorm: (i+j)*(i+j+1) of its matrix stays inside int64_t. */
#define KP_SPECTRALNORM_MAX_N (1LL << 30)
/** Largest N of mandelbrot: N*((N+7)/8) bytes, far inside int64_t byte offsets. */
#define KP_MANDELBROT_MAX_N (1LL << 32)
/** Largest N of fannkuch: the permutation arrays hold 12 elements. */
#define KP_FANNKUCH_MAX_N 12
/** Most samples of pi: their splitmix64 counters 2i, 2i+1 stay distinct in 64 bits. */
#define KP_PI_MAX_SAMPLES (1LL << 62)
/** Largest N of laplace: N*N doubles, far inside int64_t element offsets. */
#define KP_LAPLACE_MAX_N (1LL << 24)

/** Arguments of one kernel step; identical for every chunk of the step. */
typedef struct kp_kargs {
    /** Problem size parameter of the kernel (N of the benchmark). */
    uint64_t n;
    /** Number of items of the step: the range [0, items) is what gets split. */
    uint64_t items;
    /** Integer parameters (kernel specific, see each kernel). */
    int64_t iparam[4];
    /** Floating-point parameters (kernel specific). */
    double fparam[4];
    /** Buffers (kernel specific; each kernel documents which are read or written). */
    void *buf[KP_MAX_BUFS];
    /** Length of each buffer in elements of its type. */
    uint64_t len[KP_MAX_BUFS];
    /** Reduction partial of this chunk (KP_PARTIAL_LEN slots), or NULL. */
    int64_t *partial;
} kp_kargs;

/** Signature shared by every range kernel. */
typedef int32_t (*kp_range_fn)(const kp_kargs *args, uint64_t begin, uint64_t end);

/*
 * The kernels. Per language prefix: kp_c_, kp_cpp_, kp_f_ (Fortran, bind(C)).
 *
 * Every kernel refuses (KP_KERNEL_BAD_ARGS), before touching a buffer, items above
 * KP_MAX_ITEMS and the sizes and counts outside the bounds given below.
 *
 * seed         items = n arguments x = i + 1; iparam[0] = loop count (10,000,000; >= 0);
 *              buf[0] int64[items] out: the 64-bit wrapping sum of x*x over the loop.
 * nbody        items = independent systems; iparam[0] = steps (>= 0); system 0 is the published
 *              initial state, system s > 0 a deterministic perturbation of it (splitmix64);
 *              buf[0] double[2*items] out: energy before, energy after.
 * spectralnorm items = rows; n = N <= KP_SPECTRALNORM_MAX_N; iparam[0] = 0 for A*u, 1 for A^T*u;
 *              buf[0] double[N] in u, buf[1] double[N] out.
 * mandelbrot   items = rows; n = N <= KP_MANDELBROT_MAX_N (width = height);
 *              buf[0] uint8[N*((N+7)/8)] out: PBM rows.
 * fannkuch     items = permutation indices [0, n!); n in 1..=KP_FANNKUCH_MAX_N;
 *              partial[0] = checksum (sum), partial[1] = max flips (max).
 * triad        items = elements; iparam[0] = STREAM op (0 init, 1 copy, 2 scale, 3 add,
 *              4 triad); fparam[0] = scalar; buf[0..3] double a, b, c (read and written
 *              per item).
 * pi           items = samples <= KP_PI_MAX_SAMPLES; iparam[0] = seed; partial[0] = hits (sum).
 *              Sample i uses splitmix64 outputs 2i and 2i+1 of the counter-based stream.
 * laplace      one Jacobi sweep: items = rows = n; n = N <= KP_LAPLACE_MAX_N (an N x N grid,
 *              row-major); buf[0] double[N*N] in: the previous iterate, buf[1] double[N*N]
 *              out: row i of the next one. Boundary rows and columns are copied; interior
 *              point (i, j) is 0.25 * (((old[i][j+1] + old[i][j-1]) + old[i-1][j]) +
 *              old[i+1][j]) (row i reads rows i-1 and i+1 of buf[0]). partial[0] holds a
 *              double (max): the largest |new - old| over the interior points of the rows.
 */
#define KP_DECLARE_KERNELS(prefix)                                                   \
    int32_t prefix##seed(const kp_kargs *args, uint64_t begin, uint64_t end);         \
    int32_t prefix##nbody(const kp_kargs *args, uint64_t begin, uint64_t end);        \
    int32_t prefix##spectralnorm(const kp_kargs *args, uint64_t begin, uint64_t end); \
    int32_t prefix##mandelbrot(const kp_kargs *args, uint64_t begin, uint64_t end);   \
    int32_t prefix##fannkuch(const kp_kargs *args, uint64_t begin, uint64_t end);     \
    int32_t prefix##triad(const kp_kargs *args, uint64_t begin, uint64_t end);        \
    int32_t prefix##pi(const kp_kargs *args, uint64_t begin, uint64_t end);           \
    int32_t prefix##laplace(const kp_kargs *args, uint64_t begin, uint64_t end);      \
    uint64_t prefix##splitmix64_at(uint64_t seed, uint64_t k);

KP_DECLARE_KERNELS(kp_c_)
KP_DECLARE_KERNELS(kp_cpp_)
KP_DECLARE_KERNELS(kp_f_)

/*
 * Tuned variants: prefix##<kernel>_tuned, beside the plain kernel of the same name, with
 * the same contract, the same buffers and bounds as above, and the same answers (each
 * source's comment says how: all are bit-identical to the plain kernel). They are written
 * for speed (SIMD, several pixels or rows per iteration, tables); `seed` has none, and
 * Fortran has no triad_tuned. The registry's `Kernel::variants` (crates/kernels) is the
 * list the rest of kernelpool reads.
 */
#define KP_DECLARE_TUNED_KERNELS(prefix)                                                   \
    int32_t prefix##nbody_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);        \
    int32_t prefix##spectralnorm_tuned(const kp_kargs *args, uint64_t begin, uint64_t end); \
    int32_t prefix##mandelbrot_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);   \
    int32_t prefix##fannkuch_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);     \
    int32_t prefix##triad_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);        \
    int32_t prefix##pi_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);

KP_DECLARE_TUNED_KERNELS(kp_c_)
KP_DECLARE_TUNED_KERNELS(kp_cpp_)
/* Fortran: no triad_tuned (no Fortran construct makes gfortran emit the non-temporal stores
 * it is about; native/fortran/tuned.f90 says what was tried). */
int32_t kp_f_nbody_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);
int32_t kp_f_spectralnorm_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);
int32_t kp_f_mandelbrot_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);
int32_t kp_f_fannkuch_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);
int32_t kp_f_pi_tuned(const kp_kargs *args, uint64_t begin, uint64_t end);

#ifdef __cplusplus
}
#endif

#endif /* KERNELPOOL_KERNELS_H */
