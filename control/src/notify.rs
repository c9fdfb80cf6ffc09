//! systemd's notify protocol (`sd_notify(3)`): readiness, a one-line
//! status, stopping, and a watchdog that is fed only while the appliance
//! really works.
//!
//! [`Notifier`] sends the messages (through the `sd-notify` crate) when
//! `NOTIFY_SOCKET` is set; a failed send is counted and reported once, never
//! fatal: systemd missing a message must not stop the forwarding.
//! [`Liveness`] decides whether a watchdog ping is deserved: every worker's
//! poll counter advanced and the control tick ran since the last check.
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use serde_json::{json, Value};
use synwall_dataplane::shard::WorkerStats;

/// How often liveness is checked when systemd asks for no watchdog (the
/// status still reports stalled workers).
const CHECK_WITHOUT_WATCHDOG: Duration = Duration::from_secs(1);

/// The shortest check period: the main loop wakes every 10 ms.
const MIN_CHECK: Duration = Duration::from_millis(20);

/// The link to systemd, when synwall runs under it (or a test plays it).
#[derive(Debug)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` was set.
    enabled: bool,
    /// `WATCHDOG_USEC` (for this process), if set.
    watchdog: Option<Duration>,
    /// Messages sent, and sends that failed.
    pub sent: u64,
    pub failures: u64,
    /// The last failure, for `status`.
    pub last_error: Option<String>,
    /// Watchdog pings sent, and checks that withheld one.
    pub pings: u64,
    pub withheld: u64,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        // A zero watchdog is "off" (systemd never sends one, a hand-set
        // variable might).
        let watchdog = sd_notify::watchdog_enabled().filter(|d| !d.is_zero());
        if std::env::var_os("WATCHDOG_USEC").is_some() && watchdog.is_none() {
            crate::console::err(format!(
                "synwall: ignoring WATCHDOG_USEC={:?} (not a positive number of microseconds for this process)",
                std::env::var_os("WATCHDOG_USEC").unwrap_or_default()
            ));
        }
        Notifier {
            enabled,
            watchdog,
            sent: 0,
            failures: 0,
            last_error: None,
            pings: 0,
            withheld: 0,
        }
    }

    /// Whether systemd (or whoever set `NOTIFY_SOCKET`) is listening.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog timeout systemd set, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often liveness is checked and, when it holds, the watchdog fed:
    /// half the watchdog timeout, as `sd_watchdog_enabled(3)` advises.
    pub fn check_period(&self) -> Duration {
        match self.watchdog {
            Some(w) => (w / 2).max(MIN_CHECK),
            None => CHECK_WITHOUT_WATCHDOG,
        }
    }

    /// `READY=1` with the first status line.
    pub fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `STATUS=` a new line.
    pub fn status(&mut self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `STOPPING=1` with a last status line.
    pub fn stopping(&mut self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1`, if systemd watches.
    pub fn ping(&mut self) {
        if self.watchdog.is_some() {
            self.pings += 1;
            self.send(&[NotifyState::Watchdog]);
        }
    }

    fn send(&mut self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        match sd_notify::notify(states) {
            Ok(()) => self.sent += 1,
            Err(e) => {
                self.failures += 1;
                let why = format!(
                    "notifying systemd through NOTIFY_SOCKET={:?}: {e}",
                    std::env::var_os("NOTIFY_SOCKET").unwrap_or_default()
                );
                // Said once per kind of failure, counted always.
                if self.last_error.as_deref() != Some(&why) {
                    crate::console::err(format!(
                        "synwall: {why} (counted; forwarding is not affected)"
                    ));
                }
                self.last_error = Some(why);
            }
        }
    }

    /// What `status` reports under `"systemd"`.
    pub fn status_value(&self) -> Value {
        json!({
            "notify": self.enabled,
            "watchdog_usec": self.watchdog.map(|w| w.as_micros() as u64),
            "messages_sent": self.sent,
            "send_failures": self.failures,
            "last_error": self.last_error,
            "watchdog_pings": self.pings,
            "watchdog_withheld": self.withheld,
        })
    }
}

/// Whether the appliance works: each worker's poll counter and the tick
/// count, as of the last check.
#[derive(Debug)]
pub struct Liveness {
    workers: Vec<Arc<WorkerStats>>,
    /// Each worker's poll rounds at the last check.
    polls: Vec<u64>,
    /// Ticks at the last check, and when the count last moved.
    ticks: u64,
    tick_moved: Instant,
    /// When the last check was.
    pub checked: Instant,
    /// The workers (by index) whose poll counter stood still at the last
    /// check.
    pub stalled: Vec<usize>,
    /// The tick did not run between the last two checks.
    pub tick_stalled: bool,
}

impl Liveness {
    /// Starts watching `workers` and the tick count `ticks`.
    pub fn new(workers: &[Arc<WorkerStats>], ticks: u64) -> Liveness {
        Liveness {
            polls: workers
                .iter()
                .map(|w| w.verdicts.polls.load(Relaxed))
                .collect(),
            workers: workers.to_vec(),
            ticks,
            tick_moved: Instant::now(),
            checked: Instant::now(),
            stalled: Vec::new(),
            tick_stalled: false,
        }
    }

    /// Compares with the last check: true when every worker polled at
    /// least once more and the tick count moved within `tick_grace` (a
    /// slow tick interval may leave a check period without a tick).
    pub fn check(&mut self, ticks: u64, tick_grace: Duration) -> bool {
        self.stalled.clear();
        for (w, (stats, last)) in self.workers.iter().zip(self.polls.iter_mut()).enumerate() {
            let now = stats.verdicts.polls.load(Relaxed);
            if now == *last {
                self.stalled.push(w);
            }
            *last = now;
        }
        if ticks != self.ticks {
            self.tick_moved = Instant::now();
        }
        self.tick_stalled = self.tick_moved.elapsed() > tick_grace;
        self.ticks = ticks;
        self.checked = Instant::now();
        self.stalled.is_empty() && !self.tick_stalled
    }

    /// Whether every worker has polled since [`Liveness::new`] or the last
    /// check (without moving the baseline): the dataplane is up.
    pub fn all_polled(&self) -> bool {
        self.workers
            .iter()
            .zip(&self.polls)
            .all(|(s, &p)| s.verdicts.polls.load(Relaxed) > p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: usize) -> Vec<Arc<WorkerStats>> {
        (0..n).map(|_| Arc::new(WorkerStats::default())).collect()
    }

    #[test]
    fn a_worker_that_stops_polling_or_a_tick_that_stops_fails_the_check() {
        let w = stats(2);
        let mut live = Liveness::new(&w, 0);
        assert!(!live.all_polled());
        w[0].verdicts.polls.fetch_add(1, Relaxed);
        assert!(!live.all_polled(), "worker 1 has not polled");
        w[1].verdicts.polls.fetch_add(3, Relaxed);
        assert!(live.all_polled());
        let grace = Duration::from_millis(30);
        assert!(live.check(1, grace), "both polled, one tick");
        assert!(live.stalled.is_empty() && !live.tick_stalled);
        w[0].verdicts.polls.fetch_add(1, Relaxed);
        assert!(!live.check(2, grace), "worker 1 stood still");
        assert_eq!(live.stalled, [1]);
        let both = || {
            w[0].verdicts.polls.fetch_add(1, Relaxed);
            w[1].verdicts.polls.fetch_add(1, Relaxed);
        };
        both();
        assert!(live.check(2, grace), "no tick yet, but within the grace");
        std::thread::sleep(grace * 2);
        both();
        assert!(!live.check(2, grace), "the tick stood still past the grace");
        assert!(live.stalled.is_empty() && live.tick_stalled);
        both();
        assert!(live.check(3, grace));
    }

    #[test]
    fn check_period_is_half_the_watchdog() {
        let mut n = Notifier {
            enabled: true,
            watchdog: Some(Duration::from_secs(10)),
            sent: 0,
            failures: 0,
            last_error: None,
            pings: 0,
            withheld: 0,
        };
        assert_eq!(n.check_period(), Duration::from_secs(5));
        n.watchdog = Some(Duration::from_millis(1));
        assert_eq!(n.check_period(), MIN_CHECK);
        n.watchdog = None;
        assert_eq!(n.check_period(), CHECK_WITHOUT_WATCHDOG);
    }
}
