//! `Kernel::load` takes a path, never a name to search for: a bare file name means the file
//! in the current directory. (Its own test binary: it changes the current directory.)

use kernelpool_kernels::{Kernel, KernelName, Lang, Options, Origin, Serial, programs};
use std::path::Path;
use std::process::Command;

/// A pi kernel that counts every sample as a hit.
const SOURCE: &str = r#"
#include <stdint.h>
typedef struct { uint64_t n, items; int64_t iparam[4]; double fparam[4];
                 void *buf[4]; uint64_t len[4]; int64_t *partial; } kp_kargs;
int32_t all_hits(const kp_kargs *a, uint64_t begin, uint64_t end) {
    if (a == 0 || a->partial == 0 || begin > end || end > a->items) return -1;
    a->partial[0] += (int64_t)(end - begin);
    return 0;
}
"#;

#[test]
fn a_bare_file_name_is_the_file_in_the_current_directory_never_a_search() {
    // libm.so.6 is found by a search of the system's library directories, so it must not
    // load: there is no ./libm.so.6 here.
    // SAFETY: nothing is loaded (the file does not exist in the current directory); were
    // the system's libm loaded, its initialisers are harmless.
    let e = unsafe { Kernel::load(Path::new("libm.so.6"), "cos", KernelName::Pi, Lang::C) }
        .expect_err("the system's libm must not be found by a search");
    assert!(e.to_string().contains("./libm.so.6"), "{e}");

    let dir = std::env::temp_dir().join(format!("kp-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("k.c"), SOURCE).expect("write source");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o", "libk.so", "k.c"])
        .current_dir(&dir)
        .status()
        .expect("cc runs");
    assert!(status.success(), "compiling the test kernel failed");
    std::env::set_current_dir(&dir).expect("cd");
    // SAFETY: `all_hits` has the RawKernelFn signature and keeps to pi's contract.
    let k = unsafe { Kernel::load(Path::new("libk.so"), "all_hits", KernelName::Pi, Lang::C) }
        .expect("a bare name loads the file in the current directory");
    assert_eq!(
        k.origin(),
        &Origin::Library {
            path: "./libk.so".into(),
            symbol: "all_hits".into()
        }
    );
    let out = programs::run(k, &Options::new().n(10), &Serial).expect("run");
    assert_eq!(out.stdout, b"10\n4.000000000\n");
    let _ = std::fs::remove_dir_all(&dir);
}
