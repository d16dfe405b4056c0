//! The license agent's library with an injected clock, no sleeping: every
//! state and transition, and every kind of tampering.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use charter_agent::config::Config;
use charter_agent::daemon::Agent;
use charter_agent::eval::{State, entitled};
use charter_agent::fingerprint::{DmiRead, HostIds};
use charter_agent::license::{License, LicenseStatus, StatusState};
use charter_keys::dsse::{Envelope, PAYLOAD_LICENSE, PAYLOAD_LICENSE_STATUS, PAYLOAD_ROOT};
use charter_keys::root::RootDocument;
use charter_keys::secret::{SecretKey, Signer};
use charter_keys::{Clock, Limits, Role};
use jiff::{SignedDuration, Timestamp};

#[derive(Clone)]
struct TestClock(Arc<Mutex<Timestamp>>);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

impl TestClock {
    fn advance(&self, secs: i64) {
        let mut t = self.0.lock().unwrap();
        *t += SignedDuration::from_secs(secs);
    }
    fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap() = t;
    }
}

const DAY: i64 = 86_400;

struct Env {
    dir: tempfile::TempDir,
    lic_key: SecretKey,
    rel_key: SecretKey,
    clock: TestClock,
    t0: Timestamp,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root_key = SecretKey::generate().unwrap();
        let lic_key = SecretKey::generate().unwrap();
        let rel_key = SecretKey::generate().unwrap();
        let doc = RootDocument::build(
            1,
            "2100-01-01T00:00:00Z".parse().unwrap(),
            &[
                (Role::Root, &[root_key.public().clone()], 1),
                (Role::Release, &[rel_key.public().clone()], 1),
                (Role::Channel, &[rel_key.public().clone()], 1),
                (Role::License, &[lic_key.public().clone()], 1),
            ],
            &Limits::default(),
        )
        .unwrap();
        let mut env = Envelope::new_unsigned(PAYLOAD_ROOT, doc.to_payload());
        env.sign(&root_key as &dyn Signer).unwrap();
        std::fs::write(dir.path().join("root.json"), env.to_json()).unwrap();
        std::fs::write(
            dir.path().join("machine-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("agent.toml"),
            format!(
                "product = \"panel\"\n[paths]\nlicense = \"{d}/license\"\nstate_dir = \"{d}/state\"\ntrust_root = \"{d}/root.json\"\nsocket = \"{d}/agent.sock\"\nfeatures_file = \"{d}/features.json\"\n[fingerprint]\nmachine_id = \"{d}/machine-id\"\ndmi_product_uuid = \"{d}/product_uuid\"\nhost_ids = \"{d}/host-ids\"\n"
            ),
        )
        .unwrap();
        let t0: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        Env {
            dir,
            lic_key,
            rel_key,
            clock: TestClock(Arc::new(Mutex::new(t0))),
            t0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> Config {
        Config::load(&self.path("agent.toml")).unwrap()
    }

    fn fingerprint(&self) -> String {
        charter_agent::fingerprint::fingerprint("panel", &self.config().fingerprint).unwrap()
    }

    /// Gives this host a DMI product UUID (root-only, 0400) and runs the
    /// root step that copies its digest for the agent; returns the v2
    /// fingerprint.
    fn set_dmi(&self, uuid: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path("product_uuid");
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, uuid).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        let src = &self.config().fingerprint;
        charter_agent::fingerprint::write_host_ids("panel", src).unwrap();
        let ids = HostIds::read("panel", src, DmiRead::Copy).unwrap();
        ids.v2().unwrap().to_owned()
    }

    fn license(&self, serial: u64) -> License {
        License {
            license_id: "lic-1".into(),
            serial,
            customer: "Acme Hosting".into(),
            product: "panel".into(),
            issued_at: self.t0,
            not_before: self.t0,
            expires_at: self.t0 + SignedDuration::from_secs(30 * DAY),
            grace_period_secs: 7 * DAY as u64,
            updates_until: self.t0 + SignedDuration::from_secs(20 * DAY),
            security_updates_after: true,
            features: vec!["backups".into(), "sso".into()],
            limits: [("max_nodes".to_string(), 10)].into_iter().collect(),
            machines: vec![self.fingerprint()],
            max_offline_secs: None,
            status_url: None,
        }
    }

    fn write_license(&self, l: &License, signer: &SecretKey) {
        let mut env = Envelope::new_unsigned(PAYLOAD_LICENSE, l.to_payload());
        env.sign(signer as &dyn Signer).unwrap();
        std::fs::write(self.path("license"), env.to_json()).unwrap();
    }

    fn status(&self, id: &str, state: StatusState, issued_at: Timestamp) -> Vec<u8> {
        let s = LicenseStatus {
            license_id: id.into(),
            state,
            reason: Some("billing".into()),
            issued_at,
            valid_until: issued_at + SignedDuration::from_secs(7 * DAY),
            current_serial: None,
        };
        let mut env = Envelope::new_unsigned(PAYLOAD_LICENSE_STATUS, s.to_payload());
        env.sign(&self.lic_key as &dyn Signer).unwrap();
        env.to_json()
    }

    /// What the daemon does at start: load, then evaluate and record.
    fn agent(&self) -> Agent {
        let mut a = Agent::load(self.config(), Box::new(self.clock.clone())).unwrap();
        a.evaluate_and_record("start").unwrap();
        a
    }
}

fn state(a: &Agent) -> State {
    a.evaluation().state
}

fn has_reason(a: &Agent, needle: &str) -> bool {
    a.evaluation().reasons.iter().any(|r| r.contains(needle))
}

#[test]
fn active_then_grace_then_expired_then_renewed() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let mut a = e.agent();
    assert_eq!(state(&a), State::Active, "{:?}", a.evaluation());
    assert!(a.evaluation().feature("sso"));
    assert!(a.evaluation().within_limit("max_nodes", 10).is_ok());
    assert!(a.evaluation().within_limit("max_nodes", 11).is_err());
    assert!(a.evaluation().within_limit("max_users", 1).is_err());

