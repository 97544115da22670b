/* The C ABI from C: every executor, built-in programs against the reference outputs,
 * user kernels from a function pointer and from a shared object, and a table of bad
 * inputs, each with its status and message. Run by tests/c_abi.rs (linked once to the
 * shared and once to the static library, and under valgrind by .ci/run):
 *     abi REFERENCE_OUTPUTS_DIR LIBUSERKERNELS_SO
 * Prints one line per bad input ("bad input: CALL -> STATUS: MESSAGE") and, at the end,
 * "N checks, 0 failed"; exits 1 when a check failed. */
#include "kernelpool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "userkernels.c"

static int checks = 0, failures = 0;

static void failed(const char *what, const char *why) {
    failures++;
    printf("FAIL %s: %s\n", what, why);
}

static void check_true(int ok, const char *what) {
    checks++;
    if (!ok) failed(what, "not true");
}

/* The call returned `want`; for a failure, its message holds `needle`. */
static void expect(const char *what, kp_status got, kp_status want, const char *needle) {
    char msg[2048] = "";
    size_t len = 0;
    checks++;
    if (got != KP_OK && kp_last_error_message(msg, sizeof msg, &len) != KP_OK) {
        failed(what, "kp_last_error_message did not fit in 2048 bytes");
        return;
    }
    if (got != want) {
        char why[2300];
        snprintf(why, sizeof why, "status %u (%s), expected %u: %s", (unsigned)got, kp_status_str(got), (unsigned)want, msg);
        failed(what, why);
        return;
    }
    if (needle && !strstr(msg, needle)) {
        char why[2300];
        snprintf(why, sizeof why, "message lacks \"%s\": %s", needle, msg);
        failed(what, why);
        return;
    }
    if (want != KP_OK) {
        const char *name = kp_status_str(got);
        printf("bad input: %s -> %.*s: %s\n", what, (int)strcspn(name, ":"), name, msg);
    }
}

#define EXPECT(call, want, needle) expect(#call, (call), (want), (needle))
#define OK(call) expect(#call, (call), KP_OK, NULL)

static char *read_file(const char *dir, const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char data[1 << 16];
    *len = fread(data, 1, sizeof data, f);
    fclose(f);
    return data;
}

static unsigned char out[1 << 16];

/* Every language's program of every reference kernel on `exec` equals the file. */
static void builtins(kp_executor *exec, const char *refs) {
    static const struct { uint32_t kernel; uint64_t n; const char *file; } cases[] = {
        {KP_KERNEL_NBODY, 1000, "nbody-1000.out"},
        {KP_KERNEL_SPECTRALNORM, 100, "spectralnorm-100.out"},
        {KP_KERNEL_MANDELBROT, 200, "mandelbrot-200.pbm"},
        {KP_KERNEL_FANNKUCH, 7, "fannkuchredux-7.out"},
    };
    char what[256], desc[64];
    size_t dlen = 0;
    OK(kp_executor_describe(exec, desc, sizeof desc, &dlen));
    for (uint32_t lang = 0; lang < kp_lang_count(); lang++) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            size_t want_len = 0, written = 0;
            const char *want = read_file(refs, cases[c].file, &want_len);
            snprintf(what, sizeof what, "%s %s on %s", kp_kernel_name(cases[c].kernel), kp_lang_name(lang), desc);
            if (!want) {
                failed(what, "cannot read the reference output");
                continue;
            }
            expect(what, kp_program_run(exec, cases[c].kernel, lang, cases[c].n, 1, out, sizeof out, &written), KP_OK, NULL);
            checks++;
            if (written != want_len || memcmp(out, want, want_len) != 0) failed(what, "output differs from the reference");
            /* The tuned variant prints the same, where the kernel has one in this language. */
            kp_kernel *tk = NULL;
            kp_status has = kp_kernel_builtin_variant(cases[c].kernel, lang, KP_VARIANT_TUNED, &tk);
            kp_kernel_free(tk);
            if (has == KP_NO_VARIANT) continue;
            snprintf(what, sizeof what, "%s %s tuned on %s", kp_kernel_name(cases[c].kernel), kp_lang_name(lang), desc);
            expect(what, kp_program_run_variant(exec, cases[c].kernel, lang, KP_VARIANT_TUNED, cases[c].n, 1, out, sizeof out, &written), KP_OK, NULL);
            checks++;
            if (written != want_len || memcmp(out, want, want_len) != 0) failed(what, "tuned output differs from the reference");
        }
        if (lang == KP_LANG_FORTRAN) continue; /* gfortran keeps seed's 10^7-trip loop: slow under valgrind */
        size_t written = 0;
        snprintf(what, sizeof what, "seed %s on %s", kp_lang_name(lang), desc);
        expect(what, kp_program_run(exec, KP_KERNEL_SEED, lang, 3, 1, out, sizeof out, &written), KP_OK, NULL);
        checks++;
        if (written != 27 || memcmp(out, "10000000\n40000000\n90000000\n", 27) != 0) failed(what, "not the squares times 10^7");
    }
    size_t written = 0;
    OK(kp_program_run(exec, KP_KERNEL_TRIAD, KP_LANG_C, 100000, 1, out, sizeof out, &written));
    checks++;
    if (!strstr((const char *)out, "Solution Validates")) failed("triad", "does not validate");
}

