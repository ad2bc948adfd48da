//! Programme versions as an editor sees them: the published versions, and one draft per tenant
//! that is edited, previewed and then published as a new version.

use crate::audit::{Actor, Change};
use crate::{Store, StoreError};
use patron_core::programme::{Programme, ProgrammeDefinition};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::TenantId;
use serde::Serialize;
use sqlx::Row;

/// A published version.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub effective_from: String,
    /// Whether purchases happening now are judged by this version.
    pub current: bool,
    #[schema(value_type = Object)]
    pub definition: ProgrammeDefinition,
}

/// The tenant's draft.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DraftView {
    #[schema(value_type = Object)]
    pub definition: ProgrammeDefinition,
    pub updated_at: String,
    pub updated_by: String,
}

/// Checks a definition compiles, naming the field at fault.
pub fn validate(definition: &ProgrammeDefinition) -> Result<Programme, StoreError> {
    Programme::compile(0, definition.clone()).map_err(|error| StoreError::Invalid {
        field: format!("definition.{}", error.field),
        message: error.message,
    })
}

impl Store {
    /// Every published version, oldest first.
    pub async fn programme_versions(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<VersionView>, StoreError> {
        let settings = self.tenant(tenant_id).await?;
        let current = settings
            .programme_at(chrono::Utc::now())
            .map(|programme| programme.version);
        Ok(settings
            .programmes
            .iter()
            .map(|(from, programme)| VersionView {
                version: programme.version,
                effective_from: crate::rfc3339(*from, settings.zone),
                current: Some(programme.version) == current,
                definition: programme.definition.clone(),
            })
            .collect())
    }

    /// Saves the draft (it must compile).
    pub async fn save_draft(
        &self,
        tenant_id: TenantId,
        definition: &ProgrammeDefinition,
        actor: &Actor,
    ) -> Result<DraftView, StoreError> {
        validate(definition)?;
        self.tenant(tenant_id).await?;
        let text = serde_json::to_string(definition).expect("a definition serialises");
        let now = to_micros(chrono::Utc::now());
        sqlx::query(
            "INSERT INTO programme_drafts (tenant_id, definition, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET definition = excluded.definition, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(tenant_id.to_string())
        .bind(text)
        .bind(now)
        .bind(actor.0.clone())
        .execute(&self.pool)
        .await?;
        self.draft(tenant_id)
            .await?
            .ok_or(StoreError::NotFound { what: "draft" })
    }

    /// The draft, if there is one.
    pub async fn draft(&self, tenant_id: TenantId) -> Result<Option<DraftView>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let row = sqlx::query(
            "SELECT definition, updated_at, updated_by FROM programme_drafts WHERE tenant_id = $1",
        )
        .bind(tenant_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.get(0);
        Ok(Some(DraftView {
            definition: serde_json::from_str(&text)
                .map_err(|error| StoreError::Corrupt(format!("draft: {error}")))?,
            updated_at: crate::rfc3339(from_micros(row.get(1)), zone),
            updated_by: row.get(2),
        }))
    }

    /// Publishes a definition as a new version from `effective_from`, records it in the audit
    /// log, and discards the draft when `from_draft`.
    pub async fn publish_version(
        &self,
        tenant_id: TenantId,
        definition: ProgrammeDefinition,
        effective_from: Timestamp,
        actor: &Actor,
        from_draft: bool,
    ) -> Result<i64, StoreError> {
        let before = self
            .tenant(tenant_id)
            .await?
            .programme_at(chrono::Utc::now())
            .map(|programme| programme.version);
        let version = self
            .publish_programme(tenant_id, definition, effective_from)
            .await?;
        if from_draft {
            sqlx::query("DELETE FROM programme_drafts WHERE tenant_id = $1")
                .bind(tenant_id.to_string())
                .execute(&self.pool)
                .await?;
        }
        self.audit(&Change {
            tenant_id,
            actor,
            action: "programme.publish",
            subject: format!("programme:{version}"),
            before: Some(serde_json::json!({ "current_version": before })),
            after: Some(serde_json::json!({
                "version": version,
                "effective_from": crate::rfc3339(effective_from, chrono_tz::UTC),
            })),
        })
        .await?;
        Ok(version)
    }
}
