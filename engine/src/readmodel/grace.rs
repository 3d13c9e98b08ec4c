//! Files the read model no longer names wait out a grace period before they
//! are deleted: queries and Delta readers still on an older model or table
//! version may be reading them.
//!
//! They are listed in `model/LET_GO`, one JSON line per update that let
//! files go, appended rather than rewritten. (The manifest, which every
//! update writes whole, used to carry them: under a steady stream of
//! appends, ten minutes of let-go files grew it several times over.) Once
//! at least half the lines are past the grace period, their files are
//! deleted and the list is written again without them.
//!
//! The list is not fsynced: only a crash of the machine loses its last
//! lines, and then no reader survives to read their files, which the next
//! writer's sweep deletes as named by nothing. A line that cannot be read
//! (cut short by such a crash) is skipped the same way.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::GRACE_MS;
use crate::error::{Error, Result};
use crate::log::delta::write_atomic;

const FILE: &str = "LET_GO";

/// The files one update let go, and when.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Line {
    /// Milliseconds since the epoch.
    at: i64,
    /// Files under `model/` (as the manifest names them: `input/…`).
    model: Vec<String>,
    /// Files of the published tables (`tables/<table>/<id>.parquet`).
    tables: Vec<String>,
}

impl Line {
    /// Its text in the list. Each line starts with its line break, so that
    /// one appended after a line cut short is a line of its own.
    fn text(&self) -> Result<String> {
        let json = serde_json::to_string(self).map_err(|e| Error::Internal(format!("let-go list: {e}")))?;
        Ok(format!("\n{json}"))
    }
}

/// The list as its writer keeps it between updates.
#[derive(Debug, Default)]
pub(super) struct LetGo {
    lines: Vec<Line>,
}

impl LetGo {
    /// The list under model directory `dir` (empty if there is none).
    pub fn read(dir: &Path) -> LetGo {
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap_or_default();
        LetGo { lines: text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect() }
    }

    /// Files under `model/` it lists.
    pub fn model_files(&self) -> impl Iterator<Item = &String> {
        self.lines.iter().flat_map(|l| &l.model)
    }

    /// Files of the published tables it lists.
    pub fn table_files(&self) -> impl Iterator<Item = &String> {
        self.lines.iter().flat_map(|l| &l.tables)
    }

    /// Lists `model` and `tables` as let go now.
    pub fn add(&mut self, dir: &Path, model: Vec<String>, tables: Vec<String>) -> Result<()> {
        if model.is_empty() && tables.is_empty() {
            return Ok(());
        }
        let line = Line { at: chrono::Utc::now().timestamp_millis(), model, tables };
        let text = line.text()?;
        let path = dir.join(FILE);
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        file.write_all(text.as_bytes()).map_err(|e| Error::io(&path, e))?;
        self.lines.push(line);
        Ok(())
    }

    /// Takes the files past the grace period (of data directory `root`,
    /// model directory `dir`) off the list once they are at least half of
    /// it, writes the list again without them, and returns them to be
    /// deleted. `named` gives the files the manifest names (under `model/`,
    /// of the tables), which are never deleted: an update whose manifest
    /// could not be written after it listed files leaves them named.
    pub fn expire(
        &mut self,
        root: &Path,
        dir: &Path,
        named: impl FnOnce() -> [BTreeSet<String>; 2],
    ) -> Result<Vec<PathBuf>> {
        let now = chrono::Utc::now().timestamp_millis();
        let expired = self.lines.iter().take_while(|l| now - l.at > GRACE_MS).count();
        if expired == 0 || expired * 2 < self.lines.len() {
            return Ok(Vec::new());
        }
        let kept = self.lines.split_off(expired);
        let text = kept.iter().map(Line::text).collect::<Result<String>>()?;
        // The list first: a crash before the files are deleted leaves files
        // no list names, which the next writer's sweep deletes.
        write_atomic(&dir.join(FILE), text.as_bytes())?;
        let [model, tables] = named();
        let mut gone = Vec::new();
        for line in std::mem::replace(&mut self.lines, kept) {
            gone.extend(line.model.iter().filter(|f| !model.contains(*f)).map(|f| dir.join(f)));
            gone.extend(line.tables.iter().filter(|f| !tables.contains(*f)).map(|f| root.join(f)));
        }
        Ok(gone)
    }
}

