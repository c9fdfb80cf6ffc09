//! Minimal classic libpcap file reader and writer (Ethernet frames only), for
//! test fixtures, the `net_pcap` virtual device and the traffic generator.
//!
//! The writer emits microsecond-resolution, little-endian files with
//! LINKTYPE_ETHERNET and a 65535-byte snap length. The reader accepts either
//! byte order and micro- or nanosecond files, and returns an error, never a
//! panic or a huge allocation, on anything else.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Magic number of microsecond-resolution pcap files.
const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Magic number of nanosecond-resolution pcap files.
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snap length written to file headers: no frame we handle is longer.
pub const SNAPLEN: u32 = 65535;
/// Largest record the reader accepts, whatever the file header claims, so a
/// corrupt length cannot make it allocate gigabytes (libpcap uses 256 KiB).
const MAX_RECORD: u32 = 262_144;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Writes `frames` to a new pcap file at `path`, one record per frame, with
/// timestamps one microsecond apart from the epoch (the order is what matters
/// to replay; real times would make fixtures differ run to run).
pub fn write_pcap(path: impl AsRef<Path>, frames: &[Vec<u8>]) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    write_pcap_to(&mut out, frames)?;
    out.flush()
}

/// Writes a pcap stream holding `frames` to `out` (see [`write_pcap`]).
/// Frames longer than the snap length are truncated to it, their original
/// length kept in the record header, as libpcap does.
pub fn write_pcap_to(out: &mut impl Write, frames: &[Vec<u8>]) -> io::Result<()> {
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&MAGIC_USEC.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    header.extend_from_slice(&SNAPLEN.to_le_bytes());
    header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    out.write_all(&header)?;
    for (i, frame) in frames.iter().enumerate() {
        let usec = u64::try_from(i).unwrap_or(u64::MAX);
        let sec = u32::try_from(usec / 1_000_000).unwrap_or(u32::MAX);
        let sub = (usec % 1_000_000) as u32;
        let orig = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl = orig.min(SNAPLEN);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&sec.to_le_bytes());
        rec[4..8].copy_from_slice(&sub.to_le_bytes());
        rec[8..12].copy_from_slice(&incl.to_le_bytes());
        rec[12..16].copy_from_slice(&orig.to_le_bytes());
        out.write_all(&rec)?;
        out.write_all(frame.get(..incl as usize).unwrap_or(frame))?;
    }
    Ok(())
}

/// Reads every frame of the pcap file at `path`.
pub fn read_pcap(path: impl AsRef<Path>) -> io::Result<Vec<Vec<u8>>> {
    read_pcap_from(BufReader::new(File::open(path)?))
}

/// Reads `buf.len()` bytes, or reports a clear error if the stream ends
/// early (`what` names the part being read).
fn read_exact_or(input: &mut impl Read, buf: &mut [u8], what: &str) -> io::Result<()> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("pcap: truncated {what}"),
            )
        } else {
            e
        }
    })
}

/// Reads every frame of a pcap stream.
pub fn read_pcap_from(mut input: impl Read) -> io::Result<Vec<Vec<u8>>> {
    let mut header = [0u8; 24];
    read_exact_or(&mut input, &mut header, "file header")?;
    let magic = [header[0], header[1], header[2], header[3]];
    let little = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
        (MAGIC_USEC | MAGIC_NSEC, _) => true,
        (_, MAGIC_USEC | MAGIC_NSEC) => false,
        _ => return Err(invalid("pcap: bad magic number (not a classic pcap file)")),
    };
    let u32_at = |b: &[u8], at: usize| -> u32 {
        let bytes = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        }
    };
    let linktype = u32_at(&header, 20) & 0x0fff_ffff; // high bits: FCS info
    if linktype != LINKTYPE_ETHERNET {
        return Err(invalid(format!(
            "pcap: link type {linktype} is not Ethernet (1)"
        )));
    }
    let mut frames = Vec::new();
    loop {
        let mut rec = [0u8; 16];
        // A clean end of file is only allowed between records.
        match input.read(&mut rec[..1])? {
            0 => return Ok(frames),
            _ => read_exact_or(&mut input, &mut rec[1..], "record header")?,
        }
        let incl = u32_at(&rec, 8);
        if incl > MAX_RECORD {
            return Err(invalid(format!(
                "pcap: record {} claims {incl} bytes (max {MAX_RECORD})",
                frames.len()
            )));
        }
        let mut frame = vec![0u8; incl as usize];
        read_exact_or(&mut input, &mut frame, "record data")?;
        frames.push(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_a_file() {
        let dir = std::env::temp_dir().join(format!("synwall-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rt.pcap");
        let frames = vec![vec![1u8; 60], vec![], vec![0xab; 1514]];
        write_pcap(&path, &frames).unwrap();
        assert_eq!(read_pcap(&path).unwrap(), frames);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(bytes.len(), 24 + 3 * 16 + 60 + 1514);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_big_endian_files() {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC_USEC.to_be_bytes());
        b.extend_from_slice(&[
            0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1,
        ]);
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 7, 8, 9]);
        assert_eq!(read_pcap_from(&b[..]).unwrap(), vec![vec![7, 8, 9]]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_pcap_from(&b""[..]).is_err());
        assert!(read_pcap_from(&[0u8; 24][..]).is_err());
        let mut ok = Vec::new();
        write_pcap_to(&mut ok, &[vec![1, 2, 3, 4]]).unwrap();
        // Truncated record data and record header.
        assert!(read_pcap_from(&ok[..ok.len() - 1]).is_err());
        assert!(read_pcap_from(&ok[..30]).is_err());
        // Absurd record length.
        let mut huge = ok.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_pcap_from(&huge[..]).is_err());
        // Wrong link type.
        let mut raw_ip = ok;
        raw_ip[20] = 101;
        assert!(read_pcap_from(&raw_ip[..]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = read_pcap_from(&bytes[..]);
        }
    }
}