    e.clock.advance(30 * DAY);
    a.evaluate_and_record("tick").unwrap();
    assert_eq!(state(&a), State::Grace);
    assert!(a.evaluation().feature("sso"), "features stay on in grace");
    assert!(!a.evaluation().warnings.is_empty());

    e.clock.advance(7 * DAY);
    a.evaluate_and_record("tick").unwrap();
    assert_eq!(state(&a), State::Expired);
    assert!(!a.evaluation().feature("sso"), "features off once expired");
    assert!(a.evaluation().within_limit("max_nodes", 1).is_err());
    let features: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.path("features.json")).unwrap()).unwrap();
    assert_eq!(features["features"], serde_json::json!([]));

    // Renewal: a reissued license with a higher serial, picked up without
    // a restart.
    let mut l = e.license(2);
    l.expires_at = e.clock.now() + SignedDuration::from_secs(365 * DAY);
    std::thread::sleep(std::time::Duration::from_millis(10)); // distinct mtime
    e.write_license(&l, &e.lic_key);
    assert!(a.reload_license_if_changed().unwrap());
    assert_eq!(state(&a), State::Active);
    assert!(a.evaluation().feature("backups"));
}

#[test]
fn not_yet_valid() {
    let e = Env::new();
    let mut l = e.license(1);
    l.not_before = e.t0 + SignedDuration::from_secs(DAY);
    e.write_license(&l, &e.lic_key);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "not valid before"));
}

#[test]
fn suspension_and_reinstatement() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let mut a = e.agent();
    a.accept_status(&e.status("lic-1", StatusState::Suspended, e.t0))
        .unwrap();
    assert_eq!(state(&a), State::Suspended);
    assert!(has_reason(&a, "suspended: billing"));
    assert!(!a.evaluation().feature("sso"));
    assert!(a.door("apply").is_err(), "no updates while suspended");
    assert!(a.door("status").is_ok());
    e.clock.advance(3600);
    a.accept_status(&e.status("lic-1", StatusState::Active, e.clock.now()))
        .unwrap();
    assert_eq!(state(&a), State::Active);
    assert!(a.evaluation().feature("sso"));
    // An older status cannot undo a newer one.
    assert!(
        a.accept_status(&e.status("lic-1", StatusState::Suspended, e.t0))
            .is_err()
    );
    assert_eq!(state(&a), State::Active);
}

#[test]
fn revoked_is_invalid() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let mut a = e.agent();
    a.accept_status(&e.status("lic-1", StatusState::Revoked, e.t0))
        .unwrap();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "revoked"));
}

#[test]
fn offline_too_long_then_back_online() {
    let e = Env::new();
    let mut l = e.license(1);
    l.max_offline_secs = Some(2 * DAY as u64);
    l.status_url = Some("https://licenses.example/lic-1.json".into());
    e.write_license(&l, &e.lic_key);
    let mut a = e.agent();
    a.accept_status(&e.status("lic-1", StatusState::Active, e.t0))
        .unwrap();
    assert_eq!(state(&a), State::Active);
    e.clock.advance(2 * DAY + 1);
    a.evaluate_and_record("tick").unwrap();
    assert_eq!(state(&a), State::Grace);
    assert!(has_reason(&a, "no fresh license status"));
    e.clock.advance(7 * DAY);
    a.evaluate_and_record("tick").unwrap();
    assert_eq!(state(&a), State::Expired);
    assert!(has_reason(&a, "offline too long"));
    a.accept_status(&e.status("lic-1", StatusState::Active, e.clock.now()))
        .unwrap();
    assert_eq!(state(&a), State::Active);
}

