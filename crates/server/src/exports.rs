//! CSV exports of members, ledger entries and the points liability, streamed a page at a time
//! (keyset pagination in the store), shared by `GET /v1/exports/…` and `patron export`.

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use patron_core::time::Timestamp;
use patron_core::TenantId;
use patron_store::exports::{spreadsheet_safe, EXPORT_PAGE_MAX};
use patron_store::{rfc3339, Store, StoreError};
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Rows (members, ledger transactions, expiry instants) per page read.
pub const EXPORT_PAGE_ROWS: i64 = 1_000;

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// `id,phone,name,email,birthday,gender,city,tags,tier,balance,lifetime_spend,order_count,created_at`.
    Members,
    /// One row per ledger entry: `transaction_id,member_id,kind,reason,account,amount,occurred_at,asset`
    /// (`asset`: `points`, `money` or `stamps:<card>`).
    Ledger,
    /// Outstanding points by expiry month: `expiry_month,points,value` (`never` last).
    Liability,
}

const MEMBER_HEADER: [&str; 13] = [
    "id",
    "phone",
    "name",
    "email",
    "birthday",
    "gender",
    "city",
    "tags",
    "tier",
    "balance",
    "lifetime_spend",
    "order_count",
    "created_at",
];
const LEDGER_HEADER: [&str; 8] = [
    "transaction_id",
    "member_id",
    "kind",
    "reason",
    "account",
    "amount",
    "occurred_at",
    "asset",
];
const LIABILITY_HEADER: [&str; 3] = ["expiry_month", "points", "value"];

/// Where the next page starts.
enum Cursor {
    Header,
    After(Option<String>),
    Done,
}

struct Export {
    store: Store,
    tenant_id: TenantId,
    kind: ExportKind,
    zone: chrono_tz::Tz,
    cursor: Cursor,
}

/// CSV lines of `rows`, each field through [`spreadsheet_safe`] so no cell runs as a formula.
fn csv_bytes<I, R, F, const N: usize>(rows: I, mut fields: F) -> Result<Bytes, StoreError>
where
    I: IntoIterator<Item = R>,
    F: FnMut(R) -> [String; N],
{
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(64 * 1024));
    for row in rows {
        let record = fields(row);
        writer
            .write_record(
                record
                    .iter()
                    .map(|field| spreadsheet_safe(field).into_owned()),
            )
            .map_err(|error| StoreError::Config(error.to_string()))?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|error| StoreError::Config(error.to_string()))
}