#define ITEMS 1000
static int64_t want_partial[KP_PARTIAL_LEN];
static double want_out[ITEMS];

/* A step of `k` (signature: out f64[items], sum i64, max f64, sum f64) into a shared
 * buffer; the output and the integer and max slots equal the serial reference; the
 * float sum slot is returned. */
static int64_t square_step(kp_executor *exec, kp_kernel *k, const char *what) {
    kp_buffer *b = NULL;
    kp_step_args args = {0};
    args.n = ITEMS;
    args.items = ITEMS;
    args.fparam[0] = 0.5;
    int64_t p[KP_PARTIAL_LEN] = {0};
    void *data = NULL;
    size_t len = 0;
    OK(kp_buffer_new(KP_ELEM_F64, ITEMS, &b));
    expect(what, kp_step_run(exec, k, &args, &b, 1, p, KP_PARTIAL_LEN), KP_OK, NULL);
    OK(kp_buffer_data(b, &data, &len));
    checks++;
    if (len != ITEMS || memcmp(data, want_out, sizeof want_out) != 0) failed(what, "output differs from serial");
    checks++;
    if (p[0] != want_partial[0] || p[1] != want_partial[1]) failed(what, "exact partial slots differ from serial");
    kp_buffer_free(b);
    return p[2];
}

/* JIT: a kernel of the same contract as kp_test_square's output, from its source text. */
static const char *jit_square_src =
    "#include \"kernels.h\"\n"
    "int32_t jit_square(const kp_kargs *args, uint64_t begin, uint64_t end) {\n"
    "    double *out = (double *)args->buf[0];\n"
    "    for (uint64_t i = begin; i < end; i++) {\n"
    "        double x = (double)(i + 1);\n"
    "        out[i] = args->fparam[0] * x * x;\n"
    "    }\n"
    "    return KP_KERNEL_OK;\n"
    "}\n";

/* The course's f, as a C element function. */
static const char *jit_f_src = "#include <stdint.h>\nint64_t f(int64_t x) { return 10000000 * x * x; }\n";

/* A JIT kernel's output on `exec` equals the serial reference's. */
static void jit_square_step(kp_executor *exec, kp_kernel *k, const char *what) {
    kp_buffer *b = NULL;
    kp_step_args args = {0};
    args.n = ITEMS;
    args.items = ITEMS;
    args.fparam[0] = 0.5;
    void *data = NULL;
    size_t len = 0;
    OK(kp_buffer_new(KP_ELEM_F64, ITEMS, &b));
    expect(what, kp_step_run(exec, k, &args, &b, 1, NULL, 0), KP_OK, NULL);
    OK(kp_buffer_data(b, &data, &len));
    checks++;
    if (len != ITEMS || memcmp(data, want_out, sizeof want_out) != 0) failed(what, "output differs from serial");
    kp_buffer_free(b);
}

/* Pool.map(f, [1, 2, 3]) with a JIT element function on `exec`. */
static void jit_map(kp_executor *exec, kp_kernel *f, const char *what) {
    kp_buffer *io[2] = {NULL, NULL};
    kp_step_args args = {0};
    args.n = 3;
    args.items = 3;
    void *in = NULL, *res = NULL;
    size_t len = 0;
    OK(kp_buffer_new(KP_ELEM_I64, 3, &io[0]));
    OK(kp_buffer_new(KP_ELEM_I64, 3, &io[1]));
    OK(kp_buffer_data(io[0], &in, &len));
    for (int i = 0; i < 3; i++) ((int64_t *)in)[i] = i + 1;
    expect(what, kp_step_run(exec, f, &args, io, 2, NULL, 0), KP_OK, NULL);
    OK(kp_buffer_data(io[1], &res, &len));
    const int64_t *r = res;
    checks++;
    if (r[0] != 10000000 || r[1] != 40000000 || r[2] != 90000000) failed(what, "not [10000000, 40000000, 90000000]");
    kp_buffer_free(io[0]);
    kp_buffer_free(io[1]);
}

/* KP_BUSY: a function-pointer kernel that, while its call holds buffer busy_buf, runs a
 * step of its own over the same buffer; that inner call must be refused with KP_BUSY
 * (and its message kept for the check), never run over memory the outer call uses. */