#[test]
fn updates_until_gates_releases() {
    let e = Env::new();
    let mut l = e.license(1);
    l.security_updates_after = false;
    e.write_license(&l, &e.lic_key);
    let mut a = e.agent();
    let before = e.t0 + SignedDuration::from_secs(10 * DAY);
    let after = e.t0 + SignedDuration::from_secs(25 * DAY);
    assert!(entitled(a.evaluation(), &l, before, false).is_ok());
    let err = entitled(a.evaluation(), &l, after, false).unwrap_err();
    assert!(err.contains("after the license's updates-until"), "{err}");
    assert!(
        entitled(a.evaluation(), &l, after, true).is_err(),
        "no security updates in this license"
    );
    let mut with_sec = l.clone();
    with_sec.security_updates_after = true;
    assert!(entitled(a.evaluation(), &with_sec, after, true).is_ok());
    // Expired: only security fixes (when allowed).
    e.clock.advance(40 * DAY);
    a.evaluate_and_record("tick").unwrap();
    assert_eq!(state(&a), State::Expired);
    assert!(entitled(a.evaluation(), &with_sec, before, false).is_err());
    assert!(entitled(a.evaluation(), &with_sec, after, true).is_ok());
    // Suspended: nothing.
    let mut a2 = e.agent();
    a2.accept_status(&e.status("lic-1", StatusState::Suspended, e.clock.now()))
        .unwrap();
    assert!(entitled(a2.evaluation(), &with_sec, after, true).is_err());
}

#[test]
fn forged_signature() {
    let e = Env::new();
    let stranger = SecretKey::generate().unwrap();
    e.write_license(&e.license(1), &stranger);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "threshold not met for role `license`"));
}

#[test]
fn license_signed_by_a_release_key() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.rel_key);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "threshold not met for role `license`"));
}

#[test]
fn license_for_another_machine() {
    let e = Env::new();
    // Bound to this machine: active.
    e.write_license(&e.license(1), &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
    // The same license file copied to another machine.
    std::fs::write(e.path("machine-id"), "fedcba9876543210fedcba9876543210\n").unwrap();
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "bound to other machines"));
}

const UUID_A: &str = "8f6b6a2e-3c1d-4e57-9a0b-1c2d3e4f5a6b\n";
const UUID_B: &str = "0d3c2b1a-9e8f-4a7b-8c6d-5e4f3a2b1c0d\n";
const CLONE_REASON: &str = "DMI product UUID is not the one its license state was recorded on";

#[test]
fn v1_license_with_state_copied_to_a_vm_clone_is_invalid() {
    let e = Env::new();
    e.set_dmi(UUID_A);
    // A license issued for today's (v1) fingerprint keeps working.
    e.write_license(&e.license(1), &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
    // A Proxmox clone: the disk (machine id, license, agent state) copied,
    // a new SMBIOS UUID. The v1 fingerprint is the same.
    let v1 = e.fingerprint();
    e.set_dmi(UUID_B);
    assert_eq!(e.fingerprint(), v1);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid, "{:?}", a.evaluation());
    assert!(has_reason(&a, CLONE_REASON));
    // The root updater (reading the DMI file itself) agrees.
    let u = Agent::load_readonly(e.config(), Box::new(e.clock.clone())).unwrap();
    assert_eq!(state(&u), State::Invalid);
    assert!(has_reason(&u, CLONE_REASON));
    // The refusal is in the audit log, and the state still verifies.
    let log = std::fs::read_to_string(e.path("state/audit.jsonl")).unwrap();
    assert!(log.contains(CLONE_REASON), "{log}");
    assert!(a.verify_audit().unwrap().problem.is_none());
}

#[test]
fn removing_the_license_does_not_launder_a_clones_ids() {
    let e = Env::new();
    e.set_dmi(UUID_A);
    e.write_license(&e.license(1), &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
    e.set_dmi(UUID_B);
    std::fs::remove_file(e.path("license")).unwrap();
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    drop(a);
    e.write_license(&e.license(1), &e.lic_key);
    let a = e.agent();
    assert!(has_reason(&a, CLONE_REASON), "{:?}", a.evaluation());
}

#[test]
fn new_motherboard_then_a_v2_license_for_it_is_active() {
    let e = Env::new();
    e.set_dmi(UUID_A);
    e.write_license(&e.license(1), &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
    // A new motherboard looks like a clone to a v1-bound license.
    let v2 = e.set_dmi(UUID_B);
    assert!(has_reason(&e.agent(), CLONE_REASON));
    // The vendor reissues for the v2 fingerprint: active, and the new ids
    // are recorded (and audited).
    let mut l = e.license(2);
    l.machines = vec![v2];
    e.write_license(&l, &e.lic_key);
    let a = e.agent();
    assert_eq!(state(&a), State::Active, "{:?}", a.evaluation());
    let log = std::fs::read_to_string(e.path("state/audit.jsonl")).unwrap();
    assert!(
        log.contains(r#""action":"changed","changed":["dmi"],"kind":"host""#),
        "{log}"
    );
    // Back to the old board: the v2 license is bound to another machine.
    e.set_dmi(UUID_A);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "bound to other machines"));
}

#[test]
fn v2_license_refused_on_a_vm_clone_even_without_the_state() {
    let e = Env::new();
    let v2 = e.set_dmi(UUID_A);
    let mut l = e.license(1);
    l.machines = vec![v2];
    e.write_license(&l, &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
    // The clone also resets the agent's state: a first run, still refused.
    e.set_dmi(UUID_B);
    std::fs::remove_dir_all(e.path("state")).unwrap();
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "bound to other machines"));
}

