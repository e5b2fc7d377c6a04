//! [`FileCheckpointStore`]: the checkpoint as one JSON file, replaced atomically.
//!
//! Consumes a [`CheckpointState`] and produces a file that is, at every instant, either the previous
//! complete checkpoint or the new complete one: the new content goes to `<path>.tmp.<pid>`, is
//! fsynced, renamed over `<path>`, and the directory is fsynced so the rename survives a power loss.
//! A crash mid-write leaves at most a stray temporary file, which the next save overwrites.
//! Saves are counted (`checkpoint_writes`) by the [`super::Checkpointer`], so every store is measured
//! the same way.

use super::{CHECKPOINT_VERSION, CheckpointError, CheckpointState, CheckpointStore};
use async_trait::async_trait;
use serde::Deserialize;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A checkpoint kept in a local file (a persistent volume on Kubernetes).
#[derive(Debug)]
pub struct FileCheckpointStore {
    path: PathBuf,
    /// Saves share one temporary file name, so they must not overlap.
    save_lock: tokio::sync::Mutex<()>,
}

impl FileCheckpointStore {
    /// A store writing to `path`; its parent directory is created on the first save if missing.
    pub fn new(path: impl Into<PathBuf>) -> FileCheckpointStore {
        FileCheckpointStore {
            path: path.into(),
            save_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file a save writes before renaming it over the checkpoint.
    pub fn temp_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(OsString::from)
            .unwrap_or_else(|| OsString::from("checkpoint"));
        name.push(format!(".tmp.{}", std::process::id()));
        self.path.with_file_name(name)
    }
}

#[async_trait]
impl CheckpointStore for FileCheckpointStore {
    async fn load(&self) -> Result<Option<CheckpointState>, CheckpointError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read_checkpoint(&path))
            .await
            .map_err(|source| CheckpointError::Task {
                path: self.path.clone(),
                source,
            })?
    }

    async fn save(&self, state: &CheckpointState) -> Result<(), CheckpointError> {
        let mut bytes = serde_json::to_vec(state).map_err(|source| CheckpointError::Serialize {
            path: self.path.clone(),
            source,
        })?;
        bytes.push(b'\n');
        let _guard = self.save_lock.lock().await;
        let (path, tmp) = (self.path.clone(), self.temp_path());
        tokio::task::spawn_blocking(move || write_atomically(&path, &tmp, &bytes))
            .await
            .map_err(|source| CheckpointError::Task {
                path: self.path.clone(),
                source,
            })?
    }
}

/// Just the version, read before the rest so a future format gets a clear error, not a parse error.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

fn read_checkpoint(path: &Path) -> Result<Option<CheckpointState>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let probe: VersionProbe = serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    if probe.version != CHECKPOINT_VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            location: format!("checkpoint file {}", path.display()),
            found: probe.version,
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

fn write_atomically(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let err = |path: &Path, step: &'static str| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Write { path, step, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(err(&dir, "create directory"))?;

    let result = (|| {
        let mut file = std::fs::File::create(tmp).map_err(err(tmp, "write temporary file"))?;
        file.write_all(bytes).map_err(err(tmp, "write temporary file"))?;
        file.sync_all().map_err(err(tmp, "sync temporary file"))?;
        std::fs::rename(tmp, path).map_err(err(path, "rename"))
    })();
    if result.is_err() {
        // Best effort: the stray file is harmless and overwritten by the next save anyway.
        let _ = std::fs::remove_file(tmp);
        return result;
    }
    sync_dir(&dir).map_err(err(&dir, "sync directory"))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // Directories cannot be opened for syncing on this platform; the rename is as durable as it gets.
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::checkpoint::load_or_new;

    fn sample() -> CheckpointState {
        let mut s = CheckpointState::new("logs");
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        s.mark_started_at("p/b", Some("etag-b".into()), at);
        s.mark_done("p/", "p/a");
        s
    }

    #[tokio::test]
    async fn missing_file_loads_as_none_and_parent_is_created_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path().join("nested/deeper/checkpoint.json"));
        assert!(store.load().await.unwrap().is_none());
        store.save(&sample()).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(sample()));
        assert!(!store.temp_path().exists(), "the temporary file is renamed away");
    }

    #[tokio::test]
    async fn corrupt_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        std::fs::write(&path, b"{\"version\":1,\"bucket\":").unwrap();
        let err = FileCheckpointStore::new(&path).load().await.unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }

    #[tokio::test]
    async fn future_version_and_other_bucket_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        std::fs::write(&path, br#"{"version":2,"bucket":"logs","shape":"new"}"#).unwrap();
        let store = FileCheckpointStore::new(&path);
        let err = store.load().await.unwrap_err();
        assert!(
            matches!(err, CheckpointError::UnsupportedVersion { found: 2, .. }),
            "{err:?}"
        );

        store.save(&sample()).await.unwrap();
        let err = load_or_new(&store, "another-bucket").await.unwrap_err();
        assert!(matches!(err, CheckpointError::BucketMismatch { .. }), "{err:?}");
        assert_eq!(load_or_new(&store, "logs").await.unwrap(), sample());
    }

    #[tokio::test]
    async fn crash_mid_write_never_corrupts_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path().join("checkpoint.json"));
        store.save(&sample()).await.unwrap();

        // A crash after the temporary file was created but before the rename: a truncated copy.
        let full = serde_json::to_vec(&sample()).unwrap();
        std::fs::write(store.temp_path(), &full[..full.len() / 2]).unwrap();
        assert_eq!(
            store.load().await.unwrap(),
            Some(sample()),
            "the real file is untouched"
        );

        // An older run's leftover (another pid) with garbage in it is ignored too.
        let stray = dir.path().join("checkpoint.json.tmp.1");
        std::fs::write(&stray, b"garbage").unwrap();
        assert_eq!(store.load().await.unwrap(), Some(sample()));

        // The next save overwrites the truncated temporary file and succeeds.
        let mut next = sample();
        next.mark_done("p/", "p/b");
        store.save(&next).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(next));
        assert!(!store.temp_path().exists());
    }

    #[tokio::test]
    async fn failed_save_leaves_previous_checkpoint_intact() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path().join("checkpoint.json"));
        store.save(&sample()).await.unwrap();
        // A directory where the temporary file should go makes the write fail.
        std::fs::create_dir(store.temp_path()).unwrap();
        let err = store.save(&CheckpointState::new("logs")).await.unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::Write {
                    step: "write temporary file",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(store.load().await.unwrap(), Some(sample()));
    }
}
