//! The host against real distribution engines (docs/SPEC.md §9.7): nginx
//! as the origin and nginx as a caching proxy in front of it, as a CDN
//! edge would be. An idle poll is one HEAD and one conditional GET; a halt
//! reaches hosts through the cache within its configured life.

use std::time::Duration;

use charter_tests::host::Host;
use charter_tests::nginx::{LogLine, Nginx};

/// A host with 1.0.0 installed, a release of 2,000 files (its manifest is
/// some 500 KB), then following `url` instead of the test server.
fn host_with_large_release() -> Host {
    let h = Host::new();
    let t = h.tree("1.0.0", true, "a = 1\n");
    std::fs::create_dir_all(t.join("share/many")).unwrap();
    for i in 0..2000 {
        std::fs::write(
            t.join(format!("share/many/file-{i:04}.txt")),
            format!("{i}\n"),
        )
        .unwrap();
    }
    h.publish_tree(
        "1.0.0",
        &["--config", "etc/*.toml", "--health-cmd", "bin/health"],
    );
    h.update(&["apply", "--json"]).ok();
    h
}

fn backdate(path: &std::path::Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
}

fn bytes(log: &[LogLine]) -> u64 {
    log.iter().map(|l| l.request_bytes + l.response_bytes).sum()
}

fn manifest_size(h: &Host) -> u64 {
    std::fs::metadata(h.repo.join("releases/panel/1.0.0/manifest.json"))
        .unwrap()
        .len()
}

#[test]
fn idle_poll_against_nginx_is_one_head_and_one_304_under_1_kib() {
    let h = host_with_large_release();
    let size = manifest_size(&h);
    assert!(size > 400_000, "manifest is {size} bytes");
    // A pointer written a minute ago: validators of a document fetched
    // within two seconds of its Last-Modified are not relied on (SPEC
    // §11.2), which would make the first polls full GETs.
    backdate(&h.repo.join("channels/panel/stable.json"));
    let origin = Nginx::origin(&h.repo);
    h.write_config(&origin.url(), "");
    // The first poll through nginx learns its ETag (the test server's
    // differs); the manifest is not downloaded even then: the host keeps
    // the one the pointer pins.
    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["update_available"], false, "{c}");
    let first = origin.log();
    assert!(
        !first.iter().any(|l| l.uri.ends_with("manifest.json")),
        "{first:?}"
    );
    origin.clear_log();

    for verb in ["check", "auto"] {
        h.update(&[verb, "--json"]).ok();
        let log = origin.log();
        let shape: Vec<(&str, &str, u16)> = log
            .iter()
            .map(|l| (l.method.as_str(), l.uri.as_str(), l.status))
            .collect();
        assert_eq!(
            shape,
            [
                ("HEAD", "/2.root.json", 404),
                ("GET", "/channels/panel/stable.json", 304)
            ],
            "{verb}"
        );
        let total = bytes(&log);
        eprintln!(
            "idle {verb} against nginx: {} requests, {total} bytes on the wire \
             (manifest of the release: {size} bytes)",
            log.len()
        );
        assert!(total < 1024, "{verb}: {total} bytes: {log:?}");
        origin.clear_log();
    }
}

#[test]
fn tampered_pinned_manifest_copy_is_fetched_again_not_trusted() {
    let h = host_with_large_release();
    // Another validly signed manifest (1.1.0's) in place of the kept copy
    // of the one the pointer pins (1.0.0's): its digest is not the pin's,
    // so the host fetches the pinned one again and offers 1.0.0.
    h.publish("1.1.0", true, "a = 1\n", &[]);
    h.point("stable", "1.0.0");
    let kept = h.root.join("state/channel.manifest.json");
    assert!(kept.exists());
    std::fs::copy(h.repo.join("releases/panel/1.1.0/manifest.json"), &kept).unwrap();
    let before = h.server.requests().len();
    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["current"], "1.0.0", "{c}");
    assert_eq!(c["update_available"], false, "{c}");
    let fetched: Vec<String> = h.server.requests()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        fetched
            .iter()
            .any(|p| p == "/releases/panel/1.0.0/manifest.json"),
        "{fetched:?}"
    );
    // The copy is the pinned manifest again.
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        std::fs::read(h.repo.join("releases/panel/1.0.0/manifest.json")).unwrap()
    );
}

