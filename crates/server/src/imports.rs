//! CSV imports of members and purchases, shared by `patron import` and `POST /v1/imports/…`.
//!
//! A file is read record by record on a thread of its own and turned into the same events the
//! API takes (the same JSON shape, hash and checks as `POST /v1/events`), a chunk of
//! `IMPORT_CHUNK_ROWS` at a time; chunks wait on a channel of two, so memory stays bounded
//! whatever the file's size. Each chunk goes to the journal with `submit_all`, so purchases earn
//! points and tiers at their own dates.
//!
//! Re-running a file creates nothing twice: a member row's event id is `import-member-` and the
//! E.164 phone, a purchase's is the file's `receipt_id`; a row whose id is already stored with
//! the same body counts as a duplicate, with another body it is rejected.

use crate::auth::Caller;
use crate::error::{parse_json, ApiError};
use crate::events::{body_hash, parse_event, EventRequest};
use crate::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures_util::StreamExt;
use patron_app::{App, Command, ErrorKind, Grant, Sending};
use patron_core::time::Timestamp;
use patron_core::{Phone, TenantId};
use patron_store::audit::Actor;
use patron_store::imports::{ImportCounts, ImportJob, ImportStatus};
use patron_store::users::Role;
use patron_store::{EventError, IncomingEvent, Journal, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest CSV file accepted by the API, in bytes.
pub const IMPORT_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Rows parsed, checked and submitted together.
pub const IMPORT_CHUNK_ROWS: usize = 1_000;
/// Rejected rows an import job keeps (the counts go on past it).
pub const IMPORT_ERRORS_KEPT_MAX: usize = 1_000;
/// Chunks parsed ahead of the journal.
const CHUNKS_AHEAD_MAX: usize = 2;
/// Prefix of a member row's event id; the E.164 phone follows.
pub const MEMBER_EVENT_PREFIX: &str = "import-member-";

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// `phone,name,email,birthday,gender,city,tags` (tags separated by `|`; only phone needed).
    Members,
    /// `receipt_id,phone,amount,store,occurred_at` (more columns, e.g. items, are ignored).
    Purchases,
}

impl ImportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Members => "members",
            ImportKind::Purchases => "purchases",
        }
    }

    fn columns(self) -> &'static [(&'static str, bool)] {
        match self {
            ImportKind::Members => &[
                ("phone", true),
                ("name", false),
                ("email", false),
                ("birthday", false),
                ("gender", false),
                ("city", false),
                ("tags", false),
            ],
            ImportKind::Purchases => &[
                ("receipt_id", true),
                ("phone", true),
                ("amount", true),
                ("store", false),
                ("occurred_at", true),
            ],
        }
    }
}

/// A row that was not imported: its line in the file and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

/// How far an import has gone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Data rows read (the header is not one).
    pub rows_read: u64,
    pub accepted: u64,
    /// Rows already imported with the same data.
    pub duplicates: u64,
    pub rejected: u64,
    /// Bytes of the file read so far.
    pub bytes_read: u64,
}

/// Why an import stopped before the end of its file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Header { line: u64, message: String },
    #[error("reading the file: {0}")]
    Read(String),
    #[error("writing the errors: {0}")]
    Write(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the journal is shutting down")]
    Unavailable,
}

/// One data row: its line and the event it became, or why it could not be one.
struct ParsedRow {
    line: u64,
    event: Result<IncomingEvent, String>,
}

struct Chunk {
    rows: Vec<ParsedRow>,
    bytes_read: u64,
}

/// An import under way: call [`Importer::next_chunk`] until it answers `None`.
pub struct Importer {
    store: Store,
    app: App,
    tenant_id: TenantId,
    chunks: mpsc::Receiver<Result<Chunk, ImportError>>,
    summary: ImportSummary,
    /// Who sent the file: its rows go through the app layer as this caller's commands, and
    /// each event names it as its sender.
    grant: Grant,
}

