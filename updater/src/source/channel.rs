//! The channel pointer (docs/SPEC.md §11.2 steps 1 and 2): fetched
//! conditionally against the cached one, always verified again, and
//! refused when older than one already accepted (a replay).

use charter_keys::root::VerifiedRoot;
use charter_release::channel::{ChannelPointer, MAX_POINTER_BYTES, VerifiedChannel};

use super::Source;
use crate::host::state::ChannelCache;
use crate::net::fetch::Fetched;
use crate::{Error, Result};

/// The channel pointer, verified; and whether it was unchanged (304).
pub(super) fn channel(src: &Source<'_>, root: &VerifiedRoot) -> Result<(VerifiedChannel, bool)> {
    let rel = ChannelPointer::repo_path(&src.cfg.product, &src.cfg.channel);
    let cache = src.state.channel_cache()?;
    let (bytes, validator, not_modified) = match src.fetcher.get(
        &rel,
        MAX_POINTER_BYTES,
        cache.as_ref().map(|c| &c.validator),
    )? {
        Fetched::NotModified => {
            let c = cache.ok_or_else(|| Error::NotFound {
                url: src.fetcher.url_of(&rel),
            })?;
            (c.envelope.into_bytes(), c.validator, true)
        }
        Fetched::Body(b, v) => (b, v, false),
    };
    // 1-2. Signatures (channel role), expiry, product and channel.
    let vc = VerifiedChannel::verify(
        &bytes,
        root,
        src.clock,
        src.limits,
        &src.cfg.product,
        &src.cfg.channel,
    )?;
    // A pointer older than one already accepted is a replay.
    let published = vc.pointer().published_at;
    let mut st = src.state.state()?;
    if let Some(seen) = st.pointer_published
        && published < seen
    {
        return Err(Error::ReplayedPointer { published, seen });
    }
    if st.pointer_published != Some(published) {
        st.pointer_published = Some(published);
        src.state.save_state(&st)?;
    }
    if !not_modified {
        src.state.save_channel_cache(&ChannelCache {
            envelope: String::from_utf8_lossy(&bytes).into_owned(),
            validator,
        })?;
    }
    Ok((vc, not_modified))
}
