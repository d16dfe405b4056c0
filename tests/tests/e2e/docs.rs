//! The documents stay true to the code where a machine can tell.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `const MAX_*` of a library crate's sources, with where it is.
fn caps_in(dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            caps_in(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            // Test modules sit at the end of a file.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in text.lines() {
                let l = line.trim_start();
                let l = l.strip_prefix("pub ").unwrap_or(l);
                let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
                if let Some(rest) = l.strip_prefix("const MAX_") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                        .collect();
                    out.push((format!("MAX_{name}"), p.clone()));
                }
            }
        }
    }
}

#[test]
fn spec_limits_name_every_cap() {
    let root = workspace();
    let spec = std::fs::read_to_string(root.join("docs/SPEC.md")).unwrap();
    let start = spec.find("\n## 7. Limits").expect("SPEC has §7 Limits");
    let end = spec[start + 1..]
        .find("\n## ")
        .map_or(spec.len(), |e| start + 1 + e);
    let limits = &spec[start..end];
    let mut caps = Vec::new();
    for krate in ["keys", "release", "updater", "agent"] {
        caps_in(&root.join(krate).join("src"), &mut caps);
    }
    assert!(caps.len() > 20, "found only {caps:?}");
    let missing: Vec<_> = caps
        .iter()
        .filter(|(name, _)| {
            !limits.contains(&format!("`{name}`")) && !limits.contains(&format!("::{name}`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "caps missing from docs/SPEC.md §7: {missing:?}"
    );
}
