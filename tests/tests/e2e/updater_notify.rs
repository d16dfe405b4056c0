//! Update events posted to a webhook (`[notify]`, docs/SPEC.md §11.13): a
//! real HTTP receiver on 127.0.0.1 checks each event's body, headers and
//! HMAC signature; a receiver that fails never fails an update.

use charter_tests::hook::{Hook, Received};
use charter_tests::host::Host;
use hmac::{KeyInit, Mac};

const SECRET: &str = "hook-secret-7b3d9f1a";

fn host(hook: &Hook, extra: &str) -> Host {
    Host::with_config(&format!(
        "[service]\nrestart = [\"/bin/true\"]\n[notify]\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_secs = 5\n{extra}\n",
        hook.url()
    ))
}

/// The one event received since the last call, its signature checked
/// independently (HMAC-SHA256 over the exact body).
#[track_caller]
fn one_event(hook: &Hook) -> serde_json::Value {
    let got = hook.take();
    assert_eq!(got.len(), 1, "{got:#?}");
    check_signed(&got[0])
}

#[track_caller]
fn check_signed(r: &Received) -> serde_json::Value {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hooks/charter");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(&r.body);
    let want = format!("sha256={}", hex::encode(m.finalize().into_bytes()));
    assert_eq!(r.header("x-charter-signature"), Some(want.as_str()));
    let ev = r.json();
    assert_eq!(r.header("x-charter-event"), ev["event"].as_str());
    assert_eq!(r.header("x-charter-delivery"), ev["id"].as_str());
    assert_eq!(ev["id"].as_str().unwrap().len(), 32, "{ev}");
    assert_eq!(ev["product"], "panel");
    assert!(!ev["host"].as_str().unwrap().is_empty(), "{ev}");
    assert!(
        ev["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    ev
}

#[test]
fn installs_rollbacks_and_failures_reach_the_webhook_signed() {
    let hook = Hook::start();
    let h = host(&hook, "");
    h.publish("1.0.0", true, "listen = 1\n", &[]);
    h.update(&["apply"]).ok();
    let ev = one_event(&hook);
    assert_eq!(ev["event"], "installed", "{ev}");
    assert_eq!(ev["release"], "1.0.0");
    assert_eq!(ev["running"], "1.0.0");

    // Nothing to do: no event.
    h.update(&["apply"]).ok();
    assert!(hook.take().is_empty());

    // An unhealthy release, rolled back by itself.
    h.publish("1.1.0", false, "listen = 2\n", &[]);
    assert_eq!(h.update(&["apply"]).code, 3);
    let ev = one_event(&hook);
    assert_eq!(ev["event"], "rolled-back", "{ev}");
    assert_eq!(ev["release"], "1.1.0");
    assert_eq!(ev["running"], "1.0.0");
    assert!(
        ev["reason"].as_str().unwrap().contains("health check"),
        "{ev}"
    );

    // A tampered artifact: the update fails before the swap.
    h.publish("1.2.0", true, "listen = 3\n", &[]);
    let art = h.repo.join("releases/panel/1.2.0/panel-1.2.0.tar.zst");
    let mut bytes = std::fs::read(&art).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&art, &bytes).unwrap();
    h.update(&["apply"]).fails_with("1.2.0");
    let ev = one_event(&hook);
    assert_eq!(ev["event"], "failed", "{ev}");
    assert_eq!(ev["release"], "1.2.0");
    assert_eq!(ev["running"], "1.0.0");

    // A rollback the operator asks for.
    h.publish("1.3.0", true, "listen = 4\n", &[]);
    h.update(&["apply"]).ok();
    assert_eq!(one_event(&hook)["event"], "installed");
    h.update(&["rollback"]).ok();
    let ev = one_event(&hook);
    assert_eq!(ev["event"], "rolled-back", "{ev}");
    assert_eq!(ev["release"], "1.3.0");
    assert_eq!(ev["running"], "1.0.0");
    assert_eq!(ev["reason"], "rollback requested");
}

#[test]
fn a_failing_webhook_never_fails_an_update() {
    let hook = Hook::start();
    hook.answer(503);
    let h = host(&hook, "");
    h.publish("1.0.0", true, "listen = 1\n", &[]);
    let out = h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    assert!(
        out.stderr.contains("the installed event was not delivered") && out.stderr.contains("503"),
        "{out:?}"
    );
    // Tried three times, each signed alike.
    let got = hook.take();
    assert_eq!(got.len(), 3, "{got:#?}");
    for r in &got {
        check_signed(r);
    }
    assert_eq!(got[0].body, got[1].body, "a retry resends the same event");
    // A 4xx is not retried.
    hook.answer(400);
    h.publish("1.1.0", true, "listen = 2\n", &[]);
    h.update(&["apply"]).ok();
    assert_eq!(hook.take().len(), 1);
    // Nobody listening at all.
    let gone = format!("http://127.0.0.1:{}/x", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let cfg = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(&h.config, cfg.replace(&hook.url(), &gone)).unwrap();
    h.publish("1.2.0", true, "listen = 3\n", &[]);
    let out = h.update(&["apply"]).ok();
    assert!(out.stderr.contains("was not delivered"), "{out:?}");
    assert_eq!(h.current().as_deref(), Some("1.2.0"));
    // The secret is in no output.
    assert!(!out.stderr.contains(SECRET) && !out.stdout.contains(SECRET));
}

#[test]
fn deferrals_only_when_asked_and_config_mistakes_named() {
    let hook = Hook::start();
    let h = host(&hook, "events = [\"deferred\"]");
    h.publish("1.0.0", true, "listen = 1\n", &[]);
    // automatic = "check" (the default): deferred, and asked for.
    h.update(&["auto"]).ok();
    let ev = one_event(&hook);
    assert_eq!(ev["event"], "deferred", "{ev}");
    assert_eq!(ev["release"], "1.0.0");
    assert_eq!(ev["running"], serde_json::Value::Null);
    // Installs are not asked for here.
    h.update(&["apply"]).ok();
    assert!(hook.take().is_empty());
    // The plain secret is warned about, as other secrets are.
    let st = h.status();
    assert!(
        st["plain_secrets"].to_string().contains("notify.secret"),
        "{st}"
    );
    for (from, to, needle) in [
        (hook.url(), "ftp://x/".to_owned(), "notify.url"),
        (
            "timeout_secs = 5".to_owned(),
            "timeout_secs = 0".to_owned(),
            "notify.timeout_secs",
        ),
        (
            "events = [\"deferred\"]".to_owned(),
            "events = [\"sometimes\"]".to_owned(),
            "sometimes",
        ),
    ] {
        let cfg = std::fs::read_to_string(&h.config).unwrap();
        std::fs::write(&h.config, cfg.replace(&from, &to)).unwrap();
        h.update(&["status"]).fails_with(needle);
        std::fs::write(&h.config, cfg).unwrap();
    }
}

#[test]
fn redirects_recoveries_and_a_broken_notify_setup() {
    let hook = Hook::start();
    let h = Host::with_config(&format!(
        "[service]\nrestart = [\"/bin/true\"]\n[notify]\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_secs = 5\n",
        hook.url()
    ));
    h.publish("1.0.0", true, "listen = 1\n", &[]);
    // A redirect is not followed (the POST would turn into a GET).
    hook.answer(302);
    let out = h.update(&["apply"]).ok();
    assert!(out.stderr.contains("redirects are not followed"), "{out:?}");
    assert_eq!(hook.take().len(), 1);
    hook.answer(204);
    // A crash after the swap: the next command's recovery rolls back and
    // says so.
    h.publish("2.0.0", true, "listen = 2\n", &[]);
    let out = h.update_env(&["apply"], &[("CHARTER_FAILPOINT", "apply:after-swap")]);
    assert_ne!(out.code, 0);
    assert!(hook.take().is_empty(), "the crashed run sent nothing");
    h.update(&["status"]).ok();
    let ev = one_event(&hook);
    assert_eq!(ev["event"], "rolled-back", "{ev}");
    assert_eq!(ev["release"], "2.0.0");
    assert_eq!(ev["running"], "1.0.0");
    assert!(
        ev["reason"].as_str().unwrap().contains("interrupted"),
        "{ev}"
    );
    // A webhook whose CA file is gone: a warning, and rollback still works.
    let cfg = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        cfg.replace(
            "timeout_secs = 5",
            "timeout_secs = 5\nca_file = \"/nonexistent/ca.pem\"",
        ),
    )
    .unwrap();
    h.update(&["apply"]).ok();
    let out = h.update(&["rollback"]).ok();
    assert!(out.stderr.contains("[notify] cannot be used"), "{out:?}");
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let t = h.update(&["config", "test"]);
    assert_eq!(t.code, 1, "{t:?}");
    assert!(t.stdout.contains("notify"), "{t:?}");
}
