//! Reading an input file whole, bounded: only regular files, at most a
//! given number of bytes, so that a FIFO, `/dev/zero` or a runaway file
//! fails at once with its size in the error instead of filling memory.
use std::fs::{File, OpenOptions};
use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The most [`crate::Config::load`] reads of a config or customers file:
/// a million customers take about 94 MB, so this leaves room for ~2.7
/// million while a file of garbage fails before it is parsed.
pub const MAX_CONFIG_BYTES: u64 = 256 << 20;

/// Whether [`read_bounded`] follows a symbolic link at the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it (an operator's config may be a link).
    Follow,
    /// Refuse it (`O_NOFOLLOW`: files synwall writes itself).
    Refuse,
}

/// The whole of the regular file at `path`, if it holds at most `limit`
/// bytes. A FIFO or device is refused without blocking (it is opened
/// non-blocking and checked on the open descriptor); a file over the
/// bound is refused before it is read and, if it grows while being read,
/// at the bound. `what` names the kind of file in the error ("config
/// file").
pub fn read_bounded(path: &Path, limit: u64, links: Links, what: &str) -> Result<Vec<u8>, Error> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if links == Links::Refuse && e.raw_os_error() == Some(libc::ELOOP) {
                Error::new(
                    ErrorKind::InvalidInput,
                    "is a symbolic link, which synwall does not follow here; replace it with the file itself",
                )
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("not a regular file (a {what} must be one)"),
        ));
    }
    let too_large = |size: u64| {
        Error::new(
            ErrorKind::InvalidData,
            format!(
                "{size} bytes, over the {} a {what} may hold",
                show_bytes(limit)
            ),
        )
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    read_at_most(&mut file, limit, &mut data)?;
    if data.len() as u64 > limit {
        return Err(too_large(data.len() as u64));
    }
    Ok(data)
}

/// Reads `file` to its end into `data`, stopping one byte past `limit`.
fn read_at_most(file: &mut File, limit: u64, data: &mut Vec<u8>) -> Result<(), Error> {
    file.take(limit.saturating_add(1)).read_to_end(data)?;
    Ok(())
}

/// `bytes` as "256 MiB" (whole MiB or GiB when exact, else bytes).
pub fn show_bytes(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_bound_only() {
        let dir = std::env::temp_dir().join(format!("synwall-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(
            read_bounded(&file, 5, Links::Refuse, "f").unwrap(),
            b"12345"
        );
        let err = read_bounded(&file, 4, Links::Refuse, "test file").unwrap_err();
        assert!(
            err.to_string().contains("5 bytes, over the 4 bytes"),
            "{err}"
        );
        let link = dir.join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            read_bounded(&link, 5, Links::Follow, "f").unwrap(),
            b"12345"
        );
        let err = read_bounded(&link, 5, Links::Refuse, "f").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = read_bounded(Path::new("/dev/zero"), 5, Links::Follow, "f").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert_eq!(show_bytes(MAX_CONFIG_BYTES), "256 MiB");
        assert_eq!(show_bytes(2 << 30), "2 GiB");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
