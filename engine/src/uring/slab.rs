//! A small generational slab: the connection, listener and operation tables of a `Ring`.
//!
//! Handles carry the slot's generation, so a handle kept after its slot was freed (and maybe
//! reused) finds nothing instead of someone else's connection.

/// A slot of a [`Slab`].
#[derive(Debug)]
struct Slot<T> {
    /// Bumped every time the slot is freed.
    generation: u32,
    value: Option<T>,
}

/// Slots in a `Vec`, free slots on a stack. Capacity grows to the peak number of live
/// entries and stays there, so steady-state inserts do not allocate.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`, returning its `(index, generation)`. Fails only past `u32::MAX` slots.
    pub(crate) fn insert(&mut self, value: T) -> Option<(u32, u32)> {
        if let Some(index) = self.free.pop() {
            let slot = self.slots.get_mut(index as usize)?;
            debug_assert!(slot.value.is_none());
            slot.value = Some(value);
            self.len += 1;
            return Some((index, slot.generation));
        }
        let index = u32::try_from(self.slots.len()).ok()?;
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        self.len += 1;
        Some((index, 0))
    }

    /// Makes room for `live` entries, so inserts up to that many never allocate.
    pub(crate) fn reserve_live(&mut self, live: usize) {
        self.slots.reserve(live.saturating_sub(self.slots.len()));
        self.free.reserve(live.saturating_sub(self.free.len()));
    }

    pub(crate) fn get(&self, index: u32, generation: u32) -> Option<&T> {
        self.slots
            .get(index as usize)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.value.as_ref())
    }

    pub(crate) fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        self.slots
            .get_mut(index as usize)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.value.as_mut())
    }

    /// Frees the slot and returns its value; the handle is dead afterwards.
    pub(crate) fn remove(&mut self, index: u32, generation: u32) -> Option<T> {
        let slot = self
            .slots
            .get_mut(index as usize)
            .filter(|s| s.generation == generation)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        Some(value)
    }

    /// The value at `index` whatever its generation (for operation slots, whose keys come
    /// back from the kernel and are unique while the operation is in flight).
    pub(crate) fn get_any_mut(&mut self, index: u32) -> Option<(u32, &mut T)> {
        let slot = self.slots.get_mut(index as usize)?;
        let generation = slot.generation;
        slot.value.as_mut().map(|v| (generation, v))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(index, generation)` of every live entry.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value
                .as_ref()
                .map(|_| (u32::try_from(i).unwrap_or(u32::MAX), s.generation))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_find_nothing() {
        let mut slab = Slab::default();
        let (i, g) = slab.insert("a").unwrap();
        assert_eq!(slab.get(i, g), Some(&"a"));
        assert_eq!(slab.remove(i, g), Some("a"));
        assert_eq!(slab.len(), 0);
        let (i2, g2) = slab.insert("b").unwrap();
        assert_eq!(i2, i, "the freed slot is reused");
        assert_ne!(g2, g);
        assert_eq!(slab.get(i, g), None);
        assert_eq!(slab.remove(i, g), None);
        assert_eq!(slab.get(i2, g2), Some(&"b"));
        assert_eq!(slab.keys().collect::<Vec<_>>(), vec![(i2, g2)]);
    }
}
