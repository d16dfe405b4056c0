//! Phased rollouts (docs/SPEC.md §9.6) against a real repository: waves
//! signed into the channel pointer by `charter channel publish --rollout`,
//! hosts that wait for their turn, `apply` ahead of it, halt, resume and
//! revert by re-signed pointers, and the host's stable position.

use charter_tests::host::Host;

/// A host at `position` (`"early"`, `"late"` or a number) that installs
/// everything by itself, with 1.0.0 installed from a pointer without a
/// plan.
fn host(position: &str) -> Host {
    let h = Host::with_config(&rollout_config(position, "automatic = \"all\""));
    h.publish("1.0.0", true, "a = 1\n", &[]);
    // A pointer without a plan: every host at once, as before rollouts.
    let a = h.update(&["auto", "--json"]).ok().json();
    assert_eq!(a["result"], "installed", "{a}");
    h
}

fn rollout_config(position: &str, update: &str) -> String {
    format!(
        "[service]\nrestart = [\"/bin/true\"]\n[update]\ntimezone = \"UTC\"\n{update}\n\
         [rollout]\nposition = {position}\n"
    )
}

/// Publishes `version` and points the channel at it with `--rollout plan`.
fn publish_with_plan(h: &Host, version: &str, plan: &str) {
    h.publish(version, true, "a = 1\n", &[]);
    h.point_with("stable", version, &["--rollout", plan]).ok();
}

/// Writes a plan file in the fixture directory; its path for --rollout.
fn plan_file(h: &Host, name: &str, json: &str) -> String {
    std::fs::write(h.f.path().join(name), json).unwrap();
    name.to_owned()
}

/// `charter rollout <verb>` on `channel` with `extra` args (put `--json`
/// in `extra` for JSON).
fn rollout_cmd(h: &Host, verb: &str, channel: &str, extra: &[&str]) -> charter_tests::Output {
    h.on_channel(&["rollout", verb], channel, extra)
}

/// `auto` defers, for a reason that starts with `why`; its answer.
#[track_caller]
fn auto_deferred(h: &Host, why: &str) -> serde_json::Value {
    let a = auto(h);
    assert_eq!(a["result"], "deferred", "{a}");
    assert!(a["reason"].as_str().unwrap().starts_with(why), "{a}");
    a
}

#[track_caller]
fn auto(h: &Host) -> serde_json::Value {
    h.update(&["auto", "--json"]).ok().json()
}

#[test]
fn late_host_waits_for_its_turn_then_installs_and_apply_may_go_early() {
    let h = host("\"late\"");
    // One wave: 100% by 4 s after the start; position 9999 is eligible at
    // its very end.
    let plan = plan_file(&h, "plan.json", r#"[{"after": "4s", "percent": 100}]"#);
    publish_with_plan(&h, "1.1.0", &plan);
    let p = h.pointer();
    assert_eq!(p["rollout"]["plan"], "file");
    assert_eq!(p["rollout"]["waves"][0]["after_secs"], 4);
    assert_eq!(p["previous"]["version"], "1.0.0");

    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["position"]["position"], 9999, "{c}");
    assert_eq!(c["position"]["source"], "set");
    assert_eq!(c["rollout"]["wave"], 1);
    assert_eq!(c["rollout"]["eligible"], false);
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("ahead of this host's turn"),
        "{c}"
    );
    let a = auto_deferred(&h, "not this host's turn yet: position 9999, wave 1 of 1");
    let until: jiff::Timestamp = a["until"].as_str().unwrap().parse().unwrap();
    let status = h.update(&["status"]).ok().stdout;
    assert!(
        status.contains("rollout:  position 9999, wave 1 of 1, eligible for 1.1.0 from"),
        "{status}"
    );
    assert_eq!(h.current().as_deref(), Some("1.0.0"));

    // Its turn comes: the timer installs it.
    let wait = until.duration_since(jiff::Timestamp::now()).as_secs_f64() + 0.5;
    if wait > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(wait));
    }
    let a = auto(&h);
    assert_eq!(a["result"], "installed", "{a}");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));

    // The default plan puts position 9999 in its last wave, days away;
    // an operator's `apply` installs it now and says so.
    publish_with_plan(&h, "1.2.0", "default");
    assert_eq!(auto(&h)["result"], "deferred");
    let out = h.update(&["apply"]).ok();
    assert!(
        out.stderr
            .contains("installing 1.2.0 by hand, ahead of this host's turn in the rollout (position 9999, wave 7 of 7"),
        "{}",
        out.stderr
    );
    assert_eq!(h.current().as_deref(), Some("1.2.0"));
}

