//! The journal: the one writer of member state per database. Callers send events on a bounded
//! channel; the writer takes what has queued (up to `batch_size_max`), commits it in one
//! database transaction (group commit), and only then answers each caller. Maintenance jobs
//! (expiry, tier review) run through the same writer, a chunk at a time between batches, so
//! nothing else ever writes a member's balance or lots.

use crate::batch::{self, Answer, Batch};
use crate::error::EventError;
use crate::jobs::{self, JobKind, JobReport};
use crate::members::{MergeReport, MergeRequest};
use crate::model::{EventResult, IncomingEvent};
use crate::{Store, StoreError};
use patron_core::time::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Limits of the journal.
#[derive(Clone, Copy, Debug)]
pub struct JournalConfig {
    /// Most events committed in one transaction.
    pub batch_size_max: usize,
    /// Most events waiting; senders wait when it is full (back-pressure).
    pub queue_length_max: usize,
    /// SQLite: the size past which the checkpoint thread empties the WAL file (`TRUNCATE`)
    /// instead of only copying its pages into the database (`PASSIVE`), so the WAL stays
    /// bounded however long the server runs and whatever readers do.
    pub wal_bytes_max: u64,
}

/// The WAL size past which it is truncated, unless configured: 64 MiB.
pub const WAL_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            batch_size_max: 1024,
            queue_length_max: 16_384,
            wal_bytes_max: WAL_BYTES_MAX_DEFAULT,
        }
    }
}

type Reply = oneshot::Sender<Answer>;

enum Message {
    Event(Box<IncomingEvent>, Reply),
    /// Events stored all or none, in a transaction of their own.
    Together(Vec<IncomingEvent>, oneshot::Sender<Vec<Answer>>),
    Job(
        JobKind,
        Timestamp,
        Option<String>,
        oneshot::Sender<Result<JobReport, StoreError>>,
    ),
    Merge(
        Box<MergeRequest>,
        oneshot::Sender<Result<MergeReport, StoreError>>,
    ),
    Stop,
}

/// A handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    sender: mpsc::Sender<Message>,
    metrics: Arc<JournalMetrics>,
}

/// Upper bounds of the batch-size histogram's buckets (events per committed batch).
pub const BATCH_SIZE_BUCKETS: [u64; 5] = [1, 8, 64, 256, 1024];

/// What the journal has done since it started, for `/metrics`.
#[derive(Debug, Default)]
pub struct JournalMetrics {
    pub events_accepted: AtomicU64,
    pub events_rejected: AtomicU64,
    pub batches: AtomicU64,
    /// Batches with at most `BATCH_SIZE_BUCKETS[i]` events (not cumulative), and the rest.
    pub batch_sizes: [AtomicU64; BATCH_SIZE_BUCKETS.len() + 1],
}