#[test]
fn v2_license_without_the_root_copy_says_why() {
    let e = Env::new();
    let v2 = e.set_dmi(UUID_A);
    let mut l = e.license(1);
    l.machines = vec![v2];
    e.write_license(&l, &e.lic_key);
    std::fs::remove_file(e.path("host-ids")).unwrap();
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(
        has_reason(&a, "bound to v2 fingerprints and this host's is unknown")
            && has_reason(&a, "host-ids is missing"),
        "{:?}",
        a.evaluation()
    );
    // A v1 license works without it, with a warning.
    e.write_license(&e.license(2), &e.lic_key);
    let a = e.agent();
    assert_eq!(state(&a), State::Active);
    assert!(
        a.evaluation()
            .warnings
            .iter()
            .any(|w| w.contains("v2 fingerprint is unknown"))
    );
}

#[test]
fn floating_license_runs_on_a_clone() {
    let e = Env::new();
    e.set_dmi(UUID_A);
    let mut l = e.license(1);
    l.machines = vec![];
    e.write_license(&l, &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
    e.set_dmi(UUID_B);
    assert_eq!(state(&e.agent()), State::Active);
}

#[test]
fn license_for_another_product() {
    let e = Env::new();
    let mut l = e.license(1);
    l.product = "other".into();
    e.write_license(&l, &e.lic_key);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "license is for product `other`"));
}

#[test]
fn older_serial_replayed() {
    let e = Env::new();
    e.write_license(&e.license(5), &e.lic_key);
    drop(e.agent());
    e.write_license(&e.license(4), &e.lic_key);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "serial 4 is older than serial 5"));
}

#[test]
fn state_file_edited_by_one_byte() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    drop(e.agent());
    let p = e.path("state/license-state.json");
    let mut bytes = std::fs::read(&p).unwrap();
    let i = bytes.iter().position(|b| *b == b'1').unwrap();
    bytes[i] = b'9';
    std::fs::write(&p, bytes).unwrap();
    let mut a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "tampered"));
    // A fresh signed status re-establishes it.
    a.accept_status(&e.status("lic-1", StatusState::Active, e.clock.now()))
        .unwrap();
    assert_eq!(state(&a), State::Active);
    assert_eq!(
        state(&e.agent()),
        State::Active,
        "and it stays so after a restart"
    );
}

#[test]
fn state_file_deleted() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    drop(e.agent());
    std::fs::remove_file(e.path("state/license-state.json")).unwrap();
    let mut a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "deleted"));
    assert_eq!(
        state(&e.agent()),
        State::Invalid,
        "a restart does not forget"
    );
    // A stale status is not enough...
    let stale = e.status(
        "lic-1",
        StatusState::Active,
        e.t0 - SignedDuration::from_secs(10 * DAY),
    );
    assert!(a.accept_status(&stale).is_err());
    // ...a fresh one is.
    a.accept_status(&e.status("lic-1", StatusState::Active, e.clock.now()))
        .unwrap();
    assert_eq!(state(&a), State::Active);
}

#[test]
fn clock_moved_back() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    e.clock.advance(5 * DAY);
    drop(e.agent());
    e.clock.set(e.t0 + SignedDuration::from_secs(DAY));
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "clock moved back"));
    // Within the tolerance (5 minutes) is fine.
    e.clock.set(e.t0 + SignedDuration::from_secs(5 * DAY - 60));
    assert_eq!(state(&e.agent()), State::Active);
}

#[test]
fn status_for_another_license_is_refused() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let mut a = e.agent();
    let err = a
        .accept_status(&e.status("lic-2", StatusState::Suspended, e.t0))
        .unwrap_err();
    assert!(
        err.to_string().contains("it is for license `lic-2`"),
        "{err}"
    );
    assert_eq!(state(&a), State::Active);
}

#[test]
fn status_signed_by_a_release_key_is_refused() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let mut a = e.agent();
    let s = LicenseStatus {
        license_id: "lic-1".into(),
        state: StatusState::Revoked,
        reason: None,
        issued_at: e.t0,
        valid_until: e.t0 + SignedDuration::from_secs(DAY),
        current_serial: None,
    };
    let mut env = Envelope::new_unsigned(PAYLOAD_LICENSE_STATUS, s.to_payload());
    env.sign(&e.rel_key as &dyn Signer).unwrap();
    assert!(a.accept_status(&env.to_json()).is_err());
    assert_eq!(state(&a), State::Active);
}

#[test]
fn no_license_is_invalid() {
    let e = Env::new();
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "no license installed"));
}

#[test]
fn host_secret_must_be_private() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    drop(e.agent());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        e.path("state/host.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = Agent::load(e.config(), Box::new(e.clock.clone())).unwrap_err();
    assert!(err.to_string().contains("host.key has mode 0644"), "{err}");
}