static kp_executor *busy_exec;
static kp_kernel *busy_inner;
static kp_buffer *busy_buf;
static kp_status busy_status = KP_OK;
static char busy_msg[512];

static int32_t reenter(const kp_kargs *args, uint64_t begin, uint64_t end) {
    kp_step_args inner = {0};
    inner.n = ITEMS;
    inner.items = ITEMS;
    int64_t p[KP_PARTIAL_LEN] = {0};
    size_t len = 0;
    busy_status = kp_step_run(busy_exec, busy_inner, &inner, &busy_buf, 1, p, KP_PARTIAL_LEN);
    if (busy_status != KP_OK) kp_last_error_message(busy_msg, sizeof busy_msg, &len);
    return kp_test_square(args, begin, end);
}

int main(int argc, char **argv) {
    if (kp_init(argc, argv) != KP_OK) return 2; /* in a worker: serves the pool, never returns */
    if (argc < 3) {
        fprintf(stderr, "usage: %s REFERENCE_OUTPUTS_DIR LIBUSERKERNELS_SO\n", argv[0]);
        return 2;
    }
    const char *refs = argv[1], *so = argv[2];
    /* Under valgrind the process pools are left out: rustix reads the vDSO, which
     * valgrind does not map (rustix issue 1559), so their start would crash there. */
    int procs_ok = 1, jit_ok = 1;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--no-processes") == 0) procs_ok = 0;
        /* Valgrind 3.19 does not decode SHA-NI, which the JIT's cache key (sha2, chosen
         * by cpuid at run time) uses where the CPU has it. */
        if (strcmp(argv[i], "--no-jit") == 0) jit_ok = 0;
    }
    check_true(strcmp(kp_version(), KP_VERSION_STRING) == 0, "kp_version() is KP_VERSION_STRING");
    check_true(kp_kernel_count() == 8 && kp_lang_count() == 4, "8 kernels, 4 languages");
    uint32_t id = 0;
    OK(kp_kernel_by_name("mandelbrot", &id));
    check_true(id == KP_KERNEL_MANDELBROT, "kp_kernel_by_name");
    OK(kp_lang_by_name("Fortran", &id));
    check_true(id == KP_LANG_FORTRAN, "kp_lang_by_name");

    kp_executor *serial = NULL, *threads = NULL, *threads1 = NULL, *procs = NULL, *procs_chunk = NULL;
    OK(kp_serial_new(&serial));
    OK(kp_threads_new(2, 0, &threads));
    OK(kp_threads_new(1, 10, &threads1));
    kp_processes_builder *pb = NULL;
    OK(kp_processes_builder_new(&pb));
    OK(kp_processes_builder_workers(pb, 2));
    OK(kp_processes_builder_chunk(pb, 10));
    OK(kp_processes_builder_max_tasks_per_worker(pb, 50));
    EXPECT(kp_processes_builder_caller_runs_chunks(pb, 2), KP_INVALID_ARGUMENT, "on is 2, not 0 or 1");
    /* Every chunk in the workers: the built-in programs below run there only. */
    OK(kp_processes_builder_caller_runs_chunks(pb, 0));
    if (procs_ok) {
        OK(kp_processes_new(2, &procs));
        OK(kp_processes_builder_build(pb, &procs_chunk));
        size_t workers = 0;
        OK(kp_executor_workers(procs, &workers));
        check_true(workers == 2, "two workers");
    }

    /* Built-in programs: the reference outputs on every executor. */
    builtins(serial, refs);
    builtins(threads, refs);
    if (procs_ok) builtins(procs, refs);
    if (procs_ok) builtins(procs_chunk, refs);

    /* The user's kernel, declared by a signature. */
    kp_buffer_desc bufs[] = {{KP_ELEM_F64, KP_ACCESS_WRITE, KP_LEN_ITEMS, 1}};
    uint32_t parts[] = {KP_REDUCE_SUM_I64, KP_REDUCE_MAX_F64, KP_REDUCE_SUM_F64};
    kp_signature_desc desc = {"square", bufs, 1, parts, 3, 0};
    kp_signature *sig = NULL, *parsed = NULL;
    OK(kp_signature_new(&desc, &sig));
    char spec[256];
    size_t spec_len = 0;
    OK(kp_signature_spec(sig, spec, sizeof spec, &spec_len));
    check_true(strcmp(spec, "out f64[items], sum i64, max f64, sum f64") == 0, "the signature's spec");
    OK(kp_signature_parse("square", spec, &parsed));

    kp_kernel *from_fn = NULL, *from_lib = NULL, *crash = NULL, *hang = NULL, *refuse = NULL;
    OK(kp_kernel_from_fn(kp_test_square, sig, &from_fn));
    OK(kp_kernel_from_library(so, "kp_test_square", parsed, &from_lib));
    OK(kp_kernel_from_library(so, "kp_test_crash", sig, &crash));
    OK(kp_kernel_from_library(so, "kp_test_hang", sig, &hang));
    OK(kp_kernel_from_library(so, "kp_test_refuse", sig, &refuse));

    /* The serial reference, over the caller's own (malloc'd) memory. */
    kp_step_args args = {0};
    args.n = ITEMS;
    args.items = ITEMS;
    args.fparam[0] = 0.5;
    double *mine = malloc(ITEMS * sizeof(double) + 8);
    double *odd = mine + 1; /* not 64-byte aligned: copied in and out */
    kp_mem m = {KP_ELEM_F64, odd, ITEMS};
    OK(kp_step_run_mem(serial, from_fn, &args, &m, 1, want_partial, KP_PARTIAL_LEN));
    memcpy(want_out, odd, sizeof want_out);
    check_true(want_partial[0] == ITEMS * (ITEMS + 1) / 2, "sum of x");
    check_true(kp_slot_f64(want_partial[1]) == 0.5 * ITEMS * ITEMS, "max of the outputs");
    check_true(want_out[9] == 50.0, "out[9] = 0.5 * 10^2");

    /* Threads over caller memory, aligned (used in place) and not (copied). */
    double *aligned = aligned_alloc(64, ITEMS * sizeof(double));
    kp_mem am = {KP_ELEM_F64, aligned, ITEMS};
    int64_t p[KP_PARTIAL_LEN] = {0};
    memset(odd, 0, ITEMS * sizeof(double));
    OK(kp_step_run_mem(threads, from_fn, &args, &m, 1, p, KP_PARTIAL_LEN));
    check_true(memcmp(odd, want_out, sizeof want_out) == 0 && p[0] == want_partial[0] && p[1] == want_partial[1], "fn kernel on threads, caller memory copied");
    OK(kp_step_run_mem(threads, from_lib, &args, &am, 1, p, KP_PARTIAL_LEN));
    check_true(memcmp(aligned, want_out, sizeof want_out) == 0 && p[0] == want_partial[0], "library kernel on threads, caller memory in place");

    /* Shared buffers on every executor; the float sum is the same for every executor and
     * worker count at one chunk size (10 items here). */
    square_step(serial, from_fn, "fn kernel on serial");
    int64_t f1 = square_step(threads1, from_fn, "fn kernel on threads(1, chunk 10)");
    int64_t f2 = square_step(threads1, from_lib, "library kernel on threads(1, chunk 10)");
    int64_t f3 = procs_ok ? square_step(procs_chunk, from_lib, "library kernel on processes(2, chunk 10)") : f2;
    square_step(serial, from_lib, "library kernel on serial");
    square_step(threads, from_lib, "library kernel on threads(2)");
    if (procs_ok) square_step(procs, from_lib, "library kernel on processes(2)");
    check_true(f1 == f2 && f2 == f3, "float sum: same bits at chunk 10 on threads and processes");

    /* Bad inputs: each one's status and message; the process goes on. */
    kp_executor *e = NULL;
    kp_buffer *b = NULL, *ib = NULL, *small = NULL, *two[2];
    kp_kernel *k = NULL;
    kp_signature *s = NULL;
    size_t written = 0, len = 0;
    void *data = NULL;
    OK(kp_buffer_new(KP_ELEM_F64, ITEMS, &b));
    OK(kp_buffer_new(KP_ELEM_I64, ITEMS, &ib));
    OK(kp_buffer_new(KP_ELEM_F64, 5, &small));
    EXPECT(kp_serial_new(NULL), KP_NULL_ARGUMENT, "out is NULL");
    EXPECT(kp_threads_new(2, 0, NULL), KP_NULL_ARGUMENT, "out is NULL");
    EXPECT(kp_program_run(NULL, KP_KERNEL_PI, KP_LANG_C, 0, 1, out, sizeof out, &written), KP_NULL_ARGUMENT, "exec is NULL");
    EXPECT(kp_program_run(serial, 99, KP_LANG_C, 0, 1, out, sizeof out, &written), KP_UNKNOWN_KERNEL, "unknown kernel value 99");
    EXPECT(kp_program_run(serial, KP_KERNEL_PI, 42, 0, 1, out, sizeof out, &written), KP_UNKNOWN_LANG, "unknown language value 42");
    EXPECT(kp_program_run(serial, KP_KERNEL_FANNKUCH, KP_LANG_C, 13, 1, out, sizeof out, &written), KP_INVALID_SIZE, "fannkuch supports N up to 12");
    EXPECT(kp_program_run(serial, KP_KERNEL_PI, KP_LANG_C, 0, 1, NULL, 16, &written), KP_NULL_ARGUMENT, "out is NULL");
    EXPECT(kp_program_run(serial, KP_KERNEL_PI, KP_LANG_C, 0, 1, out, sizeof out, NULL), KP_NULL_ARGUMENT, "out_written is NULL");
    written = 0;
    EXPECT(kp_program_run(serial, KP_KERNEL_MANDELBROT, KP_LANG_C, 200, 1, out, 4, &written), KP_BUFFER_TOO_SMALL, "needs 5011 bytes");
    check_true(written == 5011, "KP_BUFFER_TOO_SMALL tells the length needed");
    EXPECT(kp_run_program("spectralnorm", "cobol", 100, out, sizeof out, &written), KP_INVALID_ARGUMENT, "cobol");
    EXPECT(kp_kernel_by_name("cobol", &id), KP_UNKNOWN_KERNEL, "unknown kernel `cobol`");
    EXPECT(kp_lang_by_name("cobol", &id), KP_UNKNOWN_LANG, "unknown language `cobol`");
    EXPECT(kp_kernel_by_name(NULL, &id), KP_NULL_ARGUMENT, "name is NULL");
    EXPECT(kp_kernel_builtin(8, KP_LANG_C, &k), KP_UNKNOWN_KERNEL, "unknown kernel value 8");
    EXPECT(kp_kernel_builtin(KP_KERNEL_PI, 4, &k), KP_UNKNOWN_LANG, "unknown language value 4");
    EXPECT(kp_kernel_builtin_variant(KP_KERNEL_PI, KP_LANG_C, 9, &k), KP_UNKNOWN_VARIANT, "unknown variant value 9");
    EXPECT(kp_kernel_builtin_variant(KP_KERNEL_TRIAD, KP_LANG_FORTRAN, KP_VARIANT_TUNED, &k), KP_NO_VARIANT, "has no tuned variant in fortran");
    EXPECT(kp_program_run_variant(serial, KP_KERNEL_SEED, KP_LANG_C, KP_VARIANT_TUNED, 3, 1, out, sizeof out, &written), KP_NO_VARIANT, "has no tuned variant");
    check_true(strcmp(kp_variant_name(KP_VARIANT_TUNED), "tuned") == 0 && kp_variant_name(2) == NULL, "kp_variant_name");
    EXPECT(kp_buffer_new(KP_ELEM_F64, 4, NULL), KP_NULL_ARGUMENT, "out is NULL");
    kp_buffer *nb = NULL;
    EXPECT(kp_buffer_new(KP_ELEM_F64, 0, &nb), KP_INVALID_ARGUMENT, "len is 0");
    EXPECT(kp_buffer_new(77, 4, &nb), KP_INVALID_ARGUMENT, "unknown element type 77");
    EXPECT(kp_buffer_new(KP_ELEM_F64, SIZE_MAX / 8, &nb), KP_OUT_OF_MEMORY, "available now");
    EXPECT(kp_buffer_data(NULL, &data, &len), KP_NULL_ARGUMENT, "buf is NULL");
    EXPECT(kp_buffer_data(b, NULL, &len), KP_NULL_ARGUMENT, "out_data is NULL");
    EXPECT(kp_step_run(serial, NULL, &args, &b, 1, p, KP_PARTIAL_LEN), KP_NULL_ARGUMENT, "kernel is NULL");
    EXPECT(kp_step_run(NULL, from_fn, &args, &b, 1, p, KP_PARTIAL_LEN), KP_NULL_ARGUMENT, "exec is NULL");
    EXPECT(kp_step_run(serial, from_fn, NULL, &b, 1, p, KP_PARTIAL_LEN), KP_NULL_ARGUMENT, "args is NULL");
    EXPECT(kp_step_run(serial, from_fn, &args, NULL, 1, p, KP_PARTIAL_LEN), KP_NULL_ARGUMENT, "bufs is NULL");
    kp_buffer *null_buf = NULL;
    EXPECT(kp_step_run(serial, from_fn, &args, &null_buf, 1, p, KP_PARTIAL_LEN), KP_NULL_ARGUMENT, "bufs[0] is NULL");
    EXPECT(kp_step_run(serial, from_fn, &args, NULL, 0, p, KP_PARTIAL_LEN), KP_BAD_BUFFERS, "expected 1 buffers, got 0");
    two[0] = b;
    two[1] = ib;
    EXPECT(kp_step_run(serial, from_fn, &args, two, 2, p, KP_PARTIAL_LEN), KP_BAD_BUFFERS, "expected 1 buffers, got 2");
    EXPECT(kp_step_run(serial, from_fn, &args, &ib, 1, p, KP_PARTIAL_LEN), KP_BAD_BUFFERS, "needs at least 1000 x F64");
    EXPECT(kp_step_run(serial, from_fn, &args, &small, 1, p, KP_PARTIAL_LEN), KP_BAD_BUFFERS, "buffer 0 is 5 x F64, needs at least 1000");
    two[1] = b;
    EXPECT(kp_step_run(serial, from_fn, &args, two, 2, p, KP_PARTIAL_LEN), KP_INVALID_ARGUMENT, "bufs[0] and bufs[1] are the same buffer");
    EXPECT(kp_step_run(serial, from_fn, &args, &b, 1, p, 1), KP_INVALID_ARGUMENT, "has 3 partial slots, partial_len is 1");
    EXPECT(kp_step_run(serial, from_fn, &args, &b, 1, NULL, 3), KP_NULL_ARGUMENT, "partial is NULL");
    kp_mem bad_mem = {KP_ELEM_F64, NULL, ITEMS};
    EXPECT(kp_step_run_mem(serial, from_fn, &args, &bad_mem, 1, p, KP_PARTIAL_LEN), KP_NULL_ARGUMENT, "data is NULL");
    bad_mem.data = aligned;
    bad_mem.len = 0;
    EXPECT(kp_step_run_mem(serial, from_fn, &args, &bad_mem, 1, p, KP_PARTIAL_LEN), KP_INVALID_ARGUMENT, "len is 0");
    bad_mem.len = ITEMS;
    bad_mem.elem = 5;
    EXPECT(kp_step_run_mem(serial, from_fn, &args, &bad_mem, 1, p, KP_PARTIAL_LEN), KP_INVALID_ARGUMENT, "unknown element type 5");
    bad_mem.elem = KP_ELEM_I64;
    EXPECT(kp_step_run_mem(serial, from_fn, &args, &bad_mem, 1, p, KP_PARTIAL_LEN), KP_BAD_BUFFERS, "needs at least 1000 x F64");
    bad_mem.elem = KP_ELEM_F64;
    bad_mem.len = 10;
    EXPECT(kp_step_run_mem(threads, from_fn, &args, &bad_mem, 1, p, KP_PARTIAL_LEN), KP_BAD_BUFFERS, "buffer 0 is 10 x F64, needs at least 1000");
    bad_mem.data = (char *)aligned + 4;
    EXPECT(kp_step_run_mem(threads, from_fn, &args, &bad_mem, 1, p, KP_PARTIAL_LEN), KP_INVALID_ARGUMENT, "not aligned to its 8-byte elements");
    if (procs_ok) {
        EXPECT(kp_step_run_mem(procs, from_lib, &args, &am, 1, p, KP_PARTIAL_LEN), KP_NOT_SUPPORTED, "kp_buffer_new");
        EXPECT(kp_step_run(procs, from_fn, &args, &b, 1, p, KP_PARTIAL_LEN), KP_NOT_SUPPORTED, "kp_kernel_from_library");
    }
    kp_buffer_desc five[5] = {{KP_ELEM_F64, KP_ACCESS_READ, KP_LEN_ITEMS, 1}, {KP_ELEM_F64, KP_ACCESS_READ, KP_LEN_ITEMS, 1}, {KP_ELEM_F64, KP_ACCESS_READ, KP_LEN_ITEMS, 1}, {KP_ELEM_F64, KP_ACCESS_READ, KP_LEN_ITEMS, 1}, {KP_ELEM_F64, KP_ACCESS_READ, KP_LEN_ITEMS, 1}};
    kp_signature_desc bad = {"five", five, 5, NULL, 0, 0};
    EXPECT(kp_signature_new(&bad, &s), KP_INVALID_SIGNATURE, "more than the 4");
    bad.buffer_count = 1;
    five[0].elem = 9;
    EXPECT(kp_signature_new(&bad, &s), KP_INVALID_ARGUMENT, "buffer 0: unknown element type 9");
    five[0].elem = KP_ELEM_F64;
    five[0].access = 7;
    EXPECT(kp_signature_new(&bad, &s), KP_INVALID_ARGUMENT, "buffer 0: unknown access 7");
    five[0].access = KP_ACCESS_READ;
    uint32_t bad_part = 9;
    bad.partials = &bad_part;
    bad.partial_count = 1;
    EXPECT(kp_signature_new(&bad, &s), KP_INVALID_ARGUMENT, "partial slot 0: unknown reduction 9");
    bad.partials = NULL;
    EXPECT(kp_signature_new(&bad, &s), KP_NULL_ARGUMENT, "desc->partials is NULL");
    bad.name = "";
    bad.partial_count = 0;
    EXPECT(kp_signature_new(&bad, &s), KP_INVALID_SIGNATURE, "the name is empty");
    EXPECT(kp_signature_new(NULL, &s), KP_NULL_ARGUMENT, "desc is NULL");
    EXPECT(kp_signature_parse("k", "out f32[items]", &s), KP_INVALID_SIGNATURE, "types are i64, f64, u8");
    EXPECT(kp_kernel_from_library("/nonexistent/libnope.so", "kp_test_square", sig, &k), KP_LOAD_FAILED, "No such file");
    EXPECT(kp_kernel_from_library(so, "no_such_kernel", sig, &k), KP_LOAD_FAILED, "undefined symbol: no_such_kernel");
    EXPECT(kp_kernel_from_library(so, "kp_test_square", NULL, &k), KP_NULL_ARGUMENT, "sig is NULL");
    EXPECT(kp_kernel_from_fn(NULL, sig, &k), KP_NULL_ARGUMENT, "f is NULL");
    EXPECT(kp_step_run(serial, refuse, &args, &b, 1, p, KP_PARTIAL_LEN), KP_KERNEL_FAILED, "failed with status -1 on items 0..1000");
    if (procs_ok) EXPECT(kp_step_run(procs_chunk, refuse, &args, &b, 1, p, KP_PARTIAL_LEN), KP_KERNEL_FAILED, "failed with status -1 on items 0..10");
    kp_kernel *pi = NULL;
    OK(kp_kernel_builtin(KP_KERNEL_PI, KP_LANG_C, &pi));
    kp_step_args many = {0};
    many.n = 1ull << 30;
    many.items = 1ull << 30;
    EXPECT(kp_step_run(threads1, pi, &many, NULL, 0, p, KP_PARTIAL_LEN), KP_INVALID_SIZE, "use a larger chunk");
    EXPECT(kp_processes_builder_workers(NULL, 2), KP_NULL_ARGUMENT, "builder is NULL");
    OK(kp_processes_builder_workers(pb, 0));
    EXPECT(kp_processes_builder_build(pb, &e), KP_INVALID_ARGUMENT, "at least 1 worker");
    OK(kp_processes_builder_workers(pb, 1));
    OK(kp_processes_builder_task_timeout_ms(pb, 0));
    EXPECT(kp_processes_builder_build(pb, &e), KP_INVALID_ARGUMENT, "longer than 0");
    OK(kp_processes_builder_task_timeout_ms(pb, 300));
    OK(kp_processes_builder_worker_program(pb, "/nonexistent/kpool-worker"));
    if (procs_ok) EXPECT(kp_processes_builder_build(pb, &e), KP_EXECUTOR_FAILED, "/nonexistent/kpool-worker");
    kp_processes_builder_free(pb);
    if (procs_ok) {

    /* A kernel that segfaults in a worker, one that hangs past the task timeout: their
     * statuses, then the same pools run the next step. */
    args.iparam[0] = 500; /* the item that crashes or hangs */
    EXPECT(kp_step_run(procs_chunk, crash, &args, &b, 1, p, KP_PARTIAL_LEN), KP_WORKER_CRASHED, "task 50, kernel square (c) on items 500..510: worker process");
    expect("the crash names the signal", KP_WORKER_CRASHED, KP_WORKER_CRASHED, "was killed by signal 11 (SIGSEGV)");
    square_step(procs_chunk, from_lib, "processes after a crash");
    kp_processes_builder *tb = NULL;
    OK(kp_processes_builder_new(&tb));
    OK(kp_processes_builder_workers(tb, 2));
    OK(kp_processes_builder_chunk(tb, 100));
    OK(kp_processes_builder_task_timeout_ms(tb, 300));
    OK(kp_processes_builder_build(tb, &e));
    kp_processes_builder_free(tb);
    EXPECT(kp_step_run(e, hang, &args, &b, 1, p, KP_PARTIAL_LEN), KP_TIMED_OUT, "task 5, kernel square (c) on items 500..600 timed out after 300ms");
    square_step(e, from_lib, "processes after a timeout");
    kp_executor_free(e);
    }

    /* JIT kernels from C: compiled from source text, cached, run on every executor. */
    if (jit_ok) {
        kp_signature *jit_sig = NULL;
        kp_kernel *jit_k = NULL, *jit_f = NULL;
        OK(kp_signature_parse("jit_square", "out f64[items]", &jit_sig));
        OK(kp_jit_kernel_source(jit_square_src, KP_LANG_C, "jit_square", jit_sig, &jit_k));
        jit_square_step(serial, jit_k, "jit kernel on serial");
        jit_square_step(threads, jit_k, "jit kernel on threads(2)");
        if (procs_ok) jit_square_step(procs_chunk, jit_k, "jit kernel on processes(2, chunk 10)");
        OK(kp_jit_element_source(jit_f_src, KP_LANG_C, "f", KP_ELEM_I64, &jit_f));
        jit_map(serial, jit_f, "jit f mapped on serial");
        if (procs_ok) jit_map(procs, jit_f, "jit f mapped on processes(2)");
        EXPECT(kp_jit_kernel_source("int32_t broken(", KP_LANG_C, "broken", jit_sig, &k), KP_COMPILE_FAILED, "error");
        EXPECT(kp_jit_kernel_source(jit_square_src, KP_LANG_C, "no_such_kernel", jit_sig, &k), KP_LOAD_FAILED, "no_such_kernel");
        EXPECT(kp_jit_kernel_source(jit_square_src, 42, "jit_square", jit_sig, &k), KP_UNKNOWN_LANG, "unknown language value 42");
        EXPECT(kp_jit_kernel_source(jit_square_src, KP_LANG_RUST, "jit_square", jit_sig, &k), KP_NOT_SUPPORTED, "not Rust");
        EXPECT(kp_jit_kernel_source(NULL, KP_LANG_C, "jit_square", jit_sig, &k), KP_NULL_ARGUMENT, "source_text is NULL");
        EXPECT(kp_jit_kernel_source(jit_square_src, KP_LANG_C, "jit_square", NULL, &k), KP_NULL_ARGUMENT, "sig is NULL");
        EXPECT(kp_jit_kernel_file("/nonexistent/kernel.c", "k", jit_sig, &k), KP_LOAD_FAILED, "/nonexistent/kernel.c");
        EXPECT(kp_jit_element_source(jit_f_src, KP_LANG_C, "f", KP_ELEM_U8, &k), KP_INVALID_ARGUMENT, "KP_ELEM_I64 or KP_ELEM_F64");
        EXPECT(kp_jit_element_source(jit_f_src, KP_LANG_C, "f", KP_ELEM_F64, &k), KP_COMPILE_FAILED, NULL);
        kp_kernel_free(jit_k);
        kp_kernel_free(jit_f);
        kp_signature_free(jit_sig);
    }

    /* A buffer in use by one call is refused to another (KP_BUSY), and free again after. */
    kp_kernel *reentrant = NULL;
    OK(kp_kernel_from_fn(reenter, sig, &reentrant));
    busy_exec = serial;
    busy_inner = from_fn;
    OK(kp_buffer_new(KP_ELEM_F64, ITEMS, &busy_buf));
    OK(kp_step_run(serial, reentrant, &args, &busy_buf, 1, p, KP_PARTIAL_LEN));
    expect("kp_step_run(serial, from_fn, ..., &busy_buf, ...) inside a call holding busy_buf", busy_status, KP_BUSY, NULL);
    checks++;
    if (!strstr(busy_msg, "buffer 0 is in use by another call")) failed("KP_BUSY message", busy_msg);
    OK(kp_step_run(serial, from_fn, &args, &busy_buf, 1, p, KP_PARTIAL_LEN));
    kp_buffer_free(busy_buf);
    kp_kernel_free(reentrant);

    /* The message call reports the length and never clobbers the message. */
    char msg[64];
    size_t mlen = 0, mlen2 = 0;
    EXPECT(kp_kernel_by_name("cobol", &id), KP_UNKNOWN_KERNEL, "cobol");
    check_true(kp_last_error_message(NULL, 0, &mlen) == KP_BUFFER_TOO_SMALL && mlen > 0, "NULL buffer: the length");
    check_true(kp_last_error_message(msg, 4, &mlen2) == KP_BUFFER_TOO_SMALL && mlen2 == mlen, "small buffer: the length");
    OK(kp_serial_new(&e));
    kp_executor_free(e);
    static char full[1024];
    check_true(kp_last_error_message(full, sizeof full, &mlen2) == KP_OK && mlen2 == mlen && strstr(full, "cobol"), "still the same message after a success");
    check_true(strncmp(kp_status_str(KP_TIMED_OUT), "KP_TIMED_OUT", 12) == 0, "kp_status_str");
    check_true(strcmp(kp_status_str(1000), "unknown kp_status value") == 0, "kp_status_str of an unknown value");
    check_true(kp_kernel_name(99) == NULL && kp_lang_name(99) == NULL, "names of unknown values are NULL");

    /* _free(NULL) does nothing. */
    kp_executor_free(NULL);
    kp_processes_builder_free(NULL);
    kp_signature_free(NULL);
    kp_kernel_free(NULL);
    kp_buffer_free(NULL);

    kp_buffer_free(b);
    kp_buffer_free(ib);
    kp_buffer_free(small);
    kp_kernel_free(pi);
    kp_kernel_free(from_fn);
    kp_kernel_free(from_lib);
    kp_kernel_free(crash);
    kp_kernel_free(hang);
    kp_kernel_free(refuse);
    kp_signature_free(sig);
    kp_signature_free(parsed);
    kp_executor_free(serial);
    kp_executor_free(threads);
    kp_executor_free(threads1);
    kp_executor_free(procs);
    kp_executor_free(procs_chunk);
    free(mine);
    free(aligned);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