impl JournalMetrics {
    fn record(&self, answers: &[Result<EventResult, EventError>]) {
        let accepted = answers.iter().filter(|answer| answer.is_ok()).count() as u64;
        self.events_accepted.fetch_add(accepted, Ordering::Relaxed);
        self.events_rejected
            .fetch_add(answers.len() as u64 - accepted, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let size = answers.len() as u64;
        let bucket = BATCH_SIZE_BUCKETS
            .iter()
            .position(|bound| size <= *bound)
            .unwrap_or(BATCH_SIZE_BUCKETS.len());
        self.batch_sizes[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

impl Journal {
    /// Starts the writer task.
    pub fn start(store: Store, config: JournalConfig) -> (Journal, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(config.queue_length_max.max(1));
        let metrics = Arc::new(JournalMetrics::default());
        let journal = Journal {
            sender,
            metrics: Arc::clone(&metrics),
        };
        let connection = match store.open_writer_connection() {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "the journal writes through the pool: its own SQLite connection failed to open");
                None
            }
        };
        let Some(connection) = connection else {
            return (
                journal,
                tokio::spawn(writer(store, config, receiver, None, metrics)),
            );
        };
        // Checkpoints move the WAL into the database file. Left to SQLite they run inside the
        // commit that crosses the threshold, and that batch's callers wait (the p99 of
        // purchases over HTTP); a thread of their own does them beside the writer instead.
        let checkpoints = match connection.execute_batch("PRAGMA wal_autocheckpoint = 0") {
            Ok(()) => start_checkpoints(&store, config.wal_bytes_max),
            Err(error) => {
                tracing::warn!(%error, "SQLite checkpoints stay in the writer's commits");
                None
            }
        };
        // SQLite: the writer calls SQLite directly, blocking, so it gets a thread of its own.
        let (done, finished) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("patron-journal".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime builds");
                runtime.block_on(writer(store, config, receiver, Some(connection), metrics));
                if let Some(stop) = checkpoints {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = done.send(());
            });
        if let Err(error) = spawned {
            panic!("cannot start the journal thread: {error}");
        }
        let handle = tokio::spawn(async move {
            let _ = finished.await;
        });
        (journal, handle)
    }

    /// Counters of what the writer has done.
    pub fn metrics(&self) -> &JournalMetrics {
        &self.metrics
    }

    /// Whether the writer still takes events.
    pub fn is_running(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Judges and stores one event; answers after commit.
    pub async fn submit(&self, event: IncomingEvent) -> Result<EventResult, EventError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Event(Box::new(event), reply))
            .await
            .map_err(|_| EventError::Unavailable)?;
        answer.await.map_err(|_| EventError::Unavailable)?
    }

    /// Submits several events at once (they share batches) and answers each, in order.
    pub async fn submit_all(
        &self,
        events: Vec<IncomingEvent>,
    ) -> Vec<Result<EventResult, EventError>> {
        let mut answers = Vec::with_capacity(events.len());
        for event in events {
            let (reply, answer) = oneshot::channel();
            if self
                .sender
                .send(Message::Event(Box::new(event), reply))
                .await
                .is_err()
            {
                answers.push(None);
                continue;
            }
            answers.push(Some(answer));
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Some(answer) => answer.await.unwrap_or(Err(EventError::Unavailable)),
                None => Err(EventError::Unavailable),
            });
        }
        results
    }

    /// Judges `events` as one act of one member (a sale and the voucher used on it) and stores
    /// all of them or none: when one is refused, nothing is written, it keeps its refusal and
    /// the others are answered [`EventError::RefusedWithItsGroup`]; an event for another member
    /// than the first's (a voucher someone else holds) is refused as
    /// [`EventError::VoucherNotFound`]. Sent again, they meet their first answers.
    pub async fn submit_together(&self, events: Vec<IncomingEvent>) -> Vec<Answer> {
        let count = events.len();
        let (reply, answer) = oneshot::channel();
        if self
            .sender
            .send(Message::Together(events, reply))
            .await
            .is_err()
        {
            return vec![Err(EventError::Unavailable); count];
        }
        answer
            .await
            .unwrap_or_else(|_| vec![Err(EventError::Unavailable); count])
    }

    /// Runs a maintenance job to completion through the writer, one chunk at a time.
    pub async fn run_job(&self, kind: JobKind, now: Timestamp) -> Result<JobReport, StoreError> {
        let mut total = JobReport::default();
        let mut cursor = None;
        loop {
            let (reply, answer) = oneshot::channel();
            self.sender
                .send(Message::Job(kind, now, cursor.take(), reply))
                .await
                .map_err(|_| StoreError::Config("journal stopped".into()))?;
            let report = answer
                .await
                .map_err(|_| StoreError::Config("journal stopped".into()))??;
            total.add(&report);
            match report.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(total),
            }
        }
    }

    /// Merges two members through the writer, so no event races the move.
    pub async fn merge(&self, request: MergeRequest) -> Result<MergeReport, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Merge(Box::new(request), reply))
            .await
            .map_err(|_| StoreError::Config("journal stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Config("journal stopped".into()))?
    }

    /// Asks the writer to finish what is queued and stop.
    pub async fn stop(&self) {
        let _ = self.sender.send(Message::Stop).await;
    }
}