impl Export {
    /// The next piece of the file, or `None` at its end.
    async fn next(&mut self) -> Result<Option<Bytes>, StoreError> {
        let after = match std::mem::replace(&mut self.cursor, Cursor::Done) {
            Cursor::Done => return Ok(None),
            Cursor::Header => {
                self.cursor = Cursor::After(None);
                let header: &[&str] = match self.kind {
                    ExportKind::Members => &MEMBER_HEADER,
                    ExportKind::Ledger => &LEDGER_HEADER,
                    ExportKind::Liability => &LIABILITY_HEADER,
                };
                let mut writer = csv::Writer::from_writer(Vec::new());
                writer
                    .write_record(header)
                    .map_err(|error| StoreError::Config(error.to_string()))?;
                return writer
                    .into_inner()
                    .map(|bytes| Some(Bytes::from(bytes)))
                    .map_err(|error| StoreError::Config(error.to_string()));
            }
            Cursor::After(after) => after,
        };
        let zone = self.zone;
        let (bytes, last, count) = match self.kind {
            ExportKind::Members => {
                let page = self
                    .store
                    .export_members_page(self.tenant_id, after.as_deref(), EXPORT_PAGE_ROWS)
                    .await?;
                let last = page.last().map(|member| member.id.clone());
                let count = page.len() as i64;
                let bytes = csv_bytes(page, |member| {
                    [
                        member.id,
                        member.phone.unwrap_or_default(),
                        member.name.unwrap_or_default(),
                        member.email.unwrap_or_default(),
                        member.birthday.unwrap_or_default(),
                        member.gender.unwrap_or_default(),
                        member.city.unwrap_or_default(),
                        member.tags.join("|"),
                        member.tier,
                        member.balance.to_string(),
                        member.lifetime_spend.to_string(),
                        member.order_count.to_string(),
                        rfc3339(member.created_at, zone),
                    ]
                })?;
                (bytes, last, count)
            }
            ExportKind::Ledger => {
                let page = self
                    .store
                    .export_ledger_page(self.tenant_id, after.as_deref(), EXPORT_PAGE_ROWS)
                    .await?;
                let last = page.last().map(|entry| entry.transaction_id.clone());
                let mut transactions = 0;
                let mut previous: Option<&str> = None;
                for entry in &page {
                    if previous != Some(entry.transaction_id.as_str()) {
                        transactions += 1;
                        previous = Some(entry.transaction_id.as_str());
                    }
                }
                let bytes = csv_bytes(page, |entry| {
                    [
                        entry.transaction_id,
                        entry.member_id,
                        entry.kind,
                        entry.reason,
                        entry.account,
                        entry.amount.to_string(),
                        rfc3339(entry.occurred_at, zone),
                        entry.asset,
                    ]
                })?;
                (bytes, last, transactions)
            }
            ExportKind::Liability => return self.liability().await.map(Some),
        };
        if count == EXPORT_PAGE_ROWS && last.is_some() {
            self.cursor = Cursor::After(last);
        }
        Ok(Some(bytes))
    }

    /// The whole liability table: one row per month, so it is small whatever the lots.
    async fn liability(&mut self) -> Result<Bytes, StoreError> {
        let settings = self.store.tenant(self.tenant_id).await?;
        let point_value = settings
            .programme_at(chrono::Utc::now())
            .map(|programme| programme.definition.point_value)
            .filter(|value| *value > 0);
        let mut months: BTreeMap<String, i64> = BTreeMap::new();
        let mut after: Option<Timestamp> = None;
        loop {
            let page = self
                .store
                .export_liability_page(self.tenant_id, after, EXPORT_PAGE_MAX)
                .await?;
            for row in &page {
                if let Some(at) = row.expires_at {
                    let month = at.with_timezone(&self.zone).format("%Y-%m").to_string();
                    *months.entry(month).or_default() += row.points;
                }
            }
            match page.last() {
                Some(last) if page.len() as i64 == EXPORT_PAGE_MAX => after = last.expires_at,
                _ => break,
            }
        }
        let never = self.store.export_liability_never(self.tenant_id).await?;
        let rows = months
            .into_iter()
            .chain((never != 0).then(|| ("never".to_owned(), never)));
        csv_bytes(rows, |(month, points)| {
            let value = point_value
                .and_then(|value| value.checked_mul(points))
                .map(|value| value.to_string())
                .unwrap_or_default();
            [month, points.to_string(), value]
        })
    }
}

/// The CSV of `kind` for `tenant_id`, a piece at a time.
pub async fn export_stream(
    store: Store,
    tenant_id: TenantId,
    kind: ExportKind,
) -> Result<impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static, StoreError> {
    let zone = store.tenant(tenant_id).await?.zone;
    let export = Export {
        store,
        tenant_id,
        kind,
        zone,
        cursor: Cursor::Header,
    };
    Ok(futures_util::stream::try_unfold(
        export,
        |mut export| async move { Ok(export.next().await?.map(|bytes| (bytes, export))) },
    ))
}

/// The audit log's name for a download of `kind`; `None` for the liability, which holds no
/// one's personal data.
fn audit_action(kind: ExportKind) -> Option<&'static str> {
    match kind {
        ExportKind::Members => Some("export.members"),
        ExportKind::Ledger => Some("export.ledger"),
        ExportKind::Liability => None,
    }
}

