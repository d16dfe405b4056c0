//! The host's signature policy (`[signatures]`): release keys, a cosign
//! bundle over the signed manifest file, both, or either. Bundles come
//! from a private Sigstore deployment (`charter_tests::sigstore`) whose
//! trusted root the host config names; the updater checks them with the
//! same code that checks public-good bundles.

use charter_tests::host::Host;
use charter_tests::sigstore::TestSigstore;

const GH: &str = "https://token.actions.githubusercontent.com";
const RELEASE_WF: &str =
    "https://github.com/acme/panel/.github/workflows/release.yml@refs/tags/v1.0.0";

/// A host whose config requires `require`, with a cosign requirement of
/// the acme/panel release workflow (anchored regexp) from GitHub Actions.
fn host(require: &str) -> (Host, TestSigstore) {
    let h = Host::new();
    let sg = TestSigstore::new();
    let tr = h.root.join("etc/trusted_root.json");
    std::fs::write(&tr, sg.trusted_root()).unwrap();
    h.write_config(
        &h.server.url(),
        &format!(
            r#"
[signatures]
require = "{require}"
[signatures.cosign]
certificate_identity_regexp = 'https://github\.com/acme/panel/\.github/workflows/release\.yml@refs/tags/v.*'
certificate_oidc_issuer = "{GH}"
trusted_root = "{}"
"#,
            tr.display()
        ),
    );
    (h, sg)
}

fn manifest_path(h: &Host, version: &str) -> std::path::PathBuf {
    h.repo
        .join(format!("releases/panel/{version}/manifest.json"))
}

/// Writes the cosign bundle for `version`'s manifest as `identity` signed
/// it (over `bytes`, by default the manifest file itself).
fn cosign(h: &Host, sg: &TestSigstore, version: &str, identity: &str, legacy: bool) {
    let m = manifest_path(h, version);
    let bytes = std::fs::read(&m).unwrap();
    let s = sg.sign(&bytes, identity, GH);
    let b = if legacy { s.legacy } else { s.bundle };
    std::fs::write(
        m.with_file_name("manifest.json.sigstore.json"),
        b.as_bytes(),
    )
    .unwrap();
}

/// Drops the release-key signatures from `version`'s manifest (a vendor
/// that signs with cosign only) and repoints the channel at the new bytes.
fn strip_release_signatures(h: &Host, version: &str) {
    let m = manifest_path(h, version);
    let mut env: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    env["signatures"] = serde_json::json!([]);
    let bytes = serde_json::to_vec(&env).unwrap();
    std::fs::write(&m, &bytes).unwrap();
    h.point_raw(
        version,
        &bytes,
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
        false,
    );
}

#[track_caller]
fn refused(h: &Host, needle: &str, current: Option<&str>) {
    let before = h.snapshot();
    h.update(&["apply"]).fails_with(needle);
    let after = h.snapshot();
    assert_eq!(
        before.0, after.0,
        "refused apply changed the installed tree"
    );
    if !before.1.is_null() {
        // (A fresh host's first run writes its empty state file.)
        assert_eq!(before.1, after.1, "refused apply changed the host state");
    }
    assert_eq!(h.current().as_deref(), current);
}

#[test]
fn both_required_bundle_missing_wrong_or_for_other_bytes_is_refused() {
    let (h, sg) = host("all");
    h.publish("1.0.0", true, "a = 1\n", &[]);
    // Release keys alone: the cosign half is missing.
    refused(&h, "signature policy not met", None);
    refused(&h, "the release has none", None);
    // Signed by another repository's workflow.
    cosign(
        &h,
        &sg,
        "1.0.0",
        "https://github.com/evil/panel/.github/workflows/release.yml@refs/tags/v1.0.0",
        false,
    );
    refused(&h, "does not match", None);
    // An identity that only contains a match is not enough (the regexp is
    // anchored; cosign's own match is not), nor a branch instead of a tag.
    cosign(
        &h,
        &sg,
        "1.0.0",
        "https://evil.example/?https://github.com/acme/panel/.github/workflows/release.yml@refs/tags/v1.0.0",
        false,
    );
    refused(&h, "does not match", None);
    cosign(
        &h,
        &sg,
        "1.0.0",
        "https://github.com/acme/panel/.github/workflows/release.yml@refs/heads/main",
        false,
    );
    refused(&h, "does not match", None);
    // Another deployment's bundle (a root the host does not trust).
    let other = TestSigstore::new();
    cosign(&h, &other, "1.0.0", RELEASE_WF, false);
    refused(&h, "cosign bundle", None);
    // The right signer, over other bytes (a bundle moved from another
    // release).
    let m = manifest_path(&h, "1.0.0");
    let s = sg.sign(b"some other manifest", RELEASE_WF, GH);
    std::fs::write(m.with_file_name("manifest.json.sigstore.json"), s.bundle).unwrap();
    refused(&h, "cosign bundle", None);
    // Both present: installed, and `check` says who signed.
    cosign(&h, &sg, "1.0.0", RELEASE_WF, false);
    let check = h.update(&["check", "--json"]).ok().json();
    assert_eq!(check["cosign"]["identity"], RELEASE_WF, "{check}");
    assert_eq!(check["cosign"]["issuer"], GH);
    assert_eq!(
        check["release_keys"].as_array().unwrap().len(),
        2,
        "{check}"
    );
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let st = h.status();
    assert!(
        st["signature_policy"]
            .as_str()
            .unwrap()
            .contains(" AND a cosign bundle"),
        "{st}"
    );
    // A bundle but no release signatures: still refused under "all".
    h.publish("1.1.0", true, "a = 2\n", &[]);
    strip_release_signatures(&h, "1.1.0");
    cosign(&h, &sg, "1.1.0", RELEASE_WF, false);
    refused(&h, "threshold", Some("1.0.0"));
}