async fn writer(
    store: Store,
    config: JournalConfig,
    mut receiver: mpsc::Receiver<Message>,
    mut connection: Option<rusqlite::Connection>,
    metrics: Arc<JournalMetrics>,
) {
    let mut stopping = false;
    while !stopping {
        let Some(first) = receiver.recv().await else {
            break;
        };
        let mut events: Vec<IncomingEvent> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut job = None;
        match first {
            Message::Event(event, reply) => {
                events.push(*event);
                replies.push(reply);
            }
            Message::Stop => stopping = true,
            other => job = Some(other),
        }
        while job.is_none() && !stopping && events.len() < config.batch_size_max {
            match receiver.try_recv() {
                Ok(Message::Event(event, reply)) => {
                    events.push(*event);
                    replies.push(reply);
                }
                Ok(Message::Stop) => stopping = true,
                Ok(other) => job = Some(other),
                Err(_) => break,
            }
        }
        if !events.is_empty() {
            commit_batch(&store, &mut connection, events, replies, &metrics).await;
        }
        if let Some(job) = job {
            run_work(&store, &mut connection, job, &metrics).await;
        }
    }
    // Drain what is still queued so no acknowledged caller is left without an answer.
    receiver.close();
    while let Some(message) = receiver.recv().await {
        match message {
            Message::Event(event, reply) => {
                commit_batch(&store, &mut connection, vec![*event], vec![reply], &metrics).await
            }
            Message::Job(_, _, _, reply) => {
                let _ = reply.send(Err(StoreError::Config("journal stopped".into())));
            }
            Message::Merge(_, reply) => {
                let _ = reply.send(Err(StoreError::Config("journal stopped".into())));
            }
            together @ Message::Together(..) => {
                run_work(&store, &mut connection, together, &metrics).await
            }
            Message::Stop => {}
        }
    }
    // A clean stop leaves the WAL empty: every page in the database file, the file truncated.
    if let Some(connection) = &connection {
        let done: Result<i64, _> =
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0));
        match done {
            Ok(0) => {}
            Ok(_) => tracing::warn!("the WAL was not truncated at stop: a reader was still open"),
            Err(error) => tracing::warn!(%error, "the WAL checkpoint at stop failed"),
        }
    }
}

/// Runs work other than events judged apart: a group of events stored together, a job's
/// chunk or a merge, each in its own transaction.
async fn run_work(
    store: &Store,
    connection: &mut Option<rusqlite::Connection>,
    work: Message,
    metrics: &JournalMetrics,
) {
    match work {
        Message::Together(events, reply) => {
            let answers = process_alone(store, connection, &events, Batch::Together).await;
            metrics.record(&answers);
            let _ = reply.send(answers);
        }
        Message::Job(kind, now, cursor, reply) => {
            let _ =
                reply.send(jobs::run_chunk(store, connection.as_mut(), kind, now, cursor).await);
        }
        Message::Merge(request, reply) => {
            let result = async {
                let mut db = crate::db::Tx::for_writer(&store.db, connection.as_mut()).await?;
                let report = crate::members::merge_in(store, &mut db, &request).await?;
                db.commit().await?;
                Ok(report)
            }
            .await;
            let _ = reply.send(result);
        }
        Message::Event(..) | Message::Stop => unreachable!("events apart and stop are not work"),
    }
}

async fn commit_batch(
    store: &Store,
    connection: &mut Option<rusqlite::Connection>,
    events: Vec<IncomingEvent>,
    replies: Vec<Reply>,
    metrics: &JournalMetrics,
) {
    let answers = match process_retrying(store, connection, &events, Batch::Apart).await {
        Ok(answers) => answers,
        Err(error) if events.len() > 1 => {
            tracing::warn!(%error, events = events.len(), "batch failed; retrying its events one by one");
            let mut answers = Vec::with_capacity(events.len());
            for event in &events {
                answers.extend(
                    process_alone(store, connection, std::slice::from_ref(event), Batch::Apart)
                        .await,
                );
            }
            answers
        }
        Err(error) if error.is_unique_violation() => {
            process_alone(store, connection, &events, Batch::Apart).await
        }
        Err(error) => fail_alone(store, connection, &events, error).await,
    };
    metrics.record(&answers);
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
    }
}

/// Most times a batch is run again after losing a race with another writer (row locks, a
/// deadlock, a serialization failure, a busy SQLite file) before its events go one by one.
pub const CONFLICT_RETRIES_MAX: u32 = 4;

