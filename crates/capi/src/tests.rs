//! Unit tests of the boundary, from Rust (the C programs of `tests/c_abi.rs` test the
//! library as C links it).

use super::*;
use std::ffi::CStr;

fn message() -> String {
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    // SAFETY: buf is 512 bytes, len a valid out-parameter.
    let s = unsafe { kp_last_error_message(buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_eq!(s, KP_OK);
    // SAFETY: NUL-terminated on KP_OK.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_message_call_reports_the_length_and_never_clobbers() {
    let mut k = 0u32;
    // SAFETY: a valid string and out-parameter.
    let s = unsafe { kp_kernel_by_name(c"cobol".as_ptr(), &mut k) };
    assert_eq!(s, KP_UNKNOWN_KERNEL);
    let msg = message();
    assert!(msg.contains("unknown kernel `cobol`"), "{msg}");
    let mut len = 0usize;
    // SAFETY: NULL buffer with length 0 is allowed; len is valid.
    let s = unsafe { kp_last_error_message(std::ptr::null_mut(), 0, &mut len) };
    assert_eq!(s, KP_BUFFER_TOO_SMALL);
    assert_eq!(len, msg.len());
    let mut small = [0x55 as c_char; 4];
    // SAFETY: 4 bytes.
    let s = unsafe { kp_last_error_message(small.as_mut_ptr(), small.len(), &mut len) };
    assert_eq!(s, KP_BUFFER_TOO_SMALL);
    assert!(
        small.iter().all(|&c| c == 0x55),
        "nothing written when too small"
    );
    // Still the same message, and a success does not change it either.
    assert_eq!(message(), msg);
    // SAFETY: valid arguments.
    assert_eq!(unsafe { kp_kernel_by_name(c"pi".as_ptr(), &mut k) }, KP_OK);
    assert_eq!(k, 6);
    assert_eq!(message(), msg);
}

#[test]
fn statuses_have_fixed_descriptions() {
    for s in 0..=23u32 {
        // SAFETY: static NUL-terminated strings.
        let text = unsafe { CStr::from_ptr(kp_status_str(s)) }
            .to_str()
            .unwrap();
        assert!(text.starts_with("KP_"), "{s}: {text}");
    }
    // SAFETY: as above.
    let text = unsafe { CStr::from_ptr(kp_status_str(999)) }
        .to_str()
        .unwrap();
    assert_eq!(text, "unknown kp_status value");
}

#[test]
fn a_panic_becomes_kp_panic_with_its_message() {
    let s = boundary::boundary(|| panic!("boom"));
    assert_eq!(s, KP_PANIC);
    assert!(message().contains("boom"));
}

#[test]
fn names_and_values_round_trip() {
    for k in 0..kp_kernel_count() {
        // SAFETY: a static string for a known value.
        let name = unsafe { CStr::from_ptr(kp_kernel_name(k)) };
        let mut back = 99;
        // SAFETY: valid string and out-parameter.
        let s = unsafe { kp_kernel_by_name(name.as_ptr(), &mut back) };
        assert_eq!(s, KP_OK);
        assert_eq!(back, k);
    }
    assert!(kp_kernel_name(kp_kernel_count()).is_null());
    // SAFETY: a static string for a known value.
    let laplace = unsafe { CStr::from_ptr(kp_kernel_name(kp_kernel_id::KP_KERNEL_LAPLACE as u32)) };
    assert_eq!(laplace, c"laplace");
    assert!(kp_lang_name(4).is_null());
    // SAFETY: a static string.
    assert_eq!(unsafe { CStr::from_ptr(kp_lang_name(1)) }, c"cpp");
}

/// With `--features cbindgen` the build regenerated the header into OUT_DIR.
#[cfg(feature = "cbindgen")]
#[test]
fn header_is_fresh() {
    let committed = include_str!("../../../include/kernelpool.h");
    let fresh = include_str!(concat!(env!("OUT_DIR"), "/kernelpool.h"));
    assert!(
        committed == fresh,
        "include/kernelpool.h is stale: run KERNELPOOL_UPDATE_HEADER=1 cargo build -p kernelpool-capi --features cbindgen"
    );
}
