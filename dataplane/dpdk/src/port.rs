//! Ethernet ports (ethdevs): configuration with N rx/tx queues and RSS,
//! start/stop, statistics, and the queue handles workers poll.
use std::ffi::CString;
use std::fmt;
use std::sync::Arc;

use super::eal::Eal;
use super::error::{DpdkError, IntoResult, Result};
use super::mbuf::MbufBurst;
use super::mempool::Mempool;
use crate::PortStats;

/// A DPDK port id: one the EAL found by name ([`Eal::port_by_name`]);
/// never made from a bare number:
///
/// ```compile_fail
/// let port = synwall_dpdk::PortId(0);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(u16);

impl PortId {
    /// The ethdev's port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

// rte_ethdev.h builds these from RTE_BIT64(), which bindgen cannot evaluate.
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
const RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
const RSS_IPV6: u64 = 1 << 8;
const RSS_FRAG_IPV6: u64 = 1 << 9;
const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
const RSS_NONFRAG_IPV6_OTHER: u64 = 1 << 12;
const RSS_IPV6_EX: u64 = 1 << 15;
/// IP and TCP/UDP hashing: a customer's connections spread over queues.
const RSS_WANTED: u64 = RSS_IPV4
    | RSS_FRAG_IPV4
    | RSS_NONFRAG_IPV4_TCP
    | RSS_NONFRAG_IPV4_UDP
    | RSS_NONFRAG_IPV4_OTHER
    | RSS_IPV6
    | RSS_FRAG_IPV6
    | RSS_NONFRAG_IPV6_TCP
    | RSS_NONFRAG_IPV6_UDP
    | RSS_NONFRAG_IPV6_OTHER
    | RSS_IPV6_EX;

/// How to set a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Receive queues (spread by RSS when more than one).
    pub rx_queues: u16,
    /// Transmit queues (one per worker that sends on the port).
    pub tx_queues: u16,
    /// Descriptors per rx ring (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Descriptors per tx ring (adjusted to the device's limits).
    pub tx_desc: u16,
}

/// Link state as the PMD reports it.
#[derive(Debug, Clone, Copy)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

#[derive(Debug)]
struct PortInner {
    id: PortId,
    name: String,
    // The rx rings hold mbufs of this pool: it must outlive the device.
    _pool: Arc<Mempool>,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: the last handle (Port or queue) is gone, so no lcore polls
        // the device any more; stop flushes and close releases it.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id.0);
            dpdk_sys::rte_eth_dev_close(self.id.0);
        }
    }
}

/// A configured and started port. The device is stopped and closed when
/// the `Port` and every queue handle taken from it are gone.
#[derive(Debug)]
pub struct Port {
    inner: Arc<PortInner>,
    rx_queues: u16,
    tx_queues: u16,
    rss: bool,
}

/// The right to receive on one queue of a port; exists once per queue.
#[derive(Debug)]
pub struct RxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

/// The right to transmit on one queue of a port; exists once per queue.
#[derive(Debug)]
pub struct TxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

impl Eal {
    /// Looks a port up by its device name (vdev name or PCI address).
    pub fn port_by_name(&self, name: &str) -> Result<PortId> {
        let c = CString::new(name).map_err(|_| DpdkError::PortNotFound(name.to_owned()))?;
        let mut id: u16 = 0;
        // SAFETY: the EAL is up (self); c is a valid C string; id is a
        // valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(DpdkError::PortNotFound(name.to_owned()));
        }
        Ok(PortId(id))
    }
}