/// Runs a batch, again after a conflict with another writer (with a short, growing, jittered
/// pause), and turns a panic in judging into an error of this batch instead of the writer's
/// death.
async fn process_retrying(
    store: &Store,
    connection: &mut Option<rusqlite::Connection>,
    events: &[IncomingEvent],
    batch: Batch,
) -> Result<Vec<Answer>, StoreError> {
    let mut attempt = 0;
    loop {
        let run =
            std::panic::AssertUnwindSafe(batch::process(store, connection.as_mut(), events, batch));
        let result = match futures_util::FutureExt::catch_unwind(run).await {
            Ok(result) => result,
            Err(panic) => Err(StoreError::Invariant {
                member_id: String::new(),
                message: format!("judging panicked: {}", panic_text(&panic)),
            }),
        };
        match result {
            Err(error) if error.is_retryable() && attempt < CONFLICT_RETRIES_MAX => {
                attempt += 1;
                let pause_ms = (2u64 << attempt) + rand::random_range(0..8u64);
                tracing::debug!(%error, attempt, pause_ms, "write conflict; running the batch again");
                tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            }
            other => return other,
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs one event, or one group stored together, in a transaction of its own; a failure is
/// its answer (each event's, for a group).
async fn process_alone(
    store: &Store,
    connection: &mut Option<rusqlite::Connection>,
    events: &[IncomingEvent],
    batch: Batch,
) -> Vec<Answer> {
    let mut attempt = 0;
    loop {
        match process_retrying(store, connection, events, batch).await {
            Ok(answers) => return answers,
            // Another writer stored the same event id (or enrolled the same phone) first: run
            // again and the event meets what it committed.
            Err(error)
                if matches!(
                    error.violated(),
                    Some(crate::error::Unique::EventId | crate::error::Unique::MemberPhone)
                ) && attempt < 2 =>
            {
                attempt += 1
            }
            Err(error) => return fail_alone(store, connection, events, error).await,
        }
    }
}

/// The answer to each of `events` (one event, or a group stored together) that failed in a
/// transaction of their own.
async fn fail_alone(
    store: &Store,
    connection: &mut Option<rusqlite::Connection>,
    events: &[IncomingEvent],
    error: StoreError,
) -> Vec<Answer> {
    let answer = failure(store, connection, &events[0], error).await;
    vec![answer; events.len()]
}

/// The answer to an event whose transaction failed. A broken invariant quarantines its member
/// (in a transaction of its own, since the event's was rolled back) so the next events of that
/// member are refused at once and every other member goes on.
async fn failure(
    store: &Store,
    connection: &mut Option<rusqlite::Connection>,
    event: &IncomingEvent,
    error: StoreError,
) -> Answer {
    if let StoreError::Invariant { member_id, message } = &error {
        tracing::error!(event_id = %event.id, member_id, message, "an event broke an invariant");
        if member_id.is_empty() {
            return Err(EventError::Database(error.to_string()));
        }
        return match batch::quarantine(store, connection.as_mut(), member_id, message).await {
            Ok(()) => Err(EventError::MemberQuarantined),
            Err(error) => Err(EventError::Database(error.to_string())),
        };
    }
    tracing::error!(%error, event_id = %event.id, "event failed to commit");
    // Only the members' phone index means "phone taken"; any other violation is a fault.
    if error.violated() == Some(crate::error::Unique::MemberPhone) {
        return Err(EventError::PhoneTaken);
    }
    Err(EventError::Database(error.to_string()))
}

/// How often the checkpoint thread moves the SQLite WAL into the database file.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Starts the thread that checkpoints the SQLite WAL (`PASSIVE`: it never blocks the writer
/// or a reader) every [`CHECKPOINT_INTERVAL`], until the returned flag is set. When the WAL file
/// has grown past `wal_bytes_max` (readers kept SQLite from starting it over), the checkpoint
/// is a `TRUNCATE`: it waits for the readers of old pages (up to the busy timeout, holding the
/// writer meanwhile) and empties the file.
fn start_checkpoints(
    store: &Store,
    wal_bytes_max: u64,
) -> Option<Arc<std::sync::atomic::AtomicBool>> {
    let wal = store.db.sqlite_path().map(|path| {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        std::path::PathBuf::from(wal)
    })?;
    let connection = match store.open_writer_connection() {
        Ok(Some(connection)) => connection,
        Ok(None) => return None,
        Err(error) => {
            tracing::warn!(%error, "no checkpoint connection; SQLite checkpoints in commits");
            return None;
        }
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("patron-checkpoint".into())
        .spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                let size = std::fs::metadata(&wal).map(|meta| meta.len()).unwrap_or(0);
                let sql = if size > wal_bytes_max {
                    "PRAGMA wal_checkpoint(TRUNCATE)"
                } else {
                    "PRAGMA wal_checkpoint(PASSIVE)"
                };
                let done: Result<(i64, i64, i64), _> = connection
                    .query_row(sql, [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)));
                if let Err(error) = done {
                    tracing::warn!(%error, "a WAL checkpoint failed");
                }
            }
        });
    match spawned {
        Ok(_) => Some(stop),
        Err(error) => {
            tracing::warn!(%error, "no checkpoint thread; SQLite checkpoints in commits");
            None
        }
    }
}
