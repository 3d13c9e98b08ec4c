//! The server's one writer of its data directory, shared by every front that
//! appends: the pgwire INSERT and COPY and the HTTP webhooks and events
//! endpoint. The data directory's lock admits one [`Appender`] per process
//! as well as per directory, so they must share this one.
//!
//! **Group commit.** Appends queue up for one committer task. While it makes
//! a batch durable, the appends that arrive wait; the next batch takes all of
//! them as one commit (one fsync of each file, one Delta commit, one
//! read-model update instead of one each), so many small writers share the
//! cost of durability. Each request keeps its own inputs in the commit: its
//! counts and rejected rows are reported to it alone, and it is answered only
//! once the commit holding its rows is durable. A batch of several that fails
//! is tried again one request at a time, so a failure is only ever reported
//! to the requests it belongs to (appends are idempotent by `event_id`, so a
//! retry never stores an event twice).
//!
//! When the last batch was larger than what is waiting now, the committer
//! waits a moment (at most [`GATHER`], and a quarter of the last batch's
//! time) for the rest: writers answered by the last commit are sending their
//! next request. Taken at once, the one or two already waiting would be a
//! commit of their own, costing almost what a full batch costs, and the
//! batches would alternate between nearly all writers and one (PostgreSQL's
//! `commit_delay` waits for the same reason). A lone writer never waits.
//!
//! The writer is opened on the first append and kept while appends keep
//! coming; it is released after a quiet second so that `leadline ingest` can
//! take the lock in between.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use leadline_engine::input::InputRow;
use leadline_engine::{AppendReport, Appender, Error, Result};
use tokio::sync::{mpsc, oneshot};

use crate::telemetry;

/// How long an idle writer keeps the data directory's lock.
const KEEP_IDLE: Duration = Duration::from_secs(1);
/// The longest the committer waits for the writers of the last batch.
const GATHER: Duration = Duration::from_millis(10);

/// One input of an append: its source (how its rejected rows are named) and rows.
pub type Input = (String, Vec<InputRow>);

pub struct SharedWriter {
    dir: PathBuf,
    /// The committer's queue, started by the first request (in the runtime).
    queue: OnceLock<mpsc::UnboundedSender<Request>>,
}

/// What a request asks of the committer.
enum Work {
    /// Inputs to append as one commit (or within one), named `source`.
    Append { source: String, inputs: Vec<Input> },
    /// Only that the writer be open.
    Ready,
    /// That the read model be up to date with the log (and the data
    /// directory in this release's formats: opening the writer converts them).
    CatchUp,
}

struct Request {
    work: Work,
    reply: oneshot::Sender<Result<AppendReport>>,
}

impl SharedWriter {
    pub fn new(dir: PathBuf) -> Arc<Self> {
        Arc::new(Self { dir, queue: OnceLock::new() })
    }

    /// Appends `inputs` as one atomic commit (shared with other requests'
    /// appends waiting at the same time) and answers once it is durable,
    /// with what became of these inputs' rows only. Counts it under
    /// `source`'s kind (its first word: `INSERT`, `COPY`, `github`, …) for
    /// `/metrics`.
    pub async fn append(self: &Arc<Self>, source: &str, inputs: Vec<Input>) -> Result<AppendReport> {
        let result = self.ask(Work::Append { source: source.to_string(), inputs }).await;
        match &result {
            Ok(report) => telemetry::global().appended(source, report),
            Err(e) => telemetry::global().append_failed(source, e),
        }
        result
    }

    /// Whether an append could start now: the writer is open (or opens),
    /// i.e. no other process holds the data directory's lock.
    pub async fn ready(self: &Arc<Self>) -> Result<()> {
        self.ask(Work::Ready).await.map(|_| ())
    }

    /// Brings the read model up to date with the log, as an append would
    /// (the server asks once at start).
    pub async fn catch_up(self: &Arc<Self>) -> Result<()> {
        self.ask(Work::CatchUp).await.map(|_| ())
    }