#[test]
fn halt_stops_hosts_that_have_not_installed_and_resume_lets_them_go_on() {
    let h = host("\"early\"");
    publish_with_plan(&h, "1.1.0", "fast");
    // Seen once, so that the halt has to get past a cached pointer.
    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["rollout"]["eligible"], true, "{c}");
    h.channel("halt", &["--reason", "crash reports"]).ok();
    let p = h.pointer();
    assert_eq!(p["rollout"]["halted"]["reason"], "crash reports");

    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["not_modified"], false, "the halt is a new pointer: {c}");
    assert_eq!(c["update_available"], false, "{c}");
    assert!(c["rollout"]["halted"].is_object(), "{c}");
    let a = auto(&h);
    assert_eq!(a["result"], "deferred", "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.contains("the rollout of 1.1.0 is halted") && reason.contains("crash reports"),
        "{reason}"
    );
    assert!(a["until"].is_null(), "{a}");
    h.update(&["apply"])
        .fails_with("the rollout of 1.1.0 is halted (since ");
    h.update(&["apply"])
        .fails_with("crash reports); `apply --version 1.1.0` installs it anyway");
    // Halting twice says it is halted already; nothing is written.
    let before = std::fs::read(h.repo.join("channels/panel/stable.json")).unwrap();
    h.channel("halt", &[]).fails_with("is halted already");
    assert_eq!(
        before,
        std::fs::read(h.repo.join("channels/panel/stable.json")).unwrap()
    );
    assert_eq!(h.current().as_deref(), Some("1.0.0"));

    // Resumed: the plan goes on where it stopped, and the early host,
    // eligible from the start, installs.
    let start = p["rollout"]["start"].as_str().unwrap().to_owned();
    h.channel("resume", &[]).ok();
    let r = h.pointer();
    assert!(r["rollout"]["halted"].is_null(), "{r}");
    assert!(
        r["rollout"]["start"].as_str().unwrap() > start.as_str(),
        "{r}"
    );
    assert_eq!(auto(&h)["result"], "installed");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    h.channel("resume", &[]).fails_with("is not halted");
}

#[test]
fn halt_with_revert_sends_hosts_of_the_halted_version_back_at_once() {
    // Security fixes only and a day of soak time: neither holds a revert.
    let h = Host::with_config(&rollout_config(
        "\"early\"",
        "automatic = \"security\"\nmin_age = \"1d\"",
    ));
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    publish_with_plan(&h, "1.1.0", "all-at-once");
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.1.0"));

    h.channel("halt", &["--revert", "--reason", "data loss"])
        .ok();
    let p = h.pointer();
    assert_eq!(p["version"], "1.0.0");
    assert_eq!(p["allow_downgrade"], true);
    assert_eq!(p["reverted"]["version"], "1.1.0");
    assert_eq!(p["reverted"]["reason"], "data loss");
    assert!(p.get("rollout").is_none(), "{p}");
    let a = auto(&h);
    assert_eq!(a["result"], "installed", "{a}");
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    // Nothing left to revert to.
    h.channel("halt", &["--revert"])
        .fails_with("records no previous release to revert to");
}

