//! The cache: a hit runs no compiler at all (a logging compiler wrapper proves it), every
//! key input misses and nothing else does, broken artifacts are rebuilt and never loaded,
//! unsafe directories are refused, the size bound evicts the least recently used entry,
//! and threads compiling the same source at once all succeed and leave one entry.

mod common;

use common::{TempDir, compiles, course_f, course_f_of, entries, jit, logging_compiler, runs};
use kernelpool_jit::{Cache, Jit, JitError, Source};
use kernelpool_kernels::{Lang, Serial};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `f` of `src`, mapped over [1, 2, 3] (checked); whether it came from the cache.
fn run_f(jit: &Jit, src: &Source) -> bool {
    // SAFETY: the sources of these tests define pure element functions.
    let f = unsafe { jit.element_fn::<i64>(src, "f") }.expect("compile or hit");
    let want: Vec<i64> = [1, 2, 3].iter().map(|&x| course_f_of(x)).collect();
    assert_eq!(f.map(&[1, 2, 3], &Serial).expect("map"), want);
    f.build().cached
}

#[test]
fn a_cache_hit_runs_no_compiler_at_all() {
    let dir = TempDir::new("hit");
    let (cc, log) = (dir.join("cc"), dir.join("cc.log"));
    logging_compiler(&cc, "gcc", &log, "fakecc 1.0");
    let src = Source::string(course_f(Lang::C), Lang::C);
    let first = jit(&dir).compiler(Lang::C, &cc);
    assert!(!run_f(&first, &src), "a fresh cache compiles");
    assert_eq!(compiles(&log), 1, "{:?}", runs(&log));
    let seen = runs(&log).len();
    // Another Jit on the same cache (as another process would be): nothing runs, not even
    // `cc --version`, which is remembered for this very executable file.
    let second = jit(&dir).compiler(Lang::C, &cc);
    assert!(run_f(&second, &src), "the second time is a hit");
    assert_eq!(runs(&log).len(), seen, "{:?}", runs(&log));
    // A hit is fast: well under the compiler's tens of milliseconds.
    // SAFETY: as in run_f.
    let f = unsafe { second.element_fn::<i64>(&src, "f") }.expect("hit");
    assert!(f.build().cached && f.build().compile_time.is_zero());
    assert!(f.build().total_time.as_millis() < 20, "{:?}", f.build());
}

#[test]
fn every_key_input_misses_and_nothing_else_does() {
    let dir = TempDir::new("keys");
    let (cc, log) = (dir.join("cc"), dir.join("cc.log"));
    logging_compiler(&cc, "gcc", &log, "fakecc 1.0");
    let cxx = dir.join("cxx");
    logging_compiler(&cxx, "g++", &log, "fakecxx 1.0");
    let text = course_f(Lang::C);
    let base = || jit(&dir).compiler(Lang::C, &cc).compiler(Lang::Cpp, &cxx);
    let src = Source::string(text, Lang::C);
    let mut expect = 1;
    let mut check = |jit: &Jit, src: &Source, hit: bool, what: &str| {
        let cached = run_f(jit, src);
        if !hit {
            expect += 1;
        }
        assert_eq!(cached, hit, "{what}");
        assert_eq!(compiles(&log), expect, "{what}: {:?}", runs(&log));
    };
    assert!(!run_f(&base(), &src));
    check(&base(), &src, true, "the same again");
    // Nothing but the key's inputs matters: not the source's name or path.
    check(
        &base(),
        &src.clone().with_name("elsewhere.c"),
        true,
        "another name",
    );
    let copy = dir.write("copy.c", text);
    check(
        &base(),
        &Source::file(&copy).expect("read"),
        true,
        "a file with the same text",
    );
    // Each input of the key misses.
    check(
        &base(),
        &Source::string(format!("{text}/* edited */\n"), Lang::C),
        false,
        "source",
    );
    check(&base(), &Source::string(text, Lang::Cpp), false, "language");
    check(&base().flags(["-DUNUSED=1"]), &src, false, "flags");
    check(&base().target_cpu("x86-64-v2"), &src, false, "target CPU");
    check(
        &base().kernelpool_version_for_tests("0.0.0-test"),
        &src,
        false,
        "kernelpool version",
    );
    let other = dir.join("cc2");
    logging_compiler(&other, "gcc", &log, "fakecc 1.0");
    check(
        &jit(&dir).compiler(Lang::C, &other),
        &src,
        false,
        "compiler path",
    );
    // The compiler is upgraded in place (a new file at the same path): asked its version
    // again, and what it says misses.
    logging_compiler(&cc, "gcc", &log, "fakecc 2.0");
    let versions = runs(&log)
        .iter()
        .filter(|l| l.starts_with("--version"))
        .count();
    check(&base(), &src, false, "compiler version");
    let now = runs(&log)
        .iter()
        .filter(|l| l.starts_with("--version"))
        .count();
    assert_eq!(now, versions + 1, "the new compiler is asked its version");
    // And the first build is still there for the first compiler's version.
    logging_compiler(&cc, "gcc", &log, "fakecc 1.0");
    check(&base(), &src, true, "back to the first version");
    assert_eq!(entries(&dir.join("cache")).len(), expect);
}

