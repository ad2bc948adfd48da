//! Import jobs: a CSV file of members or purchases fed to the journal in the background, with
//! its progress and the first rejected rows kept in `import_jobs`. Also the bulk look-up of
//! already-stored events an import uses to tell a re-imported row from a new one.

use crate::{Store, StoreError};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::TenantId;
use sqlx::Row;
use std::collections::HashMap;

/// Most event ids looked up in one statement.
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
        sqlx::query(
            "INSERT INTO import_jobs (id, tenant_id, kind, status, rows_read, rows_accepted, rows_rejected, errors, \
             created_at, finished_at) VALUES ($1, $2, $3, $4, 0, 0, 0, '[]', $5, NULL)",
        )
        .bind(id.clone())
        .bind(tenant_id.to_string())
        .bind(kind.to_owned())
        .bind(ImportStatus::Queued.as_str())
        .bind(to_micros(chrono::Utc::now()))
        .execute(&self.pool)
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
        sqlx::query(
            "UPDATE import_jobs SET status = $1, rows_read = $2, rows_accepted = $3, rows_rejected = $4, \
             errors = COALESCE($5, errors), finished_at = $6 WHERE id = $7",
        )
        .bind(status.as_str())
        .bind(counts.rows_read)
        .bind(counts.rows_accepted)
        .bind(counts.rows_rejected)
        .bind(errors.map(|errors| errors.to_string()))
        .bind(finished)
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks jobs left queued or running by a stopped process as failed (run at start-up,
    /// before any new job): their rows so far are in, and running the same file again adds
    /// only what is missing. Returns how many.
    pub async fn fail_interrupted_imports(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE import_jobs SET status = 'failed', finished_at = $1 WHERE status IN ('queued', 'running')",
        )
        .bind(to_micros(chrono::Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A job of `tenant_id`; another tenant's job is not found.
    pub async fn import_job(&self, tenant_id: TenantId, id: &str) -> Result<ImportJob, StoreError> {
        let row = sqlx::query(
            "SELECT id, kind, status, rows_read, rows_accepted, rows_rejected, errors, created_at, finished_at \
             FROM import_jobs WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id.to_string())
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound { what: "import job" })?;
        let errors: String = row.get(6);
        Ok(ImportJob {
            id: row.get(0),
            tenant_id,
            kind: row.get(1),
            status: ImportStatus::parse(&row.get::<String, _>(2))?,
            rows_read: row.get(3),
            rows_accepted: row.get(4),
            rows_rejected: row.get(5),
            errors: serde_json::from_str(&errors)
                .map_err(|error| StoreError::Corrupt(format!("import errors: {error}")))?,
            created_at: from_micros(row.get(7)),
            finished_at: row.get::<Option<i64>, _>(8).map(from_micros),
        })
    }

    /// The body hash of each of `ids` already stored as an event of `tenant_id`.
    pub async fn stored_event_hashes(
        &self,
        tenant_id: TenantId,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut hashes = HashMap::new();
        for chunk in ids.chunks(IDS_PER_LOOKUP_MAX) {
            let placeholders: Vec<String> = (0..chunk.len())
                .map(|index| format!("${}", index + 2))
                .collect();
            let sql = format!(
                "SELECT event_id, body_hash FROM events WHERE tenant_id = $1 AND event_id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(tenant_id.to_string());
            for id in chunk {
                query = query.bind(id.clone());
            }
            for row in query.fetch_all(&self.pool).await? {
                hashes.insert(row.get(0), row.get(1));
            }
        }
        Ok(hashes)
    }
}