/// Long enough for an nginx cache entry of life `ttl` to be stale: nginx
/// counts in whole seconds and an entry is fresh while `valid_sec >= now`,
/// so it may live up to a second past its life.
fn past_life(ttl: Duration) -> Duration {
    ttl + Duration::from_millis(1500)
}

#[test]
fn halt_reaches_hosts_through_a_caching_proxy_within_its_cache_life() {
    let h = Host::with_config(
        "[service]\nrestart = [\"/bin/true\"]\n[update]\nautomatic = \"all\"\n\
         timezone = \"UTC\"\n[rollout]\nposition = \"late\"\n",
    );
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply", "--json"]).ok();
    let origin = Nginx::origin(&h.repo);
    let ttl = Duration::from_secs(4);
    let edge = Nginx::caching_proxy(&origin.origin_url(), ttl);
    h.write_config(
        &edge.url(),
        "[service]\nrestart = [\"/bin/true\"]\n[update]\nautomatic = \"all\"\n\
         timezone = \"UTC\"\n[rollout]\nposition = \"late\"\n",
    );
    // 1.1.0 with one wave ending an hour from now: this late host waits.
    h.publish("1.1.0", true, "a = 1\n", &[]);
    std::fs::write(
        h.f.path().join("plan.json"),
        r#"[{"after": "1h", "percent": 100}]"#,
    )
    .unwrap();
    h.point_with("stable", "1.1.0", &["--rollout", "plan.json"])
        .ok();
    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["candidate"], "1.1.0", "{c}");
    assert!(c["rollout"]["halted"].is_null(), "{c}");

    // The halt is published at the origin; the edge still serves the
    // pointer it cached, until its life ends.
    h.channel("halt", &["--reason", "crash reports"]).ok();
    let c = h.update(&["check", "--json"]).ok().json();
    assert!(c["rollout"]["halted"].is_null(), "cached pointer: {c}");
    let pointer_hits: Vec<String> = edge
        .log()
        .iter()
        .filter(|l| l.uri == "/channels/panel/stable.json")
        .map(|l| l.cache.clone())
        .collect();
    assert_eq!(pointer_hits.last().map(String::as_str), Some("HIT"));

    // Past the cache life the edge revalidates with the origin (a
    // conditional GET), gets the new pointer, and the host stops.
    std::thread::sleep(past_life(ttl));
    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["rollout"]["halted"]["reason"], "crash reports", "{c}");
    let a = h.update(&["auto", "--json"]).ok().json();
    assert_eq!(a["result"], "deferred", "{a}");
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let origin_pointer: Vec<(u16, String)> = origin
        .log()
        .iter()
        .filter(|l| l.uri == "/channels/panel/stable.json")
        .map(|l| (l.status, l.method.clone()))
        .collect();
    assert!(
        origin_pointer.len() >= 2,
        "the edge asked the origin again: {origin_pointer:?}"
    );

    // Idle again: once the edge has the halted pointer, the host's poll
    // is answered 304 through it (the edge revalidates with the origin
    // when its copy is stale, and the origin answers 304 too).
    std::thread::sleep(past_life(ttl));
    edge.clear_log();
    origin.clear_log();
    h.update(&["check", "--json"]).ok();
    let at_edge: Vec<(String, u16, String)> = edge
        .log()
        .iter()
        .filter(|l| l.uri == "/channels/panel/stable.json")
        .map(|l| (l.method.clone(), l.status, l.cache.clone()))
        .collect();
    assert_eq!(at_edge, [("GET".into(), 304, "REVALIDATED".into())]);
    let at_origin: Vec<u16> = origin
        .log()
        .iter()
        .filter(|l| l.uri == "/channels/panel/stable.json")
        .map(|l| l.status)
        .collect();
    assert_eq!(at_origin, [304]);
}

/// A server that refuses `HEAD` (405) is asked for the next root with a
/// `GET`, and a root that exists is fetched whole after its `HEAD`.
#[test]
fn root_probe_falls_back_to_get_when_head_is_refused() {
    use charter_tests::server::Fault;
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    let before = h.server.requests().len();
    h.server.set_fault("/2.root.json", Fault::Status(405), 1);
    h.update(&["check", "--json"]).ok();
    let probes: Vec<(String, u16)> = h.server.requests()[before..]
        .iter()
        .filter(|r| r.path == "/2.root.json")
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(probes, [("HEAD".into(), 405), ("GET".into(), 404)]);
}