#[test]
fn audit_log_chain_detects_edits_and_deletions() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let mut a = e.agent();
    a.accept_status(&e.status("lic-1", StatusState::Suspended, e.t0))
        .unwrap();
    e.clock.advance(60);
    a.accept_status(&e.status("lic-1", StatusState::Active, e.clock.now()))
        .unwrap();
    let r = a.verify_audit().unwrap();
    assert_eq!(r.problem, None);
    assert!(r.lines >= 4, "{r:?}");
    let log = e.path("state/audit.jsonl");
    let original = std::fs::read_to_string(&log).unwrap();
    // Edit one line.
    std::fs::write(&log, original.replacen("\"suspended\"", "\"active\"", 1)).unwrap();
    let load = || Agent::load(e.config(), Box::new(e.clock.clone())).unwrap();
    let r = load().verify_audit().unwrap();
    assert!(r.problem.is_some(), "{r:?}");
    // Delete a line.
    let lines: Vec<&str> = original.lines().collect();
    let without: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| *l)
        .collect();
    std::fs::write(&log, without.join("\n") + "\n").unwrap();
    assert!(load().verify_audit().unwrap().problem.is_some());
    // Drop the last line.
    std::fs::write(&log, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let r = Agent::load(e.config(), Box::new(e.clock.clone()))
        .unwrap()
        .verify_audit()
        .unwrap();
    assert!(r.problem.unwrap().contains("lines lost"));
    let _ = Path::new("");
}

/// Regression (review Q24): deleting the state and installing an older
/// serial is caught by the status document naming the current serial.
#[test]
fn older_serial_after_state_reset_is_superseded() {
    let e = Env::new();
    e.write_license(&e.license(5), &e.lic_key);
    drop(e.agent());
    std::fs::remove_file(e.path("state/license-state.json")).unwrap();
    e.write_license(&e.license(4), &e.lic_key);
    let mut a = e.agent();
    let s = LicenseStatus {
        license_id: "lic-1".into(),
        state: StatusState::Active,
        reason: None,
        issued_at: e.clock.now(),
        valid_until: e.clock.now() + SignedDuration::from_secs(DAY),
        current_serial: Some(5),
    };
    let mut env = Envelope::new_unsigned(PAYLOAD_LICENSE_STATUS, s.to_payload());
    env.sign(&e.lic_key as &dyn Signer).unwrap();
    a.accept_status(&env.to_json()).unwrap();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "superseded by serial 5"));
    // After re-establishment the new audit chain verifies; the old one is
    // kept aside.
    assert_eq!(a.verify_audit().unwrap().problem, None);
    let kept = std::fs::read_dir(e.path("state"))
        .unwrap()
        .flatten()
        .any(|f| {
            let n = f.file_name().to_string_lossy().into_owned();
            n.starts_with("audit.") && n.ends_with(".jsonl") && n != "audit.jsonl"
        });
    assert!(kept);
}

/// Regression (review Q27): a suspension holds past its valid_until until a
/// newer status replaces it.
#[test]
fn suspension_does_not_lapse() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let mut a = e.agent();
    a.accept_status(&e.status("lic-1", StatusState::Suspended, e.t0))
        .unwrap();
    e.clock.advance(8 * DAY);
    a.evaluate_and_record("tick").unwrap();
    assert_eq!(state(&a), State::Suspended);
}

/// Regression (review Q28): a status from the future is refused, so it
/// cannot push the clock's high-water mark ahead.
#[test]
fn status_from_the_future_is_refused() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let mut a = e.agent();
    let future = e.t0 + SignedDuration::from_secs(3 * DAY);
    let err = a
        .accept_status(&e.status("lic-1", StatusState::Active, future))
        .unwrap_err();
    assert!(err.to_string().contains("in the future"), "{err}");
}

/// Regression (issue 12, Q26): license A serial 2, then license B, then A
/// serial 1. The ratchet keeps a mark per license id, so installing B in
/// between does not reopen A's old serial.
#[test]
fn serial_replay_after_other_license_refused() {
    let e = Env::new();
    e.write_license(&e.license(2), &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
    let mut b = e.license(1);
    b.license_id = "lic-trial".into();
    e.write_license(&b, &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
    e.write_license(&e.license(1), &e.lic_key);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid, "{:?}", a.evaluation());
    assert!(has_reason(&a, "serial 1 is older than serial 2"));
    // And B's mark is kept as well.
    let mut b0 = b.clone();
    b0.serial = 0;
    e.write_license(&b0, &e.lic_key);
    assert!(has_reason(&e.agent(), "serial 0 is older than serial 1"));
}

/// A state file the previous version wrote (one `license_id` and
/// `highest_serial`, MAC label v1) still loads: its serial is migrated
/// into the per-id ratchet, and the next write uses the current format.
#[test]
fn state_written_by_the_previous_version_still_loads() {
    let e = Env::new();
    e.write_license(&e.license(5), &e.lic_key);
    drop(e.agent());
    // The previous version's state, byte for byte as it serialized it.
    let legacy = format!(
        "{{\"license_id\":\"lic-1\",\"highest_serial\":5,\"time_floor\":\"{}\",\"last_status\":null,\"last_status_fetch\":null,\"audit_lines\":0,\"audit_head\":null}}",
        e.t0
    );
    let store = charter_agent::state::StateStore::open(&e.path("state")).unwrap();
    let mac = store.keyed_hash(b"charter-license-state-v1\0", legacy.as_bytes());
    let p = e.path("state/license-state.json");
    std::fs::write(&p, format!("{{\"state\": {legacy}, \"mac\": \"{mac}\"}}\n")).unwrap();
    std::fs::remove_file(e.path("state/audit.jsonl")).unwrap();
    assert!(matches!(
        store.load().unwrap(),
        charter_agent::state::Loaded::Ok(rt) if rt.highest_serial("lic-1") == Some(5)
    ));
    e.write_license(&e.license(4), &e.lic_key);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "serial 4 is older than serial 5"));
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.contains("\"serials\"") && !text.contains("highest_serial"),
        "{text}"
    );
    assert_eq!(a.verify_audit().unwrap().problem, None);
    assert!(has_reason(&e.agent(), "serial 4 is older than serial 5"));
}

