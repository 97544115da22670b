/* One serial step of the built-in `seed` kernel (C, 1 item) through the C ABI, STEPS times:
 * what scripts/abi-cost.sh counts the instructions of. No argument: 0 steps (the baseline). */
#include "kernelpool.h"
#include <stdio.h>

#define STEPS 100000

int main(int argc, char **argv) {
    if (kp_init(argc, argv) != KP_OK) return 2;
    kp_executor *e;
    kp_kernel *k;
    kp_buffer *b;
    if (kp_serial_new(&e) || kp_kernel_builtin(KP_KERNEL_SEED, KP_LANG_C, &k) || kp_buffer_new(KP_ELEM_I64, 1, &b)) return 1;
    kp_step_args a = {0};
    a.n = 1;
    a.items = 1;
    a.iparam[0] = 1;
    int64_t p[KP_PARTIAL_LEN];
    long n = argc > 1 ? STEPS : 0;
    for (long i = 0; i < n; i++)
        if (kp_step_run(e, k, &a, &b, 1, p, KP_PARTIAL_LEN) != KP_OK) return 1;
    printf("%ld\n", n);
    kp_buffer_free(b);
    kp_kernel_free(k);
    kp_executor_free(e);
    return 0;
}
