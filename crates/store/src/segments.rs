//! Segments as stored: each a CEL condition over the members' profiles (see
//! `patron_core::segment`), versioned like programmes, with who is in it as last evaluated
//! (`segment_members`); the members' profiles read a page at a time for the segment tables
//! the application keeps in memory; consent per channel.

use crate::audit::{Actor, Change};
use crate::db::{Bind, Row};
use crate::{binds, Store, StoreError};
use patron_core::segment::{Profile, RfmCutoffs, SalesPolicy, Scalar, SegmentDefinition};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{MemberId, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most segments one tenant keeps (archived ones not counted).
pub const SEGMENTS_MAX: i64 = 200;
/// Most members one page of profiles holds.
pub const PROFILE_PAGE_MAX: usize = 10_000;
/// How far ahead `points_expiring` looks, in days.
pub const EXPIRING_DAYS: i64 = 30;

/// A member's profile as read for a segment table.
#[derive(Clone, Debug)]
pub struct ProfileRow {
    pub member_id: MemberId,
    pub profile: Profile,
    /// Erased: out of every segment.
    pub erased: bool,
    pub updated_at: i64,
}

/// A segment, at its current version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentRecord {
    pub id: String,
    pub version: i64,
    pub name: String,
    pub condition: String,
    pub policy: Option<SalesPolicy>,
    pub created_at: String,
    pub updated_at: String,
}

/// One saved version of a segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentVersion {
    pub version: i64,
    pub name: String,
    pub condition: String,
    pub policy: Option<SalesPolicy>,
    pub created_at: String,
    pub actor: String,
}

/// A channel a member can agree or refuse to be sent promotions on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentChannel {
    Zns,
    Sms,
    Email,
}

impl ConsentChannel {
    pub const ALL: [ConsentChannel; 3] = [
        ConsentChannel::Zns,
        ConsentChannel::Sms,
        ConsentChannel::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentChannel::Zns => "zns",
            ConsentChannel::Sms => "sms",
            ConsentChannel::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<ConsentChannel> {
        ConsentChannel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == text)
    }
}

/// A member's latest word on one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Consent {
    pub channel: ConsentChannel,
    pub granted: bool,
    pub at: String,
    /// Where it was given: `member_page`, `till`, `api`, `import`, `stop_reply`, `unsubscribe`.
    pub source: String,
}

fn segment_from(row: &Row) -> Result<SegmentRecord, StoreError> {
    Ok(SegmentRecord {
        id: row.text("id")?,
        version: row.int("version")?,
        name: row.text("name")?,
        condition: row.text("condition")?,
        policy: policy_from(row.opt_text("policy")?)?,
        created_at: utc(from_micros(row.int("created_at")?)),
        updated_at: utc(from_micros(row.int("updated_at")?)),
    })
}

fn policy_from(text: Option<String>) -> Result<Option<SalesPolicy>, StoreError> {
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|error| StoreError::Corrupt(format!("segment policy: {error}")))
    })
    .transpose()
}

fn invalid(field: &str, message: String) -> StoreError {
    StoreError::Invalid {
        field: field.to_owned(),
        message,
    }
}

const SEGMENT_COLUMNS: &str = "id, version, name, condition, policy, created_at, updated_at";

const PROFILE_SELECT: &str = "SELECT m.id, m.tier, m.city, m.gender, m.tags, m.attributes, m.order_count, \
     m.lifetime_spend, m.points_balance, m.created_at, m.birthday, m.phone, m.email, m.erased_at, \
     m.updated_at, p.first_purchase_at, p.last_purchase_at, p.window_day, p.spend_30d, p.spend_90d, \
     p.spend_365d, p.visits_30d, p.visits_90d, p.visits_365d, p.favourite_store, p.favourite_category, \
     (SELECT COALESCE(SUM(l.remaining), 0) FROM lots l WHERE l.member_id = m.id AND l.asset = 'points' \
      AND l.remaining > 0 AND l.expires_at IS NOT NULL AND l.expires_at <= $1) AS expiring, \
     (SELECT c.granted FROM member_consents c WHERE c.member_id = m.id AND c.channel = 'zns') AS consent_zns, \
     (SELECT c.granted FROM member_consents c WHERE c.member_id = m.id AND c.channel = 'sms') AS consent_sms, \
     (SELECT c.granted FROM member_consents c WHERE c.member_id = m.id AND c.channel = 'email') AS consent_email \
     FROM members m LEFT JOIN member_profiles p ON p.member_id = m.id";