fn first_audit_line(e: &Env) -> serde_json::Value {
    let log = std::fs::read_to_string(e.path("state/audit.jsonl")).unwrap();
    serde_json::from_str(log.lines().next().unwrap()).unwrap()
}

/// Regression (issue 12, Q42): after a tampered state is re-established,
/// the new audit log's first line says so, why, and where the old log
/// and the tampered state file were kept; `audit verify` passes, also
/// after a restart, and the old log is intact beside it.
#[test]
fn tampered_state_reestablished_is_logged_and_audit_verifies() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    drop(e.agent());
    let old_log = std::fs::read(e.path("state/audit.jsonl")).unwrap();
    let p = e.path("state/license-state.json");
    let tampered = std::fs::read_to_string(&p).unwrap().replacen(
        "\"audit_lines\": 1",
        "\"audit_lines\": 0",
        1,
    );
    std::fs::write(&p, &tampered).unwrap();
    let mut a = e.agent();
    assert!(has_reason(&a, "tampered"));
    a.accept_status(&e.status("lic-1", StatusState::Active, e.clock.now()))
        .unwrap();
    assert_eq!(state(&a), State::Active);
    let first = first_audit_line(&e);
    assert_eq!(first["seq"], 1, "{first}");
    let ev = &first["event"];
    assert_eq!(ev["kind"], "reestablished", "{first}");
    assert_eq!(ev["why"], "tampered", "{first}");
    assert!(
        ev["detail"]
            .as_str()
            .unwrap()
            .contains("fails its authentication check"),
        "{first}"
    );
    let aside_log = PathBuf::from(ev["set_aside"]["audit_log"].as_str().unwrap());
    let aside_state = PathBuf::from(ev["set_aside"]["state"].as_str().unwrap());
    assert!(aside_log.starts_with(e.path("state")), "{first}");
    assert_eq!(
        std::fs::read(&aside_log).unwrap(),
        old_log,
        "old log kept as it was"
    );
    assert_eq!(std::fs::read_to_string(&aside_state).unwrap(), tampered);
    assert_eq!(a.verify_audit().unwrap().problem, None);
    drop(a);
    assert_eq!(e.agent().verify_audit().unwrap().problem, None);
}

/// Regression (issue 12, Q42): the same for a deleted state.
#[test]
fn deleted_state_reestablished_is_logged_and_audit_verifies() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    drop(e.agent());
    std::fs::remove_file(e.path("state/license-state.json")).unwrap();
    let mut a = e.agent();
    a.accept_status(&e.status("lic-1", StatusState::Active, e.clock.now()))
        .unwrap();
    let ev = first_audit_line(&e)["event"].clone();
    assert_eq!(
        (ev["kind"].as_str(), ev["why"].as_str()),
        (Some("reestablished"), Some("deleted")),
        "{ev}"
    );
    assert!(
        ev["set_aside"]["audit_log"]
            .as_str()
            .unwrap()
            .contains("/audit."),
        "{ev}"
    );
    assert_eq!(ev["set_aside"]["state"], serde_json::Value::Null);
    assert_eq!(e.agent().verify_audit().unwrap().problem, None);
}

/// The host secret and the state deleted together (a first run), the old
/// audit log left behind: the log starts over instead of failing
/// `audit verify` from then on.
#[test]
fn first_run_over_an_old_audit_log_starts_it_over() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    drop(e.agent());
    std::fs::remove_file(e.path("state/license-state.json")).unwrap();
    std::fs::remove_file(e.path("state/host.key")).unwrap();
    let a = e.agent();
    assert_eq!(state(&a), State::Active);
    let ev = first_audit_line(&e)["event"].clone();
    assert_eq!(
        (ev["kind"].as_str(), ev["why"].as_str()),
        (Some("reestablished"), Some("fresh")),
        "{ev}"
    );
    assert_eq!(a.verify_audit().unwrap().problem, None);
}

/// Regression (review of issue 12): the previous version's state format is
/// still authenticated. A legacy-format file with a wrong MAC (or one
/// MAC'd under the current label) is tampered, not migrated.
#[test]
fn legacy_state_with_a_wrong_mac_is_tampered() {
    let e = Env::new();
    e.write_license(&e.license(5), &e.lic_key);
    drop(e.agent());
    let legacy = format!(
        "{{\"license_id\":\"lic-1\",\"highest_serial\":1,\"time_floor\":\"{}\",\"last_status\":null,\"last_status_fetch\":null,\"audit_lines\":0,\"audit_head\":null}}",
        e.t0
    );
    let store = charter_agent::state::StateStore::open(&e.path("state")).unwrap();
    let p = e.path("state/license-state.json");
    for mac in [
        "0".repeat(64),
        store.keyed_hash(b"charter-license-state-v2\0", legacy.as_bytes()),
    ] {
        std::fs::write(&p, format!("{{\"state\": {legacy}, \"mac\": \"{mac}\"}}\n")).unwrap();
        assert!(
            matches!(
                store.load().unwrap(),
                charter_agent::state::Loaded::Tampered(_)
            ),
            "a legacy state under MAC {mac} was accepted"
        );
    }
}

