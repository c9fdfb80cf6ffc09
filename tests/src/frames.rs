//! Frame lists compared with a readable diff.

use std::fmt::Write as _;

/// Asserts two frame lists are equal, frame by frame, with a readable diff
/// (index, lengths and the first differing byte) instead of two huge dumps.
#[track_caller]
pub fn assert_frames_eq(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let mut msg = String::new();
    if got.len() != want.len() {
        writeln!(msg, "{what}: {} frames, expected {}", got.len(), want.len()).unwrap();
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let at = g.iter().zip(w.iter()).position(|(a, b)| a != b);
            writeln!(
                msg,
                "{what}: frame {i} differs (len {} vs expected {}, first difference at byte {at:?})\n  got  {}\n  want {}",
                g.len(),
                w.len(),
                hex(g),
                hex(w)
            )
            .unwrap();
        }
    }
    if got.len() != want.len() {
        for (i, g) in got.iter().enumerate() {
            writeln!(msg, "  got[{i}]  {}", hex(g)).unwrap();
        }
        for (i, w) in want.iter().enumerate() {
            writeln!(msg, "  want[{i}] {}", hex(w)).unwrap();
        }
    }
    assert!(msg.is_empty(), "{msg}");
}

/// Like [`assert_frames_eq`] but ignoring order.
#[track_caller]
pub fn assert_frames_eq_unordered(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let mut g = got.to_vec();
    let mut w = want.to_vec();
    g.sort();
    w.sort();
    assert_frames_eq(&g, &w, what);
}

/// Lowercase hex of a frame.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The frames of `all` at the given indices, in that order.
pub fn pick(all: &[Vec<u8>], indices: &[usize]) -> Vec<Vec<u8>> {
    indices.iter().map(|&i| all[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_comparison_catches_differences() {
        let a = vec![vec![1u8, 2, 3], vec![4, 5]];
        assert_frames_eq(&a, &a.clone(), "same");
        assert_frames_eq_unordered(&a, &[vec![4, 5], vec![1, 2, 3]], "reordered");
        let changed = vec![vec![1u8, 2, 3], vec![4, 6]];
        let r = std::panic::catch_unwind(|| assert_frames_eq(&a, &changed, "changed"));
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("frame 1 differs"), "{msg}");
        assert!(msg.contains("first difference at byte Some(1)"), "{msg}");
        let r = std::panic::catch_unwind(|| assert_frames_eq(&a, &a[..1], "shorter"));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| assert_frames_eq(&[], &a, "empty"));
        assert!(r.is_err());
    }
}
