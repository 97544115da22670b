/* Kernels of the C-ABI tests, built into a shared object by tests/c_abi.rs and also
 * compiled into tests/c/abi.c (for kp_kernel_from_fn). They follow the range contract of
 * kernelpool/kernels.h for the signature
 *     out f64[items], sum i64, max f64, sum f64
 * out[i] = fparam[0] * x * x with x = i + 1; partial slot 0 sums x, slot 1 is the largest
 * output, slot 2 sums the outputs (float slots hold the bits of a double). */
#include "kernelpool.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static double get_f64(const int64_t *slot) {
    double d;
    memcpy(&d, slot, sizeof d);
    return d;
}

static void put_f64(int64_t *slot, double d) { memcpy(slot, &d, sizeof d); }

int32_t kp_test_square(const kp_kargs *args, uint64_t begin, uint64_t end) {
    double *out = (double *)args->buf[0];
    int64_t sum = 0;
    double max = get_f64(&args->partial[1]);
    double total = get_f64(&args->partial[2]);
    for (uint64_t i = begin; i < end; i++) {
        double x = (double)(i + 1);
        out[i] = args->fparam[0] * x * x;
        sum += (int64_t)(i + 1);
        if (out[i] > max) max = out[i];
        total += out[i];
    }
    args->partial[0] += sum;
    put_f64(&args->partial[1], max);
    put_f64(&args->partial[2], total);
    return KP_KERNEL_OK;
}

/* Writes through a null pointer when its range holds item iparam[0]. */
int32_t kp_test_crash(const kp_kargs *args, uint64_t begin, uint64_t end) {
    uint64_t bad = (uint64_t)args->iparam[0];
    if (begin <= bad && bad < end) {
        volatile int *nowhere = (volatile int *)(uintptr_t)args->iparam[1];
        *nowhere = 1;
    }
    return kp_test_square(args, begin, end);
}

/* Never returns when its range holds item iparam[0]. */
int32_t kp_test_hang(const kp_kargs *args, uint64_t begin, uint64_t end) {
    uint64_t bad = (uint64_t)args->iparam[0];
    if (begin <= bad && bad < end) {
        for (;;) sleep(1);
    }
    return kp_test_square(args, begin, end);
}

/* Refuses every call, as a kernel refuses arguments it cannot take. */
int32_t kp_test_refuse(const kp_kargs *args, uint64_t begin, uint64_t end) {
    (void)args;
    (void)begin;
    (void)end;
    return KP_KERNEL_BAD_ARGS;
}
