//! Scheduler behaviour through the public API: channel states, grants, the run order, the
//! 8-cell flush rule, scheduler choice, and a virtual-time socket simulation of KIST vs
//! Vanilla.

mod model;
mod sim;
mod states;
