//! Internet checksum (RFC 1071) helpers, allocation- and panic-free: the
//! fast path (`reset`, answering a SYN) and the test-frame builder
//! (`craft`) both use them.

/// Adds `data` as big-endian 16-bit words to the running one's-complement
/// sum `acc` (an odd trailing byte is padded with zero). The sum is kept
/// unfolded in a `u64` so it cannot overflow for any frame size.
#[inline]
pub fn accumulate(acc: u64, data: &[u8]) -> u64 {
    let mut sum = acc;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let [hi, lo] = *w {
            sum += u64::from(u16::from_be_bytes([hi, lo]));
        }
    }
    if let [last] = *words.remainder() {
        sum += u64::from(u16::from_be_bytes([last, 0]));
    }
    sum
}

/// Folds a running sum into 16 bits and complements it: the value to
/// store in a checksum field.
#[inline]
pub fn finish(acc: u64) -> u16 {
    let mut sum = acc;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // `sum` fits in 16 bits after folding.
    !(sum as u16)
}

/// The internet checksum of `data`. Over a header whose checksum field
/// holds the right value, this returns 0.
#[inline]
pub fn internet_checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// Running sum of the IPv4 pseudo-header for a TCP/UDP segment.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u64 {
    let acc = accumulate(accumulate(0, &src), &dst);
    acc + u64::from(proto) + u64::from(l4_len)
}

/// Running sum of the IPv6 pseudo-header (RFC 8200 8.1).
#[inline]
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, l4_len: u32) -> u64 {
    let acc = accumulate(accumulate(0, &src), &dst);
    acc + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff) + u64::from(next_header)
}

/// TCP/UDP checksum of `segment` over IPv4, computed with whatever the
/// segment's checksum field holds (zero it first to compute; a segment
/// with a correct checksum yields 0).
#[inline]
pub fn l4_checksum_v4(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    finish(accumulate(pseudo_header_v4(src, dst, proto, len), segment))
}

/// TCP/UDP checksum of `segment` over IPv6; same contract as
/// [`l4_checksum_v4`].
#[inline]
pub fn l4_checksum_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    finish(accumulate(
        pseudo_header_v6(src, dst, next_header, len),
        segment,
    ))
}

/// RFC 1624 incremental update: the new checksum after a 16-bit word of
/// the covered data changed from `old` to `new`.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    // HC' = ~(~HC + ~m + m')
    finish(u64::from(!check) + u64::from(!old) + u64::from(new))
}
