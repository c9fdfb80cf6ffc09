//! The history store's size per active customer, worst case: every
//! customer sends every minute for the 48 h of minute buckets and every
//! hour for the 90 days of hourly ones (a quiet minute or hour costs
//! nothing, so real customers cost less).
//!
//! ```text
//! cargo run --release -p synwall-history --example size -- [CUSTOMERS] [DIR]
//! ```
//!
//! Writes as the appliance does (90 days of hourly counts, pruned, then
//! 48 h of minute counts), then reports the file's bytes, bytes per
//! customer, and that figure times 100,000.
use std::path::PathBuf;
use std::time::Instant;

use synwall_history::{MinuteCount, Store};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let dir = args.next().map_or_else(
        || std::env::temp_dir().join(format!("synwall-history-size-{}", std::process::id())),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("a directory for the store");
    let now: i64 = 29_450_000; // a Unix minute in 2026
    let (mut store, _) = Store::open(&dir, (now - 91 * 1440) as u64 * 60_000).expect("store");
    let names: Vec<String> = (0..n).map(|i| format!("customer-{i:06}")).collect();
    let t = Instant::now();
    // 90 days of hours (one count at each hour's start), a day a batch.
    let first_hour = (now - 90 * 1440) / 60;
    for day in 0..90 {
        let mut batch = Vec::with_capacity(n * 24);
        for (i, name) in names.iter().enumerate() {
            for h in 0..24 {
                let seen = 20 + ((i as u64 * 7 + h as u64 * 13) % 200);
                batch.push(MinuteCount {
                    customer: name.clone(),
                    minute: (first_hour + day * 24 + h) * 60,
                    seen,
                    forwarded: seen,
                });
            }
        }
        store.write(&batch, &[]).expect("write");
        store.prune(now).expect("prune");
    }
    // 48 h of minutes: 1-9 SYNs every minute, an hour a batch.
    for hour in 0..48 {
        let mut batch = Vec::with_capacity(n * 60);
        for (i, name) in names.iter().enumerate() {
            for m in 0..60 {
                let seen = 1 + ((i as u64 + m as u64) % 9);
                batch.push(MinuteCount {
                    customer: name.clone(),
                    minute: now - 48 * 60 + hour * 60 + m,
                    seen,
                    forwarded: seen,
                });
            }
        }
        store.write(&batch, &[]).expect("write");
    }
    store.prune(now).expect("prune");
    store.checkpoint().expect("checkpoint");
    let bytes = store.size_bytes();
    let per = bytes as f64 / n as f64;
    println!(
        "{n} customers, 90 d hourly + 48 h by the minute, every bucket non-zero: {bytes} bytes ({per:.0} per customer; x 100,000 = {:.2} GiB); filled in {:.1?}",
        per * 100_000.0 / (1u64 << 30) as f64,
        t.elapsed()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
