//! Per-test temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number not handed out before in this process (for unique directory
/// and output file names).
pub(crate) fn serial() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A per-test temporary directory, removed on drop unless the test panicked
/// (then its path is printed so the inputs and outputs can be inspected).
pub struct TestDir {
    pub path: PathBuf,
    /// A short string unique to this directory (for the EAL file prefix).
    pub unique: String,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = serial();
        let unique = format!("swt{}x{n}", std::process::id());
        let path = std::env::temp_dir().join(format!("synwall-test-{name}-{unique}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TestDir { path, unique }
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
        // EAL's runtime directory for this file prefix (empty with
        // --no-shconf, but created anyway).
        for base in ["/var/run/dpdk", "/run/dpdk"] {
            let _ = fs::remove_dir_all(Path::new(base).join(&self.unique));
        }
        if let Ok(xdg) = std::env::var("XDG_RUNTIME_DIR") {
            let _ = fs::remove_dir_all(Path::new(&xdg).join("dpdk").join(&self.unique));
        }
        remove_hugepage_files(&self.unique);
    }
}

/// Removes the hugepage files of EAL prefix `prefix` (`PREFIXmap_N` in
/// every hugetlbfs mount): a primary on shared hugepages leaves them for
/// secondaries, and each would otherwise hold its pages until the next
/// reboot. Only files of this prefix, which is this directory's own.
fn remove_hugepage_files(prefix: &str) {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let ours = format!("{prefix}map_");
    let hugetlbfs = mounts.lines().filter_map(|l| {
        let mut f = l.split_whitespace();
        let mount_point = f.nth(1)?;
        (f.next()? == "hugetlbfs").then_some(mount_point)
    });
    for dir in hugetlbfs {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&ours) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}
