//! Writing an executable script that tests run, shared by the test suites of the workspace
//! (each includes this file with `#[path]`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Write `text` to `path` as an executable script, written by a child `sh` so that this
/// process never holds the file open for writing: a child that another test thread forks
/// while it is open inherits the descriptor until it execs, and running the script in that
/// moment fails with "Text file busy" (ETXTBSY).
///
/// # Panics
/// If `sh` cannot write the file.
#[allow(dead_code)]
pub fn write_executable(path: &Path, text: &str) {
    let mut sh = Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run sh");
    sh.stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .expect("write to sh");
    let status = sh.wait().expect("wait for sh");
    assert!(
        status.success(),
        "cannot write {}: {status}",
        path.display()
    );
}
