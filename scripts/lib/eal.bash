# Sourced (not run) by the scripts that start EAL processes with a file
# prefix of their own: scripts/demo, scripts/reload-rss, scripts/test-package.
# (The benches and the tests do the same in Rust: host::RuntimeDirs in
# benches/src/bench/host.rs, TestDir in tests/src/.)
#
# Every EAL process leaves its runtime directory behind when it exits
# (/var/run/dpdk/PREFIX as root, $XDG_RUNTIME_DIR/dpdk/PREFIX or
# /tmp/dpdk/PREFIX otherwise: DPDK 22.11's eal_create_runtime_dir), and a
# prefix with the script's PID in it leaves one per run.
#
#   eal_runtime_dirs_remove PREFIX...   removes those directories; call it
#                                       once the processes have exited

eal_runtime_dirs_remove() {
  local base=/var/run/dpdk p
  [ "$(id -u)" = 0 ] || base=${XDG_RUNTIME_DIR:-/tmp}/dpdk
  for p in "$@"; do
    [ -n "$p" ] && rm -rf -- "${base:?}/$p"
  done
  return 0
}
