//! One appliance per state directory: an exclusive `flock` on
//! `state_dir/synwall.lock`, held for the life of the process (the kernel
//! drops it when the process ends, however it ends), with the holder's PID
//! in the file so that the second appliance can say who holds it.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "synwall.lock";

/// The lock, held while this value lives.
#[derive(Debug)]
pub struct StateLock {
    _lock: Flock<File>,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "state directory {dir} is in use by another synwall ({holder} holds {path}); two \
         appliances on one state directory overwrite each other's snapshots: stop the other \
         one, or give this one a control.state_dir of its own"
    )]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// "pid N", or what is known.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("locking {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl StateLock {
    /// Takes the lock of state directory `dir` (which exists), without
    /// waiting, and writes this process's PID into the lock file. On a
    /// read-only file system an existing lock file is locked as it is.
    pub fn take(dir: &Path) -> Result<StateLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .write(write)
                .create(write)
                .mode(0o644)
                .custom_flags(libc_flags())
                .open(&path)
        };
        let (file, writable) = match open(true) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(nix::libc::EROFS) => {
                (open(false).map_err(io)?, false)
            }
            Err(e) => return Err(io(e)),
        };
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "a process".to_owned(),
                };
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    path,
                    holder,
                });
            }
            Err((_, errno)) => return Err(io(errno.into())),
        };
        if writable {
            let pid = format!("{}\n", std::process::id());
            lock.set_len(0)
                .and_then(|()| lock.seek(SeekFrom::Start(0)).map(drop))
                .and_then(|()| lock.write_all(pid.as_bytes()))
                .map_err(io)?;
        }
        Ok(StateLock { _lock: lock })
    }
}

/// Never follow a link planted as the lock file; not inherited by hooks.
fn libc_flags() -> i32 {
    nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("synwall-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = StateLock::take(&dir).unwrap();
        // flock locks are per open file: a second open in this process
        // conflicts like another process would.
        let err = StateLock::take(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        StateLock::take(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
