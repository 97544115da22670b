/* A range kernel with a signature of its own: for the items [begin, end) of a step, the
 * course's f of x = i + 1 (iparam[0] trips of j += x*x) into out[i], and the sum of the
 * results as a partial, which the executors combine over the chunks.
 *
 *     kpool jit examples/jit/seed_range.c --symbol seed_sum \
 *         --sig "out i64[items], sum i64, iparam[0]>=0" --iparam 10000000 --n 3 --exec threads
 *
 * prints 10000000, 40000000 and 90000000, one per line, then the sum, 140000000.
 * kernels.h (the kernel contract: kp_kargs, status codes) comes with the JIT.
 */
#include "kernels.h"

int32_t seed_sum(const kp_kargs *a, uint64_t begin, uint64_t end) {
    if (begin > end || end > a->items || a->len[0] < a->items || a->iparam[0] < 0)
        return KP_KERNEL_BAD_ARGS;
    int64_t *out = (int64_t *)a->buf[0];
    const uint64_t iters = (uint64_t)a->iparam[0];
    uint64_t sum = 0;
    for (uint64_t i = begin; i < end; i++) {
        const uint64_t x = i + 1;
        uint64_t j = 0;
        for (uint64_t k = 0; k < iters; k++) j += x * x;
        out[i] = (int64_t)j;
        sum += j;
    }
    a->partial[0] += (int64_t)sum;
    return KP_KERNEL_OK;
}