impl Importer {
    /// Starts reading `reader` (a CSV file with a header line) on its own thread.
    pub async fn start<R: std::io::Read + Send + 'static>(
        store: Store,
        journal: Journal,
        tenant_id: TenantId,
        kind: ImportKind,
        reader: R,
    ) -> Result<Importer, ImportError> {
        let zone = store.tenant(tenant_id).await?.zone;
        let (sender, chunks) = mpsc::channel(CHUNKS_AHEAD_MAX);
        std::thread::Builder::new()
            .name("patron-import".into())
            .spawn(move || parse_file(reader, kind, tenant_id, zone, sender))
            .map_err(|error| ImportError::Read(error.to_string()))?;
        Ok(Importer {
            app: App::new(store.clone(), journal),
            store,
            tenant_id,
            chunks,
            summary: ImportSummary::default(),
            grant: Grant {
                tenant_id,
                role: Role::Owner,
                actor: Actor::cli(),
                store_code: None,
                bucket: "cli".into(),
            },
        })
    }

    /// Records `actor` as the sender of the file's events (the operator's command line by
    /// default).
    pub fn by(mut self, actor: &Actor) -> Importer {
        self.grant.actor = actor.clone();
        self
    }

    /// Sends the file's rows as `grant`'s commands: its role, its store, its name.
    pub fn as_caller(mut self, grant: Grant) -> Importer {
        self.tenant_id = grant.tenant_id;
        self.grant = grant;
        self
    }

    /// Counts so far.
    pub fn summary(&self) -> ImportSummary {
        self.summary
    }

    /// Imports the next chunk; answers its rejected rows, or `None` at the end of the file.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<RowError>>, ImportError> {
        let Some(chunk) = self.chunks.recv().await else {
            return Ok(None);
        };
        let chunk = chunk?;
        self.summary.bytes_read = chunk.bytes_read;
        self.summary.rows_read += chunk.rows.len() as u64;
        let ids: Vec<String> = chunk
            .rows
            .iter()
            .filter_map(|row| row.event.as_ref().ok())
            .map(|event| event.id.as_str().to_owned())
            .collect();
        let stored = self.store.stored_event_hashes(self.tenant_id, &ids).await?;
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut errors = Vec::new();
        let mut lines = Vec::new();
        let mut sendings = Vec::new();
        for row in chunk.rows {
            let event = match row.event {
                Ok(event) => event,
                Err(reason) => {
                    errors.push(RowError {
                        line: row.line,
                        reason,
                    });
                    continue;
                }
            };
            let id = event.id.as_str();
            match stored.get(id).or_else(|| seen.get(id)) {
                Some(hash) if *hash == event.body_hash => self.summary.duplicates += 1,
                Some(_) => errors.push(RowError {
                    line: row.line,
                    reason: engine_reason(&EventError::ExistsWithDifferentBody),
                }),
                None => {
                    seen.insert(id.to_owned(), event.body_hash.clone());
                    lines.push(row.line);
                    sendings.push(Sending {
                        id: event.id,
                        occurred_at: Some(event.occurred_at),
                        body_hash: Some(event.body_hash),
                        command: Command::from_kind(event.kind),
                    });
                }
            }
        }
        let answers = self.app.submit_all(&self.grant, sendings).await;
        for (line, answer) in lines.into_iter().zip(answers) {
            match answer {
                Ok(_) => self.summary.accepted += 1,
                Err(error) if error.kind == ErrorKind::Unavailable => {
                    return Err(ImportError::Unavailable)
                }
                Err(error) => errors.push(RowError {
                    line,
                    reason: match &error.event {
                        Some(event) => engine_reason(event),
                        None => format!("{}: {}", error.code, error.message),
                    },
                }),
            }
        }
        errors.sort_by_key(|error| error.line);
        self.summary.rejected += errors.len() as u64;
        Ok(Some(errors))
    }
}

/// Imports a whole file sent from the command line (its events name `cli` as their sender);
/// `on_progress` is told the counts (with the bytes read) and the rejected rows after each chunk.
pub async fn import_csv<R: std::io::Read + Send + 'static>(
    store: Store,
    journal: Journal,
    tenant_id: TenantId,
    kind: ImportKind,
    reader: R,
    mut on_progress: impl FnMut(&ImportSummary, &[RowError]) -> std::io::Result<()>,
) -> Result<ImportSummary, ImportError> {
    let mut importer = Importer::start(store, journal, tenant_id, kind, reader)
        .await?
        .by(&Actor::cli());
    while let Some(errors) = importer.next_chunk().await? {
        on_progress(&importer.summary(), &errors)?;
    }
    Ok(importer.summary())
}

fn engine_reason(error: &EventError) -> String {
    format!("{}: {error}", error.code())
}