impl Port {
    /// Finds the port named `name`, configures `cfg.rx_queues` rx queues
    /// receiving into `pool` and `cfg.tx_queues` tx queues, enables RSS over
    /// IP/TCP/UDP (masked by what the device supports) when there are
    /// several rx queues, turns on promiscuous mode (an inline appliance
    /// forwards frames addressed to others) and starts it.
    ///
    /// Returns the port and the queue handles, to be moved to workers.
    pub fn open(
        eal: &Eal,
        name: &str,
        cfg: &PortConfig,
        pool: Arc<Mempool>,
    ) -> Result<(Port, Vec<RxQueue>, Vec<TxQueue>)> {
        let id = eal.port_by_name(name)?;
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: id is a valid port; info is a valid out-pointer.
        unsafe { dpdk_sys::rte_eth_dev_info_get(id.0, &mut info) }
            .check(|| format!("rte_eth_dev_info_get({name})"))?;
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues {
            return Err(DpdkError::Invalid(format!(
                "port {name}: {} rx queues asked, the device offers 1..={}",
                cfg.rx_queues, info.max_rx_queues
            )));
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Invalid(format!(
                "port {name}: {} tx queues needed (one per worker), the device offers 1..={}",
                cfg.tx_queues, info.max_tx_queues
            )));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        let rss_hf = RSS_WANTED & info.flow_type_rss_offloads;
        let rss = cfg.rx_queues > 1 && rss_hf != 0;
        if rss {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: conf is a valid, fully initialised configuration.
        unsafe { dpdk_sys::rte_eth_dev_configure(id.0, cfg.rx_queues, cfg.tx_queues, &conf) }
            .check(|| {
                format!(
                    "rte_eth_dev_configure({name}, rxq={}, txq={})",
                    cfg.rx_queues, cfg.tx_queues
                )
            })?;
        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port and out-pointers.
        unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rx_desc, &mut tx_desc) }
            .check(|| format!("rte_eth_dev_adjust_nb_rx_tx_desc({name})"))?;
        // SAFETY: valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id.0) };
        // SOCKET_ID_ANY (-1) as unsigned is what DPDK expects for "any socket".
        let socket = if socket < 0 { -1 } else { socket };
        for q in 0..cfg.rx_queues {
            // SAFETY: configured port, queue index in range, the pool outlives
            // the device (PortInner holds it); NULL rxconf = device defaults.
            unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id.0,
                    q,
                    rx_desc,
                    socket as u32,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            }
            .check(|| format!("rte_eth_rx_queue_setup({name}, rxq{q})"))?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: configured port, queue index in range, default txconf.
            unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id.0, q, tx_desc, socket as u32, std::ptr::null())
            }
            .check(|| format!("rte_eth_tx_queue_setup({name}, txq{q})"))?;
        }
        // Not every PMD has promiscuous mode (net_null, net_ring): fine.
        // SAFETY: valid port.
        let _ = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id.0) };
        // SAFETY: configured port with all queues set up.
        unsafe { dpdk_sys::rte_eth_dev_start(id.0) }
            .check(|| format!("rte_eth_dev_start({name})"))?;
        let inner = Arc::new(PortInner {
            id,
            name: name.to_owned(),
            _pool: pool,
        });
        let rxqs = (0..cfg.rx_queues)
            .map(|queue| RxQueue {
                port: inner.clone(),
                queue,
            })
            .collect();
        let txqs = (0..cfg.tx_queues)
            .map(|queue| TxQueue {
                port: inner.clone(),
                queue,
            })
            .collect();
        Ok((
            Port {
                inner,
                rx_queues: cfg.rx_queues,
                tx_queues: cfg.tx_queues,
                rss,
            },
            rxqs,
            txqs,
        ))
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.inner.id
    }

    /// The device name it was opened by.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Rx queues configured.
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }

    /// Tx queues configured.
    pub fn tx_queues(&self) -> u16 {
        self.tx_queues
    }

    /// Whether RSS spreads flows over the rx queues.
    pub fn rss(&self) -> bool {
        self.rss
    }

    /// The port's counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port and out-pointer.
        unsafe { dpdk_sys::rte_eth_stats_get(self.inner.id.0, &mut s) }
            .check(|| format!("rte_eth_stats_get({})", self.inner.name))?;
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Link state, without waiting.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid port and out-pointer.
        unsafe { dpdk_sys::rte_eth_link_get_nowait(self.inner.id.0, &mut l) }
            .check(|| format!("rte_eth_link_get_nowait({})", self.inner.name))?;
        Ok(LinkStatus {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        })
    }
}

impl RxQueue {
    /// The port.
    pub fn port(&self) -> PortId {
        self.port.id
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the free slots of `burst`; returns how many arrived.
    #[inline]
    pub fn rx(&mut self, burst: &mut MbufBurst) -> usize {
        let (p, room) = burst.tail_ptr();
        if room == 0 {
            return 0;
        }
        // SAFETY: this handle is the only poller of (port, queue); p points
        // at `room` writable slots of the burst.
        let n = unsafe { dpdk_sys::rte_eth_rx_burst(self.port.id.0, self.queue, p, room) };
        // SAFETY: the PMD wrote n owned mbuf pointers into those slots.
        unsafe { burst.commit_rx(n as usize) };
        n as usize
    }
}

impl TxQueue {
    /// The port.
    pub fn port(&self) -> PortId {
        self.port.id
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Hands the burst's mbufs to the NIC; those it took leave the burst,
    /// those it did not stay (to retry or to free). Returns how many it took.
    #[inline]
    pub fn tx(&mut self, burst: &mut MbufBurst) -> usize {
        if burst.is_empty() {
            return 0;
        }
        let n = burst.len() as u16;
        // SAFETY: this handle is the only user of (port, queue); the burst
        // holds n owned mbufs at its head.
        let sent =
            unsafe { dpdk_sys::rte_eth_tx_burst(self.port.id.0, self.queue, burst.head_ptr(), n) };
        // SAFETY: the NIC consumed the first `sent` mbufs.
        unsafe { burst.commit_tx(sent as usize) };
        sent as usize
    }
}
