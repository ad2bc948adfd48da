//! Programme versions as an editor sees them: the published versions, and one draft per tenant
//! that is edited, previewed and then published as a new version.

use crate::audit::{Actor, Change};
use crate::sql::Bind;
use crate::{binds, Store, StoreError};
use patron_core::programme::{
    Programme, ProgrammeDefinition, QualificationMetric, QualificationWindow,
};
use patron_core::time::{from_micros, month_index, to_micros, year_of_month_index, Timestamp};
use patron_core::TenantId;
use serde::Serialize;

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

/// How many members a definition's tiers would place in another tier than the programme in
/// force would, each judged by their qualifying value now under each programme's own
/// qualification (metric and window). Both sides are settled alike: upgrades at once, a
/// manager's hold keeps the tier held, a member below their tier lands where reviews take them
/// once grace has run. So a draft identical to the version in force moves nobody: this is how
/// far the thresholds move people, not when a review would move them.
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
        self.db
            .execute(
                "INSERT INTO programme_drafts (tenant_id, definition, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id) DO UPDATE SET definition = excluded.definition, \
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                binds![tenant_id.to_string(), text, now, &actor.0],
            )
            .await?;
        self.draft(tenant_id)
            .await?
            .ok_or(StoreError::NotFound { what: "draft" })
    }

    /// The draft, if there is one.
    pub async fn draft(&self, tenant_id: TenantId) -> Result<Option<DraftView>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let row = self
            .db
            .fetch_optional(
                "SELECT definition, updated_at, updated_by FROM programme_drafts WHERE tenant_id = $1",
                binds![tenant_id.to_string()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(DraftView {
            definition: serde_json::from_str(&row.text("definition")?)
                .map_err(|error| StoreError::Corrupt(format!("draft: {error}")))?,
            updated_at: crate::rfc3339(from_micros(row.int("updated_at")?), zone),
            updated_by: row.text("updated_by")?,
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
            self.db
                .execute(
                    "DELETE FROM programme_drafts WHERE tenant_id = $1",
                    binds![tenant_id.to_string()],
                )
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

    /// How many members `definition`'s tiers would place in another tier than the programme in
    /// force would, at `now`: one statement over the members and their monthly totals, on
    /// either backend. Each member is settled under both programmes by the same rule
    /// ([`settled_position_sql`]), so a draft identical to the version in force moves nobody,
    /// whoever is in a grace period, on hold or not yet reviewed.
    pub async fn tier_impact(
        &self,
        tenant_id: TenantId,
        definition: &ProgrammeDefinition,
        now: Timestamp,
    ) -> Result<TierImpact, StoreError> {
        let settings = self.tenant(tenant_id).await?;
        let zone = settings.zone;
        if definition.tiers.is_empty() {
            let row = self
                .db
                .fetch_one(
                    "SELECT COUNT(*) AS members FROM members WHERE tenant_id = $1",
                    binds![tenant_id.to_string()],
                )
                .await?;
            return Ok(TierImpact {
                members: row.int("members")?,
                ..TierImpact::default()
            });
        }
        // The pieces are made in the order they stand in the statement, so each placeholder
        // first appears after those numbered before it (SQLite numbers `$n` by first
        // appearance): `$1` and `$2`, then the qualifying values, then the positions.
        let mut values: Vec<Bind> = binds![tenant_id.to_string(), to_micros(now)];
        let in_force = settings
            .programme_at(now)
            .filter(|programme| !programme.definition.tiers.is_empty());
        let draft_qualifying = qualifying_sql(definition, now, zone, &mut values);
        let current_qualifying = match in_force {
            Some(programme) => qualifying_sql(&programme.definition, now, zone, &mut values),
            None => String::from("0"),
        };
        let draft = settled_position_sql(definition, "q_draft", &mut values);
        // Where the programme in force would settle each member, as a position in the draft's
        // tiers (-1: a tier the draft does not have). Without tiers in force, the tier held.
        let current = match in_force {
            Some(programme) => {
                let settled = settled_position_sql(&programme.definition, "q_current", &mut values);
                let mut translated = format!("CASE {settled}");
                for (index, tier) in programme.definition.tiers.iter().enumerate() {
                    let in_draft = draft_position(definition, &tier.code);
                    translated.push_str(&format!(" WHEN {index} THEN {in_draft}"));
                }
                translated.push_str(" ELSE -1 END");
                translated
            }
            None => held_position_sql(definition, &mut values),
        };
        let sql = format!(
            "WITH tenant_members AS (SELECT id, tier, tier_held_until, lifetime_spend, lifetime_points \
             FROM members WHERE tenant_id = $1), \
             qualified AS (SELECT m.tier AS tier, \
             CASE WHEN m.tier_held_until IS NOT NULL AND m.tier_held_until > $2 THEN 1 ELSE 0 END AS held, \
             {draft_qualifying} AS q_draft, {current_qualifying} AS q_current FROM tenant_members m), \
             positions AS (SELECT {draft} AS new_position, {current} AS old_position FROM qualified) \
             SELECT COUNT(*) AS members, \
             COALESCE(SUM(CASE WHEN new_position <> old_position THEN 1 ELSE 0 END), 0) AS changed, \
             COALESCE(SUM(CASE WHEN old_position >= 0 AND new_position > old_position THEN 1 ELSE 0 END), 0) AS up, \
             COALESCE(SUM(CASE WHEN old_position < 0 OR new_position < old_position THEN 1 ELSE 0 END), 0) AS down \
             FROM positions"
        );
        let row = self.db.fetch_one(&sql, values).await?;
        Ok(TierImpact {
            members: row.int("members")?,
            changed: row.int("changed")?,
            up: row.int("up")?,
            down: row.int("down")?,
        })
    }
}

/// The position of the tier `code` in `definition` (-1 when it has no such tier). Positions are
/// written into statements: they are our own small integers.
fn draft_position(definition: &ProgrammeDefinition, code: &str) -> i64 {
    definition
        .tiers
        .iter()
        .position(|tier| tier.code == code)
        .map(|index| index as i64)
        .unwrap_or(-1)
}

/// The member's qualifying value (`m` is the member's row) under `definition`'s qualification
/// at `now`, as an SQL expression; its bounds are bound in `values`.
fn qualifying_sql(
    definition: &ProgrammeDefinition,
    now: Timestamp,
    zone: chrono_tz::Tz,
    values: &mut Vec<Bind>,
) -> String {
    let qualification = &definition.qualification;
    let column = match qualification.metric {
        QualificationMetric::Spend => "spend",
        QualificationMetric::Points => "points",
    };
    let current = month_index(now, zone);
    let first_month = match qualification.window {
        QualificationWindow::Lifetime => return format!("m.lifetime_{column}"),
        QualificationWindow::Rolling12Months => current - 11,
        QualificationWindow::CalendarYear => (year_of_month_index(current) - 1970) * 12,
    };
    values.push(i64::from(first_month).into());
    values.push(i64::from(current).into());
    let (first, last) = (values.len() - 1, values.len());
    format!(
        "(SELECT CAST(COALESCE(SUM(p.{column}), 0) AS BIGINT) FROM member_periods p \
         WHERE p.member_id = m.id AND p.month BETWEEN ${first} AND ${last})"
    )
}

/// The position in `definition` of the tier the member holds (column `tier`) (-1 when it has no such tier).
fn held_position_sql(definition: &ProgrammeDefinition, values: &mut Vec<Bind>) -> String {
    let mut held = String::from("CASE tier");
    for (index, tier) in definition.tiers.iter().enumerate() {
        values.push(tier.code.clone().into());
        held.push_str(&format!(" WHEN ${} THEN {index}", values.len()));
    }
    held.push_str(" ELSE -1 END");
    held
}

/// Where `definition`'s tier rules settle the member, as a position in its tiers: the tier
/// their qualifying value reaches when that is higher than the tier held (an upgrade is
/// immediate); the tier held while a manager's hold lasts; otherwise the tier the value reaches
/// (where reviews take them once grace periods have run, one level at a time). Reads the
/// columns `qualifying`, `tier` and `held` (1 while a manager's hold lasts).
fn settled_position_sql(
    definition: &ProgrammeDefinition,
    qualifying: &str,
    values: &mut Vec<Bind>,
) -> String {
    let mut reached = String::from("CASE");
    for (index, tier) in definition.tiers.iter().enumerate().skip(1).rev() {
        values.push(tier.threshold.into());
        reached.push_str(&format!(
            " WHEN {qualifying} >= ${} THEN {index}",
            values.len()
        ));
    }
    reached.push_str(" ELSE 0 END");
    let held = held_position_sql(definition, values);
    format!(
        "(CASE WHEN {reached} >= {held} THEN {reached} \
         WHEN held = 1 THEN {held} \
         ELSE {reached} END)"
    )
}
