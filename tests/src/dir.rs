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
    /// A short string unique to this directory, for the EAL file prefix
    /// of the processes a test starts in it. It ends in `_`, so no other
    /// directory's string continues it: a test that starts several EAL
    /// processes gives each this prefix plus a suffix, and the drop removes
    /// what every prefix that starts with it left behind.
    pub unique: String,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = serial();
        let unique = format!("swt{}x{n}_", std::process::id());
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
        // What the EAL processes of this directory's prefixes left: their
        // runtime directories (empty with --no-shconf, but created anyway)
        // and, for a primary on shared hugepages, its hugepage files
        // (`PREFIXmap_N`), kept for secondaries, which would otherwise
        // hold their pages until the next reboot.
        let mut runtime = vec![PathBuf::from("/var/run/dpdk"), PathBuf::from("/run/dpdk")];
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR") {
            runtime.push(Path::new(&xdg).join("dpdk"));
        }
        for base in runtime {
            remove_ours(&base, &self.unique, |p| fs::remove_dir_all(p));
        }
        for mount in hugetlbfs_mounts() {
            remove_ours(Path::new(&mount), &self.unique, |p| fs::remove_file(p));
        }
    }
}

/// Removes every entry of `dir` whose name starts with `prefix`.
fn remove_ours(dir: &Path, prefix: &str, remove: impl Fn(&Path) -> std::io::Result<()>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            let _ = remove(&e.path());
        }
    }
}

/// Where hugetlbfs is mounted.
fn hugetlbfs_mounts() -> Vec<String> {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let mount_point = f.nth(1)?;
            (f.next()? == "hugetlbfs").then(|| mount_point.to_owned())
        })
        .collect()
}
