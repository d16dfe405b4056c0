//! Whether a release offered is installed now: unattended updates
//! (`[update] automatic`, windows, soak time).

pub mod auto;
