//! The workspace's binaries, built by cargo in this test binary's profile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `synwall` binary of the same profile as this test binary, built once
/// per test process (a no-op when it is up to date).
pub fn synwall_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bins(&[("synwall-control", "synwall")]).join("synwall"))
}

/// The `synwallctl` binary of the same profile as this test binary, built
/// once per test process.
pub fn synwallctl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bins(&[("synwallctl", "synwallctl")]).join("synwallctl"))
}

/// Runs `synwallctl --socket SOCKET args...`: exit code, stdout, stderr.
pub fn ctl(socket: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(synwallctl_bin())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("running synwallctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `synwall-gen` binary of the same profile as this test binary, built
/// once per test process.
pub fn gen_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bins(&[("synwall-benches", "synwall-gen")]).join("synwall-gen"))
}

/// The workspace root (where `scripts/`, `config/` and `fuzz/` are).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

/// Builds `(package, binary)` pairs in the profile and target directory of
/// this test binary; returns the directory they are in
/// (`target/<profile>`).
pub fn build_bins(bins: &[(&str, &str)]) -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is not in target/<profile>/deps")
        .to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root()).arg("build");
    for (package, bin) in bins {
        cmd.args(["-p", package, "--bin", bin]);
    }
    if release {
        cmd.arg("--release");
    }
    // Build into the same target directory as this test binary (it may
    // have been given with --target-dir); CACHEDIR.TAG marks its root.
    if let Some(target_dir) = profile_dir.parent() {
        if target_dir.join("CACHEDIR.TAG").exists() {
            cmd.env("CARGO_TARGET_DIR", target_dir);
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", env!("CARGO")));
    assert!(
        out.status.success(),
        "building {bins:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, bin) in bins {
        let path = profile_dir.join(bin);
        assert!(
            path.exists(),
            "{} missing after cargo build",
            path.display()
        );
    }
    profile_dir
}
