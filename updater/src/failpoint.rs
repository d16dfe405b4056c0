//! Crash injection for tests. With the `failpoints` feature,
//! `CHARTER_FAILPOINT=<name>` makes the process abort (no destructors, no
//! flushing: as close to `kill -9` as a process can do to itself) when it
//! reaches the named point. Without the feature this compiles to nothing.
//! The mechanism is charter_binkit's; the updater's points are listed
//! here.

pub use charter_binkit::failpoint::hit;

/// Every failpoint, in the order a transaction reaches them (tests iterate
/// over this list).
pub const ALL: &[&str] = &[
    "apply:after-begin",
    "apply:mid-extract",
    "apply:after-extract",
    "apply:after-stage-rename",
    "apply:after-staged",
    "apply:after-pre-swap",
    "apply:after-swap",
    "apply:after-swapped",
    "apply:after-restart",
    "apply:after-post-swap",
    "apply:after-healthy",
    "apply:after-commit-state",
    "rollback:after-begin",
    "rollback:after-swap",
    "rollback:after-swapped",
    "rollback:after-restart",
    "rollback:after-state",
];
