use charter_tests::{Fixture, snapshot};

#[test]
fn init_and_verify() {
    let f = Fixture::new();
    let j = f
        .charter(&["root", "verify", "root.json", "--json"])
        .ok()
        .json();
    assert_eq!(j["verified"], true);
    assert_eq!(j["version"], 1);
    assert_eq!(j["roles"]["release"]["threshold"], 2);
    assert_eq!(j["roles"]["release"]["keyids"].as_array().unwrap().len(), 2);
}

#[test]
fn init_without_a_role_writes_nothing() {
    let f = Fixture::new();
    let before = snapshot(f.path());
    f.charter(&[
        "root",
        "init",
        "--out",
        "r2.json",
        "--root-key",
        "root.key.pub",
        "--release-key",
        "rel1.key.pub",
        "--channel-key",
        "chan.key.pub",
    ])
    .fails_with("role `license` needs at least one key: pass --license-key FILE");
    f.charter(&[
        "root",
        "init",
        "--out",
        "r2.json",
        "--root-key",
        "root.key.pub",
        "--release-key",
        "rel1.key.pub",
        "--release-threshold",
        "2",
        "--channel-key",
        "chan.key.pub",
        "--license-key",
        "lic.key.pub",
    ])
    .fails_with("role `release` has threshold 2 with 1 key(s)");
    assert_eq!(before, snapshot(f.path()));
}

#[test]
fn unsigned_root_does_not_verify() {
    let f = Fixture::new();
    f.charter(&[
        "root",
        "init",
        "--out",
        "r.json",
        "--root-key",
        "root.key.pub",
        "--release-key",
        "rel1.key.pub",
        "--channel-key",
        "chan.key.pub",
        "--license-key",
        "lic.key.pub",
    ])
    .ok();
    f.charter(&["root", "verify", "r.json"])
        .fails_with("threshold not met for role `root`");
    f.charter(&["root", "sign", "--key", "root.key", "r.json"])
        .ok();
    f.charter(&["root", "verify", "r.json"]).ok();
}

#[test]
fn rotation_chain_through_the_cli() {
    let f = Fixture::new();
    f.charter(&["key", "generate", "--out", "root2.key"]).ok();
    f.charter(&["key", "generate", "--out", "root3.key"]).ok();
    // v2: root moves to root2, signed by the old and the new root key.
    f.charter(&[
        "root",
        "rotate",
        "--from",
        "root.json",
        "--out",
        "2.root.json",
        "--root-key",
        "root2.key.pub",
        "--key",
        "root.key",
        "--key",
        "root2.key",
    ])
    .ok();
    // v3: signed only by the new key root3: refused (old root2 did not sign).
    f.charter(&[
        "root",
        "rotate",
        "--from",
        "2.root.json",
        "--out",
        "3.root.json",
        "--root-key",
        "root3.key.pub",
        "--key",
        "root3.key",
    ])
    .ok();
    let j = f
        .charter(&[
            "root",
            "verify",
            "--trusted",
            "root.json",
            "2.root.json",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        (j["version"].as_u64(), j["rotations"].as_u64()),
        (Some(2), Some(1))
    );
    f.charter(&[
        "root",
        "verify",
        "--trusted",
        "root.json",
        "2.root.json",
        "3.root.json",
    ])
    .fails_with("3.root.json is not verified: threshold not met for role `root`: 0 valid");
    // root2 adds its signature: the chain now verifies.
    f.charter(&["root", "sign", "--key", "root2.key", "3.root.json"])
        .ok();
    let j = f
        .charter(&[
            "root",
            "verify",
            "--trusted",
            "root.json",
            "2.root.json",
            "3.root.json",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(j["version"], 3);
    // Skipping version 2 is refused, even when the old root key signed v3.
    f.charter(&["root", "sign", "--key", "root.key", "3.root.json"])
        .ok();
    f.charter(&["root", "verify", "--trusted", "root.json", "3.root.json"])
        .fails_with("root version 3 cannot follow trusted version 1");
    // The release keys carried over unchanged.
    assert_eq!(j["roles"]["release"]["threshold"], 2);
}

#[test]
fn expired_root_refused() {
    let f = Fixture::new();
    f.charter(&[
        "root",
        "init",
        "--out",
        "old.json",
        "--root-key",
        "root.key.pub",
        "--release-key",
        "rel1.key.pub",
        "--channel-key",
        "chan.key.pub",
        "--license-key",
        "lic.key.pub",
        "--expires",
        "2020-01-01T00:00:00Z",
        "--key",
        "root.key",
    ])
    .ok();
    f.charter(&["root", "verify", "old.json"])
        .fails_with("trust root version 1 expired at 2020-01-01T00:00:00Z");
}

#[test]
fn manifest_is_not_a_root() {
    let f = Fixture::new();
    f.tree("t");
    let m = f.release("t", "1.0.0", "out");
    let m = m.to_str().unwrap();
    let before = snapshot(f.path());
    f.charter(&["root", "sign", "--key", "root.key", m])
        .fails_with(
            "is not a root (payloadType `application/vnd.charter.manifest+json; version=1`)",
        );
    f.charter(&["root", "verify", m])
        .fails_with("wrong payload type");
    assert_eq!(before, snapshot(f.path()));
}
