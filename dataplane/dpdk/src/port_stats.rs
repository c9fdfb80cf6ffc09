//! A port's counters, listed once ([`port_counters!`]): each becomes a
//! field of [`PortStats`] (serde, in the list's order: the summary's and
//! the status reply's port objects) and an entry of [`PortStats::named`]
//! with its description (the `/metrics` help text). Plain data, built
//! without the EAL: the control plane's reports compose it.

/// Generates [`PortStats`] from one list of names and descriptions.
macro_rules! port_counters {
    ($( $name:ident: $help:literal, )*) => {
        /// Port counters from `rte_eth_stats_get`.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
        pub struct PortStats {
            $( #[doc = $help] pub $name: u64, )*
        }

        impl PortStats {
            /// How many counters there are.
            pub const COUNT: usize = [$(stringify!($name)),*].len();

            /// Every counter: name, description, value, in the list's order.
            pub fn named(&self) -> [(&'static str, &'static str, u64); Self::COUNT] {
                [$((stringify!($name), $help, self.$name)),*]
            }
        }
    };
}

port_counters! {
    rx_packets: "Packets the port received.",
    tx_packets: "Packets the port sent.",
    rx_bytes: "Bytes the port received.",
    tx_bytes: "Bytes the port sent.",
    rx_missed: "Packets the NIC dropped because the rx ring was full.",
    rx_errors: "Erroneous packets the port received.",
    tx_errors: "Packets the port failed to send.",
    rx_nombuf: "Receive failures for want of an mbuf.",
}