/// The library file of `f` of `src`.
fn library(jit: &Jit, src: &Source) -> std::path::PathBuf {
    // SAFETY: as in run_f.
    unsafe { jit.element_fn::<i64>(src, "f") }
        .expect("compile")
        .build()
        .library
        .clone()
}

#[test]
fn corrupted_and_truncated_artifacts_are_rebuilt_never_loaded() {
    let dir = TempDir::new("corrupt");
    let (cc, log) = (dir.join("cc"), dir.join("cc.log"));
    logging_compiler(&cc, "gcc", &log, "fakecc 1.0");
    let jit = jit(&dir).compiler(Lang::C, &cc);
    let src = Source::string(course_f(Lang::C), Lang::C);
    let lib = library(&jit, &src);
    let good = std::fs::read(&lib).expect("read");
    // A valid library of the same size whose f answers 42: were it loaded, the results
    // would be wrong.
    let evil_src = Source::string(
        "#include <stdint.h>\nint64_t f(int64_t x) { (void)x; return 42; }\n",
        Lang::C,
    );
    let mut evil = std::fs::read(library(&jit, &evil_src)).expect("read");
    assert!(evil.len() <= good.len(), "{} > {}", evil.len(), good.len());
    evil.resize(good.len(), 0); // trailing bytes do not stop dlopen
    let rebuild = |what: &str, damage: &dyn Fn(&Path)| {
        let before = compiles(&log);
        damage(&lib);
        // SAFETY: as in run_f.
        let f = unsafe { jit.element_fn::<i64>(&src, "f") }.expect("rebuilt");
        assert!(!f.build().cached, "{what}: rebuilt");
        let why = f.build().rebuilt_because.clone().unwrap_or_default();
        assert_eq!(
            f.map(&[1, 2, 3], &Serial).expect("map"),
            [10000000, 40000000, 90000000],
            "{what}"
        );
        assert_eq!(compiles(&log), before + 1, "{what}");
        assert_eq!(
            std::fs::read(&lib).expect("read"),
            good,
            "{what}: the same build again"
        );
        why
    };
    let why = rebuild("another library of the same size", &|p| {
        std::fs::write(p, &evil).expect("w")
    });
    assert!(why.contains("SHA-256"), "{why}");
    let why = rebuild("a flipped byte", &|p| {
        let mut b = std::fs::read(p).expect("read");
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        std::fs::write(p, b).expect("w");
    });
    assert!(why.contains("SHA-256"), "{why}");
    let why = rebuild("truncated", &|p| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .expect("open");
        f.set_len(good.len() as u64 / 3).expect("truncate");
    });
    assert!(why.contains("truncated"), "{why}");
    let why = rebuild("empty", &|p| std::fs::write(p, b"").expect("w"));
    assert!(why.contains("truncated"), "{why}");
    let meta = lib.with_file_name("meta");
    let why = rebuild("garbled meta", &|_| {
        std::fs::write(&meta, "lib_sha256 nope\n").expect("w")
    });
    assert!(why.contains("meta"), "{why}");
    let why = rebuild("no meta", &|_| std::fs::remove_file(&meta).expect("rm"));
    assert!(why.contains("meta"), "{why}");
    let why = rebuild("no library", &|p| std::fs::remove_file(p).expect("rm"));
    assert!(why.contains("lib.so"), "{why}");
}

