"""The course's seed example in Python, for `kpool bench`'s seed section.

    python seed_bench.py REPS ARG...

Prints one JSON object on stdout: the versions found, then one row per measurement
(pure Python serially, with multiprocessing.Pool(), numba's @njit on its first call,
compile included, and warm), each for the course's integer loop and for the same loop
with a floating-point accumulator. Integer arguments go to f, the same values plus 0.1
per unit (1.1, 2.2, ...) to g. Floats are printed with repr(): exact, so the harness
compares them bit for bit with the compiled languages. Without numba, its rows say why.
"""

import json
import multiprocessing
import platform
import sys
import time


def f(x):
    j = 0
    for i in range(10_000_000):
        j += x * x
    return j


def g(x):
    j = 0.0
    for i in range(10_000_000):
        j += x * x
    return j


def timed(call, reps):
    times, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t)
    return times, result


def row(section, who, exec_, times, result, note=""):
    return {
        "section": section,
        "who": who,
        "exec": exec_,
        "times": times,
        "result": [repr(v) for v in result] if result is not None else None,
        "note": note,
    }


def main():
    reps = int(sys.argv[1])
    ints = [int(a) for a in sys.argv[2:]]
    floats = [x * 1.1 for x in ints]
    out = {"python": platform.python_version(), "numba": None, "numpy": None, "rows": []}
    rows = out["rows"]
    workers = multiprocessing.cpu_count()
    for section, fn, args in (("integer", f, ints), ("float", g, floats)):
        t, r = timed(lambda: [fn(x) for x in args], reps)
        rows.append(row(section, "python", "serial", t, r))
        with multiprocessing.Pool() as p:
            t, r = timed(lambda: p.map(fn, args), reps)
        rows.append(row(section, "python Pool()", f"processes×{workers}", t, r,
                        "multiprocessing.Pool(), started before timing"))
    try:
        import numpy
        out["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        import numba
        from numba import njit
        out["numba"] = numba.__version__
    except ImportError as e:
        out["numba_missing"] = str(e)
        print(json.dumps(out))
        return
    for section, fn, args in (("integer", f, ints), ("float", g, floats)):
        jf = njit(fn)
        t = time.perf_counter()
        r = [jf(args[0])]
        first = time.perf_counter() - t
        r += [jf(x) for x in args[1:]]
        rows.append(row(section, "numba first call", "serial", [first], None,
                        "one call of f(%r), compile included" % args[0]))
        # Warm: enough repetitions for a stable median.
        warm_reps = reps
        t, r = timed(lambda: [jf(x) for x in args], 1)
        if t[0] < 0.05:
            warm_reps = max(reps, min(200, int(0.2 / max(t[0], 1e-7))))
        t, r = timed(lambda: [jf(x) for x in args], warm_reps)
        rows.append(row(section, "numba warm", "serial", t, r))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
