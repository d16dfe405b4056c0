//! The endpoints of the local API (docs/API.md): which method and path
//! does what, and the JSON each answers with. Reads come from the
//! published snapshot of the evaluation; update actions go to `door`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::door::trigger;
use super::http::Request;
use super::shared::Shared;

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

/// The longest hold the updater takes (366 days, as `charter-update hold`).
const MAX_HOLD_SECS: u32 = 366 * 86_400;

/// A hold's `seconds`: plain decimal, no sign or leading zero, 1 to
/// [`MAX_HOLD_SECS`].
fn hold_seconds(text: &str) -> Option<u32> {
    let plain = !text.is_empty()
        && text.len() <= 10
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    text.parse()
        .ok()
        .filter(|n| plain && (1..=MAX_HOLD_SECS).contains(n))
}

pub(super) fn route(shared: &Arc<Shared>, req: &Request, uid: u32, pid: i32) -> (u16, Value) {
    let snap = Arc::clone(&shared.snapshot.read().unwrap_or_else(|e| e.into_inner()));
    let (eval, fingerprint) = (&snap.0, &snap.1);
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let get = req.method == "GET";
    let post = req.method == "POST";
    match segs.as_slice() {
        ["v1", "health"] if get => (200, json!({"ok": true})),
        ["v1", "license"] if get => {
            let mut v = serde_json::to_value(eval).unwrap_or_default();
            v["fingerprint"] = json!(fingerprint);
            v["config_warnings"] = json!(shared.config_warnings);
            (200, v)
        }
        ["v1", "features", name] if get => (
            200,
            json!({"feature": name, "enabled": eval.feature(name), "state": eval.state}),
        ),
        ["v1", "limits", name] if get => {
            let Some(value) = query_value(&req.query, "value").and_then(|v| v.parse::<i64>().ok())
            else {
                return (
                    400,
                    json!({"error": "give the value to check: ?value=N (an integer)"}),
                );
            };
            match eval.within_limit(name, value) {
                Ok(()) => (
                    200,
                    json!({"limit": name, "value": value, "max": eval.limits.get(*name), "allowed": true}),
                ),
                Err(why) => (
                    200,
                    json!({"limit": name, "value": value, "max": eval.limits.get(*name), "allowed": false, "reason": why}),
                ),
            }
        }
        ["v1", "version"] if get => (
            200,
            shared.with_agent(|a| crate::version::version_json(Some(a.config()))),
        ),
        ["v1", "update"] if get => {
            let job = shared.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
            (200, json!({"job": job}))
        }
        [
            "v1",
            "update",
            action @ ("check" | "apply" | "rollback" | "status" | "hold-clear"),
        ] if post => trigger(shared, action, None, uid, pid),
        ["v1", "update", "hold"] if post => {
            match query_value(&req.query, "seconds").and_then(hold_seconds) {
                Some(secs) => trigger(shared, "hold", Some(secs), uid, pid),
                None => (
                    400,
                    json!({"error": format!(
                        "give how long to hold: ?seconds=N (whole seconds, 1 to {MAX_HOLD_SECS})"
                    )}),
                ),
            }
        }
        ["v1", "health" | "license" | "version" | "update"]
        | ["v1", "features" | "limits", _]
        | ["v1", "update", _] => (
            405,
            json!({"error": format!("{} is not allowed on {}", req.method, req.path)}),
        ),
        _ => (
            404,
            json!({"error": format!("no such endpoint: {}", req.path)}),
        ),
    }
}
