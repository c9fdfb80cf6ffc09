//! The poll-mode worker: one per dataplane lcore, run to completion.
//!
//! A worker owns the rx queues it polls and one tx queue on every port, so
//! nothing on its path is shared for writing: it receives a burst, decides
//! every frame, and sends each verdict group in one burst. No allocation,
//! no locks, no syscalls, no panics in the loop.
//!
//! It lives here, with the appliance that launches it, rather than in
//! `synwall-dataplane` (which must build without DPDK) or in `synwall-dpdk`
//! (the safe layer knows nothing of verdicts, and the packet path already
//! depends on it for its table memory: the other way round would be a
//! dependency cycle).
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::Cache;
use synwall_dataplane::generation::{Generation, SharedGeneration};
use synwall_dataplane::reset::syn_to_rst;
use synwall_dataplane::shard::{add, bump, WorkerStats};
use synwall_dataplane::verdict::{parse_frame, BurstJudge, Frame, Tally, Verdict};
use synwall_dpdk::{Mbuf, MbufBurst, RxQueue, TxQueue};

/// Which way frames on a path travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Customers → upstream: inspected.
    Outbound,
    /// Upstream → customers: forwarded without inspection.
    Inbound,
}

/// One rx queue a worker polls and where its frames go.
#[derive(Debug)]
pub struct RxPath {
    /// The queue polled.
    pub rx: RxQueue,
    /// Index into [`Worker::tx`] of the paired port's tx queue.
    pub tx_onward: usize,
    /// Index into [`Worker::tx`] of this port's own tx queue (RSTs go back).
    pub tx_back: usize,
    pub direction: Direction,
}

/// Everything one worker lcore owns.
pub struct Worker {
    /// The paths it polls, in order.
    pub paths: Vec<RxPath>,
    /// One tx queue per port it sends on.
    pub tx: Vec<TxQueue>,
    /// The customer set (classifier, policy and shards), swapped on reload.
    pub generation: SharedGeneration,
    /// This worker's index into `Generation::shards`.
    pub index: usize,
    /// This worker's frame counters.
    pub stats: Arc<WorkerStats>,
    pub stop: Arc<AtomicBool>,
    /// Scratch for deciding a burst in stages.
    pub judge: BurstJudge,
}

// Every frame of an rx burst gets a verdict.
const _: () = assert!(synwall_dpdk::BURST <= synwall_dataplane::verdict::BURST);

/// Busy poll rounds between two publications of a worker's frame counts
/// (at most 64 bursts a path: some 2,000 frames, tens of microseconds at
/// line rate, behind a reader; the control plane's tick is 100 ms). Each
/// publication is a couple of dozen loads and stores to lines the control
/// thread reads, which a busy mix paid once a burst.
const PUBLISH_ROUNDS: u32 = 64;

/// Rounds of the shutdown drain: after `stop`, the worker keeps polling until
/// a round over all its queues receives nothing, at most this many rounds.
const DRAIN_ROUNDS: usize = 4096;

impl Worker {
    /// Polls until `stop` is set, then drains what is still queued.
    pub fn run(mut self) {
        let mut rx = MbufBurst::new();
        let mut back = MbufBurst::new();
        let mut dropped = MbufBurst::new();
        // A cached handle: a poll round checks one pointer for a newer
        // generation instead of taking a full arc-swap load.
        let mut current = Cache::new(self.generation.clone());
        let mut seen_generation = 0;
        // Counted on this core's stack, published every PUBLISH_ROUNDS
        // busy rounds and after every round that received nothing.
        let mut tally = Tally::default();
        let mut unpublished = 0;
        while !self.stop.load(Relaxed) {
            let gen = current.load();
            let got = self.round(gen, &mut rx, &mut back, &mut dropped, &mut tally);
            unpublished += 1;
            if got == 0 || unpublished >= PUBLISH_ROUNDS {
                self.publish(&mut tally);
                unpublished = 0;
            }
            if gen.number != seen_generation {
                seen_generation = gen.number;
                self.stats.generation.store(seen_generation, Relaxed);
            }
        }
        for _ in 0..DRAIN_ROUNDS {
            let gen = current.load();
            if self.round(gen, &mut rx, &mut back, &mut dropped, &mut tally) == 0 {
                break;
            }
        }
        self.publish(&mut tally);
    }

