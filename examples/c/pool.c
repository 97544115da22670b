/* A process pool from C: a built-in kernel's program, then a kernel from a shared object. */
#include <kernelpool.h>
#include <stdio.h>
#define TRY(call) if ((call) != KP_OK) { char m[1024]; kp_last_error_message(m, sizeof m, NULL); fprintf(stderr, "%s\n", m); return 1; }

int main(int argc, char **argv) {
    TRY(kp_init(argc, argv)); /* in a worker process: serves the pool, never returns */
    kp_executor *pool; kp_signature *sig; kp_kernel *square; kp_buffer *out;
    uint8_t text[64]; size_t len; int64_t *v;
    TRY(kp_processes_new(2, &pool));
    TRY(kp_program_run(pool, KP_KERNEL_SPECTRALNORM, KP_LANG_FORTRAN, 100, 1, text, sizeof text, &len));
    printf("%.*s", (int)len, (const char *)text);
    TRY(kp_signature_parse("square", "out i64[items]", &sig));
    TRY(kp_kernel_from_library(argc > 1 ? argv[1] : "./libsquare.so", "square", sig, &square));
    TRY(kp_buffer_new(KP_ELEM_I64, 3, &out));
    kp_step_args args = {.n = 3, .items = 3};
    TRY(kp_step_run(pool, square, &args, &out, 1, NULL, 0));
    TRY(kp_buffer_data(out, (void **)&v, &len));
    printf("%lld %lld %lld\n", (long long)v[0], (long long)v[1], (long long)v[2]);
    kp_buffer_free(out); kp_kernel_free(square); kp_signature_free(sig); kp_executor_free(pool);
    return 0;
}