/// Writes the CSV of `kind` for `tenant_id` to `out` (`patron export`; audited as the CLI's);
/// answers the bytes written.
pub async fn write_export(
    store: Store,
    tenant_id: TenantId,
    kind: ExportKind,
    out: &mut impl std::io::Write,
) -> Result<u64, StoreError> {
    if let Some(action) = audit_action(kind) {
        store
            .audit(&patron_store::audit::Change {
                tenant_id,
                actor: &patron_store::audit::Actor::cli(),
                action,
                subject: format!("tenant:{tenant_id}"),
                before: None,
                after: None,
            })
            .await?;
    }
    let stream = export_stream(store, tenant_id, kind).await?;
    let mut stream = std::pin::pin!(stream);
    let mut written = 0;
    while let Some(bytes) = stream.next().await {
        let bytes = bytes?;
        out.write_all(&bytes)
            .map_err(|error| StoreError::Config(format!("writing the export: {error}")))?;
        written += bytes.len() as u64;
    }
    Ok(written)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_members))
        .routes(routes!(export_ledger))
        .routes(routes!(export_liability))
}

/// Members' personal data leaves in bulk only to owners and managers, and the audit log names
/// who took which file when (`export.members`, `export.ledger`); the liability table holds no
/// one's data and any reader may have it.
async fn check_and_audit(
    state: &AppState,
    caller: &Caller,
    kind: ExportKind,
) -> Result<(), ApiError> {
    let Some(action) = audit_action(kind) else {
        return caller.require(Permission::Read);
    };
    caller.require(Permission::ExportPersonalData)?;
    state
        .store
        .audit(&patron_store::audit::Change {
            tenant_id: caller.0.tenant_id,
            actor: caller.actor(),
            action,
            subject: format!("tenant:{}", caller.0.tenant_id),
            before: None,
            after: None,
        })
        .await?;
    Ok(())
}

async fn csv_response(
    state: AppState,
    caller: Caller,
    kind: ExportKind,
    name: &str,
) -> Result<Response, ApiError> {
    check_and_audit(&state, &caller, kind).await?;
    let stream = export_stream(state.store.clone(), caller.0.tenant_id, kind).await?;
    let stream = stream.map(|piece| {
        piece.map_err(|error| {
            tracing::error!(%error, "export failed mid-stream");
            std::io::Error::other(error.to_string())
        })
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Every member of the tenant, by id: owners and managers (an admin key) only, audited.
#[utoipa::path(
    get,
    path = "/v1/exports/members.csv",
    tag = "exports",
    responses((status = 200, description = "id,phone,name,email,birthday,gender,city,tags,tier,balance,\
        lifetime_spend,order_count,created_at (tags separated by `|`; a text that starts like a \
        spreadsheet formula has an apostrophe first)", content_type = "text/csv", body = String),
        (status = 403, description = "Only owners and managers may export personal data", body = ErrorBody))
)]
async fn export_members(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    csv_response(state, caller, ExportKind::Members, "members.csv").await
}

/// Every ledger entry of the tenant, by transaction: owners and managers (an admin key) only,
/// audited.
#[utoipa::path(
    get,
    path = "/v1/exports/ledger.csv",
    tag = "exports",
    responses((status = 200, description = "transaction_id,member_id,kind,reason,account,amount,occurred_at,asset: \
        one row per entry; `reason` is the transaction's JSON reason; `asset` is points, money or stamps:<card>", content_type = "text/csv", body = String),
        (status = 403, description = "Only owners and managers may export personal data", body = ErrorBody))
)]
async fn export_ledger(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    csv_response(state, caller, ExportKind::Ledger, "ledger.csv").await
}

/// Points outstanding by the month they expire.
#[utoipa::path(
    get,
    path = "/v1/exports/liability.csv",
    tag = "exports",
    responses((status = 200, description = "expiry_month,points,value: `YYYY-MM` in the tenant's zone or `never`; \
        value in minor units at the programme's point value (empty when it has none)", content_type = "text/csv",
        body = String))
)]
async fn export_liability(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    csv_response(state, caller, ExportKind::Liability, "liability.csv").await
}
