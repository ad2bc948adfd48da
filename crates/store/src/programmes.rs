//! Programme versions as an editor sees them: the published versions, and one draft per tenant
//! that is edited, previewed and then published as a new version.

use crate::audit::{Actor, Change};
use crate::sql::Bind;
use crate::{Store, StoreError};
use patron_core::programme::{
    Programme, ProgrammeDefinition, QualificationMetric, QualificationWindow,
};
use patron_core::time::{from_micros, month_index, to_micros, year_of_month_index, Timestamp};
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

/// How many members a definition's tiers would place in another tier than the one they hold,
/// judged by their qualifying value now under the definition's own qualification (metric and
/// window). Grace periods and holds are not applied: this is how far the thresholds move
/// people, not when a review would move them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TierImpact {
    /// Every member of the tenant.
    pub members: i64,
    /// Members whose tier would differ.
    pub changed: i64,
    /// Of those, members who would rise.
    pub up: i64,
    /// Of those, members who would fall (or hold a tier the definition no longer has).
    pub down: i64,
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

    /// How many members `definition`'s tiers would move, at `now`: one statement over the
    /// members and their monthly totals, on either backend.
    pub async fn tier_impact(
        &self,
        tenant_id: TenantId,
        definition: &ProgrammeDefinition,
        now: Timestamp,
    ) -> Result<TierImpact, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let mut values: Vec<Bind> = vec![tenant_id.to_string().into()];
        let qualification = &definition.qualification;
        let column = match qualification.metric {
            QualificationMetric::Spend => "spend",
            QualificationMetric::Points => "points",
        };
        let current = month_index(now, zone);
        let first_month = match qualification.window {
            QualificationWindow::Lifetime => None,
            QualificationWindow::Rolling12Months => Some(current - 11),
            QualificationWindow::CalendarYear => Some((year_of_month_index(current) - 1970) * 12),
        };
        let qualifying = match first_month {
            None => format!("m.lifetime_{column}"),
            Some(first) => {
                values.push(i64::from(first).into());
                values.push(i64::from(current).into());
                format!(
                    "(SELECT CAST(COALESCE(SUM(p.{column}), 0) AS BIGINT) FROM member_periods p \
                     WHERE p.member_id = m.id AND p.month BETWEEN $2 AND $3)"
                )
            }
        };
        let tiers = &definition.tiers;
        if tiers.is_empty() {
            let rows = self
                .read(
                    "SELECT COUNT(*) FROM members WHERE tenant_id = $1",
                    vec![tenant_id.to_string().into()],
                )
                .await?;
            return Ok(TierImpact {
                members: rows.first().map(|row| row.int(0)).unwrap_or(0),
                ..TierImpact::default()
            });
        }
        // Positions are written into the statement (they are our own small integers); codes
        // and thresholds are bound.
        let mut new_position = String::from("CASE");
        for (index, tier) in tiers.iter().enumerate().skip(1).rev() {
            values.push(tier.threshold.into());
            new_position.push_str(&format!(" WHEN q >= ${} THEN {index}", values.len()));
        }
        new_position.push_str(" ELSE 0 END");
        let mut old_position = String::from("CASE tier");
        for (index, tier) in tiers.iter().enumerate() {
            values.push(tier.code.clone().into());
            old_position.push_str(&format!(" WHEN ${} THEN {index}", values.len()));
        }
        old_position.push_str(" ELSE -1 END");
        let sql = format!(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN new_position <> old_position THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN old_position >= 0 AND new_position > old_position THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN old_position < 0 OR new_position < old_position THEN 1 ELSE 0 END), 0) \
             FROM (SELECT {new_position} AS new_position, {old_position} AS old_position FROM \
             (SELECT m.tier AS tier, {qualifying} AS q FROM members m WHERE m.tenant_id = $1) qualified) positions"
        );
        let rows = self.read(&sql, values).await?;
        let row = rows
            .first()
            .ok_or(StoreError::NotFound { what: "members" })?;
        Ok(TierImpact {
            members: row.int(0),
            changed: row.int(1),
            up: row.int(2),
            down: row.int(3),
        })
    }
}
