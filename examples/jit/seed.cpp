// The course's f, in C++, as a plain element function (no extern "C" needed: the
// generated wrapper is compiled in the same translation unit and calls it by its C++ name).
//
//     kpool jit examples/jit/seed.cpp --symbol f --map 1,2,3 --exec threads
#include <cstdint>

std::int64_t f(std::int64_t x) {
    const auto ux = static_cast<std::uint64_t>(x);
    std::uint64_t j = 0;
    for (int i = 0; i < 10'000'000; ++i) {
        j += ux * ux;  // unsigned: wraps, as the built-in seed kernel
    }
    return static_cast<std::int64_t>(j);
}
