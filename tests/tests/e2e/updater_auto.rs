//! Unattended updates (`charter-update auto`, docs/SPEC.md §11.12): what the
//! timer installs by itself under `[update] automatic`, `windows` and
//! `min_age`, against a real repository and signed releases.

use charter_tests::host::Host;
use jiff::ToSpan;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A host whose `[update]` table holds `update` (times in UTC).
fn host(update: &str) -> Host {
    Host::with_config(&format!(
        "[service]\nrestart = [\"/bin/true\"]\n[update]\ntimezone = \"UTC\"\n{update}\n"
    ))
}

fn set_update(h: &Host, update: &str) {
    h.write_config(
        &h.server.url(),
        &format!("[service]\nrestart = [\"/bin/true\"]\n[update]\ntimezone = \"UTC\"\n{update}\n"),
    );
}

/// `auto --json`, which must exit 0.
#[track_caller]
fn auto(h: &Host) -> serde_json::Value {
    h.update(&["auto", "--json"]).ok().json()
}

/// `auto --json`, which must defer for a reason containing `needle`.
#[track_caller]
fn deferred(h: &Host, needle: &str) -> serde_json::Value {
    let a = auto(h);
    assert_eq!(a["result"], "deferred", "{a}");
    assert!(
        a["reason"].as_str().unwrap().contains(needle),
        "{needle}: {a}"
    );
    a
}

#[test]
fn auto_installs_only_what_the_policy_allows() {
    let h = host("");
    h.publish("1.0.0", true, "listen = 1\n", &[]);
    // Default: check only.
    let a = deferred(&h, "\"check\"");
    assert_eq!(a["candidate"], "1.0.0");
    assert_eq!(h.current(), None);
    let text = h.update(&["auto"]).ok().stdout;
    assert!(text.contains("1.0.0 is not installed now"), "{text}");

    // Security releases only.
    set_update(&h, "automatic = \"security\"");
    let a = auto(&h);
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains("not a signed security fix"),
        "{a}"
    );
    assert_eq!(h.current(), None);
    h.publish("1.0.1", true, "listen = 1\n", &["--security-fix"]);
    let a = auto(&h);
    assert_eq!(a["result"], "installed", "{a}");
    assert_eq!(h.current().as_deref(), Some("1.0.1"));

    // Everything.
    set_update(&h, "automatic = \"all\"");
    h.publish("1.1.0", true, "listen = 2\n", &[]);
    assert_eq!(auto(&h)["result"], "installed");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    assert_eq!(auto(&h)["result"], "up-to-date");

    // An unhealthy release is rolled back (exit 3); the next runs leave it
    // alone until the operator retries it.
    h.publish("1.2.0", false, "listen = 3\n", &[]);
    let out = h.update(&["auto"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    deferred(&h, "--retry-bad");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    let hist = h.update(&["history", "--json"]).ok().json();
    assert_eq!(
        hist.as_array().unwrap().len(),
        3,
        "deferrals write no history: {hist}"
    );
}

#[test]
fn auto_waits_for_the_window_and_min_age() {
    // A window three days from today (UTC): never open now.
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let later = today.date().checked_add(3.days()).unwrap();
    let day = DAYS[later.weekday().to_monday_zero_offset() as usize];
    let h = host(&format!(
        "automatic = \"all\"\nwindows = [\"{day} 02:00-04:00\"]"
    ));
    h.publish("1.0.0", true, "listen = 1\n", &[]);
    let before = h.snapshot();
    let a = deferred(&h, "outside the maintenance windows");
    let until: jiff::Timestamp = a["until"].as_str().unwrap().parse().unwrap();
    let expect = later
        .to_datetime(jiff::civil::time(2, 0, 0, 0))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    assert_eq!(until, expect, "{a}");
    assert_eq!(before.0, h.snapshot().0, "nothing installed");
    assert_eq!(h.current(), None);

    // Inside a window, but the release is younger than min_age.
    set_update(
        &h,
        "automatic = \"all\"\nwindows = [\"* 00:00-24:00\"]\nmin_age = \"1h\"",
    );
    let a = deferred(&h, "update.min_age is 1h");
    let until: jiff::Timestamp = a["until"].as_str().unwrap().parse().unwrap();
    let now = jiff::Timestamp::now();
    assert!(
        until > now && until <= now + jiff::SignedDuration::from_hours(1),
        "{a}"
    );
    assert_eq!(h.current(), None);

    // Old enough and inside: installed.
    set_update(
        &h,
        "automatic = \"all\"\nwindows = [\"* 00:00-24:00\"]\nmin_age = \"0s\"",
    );
    assert_eq!(auto(&h)["result"], "installed");
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let st = h.status();
    assert_eq!(
        st["automatic"], "every newer release, in * 00:00-24:00 (UTC)",
        "{st}"
    );
}

#[test]
fn auto_config_mistakes_are_named() {
    let h = host("");
    for (update, needle) in [
        ("windows = [\"Sunday 02:00-03:00\"]", "update.windows"),
        ("windows = [\"Sun 02:00-02:00\"]", "empty span"),
        ("min_age = \"soon\"", "update.min_age"),
        ("automatic = \"sometimes\"", "automatic"),
    ] {
        set_update(&h, update);
        h.update(&["status"]).fails_with(needle);
    }
    // An unknown zone stops `auto` (and shows in `config test` and
    // `status`), not every command: rollback must work without tzdata.
    h.write_config(
        &h.server.url(),
        "[update]\nautomatic = \"all\"\ntimezone = \"Mars/Olympus_Mons\"\n",
    );
    h.update(&["auto"]).fails_with("update.timezone");
    let st = h.status();
    assert!(
        st["automatic"]
            .as_str()
            .unwrap()
            .contains("update.timezone"),
        "{st}"
    );
    let t = h.update(&["config", "test"]);
    assert!(
        t.stdout.contains("auto") && t.stdout.contains("Mars/Olympus_Mons"),
        "{t:?}"
    );
}

#[test]
fn checking_never_fails_the_timer_and_a_resigned_pointer_keeps_min_age() {
    let h = host("");
    h.publish("1.0.0", true, "listen = 1\n", &[]);
    h.publish("1.1.0", true, "listen = 2\n", &[]);
    h.update(&["apply"]).ok();
    // The channel goes back to 1.0.0: an attack signal. `check` reports it
    // and exits 0; so does `auto` while it only checks...
    h.point("stable", "1.0.0");
    deferred(&h, "rollback attack");
    // ...and fails (the unit shows failed) once it may install.
    set_update(&h, "automatic = \"all\"");
    h.update(&["auto"]).fails_with("rollback attack");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));

    // min_age counts from when this host first saw the release on offer,
    // not from a channel pointer re-signed since.
    set_update(&h, "automatic = \"all\"\nmin_age = \"1h\"");
    h.publish("1.2.0", true, "listen = 3\n", &[]);
    let first = auto(&h);
    assert_eq!(first["result"], "deferred", "{first}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    h.point("stable", "1.2.0");
    let second = auto(&h);
    // Re-signed over a second after this host first saw 1.2.0 on offer:
    // the wait still ends an hour after that first sight.
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.root.join("state/state.json")).unwrap()).unwrap();
    assert_eq!(st["offered"]["version"], "1.2.0", "{st}");
    let seen: jiff::Timestamp = st["offered"]["since"].as_str().unwrap().parse().unwrap();
    let until: jiff::Timestamp = second["until"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        until,
        seen + jiff::SignedDuration::from_hours(1),
        "{first} {second}"
    );
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
}
