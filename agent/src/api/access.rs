//! Who may use the local API beyond the listed uids: members of the
//! allowed groups, read from the group and passwd files and re-read as
//! soon as either changes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Largest `/etc/group` or `/etc/passwd` read.
const MAX_DB_BYTES: u64 = 64 << 20;

fn read_db(path: &Path) -> Vec<Vec<String>> {
    charter_keys::fsutil::read_capped(path, MAX_DB_BYTES, "a user or group database")
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect())
        .collect()
}

/// What identifies one version of a file: device, inode, size, and
/// modification and change times. `usermod` replaces `/etc/group` by a
/// rename (a new inode); an edit in place changes the times.
type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

/// Seconds a group or passwd file must have been unchanged before its
/// stamp alone is trusted.
const RACY_SECS: i64 = 2;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// Who the allowed groups admit, from the group and passwd files
/// (`api.group_file`, `api.passwd_file`). Checked against the files'
/// stamps for every connection and re-read when either changed (or
/// changed in the last [`RACY_SECS`] seconds), so a user
/// added to a group is admitted at once, without a restart, and one
/// removed is refused at once. A file that cannot be read admits nobody
/// through it.
#[derive(Debug)]
pub struct Membership {
    groups: Vec<String>,
    group_file: PathBuf,
    passwd_file: PathBuf,
    stamps: (Stamp, Stamp),
    racy: bool,
    allowed_gids: BTreeSet<u32>,
    group_members: BTreeSet<String>,
    users: HashMap<u32, String>,
}

impl Membership {
    /// Reads the members of `groups` from the two files.
    pub fn load(groups: &[String], group_file: &Path, passwd_file: &Path) -> Self {
        let mut m = Membership {
            groups: groups.to_vec(),
            group_file: group_file.to_owned(),
            passwd_file: passwd_file.to_owned(),
            stamps: (None, None),
            racy: true,
            allowed_gids: BTreeSet::new(),
            group_members: BTreeSet::new(),
            users: HashMap::new(),
        };
        m.read();
        m
    }

    fn read(&mut self) {
        // Stamps first: a change during the read is seen next time.
        self.stamps = (stamp(&self.group_file), stamp(&self.passwd_file));
        // File times are coarse (a clock tick): a file changed within the
        // last seconds may change again without its stamp moving, so it is
        // read again until it has been still for RACY_SECS (as git does).
        let now = jiff::Timestamp::now().as_second();
        self.racy = [self.stamps.0, self.stamps.1]
            .iter()
            .any(|s| s.is_none_or(|s| s.3 >= now - RACY_SECS));
        self.allowed_gids.clear();
        self.group_members.clear();
        for g in read_db(&self.group_file) {
            if g.len() >= 4 && self.groups.contains(&g[0]) {
                if let Ok(gid) = g[2].parse() {
                    self.allowed_gids.insert(gid);
                }
                self.group_members
                    .extend(g[3].split(',').filter(|m| !m.is_empty()).map(str::to_owned));
            }
        }
        self.users = read_db(&self.passwd_file)
            .into_iter()
            .filter_map(|u| Some((u.get(2)?.parse().ok()?, u.first()?.clone())))
            .collect();
    }

    /// Re-reads the files when either changed since the last read.
    pub fn refresh(&mut self) {
        if self.groups.is_empty() {
            return;
        }
        if self.racy || (stamp(&self.group_file), stamp(&self.passwd_file)) != self.stamps {
            self.read();
        }
    }

    /// Whether a peer with this uid and gid is in an allowed group: by its
    /// gid, or by its user name in the group's member list.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        self.allowed_gids.contains(&gid)
            || self
                .users
                .get(&uid)
                .is_some_and(|name| self.group_members.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 12, item 6): group membership was read once at
    /// start, so a user added to an allowed group (`usermod -aG`) was
    /// refused until the agent restarted. Both ways `usermod` and an editor
    /// change the file (a rename; an edit in place) are seen at once.
    #[test]
    fn group_added_after_start_is_allowed_without_restart() {
        let d = tempfile::tempdir().unwrap();
        let (group, passwd) = (d.path().join("group"), d.path().join("passwd"));
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\npanel:x:2001:2001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(&group, "charter-update:x:1500:\npanel:x:2001:\n").unwrap();
        let mut m = Membership::load(&["charter-update".into()], &group, &passwd);
        assert!(!m.allows(2001, 2001));
        assert!(m.allows(4242, 1500), "by gid");
        // usermod -aG charter-update panel: a new file renamed into place.
        let tmp = d.path().join("group+");
        std::fs::write(&tmp, "charter-update:x:1500:panel\npanel:x:2001:\n").unwrap();
        std::fs::rename(&tmp, &group).unwrap();
        m.refresh();
        assert!(m.allows(2001, 2001), "{m:?}");
        // gpasswd -d, edited in place: same inode, same size.
        std::fs::write(&group, "charter-update:x:1500:panee\npanel:x:2001:\n").unwrap();
        m.refresh();
        assert!(!m.allows(2001, 2001), "{m:?}");
        // A user renamed in passwd is seen too.
        std::fs::write(&passwd, "panee:x:2001:2001::/:/bin/sh\n").unwrap();
        m.refresh();
        assert!(m.allows(2001, 2001), "{m:?}");
        // A group file that is gone admits nobody through it.
        std::fs::remove_file(&group).unwrap();
        m.refresh();
        assert!(!m.allows(2001, 2001) && !m.allows(4242, 1500));
    }
}