/// The CSV column an API field came from, for a reason a file's author can act on.
fn column_of(field: &str) -> &str {
    let field = field
        .strip_prefix("profile.")
        .or_else(|| field.strip_prefix("member."))
        .unwrap_or(field);
    match field {
        "id" => "receipt_id",
        "tags" => "tags",
        other if other.starts_with("tags[") => "tags",
        other => other,
    }
}

fn api_reason(error: ApiError) -> String {
    match error.body.field {
        Some(field) => format!("{}: {}", column_of(&field), error.body.message),
        None => format!("{}: {}", error.body.code, error.body.message),
    }
}

/// Reads the file and sends its rows a chunk at a time; stops when the importer is gone.
fn parse_file<R: std::io::Read>(
    reader: R,
    kind: ImportKind,
    tenant_id: TenantId,
    zone: chrono_tz::Tz,
    sender: mpsc::Sender<Result<Chunk, ImportError>>,
) {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let positions = match csv.headers() {
        Ok(header) => column_positions(kind, header),
        Err(error) => Err(ImportError::Header {
            line: 1,
            message: error.to_string(),
        }),
    };
    let columns = csv.headers().map(|header| header.len()).unwrap_or(0);
    let positions = match positions {
        Ok(positions) => positions,
        Err(error) => {
            let _ = sender.blocking_send(Err(error));
            return;
        }
    };
    let mut record = csv::StringRecord::new();
    let mut rows = Vec::with_capacity(IMPORT_CHUNK_ROWS);
    let mut now = chrono::Utc::now();
    loop {
        let row = match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|at| at.line()).unwrap_or(0);
                let field = |name: &str| {
                    positions
                        .get(name)
                        .and_then(|&index| record.get(index))
                        .filter(|value| !value.is_empty())
                };
                let event = match (quote_left_open(&record, line, columns), kind) {
                    (Some(error), _) => Err(error),
                    (None, ImportKind::Members) => member_row(field, tenant_id, now),
                    (None, ImportKind::Purchases) => purchase_row(field, tenant_id, zone, now),
                };
                ParsedRow { line, event }
            }
            Err(error) => {
                let line = error.position().map(|at| at.line()).unwrap_or(0);
                match error.kind() {
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. } => {
                        ParsedRow {
                            line,
                            event: Err(format!("row: {error}")),
                        }
                    }
                    _ => {
                        let _ = sender.blocking_send(Err(ImportError::Read(error.to_string())));
                        return;
                    }
                }
            }
        };
        rows.push(row);
        if rows.len() == IMPORT_CHUNK_ROWS {
            let chunk = Chunk {
                rows: std::mem::replace(&mut rows, Vec::with_capacity(IMPORT_CHUNK_ROWS)),
                bytes_read: csv.position().byte(),
            };
            if sender.blocking_send(Ok(chunk)).is_err() {
                return;
            }
            now = chrono::Utc::now();
        }
    }
    if !rows.is_empty() {
        let _ = sender.blocking_send(Ok(Chunk {
            rows,
            bytes_read: csv.position().byte(),
        }));
    }
}

/// A quote left open swallows the lines after it (up to the next quote, or the file's end) into
/// one field, and the rows on them silently go missing. A quoted field may hold a line break
/// ("Two\nLines"), so a field that does is taken for a quote left open when what follows its
/// break looks like rows (holds a comma) or when the record came out shorter than the header.
/// Such a record is rejected, naming its line and the lines it took.
fn quote_left_open(record: &csv::StringRecord, line: u64, columns: usize) -> Option<String> {
    let mut breaks: u64 = 0;
    let mut swallowed_rows = record.len() < columns;
    for field in record {
        let field_breaks = field.matches('\n').count().max(field.matches('\r').count());
        if field_breaks == 0 {
            continue;
        }
        breaks += field_breaks as u64;
        swallowed_rows |= field.lines().skip(1).any(|rest| rest.contains(','));
    }
    (breaks > 0 && swallowed_rows).then(|| {
        format!(
            "row: a quoted field runs from line {line} to line {} (a quote left open?); \
             those lines were not imported: close the quote and import the file again",
            line + breaks
        )
    })
}

