//! The directories synwall writes in (the state directory, the event log's
//! and the control socket's) must be its own: a directory that another
//! user can write lets that user plant `state.json.tmp -> /etc/shadow` or
//! put their own socket in synwall's place, and synwall runs as root.
//!
//! The rule is sshd's StrictModes (and `postfix check`'s), checked on the
//! directory and every ancestor up to `/`: each is owned by root or by the
//! user synwall runs as, and is not writable by group or others. One
//! exception, for ancestors only: a world-writable directory with the
//! sticky bit (`/tmp`), where others may create names but not rename or
//! remove ours. The directory itself is refused even with the sticky bit,
//! since anyone may create the names synwall is about to use there.
//!
//! The check runs on the path as given and on its canonical form, so a
//! symbolic link on the way (`/var/run -> /run`) is checked at both ends.
use std::fs::{DirBuilder, Metadata};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A directory synwall refuses, or could not examine.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Someone but root or the running user can write it.
    #[error(
        "{what} directory {dir}: {problem}; synwall writes there as uid {uid} and refuses a \
         directory (or parent) that anyone but root or uid {uid} can write, where others \
         could plant links or files: make {path} owned by root and not writable by group or \
         others (chown root {path} && chmod go-w,-t {path}), or give synwall a directory of \
         its own"
    )]
    Unsafe {
        /// state, events or socket.
        what: &'static str,
        /// The directory configured.
        dir: PathBuf,
        /// The directory that fails (`dir` or an ancestor).
        path: PathBuf,
        /// Its owner and mode, and why they fail.
        problem: String,
        /// The running user.
        uid: u32,
    },
    /// It could not be created.
    #[error("{what} directory {dir}: creating it: {source}")]
    Create {
        /// state, events or socket.
        what: &'static str,
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Checks `dir` (for `what`: "state", "events", "socket") and its
/// ancestors by the rule above. Parts of the path that do not exist yet
/// are not checked (they will be created by synwall); nor is anything
/// that cannot be examined (what uses the directory then reports it).
pub fn check(what: &'static str, dir: &Path) -> Result<(), DirError> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = absolute(dir);
    let mut seen = Vec::new();
    for (path, is_dir_itself) in chain(&dir) {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if seen.contains(&path) {
            continue;
        }
        if let Some(problem) = problem(&meta, uid, is_dir_itself) {
            return Err(DirError::Unsafe {
                what,
                dir,
                path,
                problem,
                uid,
            });
        }
        seen.push(path);
    }
    Ok(())
}

/// The directories `config` has synwall write in, by what they hold.
pub fn of_config(config: &synwall_config::Config) -> Vec<(&'static str, &Path)> {
    let c = &config.control;
    let mut dirs = vec![("state", c.state_dir.as_path())];
    for (what, file) in [("events", &c.events), ("socket", &c.socket)] {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            dirs.push((what, dir));
        }
    }
    dirs
}

/// [`check`]s `dir`, creates what is missing of it (mode 0755), and
/// checks it again as created.
pub fn prepare(what: &'static str, dir: &Path) -> Result<(), DirError> {
    check(what, dir)?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| DirError::Create {
            what,
            dir: dir.to_owned(),
            source,
        })?;
    check(what, dir)
}

/// Creates file `path` anew for writing, never through a link: whatever
/// is at the path (a stale temp file, or a symbolic link someone planted)
/// is removed first, and the file is created with `O_EXCL | O_NOFOLLOW`.
pub fn create_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// `path` made absolute against the working directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The directories to check for `dir`: every prefix of it as given and,
/// as far as it exists, of its canonical form; each with whether it is
/// `dir` itself.
fn chain(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out: Vec<(PathBuf, bool)> = dir.ancestors().map(|p| (p.to_owned(), p == dir)).collect();
    // The deepest part that exists, canonical, and its ancestors.
    if let Some((existing, canonical)) = dir
        .ancestors()
        .find_map(|p| std::fs::canonicalize(p).ok().map(|c| (p, c)))
    {
        out.extend(
            canonical
                .ancestors()
                .map(|p| (p.to_owned(), existing == dir && p == canonical)),
        );
    }
    out
}

/// Why a directory with `meta` fails the rule for user `uid`, if it does.
fn problem(meta: &Metadata, uid: u32, is_dir_itself: bool) -> Option<String> {
    let mode = meta.permissions().mode() & 0o7777;
    let owner = meta.uid();
    let shown = format!("owned by {} with mode {mode:04o}", user_name(owner));
    if owner != 0 && owner != uid {
        return Some(format!("{shown}: another user owns it"));
    }
    let writable = mode & 0o022 != 0;
    let sticky = mode & 0o1000 != 0;
    if writable && (is_dir_itself || !sticky) {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Some(format!("{shown}: {who} can write it"));
    }
    None
}

/// `uid`'s user name and number ("nobody (uid 65534)"), or the number.
pub fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_mode(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn refuses_writable_dirs_and_allows_sticky_ancestors() {
        let base = std::env::temp_dir().join(format!("synwall-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("a/b");
        prepare("state", &dir).unwrap();
        set_mode(&base, 0o1777);
        check("state", &dir).unwrap();
        set_mode(&dir, 0o1777);
        let err = check("state", &dir).unwrap_err().to_string();
        assert!(
            err.contains("mode 1777") && err.contains("others can write"),
            "{err}"
        );
        set_mode(&dir, 0o755);
        set_mode(&base, 0o777);
        let err = check("state", &dir).unwrap_err().to_string();
        assert!(err.contains(&base.display().to_string()), "{err}");
        set_mode(&base, 0o755);
        // A link on the way is checked at both ends.
        let link = base.join("link");
        std::os::unix::fs::symlink(base.join("a"), &link).unwrap();
        check("state", &link.join("b")).unwrap();
        set_mode(&base.join("a"), 0o775);
        assert!(check("state", &link.join("b")).is_err());
        let _ = std::fs::remove_dir_all(&base);
    }
}