/// A license with a `file://` status URL (`status.json` in the test
/// directory), and the URL.
fn license_with_status_url(e: &Env, serial: u64) -> License {
    let mut l = e.license(serial);
    l.status_url = Some(format!("file://{}", e.path("status.json").display()));
    l
}

/// What a customer with root does to start over: the host secret and the
/// state go together (the audit log may stay).
fn wipe_state(e: &Env) {
    std::fs::remove_file(e.path("state/host.key")).unwrap();
    std::fs::remove_file(e.path("state/license-state.json")).unwrap();
}

fn status_with_serial(e: &Env, state: StatusState, issued_at: Timestamp, cur: u64) -> Vec<u8> {
    let s = LicenseStatus {
        license_id: "lic-1".into(),
        state,
        reason: None,
        issued_at,
        valid_until: issued_at + SignedDuration::from_secs(DAY),
        current_serial: Some(cur),
    };
    let mut env = Envelope::new_unsigned(PAYLOAD_LICENSE_STATUS, s.to_payload());
    env.sign(&e.lic_key as &dyn Signer).unwrap();
    env.to_json()
}

/// Regression (review Q25, Q27): a revoked status is held; the customer
/// deletes the host secret and the state together (a first run) and blocks
/// the status URL. The license is not `active` again: a new state waits
/// for its first status, and when the URL answers again its revocation
/// applies again.
#[test]
fn state_wipe_does_not_undo_a_revocation() {
    let e = Env::new();
    e.write_license(&license_with_status_url(&e, 1), &e.lic_key);
    std::fs::write(
        e.path("status.json"),
        e.status("lic-1", StatusState::Revoked, e.t0),
    )
    .unwrap();
    let mut a = e.agent();
    assert!(a.refresh_status().unwrap());
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "revoked"));
    drop(a);

    wipe_state(&e);
    std::fs::rename(e.path("status.json"), e.path("status.blocked")).unwrap();
    e.clock.advance(3600);
    let mut a = e.agent();
    assert!(a.refresh_status().is_err(), "the status URL is blocked");
    assert_eq!(state(&a), State::Invalid, "{:?}", a.evaluation());
    assert!(has_reason(&a, "waiting for the first license status"));
    assert!(!a.evaluation().feature("sso"));
    // A restart does not make it a first run again: the state says it
    // still waits.
    drop(a);
    let a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "waiting for the first license status"));
    drop(a);

    // The URL answers again with the vendor's (reissued) revocation.
    std::fs::write(
        e.path("status.json"),
        e.status("lic-1", StatusState::Revoked, e.clock.now()),
    )
    .unwrap();
    let mut a = e.agent();
    assert!(a.refresh_status().unwrap());
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "revoked"));
    assert!(!has_reason(&a, "waiting for the first license status"));
}

/// Regression (review Q25, Q24): serial 5 was installed; the state is
/// wiped and serial 4 installed. It waits for its first status, and the
/// status naming serial 5 supersedes it; the ratchet then holds 5 even
/// after a later status without `current_serial`.
#[test]
fn state_wipe_then_old_serial_is_superseded() {
    let e = Env::new();
    e.write_license(&license_with_status_url(&e, 5), &e.lic_key);
    std::fs::write(
        e.path("status.json"),
        status_with_serial(&e, StatusState::Active, e.t0, 5),
    )
    .unwrap();
    let mut a = e.agent();
    a.refresh_status().unwrap();
    assert_eq!(state(&a), State::Active, "{:?}", a.evaluation());
    drop(a);

    wipe_state(&e);
    e.write_license(&license_with_status_url(&e, 4), &e.lic_key);
    e.clock.advance(60);
    let mut a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "waiting for the first license status"));
    std::fs::write(
        e.path("status.json"),
        status_with_serial(&e, StatusState::Active, e.clock.now(), 5),
    )
    .unwrap();
    a.refresh_status().unwrap();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "superseded by serial 5"));
    // The status's serial went into the ratchet, not the installed one.
    e.clock.advance(60);
    std::fs::write(
        e.path("status.json"),
        e.status("lic-1", StatusState::Active, e.clock.now()),
    )
    .unwrap();
    a.refresh_status().unwrap();
    assert_eq!(state(&a), State::Invalid);
    assert!(has_reason(&a, "serial 4 is older than serial 5"));
}