#[test]
fn a_later_slower_plan_never_moves_an_installed_host_back() {
    let h = host("3000");
    publish_with_plan(&h, "1.1.0", "all-at-once");
    assert_eq!(auto(&h)["result"], "installed");
    let start = h.pointer()["rollout"]["start"].clone();
    // The same version again, with the default plan: position 3000 is
    // days away in it, and the rollout keeps its start.
    h.point_with("stable", "1.1.0", &["--rollout", "default"])
        .ok();
    let p = h.pointer();
    assert_eq!(p["rollout"]["plan"], "default");
    assert_eq!(p["rollout"]["start"], start);
    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["rollout"]["eligible"], false, "{c}");
    let a = auto(&h);
    assert_eq!(a["result"], "up-to-date", "{a}");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
}

#[test]
fn position_is_derived_from_the_machine_id_per_product_and_kept_without_one() {
    let h = Host::new();
    let id = "0123456789abcdef0123456789abcdef";
    let mid = h.root.join("etc/machine-id");
    std::fs::write(&mid, format!("{id}\n")).unwrap();
    let cfg = format!("[rollout]\nmachine_id = \"{}\"\n", mid.display());
    h.write_config(&h.server.url(), &cfg);
    let s = h.update(&["status", "--json"]).ok().json();
    assert_eq!(s["rollout"]["source"], "machine-id", "{s}");
    assert_eq!(
        s["rollout"]["position"],
        charter_release::rollout::position("panel", id.as_bytes()),
        "{s}"
    );
    // Without a machine id: a random id in the state directory, the same
    // on every run.
    std::fs::remove_file(&mid).unwrap();
    let a = h.update(&["status", "--json"]).ok().json();
    let b = h.update(&["status", "--json"]).ok().json();
    assert_eq!(a["rollout"]["source"], "state");
    assert_eq!(a["rollout"]["position"], b["rollout"]["position"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(h.root.join("state/rollout-id"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn bad_plans_are_refused_naming_what_is_wrong_and_nothing_is_written() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    let before = std::fs::read(h.repo.join("channels/panel/stable.json")).unwrap();
    h.point_with("stable", "1.0.0", &["--rollout", "sometimes"])
        .fails_with("--rollout `sometimes` is neither a preset (default, fast, all-at-once) nor a plan file");
    let plan = plan_file(
        &h,
        "bad.json",
        r#"[{"after": "1h", "percent": 50}, {"after": "30m", "percent": 100}]"#,
    );
    h.point_with("stable", "1.0.0", &["--rollout", &plan])
        .fails_with("bad.json: invalid rollout plan: wave 2: after 1800 s is not later than wave 1's 3600 s");
    let plan = plan_file(&h, "short.json", r#"[{"after": "1h", "percent": 50}]"#);
    h.point_with("stable", "1.0.0", &["--rollout", &plan])
        .fails_with("the last wave must reach 100%");
    h.channel("resume", &[]).fails_with("is not halted");
    assert_eq!(
        before,
        std::fs::read(h.repo.join("channels/panel/stable.json")).unwrap()
    );
    // A bad [rollout] table is refused by the host, naming the field.
    h.write_config(&h.server.url(), "[rollout]\nposition = 10000\n");
    h.update(&["status"])
        .fails_with("rollout.position 10000 is not \"early\", \"late\" or a number 0 to 9999");
}

#[test]
fn operator_hold_stops_auto_until_it_expires_or_is_cleared_and_apply_still_installs() {
    let h = host("\"early\"");
    h.publish("1.1.0", true, "a = 1\n", &[]);
    let out = h
        .update(&["hold", "--until", "2h", "--reason", "quarter-end"])
        .ok();
    assert!(
        out.stdout.contains("held by the operator until")
            && out
                .stdout
                .contains(": quarter-end; `charter-update apply` still installs by hand"),
        "{}",
        out.stdout
    );
    let s = h.status();
    assert_eq!(s["hold"]["reason"], "quarter-end", "{s}");
    let a = auto_deferred(&h, "held by the operator until");
    assert_eq!(a["until"], s["hold"]["until"]);
    let text = h.update(&["status"]).ok().stdout;
    assert!(
        text.contains("hold:     held by the operator until"),
        "{text}"
    );
    let test = h.update(&["config", "test"]).stdout;
    assert!(
        test.contains("hold") && test.contains("quarter-end"),
        "{test}"
    );
    // By hand, the operator installs anyway.
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.1.0"));

    // A hold ends by itself, offline.
    h.publish("1.2.0", true, "a = 1\n", &[]);
    h.update(&["hold", "--until", "2s"]).ok();
    assert_eq!(auto(&h)["result"], "deferred");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(auto(&h)["result"], "installed");
    assert_eq!(h.current().as_deref(), Some("1.2.0"));

    // And is lifted by --clear.
    h.publish("1.3.0", true, "a = 1\n", &[]);
    h.update(&["hold", "--until", "1d"]).ok();
    assert_eq!(auto(&h)["result"], "deferred");
    let out = h.update(&["hold", "--clear"]).ok();
    assert!(out.stdout.contains("hold cleared"), "{}", out.stdout);
    assert!(h.status()["hold"].is_null());
    assert_eq!(auto(&h)["result"], "installed");

    // A time in the past is refused, and nothing is written.
    h.update(&["hold", "--until", "2020-01-01T00:00:00Z"])
        .fails_with("hold: --until 2020-01-01T00:00:00Z is not in the future");
    assert!(h.status()["hold"].is_null());
    h.update(&["hold", "--until", "soon"])
        .fails_with("--until `soon` is neither an RFC 3339 time nor a duration");
}

/// `charter rollout status` reads the signed pointer: the plan, each
/// wave's end and state, the wave in progress and the share eligible now
/// or at `--at`; a halt freezes it.
#[test]
fn rollout_status_shows_the_plan_where_it_stands_and_a_halt() {
    let h = host("\"late\"");
    let plan = plan_file(
        &h,
        "plan.json",
        r#"[{"after": "1h", "percent": 10}, {"after": "2h", "percent": 100}]"#,
    );
    publish_with_plan(&h, "1.1.0", &plan);
    let status = |extra: &[&str]| {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        rollout_cmd(&h, "status", "stable", &args).ok().json()
    };
    let start: jiff::Timestamp = h.pointer()["rollout"]["start"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let after = |mins: i64| (start + jiff::SignedDuration::from_mins(mins)).to_string();
    let s = status(&["--at", &after(90)]);
    assert_eq!(s["version"], "1.1.0", "{s}");
    assert_eq!(s["previous"], "1.0.0");
    let r = &s["rollout"];
    assert_eq!(r["plan"], "file");
    assert_eq!(r["wave"], 2, "{s}");
    assert_eq!(r["waves"][0]["state"], "done");
    assert_eq!(r["waves"][1]["state"], "in progress");
    assert_eq!(r["eligible_percent"], 55.0, "{s}");
    assert_eq!(r["eligible_below_position"], 5500);
    let s = status(&["--at", &after(180)]);
    assert_eq!(s["rollout"]["eligible_percent"], 100.0, "{s}");
    assert_eq!(s["rollout"]["waves"][1]["state"], "done");

    h.channel("halt", &["--reason", "crash reports"]).ok();
    let s = status(&["--at", &after(90)]);
    assert_eq!(s["rollout"]["halted"]["reason"], "crash reports", "{s}");
    assert_eq!(
        s["rollout"]["wave"], 1,
        "frozen at the halt, just after the start: {s}"
    );
    let text = rollout_cmd(&h, "status", "stable", &[]).ok().stdout;
    assert!(
        text.contains("HALTED at ") && text.contains("(crash reports)"),
        "{text}"
    );
    assert!(text.contains("  wave 2: 100% by "), "{text}");
    rollout_cmd(&h, "status", "beta", &[]).fails_with("has no pointer for panel/beta");
    rollout_cmd(&h, "status", "stable", &["--at", "soon"])
        .fails_with("--at `soon` is neither a duration (1d) nor an RFC 3339 time");
}

/// Closing the loop: a host POSTs a signed report of each outcome
/// (`[rollout] report_url`); `charter rollout watch` verifies the
/// collected reports with the vendor's secret, counts them per wave, and
/// halts the rollout when a wave's failure ratio passes the threshold.
#[test]
fn reports_of_failures_halt_the_rollout_through_rollout_watch() {
    use charter_release::report::{Outcome, Report, host_tag, license_key};
    let hook = charter_tests::hook::Hook::start();
    let h = Host::new();
    // The vendor's report secret, and the key of license acme-1 for its
    // hosts.
    h.f.charter(&["rollout", "secret", "--out", "report.secret"])
        .ok();
    h.f.charter(&[
        "rollout",
        "report-key",
        "--secret",
        "report.secret",
        "--license-id",
        "acme-1",
        "--out",
        "report.key",
    ])
    .ok();
    h.write_config(
        &h.server.url(),
        &format!(
            "{}report_url = \"{}\"\nreport_key = \"{}\"\n",
            rollout_config("\"early\"", "automatic = \"all\""),
            hook.url(),
            h.f.path().join("report.key").display()
        ),
    );
    h.publish("1.0.0", true, "a = 1\n", &[]);
    auto(&h);
    let first = hook.take();
    assert_eq!(first.len(), 1, "one report of 1.0.0's install");
    // 1.1.0 fails its health check here: rolled back, and reported.
    h.publish("1.1.0", false, "a = 1\n", &[]);
    h.point_with("stable", "1.1.0", &["--rollout", "fast"]).ok();
    let out = h.update(&["auto", "--json"]);
    assert_eq!(out.code, 3, "{out:?}");
    let a = out.json();
    assert_eq!(a["result"], "rolled-back", "{a}");
    let got = hook.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].header("x-charter-report"), Some("rolled-back"));
    let line = got[0].body.clone();
    let secret_text = std::fs::read_to_string(h.f.path().join("report.secret")).unwrap();
    let mut secret = [0u8; 32];
    hex::decode_to_slice(secret_text.trim(), &mut secret).unwrap();
    let r = Report::verify(&line, |id| *license_key(&secret, id)).unwrap();
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(r.version.to_string(), "1.1.0");
    assert_eq!(
        r.from.as_ref().map(ToString::to_string).as_deref(),
        Some("1.0.0")
    );
    assert_eq!((r.position, r.wave), (0, Some(1)));
    assert_eq!(r.license, "acme-1");
    assert!(r.reason.as_deref().unwrap().contains("health"), "{r:?}");

    // The collector's directory: this report, nine healthy ones of other
    // hosts (another license), and one forged under a wrong secret.
    let dir = h.f.path().join("reports");
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = vec![String::from_utf8(line).unwrap()];
    for i in 0..9u32 {
        let rep = Report {
            outcome: Outcome::Healthy,
            reason: None,
            position: 10 + i as u16,
            host: host_tag("panel", format!("other-{i}").as_bytes()),
            license: "acme-2".into(),
            id: format!("{:032x}", 1000 + i),
            ..r.clone()
        };
        lines.push(rep.sign(&license_key(&secret, "acme-2")).unwrap());
    }
    let forged = Report {
        id: format!("{:032x}", 99),
        host: host_tag("panel", b"forged"),
        ..r.clone()
    };
    lines.push(
        forged
            .sign(&license_key(b"not the secret", "acme-1"))
            .unwrap(),
    );
    std::fs::write(dir.join("collected.jsonl"), lines.join("\n") + "\n").unwrap();

    let watch = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "--key",
            "chan.key",
            "--reports",
            "reports",
            "--secret",
            "report.secret",
            "--max-failure-ratio",
            "0.05",
        ];
        args.extend_from_slice(extra);
        rollout_cmd(&h, "watch", "stable", &args).ok().json()
    };
    // Ten reports, one failed (10%), but at least 20 asked: goes on.
    let w = watch(&["--min-reports", "20"]);
    assert_eq!(w["counts"]["waves"][0]["reports"], 10, "{w}");
    assert_eq!(w["counts"]["waves"][0]["failed"], 1);
    assert_eq!(w["counts"]["unverified"], 1);
    assert_eq!(w["halted_now"], false);
    assert!(h.pointer()["rollout"]["halted"].is_null());
    // A cap of 5 hosts a license: 4 of acme-2's left out; 1 of 6 failed.
    let w = watch(&["--min-reports", "20", "--max-hosts-per-license", "5"]);
    assert_eq!(w["counts"]["capped"], 4, "{w}");
    // At least 10: 10% > 5%, the rollout halts, signed with the channel key.
    let w = watch(&["--min-reports", "10"]);
    assert_eq!(w["halted_now"], true, "{w}");
    assert_eq!(
        w["verdict"],
        "wave 1: 1 of 10 reports failed (10.0% > 5.0%)"
    );
    let p = h.pointer();
    assert_eq!(
        p["rollout"]["halted"]["reason"],
        "rollout watch: wave 1: 1 of 10 reports failed (10.0% > 5.0%)"
    );
    // Once halted, a pass only says so.
    let w = watch(&["--min-reports", "10"]);
    assert_eq!(
        (w["halted_before"].clone(), w["halted_now"].clone()),
        (true.into(), false.into())
    );
    // `rollout status` shows the same counts.
    let s = rollout_cmd(
        &h,
        "status",
        "stable",
        &["--reports", "reports", "--secret", "report.secret"],
    )
    .ok()
    .stdout;
    assert!(
        s.contains("wave 1: 10 report(s), 9 healthy, 1 failed (10.0%)"),
        "{s}"
    );

    // The same drawn: plan, installed share, the halt, reports per wave.
    rollout_cmd(
        &h,
        "status",
        "stable",
        &[
            "--reports",
            "reports",
            "--secret",
            "report.secret",
            "--chart",
            "chart.svg",
            "--fleet-size",
            "20",
        ],
    )
    .ok();
    let svg = std::fs::read_to_string(h.f.path().join("chart.svg")).unwrap();
    for needle in [
        "<svg",
        "plan: eligible share",
        "installed and healthy (of 20 hosts)",
        "halted at ",
        "rollout watch: wave 1",
        "reports per wave",
    ] {
        assert!(svg.contains(needle), "{needle} not in the chart");
    }
    assert!(svg.matches("<polyline").count() >= 3, "three lines drawn");

    // A report key others can read is refused: a warning, no reports.
    use std::os::unix::fs::PermissionsExt;
    let key = h.f.path().join("report.key");
    let key_text = std::fs::read_to_string(&key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = h.update(&["check"]).ok();
    assert!(
        out.stderr
            .contains("WARNING: [rollout] report_url cannot be used"),
        "{out:?}"
    );
    let hex_key = &key_text[key_text.find("\"key\":\"").unwrap() + 7..][..64];
    assert!(!out.stderr.contains(hex_key) && !out.stdout.contains(hex_key));
    // The vendor's secret too.
    let sec = h.f.path().join("report.secret");
    std::fs::set_permissions(&sec, std::fs::Permissions::from_mode(0o640)).unwrap();
    h.f.charter(&[
        "rollout",
        "report-key",
        "--secret",
        "report.secret",
        "--license-id",
        "acme-9",
        "--out",
        "acme-9.key",
    ])
    .fails_with("report.secret");
    assert!(!h.f.path().join("acme-9.key").exists());
}
