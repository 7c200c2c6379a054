//! End-to-end tests of the `kistrel` binary.
