//! The encoding of one row's buckets, as LEB128 varints.
//!
//! A row is one hour of one customer's minutes (60 slots) or one day of its
//! hours (24). Each non-zero bucket is `v = seen << 1 | (dropped > 0)`,
//! followed by `dropped = seen - forwarded` only when that bit is set: for
//! almost every customer almost always nothing is dropped, so a bucket of
//! fewer than 64 SYNs costs one byte. The row starts with a form byte:
//!
//! - `0`, sparse: `slot, v [, dropped]` for each non-zero bucket, slots
//!   ascending;
//! - `1`, dense: `v [, dropped]` for every slot from 0 to the last non-zero
//!   one (an empty bucket is `v = 0`, one byte).
//!
//! The encoder picks the shorter. A customer sending a few SYNs every minute
//! costs ~61 bytes an hour of minutes and ~49 a day of hours; a quiet
//! minute costs nothing.
use integer_encoding::VarInt;

/// One bucket of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slot {
    /// Position in the row (minute of the hour, or hour of the day).
    pub slot: u8,
    /// Watched SYNs seen.
    pub seen: u64,
    /// Of those, forwarded.
    pub forwarded: u64,
}

/// Why a blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The bytes end inside an entry.
    #[error("row ends inside an entry at byte {0}")]
    Truncated(usize),
    /// Slots out of order or out of range.
    #[error("slot {slot} out of order or beyond {max}")]
    BadSlot {
        /// The slot read.
        slot: u64,
        /// The row's number of slots.
        max: u8,
    },
    /// The form byte is neither sparse nor dense.
    #[error("unknown row form {0}")]
    BadForm(u8),
    /// More dropped than seen.
    #[error("slot {0}: more dropped than seen")]
    BadCounts(u8),
}

const SPARSE: u8 = 0;
const DENSE: u8 = 1;

fn put(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 10];
    let n = v.encode_var(&mut buf);
    out.extend_from_slice(&buf[..n]);
}

fn put_bucket(out: &mut Vec<u8>, s: &Slot) {
    let dropped = s.seen.saturating_sub(s.forwarded);
    put(out, s.seen.min(u64::MAX >> 1) << 1 | u64::from(dropped > 0));
    if dropped > 0 {
        put(out, dropped);
    }
}

/// Encodes `slots` (ascending, distinct; zero ones are skipped).
pub fn encode(slots: &[Slot]) -> Vec<u8> {
    let live: Vec<&Slot> = slots.iter().filter(|s| s.seen > 0).collect();
    let mut sparse = vec![SPARSE];
    for s in &live {
        sparse.push(s.slot);
        put_bucket(&mut sparse, s);
    }
    let mut dense = vec![DENSE];
    let mut next = 0u8;
    for s in &live {
        while next < s.slot {
            dense.push(0);
            next += 1;
        }
        put_bucket(&mut dense, s);
        next = s.slot.saturating_add(1);
    }
    if dense.len() < sparse.len() {
        dense
    } else {
        sparse
    }
}

/// Decodes a row of `max` slots.
pub fn decode(bytes: &[u8], max: u8) -> Result<Vec<Slot>, BlobError> {
    let mut out = Vec::new();
    let Some((&form, body)) = bytes.split_first() else {
        return Ok(out);
    };
    if form > DENSE {
        return Err(BlobError::BadForm(form));
    }
    let mut at = 0;
    let mut next_min = 0u64;
    let var = |at: &mut usize| -> Result<u64, BlobError> {
        let (x, n) = u64::decode_var(&body[*at..]).ok_or(BlobError::Truncated(*at + 1))?;
        *at += n;
        Ok(x)
    };
    while at < body.len() {
        let slot = if form == SPARSE {
            at += 1;
            u64::from(body[at - 1])
        } else {
            next_min
        };
        if slot < next_min || slot >= u64::from(max) {
            return Err(BlobError::BadSlot { slot, max });
        }
        next_min = slot + 1;
        let v = var(&mut at)?;
        let seen = v >> 1;
        let dropped = if v & 1 == 1 { var(&mut at)? } else { 0 };
        if dropped > seen {
            return Err(BlobError::BadCounts(slot as u8));
        }
        if seen > 0 {
            out.push(Slot {
                slot: slot as u8,
                seen,
                forwarded: seen - dropped,
            });
        }
    }
    Ok(out)
}

