//! Programme versions as an editor sees them: the published versions, and one draft per tenant
//! that is edited, previewed and then published as a new version.

use crate::audit::{Actor, Change};
use crate::sql::Bind;
use crate::{binds, Store, StoreError};
use patron_core::member::{MemberState, PeriodTotals, Profile};
use patron_core::programme::{Programme, ProgrammeDefinition};
use patron_core::tiers;
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::TenantId;
use serde::Serialize;

/// A published version.
#[derive(Clone, Debug, Serialize)]
pub struct VersionView {
    pub version: i64,
    pub effective_from: String,
    /// Whether purchases happening now are judged by this version.
    pub current: bool,
    pub definition: ProgrammeDefinition,
}

/// The tenant's draft.
#[derive(Clone, Debug, Serialize)]
pub struct DraftView {
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
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
    /// force would, at `now`. Each member is settled under both programmes by core's rule
    /// ([`tiers::settled_position`]), a round of members at a time, so a draft identical to the
    /// version in force moves nobody, whoever is in a grace period, on hold or not yet reviewed.
    pub async fn tier_impact(
        &self,
        tenant_id: TenantId,
        definition: &ProgrammeDefinition,
        now: Timestamp,
    ) -> Result<TierImpact, StoreError> {
        let counted = std::sync::atomic::AtomicI64::new(0);
        self.tier_impact_counting(tenant_id, definition, now, &counted)
            .await
    }

    /// [`Store::tier_impact`], adding to `counted` the members settled so far (a count that
    /// takes a while on a large tenant can say how far it is).
    pub async fn tier_impact_counting(
        &self,
        tenant_id: TenantId,
        definition: &ProgrammeDefinition,
        now: Timestamp,
        counted: &std::sync::atomic::AtomicI64,
    ) -> Result<TierImpact, StoreError> {
        let settings = self.tenant(tenant_id).await?;
        let zone = settings.zone;
        let draft = validate(definition)?;
        let in_force = settings
            .programme_at(now)
            .filter(|programme| !programme.definition.tiers.is_empty());
        // The earliest month either qualification reads (none for lifetime counters).
        let first_month = [Some(&draft), in_force.map(|programme| programme.as_ref())]
            .into_iter()
            .flatten()
            .filter_map(|programme| tiers::first_qualifying_month(programme, now, zone))
            .min();
        let mut impact = TierImpact::default();
        let mut after = String::new();
        loop {
            let members = self
                .tier_states(tenant_id, &after, first_month, now)
                .await?;
            let Some(last) = members.last() else { break };
            after = last.id.to_string();
            for member in &members {
                impact.members += 1;
                let new_position = tiers::settled_position(&draft, member, now, zone)
                    .map_or(-1, |position| position as i64);
                let old_code = match in_force {
                    Some(programme) => tiers::settled_position(programme, member, now, zone)
                        .map(|position| programme.definition.tiers[position].code.as_str()),
                    None => Some(member.tier.as_str()),
                };
                let old_position = old_code.map_or(-1, |code| draft_position(definition, code));
                if new_position != old_position {
                    impact.changed += 1;
                    if old_position >= 0 && new_position > old_position {
                        impact.up += 1;
                    } else {
                        impact.down += 1;
                    }
                }
            }
            counted.fetch_add(members.len() as i64, std::sync::atomic::Ordering::Relaxed);
            if (members.len() as i64) < TIER_IMPACT_MEMBERS_PER_ROUND {
                break;
            }
        }
        Ok(impact)
    }

    /// Up to [`TIER_IMPACT_MEMBERS_PER_ROUND`] members of the tenant after the id `after`, with
    /// what tier rules read: tier, hold, lifetime counters and the monthly totals from
    /// `first_month` (none when `None`).
    async fn tier_states(
        &self,
        tenant_id: TenantId,
        after: &str,
        first_month: Option<i32>,
        now: Timestamp,
    ) -> Result<Vec<MemberState>, StoreError> {
        let rows = self
            .db
            .fetch(
                "SELECT id, tier, tier_held_until, lifetime_spend, lifetime_points FROM members \
                 WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                binds![tenant_id.to_string(), after, TIER_IMPACT_MEMBERS_PER_ROUND],
            )
            .await?;
        let mut members: Vec<MemberState> = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = crate::batch::parse_member_id(&row.text("id")?)?;
            let mut state = MemberState::new(id, Profile::default(), &row.text("tier")?, now);
            state.tier_held_until = row.opt_int("tier_held_until")?.map(from_micros);
            state.lifetime_spend = patron_core::Money(row.int("lifetime_spend")?);
            state.lifetime_points = patron_core::Points(row.int("lifetime_points")?);
            members.push(state);
        }
        if let (Some(first_month), false) = (first_month, members.is_empty()) {
            let index: std::collections::HashMap<String, usize> = members
                .iter()
                .enumerate()
                .map(|(position, member)| (member.id.to_string(), position))
                .collect();
            let sql = crate::sql::by_keys(
                self.backend,
                &format!("SELECT member_id, month, spend, points FROM member_periods WHERE month >= {first_month} AND"),
                "member_id",
                1,
                false,
            );
            let ids: Vec<String> = index.keys().cloned().collect();
            for row in self.db.fetch(&sql, vec![Bind::Texts(ids)]).await? {
                let Some(position) = index.get(&row.text("member_id")?) else {
                    continue;
                };
                let month = i32::try_from(row.int("month")?)
                    .map_err(|_| StoreError::Corrupt("member period month".into()))?;
                members[*position].periods.insert(
                    month,
                    PeriodTotals {
                        spend: patron_core::Money(row.int("spend")?),
                        points: patron_core::Points(row.int("points")?),
                    },
                );
            }
        }
        Ok(members)
    }
}

/// Members read per round by [`Store::tier_impact`].
const TIER_IMPACT_MEMBERS_PER_ROUND: i64 = 5_000;

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
