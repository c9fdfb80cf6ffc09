//! Memory for the big per-customer tables: prefetch hints, and zeroed arrays
//! placed on 2 MB pages on the NUMA node of the cores that read them.
//!
//! The classifier's tables and the per-core shards are tens to hundreds of
//! MiB at a million customers, read at random by the workers: on 4 KB pages
//! nearly every lookup is a TLB miss as well as a cache miss. They are not
//! taken from the EAL's hugepage heap (`rte_malloc`): its size is fixed at
//! start (`-m`), the tests run `--no-huge`, and the tables outlive no EAL
//! rule (a reload frees them on a thread of its own, maybe after the EAL is
//! gone). Instead a [`HugeArray`] maps anonymous memory aligned to 2 MB,
//! asks the kernel for transparent huge pages on it (`MADV_HUGEPAGE`, which
//! works with THP set to `madvise` or `always`), and binds it to a NUMA node
//! when one is given (`mbind`, `MPOL_PREFERRED`: the node if it has room,
//! any other rather than failing). Where mapping fails it falls back to the
//! heap; with THP `never` it is plain 4 KB pages: slower, never wrong.
use std::ptr::NonNull;

use bytemuck::Zeroable;

/// Hints the CPU to bring the cache line holding `value` into all cache
/// levels. Never faults, costs one instruction, changes nothing observable.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and reads nothing the
    // program can observe; the address is a valid reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// The size of a huge page the arrays are aligned to.
pub const HUGE_PAGE: usize = 2 << 20;

/// Arrays smaller than this stay on the heap: a 2 MB mapping for a few KiB
/// of customers would waste most of it.
const MAP_AT_LEAST: usize = HUGE_PAGE / 2;

/// Where a [`HugeArray`] ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Mapped, 2 MB aligned, transparent huge pages asked for (the kernel
    /// grants them where THP is `madvise` or `always`).
    HugePages,
    /// Mapped, but the kernel refused `MADV_HUGEPAGE` (THP off): 4 KB pages.
    SmallPages,
    /// On the heap (small arrays, or mapping failed).
    Heap,
}

/// A fixed-size array of `T`, zero-initialised, on 2 MB pages where the
/// kernel allows (see the module docs). Owns its memory; unmaps it on drop.
///
/// The elements' pointer and length sit in the array itself, whatever the
/// backing: an access is the slice's, with no branch on where the memory
/// came from (a lookup reads three or four arrays a frame).
pub struct HugeArray<T> {
    /// `len` initialised elements: inside the mapping, or the heap slice
    /// that `Box::leak` gave up.
    ptr: NonNull<T>,
    len: usize,
    storage: Storage,
}

enum Storage {
    Mapped {
        /// The whole mapping, 2 MB aligned and a multiple of 2 MB.
        base: NonNull<u8>,
        bytes: usize,
        huge: bool,
    },
    /// `ptr`/`len` are a leaked `Box<[T]>`, taken back in `Drop`.
    Heap,
}

// SAFETY: a HugeArray owns its elements exactly as a Box<[T]> does; the
// raw pointers are never shared outside it.
unsafe impl<T: Send> Send for HugeArray<T> {}
// SAFETY: as above: &HugeArray only hands out &[T].
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T: Zeroable> HugeArray<T> {
    /// `len` zeroed elements, bound to NUMA `node` if given.
    pub fn zeroed(len: usize, node: Option<u32>) -> HugeArray<T> {
        let bytes = len.saturating_mul(size_of::<T>());
        if bytes >= MAP_AT_LEAST && align_of::<T>() <= HUGE_PAGE {
            if let Some((ptr, storage)) = map(bytes, node) {
                return HugeArray { ptr, len, storage };
            }
        }
        let heap: Box<[T]> = bytemuck::zeroed_slice_box(len);
        // A `Box` never holds a null pointer.
        let ptr = NonNull::from(Box::leak(heap)).cast::<T>();
        HugeArray {
            ptr,
            len,
            storage: Storage::Heap,
        }
    }

    /// The elements of `from`, copied into a new array.
    pub fn from_slice(from: &[T], node: Option<u32>) -> HugeArray<T>
    where
        T: Copy,
    {
        let mut a = HugeArray::zeroed(from.len(), node);
        a.as_mut_slice().copy_from_slice(from);
        a
    }
}

impl<T> HugeArray<T> {
    /// Where the memory is.
    pub fn backing(&self) -> Backing {
        match &self.storage {
            Storage::Mapped { huge: true, .. } => Backing::HugePages,
            Storage::Mapped { huge: false, .. } => Backing::SmallPages,
            Storage::Heap => Backing::Heap,
        }
    }

    /// The elements.
    #[inline(always)]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised (zeroed, then only
        // written through &mut self) elements that live as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The elements, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes it exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::Deref for HugeArray<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> std::ops::DerefMut for HugeArray<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HugeArray({} x {} B, {:?})",
            self.len(),
            size_of::<T>(),
            self.backing()
        )
    }
}

impl<T> Drop for HugeArray<T> {
    fn drop(&mut self) {
        let elements = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        match self.storage {
            Storage::Mapped { base, bytes, .. } => {
                // SAFETY: the elements are initialised and dropped once, here.
                unsafe { std::ptr::drop_in_place(elements) };
                // SAFETY: `base..base+bytes` is the mapping `map` made;
                // nothing refers into it any more.
                unsafe { libc::munmap(base.as_ptr().cast(), bytes) };
            }
            // SAFETY: `elements` is the slice `Box::leak` gave up in
            // `zeroed`, owned by self alone; it is freed once, here.
            Storage::Heap => drop(unsafe { Box::from_raw(elements) }),
        }
    }
}

