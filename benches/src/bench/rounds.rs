//! The A/B rounds every bench makes: each round runs every row's apps once,
//! back to back in a fixed order, so a slow drift in the machine's load hits
//! every app alike; ratios are then taken per round. Before each run it
//! waits for compilers (`--wait-idle`) and numbers the run.
use super::host::{loadavg, wait_idle};

/// Counts the runs of a bench and how busy the machine was at each start.
#[derive(Debug, Default)]
pub struct Runs {
    /// `--wait-idle` seconds.
    pub wait_idle: u64,
    pub count: usize,
    pub failed: usize,
    pub max_compilers: usize,
}

/// The start of one run.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// The run's number, from 1.
    pub run: usize,
    /// Compiler processes alive when it started.
    pub compilers: usize,
}

impl Runs {
    pub fn new(wait_idle: u64) -> Self {
        Runs {
            wait_idle,
            ..Runs::default()
        }
    }

    /// Waits for the machine to be idle (up to `--wait-idle`) and numbers
    /// the next run.
    pub fn start(&mut self) -> Start {
        let compilers = wait_idle(self.wait_idle);
        self.count += 1;
        self.max_compilers = self.max_compilers.max(compilers);
        Start {
            run: self.count,
            compilers,
        }
    }

    /// `load 1.02 0.98 1.10, compilers at start: 2`, for a run's log line.
    pub fn load_note(start: Start) -> String {
        format!(
            "load {}, compilers at start: {}",
            loadavg(),
            start.compilers
        )
    }
}

/// Runs `repeat` rounds; in each, every row in order and, for each row,
/// every app of `apps` in order: `run(round, row, app)` (round from 1).
pub fn ab_rounds<R, A>(
    repeat: usize,
    rows: &mut [R],
    apps: &[A],
    mut run: impl FnMut(usize, &mut R, &A),
) {
    for round in 1..=repeat {
        for row in rows.iter_mut() {
            for app in apps {
                run(round, row, app);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_apps_within_each_row() {
        let mut rows = ["a", "b"];
        let mut seen = Vec::new();
        ab_rounds(2, &mut rows, &["io", "sw"], |r, row, app| {
            seen.push(format!("{r}{row}{app}"))
        });
        assert_eq!(
            seen,
            ["1aio", "1asw", "1bio", "1bsw", "2aio", "2asw", "2bio", "2bsw"]
        );
    }
}
