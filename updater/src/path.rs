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