    /// Adds what `tally` counted to this worker's shared counters and
    /// starts it again.
    #[inline]
    fn publish(&self, tally: &mut Tally) {
        tally.publish(&self.stats);
        *tally = Tally::default();
    }

    /// One pass over every path; returns the frames received.
    #[inline]
    fn round(
        &mut self,
        gen: &Generation,
        rx: &mut MbufBurst,
        back: &mut MbufBurst,
        dropped: &mut MbufBurst,
        tally: &mut Tally,
    ) -> usize {
        let Some(shard) = gen.shards.get(self.index) else {
            return 0;
        };
        let classifier = &*gen.classifier;
        let stats = &*self.stats;
        let mut total = 0;
        for path in self.paths.iter_mut() {
            let n = path.rx.rx(rx);
            if n == 0 {
                continue;
            }
            total += n;
            tally.rx += n as u64;
            match path.direction {
                Direction::Inbound => {
                    tally.reverse_forwarded += n as u64;
                }
                Direction::Outbound => {
                    for m in rx.as_slice() {
                        m.prefetch();
                    }
                    let frames = rx.as_slice().iter().map(frame);
                    self.judge
                        .judge(frames, &gen.policy, classifier, shard, tally);
                    let judge = &self.judge;
                    // What is forwarded stays in `rx`, in order; the rest
                    // moves out (the rare case: out of the loop's way, and
                    // only the frames that leave are visited).
                    let away = judge.away_mask();
                    if away != 0 {
                        let verdicts = judge.verdicts();
                        rx.take_marked(away, |i, m| match verdicts.get(i) {
                            Some(Verdict::DropMalformed) => {
                                tally.dropped_malformed += 1;
                                keep(dropped, m, stats);
                            }
                            Some(Verdict::Reset) => {
                                let parsed = parse_frame(frame(&m), &gen.policy);
                                let mut m = m;
                                match syn_to_rst(m.data_mut(), &parsed) {
                                    Some(len) if m.set_len(len) => {
                                        tally.reset_sent += 1;
                                        keep(back, m, stats);
                                    }
                                    _ => {
                                        tally.dropped_blocked += 1;
                                        keep(dropped, m, stats);
                                    }
                                }
                            }
                            // DropBlocked (a marked frame is never Forward).
                            _ => {
                                tally.dropped_blocked += 1;
                                keep(dropped, m, stats);
                            }
                        });
                    }
                    tally.forwarded += rx.len() as u64;
                }
            }
            send(&mut self.tx, path.tx_onward, rx, stats);
            send(&mut self.tx, path.tx_back, back, stats);
            dropped.free_all();
        }
        tally.polls += 1;
        tally.busy_polls += u64::from(total > 0);
        total
    }
}

/// What the judges read of an mbuf.
#[inline(always)]
fn frame(m: &Mbuf) -> Frame<'_> {
    Frame {
        data: m.data(),
        wire_len: m.pkt_len() as usize,
    }
}

/// Moves an mbuf into a burst of the same capacity as the rx burst it came
/// from; a full burst cannot happen, and if it did the mbuf would be freed
/// and counted rather than panic.
#[inline(always)]
fn keep(burst: &mut MbufBurst, m: Mbuf, stats: &WorkerStats) {
    if let Err(m) = burst.push(m) {
        overflow(m, stats);
    }
}

#[cold]
fn overflow(m: Mbuf, stats: &WorkerStats) {
    bump(&stats.verdicts.tx_full);
    drop(m);
}

/// Sends a burst on `tx[queue]`; what the ring did not take is freed and
/// counted.
#[inline(always)]
fn send(tx: &mut [TxQueue], queue: usize, burst: &mut MbufBurst, stats: &WorkerStats) {
    if burst.is_empty() {
        return;
    }
    if let Some(q) = tx.get_mut(queue) {
        q.tx(burst);
    }
    if !burst.is_empty() {
        add(&stats.verdicts.tx_full, burst.len() as u64);
        burst.free_all();
    }
}
