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

/// Generates `n` unencrypted keys `{prefix}{i}.key` (with `.pub`) and
/// returns their names.
fn keys(f: &Fixture, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}.key");
            f.charter(&["key", "generate", "--unencrypted", "--out", &name])
                .ok();
            name
        })
        .collect()
}

/// `--{flag} {file}` for each file.
fn repeat<'a>(flag: &'a str, files: &'a [String], suffix: &'a str) -> Vec<String> {
    files
        .iter()
        .flat_map(|k| [flag.to_owned(), format!("{k}{suffix}")])
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// §12.5 Q4: an envelope carries at most 32 signatures, so a role threshold
/// of 33 can never be met. `root init` and `root rotate` refuse it, writing
/// nothing.
#[test]
fn threshold_above_signature_limit_refused() {
    let f = Fixture::new();
    let many = keys(&f, "r", 33);
    let before = snapshot(f.path());
    let mut args: Vec<String> = ["root", "init", "--out", "big.json"]
        .map(String::from)
        .to_vec();
    args.extend(repeat("--root-key", &many, ".pub"));
    args.extend(
        [
            "--root-threshold",
            "33",
            "--release-key",
            "rel1.key.pub",
            "--channel-key",
            "chan.key.pub",
            "--license-key",
            "lic.key.pub",
            "--key",
            "root.key",
        ]
        .map(String::from),
    );
    let out = f.charter(&strs(&args)).fails_with(
        "role `root` has threshold 33, but an envelope carries at most 32 signatures, so it could never be met",
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    let mut rotate: Vec<String> = [
        "root",
        "rotate",
        "--from",
        "root.json",
        "--out",
        "2.root.json",
    ]
    .map(String::from)
    .to_vec();
    rotate.extend(repeat("--release-key", &many, ".pub"));
    rotate.extend(["--release-threshold", "33", "--key", "root.key"].map(String::from));
    f.charter(&strs(&rotate))
        .fails_with("role `release` has threshold 33, but an envelope carries at most 32");
    assert_eq!(before, snapshot(f.path()));
}

/// §12.5 Q4: a rotation envelope must carry a threshold of the old root
/// keys and a threshold of the new ones. From 17 root keys (threshold 17)
/// to 16 others (threshold 16) needs 33 signatures, more than an envelope
/// carries: refused, nothing written. Keeping one old key in the new set
/// brings it to 32, which fits, and the rotation verifies.
#[test]
fn rotation_thresholds_that_cannot_fit_refused() {
    let f = Fixture::new();
    let old = keys(&f, "old", 17);
    let new = keys(&f, "new", 16);
    let mut init: Vec<String> = ["root", "init", "--out", "wide.json"]
        .map(String::from)
        .to_vec();
    init.extend(repeat("--root-key", &old, ".pub"));
    init.extend(
        [
            "--root-threshold",
            "17",
            "--release-key",
            "rel1.key.pub",
            "--channel-key",
            "chan.key.pub",
            "--license-key",
            "lic.key.pub",
        ]
        .map(String::from),
    );
    init.extend(repeat("--key", &old, ""));
    f.charter(&strs(&init)).ok();
    f.charter(&["root", "verify", "wide.json"]).ok();

    let before = snapshot(f.path());
    let rotate = |new_set: &[String], signers: &[String]| {
        let mut args: Vec<String> = [
            "root",
            "rotate",
            "--from",
            "wide.json",
            "--out",
            "2.wide.json",
        ]
        .map(String::from)
        .to_vec();
        args.extend(repeat("--root-key", new_set, ".pub"));
        args.extend(["--root-threshold", "16"].map(String::from));
        args.extend(repeat("--key", signers, ""));
        f.charter(&strs(&args))
    };
    let all: Vec<String> = old.iter().chain(&new).cloned().collect();
    let out = rotate(&new, &all).fails_with(
        "rotation from root version 1 to 2 needs at least 33 signatures in one envelope (old root threshold 17 plus new root threshold 16, 0 key(s) in both), more than the 32 an envelope carries",
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    assert_eq!(before, snapshot(f.path()));

    // One old key kept: 17 + 16 - 1 = 32 signatures, which fit.
    let mut kept = new.clone();
    kept[0] = old[0].clone();
    let signers: Vec<String> = old.iter().chain(&kept[1..]).cloned().collect();
    rotate(&kept, &signers).ok();
    let j = f
        .charter(&[
            "root",
            "verify",
            "--trusted",
            "wide.json",
            "2.wide.json",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(j["version"], 2);
}
