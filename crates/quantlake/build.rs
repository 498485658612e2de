//! Records the git revision the binary is built from (when built from a checkout), for the code
//! version in lineage records: `QUANTLAKE_GIT_REVISION`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(revision) = git(&["rev-parse", "HEAD"]) else { return };
    // Rebuilt when HEAD moves: a commit or a checkout appends to the HEAD log.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for file in ["HEAD", "logs/HEAD"] {
            let path = std::path::Path::new(&dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    // Uncommitted edits do not rerun this script, so no "dirty" flag: it could be stale.
    println!("cargo:rustc-env=QUANTLAKE_GIT_REVISION={revision}");
}