fn profile_from(row: &Row, zone: chrono_tz::Tz) -> Result<ProfileRow, StoreError> {
    let member_id = crate::batch::parse_member_id(&row.text("id")?)?;
    let json = |column: &str| -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&row.text(column)?)
            .map_err(|error| StoreError::Corrupt(format!("member {member_id} {column}: {error}")))
    };
    let tags = match json("tags")? {
        serde_json::Value::Array(tags) => tags
            .into_iter()
            .filter_map(|tag| tag.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let mut attributes = BTreeMap::new();
    if let serde_json::Value::Object(map) = json("attributes")? {
        for (key, value) in map {
            let scalar = match value {
                serde_json::Value::String(text) => Scalar::Text(text),
                serde_json::Value::Bool(flag) => Scalar::Bool(flag),
                serde_json::Value::Number(number) => match number.as_i64() {
                    Some(number) => Scalar::Int(number),
                    None => continue,
                },
                _ => continue,
            };
            attributes.insert(key, scalar);
        }
    }
    let local_day = |at: Option<i64>| at.map(|at| crate::figures::local_day(zone, from_micros(at)));
    let window =
        |column: &str| -> Result<i64, StoreError> { Ok(row.opt_int(column)?.unwrap_or_default()) };
    let consent = |column: &str| -> Result<bool, StoreError> {
        Ok(row.opt_int(column)?.is_some_and(|granted| granted != 0))
    };
    let profile = Profile {
        tier: row.text("tier")?,
        city: row.opt_text("city")?,
        gender: row.opt_text("gender")?,
        favourite_store: row.opt_text("favourite_store")?,
        favourite_category: row.opt_text("favourite_category")?,
        tags,
        attributes,
        order_count: row.int("order_count")?,
        total_spend: row.int("lifetime_spend")?,
        window_spend: [
            window("spend_30d")?,
            window("spend_90d")?,
            window("spend_365d")?,
        ],
        window_visits: [
            window("visits_30d")?,
            window("visits_90d")?,
            window("visits_365d")?,
        ],
        first_purchase_day: local_day(row.opt_int("first_purchase_at")?),
        last_purchase_day: local_day(row.opt_int("last_purchase_at")?),
        joined_day: crate::figures::local_day(zone, from_micros(row.int("created_at")?)),
        points_balance: row.int("points_balance")?,
        points_expiring: row.int("expiring")?,
        birthday: row
            .opt_text("birthday")?
            .and_then(|text| chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok()),
        consent_zns: consent("consent_zns")?,
        consent_sms: consent("consent_sms")?,
        consent_email: consent("consent_email")?,
        has_phone: row.opt_text("phone")?.is_some(),
        has_email: row.opt_text("email")?.is_some(),
    };
    Ok(ProfileRow {
        member_id,
        profile,
        erased: row.opt_int("erased_at")?.is_some(),
        updated_at: row.int("updated_at")?,
    })
}

impl Store {
    /// A page of a tenant's members in id order, after `after`, with their profiles as of now.
    pub async fn profiles_page(
        &self,
        tenant_id: TenantId,
        after: Option<MemberId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<ProfileRow>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let sql = format!(
            "{PROFILE_SELECT} WHERE m.tenant_id = $2 AND m.id > $3 ORDER BY m.id LIMIT {}",
            limit.clamp(1, PROFILE_PAGE_MAX)
        );
        let expiring_until = to_micros(now + chrono::Duration::days(EXPIRING_DAYS));
        let rows = self
            .db
            .fetch(
                &sql,
                binds![
                    expiring_until,
                    tenant_id.to_string(),
                    after.map(|id| id.to_string()).unwrap_or_default()
                ],
            )
            .await?;
        rows.iter().map(|row| profile_from(row, zone)).collect()
    }

    /// A tenant's members changed at or after `since` (µs), in order of change and id, after
    /// the member `after` of that instant (the page's keyset), up to `limit`.
    pub async fn profiles_changed(
        &self,
        tenant_id: TenantId,
        since: i64,
        after: Option<MemberId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<ProfileRow>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let sql = format!(
            "{PROFILE_SELECT} WHERE m.tenant_id = $2 AND m.updated_at >= $3 \
             AND (m.updated_at > $3 OR m.id > $4) ORDER BY m.updated_at, m.id LIMIT {}",
            limit.clamp(1, PROFILE_PAGE_MAX)
        );
        let expiring_until = to_micros(now + chrono::Duration::days(EXPIRING_DAYS));
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let rows = self
            .db
            .fetch(
                &sql,
                binds![expiring_until, tenant_id.to_string(), since, after],
            )
            .await?;
        rows.iter().map(|row| profile_from(row, zone)).collect()
    }

    /// The members of `members` that still exist (a merge removes its source).
    pub async fn existing_members(
        &self,
        tenant_id: TenantId,
        members: Vec<MemberId>,
    ) -> Result<Vec<MemberId>, StoreError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let sql = crate::sql::members_by_id(self.backend, "members.id");
        let ids = members.iter().map(MemberId::to_string).collect();
        self.db
            .fetch(&sql, vec![Bind::Texts(ids), tenant_id.to_string().into()])
            .await?
            .iter()
            .map(|row| crate::batch::parse_member_id(&row.text("id")?))
            .collect()
    }

    /// The tenant's RFM cut-offs as last refreshed, and when.
    pub async fn rfm_cutoffs(
        &self,
        tenant_id: TenantId,
    ) -> Result<Option<(RfmCutoffs, Timestamp)>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT rfm, rfm_at FROM tenant_profiles WHERE tenant_id = $1",
                binds![tenant_id.to_string()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (Some(text), Some(at)) = (row.opt_text("rfm")?, row.opt_int("rfm_at")?) else {
            return Ok(None);
        };
        let values: [[i64; 4]; 3] = serde_json::from_str(&text)
            .map_err(|error| StoreError::Corrupt(format!("rfm cut-offs: {error}")))?;
        Ok(Some((
            RfmCutoffs {
                recency: values[0],
                frequency: values[1],
                monetary: values[2],
            },
            from_micros(at),
        )))
    }

    /// Keeps the tenant's RFM cut-offs.
    pub async fn save_rfm_cutoffs(
        &self,
        tenant_id: TenantId,
        cutoffs: &RfmCutoffs,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(&[cutoffs.recency, cutoffs.frequency, cutoffs.monetary])
            .expect("numbers serialise");
        self.db
            .execute(
                "INSERT INTO tenant_profiles (tenant_id, rfm, rfm_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET rfm = excluded.rfm, rfm_at = excluded.rfm_at",
                binds![tenant_id.to_string(), text, to_micros(at)],
            )
            .await?;
        Ok(())
    }

    /// The tenant's segments (not archived), by name.
    pub async fn segments(&self, tenant_id: TenantId) -> Result<Vec<SegmentRecord>, StoreError> {
        self.db
            .fetch(
                &format!(
                    "SELECT {SEGMENT_COLUMNS} FROM segments WHERE tenant_id = $1 AND archived_at IS NULL ORDER BY name, id"
                ),
                binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(segment_from)
            .collect()
    }

    /// One segment (not archived).
    pub async fn segment(
        &self,
        tenant_id: TenantId,
        segment_id: &str,
    ) -> Result<SegmentRecord, StoreError> {
        let row = self
            .db
            .fetch_optional(
                &format!(
                    "SELECT {SEGMENT_COLUMNS} FROM segments WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL"
                ),
                binds![tenant_id.to_string(), segment_id],
            )
            .await?
            .ok_or(StoreError::NotFound { what: "segment" })?;
        segment_from(&row)
    }

    /// Every version of a segment, newest first.
    pub async fn segment_versions(
        &self,
        tenant_id: TenantId,
        segment_id: &str,
    ) -> Result<Vec<SegmentVersion>, StoreError> {
        self.segment(tenant_id, segment_id).await?;
        self.db
            .fetch(
                "SELECT version, name, condition, policy, created_at, actor FROM segment_versions \
                 WHERE segment_id = $1 ORDER BY version DESC",
                binds![segment_id],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(SegmentVersion {
                    version: row.int("version")?,
                    name: row.text("name")?,
                    condition: row.text("condition")?,
                    policy: policy_from(row.opt_text("policy")?)?,
                    created_at: utc(from_micros(row.int("created_at")?)),
                    actor: row.text("actor")?,
                })
            })
            .collect()
    }

    /// Saves a segment: a new one (`segment_id` `None`) at version 1, or a new version of an
    /// existing one, which must still be at `expected_version` when given. The definition is
    /// checked and its condition compiled first.
    pub async fn save_segment(
        &self,
        tenant_id: TenantId,
        segment_id: Option<&str>,
        expected_version: Option<i64>,
        definition: &SegmentDefinition,
        actor: &Actor,
    ) -> Result<SegmentRecord, StoreError> {
        definition
            .compile()
            .map_err(|error| invalid(error.field, error.message))?;
        let policy = definition
            .policy
            .as_ref()
            .map(|policy| serde_json::to_string(policy).expect("a policy serialises"));
        let name = definition.name.trim().to_owned();
        let now = to_micros(chrono::Utc::now());
        let mut tx = self.db.begin_write().await?;
        let same_name = tx
            .fetch_optional(
                "SELECT id FROM segments WHERE tenant_id = $1 AND name = $2 AND archived_at IS NULL",
                binds![tenant_id.to_string(), name.clone()],
            )
            .await?;
        if let Some(other) = same_name {
            if Some(other.text("id")?.as_str()) != segment_id {
                return Err(invalid("name", "another segment has this name".into()));
            }
        }
        let (id, version, created_at, before) = match segment_id {
            None => {
                let count = tx
                    .fetch_one(
                        "SELECT COUNT(*) AS n FROM segments WHERE tenant_id = $1 AND archived_at IS NULL",
                        binds![tenant_id.to_string()],
                    )
                    .await?
                    .int("n")?;
                if count >= SEGMENTS_MAX {
                    return Err(invalid(
                        "name",
                        format!("a tenant keeps at most {SEGMENTS_MAX} segments; archive one"),
                    ));
                }
                (uuid::Uuid::now_v7().to_string(), 1, now, None)
            }
            Some(id) => {
                let lock = match self.backend {
                    crate::Backend::Postgres => " FOR UPDATE",
                    crate::Backend::Sqlite => "",
                };
                let row = tx
                    .fetch_optional(
                        &format!(
                            "SELECT {SEGMENT_COLUMNS} FROM segments WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL{lock}"
                        ),
                        binds![tenant_id.to_string(), id],
                    )
                    .await?
                    .ok_or(StoreError::NotFound { what: "segment" })?;
                let current = segment_from(&row)?;
                if expected_version.is_some_and(|expected| expected != current.version) {
                    return Err(StoreError::Conflict {
                        what: "segment version (someone saved it meanwhile)",
                    });
                }
                (
                    id.to_owned(),
                    current.version + 1,
                    row.int("created_at")?,
                    Some(current),
                )
            }
        };
        if version == 1 {
            tx.execute(
                "INSERT INTO segments (id, tenant_id, name, version, condition, policy, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                binds![id.clone(), tenant_id.to_string(), name.clone(), version, definition.condition.clone(), policy.clone(), now, now],
            )
            .await?;
        } else {
            tx.execute(
                "UPDATE segments SET name = $1, version = $2, condition = $3, policy = $4, updated_at = $5 WHERE id = $6",
                binds![name.clone(), version, definition.condition.clone(), policy.clone(), now, id.clone()],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO segment_versions (segment_id, version, name, condition, policy, created_at, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            binds![id.clone(), version, name.clone(), definition.condition.clone(), policy, now, actor.0.clone()],
        )
        .await?;
        let record = SegmentRecord {
            id: id.clone(),
            version,
            name,
            condition: definition.condition.clone(),
            policy: definition.policy.clone(),
            created_at: utc(from_micros(created_at)),
            updated_at: utc(from_micros(now)),
        };
        crate::audit::record_tx(
            &mut tx,
            &Change {
                tenant_id,
                actor,
                action: if version == 1 {
                    "segment.create"
                } else {
                    "segment.update"
                },
                subject: format!("segment:{id}"),
                before: before.map(|before| serde_json::to_value(before).expect("serialises")),
                after: Some(serde_json::to_value(&record).expect("serialises")),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Archives a segment: it stops counting and its members are forgotten; its versions stay.
    pub async fn archive_segment(
        &self,
        tenant_id: TenantId,
        segment_id: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        let changed = tx
            .execute(
                "UPDATE segments SET archived_at = $1 WHERE tenant_id = $2 AND id = $3 AND archived_at IS NULL",
                binds![to_micros(chrono::Utc::now()), tenant_id.to_string(), segment_id],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound { what: "segment" });
        }
        tx.execute(
            "DELETE FROM segment_members WHERE segment_id = $1",
            binds![segment_id],
        )
        .await?;
        crate::audit::record_tx(
            &mut tx,
            &Change {
                tenant_id,
                actor,
                action: "segment.archive",
                subject: format!("segment:{segment_id}"),
                before: None,
                after: None,
            },
        )
        .await?;
        tx.commit().await
    }

    /// Who is in a segment as last recorded.
    pub async fn segment_member_ids(&self, segment_id: &str) -> Result<Vec<MemberId>, StoreError> {
        self.db
            .fetch(
                "SELECT member_id FROM segment_members WHERE segment_id = $1",
                binds![segment_id],
            )
            .await?
            .iter()
            .map(|row| crate::batch::parse_member_id(&row.text("member_id")?))
            .collect()
    }

    /// Records members joining and leaving a segment.
    pub async fn record_segment_changes(
        &self,
        tenant_id: TenantId,
        segment_id: &str,
        joined: &[MemberId],
        left: &[MemberId],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if joined.is_empty() && left.is_empty() {
            return Ok(());
        }
        let backend = self.backend;
        let mut tx = self.db.begin_write().await?;
        for chunk in left.chunks(10_000) {
            let ids: Vec<String> = chunk.iter().map(MemberId::to_string).collect();
            tx.execute(
                &format!(
                    "DELETE FROM segment_members WHERE segment_id = $1 AND {}",
                    crate::sql::one_of(backend, "member_id", 2)
                ),
                vec![segment_id.into(), Bind::Texts(ids)],
            )
            .await?;
        }
        let mut rows = crate::sql::Rows::new(4);
        for member in joined {
            rows.push(vec![
                segment_id.into(),
                member.to_string().into(),
                tenant_id.to_string().into(),
                to_micros(at).into(),
            ]);
        }
        tx.execute_all(rows.statements(
            backend,
            "INSERT INTO segment_members (segment_id, member_id, tenant_id, joined_at)",
            "ON CONFLICT (segment_id, member_id) DO NOTHING",
        ))
        .await?;
        tx.commit().await
    }

    /// A member's latest word per channel.
    pub async fn consents(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
    ) -> Result<Vec<Consent>, StoreError> {
        self.db
            .fetch(
                "SELECT channel, granted, at, source FROM member_consents WHERE tenant_id = $1 AND member_id = $2 ORDER BY channel",
                binds![tenant_id.to_string(), member_id.to_string()],
            )
            .await?
            .iter()
            .filter_map(|row| {
                let channel = row.text("channel").map(|text| ConsentChannel::parse(&text));
                match channel {
                    Ok(Some(channel)) => Some(Ok((channel, row))),
                    Ok(None) => None,
                    Err(error) => Some(Err(error)),
                }
            })
            .map(|found| {
                let (channel, row) = found?;
                Ok(Consent {
                    channel,
                    granted: row.int("granted")? != 0,
                    at: utc(from_micros(row.int("at")?)),
                    source: row.text("source")?,
                })
            })
            .collect()
    }

    /// Records a member's word on one channel (kept in the log too) and marks the member
    /// changed, so segments see it.
    pub async fn set_consent(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
        channel: ConsentChannel,
        granted: bool,
        source: &str,
        at: Timestamp,
    ) -> Result<Consent, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let found = tx
            .fetch_optional(
                "SELECT id FROM members WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL",
                binds![tenant_id.to_string(), member_id.to_string()],
            )
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound { what: "member" });
        }
        let values = binds![
            member_id.to_string(),
            tenant_id.to_string(),
            channel.as_str(),
            i64::from(granted),
            to_micros(at),
            source
        ];
        tx.execute(
            "INSERT INTO member_consents (member_id, tenant_id, channel, granted, at, source) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (member_id, channel) DO UPDATE SET \
             granted = excluded.granted, at = excluded.at, source = excluded.source",
            values.clone(),
        )
        .await?;
        let mut logged = vec![Bind::from(uuid::Uuid::now_v7().to_string())];
        logged.extend(values);
        tx.execute(
            "INSERT INTO consent_log (id, member_id, tenant_id, channel, granted, at, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            logged,
        )
        .await?;
        tx.execute(
            "UPDATE members SET updated_at = $1 WHERE id = $2",
            binds![to_micros(chrono::Utc::now()), member_id.to_string()],
        )
        .await?;
        tx.commit().await?;
        Ok(Consent {
            channel,
            granted,
            at: utc(at),
            source: source.to_owned(),
        })
    }
}

fn utc(at: Timestamp) -> String {
    crate::model::rfc3339(at, chrono_tz::UTC)
}
