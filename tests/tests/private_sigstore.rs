//! The private Sigstore deployment of `charter_tests::sigstore` makes
//! bundles that the real verifier accepts, in both formats, and each
//! piece of evidence in them is load-bearing.
#![allow(clippy::unwrap_used)]

use charter_keys::sigstore::{self, Identity, Policy, Subject};
use charter_tests::sigstore::TestSigstore;

const WF: &str = "https://github.com/acme/panel/.github/workflows/release.yml@refs/tags/v1.2.0";
const GH: &str = "https://token.actions.githubusercontent.com";

fn policy(identity: Identity, issuer: &str) -> Policy {
    Policy::Keyless {
        identity,
        issuer: issuer.into(),
    }
}

#[test]
fn private_deployment_bundles_verify_in_both_formats() {
    let sg = TestSigstore::new();
    let root = sigstore::trusted_root(sg.trusted_root().as_bytes()).unwrap();
    let artifact = b"release manifest bytes".to_vec();
    let signed = sg.sign(&artifact, WF, GH);
    let who = policy(
        Identity::regex(r"https://github\.com/acme/panel/.*").unwrap(),
        GH,
    );
    for b in [&signed.bundle, &signed.legacy] {
        let v = sigstore::verify(b.as_bytes(), Subject::Bytes(&artifact), &who, &root).unwrap();
        assert_eq!(v.identity(), Some(WF));
        assert_eq!(v.issuer(), Some(GH));
        assert!(v.integrated_time().is_some());
        assert!(
            sigstore::verify(b.as_bytes(), Subject::Bytes(b"other bytes"), &who, &root).is_err()
        );
        assert!(
            sigstore::verify(
                b.as_bytes(),
                Subject::Bytes(&artifact),
                &policy(Identity::Exact(WF.into()), "https://accounts.google.com"),
                &root
            )
            .is_err()
        );
        // The public-good root does not know this deployment.
        let production =
            sigstore::trusted_root(sigstore::PRODUCTION_TRUSTED_ROOT.as_bytes()).unwrap();
        assert!(
            sigstore::verify(b.as_bytes(), Subject::Bytes(&artifact), &who, &production).is_err()
        );
    }
    // Another deployment's root refuses it.
    let other = sigstore::trusted_root(TestSigstore::new().trusted_root().as_bytes()).unwrap();
    assert!(
        sigstore::verify(
            signed.bundle.as_bytes(),
            Subject::Bytes(&artifact),
            &who,
            &other
        )
        .is_err()
    );

    // Each of the deployment's keys is load-bearing: swap in another
    // deployment's CT log, Rekor key or CA and the bundle fails.
    let mine: serde_json::Value = serde_json::from_str(&sg.trusted_root()).unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(&TestSigstore::new().trusted_root()).unwrap();
    for part in ["ctlogs", "tlogs", "certificateAuthorities"] {
        let mut mixed = mine.clone();
        mixed[part] = theirs[part].clone();
        let root = sigstore::trusted_root(mixed.to_string().as_bytes()).unwrap();
        let err = sigstore::verify(
            signed.bundle.as_bytes(),
            Subject::Bytes(&artifact),
            &who,
            &root,
        )
        .unwrap_err();
        eprintln!("{part} swapped: {err}");
    }
}

#[test]
fn managed_key_bundles_verify_in_both_formats() {
    let sg = TestSigstore::new();
    let root = sigstore::trusted_root(sg.trusted_root().as_bytes()).unwrap();
    let (key, pem) = TestSigstore::managed_key();
    let (_, other_pem) = TestSigstore::managed_key();
    let artifact = b"a release manifest".to_vec();
    let signed = sg.sign_with_key(&artifact, &key);
    for b in [&signed.bundle, &signed.legacy] {
        let v = sigstore::verify(
            b.as_bytes(),
            Subject::Bytes(&artifact),
            &Policy::Key(pem.clone().into_bytes()),
            &root,
        )
        .unwrap();
        assert!(v.identity().is_none() && v.integrated_time().is_some());
        assert!(
            sigstore::verify(
                b.as_bytes(),
                Subject::Bytes(&artifact),
                &Policy::Key(other_pem.clone().into_bytes()),
                &root
            )
            .is_err()
        );
        assert!(
            sigstore::verify(
                b.as_bytes(),
                Subject::Bytes(b"other"),
                &Policy::Key(pem.clone().into_bytes()),
                &root
            )
            .is_err()
        );
        // A keyless policy refuses a key-signed bundle.
        assert!(
            sigstore::verify(
                b.as_bytes(),
                Subject::Bytes(&artifact),
                &policy(Identity::regex(".*").unwrap(), GH),
                &root
            )
            .is_err()
        );
    }
}
