//! Whether a verified release is installed on this host, and when:
//! admission (ratchet, bad versions, entitlement), the license check,
//! and unattended updates (`[update] automatic`, windows, soak time).

pub mod admission;
pub mod auto;
pub mod entitlement;
pub mod rollout;
