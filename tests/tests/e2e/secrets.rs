//! Secret config values encrypted at rest (`enc:v1:`): `charter secrets`
//! encrypts, reports and rotates them; `charter-update` decrypts its
//! repository token with the master key and sends it to a server that
//! requires it. Wrong keys, tampered or moved ciphertexts and loose key
//! files are refused, an interrupted rotation leaves every file whole,
//! and no secret or key ever appears in any output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use charter_tests::host::Host;
use charter_tests::{Output, run_env};

const TOKEN: &str = "tok-5d1e9a7c3b2f4e8d";
const PASSWORD: &str = "pw-0c8b6a4e2d1f3a5b";

struct Keys {
    dir: PathBuf,
}

impl Keys {
    fn new(h: &Host) -> Self {
        let dir = h.path().join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        Keys { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap()
            .trim()
            .to_owned()
    }
}

/// Runs `charter` with the master key file `key`.
fn charter(h: &Host, key: &Path, args: &[&str]) -> Output {
    run_env(
        "charter",
        h.path(),
        args,
        &[("CHARTER_MASTER_KEY_FILE", key.to_str().unwrap())],
    )
}

fn update(h: &Host, key: &Path, args: &[&str]) -> Output {
    h.update_env(args, &[("CHARTER_MASTER_KEY_FILE", key.to_str().unwrap())])
}

/// Adds `line` to the host config's [repository] table.
fn repository_line(h: &Host, line: &str) {
    let text = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        text.replace("retries = 3\n", &format!("retries = 3\n{line}\n")),
    )
    .unwrap();
}

fn field(config: &Path, name: &str) -> String {
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let (t, k) = name.split_once('.').unwrap();
    v[t][k].as_str().unwrap().to_owned()
}

fn set_field(config: &Path, name: &str, value: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let key = name.split_once('.').unwrap().1;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} = ")) {
                format!("{key} = \"{value}\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(config, out.join("\n") + "\n").unwrap();
}