/// Where each known column is in the file; a required column missing is an error.
fn column_positions(
    kind: ImportKind,
    header: &csv::StringRecord,
) -> Result<HashMap<&'static str, usize>, ImportError> {
    let mut positions = HashMap::new();
    for (index, name) in header.iter().enumerate() {
        let name = name
            .trim_start_matches('\u{feff}')
            .trim()
            .to_ascii_lowercase();
        if let Some((column, _)) = kind.columns().iter().find(|(column, _)| *column == name) {
            positions.entry(*column).or_insert(index);
        }
    }
    let missing: Vec<&str> = kind
        .columns()
        .iter()
        .filter(|(column, required)| *required && !positions.contains_key(column))
        .map(|(column, _)| *column)
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Header {
            line: 1,
            message: format!(
                "the header lacks the column(s) {}; a {} file has {}",
                missing.join(", "),
                kind.as_str(),
                kind.columns()
                    .iter()
                    .map(|(column, _)| *column)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        });
    }
    Ok(positions)
}

fn parse_phone(text: Option<&str>) -> Result<Phone, String> {
    let text = text.ok_or("phone: is required")?;
    Phone::parse(text).map_err(|error| format!("phone: {error}"))
}

/// Turns a request body into an event exactly as `POST /v1/events` would.
fn event_of(value: Value, tenant_id: TenantId, now: Timestamp) -> Result<IncomingEvent, String> {
    let hash = body_hash(&value);
    let request: EventRequest = parse_json(value).map_err(api_reason)?;
    parse_event(tenant_id, request, hash, now).map_err(api_reason)
}

fn member_row<'a>(
    field: impl Fn(&str) -> Option<&'a str>,
    tenant_id: TenantId,
    now: Timestamp,
) -> Result<IncomingEvent, String> {
    let phone = parse_phone(field("phone"))?;
    let mut profile = Map::new();
    for column in ["name", "email", "birthday", "gender", "city"] {
        if let Some(value) = field(column) {
            profile.insert(column.into(), value.into());
        }
    }
    if let Some(tags) = field("tags") {
        let tags: Vec<Value> = tags
            .split('|')
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(Value::from)
            .collect();
        if !tags.is_empty() {
            profile.insert("tags".into(), Value::Array(tags));
        }
    }
    let value = json!({
        "id": format!("{MEMBER_EVENT_PREFIX}{}", phone.as_str()),
        "type": "enrol",
        "member": {"phone": phone.as_str()},
        "profile": profile,
    });
    event_of(value, tenant_id, now)
}

fn purchase_row<'a>(
    field: impl Fn(&str) -> Option<&'a str>,
    tenant_id: TenantId,
    zone: chrono_tz::Tz,
    now: Timestamp,
) -> Result<IncomingEvent, String> {
    let receipt = field("receipt_id").ok_or("receipt_id: is required")?;
    let phone = parse_phone(field("phone"))?;
    let amount = field("amount").ok_or("amount: is required")?;
    let amount: i64 = amount
        .parse()
        .map_err(|_| format!("amount: `{amount}` is not a whole number of minor units"))?;
    let occurred_at = parse_occurred_at(field("occurred_at"), zone)?;
    let mut value = json!({
        "id": receipt,
        "type": "purchase",
        "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "member": {"phone": phone.as_str()},
        "amount": amount,
    });
    if let Some(store) = field("store") {
        value["store"] = store.into();
    }
    event_of(value, tenant_id, now)
}