    async fn ask(self: &Arc<Self>, work: Work) -> Result<AppendReport> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(committer(self.dir.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        queue.send(Request { work, reply }).map_err(|_| Error::Internal("the writer has stopped".into()))?;
        answer.await.map_err(|_| Error::Internal("the writer stopped before answering".into()))?
    }
}

/// The committer: takes every request waiting, commits them as one batch
/// (off the async workers), answers each, and releases the writer after a
/// quiet second. Ends when the server drops its [`SharedWriter`].
async fn committer(dir: PathBuf, mut queue: mpsc::UnboundedReceiver<Request>) {
    let mut appender: Option<Appender> = None;
    // The last batch's size and how long it took.
    let mut last = (0usize, Duration::ZERO);
    loop {
        let first = if appender.is_some() {
            match tokio::time::timeout(KEEP_IDLE, queue.recv()).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(_) => {
                    // Off the async workers: closing waits for the files
                    // its last update let go to be deleted.
                    if let Some(idle) = appender.take() {
                        let _ = tokio::task::spawn_blocking(move || drop(idle)).await;
                    }
                    continue;
                }
            }
        } else {
            match queue.recv().await {
                Some(r) => r,
                None => return,
            }
        };
        let mut works = vec![first.work];
        let mut replies = vec![first.reply];
        while let Ok(r) = queue.try_recv() {
            works.push(r.work);
            replies.push(r.reply);
        }
        if let Some(wait) = gather_for(works.len(), last) {
            let until = tokio::time::Instant::now() + wait;
            while works.len() < last.0 {
                let Ok(Some(r)) = tokio::time::timeout_at(until, queue.recv()).await else { break };
                works.push(r.work);
                replies.push(r.reply);
            }
        }
        let started = std::time::Instant::now();
        last.0 = works.len();
        let dir = dir.clone();
        let mut taken = appender.take();
        let done = tokio::task::spawn_blocking(move || {
            let answers = commit(&dir, &mut taken, works);
            (taken, answers)
        })
        .await;
        last.1 = started.elapsed();
        match done {
            Ok((kept, answers)) => {
                appender = kept;
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // The requester may have gone (its client hung up): nothing to tell.
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                // A bug: every request of the batch gets an error (the writer is
                // opened afresh next time), none hangs.
                tracing::error!(error = %e, "the writer panicked");
                for reply in replies {
                    let _ = reply.send(Err(Error::Internal("the append failed unexpectedly (a bug, logged)".into())));
                }
            }
        }
    }
}

/// How long a batch of `waiting` requests waits for more, given the last
/// batch's size and time (see the module doc): not at all when no fewer
/// are waiting than the last batch held.
fn gather_for(waiting: usize, (size, took): (usize, Duration)) -> Option<Duration> {
    (waiting < size).then(|| GATHER.min(took / 4))
}

/// Opens the writer if it is not open.
fn open<'a>(dir: &Path, appender: &'a mut Option<Appender>) -> Result<&'a mut Appender> {
    if appender.is_none() {
        *appender = Some(Appender::open(dir, "leadline serve")?);
    }
    appender.as_mut().ok_or_else(|| Error::Internal("the writer is gone".into()))
}

/// One request on its own; a failed append leaves the writer to be opened
/// afresh (it may have failed mid-way).
fn commit_one(dir: &Path, appender: &mut Option<Appender>, work: Work) -> Result<AppendReport> {
    let a = open(dir, appender)?;
    let (source, inputs) = match work {
        Work::Append { source, inputs } => (source, inputs),
        Work::Ready => return Ok(AppendReport::default()),
        Work::CatchUp => {
            let started = std::time::Instant::now();
            let version = a.catch_up(false)?;
            tracing::info!(?version, took = ?started.elapsed(), "the read model is up to date with the log");
            return Ok(AppendReport::default());
        }
    };
    let inputs = inputs.into_iter().map(|(s, rows)| (s, rows.into_iter().map(Ok)));
    let result = a.append_inputs(&source, inputs, &mut |_| {});
    if result.is_err() {
        *appender = None;
    }
    result
}

/// A batch's answers, one per request in order.
fn commit(dir: &Path, appender: &mut Option<Appender>, works: Vec<Work>) -> Vec<Result<AppendReport>> {
    let appends = works.iter().filter(|w| matches!(w, Work::Append { .. })).count();
    if appends <= 1 || open(dir, appender).is_err() {
        return works.into_iter().map(|w| commit_one(dir, appender, w)).collect();
    }
    match commit_together(appender, &works) {
        Ok(answers) => answers,
        Err(e) => {
            tracing::warn!(error = %e, requests = appends, "a group commit failed; its requests are tried one by one");
            *appender = None;
            works.into_iter().map(|w| commit_one(dir, appender, w)).collect()
        }
    }
}

