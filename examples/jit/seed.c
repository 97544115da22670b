/* The course's f, in C, as a plain element function:
 *
 *     def f(x):
 *         j = 0
 *         for i in range(10_000_000):
 *             j += x * x
 *         return j
 *
 *     kpool jit examples/jit/seed.c --symbol f --map 1,2,3 --exec processes
 *
 * prints [10000000, 40000000, 90000000]. Python's integers never overflow; C's signed ones
 * must not, so the sum is done in unsigned arithmetic, which wraps as the built-in seed
 * kernel's does. (gcc folds the loop into j = 10^7 * x * x at -O3.)
 */
#include <stdint.h>

int64_t f(int64_t x) {
    const uint64_t ux = (uint64_t)x;
    uint64_t j = 0;
    for (int64_t i = 0; i < 10000000; i++) {
        j += ux * ux;
    }
    return (int64_t)j;
}
