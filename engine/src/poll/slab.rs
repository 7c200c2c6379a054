//! The connection and listener tables of a `PollDriver`: a vector of slots, each with a
//! generation bumped when it is freed, so a handle kept past its connection's end finds
//! nothing instead of whoever reuses the slot. Capacity grows to the peak and stays.

/// A slot's position and the generation it had when the value went in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Key {
    pub(super) index: u32,
    pub(super) generation: u32,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

#[derive(Debug)]
pub(super) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`; `None` only past `u32::MAX` slots.
    pub(super) fn insert(&mut self, value: T) -> Option<Key> {
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.value = Some(value);
                return Some(Key {
                    index,
                    generation: slot.generation,
                });
            }
        }
        let index = u32::try_from(self.slots.len()).ok()?;
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        Some(Key {
            index,
            generation: 0,
        })
    }

    pub(super) fn get(&self, key: Key) -> Option<&T> {
        self.slots
            .get(key.index as usize)
            .filter(|s| s.generation == key.generation)?
            .value
            .as_ref()
    }

    pub(super) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|s| s.generation == key.generation)?
            .value
            .as_mut()
    }

    /// Frees the slot; `key` (and every copy of it) is dead afterwards.
    pub(super) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self
            .slots
            .get_mut(key.index as usize)
            .filter(|s| s.generation == key.generation)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        Some(value)
    }

    /// Every live entry with its key.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Key, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let index = u32::try_from(i).ok()?;
            s.value.as_ref().map(|v| {
                (
                    Key {
                        index,
                        generation: s.generation,
                    },
                    v,
                )
            })
        })
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_is_reused_under_a_new_generation() {
        let mut slab = Slab::default();
        let a = slab.insert('a').unwrap();
        let b = slab.insert('b').unwrap();
        assert_eq!(slab.remove(a), Some('a'));
        assert_eq!(slab.len(), 1);
        let c = slab.insert('c').unwrap();
        assert_eq!(c.index, a.index);
        assert_ne!(c.generation, a.generation);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(c), Some(&'c'));
        assert_eq!(
            slab.iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>(),
            vec![(c, 'c'), (b, 'b')]
        );
    }
}
