/* A kernel of one's own, built into a shared object (cc -shared -fPIC square.c -o
 * libsquare.so): out[i] = x * x for x = i + 1, under the range contract. */
#include <kernelpool.h>

int32_t square(const kp_kargs *args, uint64_t begin, uint64_t end) {
    int64_t *out = (int64_t *)args->buf[0];
    for (uint64_t i = begin; i < end; i++) out[i] = (int64_t)((i + 1) * (i + 1));
    return KP_KERNEL_OK;
}
