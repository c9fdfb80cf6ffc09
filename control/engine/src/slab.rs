//! Per-customer values for the customers that have one, reached without
//! hashing: a table of slots indexed by customer id in front of a dense
//! vector of the values.
//!
//! The tick looks up every sender's record and recent counts; in a
//! `HashMap` each lookup is a probe of a control group and then of the
//! entry, two dependent misses nothing can start early. Here the slot
//! entry sits at a known address (prefetched with the customer's other
//! tables a few customers ahead) and the value at an address known once
//! that entry is in, so the tick starts both loads before it needs them.
use synwall_dataplane::{prefetch, CustomerId};

/// "No slot" in a [`SlotTable`].
const NONE: u32 = u32::MAX;

/// Each customer id's slot in some dense store, or none: indexed by id,
/// grown on demand to the largest id given a slot. The front of
/// [`IdSlab`] and of the window store.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotTable(Vec<u32>);

impl SlotTable {
    /// `c`'s slot, if it has one.
    pub(crate) fn get(&self, c: CustomerId) -> Option<usize> {
        match self.0.get(c.index()) {
            Some(&s) if s != NONE => Some(s as usize),
            _ => None,
        }
    }

    /// Gives `c` slot `slot`.
    pub(crate) fn set(&mut self, c: CustomerId, slot: usize) {
        let i = c.index();
        if self.0.len() <= i {
            self.0.resize(i + 1, NONE);
        }
        self.0[i] = slot as u32;
    }

    /// Takes `c`'s slot away.
    pub(crate) fn clear(&mut self, c: CustomerId) {
        if let Some(s) = self.0.get_mut(c.index()) {
            *s = NONE;
        }
    }

    /// Starts loading `c`'s entry.
    pub(crate) fn prefetch(&self, c: CustomerId) {
        if let Some(s) = self.0.get(c.index()) {
            prefetch(s);
        }
    }
}

/// Values of type `V` for some customers, by [`CustomerId`].
#[derive(Debug, Clone)]
pub struct IdSlab<V> {
    /// Index into `items` of each customer id's value.
    slot_of: SlotTable,
    items: Vec<(CustomerId, V)>,
}

impl<V> Default for IdSlab<V> {
    fn default() -> Self {
        IdSlab {
            slot_of: SlotTable::default(),
            items: Vec::new(),
        }
    }
}

impl<V> IdSlab<V> {
    fn slot(&self, c: CustomerId) -> Option<usize> {
        self.slot_of.get(c)
    }

    /// `c`'s value, if it has one.
    pub fn get(&self, c: &CustomerId) -> Option<&V> {
        self.slot(*c).map(|s| &self.items[s].1)
    }

    /// `c`'s value to change, if it has one.
    pub fn get_mut(&mut self, c: &CustomerId) -> Option<&mut V> {
        self.slot(*c).map(|s| &mut self.items[s].1)
    }

    /// Whether `c` has a value.
    pub fn contains_key(&self, c: &CustomerId) -> bool {
        self.slot(*c).is_some()
    }

    /// `c`'s value, made with `make` if it had none.
    pub fn get_or_insert_with(&mut self, c: CustomerId, make: impl FnOnce() -> V) -> &mut V {
        let s = match self.slot(c) {
            Some(s) => s,
            None => {
                let s = self.items.len();
                self.slot_of.set(c, s);
                self.items.push((c, make()));
                s
            }
        };
        &mut self.items[s].1
    }

    /// Sets `c`'s value.
    pub fn insert(&mut self, c: CustomerId, v: V) {
        match self.get_mut(&c) {
            Some(old) => *old = v,
            None => {
                self.get_or_insert_with(c, || v);
            }
        }
    }

    /// The customers with a value, in the order they got it.
    pub fn keys(&self) -> impl Iterator<Item = &CustomerId> + '_ {
        self.items.iter().map(|(c, _)| c)
    }

    /// Customers with a value.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no customer has a value.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes every value out (the slot table keeps its size).
    pub fn drain(&mut self) -> impl Iterator<Item = (CustomerId, V)> + '_ {
        for (c, _) in &self.items {
            self.slot_of.clear(*c);
        }
        self.items.drain(..)
    }

    /// Starts loading `c`'s slot entry.
    pub fn prefetch_slot(&self, c: CustomerId) {
        self.slot_of.prefetch(c);
    }

    /// Starts loading `c`'s value, once its slot entry is in (see
    /// [`IdSlab::prefetch_slot`]).
    pub fn prefetch_value(&self, c: CustomerId) {
        if let Some(s) = self.slot(c) {
            prefetch(&self.items[s]);
        }
    }
}

impl<V: Default> IdSlab<V> {
    /// `c`'s value, a default one if it had none.
    pub fn get_or_default(&mut self, c: CustomerId) -> &mut V {
        self.get_or_insert_with(c, V::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_by_id_drain_and_refill() {
        let mut s: IdSlab<u64> = IdSlab::default();
        assert!(s.is_empty());
        *s.get_or_default(CustomerId::new(900)) += 3;
        *s.get_or_default(CustomerId::new(2)) += 1;
        *s.get_or_default(CustomerId::new(900)) += 4;
        assert_eq!(s.get(&CustomerId::new(900)), Some(&7));
        assert_eq!(s.get(&CustomerId::new(3)), None);
        assert_eq!(s.get(&CustomerId::new(5_000)), None);
        assert!(s.contains_key(&CustomerId::new(2)));
        s.insert(CustomerId::new(2), 10);
        assert_eq!(s.len(), 2);
        let keys: Vec<u32> = s.keys().map(|c| c.index() as u32).collect();
        assert_eq!(keys, [900, 2]);
        let mut all: Vec<(CustomerId, u64)> = s.drain().collect();
        all.sort();
        assert_eq!(all, [(CustomerId::new(2), 10), (CustomerId::new(900), 7)]);
        assert!(s.is_empty());
        assert_eq!(s.get(&CustomerId::new(900)), None);
        *s.get_or_default(CustomerId::new(900)) += 1;
        assert_eq!(s.get(&CustomerId::new(900)), Some(&1));
    }
}