#[test]
fn encrypted_token_reaches_the_server_and_no_secret_reaches_any_output() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    let k = Keys::new(&h);
    let key = k.path("master.key");
    let mut outputs: Vec<Output> = Vec::new();
    outputs.push(
        charter(
            &h,
            &key,
            &["secrets", "generate-key", "--out", key.to_str().unwrap()],
        )
        .ok(),
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    h.server
        .require_authorization(Some(&format!("Bearer {TOKEN}")));
    // Without the token: 401, said plainly.
    outputs.push(update(&h, &key, &["check"]).fails_with("401"));
    // A plain token works, with a warning at start and in status.
    repository_line(&h, &format!("token = \"{TOKEN}\""));
    let out = update(&h, &key, &["check"]).ok();
    assert!(
        out.stderr.contains("repository.token is in plain text"),
        "{out:?}"
    );
    outputs.push(out);
    let st = update(&h, &key, &["status", "--json"]).ok();
    assert_eq!(
        st.json()["plain_secrets"],
        serde_json::json!(["repository.token"])
    );
    outputs.push(st);
    // Encrypted in place: comments and other fields kept.
    let before = std::fs::read_to_string(&h.config).unwrap();
    let out = charter(
        &h,
        &key,
        &["secrets", "encrypt", h.config.to_str().unwrap()],
    )
    .ok();
    assert!(out.stdout.contains("repository.token"), "{out:?}");
    outputs.push(out);
    let after = std::fs::read_to_string(&h.config).unwrap();
    assert!(!after.contains(TOKEN));
    assert!(field(&h.config, "repository.token").starts_with("enc:v1:"));
    assert_eq!(before.lines().count(), after.lines().count());
    let st = charter(
        &h,
        &key,
        &["--json", "secrets", "status", h.config.to_str().unwrap()],
    )
    .ok();
    assert_eq!(st.json()["fields"][0]["state"], "encrypted", "{st:?}");
    outputs.push(st);
    // The updater decrypts it and the server accepts it.
    let out = update(&h, &key, &["apply", "--json"]).ok();
    assert!(!out.stderr.contains("plain text"), "{out:?}");
    outputs.push(out);
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let st = update(&h, &key, &["status", "--json"]).ok();
    assert_eq!(st.json()["plain_secrets"], serde_json::json!([]));
    outputs.push(st);
    assert!(
        h.server
            .requests()
            .iter()
            .filter(|r| r.status == 200)
            .all(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}"))),
    );

    // Basic authentication, password encrypted.
    let text = std::fs::read_to_string(&h.config).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("token = "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&h.config, text).unwrap();
    repository_line(
        &h,
        &format!("username = \"panel-host\"\npassword = \"{PASSWORD}\""),
    );
    outputs.push(
        charter(
            &h,
            &key,
            &["secrets", "encrypt", h.config.to_str().unwrap()],
        )
        .ok(),
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("panel-host:{PASSWORD}"));
    h.server
        .require_authorization(Some(&format!("Basic {basic}")));
    outputs.push(update(&h, &key, &["check", "--json"]).ok());

    // Every refusal below is in the scan too.
    let good_password = field(&h.config, "repository.password");
    // Wrong master key.
    let other = k.path("other.key");
    outputs.push(
        charter(
            &h,
            &key,
            &["secrets", "generate-key", "--out", other.to_str().unwrap()],
        )
        .ok(),
    );
    outputs.push(update(&h, &other, &["check"]).fails_with("repository.password"));
    let out = charter(
        &h,
        &other,
        &["secrets", "status", h.config.to_str().unwrap()],
    );
    assert!(out.stdout.contains("undecryptable"), "{out:?}");
    outputs.push(out.fails_with("do not decrypt"));
    // Tampered ciphertext.
    let mut t = good_password.clone().into_bytes();
    let i = t.len() - 5;
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    set_field(
        &h.config,
        "repository.password",
        &String::from_utf8(t).unwrap(),
    );
    outputs.push(update(&h, &key, &["check"]).fails_with("decryption failed"));
    // A ciphertext moved to another field (an encrypted token pasted as
    // the password).
    let tok = {
        let tmp = h.path().join("tok.toml");
        std::fs::write(&tmp, format!("[repository]\ntoken = \"{TOKEN}\"\n")).unwrap();
        outputs.push(charter(&h, &key, &["secrets", "encrypt", tmp.to_str().unwrap()]).ok());
        field(&tmp, "repository.token")
    };
    set_field(&h.config, "repository.password", &tok);
    outputs.push(update(&h, &key, &["check"]).fails_with("moved from another field"));
    // No key at all.
    outputs
        .push(update(&h, &k.path("absent.key"), &["check"]).fails_with("no master key was found"));
    // A key file others can read.
    set_field(&h.config, "repository.password", &good_password);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = update(&h, &key, &["check"]).fails_with("chmod 600");
    assert!(
        out.stderr.contains(key.to_str().unwrap()) && out.stderr.contains("0644"),
        "{out:?}"
    );
    outputs.push(out);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // systemd credentials: $CREDENTIALS_DIRECTORY/charter-master-key.
    let creds = h.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::copy(&key, creds.join("charter-master-key")).unwrap();
    outputs.push(
        h.update_env(
            &["check"],
            &[
                ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
                ("CHARTER_MASTER_KEY_FILE", "/nonexistent"),
            ],
        )
        .ok(),
    );
    // The key text in the environment.
    outputs.push(
        h.update_env(
            &["check"],
            &[
                ("CHARTER_MASTER_KEY", &k.text("master.key")),
                ("CHARTER_MASTER_KEY_FILE", "/nonexistent"),
            ],
        )
        .ok(),
    );

    // Nothing secret anywhere: not the token, the password, either key,
    // nor the key bytes' base64 body.
    let mut needles = vec![TOKEN.to_owned(), PASSWORD.to_owned(), basic];
    for name in ["master.key", "other.key"] {
        let t = k.text(name);
        needles.push(t.split_once(':').unwrap().1.to_owned());
        needles.push(t);
    }
    for o in &outputs {
        for n in &needles {
            assert!(
                !o.stdout.contains(n.as_str()) && !o.stderr.contains(n.as_str()),
                "a secret leaked into {o:?}"
            );
        }
    }
    // The updater's own files too.
    for entry in walk(&h.root.join("state")) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for n in &needles {
            assert!(
                !text.contains(n.as_str()),
                "{} holds a secret",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn rotation_checks_first_backs_up_and_survives_an_interruption() {
    let h = Host::new();
    let k = Keys::new(&h);
    let (old, new, stranger) = (k.path("old.key"), k.path("new.key"), k.path("stranger.key"));
    for p in [&old, &new, &stranger] {
        charter(
            &h,
            &old,
            &["secrets", "generate-key", "--out", p.to_str().unwrap()],
        )
        .ok();
    }
    let dir = h.path().join("configs");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, key) in [
        ("a.toml", &old),
        ("b.toml", &old),
        ("c.toml", &old),
        ("z.toml", &stranger),
    ] {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("# {name}\n[repository]\nurl = \"http://x/\" # kept\ntoken = \"{TOKEN}\"\n[status]\ntoken = \"{TOKEN}-s\"\n"),
        )
        .unwrap();
        charter(&h, key, &["secrets", "encrypt", p.to_str().unwrap()]).ok();
    }
    let snapshot = |p: &Path| std::fs::read(p).unwrap();
    let z_before = snapshot(&dir.join("z.toml"));
    // Interrupted after the first file: a.toml is wholly under the new key
    // (with its backup), b and c wholly under the old one.
    let out = run_env(
        "charter",
        h.path(),
        &[
            "secrets",
            "rotate-key",
            "--new-key",
            new.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        &[
            ("CHARTER_MASTER_KEY_FILE", old.to_str().unwrap()),
            ("CHARTER_FAILPOINT", "secrets:after-file"),
        ],
    );
    assert_ne!(out.code, 0, "{out:?}");
    let state = |p: &Path, key: &Path| {
        charter(&h, key, &["secrets", "status", p.to_str().unwrap()]).code == 0
    };
    assert!(state(&dir.join("a.toml"), &new) && !state(&dir.join("a.toml"), &old));
    for f in ["b.toml", "c.toml"] {
        assert!(
            state(&dir.join(f), &old) && !state(&dir.join(f), &new),
            "{f}"
        );
    }
    let backups: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".bak-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(backups[0].starts_with("a.toml.bak-"));
    let backup = dir.join(&backups[0]);
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(state(&backup, &old), "the backup is the old-key file");
    // Run again: a.toml is already rotated, b and c rotate, z.toml (another
    // key) is named and left untouched; exit non-zero for it.
    let out = charter(
        &h,
        &old,
        &[
            "--json",
            "secrets",
            "rotate-key",
            "--new-key",
            new.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    assert_ne!(out.code, 0);
    let j: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(j["failed"].as_array().unwrap().len(), 1, "{j}");
    assert!(j["failed"][0]["file"].as_str().unwrap().ends_with("z.toml"));
    assert!(
        j["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("encrypted under master key")
    );
    let rotated: Vec<_> = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["rotated"].as_array().unwrap().is_empty())
        .map(|f| {
            f["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(rotated, ["b.toml", "c.toml"], "{j}");
    assert_eq!(snapshot(&dir.join("z.toml")), z_before);
    for f in ["a.toml", "b.toml", "c.toml"] {
        let p = dir.join(f);
        assert!(state(&p, &new), "{f}");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("# kept") && text.starts_with(&format!("# {f}")),
            "{text}"
        );
    }
    // Rolling back is restoring the backup.
    std::fs::copy(&backup, dir.join("a.toml")).unwrap();
    assert!(state(&dir.join("a.toml"), &old));
    // The same key twice is refused.
    charter(
        &h,
        &new,
        &[
            "secrets",
            "rotate-key",
            "--new-key",
            new.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    )
    .fails_with("is the current key");
    assert!(!out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN));
}