/// Regression (review Q25): a new state (first run) with a license that has
/// a status URL is `invalid` until its first status arrives, says why, and
/// takes only a fresh one: an `active` status kept from before a
/// revocation cannot start a wiped state.
#[test]
fn fresh_state_waits_for_its_first_status() {
    let e = Env::new();
    e.write_license(&license_with_status_url(&e, 1), &e.lic_key);
    let mut a = e.agent();
    assert_eq!(state(&a), State::Invalid);
    assert_eq!(
        a.evaluation().reasons,
        ["waiting for the first license status on a new or reset license state"]
    );
    e.clock.advance(2 * DAY);
    let stale = e.status("lic-1", StatusState::Active, e.t0);
    let err = a.accept_status(&stale).unwrap_err().to_string();
    assert!(
        err.contains("not fresh enough to be the first status"),
        "{err}"
    );
    assert_eq!(state(&a), State::Invalid);
    a.accept_status(&e.status("lic-1", StatusState::Active, e.clock.now()))
        .unwrap();
    assert_eq!(state(&a), State::Active, "{:?}", a.evaluation());
    // Once a status was taken, a later failed fetch changes nothing.
    drop(a);
    let mut a = e.agent();
    assert!(a.refresh_status().is_err());
    assert_eq!(state(&a), State::Active);
}

/// A first install whose status URL answers is `active` once the first
/// fetch (the daemon's, before it reports ready) is taken.
#[test]
fn first_install_with_a_reachable_status_is_active() {
    let e = Env::new();
    e.write_license(&license_with_status_url(&e, 1), &e.lic_key);
    std::fs::write(
        e.path("status.json"),
        e.status("lic-1", StatusState::Active, e.t0),
    )
    .unwrap();
    let mut a = e.agent();
    assert!(a.refresh_status().unwrap());
    assert_eq!(state(&a), State::Active, "{:?}", a.evaluation());
    assert!(a.evaluation().feature("sso"));
    assert_eq!(a.verify_audit().unwrap().problem, None);
}

/// A license without a status URL is unchanged on a new state (the known
/// limit: nothing to wait for).
#[test]
fn fresh_state_without_status_url_is_active() {
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    assert_eq!(state(&e.agent()), State::Active);
}

/// Regression (review Q24): a status signed before the installed license
/// was issued is old news about it, and is refused.
#[test]
fn status_older_than_the_license_is_refused() {
    let e = Env::new();
    let mut l = e.license(1);
    l.issued_at = e.t0 + SignedDuration::from_secs(3600);
    e.write_license(&l, &e.lic_key);
    e.clock.advance(2 * 3600);
    let mut a = e.agent();
    let err = a
        .accept_status(&e.status("lic-1", StatusState::Active, e.t0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("before the installed license"), "{err}");
}

/// Every file under `dir` with its bytes (a missing dir: nothing).
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for f in rd.flatten() {
            out.push((f.path(), std::fs::read(f.path()).unwrap_or_default()));
        }
    }
    out.sort();
    out
}

/// The updater's entitlement check (`charter_agent::entitlement::read`)
/// writes nothing: before the agent's first start it refuses without
/// creating the host secret; later it agrees with the agent on a sound,
/// a suspended and a tampered state and leaves every file as it was (a
/// tampered state is not set aside, no audit line is added).
#[test]
fn entitlement_read_writes_nothing_and_agrees_with_the_agent() {
    use charter_agent::entitlement;
    let e = Env::new();
    e.write_license(&e.license(1), &e.lic_key);
    let err = entitlement::read(&e.config(), &e.clock, DmiRead::Direct).unwrap_err();
    assert!(err.to_string().contains("has no host key yet"), "{err}");
    assert!(!e.path("state").exists(), "the state dir was created");

    let mut a = e.agent();
    let before = tree(&e.path("state"));
    let ent = entitlement::read(&e.config(), &e.clock, DmiRead::Direct).unwrap();
    assert_eq!(ent.state(), State::Active, "{:?}", ent.evaluation());
    assert_eq!(ent.license().map(|l| l.serial), Some(1));
    let (inside, after) = (e.t0, e.t0 + SignedDuration::from_secs(21 * DAY));
    assert!(ent.admits(inside, false).is_ok());
    let l = a.license().unwrap().license().clone();
    assert_eq!(
        ent.admits(after, false),
        entitled(a.evaluation(), &l, after, false)
    );

    a.accept_status(&e.status("lic-1", StatusState::Suspended, e.t0))
        .unwrap();
    let before_suspended = tree(&e.path("state"));
    assert_ne!(before, before_suspended);
    let ent = entitlement::read(&e.config(), &e.clock, DmiRead::Direct).unwrap();
    assert_eq!(ent.state(), State::Suspended);
    assert!(ent.admits(inside, false).unwrap_err().contains("suspended"));
    assert_eq!(tree(&e.path("state")), before_suspended);
    drop(a);

    let state_file = e.path("state/license-state.json");
    let mut bytes = std::fs::read(&state_file).unwrap();
    let i = bytes.iter().position(|b| *b == b'1').unwrap();
    bytes[i] = b'9';
    std::fs::write(&state_file, bytes).unwrap();
    let tampered = tree(&e.path("state"));
    let ent = entitlement::read(&e.config(), &e.clock, DmiRead::Direct).unwrap();
    assert_eq!(ent.state(), State::Invalid);
    assert!(
        ent.reasons().iter().any(|r| r.contains("tampered")),
        "{:?}",
        ent.reasons()
    );
    assert_eq!(tree(&e.path("state")), tampered);
}
