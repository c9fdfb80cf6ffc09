//! The one thing the bench needs from a capture: its frames' mean size on
//! the wire, to turn Mpps into Gbit/s and line rates.
use std::path::Path;

/// Mean frame size on the wire (with the 4-byte FCS, 60 bytes minimum
/// before it, as `Mix::mean_wire_size` counts) and the number of frames.
pub fn mean_wire_size(path: &Path) -> Result<(f64, u64), String> {
    let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let bad = |why: &str| format!("{}: not a pcap file ({why})", path.display());
    let magic = data
        .get(..4)
        .ok_or_else(|| bad("shorter than its header"))?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(bad("unknown magic number")),
    };
    let word = |at: usize| -> Option<u64> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(u64::from(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }))
    };
    let (mut at, mut frames, mut bytes) = (24usize, 0u64, 0u64);
    while at < data.len() {
        let incl = word(at + 8).ok_or_else(|| bad("truncated record header"))?;
        let orig = word(at + 12).ok_or_else(|| bad("truncated record header"))?;
        bytes += orig.max(60) + 4;
        frames += 1;
        at += 16 + usize::try_from(incl).map_err(|_| bad("record too long"))?;
    }
    if frames == 0 {
        return Err(bad("no frames"));
    }
    Ok((bytes as f64 / frames as f64, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_two_frames_and_bad_files() {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1];
        f.resize(24, 0);
        for len in [60u32, 124] {
            f.extend([0; 8]);
            f.extend(len.to_le_bytes());
            f.extend(len.to_le_bytes());
            f.extend(vec![0; len as usize]);
        }
        let dir = std::env::temp_dir().join(format!("synwall-bench-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("two.pcap");
        std::fs::write(&p, &f).unwrap();
        assert_eq!(mean_wire_size(&p).unwrap(), (96.0, 2));
        std::fs::write(&p, b"nope").unwrap();
        assert!(mean_wire_size(&p).unwrap_err().contains("not a pcap file"));
        assert!(mean_wire_size(&dir.join("missing.pcap"))
            .unwrap_err()
            .contains("reading"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
