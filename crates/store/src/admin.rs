//! Tenants, stores, programme versions, rewards and API keys: the setup around the engine.

use crate::audit::{Actor, Change};
use crate::batch::reward_from;
use crate::db::{Row, Tx};
use crate::error::Unique;
use crate::sql::Bind;
use crate::users::Role;
use crate::{binds, Backend, Store, StoreError, TenantSettings};
use patron_core::programme::{Programme, ProgrammeDefinition};
use patron_core::reward::Reward;
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{RewardId, TenantId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A new tenant.
#[derive(Clone, Debug)]
pub struct NewTenant {
    pub name: String,
    /// ISO 4217, e.g. VND.
    pub currency: String,
    /// IANA zone, e.g. Asia/Ho_Chi_Minh.
    pub time_zone: String,
}

impl NewTenant {
    /// A Vietnamese business: VND, Asia/Ho_Chi_Minh.
    pub fn vietnamese(name: impl Into<String>) -> NewTenant {
        NewTenant {
            name: name.into(),
            currency: "VND".into(),
            time_zone: "Asia/Ho_Chi_Minh".into(),
        }
    }
}

/// Whether an API key may change things or only read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyScope {
    Read,
    Write,
    /// Everything a tenant's owner may do, including keys, users and the audit log.
    Admin,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
            KeyScope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<KeyScope> {
        Some(match text {
            "read" => KeyScope::Read,
            "write" => KeyScope::Write,
            "admin" => KeyScope::Admin,
            _ => return None,
        })
    }

    /// The staff role with the same powers.
    pub fn role(self) -> Role {
        match self {
            KeyScope::Read => Role::Viewer,
            KeyScope::Write => Role::Integration,
            KeyScope::Admin => Role::Owner,
        }
    }
}

/// What an API key grants.
#[derive(Clone, Debug)]
pub struct KeyGrant {
    pub key_id: String,
    pub tenant_id: TenantId,
    pub scope: KeyScope,
    /// A key for one store's till: its events must name this store.
    pub store_code: Option<String>,
}

/// An API key as listed (never its secret).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub scope: String,
    pub store: Option<String>,
    pub created_at: String,
    /// Updated when the key is checked against the database (at most every 30 s per node).
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A new key: its id and its secret, shown once.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CreatedKey {
    pub id: String,
    pub secret: String,
    pub key: ApiKeyView,
}

fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn parse_tenant_id(text: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(text).map_err(|_| StoreError::Corrupt(format!("tenant id {text}")))
}

/// A shop or branch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StoreView {
    pub code: String,
    pub name: String,
    /// RFC 3339 in the tenant's zone.
    pub created_at: String,
}

/// A tier of the programme in force, with its members.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TierView {
    pub code: String,
    pub name: String,
    /// Qualifying metric needed, inclusive (spend in minor units, or points).
    pub threshold: i64,
    /// Earning multiplier, in percent (100 = ×1).
    pub multiplier_percent: i64,
    pub members: i64,
}

