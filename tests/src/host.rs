//! A host and its repository for the updater's end-to-end tests: keys and
//! a root (from [`Fixture`]), a static repository served by a real HTTP
//! server on 127.0.0.1, and a host config pointing `charter-update` at it,
//! everything inside one temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use charter_keys::dsse::{Envelope, PAYLOAD_CHANNEL, PAYLOAD_MANIFEST};
use charter_keys::secret::{SecretKey, Signer};
use charter_release::channel::{ChannelPointer, ManifestRef};
use charter_release::digest::Sha256Digest;
use charter_release::manifest::Manifest;
use sha2::Digest;

use crate::server::TestServer;
use crate::{Fixture, Output, PASS, run_env};

/// Version 1 of the sample product's health script: healthy when
/// `etc/healthy` holds `yes`.
const HEALTH: &str = "#!/bin/sh\ngrep -q yes \"$(dirname \"$0\")/../etc/healthy\"\n";

pub struct Host {
    pub f: Fixture,
    pub repo: PathBuf,
    pub server: TestServer,
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Host {
    /// A fresh host following `http://127.0.0.1:PORT/` (repository served
    /// by [`TestServer`]).
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// As [`Host::new`], with extra TOML appended to the config (inside
    /// no table: put a table header first).
    pub fn with_config(extra: &str) -> Self {
        let f = Fixture::new();
        let repo = f.path().join("repo");
        f.charter(&["repo", "init", "repo", "--root", "root.json"])
            .ok();
        let server = TestServer::serve(&repo);
        let root = f.path().join("host");
        for d in ["opt", "state", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(f.path().join("root.json"), root.join("etc/root.json")).unwrap();
        let config = root.join("etc/charter.toml");
        let h = Host {
            f,
            repo,
            server,
            root,
            config,
        };
        h.write_config(&h.server.url(), extra);
        h
    }

    /// Rewrites the config with another repository URL.
    pub fn write_config(&self, url: &str, extra: &str) {
        let r = self.root.display();
        std::fs::write(
            &self.config,
            format!(
                "product = \"panel\"\nchannel = \"stable\"\n\n[repository]\nurl = \"{url}\"\ntimeout_secs = 2\nretries = 3\n\n[paths]\ninstall_root = \"{r}/opt\"\nstate_dir = \"{r}/state\"\ntrust_root = \"{r}/etc/root.json\"\n{extra}\n"
            ),
        )
        .unwrap();
    }

    pub fn path(&self) -> &Path {
        self.f.path()
    }

    /// Writes a release tree `trees/<version>`: bin/panel, bin/health (the
    /// health check), etc/panel.toml (config), etc/healthy, share/data.
    pub fn tree(&self, version: &str, healthy: bool, config: &str) -> PathBuf {
        let t = self.path().join("trees").join(version);
        for d in ["bin", "etc", "share"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        let exe = |p: PathBuf, body: &str| {
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(
            t.join("bin/panel"),
            &format!("#!/bin/sh\necho panel {version}\n"),
        );
        exe(t.join("bin/health"), HEALTH);
        std::fs::write(t.join("etc/panel.toml"), config).unwrap();
        std::fs::write(
            t.join("etc/healthy"),
            if healthy { "yes\n" } else { "no\n" },
        )
        .unwrap();
        std::fs::write(t.join("share/data"), format!("{version}\n").repeat(20_000)).unwrap();
        t
    }

    /// Packs, signs (threshold 2), adds to the repository and publishes
    /// `version` on the stable channel: a fresh sample tree with the usual
    /// config globs and health check. Extra args go to `manifest create`.
    pub fn publish(&self, version: &str, healthy: bool, config: &str, extra: &[&str]) {
        self.tree(version, healthy, config);
        let mut args = vec![
            "--config",
            "etc/*.toml",
            "--preserve",
            "var/**",
            "--health-cmd",
            "bin/health",
            "--health-retries",
            "0",
            "--health-timeout",
            "5s",
        ];
        args.extend_from_slice(extra);
        self.publish_tree(version, &args);
    }

    /// Packs `trees/<version>` as it is (the caller wrote it), with `extra`
    /// args to `manifest create`, signs it with rel1 and rel2, adds it to
    /// the repository and points the stable channel at it.
    pub fn publish_tree(&self, version: &str, extra: &[&str]) {
        let out = format!("out/{version}");
        let tree = format!("trees/{version}");
        let mut args = vec![
            "manifest",
            "create",
            "--product",
            "panel",
            "--version",
            version,
            "--from",
            &tree,
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        self.f.charter(&args).ok();
        let m = format!("{out}/manifest.json");
        self.f
            .charter(&["manifest", "sign", "--key", "rel1.key", &m])
            .ok();
        self.f
            .charter(&["manifest", "sign", "--key", "rel2.key", &m])
            .ok();
        self.f.charter(&["repo", "add", "repo", &out]).ok();
        self.point("stable", version);
    }

    /// Signs and writes the stable channel pointer at `version`.
    pub fn point(&self, channel: &str, version: &str) {
        self.point_with(channel, version, &[]).ok();
    }

    /// `charter <words…> --repo repo --product panel --channel <channel>`
    /// and `extra` args, in the fixture directory.
    pub fn on_channel(&self, words: &[&str], channel: &str, extra: &[&str]) -> Output {
        let mut args = words.to_vec();
        args.extend_from_slice(&["--repo", "repo", "--product", "panel", "--channel", channel]);
        args.extend_from_slice(extra);
        self.f.charter(&args)
    }

    /// `charter channel publish` of `version` on `channel` with `extra`
    /// args (`--rollout PLAN`, ...).
    pub fn point_with(&self, channel: &str, version: &str, extra: &[&str]) -> Output {
        let mut args = vec!["--version", version, "--key", "chan.key"];
        args.extend_from_slice(extra);
        self.on_channel(&["channel", "publish"], channel, &args)
    }

    /// `charter channel <verb>` (halt, resume) on the stable channel, with
    /// `extra` args.
    pub fn channel(&self, verb: &str, extra: &[&str]) -> Output {
        let mut args = vec!["--key", "chan.key"];
        args.extend_from_slice(extra);
        self.on_channel(&["channel", verb], "stable", &args)
    }

    /// The stable channel pointer's payload as served.
    pub fn pointer(&self) -> serde_json::Value {
        let env: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.repo.join("channels/panel/stable.json")).unwrap(),
        )
        .unwrap();
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(env["payload"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&payload).unwrap()
    }

    /// Runs `charter-update` against this host.
    pub fn update(&self, args: &[&str]) -> Output {
        self.update_env(args, &[])
    }

    pub fn update_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let cfg = self.config.to_str().unwrap().to_owned();
        let mut all = vec![("CHARTER_CONFIG", cfg.as_str())];
        all.extend_from_slice(env);
        run_env("charter-update", self.path(), args, &all)
    }

    /// The file under `current/`.
    pub fn installed(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join("opt/current").join(rel)).ok()
    }

    /// The version `current` points at.
    pub fn current(&self) -> Option<String> {
        let l = std::fs::read_link(self.root.join("opt/current")).ok()?;
        Some(l.to_str()?.strip_prefix("releases/")?.to_owned())
    }

    /// `charter-update status --json`.
    pub fn status(&self) -> serde_json::Value {
        self.update(&["status", "--json"]).ok().json()
    }

    pub fn load_key(&self, name: &str) -> SecretKey {
        SecretKey::read_file(
            &self.path().join(name),
            &charter_keys::Limits::default(),
            || Ok(zeroize::Zeroizing::new(PASS.as_bytes().to_vec())),
        )
        .unwrap()
        .key
    }

    /// The unsigned payload of a release's manifest in the repository.
    pub fn manifest(&self, version: &str) -> Manifest {
        let bytes = std::fs::read(
            self.repo
                .join(format!("releases/panel/{version}/manifest.json")),
        )
        .unwrap();
        let env = Envelope::from_slice(&bytes, &charter_keys::Limits::default()).unwrap();
        Manifest::from_payload(env.unverified_payload()).unwrap()
    }

    /// Writes `m`, signed by `signers`, as the repository's manifest for its
    /// version, replacing the artifact with `artifact` when given, and
    /// points the channel at it (signed by `chan.key`), returning the
    /// manifest bytes. Bypasses the CLI's own checks: for attack tests.
    pub fn install_raw(
        &self,
        mut m: Manifest,
        artifact: Option<&[u8]>,
        signers: &[&str],
    ) -> Vec<u8> {
        let dir = self.repo.join(format!("releases/panel/{}", m.version));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(a) = artifact {
            m.artifact.size = a.len() as u64;
            m.artifact.sha256 = Sha256Digest(sha2::Sha256::digest(a).into());
            std::fs::write(dir.join(&m.artifact.name), a).unwrap();
        }
        let mut env = Envelope::new_unsigned(PAYLOAD_MANIFEST, m.to_payload());
        for s in signers {
            env.sign(&self.load_key(s) as &dyn Signer).unwrap();
        }
        let bytes = env.to_json();
        std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
        self.point_raw(
            &m.version.to_string(),
            &bytes,
            jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
            false,
        );
        bytes
    }

    /// Writes a stable channel pointer by hand (any expiry, any pin).
    pub fn point_raw(
        &self,
        version: &str,
        manifest_bytes: &[u8],
        expires: jiff::Timestamp,
        allow_downgrade: bool,
    ) {
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap();
        let p = ChannelPointer {
            product: "panel".into(),
            channel: "stable".into(),
            version: version.parse().unwrap(),
            manifest: ManifestRef {
                path: charter_release::path::ArchivePath::new(
                    &format!("releases/panel/{version}/manifest.json"),
                    4096,
                )
                .unwrap(),
                sha256: Sha256Digest(sha2::Sha256::digest(manifest_bytes).into()),
                size: manifest_bytes.len() as u64,
            },
            published_at: now.min(expires - jiff::SignedDuration::from_secs(3600)),
            expires,
            allow_downgrade,
            previous: None,
            rollout: None,
            reverted: None,
        };
        let mut env = Envelope::new_unsigned(PAYLOAD_CHANNEL, p.to_payload());
        env.sign(&self.load_key("chan.key") as &dyn Signer).unwrap();
        std::fs::write(self.repo.join("channels/panel/stable.json"), env.to_json()).unwrap();
    }

    /// URL path of a release's artifact on the server.
    pub fn artifact_url_path(&self, version: &str) -> String {
        format!("/releases/panel/{version}/panel-{version}.tar.zst")
    }

    /// Installed tree and host state snapshot (for "nothing changed").
    pub fn snapshot(&self) -> (crate::Snapshot, serde_json::Value) {
        let st = std::fs::read(self.root.join("state/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|mut v| {
                // Bookkeeping of what was seen, not of what is installed.
                if let Some(o) = v.as_object_mut() {
                    o.remove("last_check");
                    o.remove("pointer_published");
                    o.remove("offered");
                }
                v
            })
            .unwrap_or_default();
        // `.staging/` is scratch space: a refused release passes through it.
        let mut tree = crate::snapshot(&self.root.join("opt"));
        tree.retain(|p, _| !p.starts_with(".staging"));
        (tree, st)
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}