/// RFC 3339 with an offset, or a local `YYYY-MM-DD[ HH:MM[:SS]]` in the tenant's zone.
fn parse_occurred_at(text: Option<&str>, zone: chrono_tz::Tz) -> Result<Timestamp, String> {
    use chrono::TimeZone;
    let text = text.ok_or("occurred_at: is required")?;
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let local = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|day| day.and_hms_opt(0, 0, 0))
        });
    local
        .and_then(|local| zone.from_local_datetime(&local).earliest())
        .map(|at| at.with_timezone(&chrono::Utc))
        .ok_or_else(|| {
            format!(
                "occurred_at: `{text}` is neither RFC 3339 (2026-11-23T09:30:00+07:00) nor a local \
                 YYYY-MM-DD[ HH:MM[:SS]]"
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The API: background jobs.

/// `POST /v1/imports/…` answers with the job it queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportAccepted {
    pub id: String,
    /// `queued`.
    pub status: String,
}

/// An import job and how far it has gone.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportJobView {
    pub id: String,
    /// `members` or `purchases`.
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub rows_read: i64,
    pub rows_accepted: i64,
    /// Rows already imported with the same data.
    pub rows_duplicate: i64,
    pub rows_rejected: i64,
    /// The first rejected rows.
    pub errors: Vec<RowError>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

fn job_view(job: ImportJob, zone: chrono_tz::Tz) -> ImportJobView {
    ImportJobView {
        rows_duplicate: job.rows_read - job.rows_accepted - job.rows_rejected,
        id: job.id,
        kind: job.kind,
        status: job.status.as_str().to_owned(),
        rows_read: job.rows_read,
        rows_accepted: job.rows_accepted,
        rows_rejected: job.rows_rejected,
        errors: serde_json::from_value(job.errors).unwrap_or_default(),
        created_at: patron_store::rfc3339(job.created_at, zone),
        finished_at: job.finished_at.map(|at| patron_store::rfc3339(at, zone)),
    }
}

/// The import routes (with a body limit of their own) and the export routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_members_import))
        .routes(routes!(post_purchases_import))
        .layer(DefaultBodyLimit::max(IMPORT_BYTES_MAX))
        .routes(routes!(get_import))
        .merge(crate::exports::router())
}

/// Queues an import of a CSV file of members.
#[utoipa::path(
    post,
    path = "/v1/imports/members",
    tag = "imports",
    request_body(content = String, content_type = "text/csv",
        description = "`phone,name,email,birthday,gender,city,tags` (tags separated by `|`; only phone is required)"),
    responses(
        (status = 202, description = "The job was queued", body = ImportAccepted),
        (status = 413, description = "The file is larger than 256 MiB"),
        (status = 415, description = "The body is not text/csv"),
    )
)]
async fn post_members_import(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ImportAccepted>), ApiError> {
    queue_import(state, caller, headers, body, ImportKind::Members).await
}

/// Queues an import of a CSV file of purchases, judged at their own dates.
#[utoipa::path(
    post,
    path = "/v1/imports/purchases",
    tag = "imports",
    request_body(content = String, content_type = "text/csv",
        description = "`receipt_id,phone,amount,store,occurred_at` (further columns are ignored)"),
    responses(
        (status = 202, description = "The job was queued", body = ImportAccepted),
        (status = 413, description = "The file is larger than 256 MiB"),
        (status = 415, description = "The body is not text/csv"),
    )
)]
async fn post_purchases_import(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ImportAccepted>), ApiError> {
    queue_import(state, caller, headers, body, ImportKind::Purchases).await
}

/// An import job of the caller's tenant.
#[utoipa::path(
    get,
    path = "/v1/imports/{id}",
    tag = "imports",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = ImportJobView),
        (status = 404, description = "No such job in this tenant"),
    )
)]
async fn get_import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportJobView>, ApiError> {
    let tenant_id = caller.0.tenant_id;
    let job = state.store.import_job(tenant_id, &id).await?;
    let zone = state.store.tenant(tenant_id).await?.zone;
    Ok(Json(job_view(job, zone)))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("an import file may be at most {IMPORT_BYTES_MAX} bytes"),
        None,
    )
}

async fn queue_import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
    kind: ImportKind,
) -> Result<(StatusCode, Json<ImportAccepted>), ApiError> {
    caller.require_write()?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("text/csv") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as Content-Type: text/csv",
            None,
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > IMPORT_BYTES_MAX as u64) {
        return Err(too_large());
    }
    let tenant_id = caller.0.tenant_id;
    let path = std::env::temp_dir().join(format!("patron-import-{}.csv", uuid::Uuid::now_v7()));
    if let Err(error) = receive_file(body, &path).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(error);
    }
    let id = match state
        .store
        .create_import_job(tenant_id, kind.as_str())
        .await
    {
        Ok(id) => id,
        Err(error) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(error.into());
        }
    };
    let target = JobTarget {
        tenant_id,
        kind,
        grant: caller.0.clone(),
    };
    tokio::spawn(run_job(
        state.store.clone(),
        state.journal.clone(),
        target,
        id.clone(),
        path,
    ));
    Ok((
        StatusCode::ACCEPTED,
        Json(ImportAccepted {
            id,
            status: ImportStatus::Queued.as_str().to_owned(),
        }),
    ))
}

/// Streams the body to `path`, refusing it past `IMPORT_BYTES_MAX`.
async fn receive_file(body: Body, path: &std::path::Path) -> Result<(), ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    let mut size = 0usize;
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("the body could not be read: {error}"),
                None,
            )
        })?;
        size += bytes.len();
        if size > IMPORT_BYTES_MAX {
            return Err(too_large());
        }
        file.write_all(&bytes).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    Ok(())
}

