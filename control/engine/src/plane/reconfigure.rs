//! A reload: the plane for a new config, carrying every customer that
//! stays (windows, blocks, baselines, fleet state) over by name.
use synwall_config::Config;
use synwall_dataplane::CustomerId;

use super::{ids_by_name, ControlPlane, Reload};

impl ControlPlane {
    /// Hot reload: a plane for `config` that carries windows, blocks,
    /// offences, history and totals over by customer name. New customers
    /// start clean; removed ones are dropped; runtime `set_limit`/`set_mode`
    /// changes give way to the new config. Baselines follow the id map, so
    /// the caller should give the workers new shards whose counters are
    /// copied old id → new id (then nothing is lost or counted twice), or
    /// call [`ControlPlane::attach_fresh`] with fresh shards.
    pub fn reconfigure(&mut self, config: &Config, now: u64) -> Reload {
        let snapshot = self.snapshot(now);
        let mut next = ControlPlane::with_wall_mapping(config, self.wall_mapping, now);
        let index = ids_by_name(&next.names);
        let id_map: Vec<Option<CustomerId>> = self
            .names
            .iter()
            .map(|n| index.get(&**n).copied())
            .collect();
        drop(index);
        let kept = id_map.iter().flatten().count();
        let n = next.dense.len();
        let carry = |old: &Vec<Vec<u32>>| -> Vec<Vec<u32>> {
            old.iter()
                .map(|b| {
                    let mut v = vec![0u32; n];
                    for (o, new) in id_map.iter().enumerate() {
                        if let (Some(new), Some(&x)) = (new, b.get(o)) {
                            v[new.index()] = x;
                        }
                    }
                    v
                })
                .collect()
        };
        // The history's counts follow their customers (a removed one's
        // are the caller's to take first).
        for (c, (seen, fwd)) in self.recent.drain() {
            if let Some(Some(new)) = id_map.get(c.index()) {
                let r = next.recent.get_or_default(*new);
                r.0 += seen;
                r.1 += fwd;
            }
        }
        next.base_seen = carry(&self.base_seen);
        next.base_fwd = carry(&self.base_fwd);
        next.attached = std::mem::take(&mut self.attached);
        if let Some(c) = self.connector.clone() {
            next.connect_fleet(c);
        }
        // The fleet state carries over when the windows stay (a reload
        // that changes them starts the floors afresh).
        if let Some(mut f) = self.fleet.take() {
            if next.fleet.is_some() && next.windows.lengths() == self.windows.lengths() {
                f.remap(&id_map, now);
                next.fleet = Some(f);
            }
        }
        next.restore(&snapshot, now);
        let removed = self.names.len() - kept;
        // The old plane (a million names and limit sets at scale) is left
        // for the caller to free off the control thread, which has ticks
        // to run.
        self.retired = None;
        let old = std::mem::replace(self, next);
        self.retired = Some(Box::new(old));
        Reload {
            id_map,
            added: n - kept,
            removed,
        }
    }
}
