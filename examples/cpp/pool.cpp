// kernelpool from C++: RAII handles, exceptions, a kernel of one's own on threads and a
// built-in one on a process pool.
#include <kernelpool.hpp>

#include <cstdio>
#include <iostream>
#include <vector>

// out[i] = 2 * x for x = i + 1, and the sum of x (an exact partial); throws on request.
static int32_t twice(const kp_kargs &args, uint64_t begin, uint64_t end) {
    if (args.iparam[0] != 0) throw std::runtime_error("asked to throw");
    auto *out = static_cast<double *>(args.buf[0]);
    for (uint64_t i = begin; i < end; i++) {
        out[i] = 2.0 * double(i + 1);
        args.partial[0] += int64_t(i + 1);
    }
    return KP_KERNEL_OK;
}

int main(int argc, char **argv) {
    kernelpool::init(argc, argv);  // in a worker process: serves the pool, never returns
    try {
        auto pool = kernelpool::executor::processes(2);
        std::cout << kernelpool::program(pool, KP_KERNEL_NBODY, KP_LANG_CPP, 1000);

        auto threads = kernelpool::executor::threads(2);
        auto sig = kernelpool::signature::parse("twice", "out f64[items], sum i64");
        auto k = kernelpool::kernel::from_fn(kernelpool::guarded<twice>, sig);
        std::vector<double> out(100);
        kp_step_args args{};
        args.n = args.items = out.size();
        auto p = kernelpool::run_mem(threads, k, args, {kernelpool::mem(out)});
        std::cout << "out[99] " << out[99] << " sum " << p[0] << "\n";

        args.iparam[0] = 1;  // the kernel throws: the guard turns it into a status
        kernelpool::run_mem(threads, k, args, {kernelpool::mem(out)});
    } catch (const kernelpool::error &e) {
        std::cout << "error " << e.status() << ": " << e.what() << "\n";
        return e.status() == KP_KERNEL_FAILED ? 0 : 1;
    }
    return 1;
}
