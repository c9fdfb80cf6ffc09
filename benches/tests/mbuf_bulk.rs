//! `Mempool::alloc_bulk`, `MbufBurst::truncate` and `MbufBurst::take_marked`
//! on a real EAL
//! (`--no-huge`, no devices): ownership stays exact, whatever the outcome.
//! One EAL per process, so everything is one test.
use synwall_dpdk::{Eal, Mbuf, MbufBurst, Mempool, BURST};

#[test]
fn bulk_allocation_is_all_or_nothing_and_leaks_nothing() {
    let tag = format!("swg-bulk-{}_", std::process::id());
    let _runtime_dir = synwall_benches::bench::host::RuntimeDirs::new(tag.clone());
    let prefix = format!("--file-prefix={tag}");
    let eal = Eal::init(&[
        "mbuf_bulk",
        "--no-huge",
        "-m",
        "64",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0",
        "--log-level=*:error",
        &prefix,
    ])
    .expect("EAL with --no-huge");
    {
        // No per-lcore cache: in_use/available are exact.
        let pool = Mempool::new(&eal, "bulk_test", 63, 0, -1).expect("mempool");
        assert_eq!(pool.in_use(), 0);

        let mut a = MbufBurst::new();
        assert!(pool.alloc_bulk(&mut a, 0), "n = 0 succeeds");
        assert!(a.is_empty());
        assert!(!pool.alloc_bulk(&mut a, BURST + 1), "more than the room");
        assert!(a.is_empty());
        assert_eq!(pool.in_use(), 0);

        assert!(pool.alloc_bulk(&mut a, 20));
        assert_eq!(a.len(), 20);
        assert!(pool.alloc_bulk(&mut a, 12), "up to the room");
        assert_eq!(a.len(), BURST);
        assert_eq!(pool.in_use(), 32);
        assert!(!pool.alloc_bulk(&mut a, 1), "a full burst has no room");
        // Fresh mbufs are reset: one segment, no data, room for a frame.
        for m in a.as_mut_slice() {
            assert_eq!(m.segments(), 1);
            assert_eq!(m.pkt_len(), 0);
            assert!(m.capacity() >= 1518);
            assert!(m.set_len(64));
            m.data_mut()[0] = 0xab;
        }

        // 31 left: a burst of 32 fails whole and changes nothing.
        let mut b = MbufBurst::new();
        assert!(!pool.alloc_bulk(&mut b, 32));
        assert!(b.is_empty());
        assert_eq!(pool.in_use(), 32);
        assert_eq!(pool.available(), 31);
        assert!(pool.alloc_bulk(&mut b, 31));
        assert_eq!(pool.available(), 0);
        assert!(Mbuf::alloc(&pool).is_none());

        // truncate returns exactly the tail.
        b.truncate(40);
        assert_eq!(b.len(), 31, "truncate past the end does nothing");
        b.truncate(10);
        assert_eq!(b.len(), 10);
        assert_eq!(pool.in_use(), 32 + 10);
        // Mbufs moved out of a burst are owned one by one.
        let taken: Vec<Mbuf> = a.drain().take(5).collect();
        assert!(a.is_empty(), "the drained rest was freed");
        assert_eq!(pool.in_use(), 5 + 10);
        drop(taken);
        b.truncate(0);
        assert!(b.is_empty());
        assert_eq!(pool.in_use(), 0);

        // take_marked keeps the stayers in order and hands each marked one,
        // in order, to its new owner: none lost, none freed twice. Every mask
        // of a burst of 5 and a sample of masks of full bursts (bits past
        // the length ignored).
        {
            let mut masks: Vec<(usize, u32)> = (0..64).map(|m| (5, m)).collect();
            let mut x = 0x9e37_79b9u32;
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                masks.push((BURST, x));
                masks.push((BURST, x & (x >> 3)));
            }
            masks.extend([
                (BURST, 0),
                (BURST, u32::MAX),
                (BURST, 1 << 31),
                (0, u32::MAX),
            ]);
            for (len, mask) in masks {
                let mut r = MbufBurst::new();
                assert!(pool.alloc_bulk(&mut r, len));
                for (i, m) in r.as_mut_slice().iter_mut().enumerate() {
                    assert!(m.set_len(64));
                    m.data_mut()[0] = i as u8;
                }
                let marked = |i: usize| i < 32 && mask >> i & 1 == 1;
                let mut away: Vec<(usize, Mbuf)> = Vec::new();
                r.take_marked(mask, |i, m| away.push((i, m)));
                let kept: Vec<u8> = r.as_slice().iter().map(|m| m.data()[0]).collect();
                let want_kept: Vec<u8> =
                    (0..len).filter(|&i| !marked(i)).map(|i| i as u8).collect();
                assert_eq!(kept, want_kept, "mask {mask:#x} of {len}");
                let moved: Vec<(usize, u8)> = away.iter().map(|(i, m)| (*i, m.data()[0])).collect();
                let want_moved: Vec<(usize, u8)> = (0..len)
                    .filter(|&i| marked(i))
                    .map(|i| (i, i as u8))
                    .collect();
                assert_eq!(moved, want_moved, "mask {mask:#x} of {len}");
                assert_eq!(pool.in_use(), len as u32, "none lost, none freed");
                drop(away);
                drop(r);
                assert_eq!(pool.in_use(), 0, "each freed once");
            }
        }

        // Dropping a burst frees what it holds, once.
        {
            let mut c = MbufBurst::new();
            assert!(pool.alloc_bulk(&mut c, BURST));
            assert_eq!(pool.in_use(), BURST as u32);
        }
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.available(), 63);
    }
    drop(eal);
}
