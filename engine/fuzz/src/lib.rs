//! Shared code of kistrel's fuzz targets: the checks behind `relay_payloads` and `link_auth`, and the
//! stateful `relay_state` driver, kept in a library so the seed generator runs the same code.

pub mod link_auth;
pub mod payloads;
pub mod relay_state;
