//! Building the scheduler a `Schedulers` list asks for: the first one that works here.

use crate::error::SchedError;
use crate::kist::{Kist, KistLite};
use crate::scheduler::{ChannelKey, SchedConfig, Scheduler, SchedulerKind};
use crate::vanilla::Vanilla;

/// The first scheduler of `names` that works here (`Schedulers`; KIST needs `has_tcp_info`).
pub fn make_scheduler<K: ChannelKey + 'static>(
    names: &[SchedulerKind],
    has_tcp_info: bool,
    cfg: &SchedConfig,
) -> Result<(Box<dyn Scheduler<K>>, SchedulerKind), SchedError> {
    cfg.validate()?;
    let kind = names
        .iter()
        .copied()
        .find(|&k| k != SchedulerKind::Kist || has_tcp_info)
        .ok_or(SchedError::NoUsableScheduler)?;
    let sched: Box<dyn Scheduler<K>> = match kind {
        SchedulerKind::Kist => Box::new(Kist::new(cfg)),
        SchedulerKind::KistLite => Box::new(KistLite::new(cfg)),
        SchedulerKind::Vanilla => Box::new(Vanilla::new(cfg)),
    };
    Ok((sched, kind))
}
