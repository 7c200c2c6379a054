//! A set of logical CPUs written as Linux writes them (`cpuset(7)` list format): `0,2-3`.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// The largest CPU number accepted, plus one: the kernel's default `CPU_SETSIZE`, the size
/// of the `cpu_set_t` that `sched_setaffinity(2)` takes.
pub const MAX_CPUS: u32 = 1024;

/// A non-empty set of logical CPU numbers, ascending and distinct.
///
/// INVARIANT: `cpus` is non-empty, strictly ascending, every entry below [`MAX_CPUS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CpuList {
    cpus: Vec<u32>,
}

/// Why a CPU list did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpuListError {
    /// Nothing but separators.
    #[error("empty CPU list: want e.g. 0 or 0,2-3")]
    Empty,
    /// An item that is neither `N` nor `N-M`.
    #[error("bad CPU list item {0:?}: want a CPU number or a range N-M, e.g. 0,2-3")]
    BadItem(String),
    /// `N-M` with `M < N`.
    #[error("bad CPU range {0:?}: the end is below the start")]
    Backwards(String),
    /// A CPU number at or above [`MAX_CPUS`].
    #[error("CPU {0} is out of range: want 0 to {max}", max = MAX_CPUS - 1)]
    TooLarge(u32),
}

impl CpuList {
    /// The list of `cpus` (any order, repeats allowed); `None` when empty or a CPU is at
    /// or above [`MAX_CPUS`].
    pub fn new(cpus: impl IntoIterator<Item = u32>) -> Option<CpuList> {
        let mut cpus: Vec<u32> = cpus.into_iter().collect();
        cpus.sort_unstable();
        cpus.dedup();
        let ok = !cpus.is_empty() && cpus.last().is_some_and(|&c| c < MAX_CPUS);
        ok.then_some(CpuList { cpus })
    }

    /// CPUs `0..n` (`None` for `n == 0`).
    pub fn first(n: u32) -> Option<CpuList> {
        CpuList::new(0..n)
    }

    /// The CPUs, ascending.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }

    /// How many CPUs.
    pub fn len(&self) -> usize {
        self.cpus.len()
    }

    /// Always false (the list is never empty); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty()
    }

    /// Whether every CPU of `self` is in `other`.
    pub fn is_subset(&self, other: &CpuList) -> bool {
        self.cpus
            .iter()
            .all(|c| other.cpus.binary_search(c).is_ok())
    }

    /// Whether the two share a CPU.
    pub fn overlaps(&self, other: &CpuList) -> bool {
        self.cpus
            .iter()
            .any(|c| other.cpus.binary_search(c).is_ok())
    }

    /// The CPU worker `i` of a node on this set runs on: the sets' CPUs in turn.
    pub fn for_worker(&self, i: usize) -> u32 {
        self.cpus[i % self.cpus.len()]
    }

    /// The union of `lists` (`None` when there are none).
    pub fn union<'a>(lists: impl IntoIterator<Item = &'a CpuList>) -> Option<CpuList> {
        CpuList::new(lists.into_iter().flat_map(|l| l.cpus.iter().copied()))
    }
}

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |t: &str| -> Result<u32, CpuListError> {
            let n: u32 = t
                .trim()
                .parse()
                .map_err(|_| CpuListError::BadItem(t.trim().to_owned()))?;
            if n >= MAX_CPUS {
                return Err(CpuListError::TooLarge(n));
            }
            Ok(n)
        };
        let mut cpus = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if b < a {
                        return Err(CpuListError::Backwards(item.to_owned()));
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(number(item)?),
            }
        }
        CpuList::new(cpus).ok_or(CpuListError::Empty)
    }
}

impl fmt::Display for CpuList {
    /// The canonical list: ranges of 2 or more consecutive CPUs as `N-M`, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.cpus.len() {
            let start = self.cpus[i];
            let mut end = start;
            while i + 1 < self.cpus.len() && self.cpus[i + 1] == end + 1 {
                i += 1;
                end += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end > start {
                write!(f, "{start}-{end}")?;
            } else {
                write!(f, "{start}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

impl Serialize for CpuList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let l: CpuList = "0,2-3".parse().unwrap();
        assert_eq!(l.cpus(), [0, 2, 3]);
        assert_eq!(l.to_string(), "0,2-3");
        let l: CpuList = " 5, 1-2 ,2,3 ,".parse().unwrap();
        assert_eq!(l.cpus(), [1, 2, 3, 5]);
        assert_eq!(l.to_string(), "1-3,5");
        assert_eq!("7".parse::<CpuList>().unwrap().to_string(), "7");
        assert_eq!(CpuList::first(4).unwrap().to_string(), "0-3");
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"1-3,5\"");
    }

    #[test]
    fn rejects_bad_lists() {
        assert_eq!("".parse::<CpuList>(), Err(CpuListError::Empty));
        assert_eq!(" , ".parse::<CpuList>(), Err(CpuListError::Empty));
        assert_eq!(
            "a".parse::<CpuList>(),
            Err(CpuListError::BadItem("a".into()))
        );
        assert_eq!(
            "1-".parse::<CpuList>(),
            Err(CpuListError::BadItem("".into()))
        );
        assert_eq!(
            "-1".parse::<CpuList>(),
            Err(CpuListError::BadItem("".into()))
        );
        assert_eq!(
            "3-1".parse::<CpuList>(),
            Err(CpuListError::Backwards("3-1".into()))
        );
        assert_eq!("1024".parse::<CpuList>(), Err(CpuListError::TooLarge(1024)));
        assert_eq!(CpuList::new([]), None);
        assert_eq!(CpuList::new([1024]), None);
    }

    #[test]
    fn set_operations() {
        let a: CpuList = "0-3".parse().unwrap();
        let b: CpuList = "2,3".parse().unwrap();
        let c: CpuList = "4-5".parse().unwrap();
        assert!(b.is_subset(&a) && !a.is_subset(&b));
        assert!(a.overlaps(&b) && !a.overlaps(&c));
        assert_eq!(CpuList::union([&b, &c]).unwrap().to_string(), "2-5");
        assert_eq!(
            (0..5).map(|i| b.for_worker(i)).collect::<Vec<_>>(),
            [2, 3, 2, 3, 2]
        );
    }
}