#[test]
fn unsafe_cache_directories_are_refused() {
    let dir = TempDir::new("perms");
    let refused = |path: &Path, needle: &str| {
        let e = Cache::open(path).expect_err("must be refused");
        assert!(matches!(e, JitError::UnsafeCacheDir { .. }), "{e}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    };
    for (mode, needle) in [
        (0o777, "writable by group and others"),
        (0o770, "writable by its group"),
        (0o703, "writable by others"),
        (0o1777, "mode 1777"),
    ] {
        let d = dir.join(&format!("m{mode:o}"));
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).expect("chmod");
        refused(&d, needle);
        refused(&d, "chmod 700");
    }
    // Owned by another user: as root (here and in CI) a directory given to nobody; for
    // anyone else `/`, which root owns.
    let other = if rustix::process::geteuid().is_root() {
        let d = dir.join("nobody");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(&d, Some(65534), Some(65534)).expect("chown to nobody");
        d
    } else {
        Path::new("/").to_path_buf()
    };
    refused(&other, "owned by uid");
    let file = dir.write("file", "x");
    refused(&file, "not a directory");
    // A missing directory is made, mode 0700, with its missing parents.
    let fresh = dir.join("a/b/kernelpool");
    let cache = Cache::open(&fresh).expect("created");
    for d in [dir.join("a"), dir.join("a/b"), fresh.clone()] {
        let mode = std::fs::metadata(&d).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{}: {mode:o}", d.display());
    }
    assert_eq!(cache.dir(), std::fs::canonicalize(&fresh).expect("canon"));
    // ...and a safe one is used.
    assert!(!run_f(
        &Jit::with_cache(cache),
        &Source::string(course_f(Lang::C), Lang::C)
    ));
}

#[test]
fn the_size_bound_evicts_the_least_recently_used() {
    let dir = TempDir::new("lru");
    let variant =
        |k: u32| Source::string(format!("{}/* variant {k} */\n", course_f(Lang::C)), Lang::C);
    let probe = jit(&dir);
    run_f(&probe, &variant(0));
    let one = probe.cache().info().expect("info").bytes;
    assert!(one > 1000, "{one}");
    // Room for two entries and a half.
    let jit = Jit::with_cache(
        Cache::open(dir.join("cache"))
            .expect("cache")
            .with_max_bytes(one * 5 / 2),
    );
    let pause = || std::thread::sleep(std::time::Duration::from_millis(20));
    pause();
    assert!(!run_f(&jit, &variant(1)));
    pause();
    assert!(
        run_f(&jit, &variant(0)),
        "variant 0 is used again: now the most recent"
    );
    pause();
    assert!(
        !run_f(&jit, &variant(2)),
        "a third entry: the oldest use (variant 1) goes"
    );
    let info = jit.cache().info().expect("info");
    assert_eq!(info.entries, 2, "{info:?}");
    assert!(info.bytes <= info.max_bytes, "{info:?}");
    assert!(run_f(&jit, &variant(0)));
    assert!(run_f(&jit, &variant(2)));
    assert!(!run_f(&jit, &variant(1)), "variant 1 was evicted");
}

#[test]
fn info_and_clear() {
    let dir = TempDir::new("clear");
    let jit = jit(&dir);
    for k in 0..3 {
        run_f(
            &jit,
            &Source::string(format!("{}/* {k} */", course_f(Lang::C)), Lang::C),
        );
    }
    let info = jit.cache().info().expect("info");
    assert_eq!((info.entries, info.dir.as_path()), (3, jit.cache().dir()));
    assert!(info.bytes > 0);
    assert_eq!(jit.cache().clear().expect("clear"), 3);
    let info = jit.cache().info().expect("info");
    assert_eq!((info.entries, info.bytes), (0, 0));
    assert!(jit.cache().dir().is_dir(), "the directory stays");
    // Usable again at once.
    assert!(!run_f(&jit, &Source::string(course_f(Lang::C), Lang::C)));
}

#[test]
fn threads_compiling_the_same_new_source_at_once_all_succeed_and_leave_one_entry() {
    let dir = TempDir::new("race");
    let (cc, log) = (dir.join("cc"), dir.join("cc.log"));
    logging_compiler(&cc, "gcc", &log, "fakecc 1.0");
    let src = Source::string(format!("{}/* race */\n", course_f(Lang::C)), Lang::C);
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let jit = jit(&dir).compiler(Lang::C, &cc);
                barrier.wait();
                run_f(&jit, &src);
            });
        }
    });
    let cache = dir.join("cache");
    assert_eq!(entries(&cache).len(), 1);
    assert!((1..=4).contains(&compiles(&log)), "{:?}", runs(&log));
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .expect("read")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
