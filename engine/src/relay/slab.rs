//! A generational slab: handles stay unique after their slot is reused, so a stale handle held
//! by the runtime (a stream whose circuit died) finds nothing instead of someone else's state.

/// A handle into a [`GenSlab`]: slot index plus the generation the slot had when inserted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The slot index (dense, small): usable as an index into per-slot side tables.
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
        generation: u32,
        next_free: Option<u32>,
    },
}

/// Slab with free-list reuse and generation checks. O(1) insert, remove, get.
#[derive(Debug)]
pub struct GenSlab<T> {
    slots: Vec<Slot<T>>,
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
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(index) = self.free_head {
            let slot = &mut self.slots[index as usize];
            let (generation, next_free) = match slot {
                Slot::Free {
                    generation,
                    next_free,
                } => (generation.wrapping_add(1), *next_free),
                Slot::Full { .. } => unreachable!("free list points at a full slot"),
            };
            *slot = Slot::Full { generation, value };
            self.free_head = next_free;
            Key { index, generation }
        } else {
            let index = u32::try_from(self.slots.len()).expect("slab exceeds u32 slots");
            self.slots.push(Slot::Full {
                generation: 0,
                value,
            });
            Key {
                index,
                generation: 0,
            }
        }
    }

    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize) {
            Some(Slot::Full { generation, value }) if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some(Slot::Full { generation, value }) if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        match slot {
            Slot::Full { generation, .. } if *generation == key.generation => {
                let generation = *generation;
                let old = core::mem::replace(
                    slot,
                    Slot::Free {
                        generation,
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
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Full { generation, .. } => Some(Key {
                index: i as u32,
                generation: *generation,
            }),
            Slot::Free { .. } => None,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Full { generation, value } => Some((
                Key {
                    index: i as u32,
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
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index(), b.index());
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.keys().collect::<Vec<_>>(), vec![b]);
    }
}