fn counts(summary: &ImportSummary) -> ImportCounts {
    ImportCounts {
        rows_read: summary.rows_read as i64,
        rows_accepted: summary.accepted as i64,
        rows_rejected: summary.rejected as i64,
    }
}

/// Runs a queued job to its end, recording progress after each chunk; removes the file.
/// Whose import a job is, what it holds, and who sent it.
struct JobTarget {
    tenant_id: TenantId,
    kind: ImportKind,
    grant: Grant,
}

async fn run_job(
    store: Store,
    journal: Journal,
    target: JobTarget,
    id: String,
    path: std::path::PathBuf,
) {
    let mut kept: Vec<RowError> = Vec::new();
    let outcome = import_job_file(&store, journal, &target, &id, &path, &mut kept).await;
    let _ = tokio::fs::remove_file(&path).await;
    let (status, summary) = match outcome {
        Ok(summary) => (ImportStatus::Done, summary),
        Err((error, summary)) => {
            tracing::warn!(%error, job = %id, "import job failed");
            let line = match &error {
                ImportError::Header { line, .. } => *line,
                _ => 0,
            };
            if kept.len() < IMPORT_ERRORS_KEPT_MAX {
                kept.push(RowError {
                    line,
                    reason: error.to_string(),
                });
            }
            (ImportStatus::Failed, summary)
        }
    };
    let errors = serde_json::to_value(&kept).expect("row errors serialise");
    if let Err(error) = store
        .update_import_job(&id, status, counts(&summary), Some(&errors))
        .await
    {
        tracing::error!(%error, job = %id, "import job's end could not be recorded");
    }
}

async fn import_job_file(
    store: &Store,
    journal: Journal,
    target: &JobTarget,
    id: &str,
    path: &std::path::Path,
    kept: &mut Vec<RowError>,
) -> Result<ImportSummary, (ImportError, ImportSummary)> {
    let failed = |error: ImportError| (error, ImportSummary::default());
    store
        .update_import_job(id, ImportStatus::Running, ImportCounts::default(), None)
        .await
        .map_err(|error| failed(error.into()))?;
    let file = std::fs::File::open(path).map_err(|error| failed(error.into()))?;
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut importer = Importer::start(
        store.clone(),
        journal,
        target.tenant_id,
        target.kind,
        reader,
    )
    .await
    .map_err(failed)?
    .as_caller(target.grant.clone());
    loop {
        let errors = match importer.next_chunk().await {
            Ok(Some(errors)) => errors,
            Ok(None) => return Ok(importer.summary()),
            Err(error) => return Err((error, importer.summary())),
        };
        let room = IMPORT_ERRORS_KEPT_MAX.saturating_sub(kept.len());
        let changed = room > 0 && !errors.is_empty();
        kept.extend(errors.into_iter().take(room));
        let list = changed.then(|| serde_json::to_value(&*kept).expect("row errors serialise"));
        store
            .update_import_job(
                id,
                ImportStatus::Running,
                counts(&importer.summary()),
                list.as_ref(),
            )
            .await
            .map_err(|error| (error.into(), importer.summary()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurred_at_takes_rfc3339_or_local_time() {
        let zone = chrono_tz::Asia::Ho_Chi_Minh;
        let utc = |text: &str| parse_occurred_at(Some(text), zone).unwrap().to_rfc3339();
        assert_eq!(
            utc("2025-03-01T10:00:00+07:00"),
            "2025-03-01T03:00:00+00:00"
        );
        assert_eq!(utc("2025-03-01 10:00"), "2025-03-01T03:00:00+00:00");
        assert_eq!(utc("2025-03-01"), "2025-02-28T17:00:00+00:00");
        assert!(parse_occurred_at(Some("yesterday"), zone).is_err());
        assert!(parse_occurred_at(None, zone).is_err());
    }

    #[test]
    fn a_header_without_a_required_column_is_refused() {
        let header = csv::StringRecord::from(vec!["\u{feff}Phone", "name"]);
        assert!(column_positions(ImportKind::Members, &header).is_ok());
        let header = csv::StringRecord::from(vec!["receipt_id", "phone", "store"]);
        let error = column_positions(ImportKind::Purchases, &header).unwrap_err();
        assert!(error.to_string().contains("amount, occurred_at"), "{error}");
    }
}