/// Maps `bytes` rounded up to 2 MB, aligned to 2 MB: where the elements
/// start, and the mapping.
fn map<T>(bytes: usize, node: Option<u32>) -> Option<(NonNull<T>, Storage)> {
    let size = bytes.checked_next_multiple_of(HUGE_PAGE)?;
    // One huge page more than needed, so that a 2 MB aligned start exists
    // inside; the slack before and after is unmapped again.
    let span = size.checked_add(HUGE_PAGE)?;
    // SAFETY: a fresh private anonymous mapping; no existing memory is
    // touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let head = aligned - start;
    let tail = span - head - size;
    // SAFETY: both ranges lie inside the mapping just made and outside the
    // part kept.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + size) as *mut libc::c_void, tail);
        }
    }
    let base = aligned as *mut libc::c_void;
    // SAFETY: advice on memory this function owns; failure only means no
    // huge pages.
    let huge =
        huge_pages_wanted() && unsafe { libc::madvise(base, size, libc::MADV_HUGEPAGE) } == 0;
    if let Some(node) = node.filter(|_| numa_nodes() > 1) {
        bind(base, size, node);
    }
    Some((
        NonNull::new(base.cast::<T>())?,
        Storage::Mapped {
            base: NonNull::new(base.cast::<u8>())?,
            bytes: size,
            huge,
        },
    ))
}

/// Whether to ask for huge pages: yes unless `SYNWALL_HUGE_TABLES=0` (for
/// an operator who wants no THP compaction at all, and to measure what the
/// huge pages are worth).
fn huge_pages_wanted() -> bool {
    std::env::var_os("SYNWALL_HUGE_TABLES").is_none_or(|v| v != "0")
}

/// Prefers NUMA `node` for the pages of `base..base+size` (faulted later).
fn bind(base: *mut libc::c_void, size: usize, node: u32) {
    const MPOL_PREFERRED: libc::c_long = 1;
    let Some(mask) = 1u64.checked_shl(node) else {
        return;
    };
    // SAFETY: mbind reads `mask` (64 bits, maxnode 64) and sets a policy on
    // memory this process owns; a failure (no such node) leaves the
    // default policy.
    unsafe {
        libc::syscall(
            libc::SYS_mbind,
            base,
            size as libc::c_ulong,
            MPOL_PREFERRED,
            &mask as *const u64,
            64 as libc::c_ulong,
            0 as libc::c_uint,
        );
    }
}

/// The NUMA node of CPU `cpu`, as the kernel shows it (`None` if it shows
/// none: one node, or no such CPU).
pub fn cpu_node(cpu: u32) -> Option<u32> {
    std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{cpu}"))
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok())
}

/// NUMA nodes the kernel shows (1 where it shows none).
fn numa_nodes() -> usize {
    std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.strip_prefix("node")
                        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_and_writable_on_both_backings() {
        let mut small: HugeArray<u64> = HugeArray::zeroed(10, None);
        assert_eq!(small.backing(), Backing::Heap);
        let mut big: HugeArray<u64> = HugeArray::zeroed(3 << 20, Some(0));
        assert_ne!(big.backing(), Backing::Heap);
        for a in [&mut small, &mut big] {
            assert!(a.iter().all(|&x| x == 0));
            let n = a.len();
            a[n - 1] = 7;
            assert_eq!(a[n - 1], 7);
        }
        assert_eq!(big.as_ptr() as usize % HUGE_PAGE, 0, "2 MB aligned");
    }

    #[test]
    fn cpu_zero_is_on_a_node_if_any() {
        // Every CPU of a NUMA kernel is on some node; CPU 1<<20 exists nowhere.
        if numa_nodes() > 1 {
            assert!(cpu_node(0).is_some());
        }
        assert_eq!(cpu_node(1 << 20), None);
    }

    /// The kernel's AnonHugePages for the mapping that starts at `addr`, KiB.
    fn anon_huge_kib(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("AnonHugePages:") {
                    return v.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    #[test]
    fn gets_huge_pages_where_the_kernel_gives_them() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let mut a: HugeArray<u64> = HugeArray::zeroed(4 << 20, None); // 32 MiB
        if !huge_pages_wanted() || thp.contains("[never]") || thp.is_empty() {
            return; // nothing to ask the kernel for here
        }
        assert_eq!(a.backing(), Backing::HugePages);
        for i in (0..a.len()).step_by(512) {
            a[i] = i as u64;
        }
        let kib = anon_huge_kib(a.as_ptr() as usize).expect("mapping in smaps");
        // The kernel may be short of free 2 MB blocks: at least one.
        assert!(kib >= 2 << 10, "only {kib} KiB of 32 MiB on huge pages");
    }

    #[test]
    fn copies_and_drops() {
        let v: Vec<[u32; 4]> = (0..100_000).map(|i| [i, i + 1, i + 2, i + 3]).collect();
        let a = HugeArray::from_slice(&v, None);
        assert_eq!(&a[..], &v[..]);
        let empty: HugeArray<u32> = HugeArray::zeroed(0, None);
        assert!(empty.is_empty());
    }
}
