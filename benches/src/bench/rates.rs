//! The once-a-second rates the apps print: dpdk-testpmd's `--stats-period`
//! blocks and synwall's stats line.

/// Tx-pps of `port` (Mpps) from each of testpmd's `NIC statistics for port
/// N` blocks, in order.
pub fn testpmd_tx_mpps(log: &str, port: u16) -> Vec<f64> {
    let mut current: Option<u16> = None;
    let mut out = Vec::new();
    for line in log.lines() {
        if let Some((_, rest)) = line.split_once("NIC statistics for port") {
            current = rest.split_whitespace().next().and_then(|p| p.parse().ok());
        } else if let Some((_, rest)) = line.split_once("Tx-pps:") {
            if current == Some(port) {
                if let Some(pps) = rest
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    out.push(pps / 1e6);
                }
            }
        }
    }
    out
}

/// The outside ports' tx rate (Mpps) from each of synwall's stats lines
/// (`link0/inside rx 29.634 tx 0.000 Mpps | link0/outside rx 0.000 tx
/// 29.113 Mpps | ...`), in order; several outside ports on one line add up.
pub fn synwall_outside_tx_mpps(log: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for line in log.lines().filter(|l| l.contains(" Mpps")) {
        let mut total = None;
        for part in line.split('|') {
            let mut words = part.split_whitespace();
            if !words.next().is_some_and(|w| w.ends_with("outside")) {
                continue;
            }
            let mut words = words.skip_while(|&w| w != "tx");
            words.next();
            if let Some(v) = words.next().and_then(|v| v.parse::<f64>().ok()) {
                total = Some(total.unwrap_or(0.0) + v);
            }
        }
        out.extend(total);
    }
    out
}

/// The rates after the first `warmup` (seconds of start-up and cache warm-up).
pub fn after_warmup(rates: &[f64], warmup: usize) -> Vec<f64> {
    rates.iter().skip(warmup).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stats periods of dpdk-testpmd 22.11 (`--stats-period=1`), as
    /// captured from a bench run.
    const TESTPMD: &str = "\
Port statistics ====================================
  ######################## NIC statistics for port 0  ########################
  RX-packets: 93867872   RX-missed: 0          RX-bytes:  5707606614
  RX-errors: 0
  RX-nombuf:  0         
  TX-packets: 0          TX-errors: 0          TX-bytes:  0

  Throughput (since last show)
  Rx-pps:     46762871          Rx-bps:  22747214392
  Tx-pps:            0          Tx-bps:            0
  ############################################################################

  ######################## NIC statistics for port 1  ########################
  RX-packets: 0          RX-missed: 0          RX-bytes:  0
  RX-errors: 0
  RX-nombuf:  0         
  TX-packets: 93537568   TX-errors: 0          TX-bytes:  0

  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:     46597408          Tx-bps:            0
  ############################################################################
\x1b[2J\x1b[1;1H
Port statistics ====================================
  ######################## NIC statistics for port 1  ########################
  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:     45000000          Tx-bps:            0
";

    #[test]
    fn testpmd_tx_pps_of_the_outside_port_only() {
        assert_eq!(testpmd_tx_mpps(TESTPMD, 1), vec![46.597408, 45.0]);
        assert_eq!(testpmd_tx_mpps(TESTPMD, 0), vec![0.0]);
        assert!(testpmd_tx_mpps("EAL: Error - exiting with code: 1", 1).is_empty());
    }

    #[test]
    fn synwall_outside_tx_from_the_stats_line() {
        let log = "\
synwall: forwarding (every port started, every worker polling)
link0/inside rx 29.634 tx 0.000 Mpps | link0/outside rx 0.000 tx 29.113 Mpps | syn 1476089 (+1476089) blocked 520972 (+520972)
link0/inside rx 32.749 tx 0.000 Mpps | link0/outside rx 0.000 tx 32.173 Mpps | syn 3123474 (+1647385) blocked 1102403 (+581431)
link0/inside rx 1.0 tx 0.5 Mpps | link0/outside rx 0.0 tx 1.5 Mpps | link1/outside rx 0.0 tx 2.0 Mpps
";
        assert_eq!(synwall_outside_tx_mpps(log), vec![29.113, 32.173, 3.5]);
        assert_eq!(after_warmup(&synwall_outside_tx_mpps(log), 2), vec![3.5]);
    }
}
