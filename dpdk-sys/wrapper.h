/* The DPDK API surface synwall binds. Static-inline functions declared in
 * these headers are exported through bindgen's wrap_static_fns. */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_dev.h>
#include <rte_bus.h>
#include <rte_pdump.h>
#include <rte_telemetry.h>

/* rte_errno is a per-lcore (thread-local) macro: expose it as a function. */
static inline int synwall_rte_errno(void) { return rte_errno; }
