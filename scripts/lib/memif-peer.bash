# Sourced (not run) by the scripts that drive synwall with synwall-gen over
# net_memif: scripts/demo, scripts/soak-memif. (scripts/bench-gen's driver,
# benches/src/bench/gen.rs, does the same in Rust: run_held.)
#
# Why the order matters: when a memif peer disconnects, DPDK 22.11's memif
# PMD (memif_disconnect, on the EAL interrupt thread) unmaps the shared
# rings without any synchronisation with the rx/tx bursts; a lcore that is
# polling that port then reads unmapped memory and the whole process dies
# (SIGSEGV in librte_net_memif). So a generator and its forwarder are torn
# down in this order:
#   1. the generator finishes and stops polling; `synwall-gen --hold` keeps
#      its ports attached and says so ('synwall-gen: holding the ports');
#   2. the forwarder stops (SIGTERM/SIGINT; it stops polling, then closes);
#   3. the generator is released (its stdin closes) and exits.
#
#   held_gen_start FIFO LOG CMD...   start CMD (synwall-gen ... --hold) in
#                                    the background; sets HELD_PID
#   held_gen_holding LOG             true once it holds; sets HELD_STATUS
#   held_gen_wait LOG SECS           wait until it holds (0), exits (1) or
#                                    SECS pass (2)
#   held_gen_release                 close its stdin, wait; sets HELD_RC

HELD_PID="" HELD_FD="" HELD_STATUS="" HELD_RC=""

# held_gen_start FIFO LOG CMD...: runs CMD in the background with stdin from
# FIFO, which this shell keeps open for writing (HELD_FD) until
# held_gen_release, and stdout and stderr to LOG.
held_gen_start() {
  local fifo=$1 log=$2
  shift 2
  rm -f "$fifo"
  mkfifo "$fifo"
  # The child's open of the FIFO and this shell's meet: neither blocks long.
  "$@" <"$fifo" >"$log" 2>&1 &
  HELD_PID=$!
  exec {HELD_FD}>"$fifo"
}

# held_gen_holding LOG: whether the generator said it holds its ports (it is
# done and polls nothing); HELD_STATUS is the exit status it announced.
held_gen_holding() {
  local line
  line=$(grep -m1 '^synwall-gen: holding the ports' "$1" 2>/dev/null) || return 1
  HELD_STATUS=${line##*exit status then: }
}

# held_gen_wait LOG SECS: 0 once the generator holds its ports, 1 when it
# exited without (reaped: HELD_RC is its status), 2 after SECS.
held_gen_wait() {
  local log=$1 end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    held_gen_holding "$log" && return 0
    if ! kill -0 "$HELD_PID" 2>/dev/null; then
      held_gen_release
      return 1
    fi
    sleep 0.1
  done
  return 2
}

# held_gen_release: closes the generator's stdin (it exits: it is holding,
# or it will when it is done) and waits for it; HELD_RC is its exit status.
# Call it once the forwarder has stopped.
held_gen_release() {
  if [ -n "$HELD_FD" ]; then
    exec {HELD_FD}>&-
    HELD_FD=""
  fi
  HELD_RC=0
  if [ -n "$HELD_PID" ]; then
    wait "$HELD_PID" || HELD_RC=$?
    HELD_PID=""
  fi
}