#[test]
fn cosign_only_installs_unsigned_manifests_with_a_bundle_in_either_format() {
    let (h, sg) = host("cosign");
    h.publish("1.0.0", true, "a = 1\n", &[]);
    strip_release_signatures(&h, "1.0.0");
    refused(&h, "the release has none", None);
    // cosign 2.x's own --bundle format.
    cosign(&h, &sg, "1.0.0", RELEASE_WF, true);
    let check = h.update(&["check", "--json"]).ok().json();
    assert_eq!(check["release_keys"].as_array().unwrap().len(), 0);
    assert_eq!(check["cosign"]["identity"], RELEASE_WF);
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    // A release signed by the release keys only is not enough here.
    h.publish("1.1.0", true, "a = 2\n", &[]);
    refused(&h, "the release has none", Some("1.0.0"));
    // Sigstore bundle v0.3.
    cosign(&h, &sg, "1.1.0", RELEASE_WF, false);
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    h.update(&["verify"]).ok();
}

#[test]
fn either_policy_takes_one_of_the_two_and_default_ignores_bundles() {
    let (h, sg) = host("any");
    // Release keys alone.
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    // Cosign alone.
    h.publish("1.1.0", true, "a = 2\n", &[]);
    strip_release_signatures(&h, "1.1.0");
    cosign(&h, &sg, "1.1.0", RELEASE_WF, false);
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    // Neither.
    h.publish("1.2.0", true, "a = 3\n", &[]);
    strip_release_signatures(&h, "1.2.0");
    refused(&h, "neither signature holds", Some("1.1.0"));
    // The default policy (release keys only) ignores a bundle: an
    // unsigned manifest with a valid bundle is refused.
    cosign(&h, &sg, "1.2.0", RELEASE_WF, false);
    h.write_config(&h.server.url(), "");
    refused(&h, "threshold", Some("1.1.0"));
}

#[test]
fn signature_policy_config_errors_name_the_field() {
    let h = Host::new();
    for (extra, needle) in [
        (
            "[signatures]\nrequire = \"cosign\"\n",
            "needs a [signatures.cosign] table",
        ),
        (
            "[signatures]\nrequire = \"both\"\n",
            "unknown variant `both`",
        ),
        (
            "[signatures]\nrequire = \"all\"\n[signatures.cosign]\ncertificate_identity = \"x\"\n",
            "certificate_oidc_issuer is required",
        ),
        (
            "[signatures]\nrequire = \"all\"\n[signatures.cosign]\ncertificate_identity = \"x\"\ncertificate_identity_regexp = \"y\"\ncertificate_oidc_issuer = \"z\"\n",
            "exactly one of",
        ),
        (
            "[signatures]\n[signatures.cosign]\ncertificate_identity = \"x\"\ncertificate_oidc_issuer = \"z\"\n",
            "ignores it",
        ),
        (
            "[signatures]\nrequire = \"all\"\n[signatures.cosign]\ncertificate_identity_regexp = \"(\"\ncertificate_oidc_issuer = \"z\"\n",
            "certificate_identity_regexp",
        ),
        (
            "[signatures]\nrequire = \"all\"\n[signatures.cosign]\ncertificate_identity = \"x\"\ncertificate_oidc_issuer = \"z\"\ntrusted_root = \"/nonexistent/trusted_root.json\"\n",
            "/nonexistent/trusted_root.json",
        ),
    ] {
        h.write_config(&h.server.url(), extra);
        h.update(&["status"]).fails_with(needle);
    }
}

/// A managed cosign key (`cosign sign-blob --key`) instead of a keyless
/// identity: `public_key` in the config.
#[test]
fn managed_key_policy() {
    let h = Host::new();
    let sg = TestSigstore::new();
    let tr = h.root.join("etc/trusted_root.json");
    std::fs::write(&tr, sg.trusted_root()).unwrap();
    let (key, pem) = TestSigstore::managed_key();
    let pubkey = h.root.join("etc/cosign.pub");
    std::fs::write(&pubkey, &pem).unwrap();
    h.write_config(
        &h.server.url(),
        &format!(
            "[signatures]\nrequire = \"all\"\n[signatures.cosign]\npublic_key = \"{}\"\ntrusted_root = \"{}\"\n",
            pubkey.display(),
            tr.display()
        ),
    );
    h.publish("1.0.0", true, "a = 1\n", &[]);
    let m = manifest_path(&h, "1.0.0");
    let bundle = m.with_file_name("manifest.json.sigstore.json");
    // Signed by another key: refused.
    let (other, _) = TestSigstore::managed_key();
    let bytes = std::fs::read(&m).unwrap();
    std::fs::write(&bundle, sg.sign_with_key(&bytes, &other).bundle).unwrap();
    refused(&h, "cosign bundle", None);
    // A keyless bundle, however valid, is not the managed key.
    std::fs::write(&bundle, sg.sign(&bytes, RELEASE_WF, GH).bundle).unwrap();
    refused(&h, "cosign bundle", None);
    // The managed key, in cosign 2.x's format.
    std::fs::write(&bundle, sg.sign_with_key(&bytes, &key).legacy).unwrap();
    let check = h.update(&["check", "--json"]).ok().json();
    assert!(check["cosign"]["identity"].is_null(), "{check}");
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let st = h.status();
    assert!(
        st["signature_policy"]
            .as_str()
            .unwrap()
            .contains("managed key"),
        "{st}"
    );
}