/// Lets files no model names any more go (kept as spares, see `spares`, or
/// deleted) off the update's path: an update
/// that deleted the let-go files of ten minutes (thousands; on a disk
/// mounted with `discard` each unlink waits for the device) kept the
/// appends waiting on it for seconds. One batch at a time; the next waits
/// for the last, and so does dropping it. Files a crash leaves undeleted
/// are named by nothing, and the next writer's sweep deletes them.
#[derive(Debug, Default)]
pub(super) struct Deleter {
    deleting: Option<std::thread::JoinHandle<()>>,
}

impl Deleter {
    /// Lets `paths` go: each is kept by `spares` or deleted.
    pub fn delete(&mut self, paths: Vec<PathBuf>, spares: &std::sync::Arc<super::spares::Spares>) {
        if paths.is_empty() {
            return;
        }
        self.wait();
        // Shared with the thread, so that they are still here if it cannot start.
        let paths = std::sync::Arc::new(paths);
        let spawned = std::thread::Builder::new().name("leadline-delete".into()).spawn({
            let (paths, spares) = (paths.clone(), spares.clone());
            move || paths.iter().for_each(|p| spares.give(p))
        });
        match spawned {
            Ok(thread) => self.deleting = Some(thread),
            // No thread to be had: let go here.
            Err(_) => paths.iter().for_each(|p| spares.give(p)),
        }
    }

    pub fn wait(&mut self) {
        if let Some(thread) = self.deleting.take()
            && thread.join().is_err()
        {
            tracing::warn!("deleting old read-model files failed; the next writer's sweep deletes them");
        }
    }
}

impl Drop for Deleter {
    fn drop(&mut self) {
        self.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_past_the_grace_period_go_once_they_are_half_the_list_unless_still_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, dir) = (tmp.path(), tmp.path().join("model"));
        for f in ["model/input/a", "model/input/b", "tables/t/x.parquet", "tables/t/y.parquet", "tables/t/z.parquet"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let mut list = LetGo::default();
        list.add(&dir, vec!["input/a".into(), "input/b".into()], vec!["tables/t/x.parquet".into()]).unwrap();
        list.add(&dir, vec![], vec![]).unwrap();
        // A line cut short by a crash is skipped; the others are read back.
        let mut file = std::fs::OpenOptions::new().append(true).open(dir.join(FILE)).unwrap();
        file.write_all(b"\n{\"at\":17,\"mod").unwrap();
        assert_eq!(LetGo::read(&dir).lines.len(), 1, "an empty letting-go writes no line");
        list.add(&dir, vec![], vec!["tables/t/y.parquet".into()]).unwrap();
        list.add(&dir, vec![], vec!["tables/t/z.parquet".into()]).unwrap();
        let named = || [BTreeSet::from(["input/b".to_string()]), BTreeSet::new()];
        // One line of three past the grace period: not yet half the list.
        list.lines[0].at -= GRACE_MS + 1;
        assert!(list.expire(root, &dir, named).unwrap().is_empty());
        assert!(root.join("model/input/a").exists() && LetGo::read(&dir).lines.len() == 3);
        // Two of three: their files go, but for one the manifest still names.
        list.lines[1].at -= GRACE_MS + 1;
        let gone = list.expire(root, &dir, named).unwrap();
        assert!(root.join("model/input/a").exists(), "returned, not deleted");
        let mut deleter = Deleter::default();
        let spares = std::sync::Arc::new(super::super::spares::Spares::open(&dir));
        deleter.delete(gone, &spares);
        deleter.wait();
        let exists = |f: &str| root.join(f).exists();
        assert!(!exists("model/input/a") && exists("model/input/b"));
        assert!(!exists("tables/t/x.parquet") && !exists("tables/t/y.parquet") && exists("tables/t/z.parquet"));
        let left = LetGo::read(&dir);
        assert_eq!(left.table_files().collect::<Vec<_>>(), ["tables/t/z.parquet"]);
        assert_eq!(left.model_files().count(), 0);
    }
}
