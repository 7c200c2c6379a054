//! The engine's one generational slab: the relay's channels and circuits, both backends'
//! connections and listeners, and io_uring's in-flight operations.
//!
//! A handle ([`Key`]) carries the generation its slot had when the value went in, so a
//! handle kept after its slot was freed (and maybe reused) finds nothing instead of someone
//! else's state. Free slots form a list through the slots themselves; capacity grows to the
//! peak number of live entries and stays, so steady-state inserts do not allocate.
//!
//! Not the `slotmap` crate: io_uring's operation table is looked up by slot index alone (a
//! `user_data` packs the slot and the op kind, not the generation: [`GenSlab::get_any_mut`]),
//! and the runtime indexes its side tables by the dense slot index ([`Key::index`]); slotmap
//! offers neither.

/// A handle into a [`GenSlab`]: the slot index plus the generation the slot had when the
/// value was inserted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The slot index (dense from 0): usable as an index into per-slot side tables. Check the
    /// whole key for staleness, not the index.
    pub fn index(self) -> u32 {
        self.index
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}v{}", self.index, self.generation)
    }
}

#[derive(Debug)]
enum Slot<T> {
    Full {
        generation: u32,
        value: T,
    },
    Free {
        /// The generation of the value that was here; the next one gets this plus one.
        generation: u32,
        next_free: Option<u32>,
    },
}

/// Slots in a `Vec` with free-list reuse and generation checks: O(1) insert, remove, get.
#[derive(Debug)]
pub struct GenSlab<T> {
    slots: Vec<Slot<T>>,
    /// INVARIANT: `free_head` and every `next_free` name a `Slot::Free`.
    free_head: Option<u32>,
    len: usize,
}

impl<T> Default for GenSlab<T> {
    fn default() -> Self {
        GenSlab {
            slots: Vec::new(),
            free_head: None,
            len: 0,
        }
    }
}

impl<T> GenSlab<T> {
    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value`, or gives it back when the slab already has `u32::MAX` slots.
    pub fn try_insert(&mut self, value: T) -> Result<Key, T> {
        if let Some(index) = self.free_head {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                if let Slot::Free {
                    generation,
                    next_free,
                } = *slot
                {
                    let generation = generation.wrapping_add(1);
                    *slot = Slot::Full { generation, value };
                    self.free_head = next_free;
                    self.len += 1;
                    return Ok(Key { index, generation });
                }
            }
            // INVARIANT broken (cannot happen): forget the list rather than loop on it.
            debug_assert!(false, "free list names a full slot");
            self.free_head = None;
        }
        let Ok(index) = u32::try_from(self.slots.len()) else {
            return Err(value);
        };
        self.slots.push(Slot::Full {
            generation: 0,
            value,
        });
        self.len += 1;
        Ok(Key {
            index,
            generation: 0,
        })
    }

    /// Stores `value`.
    ///
    /// # Panics
    ///
    /// Past `u32::MAX` slots, which memory runs out long before (for tables that cannot
    /// prove that, use [`GenSlab::try_insert`]).
    pub fn insert(&mut self, value: T) -> Key {
        match self.try_insert(value) {
            Ok(key) => key,
            Err(_) => panic!("generational slab exceeds u32::MAX slots"),
        }
    }

    /// Makes room for `live` entries in all, so inserts up to that many never allocate.
    pub fn reserve_live(&mut self, live: usize) {
        self.slots.reserve(live.saturating_sub(self.slots.len()));
    }

    /// The value of `key`, unless it was removed.
    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize) {
            Some(Slot::Full { generation, value }) if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    /// The value of `key`, unless it was removed.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some(Slot::Full { generation, value }) if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    /// Whether `key` names a live entry.
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// The live value in slot `index` whatever its generation, with its key: for io_uring
    /// operation slots, whose `user_data` names only the slot (unique while in flight).
    pub fn get_any_mut(&mut self, index: u32) -> Option<(Key, &mut T)> {
        match self.slots.get_mut(index as usize) {
            Some(Slot::Full { generation, value }) => Some((
                Key {
                    index,
                    generation: *generation,
                },
                value,
            )),
            _ => None,
        }
    }

    /// Frees the slot of `key` and returns its value; `key` (and every copy) is dead after.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        match slot {
            Slot::Full { generation, .. } if *generation == key.generation => {
                let old = core::mem::replace(
                    slot,
                    Slot::Free {
                        generation: key.generation,
                        next_free: self.free_head,
                    },
                );
                self.free_head = Some(key.index);
                self.len -= 1;
                match old {
                    Slot::Full { value, .. } => Some(value),
                    Slot::Free { .. } => None,
                }
            }
            _ => None,
        }
    }

    /// Keys of all live entries, in slot order (deterministic).
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Live entries with their keys, in slot order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Key, &mut T)> + '_ {
        self.slots
            .iter_mut()
            .zip(0u32..)
            .filter_map(|(s, index)| match s {
                Slot::Full { generation, value } => Some((
                    Key {
                        index,
                        generation: *generation,
                    },
                    value,
                )),
                Slot::Free { .. } => None,
            })
    }

    /// Live entries with their keys, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> + '_ {
        self.slots
            .iter()
            .zip(0u32..)
            .filter_map(|(s, index)| match s {
                Slot::Full { generation, value } => Some((
                    Key {
                        index,
                        generation: *generation,
                    },
                    value,
                )),
                Slot::Free { .. } => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_find_nothing_after_reuse() {
        let mut s = GenSlab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!((s.len(), s.is_empty()), (1, false));
        let c = s.insert("c");
        assert_eq!(a.index(), c.index(), "the freed slot is reused");
        assert_ne!(a, c);
        assert_eq!(s.get(a), None);
        assert!(!s.contains(a));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(c), Some(&"c"));
        assert_eq!(s.keys().collect::<Vec<_>>(), vec![c, b]);
        assert_eq!(
            s.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            vec!["c", "b"]
        );
    }

    #[test]
    fn slots_are_found_by_index_alone_and_freed_in_lifo_order() {
        let mut s = GenSlab::default();
        let keys: Vec<Key> = (0..4).map(|i| s.try_insert(i).unwrap()).collect();
        let (k, v) = s.get_any_mut(2).unwrap();
        assert_eq!(k, keys[2]);
        *v = 20;
        assert_eq!(s.remove(keys[2]), Some(20));
        assert!(s.get_any_mut(2).is_none(), "a free slot has no value");
        assert!(s.get_any_mut(9).is_none());
        s.remove(keys[0]);
        // The last freed slot is reused first.
        assert_eq!(s.insert(7).index(), 0);
        assert_eq!(s.insert(8).index(), 2);
        assert_eq!(s.insert(9).index(), 4);
        s.reserve_live(64);
        assert_eq!(s.len(), 5);
    }
}
