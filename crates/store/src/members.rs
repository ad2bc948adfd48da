//! Members as an integrator manages them: listing and search with a cursor, profile updates,
//! merging two members into one, and what Decree 13/2023 asks (a member's data export and
//! erasure). Every change is written to the audit log in the same transaction.

use crate::audit::{self, Actor, Change};
use crate::batch::MEMBER_SELECT;
use crate::db::{Row, Tx};
use crate::error::Unique;
use crate::figures::{figure, Figures, MemberFigures};
use crate::sql::Bind;
use crate::{rfc3339, Store, StoreError};
use patron_core::member::Profile;
use patron_core::time::{from_micros, to_micros};
use patron_core::{MemberId, Phone, TenantId};
use serde::Serialize;

/// Most members in one page of a list.
pub const MEMBER_PAGE_MAX: i64 = 200;
/// Longest search text, in characters.
pub const SEARCH_LENGTH_MAX: usize = 100;
/// Fewest digits a search made only of digits needs to match part of a phone ("5678",
/// "0912 345"); shorter ones search names and e-mails only.
pub const PHONE_DIGITS_MIN: usize = 4;

/// `text` in lower case without Vietnamese diacritics ("Trần Thị Đào" -> "tran thi dao"),
/// words separated by one space. Precomposed letters are mapped; combining marks are dropped.
pub fn fold_for_search(text: &str) -> String {
    const FOLDS: &[(char, &str)] = &[
        ('a', "àáảãạăằắẳẵặâầấẩẫậ"),
        ('e', "èéẻẽẹêềếểễệ"),
        ('i', "ìíỉĩị"),
        ('o', "òóỏõọôồốổỗộơờớởỡợ"),
        ('u', "ùúủũụưừứửữự"),
        ('y', "ỳýỷỹỵ"),
        ('d', "đ"),
    ];
    let folded: String = text
        .to_lowercase()
        .chars()
        .filter(|letter| !('\u{300}'..='\u{36f}').contains(letter))
        .map(|letter| {
            FOLDS
                .iter()
                .find(|(_, accented)| accented.contains(letter))
                .map(|(plain, _)| *plain)
                .unwrap_or(letter)
        })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The member's name and e-mail as searched: folded, NULL when there is neither.
pub(crate) fn search_name_key(profile: &Profile) -> Option<String> {
    let parts: Vec<String> = [&profile.name, &profile.email]
        .into_iter()
        .flatten()
        .map(|text| fold_for_search(text))
        .collect();
    (!parts.is_empty()).then(|| format!(" {} ", parts.join(" ")))
}

/// The member's phone as searched by its digits: national ("0912345678") and international
/// ("84912345678") spellings; NULL without a phone.
pub(crate) fn search_phone_key(profile: &Profile) -> Option<String> {
    let international = profile.phone.as_ref()?.as_str().trim_start_matches('+');
    Some(match international.strip_prefix("84") {
        Some(national) => format!("0{national} {international}"),
        None => international.to_owned(),
    })
}

/// The profile columns of `members`, read by [`profile_from_row`].
const PROFILE_COLUMNS: &str = "phone, email, name, birthday, gender, city, tags, attributes";

/// A member's profile from a row with [`PROFILE_COLUMNS`] (a row of `batch::MEMBER_SELECT` has
/// them too). A stored phone or birthday that no longer parses reads as none.
pub(crate) fn profile_from_row(row: &Row) -> Result<Profile, StoreError> {
    fn json<T: serde::de::DeserializeOwned>(row: &Row, column: &str) -> Result<T, StoreError> {
        serde_json::from_str(&row.text(column)?)
            .map_err(|error| StoreError::Corrupt(format!("member {column}: {error}")))
    }
    Ok(Profile {
        phone: row
            .opt_text("phone")?
            .and_then(|phone| Phone::parse(&phone).ok()),
        email: row.opt_text("email")?,
        name: row.opt_text("name")?,
        birthday: row
            .opt_text("birthday")?
            .and_then(|day| chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").ok()),
        gender: row.opt_text("gender")?,
        city: row.opt_text("city")?,
        tags: json(row, "tags")?,
        attributes: json(row, "attributes")?,
    })
}

/// Fills the search keys of every member (run once, by the migration that adds them), in the
/// migration's transaction.
pub(crate) async fn backfill_search_keys(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    let rows = tx
        .fetch(
            &format!(
                "SELECT id, {PROFILE_COLUMNS} FROM members WHERE search_name IS NULL AND search_phone IS NULL"
            ),
            vec![],
        )
        .await?;
    for row in rows {
        let profile = profile_from_row(&row)?;
        tx.execute(
            "UPDATE members SET search_name = $1, search_phone = $2 WHERE id = $3",
            crate::binds![
                search_name_key(&profile),
                search_phone_key(&profile),
                row.text("id")?,
            ],
        )
        .await?;
    }
    Ok(())
}

/// The digits of a search made only of digits and phone punctuation, when there are enough.
fn phone_digits_of(query: &str) -> Option<String> {
    let is_phone_like = query
        .chars()
        .all(|letter| letter.is_ascii_digit() || " +-.()".contains(letter));
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    (is_phone_like && digits.len() >= PHONE_DIGITS_MIN).then_some(digits)
}

fn like_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// Which members to list.
#[derive(Clone, Debug, Default)]
pub struct MemberFilter {
    /// Matches a phone exactly (any Vietnamese spelling), part of a phone (at least
    /// [`PHONE_DIGITS_MIN`] digits), or every word typed within the name or e-mail, with or
    /// without diacritics.
    pub query: Option<String>,
    pub tier: Option<String>,
    /// The id of the last member of the previous page.
    pub after: Option<String>,
    pub limit: i64,
}

/// A member in a list.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MemberSummary {
    pub id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub tier: String,
    pub balance: i64,
    pub lifetime_spend: i64,
    pub order_count: i64,
    pub created_at: String,
    pub erased: bool,
}

const SUMMARY_COLUMNS: &str = "members.id, members.phone, members.email, members.name, members.tier, \
     members.points_balance, members.lifetime_spend, members.order_count, members.created_at, members.erased_at";
const SUMMARY_SELECT: &str = "SELECT id, phone, email, name, tier, points_balance, lifetime_spend, order_count, created_at, erased_at FROM members";

/// A change to a member's profile: `Some` fields are set (`Some(None)` clears).
#[derive(Clone, Debug, Default)]
pub struct ProfileUpdate {
    pub phone: Option<Phone>,
    pub email: Option<Option<String>>,
    pub name: Option<Option<String>>,
    pub birthday: Option<Option<chrono::NaiveDate>>,
    pub gender: Option<Option<String>>,
    pub city: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What a merge did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MergeReport {
    pub member_id: String,
    pub merged_member_id: String,
    pub balance: i64,
    pub tier: String,
    pub ledger_transactions_moved: i64,
}

fn profile_json(profile: &Profile) -> serde_json::Value {
    serde_json::json!({
        "phone": profile.phone.as_ref().map(|phone| phone.as_str()),
        "email": profile.email,
        "name": profile.name,
        "birthday": profile.birthday.map(|day| day.to_string()),
        "gender": profile.gender,
        "city": profile.city,
        "tags": profile.tags,
        "attributes": profile.attributes,
    })
}

fn summary_from(row: &Row, zone: chrono_tz::Tz) -> Result<MemberSummary, StoreError> {
    Ok(MemberSummary {
        id: row.text("id")?,
        phone: row.opt_text("phone")?,
        email: row.opt_text("email")?,
        name: row.opt_text("name")?,
        tier: row.text("tier")?,
        balance: row.int("points_balance")?,
        lifetime_spend: row.int("lifetime_spend")?,
        order_count: row.int("order_count")?,
        created_at: rfc3339(from_micros(row.int("created_at")?), zone),
        erased: row.opt_int("erased_at")?.is_some(),
    })
}

fn subject(member_id: &str) -> String {
    format!("member:{member_id}")
}

impl Store {
    /// Members of the tenant in id order (oldest first), filtered, one page.
    pub async fn members(
        &self,
        tenant_id: TenantId,
        filter: &MemberFilter,
    ) -> Result<Vec<MemberSummary>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let mut sql = format!("{SUMMARY_SELECT} WHERE tenant_id = $1 AND id > $2");
        let mut values: Vec<Bind> = vec![
            tenant_id.to_string().into(),
            filter.after.clone().unwrap_or_default().into(),
        ];
        if let Some(tier) = &filter.tier {
            values.push(tier.clone().into());
            sql.push_str(&format!(" AND tier = ${}", values.len()));
        }
        if let Some(query) = filter.query.as_deref().map(str::trim) {
            if let Ok(phone) = Phone::parse(query) {
                values.push(phone.as_str().into());
                sql.push_str(&format!(" AND phone = ${}", values.len()));
            } else if let Some(digits) = phone_digits_of(query) {
                values.push(like_pattern(&digits).into());
                sql.push_str(&format!(
                    " AND search_phone LIKE ${} ESCAPE '\\'",
                    values.len()
                ));
            } else {
                // Every word typed, accents or not, somewhere in the name or e-mail.
                for word in fold_for_search(query).split(' ') {
                    values.push(like_pattern(word).into());
                    sql.push_str(&format!(
                        " AND search_name LIKE ${} ESCAPE '\\'",
                        values.len()
                    ));
                }
            }
        }
        values.push(filter.limit.clamp(1, MEMBER_PAGE_MAX).into());
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", values.len()));
        self.db
            .fetch(&sql, values)
            .await?
            .iter()
            .map(|row| summary_from(row, zone))
            .collect()
    }

    /// The members of `ids` (those that exist), in the order of `ids`.
    pub async fn member_summaries(
        &self,
        tenant_id: TenantId,
        ids: &[MemberId],
    ) -> Result<Vec<MemberSummary>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let zone = self.tenant(tenant_id).await?.zone;
        let sql = crate::sql::members_by_id(self.backend, SUMMARY_COLUMNS);
        let texts: Vec<String> = ids.iter().map(MemberId::to_string).collect();
        let mut found: std::collections::HashMap<String, MemberSummary> =
            std::collections::HashMap::new();
        for row in self
            .db
            .fetch(
                &sql,
                vec![Bind::Texts(texts.clone()), tenant_id.to_string().into()],
            )
            .await?
        {
            let summary = summary_from(&row, zone)?;
            found.insert(summary.id.clone(), summary);
        }
        Ok(texts.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The member's profile, read inside `tx`.
    async fn profile_of(
        tx: &mut Tx<'_>,
        tenant_id: TenantId,
        member_id: MemberId,
    ) -> Result<Profile, StoreError> {
        let row = tx
            .fetch_optional(
                &format!("SELECT {PROFILE_COLUMNS} FROM members WHERE tenant_id = $1 AND id = $2"),
                crate::binds![tenant_id.to_string(), member_id.to_string()],
            )
            .await?
            .ok_or(StoreError::NotFound { what: "member" })?;
        profile_from_row(&row)
    }

    /// Changes a member's profile; the audit log keeps the fields before and after.
    pub async fn update_member(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
        update: &ProfileUpdate,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut transaction = self.db.begin_write().await?;
        let before = Store::profile_of(&mut transaction, tenant_id, member_id).await?;
        let mut after = before.clone();
        if let Some(phone) = &update.phone {
            after.phone = Some(phone.clone());
        }
        let set = |target: &mut Option<String>, value: &Option<Option<String>>| {
            if let Some(value) = value {
                *target = value.clone();
            }
        };
        set(&mut after.email, &update.email);
        set(&mut after.name, &update.name);
        set(&mut after.gender, &update.gender);
        set(&mut after.city, &update.city);
        if let Some(birthday) = update.birthday {
            after.birthday = birthday;
        }
        if let Some(tags) = &update.tags {
            after.tags = tags.clone();
        }
        if let Some(attributes) = &update.attributes {
            after.attributes = attributes.clone();
        }
        let result = transaction
            .execute(
                "UPDATE members SET phone = $1, email = $2, name = $3, birthday = $4, gender = $5, city = $6, \
                 tags = $7, attributes = $8, updated_at = $9, search_name = $10, search_phone = $11 \
                 WHERE tenant_id = $12 AND id = $13",
                crate::binds![
                    after.phone.as_ref().map(|phone| phone.as_str()),
                    after.email.clone(),
                    after.name.clone(),
                    after.birthday.map(|day| day.to_string()),
                    after.gender.clone(),
                    after.city.clone(),
                    serde_json::to_string(&after.tags).expect("tags serialise"),
                    serde_json::to_string(&after.attributes).expect("attributes serialise"),
                    to_micros(chrono::Utc::now()),
                    search_name_key(&after),
                    search_phone_key(&after),
                    tenant_id.to_string(),
                    member_id.to_string(),
                ],
            )
            .await;
        if let Err(error) = result {
            return Err(if error.violated() == Some(Unique::MemberPhone) {
                StoreError::Conflict { what: "phone" }
            } else {
                error
            });
        }
        audit::record_tx(
            &mut transaction,
            &Change {
                tenant_id,
                actor,
                action: "member.update",
                subject: subject(&member_id.to_string()),
                before: Some(profile_json(&before)),
                after: Some(profile_json(&after)),
            },
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Wipes a member's personal fields (Decree 13/2023). The ledger stays, now anonymous, so
    /// totals still balance; earlier audit entries about the member lose their values.
    pub async fn erase_member(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut transaction = self.db.begin_write().await?;
        Store::profile_of(&mut transaction, tenant_id, member_id).await?;
        // Locked on PostgreSQL: a batch changing the member's tier meanwhile would otherwise
        // move it in the kept figures under this erasure (SQLite has one writer).
        let lock = match self.backend {
            crate::Backend::Postgres => " FOR UPDATE",
            crate::Backend::Sqlite => "",
        };
        let counted = transaction
            .fetch_one(
                &format!("SELECT tier, created_at, erased_at FROM members WHERE tenant_id = $1 AND id = $2{lock}"),
                crate::binds![tenant_id.to_string(), member_id.to_string()],
            )
            .await?;
        if counted.opt_int("erased_at")?.is_none() {
            let mut figures = Figures::default();
            let joined_at = Some(from_micros(counted.int("created_at")?));
            figures.add(tenant_id, figure::ERASED, "", None, joined_at, 1);
            figures.add(
                tenant_id,
                figure::MEMBERS,
                &counted.text("tier")?,
                None,
                None,
                -1,
            );
            figures.profile_gone(member_id);
            figures.write(&mut transaction).await?;
        }
        let now = to_micros(chrono::Utc::now());
        transaction
            .execute(
                "UPDATE members SET phone = NULL, email = NULL, name = NULL, birthday = NULL, gender = NULL, \
                 city = NULL, tags = '[]', attributes = '{}', erased_at = $1, updated_at = $1, \
                 search_name = NULL, search_phone = NULL \
                 WHERE tenant_id = $2 AND id = $3",
                crate::binds![now, tenant_id.to_string(), member_id.to_string()],
            )
            .await?;
        transaction
            .execute(
                "UPDATE audit_log SET before_value = NULL, after_value = NULL WHERE tenant_id = $1 AND subject = $2",
                crate::binds![tenant_id.to_string(), subject(&member_id.to_string())],
            )
            .await?;
        audit::record_tx(
            &mut transaction,
            &Change {
                tenant_id,
                actor,
                action: "member.erase",
                subject: subject(&member_id.to_string()),
                before: None,
                after: None,
            },
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Everything held about a member, for their data-access request (Decree 13/2023).
    pub async fn member_export(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
    ) -> Result<serde_json::Value, StoreError> {
        let now = chrono::Utc::now();
        let zone = self.tenant(tenant_id).await?.zone;
        let member = self
            .member(tenant_id, &crate::MemberRef::Id(member_id), now)
            .await?;
        let mut history: Vec<crate::HistoryEntry> = Vec::new();
        loop {
            let after = history.last().map(|entry| entry.cursor.clone());
            let page = self
                .history(
                    tenant_id,
                    member_id,
                    crate::queries::HISTORY_PAGE_MAX,
                    after.as_ref(),
                )
                .await?;
            let full = page.len() as i64 == crate::queries::HISTORY_PAGE_MAX;
            history.extend(page);
            if !full {
                break;
            }
        }
        let vouchers = self.vouchers(tenant_id, member_id).await?;
        let tiers = self
            .db
            .fetch(
                "SELECT from_tier, to_tier, reason, at FROM tier_history WHERE tenant_id || '' = $1 AND member_id = $2 ORDER BY at",
                crate::binds![tenant_id.to_string(), member_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(serde_json::json!({
                    "from": row.text("from_tier")?,
                    "to": row.text("to_tier")?,
                    "reason": row.text("reason")?,
                    "at": rfc3339(from_micros(row.int("at")?), zone),
                }))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let events = self
            .db
            .fetch(
                "SELECT event_id, kind, occurred_at, amount FROM events WHERE tenant_id || '' = $1 AND member_id = $2 ORDER BY occurred_at",
                crate::binds![tenant_id.to_string(), member_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(serde_json::json!({
                    "event_id": row.text("event_id")?,
                    "type": row.text("kind")?,
                    "occurred_at": rfc3339(from_micros(row.int("occurred_at")?), zone),
                    "amount": row.opt_int("amount")?,
                }))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(serde_json::json!({
            "exported_at": rfc3339(now, zone),
            "member": member,
            "events": events,
            "history": history,
            "vouchers": vouchers,
            "tier_history": tiers,
        }))
    }
}

/// Merges `source` into `survivor` inside the journal's writer: every lot, ledger transaction
/// and entry, voucher, event and tier change moves to the survivor; balances and counters add
/// up; the survivor keeps the higher tier and takes profile fields it lacks; `source` is deleted.
pub(crate) async fn merge_in(
    store: &Store,
    db: &mut crate::db::Tx<'_>,
    request: &MergeRequest,
) -> Result<MergeReport, StoreError> {
    let tenant = request.tenant_id.to_string();
    let (survivor_id, source_id) = (request.survivor.to_string(), request.source.to_string());
    if survivor_id == source_id {
        return Err(StoreError::invalid(
            "member_id",
            "cannot merge a member into itself",
        ));
    }
    if db.backend() == crate::Backend::Postgres {
        crate::batch::lock_in_order(
            db,
            "members",
            "id",
            vec![survivor_id.clone(), source_id.clone()],
        )
        .await?;
    }
    let mut load =
        async |id: &str| -> Result<(patron_core::member::MemberState, bool), StoreError> {
            let row = db
                .fetch_optional(
                    &format!("{MEMBER_SELECT} WHERE tenant_id = $1 AND id = $2"),
                    vec![tenant.clone().into(), id.into()],
                )
                .await?
                .ok_or(StoreError::NotFound { what: "member" })?;
            Ok((
                crate::batch::member_from(&row)?.1,
                row.opt_int("erased_at")?.is_some(),
            ))
        };
    let (mut survivor, survivor_erased) = load(&survivor_id).await?;
    let (mut source, source_erased) = load(&source_id).await?;
    let details =
        crate::batch::load_member_details_of(db, vec![survivor_id.clone(), source_id.clone()])
            .await?;
    details.apply(&request.survivor, &mut survivor);
    details.apply(&request.source, &mut source);
    let mut histories =
        crate::figures::purchases_of(db, &[request.survivor, request.source]).await?;
    let settings = store.tenant(request.tenant_id).await?;
    let now = chrono::Utc::now();
    // Core's rule: counters and monthly totals add up, the higher tier stays, and a combined
    // value that reaches a higher tier raises it at once.
    let merged = patron_core::tiers::merged(
        settings
            .programme_at(now)
            .map(|programme| programme.as_ref()),
        &survivor,
        &source,
        now,
        settings.zone,
    );
    let tier = merged.tier.clone();
    let mut profile = survivor.profile.clone();
    let fill = |target: &mut Option<String>, value: &Option<String>| {
        if target.is_none() {
            target.clone_from(value);
        }
    };
    fill(&mut profile.email, &source.profile.email);
    fill(&mut profile.name, &source.profile.name);
    fill(&mut profile.gender, &source.profile.gender);
    fill(&mut profile.city, &source.profile.city);
    if profile.birthday.is_none() {
        profile.birthday = source.profile.birthday;
    }
    let moved = db
        .fetch_one(
            "SELECT COUNT(*) AS moved FROM ledger_transactions WHERE tenant_id || '' = $1 AND member_id = $2",
            vec![tenant.clone().into(), source_id.clone().into()],
        )
        .await?
        .int("moved")?;
    for table in [
        "lots",
        "ledger_transactions",
        "ledger_entries",
        "vouchers",
        "tier_history",
        "events",
    ] {
        db.execute(
            &format!("UPDATE {table} SET member_id = $1 WHERE tenant_id = $2 AND member_id = $3"),
            vec![
                survivor_id.clone().into(),
                tenant.clone().into(),
                source_id.clone().into(),
            ],
        )
        .await?;
    }
    for month in &merged.periods_changed {
        let totals = merged.periods[month];
        db.execute(
            "INSERT INTO member_periods (member_id, month, spend, points) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (member_id, month) DO UPDATE SET spend = excluded.spend, points = excluded.points",
            crate::binds![survivor_id.clone(), i64::from(*month), totals.spend.0, totals.points.0],
        )
        .await?;
    }
    db.execute(
        "DELETE FROM member_periods WHERE member_id = $1",
        vec![source_id.clone().into()],
    )
    .await?;
    db.execute(
        "DELETE FROM members WHERE tenant_id = $1 AND id = $2",
        vec![tenant.clone().into(), source_id.clone().into()],
    )
    .await?;
    if profile.phone.is_none() {
        profile.phone = source.profile.phone.clone();
    }
    let balance = survivor.balance.0 + source.balance.0;
    db.execute(
        "UPDATE members SET phone = $1, email = $2, name = $3, birthday = $4, gender = $5, city = $6, tier = $7, \
         points_balance = $8, lifetime_spend = $9, lifetime_points = $10, order_count = $11, updated_at = $12, \
         search_name = $13, search_phone = $14, tier_since = $15, tier_below_since = $16 \
         WHERE tenant_id = $17 AND id = $18",
        vec![
            profile.phone.as_ref().map(|phone| phone.as_str().to_owned()).into(),
            profile.email.clone().into(),
            profile.name.clone().into(),
            profile.birthday.map(|day| day.to_string()).into(),
            profile.gender.clone().into(),
            profile.city.clone().into(),
            tier.clone().into(),
            balance.into(),
            merged.lifetime_spend.0.into(),
            merged.lifetime_points.0.into(),
            merged.order_count.into(),
            to_micros(now).into(),
            search_name_key(&profile).into(),
            search_phone_key(&profile).into(),
            to_micros(merged.tier_since).into(),
            merged.tier_below_since.map(to_micros).into(),
            tenant.clone().into(),
            survivor_id.clone().into(),
        ],
    )
    .await?;
    let summary = |state: &patron_core::member::MemberState| {
        serde_json::json!({
            "id": state.id.to_string(),
            "profile": profile_json(&state.profile),
            "tier": state.tier,
            "balance": state.balance.0,
        })
    };
    let report = MergeReport {
        member_id: survivor_id.clone(),
        merged_member_id: source_id.clone(),
        balance,
        tier,
        ledger_transactions_moved: moved,
    };
    let change = Change {
        tenant_id: request.tenant_id,
        actor: &request.actor,
        action: "member.merge",
        subject: subject(&survivor_id),
        before: Some(
            serde_json::json!({"survivor": summary(&survivor), "merged": summary(&source)}),
        ),
        after: Some(serde_json::to_value(&report).expect("a report serialises")),
    };
    db.execute(audit::INSERT, audit::change_values(&change))
        .await?;
    // The kept figures: the source leaves the members it was counted in, the survivor may
    // change tier, and the two purchase histories become one.
    let mut figures = Figures::default();
    let tenant_id = request.tenant_id;
    figures.add(
        tenant_id,
        figure::JOINED,
        "",
        None,
        Some(source.created_at),
        -1,
    );
    if source_erased {
        figures.add(
            tenant_id,
            figure::ERASED,
            "",
            None,
            Some(source.created_at),
            -1,
        );
    }
    // Lots move to the survivor unchanged: what members hold stays, only tiers count.
    let gone = MemberFigures::of(&source, source_erased).tier_only();
    figures.member(tenant_id, Some(&gone), &MemberFigures::default());
    figures.member(
        tenant_id,
        Some(&MemberFigures::of(&survivor, survivor_erased).tier_only()),
        &MemberFigures::of(&merged, survivor_erased).tier_only(),
    );
    let survivor_purchases = histories.remove(&request.survivor).unwrap_or_default();
    let source_purchases = histories.remove(&request.source).unwrap_or_default();
    let all = [survivor_purchases.clone(), source_purchases.clone()].concat();
    figures.history(tenant_id, -1, survivor_purchases);
    figures.history(tenant_id, -1, source_purchases);
    figures.history(tenant_id, 1, all);
    // The source's purchases are the survivor's now, and so is what it bought of each category.
    db.execute(
        "INSERT INTO member_categories (member_id, tenant_id, category, spend) \
         SELECT $1, tenant_id, category, spend FROM member_categories WHERE member_id = $2 \
         ON CONFLICT (member_id, category) DO UPDATE SET spend = member_categories.spend + excluded.spend",
        crate::binds![request.survivor.to_string(), request.source.to_string()],
    )
    .await?;
    // A member's word on consent is the latest of the two's, per channel: an opt-out given
    // under either phone still holds.
    db.execute(
        "INSERT INTO member_consents (member_id, tenant_id, channel, granted, at, source) \
         SELECT $1, tenant_id, channel, granted, at, source FROM member_consents WHERE member_id = $2 \
         ON CONFLICT (member_id, channel) DO UPDATE SET granted = excluded.granted, at = excluded.at, \
         source = excluded.source WHERE excluded.at > member_consents.at",
        crate::binds![request.survivor.to_string(), request.source.to_string()],
    )
    .await?;
    for table in ["member_categories", "member_consents", "segment_members"] {
        db.execute(
            &format!("DELETE FROM {table} WHERE member_id = $1"),
            crate::binds![request.source.to_string()],
        )
        .await?;
    }
    db.execute(
        "UPDATE consent_log SET member_id = $1 WHERE member_id = $2",
        crate::binds![request.survivor.to_string(), request.source.to_string()],
    )
    .await?;
    figures.profile(tenant_id, request.survivor);
    figures.profile_gone(request.source);
    figures.write(db).await?;
    Ok(report)
}

/// Two members of one tenant to merge, and who asked.
#[derive(Clone, Debug)]
pub struct MergeRequest {
    pub tenant_id: TenantId,
    pub survivor: MemberId,
    pub source: MemberId,
    pub actor: Actor,
}

/// Where a purchase stands after its refunds, for the admin's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseState {
    /// The bill total, the part paid with points included.
    pub amount: i64,
    pub refunded_amount: i64,
    pub voided: bool,
}

/// Most event ids asked about at once (a page of history names at most this many).
pub const PURCHASE_STATES_MAX: usize = 200;

impl Store {
    /// Which of `event_ids` are the tenant's purchases, and how much of each was refunded or
    /// whether it was voided. Ids past `PURCHASE_STATES_MAX` are not looked at.
    pub async fn purchase_states(
        &self,
        tenant_id: TenantId,
        event_ids: &[String],
    ) -> Result<std::collections::HashMap<String, PurchaseState>, StoreError> {
        let event_ids = &event_ids[..event_ids.len().min(PURCHASE_STATES_MAX)];
        let mut states = std::collections::HashMap::new();
        if event_ids.is_empty() {
            return Ok(states);
        }
        // `kind || ''`: compared as written, SQLite (which never knows how long the list is)
        // takes the tenant's purchases index and walks every purchase of the tenant.
        let sql = format!(
            "SELECT event_id, amount, refunded_amount, voided_at FROM events \
             WHERE tenant_id = $1 AND {} AND kind || '' = 'purchase'",
            crate::sql::one_of(self.backend, "event_id", 2)
        );
        let rows = self
            .db
            .fetch(
                &sql,
                crate::binds![tenant_id.to_string(), event_ids.to_vec()],
            )
            .await?;
        // The journal writes a purchase's amount and refunded amount (0 at first) with it.
        for row in rows {
            states.insert(
                row.text("event_id")?,
                PurchaseState {
                    amount: row.int("amount")?,
                    refunded_amount: row.int("refunded_amount")?,
                    voided: row.opt_int("voided_at")?.is_some(),
                },
            );
        }
        Ok(states)
    }
}
