//! [`LocalDirSink`]: dead-letter lines appended to files in a local directory.
//!
//! Consumes batches of [`DeadLetterEntry`]s and produces `dead-letter-<UTC yyyymmddThhmmss>-<pid>.jsonl`
//! files (mode 0600 on unix) in the configured directory, one per worker run, rotated to a new file
//! once the current one has reached [`DEFAULT_MAX_FILE_BYTES`]. Every `write` ends with `sync_data`, so
//! a returned `Ok` means the lines are on disk. The blocking I/O runs on tokio's blocking pool.

use super::{DeadLetterEntry, DeadLetterError, DeadLetterSink, encode_lines};
use async_trait::async_trait;
use chrono::Utc;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Size past which the next write goes to a new file: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Appends dead-letter lines to rotating files in one directory.
#[derive(Debug)]
pub struct LocalDirSink {
    dir: PathBuf,
    max_file_bytes: u64,
    current: Arc<tokio::sync::Mutex<Option<OpenFile>>>,
}

#[derive(Debug)]
struct OpenFile {
    path: PathBuf,
    file: File,
    size: u64,
}

impl LocalDirSink {
    /// A sink writing into `dir`, created (with parents) on the first write if missing. No file is
    /// created until there is something to write.
    pub fn new(dir: impl Into<PathBuf>) -> LocalDirSink {
        LocalDirSink {
            dir: dir.into(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            current: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Rotates at `bytes` instead of [`DEFAULT_MAX_FILE_BYTES`].
    pub fn with_max_file_bytes(mut self, bytes: u64) -> LocalDirSink {
        self.max_file_bytes = bytes.max(1);
        self
    }

    /// The directory the files are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl DeadLetterSink for LocalDirSink {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), DeadLetterError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        encode_lines(entries, Utc::now(), &mut buf)?;
        let mut current = self.current.clone().lock_owned().await;
        let (dir, max) = (self.dir.clone(), self.max_file_bytes);
        tokio::task::spawn_blocking(move || append(&mut current, &dir, max, &buf)).await?
    }
}

fn append(current: &mut Option<OpenFile>, dir: &Path, max: u64, buf: &[u8]) -> Result<(), DeadLetterError> {
    if current.as_ref().is_none_or(|f| f.size >= max) {
        *current = Some(open_new(dir)?);
    }
    let Some(open) = current.as_mut() else {
        return Ok(());
    };
    let result = open.file.write_all(buf).and_then(|()| open.file.sync_data());
    if let Err(source) = result {
        // A partial line may be on disk: start a fresh file next time so every file stays parseable
        // up to its last complete line.
        let path = open.path.clone();
        *current = None;
        return Err(DeadLetterError::Write { path, source });
    }
    open.size += buf.len() as u64;
    Ok(())
}

fn open_new(dir: &Path) -> Result<OpenFile, DeadLetterError> {
    std::fs::create_dir_all(dir).map_err(|source| DeadLetterError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let stem = format!(
        "dead-letter-{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id()
    );
    // A rotation within the same second, or a restarted container that got the same pid, must not
    // append to another file: take the first free name.
    let mut n = 0u32;
    loop {
        let name = if n == 0 {
            format!("{stem}.jsonl")
        } else {
            format!("{stem}-{n}.jsonl")
        };
        let path = dir.join(name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(file) => return Ok(OpenFile { path, file, size: 0 }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
            Err(source) => return Err(DeadLetterError::Open { path, source }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterLine;
    use crate::dead_letter::tests::entry;

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    fn lines(paths: &[PathBuf]) -> Vec<DeadLetterLine> {
        paths
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn appends_parseable_lines_to_one_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDirSink::new(dir.path().join("dl"));
        sink.write(&[]).await.unwrap();
        assert!(
            !dir.path().join("dl").exists(),
            "nothing to write creates nothing"
        );

        sink.write(&[
            entry("parse", "k1", b"line one"),
            entry("oversize", "k2", &[0xc3, 0x28]),
        ])
        .await
        .unwrap();
        sink.write(&[entry("rejected", "k3", b"three")]).await.unwrap();
        let paths = files(&dir.path().join("dl"));
        assert_eq!(paths.len(), 1);
        let name = paths[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("dead-letter-") && name.ends_with(&format!("-{}.jsonl", std::process::id())),
            "{name}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&paths[0]).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let got = lines(&paths);
        assert_eq!(
            got.iter().map(|l| l.source.key.as_str()).collect::<Vec<_>>(),
            ["k1", "k2", "k3"]
        );
        assert_eq!(got[0].raw.as_deref(), Some("line one"));
        assert_eq!(got[1].raw_bytes().unwrap(), [0xc3, 0x28]);
        assert!(got[1].raw_base64.is_some());
    }

    #[tokio::test]
    async fn rotates_past_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDirSink::new(dir.path()).with_max_file_bytes(200);
        for i in 0..5 {
            sink.write(&[entry("parse", &format!("k{i}"), &[b'x'; 150])])
                .await
                .unwrap();
        }
        let paths = files(dir.path());
        assert_eq!(
            paths.len(),
            5,
            "every write found the previous file past 200 bytes: {paths:?}"
        );
        let got = lines(&paths);
        let mut keys: Vec<_> = got.iter().map(|l| l.source.key.clone()).collect();
        keys.sort();
        assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
    }
}
