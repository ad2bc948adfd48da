//! Tenants, stores, programme versions, rewards and API keys: the setup around the engine.

use crate::{Store, StoreError, TenantSettings};
use patron_core::programme::{Programme, ProgrammeDefinition};
use patron_core::reward::Reward;
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{RewardId, TenantId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
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
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
        }
    }
}

/// What an API key grants.
#[derive(Clone, Debug)]
pub struct KeyGrant {
    pub key_id: String,
    pub tenant_id: TenantId,
    pub scope: KeyScope,
}

fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn parse_tenant_id(text: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(text).map_err(|_| StoreError::Corrupt(format!("tenant id {text}")))
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
        sqlx::query("INSERT INTO tenants (id, name, currency, time_zone, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id.to_string())
            .bind(tenant.name.trim().to_owned())
            .bind(tenant.currency.clone())
            .bind(tenant.time_zone.clone())
            .bind(to_micros(chrono::Utc::now()))
            .execute(&self.pool)
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
        let row = sqlx::query("SELECT name, currency, time_zone FROM tenants WHERE id = $1")
            .bind(tenant_id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { what: "tenant" })?;
        let zone_name: String = row.get(2);
        let zone = zone_name
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("time zone {zone_name}")))?;
        let mut programmes = Vec::new();
        let rows = sqlx::query(
            "SELECT version, effective_from, definition FROM programme_versions WHERE tenant_id = $1 ORDER BY effective_from, version",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let version: i64 = row.get(0);
            let text: String = row.get(2);
            let definition: ProgrammeDefinition = serde_json::from_str(&text)
                .map_err(|error| StoreError::Corrupt(format!("programme {version}: {error}")))?;
            let programme = Programme::compile(version, definition)
                .map_err(|error| StoreError::Corrupt(format!("programme {version}: {error}")))?;
            programmes.push((from_micros(row.get(1)), Arc::new(programme)));
        }
        let stores = sqlx::query("SELECT code FROM stores WHERE tenant_id = $1")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
        let settings = Arc::new(TenantSettings {
            id: tenant_id,
            name: row.get(0),
            currency: row.get(1),
            zone,
            programmes,
            stores,
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
        let mut transaction = self.pool.begin().await?;
        let version: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM programme_versions WHERE tenant_id = $1",
        )
        .bind(tenant_id.to_string())
        .fetch_one(&mut *transaction)
        .await?
        .get(0);
        sqlx::query(
            "INSERT INTO programme_versions (tenant_id, version, effective_from, definition, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant_id.to_string())
        .bind(version)
        .bind(to_micros(effective_from))
        .bind(text)
        .bind(to_micros(chrono::Utc::now()))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        let result = sqlx::query(
            "INSERT INTO stores (tenant_id, code, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant_id.to_string())
        .bind(code.to_owned())
        .bind(name.to_owned())
        .bind(to_micros(chrono::Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(StoreError::from);
        match result {
            Err(error) if error.is_unique_violation() => {
                return Err(StoreError::Conflict { what: "store" })
            }
            other => other?,
        };
        self.forget_tenant(tenant_id);
        Ok(())
    }

    /// Adds a reward to the catalogue.
    pub async fn create_reward(
        &self,
        tenant_id: TenantId,
        reward: &Reward,
    ) -> Result<RewardId, StoreError> {
        if reward.name.trim().is_empty() {
            return Err(StoreError::invalid("name", "must not be empty"));
        }
        if reward.cost.is_negative() {
            return Err(StoreError::invalid("cost", "must be 0 or more"));
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
        if reward.voucher_valid_days == 0 || reward.voucher_valid_days > 3650 {
            return Err(StoreError::invalid(
                "voucher_valid_days",
                "must be between 1 and 3650",
            ));
        }
        sqlx::query(
            "INSERT INTO rewards (id, tenant_id, name, description, cost, stock, per_member_limit, valid_from, valid_until, \
             stores, voucher_valid_days, active, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
        )
        .bind(reward.id.to_string())
        .bind(tenant_id.to_string())
        .bind(reward.name.clone())
        .bind(reward.description.clone())
        .bind(reward.cost.0)
        .bind(reward.stock)
        .bind(reward.per_member_limit)
        .bind(reward.valid_from.map(to_micros))
        .bind(reward.valid_until.map(to_micros))
        .bind(serde_json::to_string(&reward.stores).expect("strings serialise"))
        .bind(reward.voucher_valid_days as i64)
        .bind(reward.active as i64)
        .bind(to_micros(chrono::Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(reward.id)
    }

    /// Makes an API key; the secret is returned once and only its hash is kept.
    pub async fn create_api_key(
        &self,
        tenant_id: TenantId,
        name: &str,
        scope: KeyScope,
    ) -> Result<String, StoreError> {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("pk_{}", hex::encode(bytes));
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, prefix, scope, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(tenant_id.to_string())
        .bind(name.to_owned())
        .bind(hash_key(&secret))
        .bind(secret[..10].to_owned())
        .bind(scope.as_str())
        .bind(to_micros(chrono::Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(secret)
    }

    /// What a presented key grants, if it is a live key.
    pub async fn authenticate_key(&self, secret: &str) -> Result<Option<KeyGrant>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, scope FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_key(secret))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let scope: String = row.get(2);
        Ok(Some(KeyGrant {
            key_id: row.get(0),
            tenant_id: parse_tenant_id(&row.get::<String, _>(1))?,
            scope: if scope == "write" {
                KeyScope::Write
            } else {
                KeyScope::Read
            },
        }))
    }

    /// Every tenant id, oldest first.
    pub async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        sqlx::query("SELECT id FROM tenants ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| parse_tenant_id(&row.get::<String, _>(0)))
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
        let mut transaction = self.pool.begin().await?;
        for chunk in phones.chunks(10_000) {
            let mut rows = crate::sql::Rows::new(23);
            for phone in chunk {
                let id = patron_core::MemberId::new();
                let profile = patron_core::member::Profile {
                    phone: Some(phone.clone()),
                    ..Default::default()
                };
                let state = patron_core::member::MemberState::new(id, profile, &base_tier, now);
                rows.push(crate::batch::member_row(tenant_id, &state, to_micros(now)));
                ids.push(id);
            }
            for (sql, values) in rows.statements(backend, crate::batch::MEMBER_INSERT, "") {
                crate::sql::bind_all(sqlx::query(&sql), values)
                    .execute(&mut *transaction)
                    .await?;
            }
        }
        transaction.commit().await?;
        // Fresh statistics, or the planner may take a million-row table for an empty one.
        sqlx::query("ANALYZE members").execute(&self.pool).await?;
        Ok(ids)
    }
}