/// Adds `more` into `into` (both ascending by slot).
pub fn merge(into: &mut Vec<Slot>, more: &[Slot]) {
    for m in more {
        match into.binary_search_by_key(&m.slot, |s| s.slot) {
            Ok(i) => {
                into[i].seen = into[i].seen.saturating_add(m.seen);
                into[i].forwarded = into[i].forwarded.saturating_add(m.forwarded);
            }
            Err(i) => into.insert(i, *m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_skips_zeros_and_keeps_order() {
        let slots = [
            Slot {
                slot: 0,
                seen: 3,
                forwarded: 3,
            },
            Slot {
                slot: 5,
                seen: 0,
                forwarded: 0,
            },
            Slot {
                slot: 59,
                seen: 1 << 40,
                forwarded: 17,
            },
        ];
        let bytes = encode(&slots);
        let back = decode(&bytes, 60).unwrap();
        assert_eq!(back, vec![slots[0], slots[2]]);
        // A minute of 3 SYNs, nothing dropped: form, then one byte.
        assert_eq!(encode(&slots[..1]), vec![1, 6]);
        // Every minute of an hour, a few SYNs each: dense, 61 bytes.
        let hour: Vec<Slot> = (0..60)
            .map(|i| Slot {
                slot: i,
                seen: 5,
                forwarded: 5,
            })
            .collect();
        let bytes = encode(&hour);
        assert_eq!(bytes.len(), 61);
        assert_eq!(decode(&bytes, 60).unwrap(), hour);
        // One busy minute late in the hour: sparse.
        assert_eq!(encode(&slots[2..])[0], SPARSE);
    }

    #[test]
    fn damaged_rows_are_errors_not_panics() {
        let good = encode(&[
            Slot {
                slot: 1,
                seen: 300,
                forwarded: 300,
            },
            Slot {
                slot: 2,
                seen: 1,
                forwarded: 0,
            },
        ]);
        for cut in 1..good.len() {
            let r = decode(&good[..cut], 60);
            assert!(r.is_err() || r.unwrap().len() <= 1, "cut at {cut}");
        }
        assert_eq!(
            decode(&[0, 2, 2, 1, 2], 60),
            Err(BlobError::BadSlot { slot: 1, max: 60 })
        );
        assert_eq!(
            decode(&[0, 24, 2], 24),
            Err(BlobError::BadSlot { slot: 24, max: 24 })
        );
        assert_eq!(
            decode(&[1, 2, 2, 2], 2),
            Err(BlobError::BadSlot { slot: 2, max: 2 })
        );
        assert_eq!(decode(&[0, 3, 3, 2], 60), Err(BlobError::BadCounts(3)));
        assert_eq!(decode(&[7], 60), Err(BlobError::BadForm(7)));
        assert!(matches!(
            decode(&[0, 3, 0xff], 60),
            Err(BlobError::Truncated(_))
        ));
        assert!(matches!(decode(&[1, 3], 60), Err(BlobError::Truncated(_))));
    }

    #[test]
    fn merge_adds_and_inserts() {
        let mut a = vec![Slot {
            slot: 4,
            seen: 2,
            forwarded: 1,
        }];
        merge(
            &mut a,
            &[
                Slot {
                    slot: 1,
                    seen: 1,
                    forwarded: 1,
                },
                Slot {
                    slot: 4,
                    seen: 3,
                    forwarded: 3,
                },
            ],
        );
        assert_eq!(
            a,
            vec![
                Slot {
                    slot: 1,
                    seen: 1,
                    forwarded: 1
                },
                Slot {
                    slot: 4,
                    seen: 5,
                    forwarded: 4
                }
            ]
        );
    }
}
