//! `ArchivePath`: a path inside a release. Its constructor is the only door,
//! so a value of this type can never hold `..`, an absolute path, a NUL or
//! an empty component (docs/SPEC.md §6.2).

use std::fmt;
use std::path::{Component, Path};

use crate::{Error, Result};

/// A relative, normalized, UTF-8 path inside a release tree: components
/// separated by `/`, none empty, `.` or `..`, no NUL or backslash, each at
/// most 255 bytes, the whole at most `max_bytes`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArchivePath(String);

impl ArchivePath {
    /// Validates `s`.
    pub fn new(s: &str, max_bytes: usize) -> Result<Self> {
        let refuse = |reason| {
            Err(Error::UnsafePath {
                path: s.chars().take(300).collect(),
                reason,
            })
        };
        if s.is_empty() {
            return refuse("empty path");
        }
        if s.len() > max_bytes {
            return refuse("path too long");
        }
        if s.starts_with('/') {
            return refuse("absolute path");
        }
        if s.contains('\0') {
            return refuse("NUL byte in path");
        }
        if s.contains('\\') {
            return refuse("backslash in path");
        }
        if s.chars().any(char::is_control) {
            return refuse("control character in path");
        }
        for part in s.split('/') {
            match part {
                "" => return refuse("empty path component (`//` or trailing `/`)"),
                "." => return refuse("`.` component"),
                ".." => return refuse("`..` component"),
                p if p.len() > 255 => return refuse("path component longer than 255 bytes"),
                _ => {}
            }
        }
        Ok(ArchivePath(s.to_owned()))
    }

    /// From a relative file-system path (as found while walking a tree).
    pub fn from_relative(path: &Path, max_bytes: usize) -> Result<Self> {
        let Some(s) = path.to_str() else {
            return Err(Error::UnsafePath {
                path: path.to_string_lossy().into_owned(),
                reason: "not valid UTF-8",
            });
        };
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(Error::UnsafePath {
                path: s.to_owned(),
                reason: "not a plain relative path",
            });
        }
        Self::new(s, max_bytes)
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parent path, `None` at the top level.
    pub fn parent(&self) -> Option<&str> {
        self.0.rfind('/').map(|i| &self.0[..i])
    }

    /// Resolves a symlink target written in this link's directory, lexically,
    /// and returns the path it names inside the tree, or `None` when it
    /// leaves the tree (absolute, or `..` past the top).
    pub fn resolve_link_target(&self, target: &str) -> Option<String> {
        if target.is_empty() || target.starts_with('/') || target.contains('\0') {
            return None;
        }
        let mut stack: Vec<&str> = match self.parent() {
            Some(p) => p.split('/').collect(),
            None => Vec::new(),
        };
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    stack.pop()?;
                }
                p => stack.push(p),
            }
        }
        Some(stack.join("/"))
    }
}

/// Most symlinks followed while resolving one path (as the kernel's
/// MAXSYMLINKS).
const MAX_LINK_HOPS: usize = 40;

/// Resolves the target of the symlink at `link` as the kernel would inside
/// a chroot at the tree's top, following the other symlinks of the tree
/// (`links`: path -> target) through every component. Returns the path it
/// ends at, or `None` when any step leaves the tree (an absolute target, a
/// `..` above the top, even through another link) or when links loop.
/// This catches chains that each look harmless alone: `a/u -> ..` with
/// `a/v -> u/..` escapes although both targets resolve lexically inside.
pub fn resolve_in_tree(
    link: &ArchivePath,
    target: &str,
    links: &std::collections::BTreeMap<&str, &str>,
) -> Option<String> {
    let mut stack: Vec<String> = link
        .parent()
        .map(|p| p.split('/').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut pending: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let push_target = |pending: &mut std::collections::VecDeque<String>, t: &str| -> Option<()> {
        if t.is_empty() || t.starts_with('/') || t.contains('\0') {
            return None;
        }
        for (i, c) in t.split('/').enumerate() {
            pending.insert(i, c.to_owned());
        }
        Some(())
    };
    push_target(&mut pending, target)?;
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            _ => {
                stack.push(c);
                let here = stack.join("/");
                if let Some(t) = links.get(here.as_str()) {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return None;
                    }
                    stack.pop();
                    push_target(&mut pending, t)?;
                }
            }
        }
    }
    Some(stack.join("/"))
}

impl fmt::Display for ArchivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ArchivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArchivePath({:?})", self.0)
    }
}

impl serde::Serialize for ArchivePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ArchivePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ArchivePath::new(&s, 4096).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_escape() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
            "a\\b",
            ".",
            "..",
        ] {
            assert!(ArchivePath::new(bad, 4096).is_err(), "{bad:?} accepted");
        }
        assert!(ArchivePath::new(&"a".repeat(256), 4096).is_err());
        assert!(ArchivePath::new("a/b", 2).is_err());
    }

    #[test]
    fn accepts_plain_paths() {
        for good in ["a", "bin/panel", ".hidden/x", "a..b", "..a"] {
            assert_eq!(ArchivePath::new(good, 4096).unwrap().as_str(), good);
        }
    }

    #[test]
    fn chained_links_cannot_escape() {
        let mut links = std::collections::BTreeMap::new();
        links.insert("a/u", "..");
        links.insert("a/v", "u/..");
        let v = ArchivePath::new("a/v", 4096).unwrap();
        assert_eq!(
            v.resolve_link_target("u/..").as_deref(),
            Some("a"),
            "lexically harmless"
        );
        assert_eq!(
            resolve_in_tree(&v, "u/..", &links),
            None,
            "but escapes through a/u"
        );
        let u = ArchivePath::new("a/u", 4096).unwrap();
        assert_eq!(resolve_in_tree(&u, "..", &links).as_deref(), Some(""));
        // A loop is refused.
        let mut looped = std::collections::BTreeMap::new();
        looped.insert("x", "y");
        looped.insert("y", "x");
        let x = ArchivePath::new("x", 4096).unwrap();
        assert_eq!(resolve_in_tree(&x, "y", &looped), None);
        // Ordinary chains resolve.
        let mut ok = std::collections::BTreeMap::new();
        ok.insert("bin/tool", "../lib/tool");
        ok.insert("lib/tool", "real/tool");
        let t = ArchivePath::new("bin/tool", 4096).unwrap();
        assert_eq!(
            resolve_in_tree(&t, "../lib/tool", &ok).as_deref(),
            Some("lib/real/tool")
        );
    }

    #[test]
    fn control_characters_refused() {
        assert!(ArchivePath::new("a\nb", 4096).is_err());
        assert!(ArchivePath::new("a\u{7f}", 4096).is_err());
    }

    #[test]
    fn link_targets_resolve_lexically() {
        let p = ArchivePath::new("bin/tool", 4096).unwrap();
        assert_eq!(p.resolve_link_target("../lib/x").as_deref(), Some("lib/x"));
        assert_eq!(p.resolve_link_target("other").as_deref(), Some("bin/other"));
        assert_eq!(p.resolve_link_target("../../etc/passwd"), None);
        assert_eq!(p.resolve_link_target("/etc/passwd"), None);
        let top = ArchivePath::new("link", 4096).unwrap();
        assert_eq!(top.resolve_link_target(".."), None);
    }
}