impl Store {
    /// Creates a tenant.
    pub async fn create_tenant(&self, tenant: &NewTenant) -> Result<TenantId, StoreError> {
        if tenant.name.trim().is_empty() || tenant.name.len() > 200 {
            return Err(StoreError::invalid("name", "must be 1 to 200 characters"));
        }
        if tenant.currency.len() != 3 || !tenant.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(StoreError::invalid(
                "currency",
                "must be an ISO 4217 code such as VND",
            ));
        }
        if tenant.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(StoreError::invalid(
                "time_zone",
                "must be an IANA zone such as Asia/Ho_Chi_Minh",
            ));
        }
        let id = TenantId::new();
        self.db
            .execute(
                "INSERT INTO tenants (id, name, currency, time_zone, created_at) VALUES ($1, $2, $3, $4, $5)",
                binds![
                    id.to_string(),
                    tenant.name.trim(),
                    &tenant.currency,
                    &tenant.time_zone,
                    to_micros(chrono::Utc::now()),
                ],
            )
            .await?;
        Ok(id)
    }

    /// The tenant's settings and programmes, cached until they change.
    pub async fn tenant(&self, tenant_id: TenantId) -> Result<Arc<TenantSettings>, StoreError> {
        if let Some(settings) = self
            .tenants
            .read()
            .expect("tenant cache lock")
            .get(&tenant_id)
        {
            return Ok(Arc::clone(settings));
        }
        let row = self
            .db
            .fetch_optional(
                "SELECT name, currency, time_zone, purchase_amount_max, purchase_amount_confirm FROM tenants WHERE id = $1",
                binds![tenant_id.to_string()],
            )
            .await?
            .ok_or(StoreError::NotFound { what: "tenant" })?;
        let zone_name = row.text("time_zone")?;
        let zone = zone_name
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("time zone {zone_name}")))?;
        let mut programmes = Vec::new();
        let rows = self
            .db
            .fetch(
                "SELECT version, effective_from, definition FROM programme_versions WHERE tenant_id = $1 \
                 ORDER BY effective_from, version",
                binds![tenant_id.to_string()],
            )
            .await?;
        for row in rows {
            let version = row.int("version")?;
            let text = row.text("definition")?;
            let definition: ProgrammeDefinition = serde_json::from_str(&text)
                .map_err(|error| StoreError::Corrupt(format!("programme {version}: {error}")))?;
            let (programme, disabled) = Programme::load(version, definition)
                .map_err(|error| StoreError::Corrupt(format!("programme {version}: {error}")))?;
            for error in disabled {
                tracing::warn!(%tenant_id, version, %error, "a stored rule breaks the rule limits");
            }
            programmes.push((from_micros(row.int("effective_from")?), Arc::new(programme)));
        }
        let stores = self
            .db
            .fetch(
                "SELECT code FROM stores WHERE tenant_id = $1",
                binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| row.text("code"))
            .collect::<Result<_, _>>()?;
        let webhook_topics = self.live_webhook_topics(tenant_id).await?;
        let settings = Arc::new(TenantSettings {
            id: tenant_id,
            name: row.text("name")?,
            currency: row.text("currency")?,
            zone,
            programmes,
            stores,
            webhook_topics,
            // NULL: the tenant never set its own limits.
            purchase_amount_max: row
                .opt_int("purchase_amount_max")?
                .unwrap_or(crate::PURCHASE_AMOUNT_MAX_DEFAULT),
            purchase_amount_confirm: row
                .opt_int("purchase_amount_confirm")?
                .unwrap_or(crate::PURCHASE_AMOUNT_CONFIRM_DEFAULT),
        });
        self.tenants
            .write()
            .expect("tenant cache lock")
            .insert(tenant_id, Arc::clone(&settings));
        Ok(settings)
    }

    /// Forgets the cached settings of a tenant (after its programme or stores change).
    pub fn forget_tenant(&self, tenant_id: TenantId) {
        self.tenants
            .write()
            .expect("tenant cache lock")
            .remove(&tenant_id);
    }

    /// Sets the tenant's largest purchase and the amount above which the till asks to confirm
    /// (the caller checks `confirm ≤ maximum`), with its audit record.
    pub async fn set_purchase_limits(
        &self,
        tenant_id: TenantId,
        actor: &crate::audit::Actor,
        maximum: i64,
        confirm: i64,
    ) -> Result<(), StoreError> {
        let before = self.tenant(tenant_id).await?;
        let mut tx = self.db.begin_write().await?;
        tx.execute(
            "UPDATE tenants SET purchase_amount_max = $1, purchase_amount_confirm = $2 WHERE id = $3",
            binds![maximum, confirm, tenant_id.to_string()],
        )
        .await?;
        crate::audit::record_tx(
            &mut tx,
            &Change {
                tenant_id,
                actor,
                action: "tenant.purchase_limits",
                subject: format!("tenant:{tenant_id}"),
                before: Some(serde_json::json!({
                    "maximum": before.purchase_amount_max,
                    "confirm": before.purchase_amount_confirm,
                })),
                after: Some(serde_json::json!({"maximum": maximum, "confirm": confirm})),
            },
        )
        .await?;
        tx.commit().await?;
        self.forget_tenant(tenant_id);
        Ok(())
    }

    /// Publishes a new programme version in force from `effective_from`. Returns its number.
    pub async fn publish_programme(
        &self,
        tenant_id: TenantId,
        definition: ProgrammeDefinition,
        effective_from: Timestamp,
    ) -> Result<i64, StoreError> {
        Programme::compile(0, definition.clone()).map_err(|error| StoreError::Invalid {
            field: format!("definition.{}", error.field),
            message: error.message,
        })?;
        self.tenant(tenant_id).await?;
        let text = serde_json::to_string(&definition).expect("a definition serialises");
        let mut tx = self.db.begin_write().await?;
        let version = tx
            .fetch_one(
                "SELECT COALESCE(MAX(version), 0) + 1 AS version FROM programme_versions WHERE tenant_id = $1",
                binds![tenant_id.to_string()],
            )
            .await?
            .int("version")?;
        tx.execute(
            "INSERT INTO programme_versions (tenant_id, version, effective_from, definition, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
            binds![
                tenant_id.to_string(),
                version,
                to_micros(effective_from),
                text,
                to_micros(chrono::Utc::now()),
            ],
        )
        .await?;
        tx.commit().await?;
        self.forget_tenant(tenant_id);
        Ok(version)
    }

    /// Adds a store (shop, branch) to a tenant.
    pub async fn create_store(
        &self,
        tenant_id: TenantId,
        code: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        if code.is_empty()
            || code.len() > 32
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(StoreError::invalid(
                "code",
                "1 to 32 letters, digits, '-' or '_'",
            ));
        }
        let result = self
            .db
            .execute(
                "INSERT INTO stores (tenant_id, code, name, created_at) VALUES ($1, $2, $3, $4)",
                binds![
                    tenant_id.to_string(),
                    code,
                    name,
                    to_micros(chrono::Utc::now())
                ],
            )
            .await;
        match result {
            Err(error) if error.violated() == Some(Unique::StoreCode) => {
                return Err(StoreError::Conflict { what: "store" })
            }
            other => other?,
        };
        self.forget_tenant(tenant_id);
        Ok(())
    }

    /// The tenant's stores, by code.
    pub async fn stores(&self, tenant_id: TenantId) -> Result<Vec<StoreView>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let rows = self
            .db
            .fetch(
                "SELECT code, name, created_at FROM stores WHERE tenant_id = $1 ORDER BY code",
                binds![tenant_id.to_string()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoreView {
                    code: row.text("code")?,
                    name: row.text("name")?,
                    created_at: crate::model::rfc3339(from_micros(row.int("created_at")?), zone),
                })
            })
            .collect()
    }

    /// The tiers of the programme in force now, lowest first, with how many members hold
    /// each (members in a tier the programme no longer has are not counted).
    pub async fn tiers(&self, tenant_id: TenantId) -> Result<Vec<TierView>, StoreError> {
        let settings = self.tenant(tenant_id).await?;
        let Some(programme) = settings.programme_at(chrono::Utc::now()) else {
            return Ok(Vec::new());
        };
        let rows = self
            .db
            .fetch(
                "SELECT tier, COUNT(*) AS members FROM members WHERE tenant_id = $1 AND erased_at IS NULL \
                 GROUP BY tier",
                binds![tenant_id.to_string()],
            )
            .await?;
        let counts: std::collections::HashMap<String, i64> = rows
            .iter()
            .map(|row| Ok((row.text("tier")?, row.int("members")?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(programme
            .definition
            .tiers
            .iter()
            .map(|tier| TierView {
                code: tier.code.clone(),
                name: tier.name.clone(),
                threshold: tier.threshold,
                multiplier_percent: tier.multiplier_percent,
                members: counts.get(&tier.code).copied().unwrap_or(0),
            })
            .collect())
    }

    /// Adds a reward to the catalogue, recorded in the audit log as the system's (setup: the
    /// demo, tests). Staff and keys go through [`Store::create_reward_as`].
    pub async fn create_reward(
        &self,
        tenant_id: TenantId,
        reward: &Reward,
    ) -> Result<RewardId, StoreError> {
        self.create_reward_as(tenant_id, reward, &Actor("system".into()))
            .await
    }

    /// Adds a reward to the catalogue; the audit log names `actor`.
    pub async fn create_reward_as(
        &self,
        tenant_id: TenantId,
        reward: &Reward,
        actor: &Actor,
    ) -> Result<RewardId, StoreError> {
        check_reward(reward)?;
        let mut tx = self.db.begin_write().await?;
        let mut values = reward_columns(reward);
        values.extend(binds![
            reward.id.to_string(),
            tenant_id.to_string(),
            to_micros(chrono::Utc::now()),
        ]);
        tx.execute(
            "INSERT INTO rewards (name, description, cost, stock, per_member_limit, valid_from, valid_until, \
             stores, voucher_valid_days, active, id, tenant_id, created_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
            values,
        )
        .await?;
        crate::audit::record_tx(
            &mut tx,
            &Change {
                tenant_id,
                actor,
                action: "reward.create",
                subject: format!("reward:{}", reward.id),
                before: None,
                after: Some(reward_json(reward)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(reward.id)
    }

    /// One reward of the tenant (another tenant's is not found).
    pub async fn reward(
        &self,
        tenant_id: TenantId,
        reward_id: RewardId,
    ) -> Result<Reward, StoreError> {
        let row = self
            .db
            .fetch_optional(&reward_select(false), reward_key(tenant_id, reward_id))
            .await?;
        reward_of(row)
    }

    /// Changes a reward: `Some` fields are set (`Some(None)` clears a limit or a date).
    /// Retiring (`active: Some(false)`) stops new redemptions; vouchers already issued stay
    /// usable. The audit log keeps the reward before and after, as `reward.update`, or
    /// `reward.retire` / `reward.unretire` when that is what changed.
    pub async fn update_reward(
        &self,
        tenant_id: TenantId,
        reward_id: RewardId,
        change: &RewardChange,
        actor: &Actor,
    ) -> Result<Reward, StoreError> {
        // The reward is read inside the transaction that writes it, locked as a redemption
        // locks it (SQLite: the write lock from `BEGIN IMMEDIATE`; PostgreSQL: the row), so a
        // redemption between the read and the write cannot have its stock overwritten.
        let mut tx = self.db.begin_write().await?;
        let before = reward_in(&mut tx, tenant_id, reward_id).await?;
        let mut after = before.clone();
        change.apply_to(&mut after);
        check_reward(&after)?;
        let action = match (before.active, after.active) {
            (true, false) => "reward.retire",
            (false, true) => "reward.unretire",
            _ => "reward.update",
        };
        let mut values = reward_columns(&after);
        values.extend(binds![tenant_id.to_string(), reward_id.to_string()]);
        tx.execute(
            "UPDATE rewards SET name = $1, description = $2, cost = $3, stock = $4, per_member_limit = $5, \
             valid_from = $6, valid_until = $7, stores = $8, voucher_valid_days = $9, active = $10 \
             WHERE tenant_id = $11 AND id = $12",
            values,
        )
        .await?;
        crate::audit::record_tx(
            &mut tx,
            &Change {
                tenant_id,
                actor,
                action,
                subject: format!("reward:{reward_id}"),
                before: Some(reward_json(&before)),
                after: Some(reward_json(&after)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Makes an API key for the whole tenant; the secret is returned once and only its hash is
    /// kept.
    pub async fn create_api_key(
        &self,
        tenant_id: TenantId,
        name: &str,
        scope: KeyScope,
    ) -> Result<String, StoreError> {
        let created = self
            .create_key(tenant_id, name, scope, None, &Actor::cli())
            .await?;
        Ok(created.secret)
    }

    /// Makes an API key, optionally for one store, and records who made it.
    pub async fn create_key(
        &self,
        tenant_id: TenantId,
        name: &str,
        scope: KeyScope,
        store_code: Option<&str>,
        actor: &Actor,
    ) -> Result<CreatedKey, StoreError> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(StoreError::invalid("name", "must be 1 to 200 characters"));
        }
        if let Some(code) = store_code {
            let known = self
                .db
                .fetch_optional(
                    "SELECT 1 AS known FROM stores WHERE tenant_id = $1 AND code = $2",
                    binds![tenant_id.to_string(), code],
                )
                .await?;
            if known.is_none() {
                return Err(StoreError::invalid("store", "no such store"));
            }
        }
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("pk_{}", hex::encode(bytes));
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.db.begin_write().await?;
        tx.execute(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, prefix, scope, created_at, store_code, created_by) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
            binds![
                &id,
                tenant_id.to_string(),
                name.trim(),
                hash_key(&secret),
                &secret[..10],
                scope.as_str(),
                to_micros(chrono::Utc::now()),
                store_code,
                &actor.0,
            ],
        )
        .await?;
        crate::audit::record_tx(
            &mut tx,
            &Change {
                tenant_id,
                actor,
                action: "api_key.create",
                subject: format!("api_key:{id}"),
                before: None,
                after: Some(serde_json::json!({"name": name.trim(), "scope": scope.as_str(), "store": store_code})),
            },
        )
        .await?;
        tx.commit().await?;
        let key = self
            .api_keys(tenant_id)
            .await?
            .into_iter()
            .find(|key| key.id == id)
            .ok_or(StoreError::NotFound { what: "api key" })?;
        Ok(CreatedKey { id, secret, key })
    }

    /// The tenant's keys, newest first.
    pub async fn api_keys(&self, tenant_id: TenantId) -> Result<Vec<ApiKeyView>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let at =
            |micros: Option<i64>| micros.map(|micros| crate::rfc3339(from_micros(micros), zone));
        self.db
            .fetch(
                "SELECT id, name, prefix, scope, store_code, created_at, last_used_at, revoked_at FROM api_keys \
                 WHERE tenant_id = $1 ORDER BY id DESC",
                binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(ApiKeyView {
                    id: row.text("id")?,
                    name: row.text("name")?,
                    prefix: row.text("prefix")?,
                    scope: row.text("scope")?,
                    store: row.opt_text("store_code")?,
                    created_at: crate::rfc3339(from_micros(row.int("created_at")?), zone),
                    last_used_at: at(row.opt_int("last_used_at")?),
                    revoked_at: at(row.opt_int("revoked_at")?),
                })
            })
            .collect()
    }

    /// Revokes a key at once (callers drop it from their caches).
    pub async fn revoke_api_key(
        &self,
        tenant_id: TenantId,
        id: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        let updated = tx
            .execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
                binds![to_micros(chrono::Utc::now()), tenant_id.to_string(), id],
            )
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound { what: "api key" });
        }
        crate::audit::record_tx(
            &mut tx,
            &Change {
                tenant_id,
                actor,
                action: "api_key.revoke",
                subject: format!("api_key:{id}"),
                before: Some(serde_json::json!({"revoked": false})),
                after: Some(serde_json::json!({"revoked": true})),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// What a presented key grants, if it is a live key.
    pub async fn authenticate_key(&self, secret: &str) -> Result<Option<KeyGrant>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT id, tenant_id, scope, store_code FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                binds![hash_key(secret)],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let scope = row.text("scope")?;
        let key_id = row.text("id")?;
        self.db
            .execute(
                "UPDATE api_keys SET last_used_at = $1 WHERE id = $2",
                binds![to_micros(chrono::Utc::now()), &key_id],
            )
            .await?;
        Ok(Some(KeyGrant {
            key_id,
            tenant_id: parse_tenant_id(&row.text("tenant_id")?)?,
            scope: KeyScope::parse(&scope)
                .ok_or_else(|| StoreError::Corrupt(format!("key scope {scope}")))?,
            store_code: row.opt_text("store_code")?,
        }))
    }

    /// Every tenant id, oldest first.
    pub async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        self.db
            .fetch("SELECT id FROM tenants ORDER BY created_at", Vec::new())
            .await?
            .iter()
            .map(|row| parse_tenant_id(&row.text("id")?))
            .collect()
    }

    /// Enrols many members at once with empty balances (bulk loads and benchmarks; no sign-up
    /// rules run). Returns their ids in the order of `phones`.
    pub async fn bulk_enrol(
        &self,
        tenant_id: TenantId,
        phones: &[patron_core::Phone],
    ) -> Result<Vec<patron_core::MemberId>, StoreError> {
        let backend = self.backend;
        let settings = self.tenant(tenant_id).await?;
        let now = chrono::Utc::now();
        let base_tier = settings
            .programme_at(now)
            .map(|programme| programme.base_tier_code().to_owned())
            .unwrap_or_default();
        let mut ids = Vec::with_capacity(phones.len());
        let mut tx = self.db.begin_write().await?;
        let mut figures = crate::figures::Figures::default();
        for chunk in phones.chunks(10_000) {
            let mut rows = crate::sql::Rows::new(25);
            for phone in chunk {
                let id = patron_core::MemberId::new();
                let profile = patron_core::member::Profile {
                    phone: Some(phone.clone()),
                    ..Default::default()
                };
                let state = patron_core::member::MemberState::new(id, profile, &base_tier, now);
                rows.push(crate::batch::member_row(tenant_id, &state, to_micros(now)));
                figures.joined(
                    tenant_id,
                    now,
                    &crate::figures::MemberFigures::of(&state, false),
                );
                ids.push(id);
            }
            tx.execute_all(rows.statements(backend, crate::batch::MEMBER_INSERT, ""))
                .await?;
        }
        figures.write(&mut tx).await?;
        tx.commit().await?;
        // Fresh statistics, or the planner may take a million-row table for an empty one.
        self.db.batch("ANALYZE members").await?;
        Ok(ids)
    }
}

/// Fewest points a reward may cost: a free reward with unlimited stock could be taken without
/// end.
pub const REWARD_COST_MIN: i64 = 1;
/// Most days a voucher may stay usable.
pub const VOUCHER_VALID_DAYS_MAX: u32 = 3650;

/// A change to a reward: `Some` fields are set (`Some(None)` clears).
#[derive(Clone, Debug, Default)]
pub struct RewardChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub cost: Option<i64>,
    pub stock: Option<Option<i64>>,
    pub per_member_limit: Option<Option<i64>>,
    pub valid_from: Option<Option<patron_core::time::Timestamp>>,
    pub valid_until: Option<Option<patron_core::time::Timestamp>>,
    pub stores: Option<Vec<String>>,
    pub voucher_valid_days: Option<u32>,
    /// `false` retires the reward, `true` offers it again.
    pub active: Option<bool>,
}

impl RewardChange {
    fn apply_to(&self, reward: &mut Reward) {
        if let Some(name) = &self.name {
            reward.name = name.trim().to_owned();
        }
        if let Some(description) = &self.description {
            reward.description.clone_from(description);
        }
        if let Some(cost) = self.cost {
            reward.cost = patron_core::Points(cost);
        }
        if let Some(stock) = self.stock {
            reward.stock = stock;
        }
        if let Some(limit) = self.per_member_limit {
            reward.per_member_limit = limit;
        }
        if let Some(from) = self.valid_from {
            reward.valid_from = from;
        }
        if let Some(until) = self.valid_until {
            reward.valid_until = until;
        }
        if let Some(stores) = &self.stores {
            reward.stores.clone_from(stores);
        }
        if let Some(days) = self.voucher_valid_days {
            reward.voucher_valid_days = days;
        }
        if let Some(active) = self.active {
            reward.active = active;
        }
    }
}

/// Refuses a reward that cannot be offered as is, naming the field.
fn check_reward(reward: &Reward) -> Result<(), StoreError> {
    if reward.name.trim().is_empty() {
        return Err(StoreError::invalid("name", "must not be empty"));
    }
    if reward.cost.0 < REWARD_COST_MIN {
        return Err(StoreError::invalid("cost", "must be at least 1"));
    }
    if reward.stock.is_some_and(|stock| stock < 0) {
        return Err(StoreError::invalid("stock", "must be 0 or more"));
    }
    if reward.per_member_limit.is_some_and(|limit| limit < 1) {
        return Err(StoreError::invalid(
            "per_member_limit",
            "must be at least 1",
        ));
    }
    if reward.voucher_valid_days == 0 || reward.voucher_valid_days > VOUCHER_VALID_DAYS_MAX {
        return Err(StoreError::invalid(
            "voucher_valid_days",
            "must be between 1 and 3650",
        ));
    }
    if let (Some(from), Some(until)) = (reward.valid_from, reward.valid_until) {
        if until <= from {
            return Err(StoreError::invalid(
                "valid_until",
                "must be after valid_from",
            ));
        }
    }
    Ok(())
}

/// A reward as the audit log keeps it.
fn reward_json(reward: &Reward) -> serde_json::Value {
    serde_json::json!({
        "name": reward.name,
        "cost": reward.cost.0,
        "stock": reward.stock,
        "per_member_limit": reward.per_member_limit,
        "valid_from": reward.valid_from.map(|at| crate::rfc3339(at, chrono_tz::UTC)),
        "valid_until": reward.valid_until.map(|at| crate::rfc3339(at, chrono_tz::UTC)),
        "stores": reward.stores,
        "voucher_valid_days": reward.voucher_valid_days,
        "active": reward.active,
    })
}

/// A reward's stored columns in the order its INSERT and UPDATE name them first: name,
/// description, cost, stock, per_member_limit, valid_from, valid_until, stores,
/// voucher_valid_days, active.
fn reward_columns(reward: &Reward) -> Vec<Bind> {
    vec![
        reward.name.clone().into(),
        reward.description.clone().into(),
        reward.cost.0.into(),
        reward.stock.into(),
        reward.per_member_limit.into(),
        reward.valid_from.map(to_micros).into(),
        reward.valid_until.map(to_micros).into(),
        serde_json::to_string(&reward.stores)
            .expect("strings serialise")
            .into(),
        i64::from(reward.voucher_valid_days).into(),
        i64::from(reward.active).into(),
    ]
}

/// The statement that reads one reward by tenant and id ([`reward_key`]); `lock` adds
/// `FOR UPDATE` (PostgreSQL, in a write transaction).
fn reward_select(lock: bool) -> String {
    let lock = if lock { " FOR UPDATE" } else { "" };
    format!(
        "{} WHERE tenant_id = $1 AND id = $2{lock}",
        crate::batch::REWARD_SELECT
    )
}

fn reward_key(tenant_id: TenantId, reward_id: RewardId) -> Vec<Bind> {
    binds![tenant_id.to_string(), reward_id.to_string()]
}

fn reward_of(row: Option<Row>) -> Result<Reward, StoreError> {
    let row = row.ok_or(StoreError::NotFound { what: "reward" })?;
    Ok(reward_from(&row)?.1)
}

/// One reward of the tenant, read in a caller's write transaction (on PostgreSQL its row is
/// locked until the transaction ends).
async fn reward_in(
    tx: &mut Tx<'_>,
    tenant_id: TenantId,
    reward_id: RewardId,
) -> Result<Reward, StoreError> {
    let sql = reward_select(tx.backend() == Backend::Postgres);
    let row = tx
        .fetch_optional(&sql, reward_key(tenant_id, reward_id))
        .await?;
    reward_of(row)
}
