// The C++ wrapper (kernelpool.hpp): RAII handles, exceptions with status and message,
// pointer+length and (C++20) std::span overloads, on every executor. Run by
// tests/c_abi.rs as: abi-cpp REFERENCE_OUTPUTS_DIR LIBUSERKERNELS_SO
#include <kernelpool.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

static int failures = 0;

static void check_true(bool ok, const std::string &what) {
    if (!ok) {
        failures++;
        std::cout << "FAIL " << what << "\n";
    }
}

// A kernel that throws for item 3: `guarded` turns it into KP_KERNEL_EXCEPTION.
static int32_t cube(const kp_kargs &args, uint64_t begin, uint64_t end) {
    auto *out = static_cast<double *>(args.buf[0]);
    for (uint64_t i = begin; i < end; i++) {
        if (args.iparam[0] != 0 && i == 3) throw std::logic_error("item 3");
        double x = double(i + 1);
        out[i] = x * x * x;
    }
    return KP_KERNEL_OK;
}

static std::string slurp(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// The status and message of what `f` throws.
template <class F> static void expect_error(F f, kp_status want, const std::string &needle, const std::string &what) {
    try {
        f();
        check_true(false, what + ": no exception");
    } catch (const kernelpool::error &e) {
        check_true(e.status() == want, what + ": status " + std::to_string(e.status()) + " " + e.what());
        check_true(std::string(e.what()).find(needle) != std::string::npos, what + ": message " + e.what());
        std::cout << "bad input: " << what << " -> " << e.status() << ": " << e.what() << "\n";
    }
}

int main(int argc, char **argv) {
    kernelpool::init(argc, argv);
    if (argc < 3) return 2;
    std::string refs = argv[1], so = argv[2];
    static_assert(!std::is_copy_constructible<kernelpool::executor>::value, "handles are move-only");
    static_assert(std::is_nothrow_move_constructible<kernelpool::buffer>::value, "handles move");

    std::vector<kernelpool::executor> execs;
    execs.push_back(kernelpool::executor::serial());
    execs.push_back(kernelpool::executor::threads(2, 7));
    execs.push_back(kernelpool::processes_builder().workers(2).chunk(7).build());
    execs.push_back(kernelpool::processes_builder().workers(2).caller_runs_chunks(false).build());
    kernelpool::executor moved = std::move(execs.back());
    execs.back() = std::move(moved);
    check_true(execs[2].describe() == "processes(2, chunk 7)", "describe: " + execs[2].describe());

    std::string mandel = slurp(refs + "/mandelbrot-200.pbm");
    for (auto &e : execs)
        for (uint32_t lang = 0; lang < kp_lang_count(); lang++)
            check_true(kernelpool::program(e, KP_KERNEL_MANDELBROT, lang, 200) == mandel,
                       "mandelbrot on " + e.describe());
    check_true(kernelpool::program(execs[2], KP_KERNEL_FANNKUCH, KP_LANG_RUST, 7) == slurp(refs + "/fannkuchredux-7.out"),
               "fannkuch on processes");

    // A function of this program (serial and threads) and the shared object's (all three).
    kernelpool::signature fn_sig("cube", {{KP_ELEM_F64, KP_ACCESS_WRITE, KP_LEN_ITEMS, 1}});
    check_true(fn_sig.spec() == "out f64[items]", "spec " + fn_sig.spec());
    auto cube_k = kernelpool::kernel::from_fn(kernelpool::guarded<cube>, fn_sig);
    kp_step_args args{};
    args.n = args.items = 10;
    std::vector<double> mine(10);
    for (size_t i = 0; i < 2; i++) {
        std::fill(mine.begin(), mine.end(), 0.0);
        kernelpool::run_mem(execs[i], cube_k, args, {kernelpool::mem(mine)});
        check_true(mine[9] == 1000.0, "cube on " + execs[i].describe());
    }
#ifdef KERNELPOOL_HAS_SPAN
    std::span<double> view(mine);
    kp_mem m = kernelpool::mem(view);
    kernelpool::run_mem(execs[1], cube_k, args, std::span<const kp_mem>(&m, 1));
    check_true(mine[2] == 27.0, "std::span overload");
#endif
    auto sq_sig = kernelpool::signature::parse("square", "out f64[items], sum i64, max f64, sum f64");
    auto square = kernelpool::kernel::from_library(so, "kp_test_square", sq_sig);
    args.n = args.items = 100;
    args.fparam[0] = 1.0;
    std::vector<double> want;
    kernelpool::partial want_p{};
    for (auto &e : execs) {
        kernelpool::buffer out(KP_ELEM_F64, 100);
        kernelpool::partial p = kernelpool::run(e, square, args, {&out});
        std::vector<double> got(out.data<double>(), out.data<double>() + out.size());
        if (want.empty()) {
            want = got;
            want_p = p;
        }
        check_true(got == want && p[0] == want_p[0] && p[1] == want_p[1], "square on " + e.describe());
        check_true(p[0] == 5050 && kp_slot_f64(p[1]) == 10000.0, "square's partial on " + e.describe());
    }

    // A JIT element function from C++: the course's Pool.map(f, [1, 2, 3]) on processes.
    auto f = kernelpool::kernel::jit_element_source(
        "#include <stdint.h>\nint64_t f(int64_t x) { return 10000000 * x * x; }\n", KP_LANG_C, "f", KP_ELEM_I64);
    kernelpool::buffer xs(KP_ELEM_I64, 3), ys(KP_ELEM_I64, 3);
    for (int i = 0; i < 3; i++) xs.data<int64_t>()[i] = i + 1;
    kp_step_args margs{};
    margs.n = margs.items = 3;
    kernelpool::run(execs[2], f, margs, {&xs, &ys});
    check_true(ys.data<int64_t>()[0] == 10000000 && ys.data<int64_t>()[1] == 40000000 &&
                   ys.data<int64_t>()[2] == 90000000,
               "jit f mapped on processes");

    // Errors are exceptions with the status and the message.
    expect_error([&] { kernelpool::kernel::jit_source("int32_t broken(", KP_LANG_C, "broken", sq_sig); },
                 KP_COMPILE_FAILED, "error", "jit of a broken source");
    kernelpool::buffer small(KP_ELEM_F64, 3);
    args.iparam[0] = 1;
    args.n = args.items = 10;
    expect_error([&] { kernelpool::run_mem(execs[1], cube_k, args, {kernelpool::mem(mine)}); }, KP_KERNEL_FAILED,
                 "failed with status -2", "a C++ kernel that throws");
    expect_error([&] { kernelpool::kernel::builtin(99, KP_LANG_C); }, KP_UNKNOWN_KERNEL, "unknown kernel value 99",
                 "kernel::builtin(99)");
    expect_error([&] { kernelpool::signature::parse("k", "avg i64"); }, KP_INVALID_SIGNATURE, "avg i64",
                 "signature::parse(\"avg i64\")");
    expect_error([&] { kernelpool::kernel::from_library("/nonexistent.so", "f", sq_sig); }, KP_LOAD_FAILED,
                 "/nonexistent.so", "kernel::from_library(\"/nonexistent.so\")");
    expect_error([&] { kernelpool::buffer(KP_ELEM_U8, 0); }, KP_INVALID_ARGUMENT, "len is 0", "buffer(u8, 0)");
    expect_error([&] { kernelpool::run(execs[2], cube_k, args, {nullptr}); }, KP_NULL_ARGUMENT, "bufs[0] is NULL",
                 "run with a null buffer");
    expect_error([&] { kernelpool::run(execs[2], square, args, {&small}); }, KP_BAD_BUFFERS, "needs at least 10",
                 "run with a short buffer");
    expect_error([&] { kernelpool::run_mem(execs[2], square, args, {kernelpool::mem(mine)}); }, KP_NOT_SUPPORTED,
                 "kp_buffer_new", "caller memory on processes");
    kernelpool::buffer ten(KP_ELEM_F64, 10);
    expect_error([&] { kernelpool::run(execs[2], cube_k, args, {&ten}); }, KP_NOT_SUPPORTED,
                 "kp_kernel_from_library", "a function-pointer kernel on processes");
    expect_error([&] { kernelpool::processes_builder().workers(0).build(); }, KP_INVALID_ARGUMENT, "at least 1 worker",
                 "processes_builder().workers(0)");

    if (failures == 0) std::cout << "C++: all checks passed\n";
    return failures == 0 ? 0 : 1;
}
