//! Import jobs: a CSV file of members or purchases fed to the journal in the background, with
//! its progress and the first rejected rows kept in `import_jobs`. Also the bulk look-up of
//! already-stored events an import uses to tell a re-imported row from a new one.

use crate::{Store, StoreError};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::TenantId;
use std::collections::HashMap;

/// Most event ids looked up in one statement: one list parameter, so the statement stays
/// prepared whatever the length, but a page of ids this long keeps each answer small.
const IDS_PER_LOOKUP_MAX: usize = 500;

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Queued => "queued",
            ImportStatus::Running => "running",
            ImportStatus::Done => "done",
            ImportStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<ImportStatus, StoreError> {
        Ok(match text {
            "queued" => ImportStatus::Queued,
            "running" => ImportStatus::Running,
            "done" => ImportStatus::Done,
            "failed" => ImportStatus::Failed,
            other => return Err(StoreError::Corrupt(format!("import status {other}"))),
        })
    }
}

/// One import job as stored.
#[derive(Clone, Debug)]
pub struct ImportJob {
    pub id: String,
    pub tenant_id: TenantId,
    /// `members` or `purchases`.
    pub kind: String,
    pub status: ImportStatus,
    pub rows_read: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
    /// JSON array of the first rejected rows, `{line, reason}`.
    pub errors: serde_json::Value,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// Counts an import has reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub rows_read: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
}

impl Store {
    /// Records a new queued job of `kind` for `tenant_id`; returns its id.
    pub async fn create_import_job(
        &self,
        tenant_id: TenantId,
        kind: &str,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        self.db
            .execute(
                "INSERT INTO import_jobs (id, tenant_id, kind, status, rows_read, rows_accepted, rows_rejected, errors, \
                 created_at, finished_at) VALUES ($1, $2, $3, $4, 0, 0, 0, '[]', $5, NULL)",
                crate::binds![
                    &id,
                    tenant_id.to_string(),
                    kind,
                    ImportStatus::Queued.as_str(),
                    to_micros(chrono::Utc::now()),
                ],
            )
            .await?;
        Ok(id)
    }

    /// Records a job's progress; `errors` replaces the stored list when given; a finished status
    /// (done, failed) stamps `finished_at`.
    pub async fn update_import_job(
        &self,
        id: &str,
        status: ImportStatus,
        counts: ImportCounts,
        errors: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let finished = matches!(status, ImportStatus::Done | ImportStatus::Failed)
            .then(|| to_micros(chrono::Utc::now()));
        self.db
            .execute(
                "UPDATE import_jobs SET status = $1, rows_read = $2, rows_accepted = $3, rows_rejected = $4, \
                 errors = COALESCE($5, errors), finished_at = $6 WHERE id = $7",
                crate::binds![
                    status.as_str(),
                    counts.rows_read,
                    counts.rows_accepted,
                    counts.rows_rejected,
                    errors.map(|errors| errors.to_string()),
                    finished,
                    id,
                ],
            )
            .await?;
        Ok(())
    }

    /// Marks jobs left queued or running by a stopped process as failed (run at start-up,
    /// before any new job): their rows so far are in, and running the same file again adds
    /// only what is missing. Returns how many.
    pub async fn fail_interrupted_imports(&self) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE import_jobs SET status = 'failed', finished_at = $1 WHERE status IN ('queued', 'running')",
                crate::binds![to_micros(chrono::Utc::now())],
            )
            .await
    }

    /// A job of `tenant_id`; another tenant's job is not found.
    pub async fn import_job(&self, tenant_id: TenantId, id: &str) -> Result<ImportJob, StoreError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT id, kind, status, rows_read, rows_accepted, rows_rejected, errors, created_at, finished_at \
                 FROM import_jobs WHERE tenant_id = $1 AND id = $2",
                crate::binds![tenant_id.to_string(), id],
            )
            .await?
            .ok_or(StoreError::NotFound { what: "import job" })?;
        Ok(ImportJob {
            id: row.text("id")?,
            tenant_id,
            kind: row.text("kind")?,
            status: ImportStatus::parse(&row.text("status")?)?,
            rows_read: row.int("rows_read")?,
            rows_accepted: row.int("rows_accepted")?,
            rows_rejected: row.int("rows_rejected")?,
            errors: serde_json::from_str(&row.text("errors")?)
                .map_err(|error| StoreError::Corrupt(format!("import errors: {error}")))?,
            created_at: from_micros(row.int("created_at")?),
            finished_at: row.opt_int("finished_at")?.map(from_micros),
        })
    }

    /// The body hash of each of `ids` already stored as an event of `tenant_id`.
    pub async fn stored_event_hashes(
        &self,
        tenant_id: TenantId,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut hashes = HashMap::new();
        let sql = format!(
            "SELECT event_id, body_hash FROM events WHERE tenant_id = $1 AND {}",
            crate::sql::one_of(self.backend, "event_id", 2)
        );
        for chunk in ids.chunks(IDS_PER_LOOKUP_MAX) {
            let rows = self
                .db
                .fetch(&sql, crate::binds![tenant_id.to_string(), chunk.to_vec()])
                .await?;
            for row in rows {
                hashes.insert(row.text("event_id")?, row.text("body_hash")?);
            }
        }
        Ok(hashes)
    }
}