/// Every request's inputs as one commit (the rows are copied as they are
/// read, so they are still there to be tried again alone); each request's
/// report is its own inputs' share.
fn commit_together(appender: &mut Option<Appender>, works: &[Work]) -> Result<Vec<Result<AppendReport>>> {
    let a = appender.as_mut().ok_or_else(|| Error::Internal("the writer is gone".into()))?;
    let appends: Vec<(&String, &Vec<Input>)> = works
        .iter()
        .filter_map(|w| match w {
            Work::Append { source, inputs } => Some((source, inputs)),
            Work::Ready | Work::CatchUp => None,
        })
        .collect();
    let mut sources: Vec<&str> = appends.iter().map(|(s, _)| s.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let more = if sources.len() > 5 { format!(" and {} more", sources.len() - 5) } else { String::new() };
    let named = sources.iter().take(5).copied().collect::<Vec<_>>().join("; ");
    let commit_source = format!("group commit of {} appends: {named}{more}", appends.len());
    let inputs =
        appends.iter().flat_map(|(_, inputs)| inputs.iter().map(|(s, rows)| (s, rows.iter().cloned().map(Ok))));
    let report = a.append_inputs(&commit_source, inputs, &mut |_| {})?;
    let mut shares = report.inputs.iter();
    let mut compacted = report.compacted;
    let answers = works
        .iter()
        .map(|w| {
            let Work::Append { inputs, .. } = w else { return Ok(AppendReport::default()) };
            let mut own = AppendReport {
                version: report.version,
                ingested_at: report.ingested_at,
                // Counted once, for the first request.
                compacted: std::mem::take(&mut compacted),
                ..Default::default()
            };
            for share in shares.by_ref().take(inputs.len()) {
                own.appended += share.appended;
                own.duplicates += share.duplicates;
                own.conflicts += share.conflicts;
                own.rejected += share.rejected;
                own.first_rejections.extend(share.first_rejections.iter().cloned());
                own.inputs.push(share.clone());
            }
            Ok(own)
        })
        .collect();
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadline_engine::event::RejectionKind;
    use leadline_engine::input::ndjson_rows;

    fn rows(lines: &[String]) -> Vec<InputRow> {
        ndjson_rows(std::io::Cursor::new(lines.join("\n").into_bytes())).map(|r| r.unwrap()).collect()
    }

    fn commit_event(id: &str, sha: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","event_type":"commit","occurred_at":"2026-03-09T09:00:00Z","service":"s","commit_sha":"{sha}"}}"#
        )
    }

    fn insert(by: &str, lines: &[String]) -> Work {
        let source = format!("INSERT by {by}");
        Work::Append { source: source.clone(), inputs: vec![(source, rows(lines))] }
    }

    fn versions(dir: &Path) -> Option<u64> {
        leadline_engine::EventLog::open(dir).unwrap().snapshot().unwrap().version
    }

    #[test]
    fn a_batch_waits_for_the_last_batchs_writers_only_when_fewer_wait_and_briefly() {
        let ms = Duration::from_millis;
        // A lone writer, or as many waiting as the last batch held: no wait.
        assert_eq!(gather_for(1, (1, ms(40))), None);
        assert_eq!(gather_for(50, (49, ms(120))), None);
        // One waiting after a batch of 49: a quarter of its time, at most GATHER.
        assert_eq!(gather_for(1, (49, ms(120))), Some(GATHER));
        assert_eq!(gather_for(1, (49, ms(20))), Some(ms(5)));
    }

    #[test]
    fn a_batch_is_one_commit_and_each_request_hears_of_its_own_rows_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = None;
        let a = insert("a", &[commit_event("a1", "1"), r#"{"event_id":"a-bad","event_type":"commit"}"#.into()]);
        let b = insert("b", &[commit_event("b1", "2"), commit_event("a1", "9"), commit_event("b1", "2")]);
        let answers = commit(dir.path(), &mut appender, vec![a, Work::Ready, b]);
        let [a, ready, b] = <[_; 3]>::try_from(answers).unwrap().map(Result::unwrap);
        assert!(a.version.is_some() && a.version == b.version, "one commit for the batch");
        assert_eq!(versions(dir.path()), a.version);
        assert_eq!((a.appended, a.duplicates, a.conflicts, a.rejected), (1, 0, 0, 1));
        assert_eq!((b.appended, b.duplicates, b.conflicts, b.rejected), (1, 1, 1, 0));
        assert_eq!(ready, AppendReport::default());
        let seen = |r: &AppendReport| {
            r.first_rejections.iter().map(|j| (j.source.clone(), j.line, j.kind)).collect::<Vec<_>>()
        };
        assert_eq!(seen(&a), [("INSERT by a".to_string(), 2, RejectionKind::Invalid)]);
        assert_eq!(seen(&b), [("INSERT by b".to_string(), 2, RejectionKind::Conflict)]);
        // Alone, a request is its own commit, as before.
        let c = insert("c", &[commit_event("c1", "3")]);
        let [c] = <[_; 1]>::try_from(commit(dir.path(), &mut appender, vec![c])).unwrap().map(Result::unwrap);
        assert_eq!((c.appended, c.version), (1, a.version.map(|v| v + 1)));
    }

    #[test]
    fn a_batch_that_cannot_open_the_writer_fails_each_request_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Appender::open(dir.path(), "another writer").unwrap();
        let mut appender = None;
        let works = vec![insert("a", &[commit_event("a1", "1")]), insert("b", &[commit_event("b1", "2")])];
        let answers = commit(dir.path(), &mut appender, works);
        assert_eq!(answers.len(), 2);
        assert!(answers.iter().all(|r| matches!(r, Err(Error::Locked { .. }))), "{answers:?}");
        assert!(appender.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_all_answered_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SharedWriter::new(dir.path().to_path_buf());
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .append(
                            "INSERT by t",
                            vec![("INSERT by t".into(), rows(&[commit_event(&format!("t{i}"), "1")]))],
                        )
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().appended, 1);
        }
        let commits = versions(dir.path()).unwrap() + 1;
        assert!(commits <= 40, "{commits} commits");
        let stored = leadline_engine::EventLog::open(dir.path()).unwrap().snapshot().unwrap();
        assert_eq!(stored.appends.iter().map(|a| a.appended).sum::<u64>(), 40);
    }
}
