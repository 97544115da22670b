// kernelpool.hpp: a header-only C++ wrapper over the C ABI of kernelpool.h (C++17; the
// std::span overloads need C++20). Handles are move-only RAII objects that free what they
// own; every failure throws kernelpool::error, carrying the kp_status and the message.
//
//   kernelpool::init(argc, argv);                        // first in main (process pools)
//   auto pool = kernelpool::executor::processes(2);
//   std::string out = kernelpool::program(pool, KP_KERNEL_SPECTRALNORM, KP_LANG_C, 100);
//
// Thread safety is the C ABI's: executors, signatures and kernels may be shared between
// threads; a buffer is used by one call at a time; a builder by one thread.
#ifndef KERNELPOOL_HPP
#define KERNELPOOL_HPP

#include "kernelpool.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
#if __cplusplus >= 202002L && __has_include(<span>)
#include <span>
#define KERNELPOOL_HAS_SPAN 1
#endif

namespace kernelpool {

/// The message of this thread's last failed call.
inline std::string last_message() {
    size_t len = 0;
    kp_last_error_message(nullptr, 0, &len);
    std::string msg(len + 1, '\0');
    if (kp_last_error_message(&msg[0], msg.size(), &len) != KP_OK) return std::string();
    msg.resize(len);
    return msg;
}

/// A failed call: its status (`status()`) and message (`what()`).
class error : public std::runtime_error {
  public:
    error(kp_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    kp_status status() const noexcept { return status_; }

  private:
    kp_status status_;
};

/// Throw `error` for a status other than KP_OK.
inline void check(kp_status status) {
    if (status != KP_OK) throw error(status, last_message());
}

/// Call first in main of a program whose process pools re-run it as their workers.
inline void init(int argc, char **argv) { check(kp_init(argc, argv)); }

namespace detail {
/// A move-only owner of a `T *` released by `Free`.
template <class T, void (*Free)(T *)> class handle {
  public:
    handle() noexcept = default;
    explicit handle(T *p) noexcept : p_(p) {}
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    handle(handle &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    handle &operator=(handle &&o) noexcept {
        if (this != &o) {
            Free(p_);
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    ~handle() { Free(p_); }
    T *get() const noexcept { return p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }

  private:
    T *p_ = nullptr;
};

/// Read a text out-parameter of the C ABI (describe, spec) into a std::string.
template <class F> std::string text(F f) {
    size_t len = 0;
    kp_status s = f(nullptr, 0, &len);
    if (s != KP_OK && s != KP_BUFFER_TOO_SMALL) check(s);
    std::string out(len + 1, '\0');
    check(f(&out[0], out.size(), &len));
    out.resize(len);
    return out;
}
}  // namespace detail

/// An executor: serial, threads or worker processes.
class executor {
  public:
    explicit executor(kp_executor *p) noexcept : h_(p) {}
    static executor serial() {
        kp_executor *p = nullptr;
        check(kp_serial_new(&p));
        return executor(p);
    }
    /// `workers` threads (0: one per CPU), `chunk` items per chunk (0: the default).
    static executor threads(size_t workers = 0, uint64_t chunk = 0) {
        kp_executor *p = nullptr;
        check(kp_threads_new(workers, chunk, &p));
        return executor(p);
    }
    /// A process pool whose workers are this program (call `init` first in main).
    static executor processes(size_t workers = 0) {
        kp_executor *p = nullptr;
        check(kp_processes_new(workers, &p));
        return executor(p);
    }
    kp_executor *get() const noexcept { return h_.get(); }
    size_t workers() const {
        size_t n = 0;
        check(kp_executor_workers(get(), &n));
        return n;
    }
    std::string describe() const {
        return detail::text([this](char *b, size_t l, size_t *o) { return kp_executor_describe(get(), b, l, o); });
    }

  private:
    detail::handle<kp_executor, kp_executor_free> h_;
};

/// Options of a process pool; `build()` starts one.
class processes_builder {
  public:
    processes_builder() {
        kp_processes_builder *p = nullptr;
        check(kp_processes_builder_new(&p));
        h_ = decltype(h_)(p);
    }
    processes_builder &workers(size_t n) { check(kp_processes_builder_workers(h_.get(), n)); return *this; }
    processes_builder &chunk(uint64_t c) { check(kp_processes_builder_chunk(h_.get(), c)); return *this; }
    processes_builder &task_timeout(std::chrono::milliseconds t) {
        check(kp_processes_builder_task_timeout_ms(h_.get(), static_cast<uint64_t>(t.count())));
        return *this;
    }
    processes_builder &max_tasks_per_worker(uint64_t n) {
        check(kp_processes_builder_max_tasks_per_worker(h_.get(), n));
        return *this;
    }
    /// Whether the calling thread runs chunks of built-in kernels too (default: yes).
    processes_builder &caller_runs_chunks(bool on) {
        check(kp_processes_builder_caller_runs_chunks(h_.get(), on ? 1 : 0));
        return *this;
    }
    /// The worker program (nullptr: the installed kpool-worker).
    processes_builder &worker_program(const char *path) {
        check(kp_processes_builder_worker_program(h_.get(), path));
        return *this;
    }
    executor build() const {
        kp_executor *p = nullptr;
        check(kp_processes_builder_build(h_.get(), &p));
        return executor(p);
    }

  private:
    detail::handle<kp_processes_builder, kp_processes_builder_free> h_;
};

/// What a kernel reads and writes.
class signature {
  public:
    /// From a spec: "in f64[items], out f64[items], sum f64".
    static signature parse(const std::string &name, const std::string &spec) {
        kp_signature *p = nullptr;
        check(kp_signature_parse(name.c_str(), spec.c_str(), &p));
        return signature(p);
    }
    /// From buffer descriptions and partial operations (`kp_reduce` values).
    signature(const std::string &name, const std::vector<kp_buffer_desc> &buffers,
              const std::vector<uint32_t> &partials = {}, uint64_t max_n = 0) {
        kp_signature_desc d{name.c_str(), buffers.data(), buffers.size(), partials.data(), partials.size(), max_n};
        kp_signature *p = nullptr;
        check(kp_signature_new(&d, &p));
        h_ = decltype(h_)(p);
    }
    const kp_signature *get() const noexcept { return h_.get(); }
    std::string spec() const {
        return detail::text([this](char *b, size_t l, size_t *o) { return kp_signature_spec(get(), b, l, o); });
    }

  private:
    explicit signature(kp_signature *p) noexcept : h_(p) {}
    detail::handle<kp_signature, kp_signature_free> h_;
};

/// A kernel: built in, a function of this program, or from a shared object.
class kernel {
  public:
    static kernel builtin(uint32_t k, uint32_t lang) {
        kp_kernel *p = nullptr;
        check(kp_kernel_builtin(k, lang, &p));
        return kernel(p);
    }
    /// A built-in kernel's `variant` (KP_VARIANT_PLAIN, KP_VARIANT_TUNED).
    static kernel builtin(uint32_t k, uint32_t lang, uint32_t variant) {
        kp_kernel *p = nullptr;
        check(kp_kernel_builtin_variant(k, lang, variant, &p));
        return kernel(p);
    }
    /// Serial and thread executors only. Wrap a C++ kernel in `guarded<F>` so that its
    /// exceptions become KP_KERNEL_EXCEPTION instead of crossing the C ABI.
    static kernel from_fn(kp_range_fn f, const signature &sig) {
        kp_kernel *p = nullptr;
        check(kp_kernel_from_fn(f, sig.get(), &p));
        return kernel(p);
    }
    static kernel from_library(const std::string &path, const std::string &symbol, const signature &sig) {
        kp_kernel *p = nullptr;
        check(kp_kernel_from_library(path.c_str(), symbol.c_str(), sig.get(), &p));
        return kernel(p);
    }
    /// Compiled at run time (cached) from the source file `path`; every executor.
    static kernel jit_file(const std::string &path, const std::string &symbol, const signature &sig) {
        kp_kernel *p = nullptr;
        check(kp_jit_kernel_file(path.c_str(), symbol.c_str(), sig.get(), &p));
        return kernel(p);
    }
    /// Compiled at run time (cached) from the source text `source` in `lang`.
    static kernel jit_source(const std::string &source, uint32_t lang, const std::string &symbol,
                             const signature &sig) {
        kp_kernel *p = nullptr;
        check(kp_jit_kernel_source(source.c_str(), lang, symbol.c_str(), sig.get(), &p));
        return kernel(p);
    }
    /// The element function `T symbol(T)` of `source` as the kernel `in T[items], out T[items]`.
    static kernel jit_element_source(const std::string &source, uint32_t lang, const std::string &symbol,
                                     uint32_t elem) {
        kp_kernel *p = nullptr;
        check(kp_jit_element_source(source.c_str(), lang, symbol.c_str(), elem, &p));
        return kernel(p);
    }
    const kp_kernel *get() const noexcept { return h_.get(); }
    std::string spec() const {
        return detail::text([this](char *b, size_t l, size_t *o) { return kp_kernel_spec(get(), b, l, o); });
    }

  private:
    explicit kernel(kp_kernel *p) noexcept : h_(p) {}
    detail::handle<kp_kernel, kp_kernel_free> h_;
};

/// A range kernel written in C++ (`int32_t f(const kp_kargs &, uint64_t begin, uint64_t
/// end)`) as a `kp_range_fn` that never lets an exception out.
template <int32_t (*F)(const kp_kargs &, uint64_t, uint64_t)>
int32_t guarded(const kp_kargs *args, uint64_t begin, uint64_t end) noexcept {
    try {
        return F(*args, begin, end);
    } catch (...) {
        return KP_KERNEL_EXCEPTION;
    }
}

/// A zeroed shared-memory buffer (usable on every executor).
class buffer {
  public:
    buffer(kp_elem elem, size_t len) {
        kp_buffer *p = nullptr;
        check(kp_buffer_new(elem, len, &p));
        h_ = decltype(h_)(p);
        void *d = nullptr;
        check(kp_buffer_data(p, &d, &len_));
        data_ = d;
    }
    kp_buffer *get() const noexcept { return h_.get(); }
    /// The elements as `T` (int64_t, double or uint8_t after the element type).
    template <class T> T *data() const noexcept { return static_cast<T *>(data_); }
    size_t size() const noexcept { return len_; }
#ifdef KERNELPOOL_HAS_SPAN
    template <class T> std::span<T> span() const noexcept { return {data<T>(), len_}; }
#endif

  private:
    detail::handle<kp_buffer, kp_buffer_free> h_;
    void *data_ = nullptr;
    size_t len_ = 0;
};

/// The combined partial of a step (`KP_PARTIAL_LEN` slots; float slots: `kp_slot_f64`).
using partial = std::array<int64_t, KP_PARTIAL_LEN>;

/// Run one step over shared-memory buffers (pointer + count).
inline partial run(const executor &e, const kernel &k, const kp_step_args &args, buffer *const *bufs, size_t count) {
    std::vector<kp_buffer *> raw(count);
    for (size_t i = 0; i < count; i++) raw[i] = bufs[i] ? bufs[i]->get() : nullptr;
    partial p{};
    check(kp_step_run(e.get(), k.get(), &args, raw.data(), count, p.data(), p.size()));
    return p;
}

/// Run one step over shared-memory buffers.
inline partial run(const executor &e, const kernel &k, const kp_step_args &args, std::initializer_list<buffer *> bufs) {
    return run(e, k, args, bufs.begin(), bufs.size());
}

/// The caller's memory as a step buffer.
inline kp_mem mem(int64_t *data, size_t len) noexcept { return kp_mem{KP_ELEM_I64, data, len}; }
inline kp_mem mem(double *data, size_t len) noexcept { return kp_mem{KP_ELEM_F64, data, len}; }
inline kp_mem mem(uint8_t *data, size_t len) noexcept { return kp_mem{KP_ELEM_U8, data, len}; }
template <class T> kp_mem mem(std::vector<T> &v) noexcept { return mem(v.data(), v.size()); }
#ifdef KERNELPOOL_HAS_SPAN
template <class T> kp_mem mem(std::span<T> s) noexcept { return mem(s.data(), s.size()); }
#endif

/// Run one step over the caller's memory (serial and threads; pointer + count).
inline partial run_mem(const executor &e, const kernel &k, const kp_step_args &args, const kp_mem *mems, size_t count) {
    partial p{};
    check(kp_step_run_mem(e.get(), k.get(), &args, mems, count, p.data(), p.size()));
    return p;
}

inline partial run_mem(const executor &e, const kernel &k, const kp_step_args &args, std::initializer_list<kp_mem> mems) {
    return run_mem(e, k, args, mems.begin(), mems.size());
}

#ifdef KERNELPOOL_HAS_SPAN
inline partial run_mem(const executor &e, const kernel &k, const kp_step_args &args, std::span<const kp_mem> mems) {
    return run_mem(e, k, args, mems.data(), mems.size());
}
#endif

/// A built-in kernel's program: its canonical output, as `kpool run` prints it (n 0: the
/// reference size; systems: nbody's ensemble, 1 for the published problem).
inline std::string program(const executor &e, uint32_t k, uint32_t lang, uint64_t n = 0, uint64_t systems = 1) {
    std::string out(4096, '\0');
    size_t written = 0;
    kp_status s = kp_program_run(e.get(), k, lang, n, systems, reinterpret_cast<uint8_t *>(&out[0]), out.size(), &written);
    if (s == KP_BUFFER_TOO_SMALL) {
        out.assign(written, '\0');
        s = kp_program_run(e.get(), k, lang, n, systems, reinterpret_cast<uint8_t *>(&out[0]), out.size(), &written);
    }
    check(s);
    out.resize(written);
    return out;
}

}  // namespace kernelpool

#endif  // KERNELPOOL_HPP
