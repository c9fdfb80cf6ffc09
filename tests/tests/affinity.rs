//! Worker cores for workers alone (issue 26, part 4): on a running
//! appliance with the metrics server, a hook and a control socket client,
//! every thread but the worker lcore's runs on the main lcore's CPU, and
//! the worker on its own. Read from `/proc/PID/task/*/status`.

use std::fs;
use std::time::Duration;

use synwall_tests::fixtures::acme_beta_10;
use synwall_tests::*;

const WAIT: Duration = Duration::from_secs(60);

/// Each thread of `pid`: its name and `Cpus_allowed_list`.
fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task") {
        let task = task.unwrap().path();
        let name = fs::read_to_string(task.join("comm")).unwrap_or_default();
        let status = fs::read_to_string(task.join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        out.push((name.trim().to_owned(), cpus));
    }
    out
}

#[test]
fn only_workers_run_on_worker_cores() {
    if cpus() < 2 {
        eprintln!("note: one CPU: nothing to keep apart");
        return;
    }
    let port = free_port();
    let dir = TestDir::new("affinity");
    let hook = dir.join("hook.sh");
    fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    let mut s = Scenario::new(Vec::new(), Vec::new())
        .customers(&acme_beta_10(""))
        .control(&format!(
            "metrics_listen = \"127.0.0.1:{port}\"\nhook = {{ command = [\"/bin/sh\", {}] }}",
            toml_str(&hook.display().to_string())
        ));
    s.duration = 120.0;
    let mut running = s.spawn(dir, &[]);
    let socket = running.dir().join("control.sock");
    running.wait_for("forwarding", WAIT, |_| {
        control_request(&socket, b"{\"cmd\":\"status\"}\n", WAIT)
            .ok()
            .filter(|v| v["state"] == "forwarding")
    });
    // Threads that start on demand: a scrape, an operator's block (a hook
    // runs), a connection held open.
    http_get(port, "/metrics", WAIT).expect("a scrape");
    let held = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    let r = control_request(
        &socket,
        b"{\"cmd\":\"block\",\"customer\":\"acme\"}\n",
        WAIT,
    )
    .expect("block");
    assert_eq!(r["ok"], true, "{r}");
    std::thread::sleep(Duration::from_millis(500));

    let all = threads(running.pid());
    let on_worker: Vec<_> = all.iter().filter(|(_, c)| c != "0").collect();
    assert_eq!(
        on_worker.len(),
        1,
        "only the worker lcore's thread may run off CPU 0 (the main lcore's): {all:?}"
    );
    assert_eq!(
        on_worker[0].1, "1",
        "the worker on its lcore's CPU: {all:?}"
    );
    assert!(
        all.len() >= 4,
        "the socket's, the metrics' and the hooks' threads are there: {all:?}"
    );
    drop(held);
    running.signal("TERM");
    running.wait(WAIT);
}
