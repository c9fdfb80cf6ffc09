//! What `synwall --check` (and the start) verify of the machine, beyond
//! what the config file alone can say: the lcores' CPUs exist, the
//! socket's group exists, the events and socket directories can be
//! written, the hook's program can be run. Under systemd the unit runs
//! `--check` first, so a config that cannot start fails there, once, with
//! its reason, instead of in a restart loop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags, Group};
use synwall_config::{Config, LcoreChoice};

/// Every reason the config cannot start on this machine, each naming the
/// key and what to do; empty when it can.
pub fn problems(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    lcores(config, &mut out);
    if let Some(group) = &config.control.socket_group {
        if !matches!(Group::from_name(group), Ok(Some(_))) {
            out.push(format!(
                "control.socket_group: group '{group}' does not exist; create it (groupadd {group}) or remove the key"
            ));
        }
    }
    // The state directory is not checked here: an unusable one stops the
    // start at the snapshot, naming `--fresh-state`, with which synwall
    // runs and reports every failed snapshot.
    for (what, dir) in synwall_engine::dirs::of_config(config) {
        if what == "state" {
            continue;
        }
        if let Err(why) = writable(dir) {
            out.push(format!("control.{what}: {why}"));
        }
    }
    if let Some(hook) = &config.control.hook {
        if let Err(why) = runnable(&hook.command[0]) {
            out.push(format!("control.hook: {why}"));
        }
    }
    out
}

/// Each lcore runs on CPUs (its `--lcores` mapping, else the CPU of its
/// number) that must exist here: DPDK's own test, a CPU with a topology in
/// sysfs. (The process's affinity does not matter: the EAL pins each
/// lcore's thread itself.)
fn lcores(config: &Config, out: &mut Vec<String>) {
    if config.dpdk.lcores == LcoreChoice::Mapped {
        return;
    }
    let main = std::iter::once(("the main lcore", config.dpdk.main_lcore));
    let workers = config.dpdk.cores.iter().map(|&c| ("dpdk.cores", c));
    for (what, lcore) in main.chain(workers) {
        if !cpu_exists(lcore) {
            let online = std::fs::read_to_string(CPUS.to_owned() + "/online").unwrap_or_default();
            out.push(format!(
                "{what}: lcore {lcore} runs on CPU {lcore}, which this machine does not have (CPUs here: {}); choose one of them, or map lcores with --lcores in dpdk.eal_args",
                online.trim()
            ));
        }
    }
}

const CPUS: &str = "/sys/devices/system/cpu";

fn cpu_exists(cpu: usize) -> bool {
    Path::new(&format!("{CPUS}/cpu{cpu}/topology/core_id")).exists()
}

/// Whether synwall can write in `dir`, or create it: the nearest existing
/// ancestor decides (a read-only filesystem answers EROFS).
fn writable(dir: &Path) -> Result<(), String> {
    let mut at: PathBuf = dir.to_owned();
    loop {
        match std::fs::metadata(&at) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(format!(
                    "{} is not a directory; remove it or choose another path",
                    at.display()
                ))
            }
            Err(_) => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p.to_owned(),
                _ => return Ok(()),
            },
        }
    }
    access(&at, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        let what = if at == dir {
            format!("{} cannot be written", dir.display())
        } else {
            format!(
                "{} cannot be created: {} cannot be written",
                dir.display(),
                at.display()
            )
        };
        format!(
            "{what} ({}); make it writable for synwall or choose another path",
            e.desc()
        )
    })
}

/// Whether `program` names an executable file, directly (with a `/`) or
/// through `PATH`.
fn runnable(program: &str) -> Result<(), String> {
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
            .unwrap_or_default()
    };
    for path in &candidates {
        if let Ok(m) = std::fs::metadata(path) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(());
            }
            if program.contains('/') {
                return Err(format!(
                    "{program} is not an executable file (mode {:o}); chmod +x it or fix the path",
                    m.permissions().mode() & 0o7777
                ));
            }
        }
    }
    if program.contains('/') {
        Err(format!(
            "{program} does not exist; install it or fix the path"
        ))
    } else {
        Err(format!(
            "'{program}' is not an executable in PATH; give its full path"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_programs_must_exist_and_be_executable() {
        assert!(runnable("/bin/sh").is_ok());
        assert!(runnable("sh").is_ok());
        let e = runnable("/nonexistent/hook").unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let e = runnable("no-such-program-anywhere").unwrap_err();
        assert!(e.contains("not an executable in PATH"), "{e}");
        let file = std::env::temp_dir().join(format!("synwall-preflight-{}", std::process::id()));
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = runnable(file.to_str().unwrap()).unwrap_err();
        assert!(e.contains("not an executable file (mode 644)"), "{e}");
        let e = writable(&file.join("x")).unwrap_err();
        assert!(e.contains("is not a directory"), "{e}");
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn directories_are_checked_at_the_nearest_existing_ancestor() {
        assert!(writable(Path::new("/tmp/synwall-preflight-test/a/b")).is_ok());
    }
}
