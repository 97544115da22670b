/* Range kernels for crates/cli/tests/mpi.rs (signature "out i64[items]"): out[i] = i*i,
 * except on the chunks that begin at item iparam[0] or later, which the test picks so
 * that only the last MPI rank owns them. */
#include "kernels.h"

/* Fails with status -7 on those chunks. */
int32_t fails_late(const kp_kargs *a, uint64_t begin, uint64_t end) {
    int64_t *out = (int64_t *)a->buf[0];
    if (begin >= (uint64_t)a->iparam[0]) return -7;
    for (uint64_t i = begin; i < end; i++) out[i] = (int64_t)(i * i);
    return KP_KERNEL_OK;
}

/* Writes through a null pointer (SIGSEGV) on those chunks. */
int32_t crashes_late(const kp_kargs *a, uint64_t begin, uint64_t end) {
    int64_t *out = (int64_t *)a->buf[0];
    if (begin >= (uint64_t)a->iparam[0]) *(volatile int64_t *)0 = 1;
    for (uint64_t i = begin; i < end; i++) out[i] = (int64_t)(i * i);
    return KP_KERNEL_OK;
}
