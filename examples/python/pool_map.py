"""The course's `with mp.Pool() as p: print(p.map(f, [1, 2, 3]))` over kernelpool's C ABI
with ctypes: the `seed` kernel (f(x) = a 10,000,000-trip loop of j += x*x) on the process
executor, whose workers are the generic `kpool-worker` (Python cannot call kp_init at the
top of its own main). Then a native kernel (Fortran n-body) writes into a buffer that
Python reads.

    KERNELPOOL_LIB=/prefix/lib/libkernelpool.so python3 pool_map.py

The worker is found beside the library (../libexec/kernelpool/kpool-worker), or named by
KERNELPOOL_WORKER.
"""
import ctypes as C
import os

lib = C.CDLL(os.environ.get("KERNELPOOL_LIB", "libkernelpool.so.0"))
P = C.c_void_p
lib.kp_status_str.restype = C.c_char_p
for name, args in {
    "kp_processes_builder_new": [C.POINTER(P)],
    "kp_processes_builder_worker_program": [P, C.c_char_p],
    "kp_processes_builder_build": [P, C.POINTER(P)],
    "kp_processes_builder_free": [P],
    "kp_executor_free": [P],
    "kp_kernel_builtin": [C.c_uint32, C.c_uint32, C.POINTER(P)],
    "kp_kernel_by_name": [C.c_char_p, C.POINTER(C.c_uint32)],
    "kp_lang_by_name": [C.c_char_p, C.POINTER(C.c_uint32)],
    "kp_kernel_free": [P],
    "kp_buffer_new": [C.c_uint32, C.c_size_t, C.POINTER(P)],
    "kp_buffer_data": [P, C.POINTER(P), C.POINTER(C.c_size_t)],
    "kp_buffer_free": [P],
    "kp_step_run": [P, P, P, C.POINTER(P), C.c_size_t, C.POINTER(C.c_int64), C.c_size_t],
    "kp_last_error_message": [C.c_char_p, C.c_size_t, C.POINTER(C.c_size_t)],
}.items():
    getattr(lib, name).argtypes = args
KP_ELEM_I64, KP_ELEM_F64 = 0, 1


class StepArgs(C.Structure):
    _fields_ = [("n", C.c_uint64), ("items", C.c_uint64),
                ("iparam", C.c_int64 * 4), ("fparam", C.c_double * 4)]


def check(status):
    if status != 0:
        buf = C.create_string_buffer(4096)
        lib.kp_last_error_message(buf, len(buf), None)
        raise RuntimeError(f"{lib.kp_status_str(status).decode()}: {buf.value.decode()}")


def kernel(name, lang="c"):
    k, l, out = C.c_uint32(), C.c_uint32(), P()
    check(lib.kp_kernel_by_name(name.encode(), C.byref(k)))
    check(lib.kp_lang_by_name(lang.encode(), C.byref(l)))
    check(lib.kp_kernel_builtin(k, l, C.byref(out)))
    return out


class Buffer:
    def __init__(self, elem, n):
        self.h = P()
        check(lib.kp_buffer_new(elem, n, C.byref(self.h)))

    def values(self, ctype):
        data, n = P(), C.c_size_t()
        check(lib.kp_buffer_data(self.h, C.byref(data), C.byref(n)))
        return list(C.cast(data, C.POINTER(ctype))[: n.value])

    def free(self):
        lib.kp_buffer_free(self.h)


class Pool:
    """A process pool, as multiprocessing.Pool."""

    def __enter__(self):
        b, self.h = P(), P()
        check(lib.kp_processes_builder_new(C.byref(b)))
        try:
            check(lib.kp_processes_builder_worker_program(b, os.environ.get("KERNELPOOL_WORKER", "").encode() or None))
            check(lib.kp_processes_builder_build(b, C.byref(self.h)))
        finally:
            lib.kp_processes_builder_free(b)
        return self

    def __exit__(self, *exc):
        lib.kp_executor_free(self.h)

    def step(self, k, args, bufs, partial_len=0):
        arr = (P * len(bufs))(*[b.h for b in bufs])
        partial = (C.c_int64 * 4)()
        check(lib.kp_step_run(self.h, k, C.byref(args), arr, len(bufs), partial, partial_len))
        return list(partial)

    def map(self, k, xs):
        """f(x) for x in xs: the seed kernel computes f(i + 1) for item i."""
        assert list(xs) == list(range(1, len(xs) + 1)), "seed's arguments are 1..N"
        out = Buffer(KP_ELEM_I64, len(xs))
        args = StepArgs(n=len(xs), items=len(xs))
        args.iparam[0] = 10_000_000  # the course's loop count
        self.step(k, args, [out])
        try:
            return out.values(C.c_int64)
        finally:
            out.free()


seed = kernel("seed")
with Pool() as p:
    print(p.map(seed, [1, 2, 3]))

    # A native kernel writes into a buffer Python then reads: Fortran n-body, 1000 steps,
    # energies before and after (the Benchmarks Game's -0.169075164, -0.169087605).
    nbody = kernel("nbody", "fortran")
    energies = Buffer(KP_ELEM_F64, 2)
    args = StepArgs(n=1000, items=1)
    args.iparam[0] = 1000
    p.step(nbody, args, [energies])
    print(" ".join(f"{e:.9f}" for e in energies.values(C.c_double)))
    energies.free()
    lib.kp_kernel_free(nbody)
lib.kp_kernel_free(seed)
