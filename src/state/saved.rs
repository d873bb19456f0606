//! The state file (`state-file:`): the maintenance flags and drains set through the admin
//! API, kept across restarts. Written whole after every change, to a temporary file that
//! is then renamed over the old one, so that a crash leaves either the old or the new file;
//! read once at start-up. A missing file means nothing was set; a broken one is logged and
//! ignored (the server starts with every member as its checks say).

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What is kept of one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct SavedMember {
    pub(super) name: String,
    pub(super) address: IpAddr,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) maintenance: bool,
    /// Unix time a drain began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) draining_since: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Saved {
    /// The format's version: 1.
    pub(super) version: u32,
    pub(super) members: Vec<SavedMember>,
    /// The SOA serials served, so that they keep growing (see `serials`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) serials: Vec<super::serials::SavedSerial>,
}

/// Reads the state file; `Ok(None)` when there is none.
pub(super) fn read(path: &Path) -> Result<Option<Saved>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let saved: Saved = serde_json::from_str(&text)
        .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
    if saved.version != 1 {
        return Err(format!(
            "{}: version {} is not one this Meridian reads (1)",
            path.display(),
            saved.version
        ));
    }
    Ok(Some(saved))
}

/// Replaces the state file with `members` and `serials`, atomically.
pub(super) fn write(
    path: &Path,
    members: Vec<SavedMember>,
    serials: Vec<super::serials::SavedSerial>,
) -> std::io::Result<()> {
    let saved = Saved {
        version: 1,
        members,
        serials,
    };
    let mut text = serde_json::to_string_pretty(&saved).map_err(std::io::Error::other)?;
    text.push('\n');
    // A bare file name has an empty parent: the current directory.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir, path)?;
    let result = (|| {
        tmp.1.write_all(text.as_bytes())?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, path)?;
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp.0);
    }
    result
}

/// A new file beside `path`, named after it and this process.
fn tempfile_in(dir: &Path, path: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let name = path
        .file_name()
        .map_or("state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    Ok((tmp, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_and_names_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(read(&path).unwrap().map(|s| s.members.len()), None);
        let m = SavedMember {
            name: "vault.kemp.local.".into(),
            address: "192.0.2.1".parse().unwrap(),
            maintenance: true,
            draining_since: None,
        };
        write(&path, vec![m.clone()], Vec::new()).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().members, vec![m]);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&path, "{\"version\": 1, \"members\": [{]}").unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.starts_with(&format!("{}:1:", path.display())), "{err}");
    }
}
