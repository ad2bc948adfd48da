//! Staff users (owner, manager, marketer, cashier, viewer) with argon2 passwords, and their
//! sessions in the database: the browser holds a random token, the database its SHA-256.

use crate::audit::{Actor, Change};
use crate::db::Row;
use crate::error::Unique;
use crate::{Store, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use patron_core::time::{from_micros, to_micros};
use patron_core::TenantId;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a session lasts after sign-in.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);
/// Shortest password accepted.
pub const PASSWORD_LENGTH_MIN: usize = 10;
/// Longest password accepted (argon2 hashes anything, but a megabyte password is an attack).
pub const PASSWORD_LENGTH_MAX: usize = 256;
/// Passwords hashed or checked at once. Each argon2 run takes about 19 MiB and a core for tens
/// of milliseconds, so a burst of sign-ins waits its turn on the blocking threads instead of
/// taking every core (and the async threads that answer `/healthz` and the tills).
pub const PASSWORD_HASHES_AT_ONCE_MAX: usize = 2;
/// Accounts (one per tenant) whose password one sign-in checks when the e-mail is staff at
/// several tenants and none is named; the oldest accounts first.
pub const SIGN_IN_ACCOUNTS_MAX: usize = 8;

/// The permits for argon2 runs, see [`PASSWORD_HASHES_AT_ONCE_MAX`].
static PASSWORD_HASHING: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(PASSWORD_HASHES_AT_ONCE_MAX);

/// Runs `work` (argon2) on the blocking threads, at most [`PASSWORD_HASHES_AT_ONCE_MAX`] at
/// once.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    let _permit = PASSWORD_HASHING
        .acquire()
        .await
        .map_err(|_| StoreError::Config("the password hashing permits are closed".into()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Config(format!("password hashing: {error}")))
}

/// What a person may do. Keys map onto the same scale (see `KeyScope::role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Manager,
    Marketer,
    Cashier,
    Viewer,
    /// An integration's write key: everything but administration. Not assignable to people.
    Integration,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Marketer => "marketer",
            Role::Cashier => "cashier",
            Role::Viewer => "viewer",
            Role::Integration => "integration",
        }
    }

    /// A role a person can hold.
    pub fn parse_staff(text: &str) -> Option<Role> {
        Some(match text {
            "owner" => Role::Owner,
            "manager" => Role::Manager,
            "marketer" => Role::Marketer,
            "cashier" => Role::Cashier,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }
}

/// A staff user as listed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub disabled: bool,
}

/// A signed-in session: the token goes in a cookie, the CSRF token in forms and headers.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A tenant a person may choose when their e-mail and password open accounts at several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantChoice {
    pub tenant_id: String,
    pub name: String,
}

/// The answer to an e-mail and password.
#[derive(Clone, Debug)]
pub enum StaffSignIn {
    SignedIn(User, NewSession),
    /// Wrong e-mail or password (the two look the same).
    Refused,
    /// The password is right at several tenants and none was named: the person chooses.
    ChooseTenant(Vec<TenantChoice>),
}

/// Who a session belongs to.
#[derive(Clone, Debug)]
pub struct SessionGrant {
    pub user: User,
    pub csrf_token: String,
}

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt =
        SaltString::encode_b64(&salt).map_err(|error| StoreError::Config(error.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| StoreError::Config(format!("argon2: {error}")))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

const USER_SELECT: &str =
    "SELECT id, tenant_id, email, name, role, created_at, disabled_at FROM users";

/// A user from a row with the columns of [`USER_SELECT`].
fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let role = row.text("role")?;
    Ok(User {
        id: row.text("id")?,
        tenant_id: row.text("tenant_id")?,
        email: row.text("email")?,
        name: row.text("name")?,
        role: Role::parse_staff(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
        created_at: crate::rfc3339(from_micros(row.int("created_at")?), chrono_tz::UTC),
        disabled: row.opt_int("disabled_at")?.is_some(),
    })
}

fn check_password(password: &str) -> Result<(), StoreError> {
    let length = password.chars().count();
    if !(PASSWORD_LENGTH_MIN..=PASSWORD_LENGTH_MAX).contains(&length) {
        return Err(StoreError::invalid(
            "password",
            format!("must be {PASSWORD_LENGTH_MIN} to {PASSWORD_LENGTH_MAX} characters"),
        ));
    }
    Ok(())
}

impl Store {
    /// Adds a staff user; the e-mail is unique within the tenant.
    pub async fn create_user(
        &self,
        tenant_id: TenantId,
        email: &str,
        name: &str,
        role: Role,
        password: &str,
        actor: &Actor,
    ) -> Result<User, StoreError> {
        let email = email.trim().to_lowercase();
        if !email.contains('@') || email.len() > 200 {
            return Err(StoreError::invalid("email", "must be an e-mail address"));
        }
        if name.trim().is_empty() || name.len() > 200 {
            return Err(StoreError::invalid("name", "must be 1 to 200 characters"));
        }
        if role == Role::Integration {
            return Err(StoreError::invalid(
                "role",
                "must be owner, manager, marketer, cashier or viewer",
            ));
        }
        check_password(password)?;
        self.tenant(tenant_id).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let owned = password.to_owned();
        let hash = hashing(move || hash_password(&owned)).await??;
        let mut transaction = self.db.begin_write().await?;
        let inserted = transaction
            .execute(
                "INSERT INTO users (id, tenant_id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                crate::binds![
                    &id,
                    tenant_id.to_string(),
                    &email,
                    name.trim(),
                    role.as_str(),
                    hash,
                    to_micros(chrono::Utc::now()),
                ],
            )
            .await;
        if let Err(error) = inserted {
            return Err(if error.violated() == Some(Unique::UserEmail) {
                StoreError::Conflict {
                    what: "user with this e-mail",
                }
            } else {
                error
            });
        }
        crate::audit::record_tx(
            &mut transaction,
            &Change {
                tenant_id,
                actor,
                action: "user.create",
                subject: format!("user:{id}"),
                before: None,
                after: Some(serde_json::json!({"email": email, "name": name.trim(), "role": role})),
            },
        )
        .await?;
        transaction.commit().await?;
        self.user(tenant_id, &id).await
    }

    pub async fn user(&self, tenant_id: TenantId, id: &str) -> Result<User, StoreError> {
        let row = self
            .db
            .fetch_optional(
                &format!("{USER_SELECT} WHERE tenant_id = $1 AND id = $2"),
                crate::binds![tenant_id.to_string(), id],
            )
            .await?
            .ok_or(StoreError::NotFound { what: "user" })?;
        user_from_row(&row)
    }

    pub async fn users(&self, tenant_id: TenantId) -> Result<Vec<User>, StoreError> {
        self.db
            .fetch(
                &format!("{USER_SELECT} WHERE tenant_id = $1 ORDER BY id"),
                crate::binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    /// Changes a user's role or disables them (which also ends their sessions).
    pub async fn update_user(
        &self,
        tenant_id: TenantId,
        id: &str,
        role: Option<Role>,
        disabled: Option<bool>,
        actor: &Actor,
    ) -> Result<User, StoreError> {
        let before = self.user(tenant_id, id).await?;
        if role == Some(Role::Integration) {
            return Err(StoreError::invalid(
                "role",
                "must be owner, manager, marketer, cashier or viewer",
            ));
        }
        let mut transaction = self.db.begin_write().await?;
        if let Some(role) = role {
            transaction
                .execute(
                    "UPDATE users SET role = $1 WHERE tenant_id = $2 AND id = $3",
                    crate::binds![role.as_str(), tenant_id.to_string(), id],
                )
                .await?;
        }
        if let Some(disabled) = disabled {
            transaction
                .execute(
                    "UPDATE users SET disabled_at = $1 WHERE tenant_id = $2 AND id = $3",
                    crate::binds![
                        disabled.then(|| to_micros(chrono::Utc::now())),
                        tenant_id.to_string(),
                        id,
                    ],
                )
                .await?;
        }
        if disabled == Some(true) || role.is_some() {
            transaction
                .execute("DELETE FROM sessions WHERE user_id = $1", crate::binds![id])
                .await?;
        }
        crate::audit::record_tx(
            &mut transaction,
            &Change {
                tenant_id,
                actor,
                action: "user.update",
                subject: format!("user:{id}"),
                before: Some(serde_json::json!({"role": before.role, "disabled": before.disabled})),
                after: Some(serde_json::json!({
                    "role": role.unwrap_or(before.role),
                    "disabled": disabled.unwrap_or(before.disabled),
                })),
            },
        )
        .await?;
        transaction.commit().await?;
        self.user(tenant_id, id).await
    }

    /// Signs a user in by e-mail and password; `None` for a wrong e-mail or password, and when
    /// the password is right at several tenants and `tenant_id` names none of them (see
    /// [`Store::sign_in_staff`], which tells that case apart).
    pub async fn sign_in(
        &self,
        tenant_id: Option<TenantId>,
        email: &str,
        password: &str,
    ) -> Result<Option<(User, NewSession)>, StoreError> {
        Ok(
            match self.sign_in_staff(tenant_id, email, password).await? {
                StaffSignIn::SignedIn(user, session) => Some((user, session)),
                StaffSignIn::Refused | StaffSignIn::ChooseTenant(_) => None,
            },
        )
    }

    /// Signs a member of staff in by e-mail and password. An e-mail may be staff at several
    /// tenants, each account with its own password: the password picks the account, so a
    /// tenant that adds a user with someone else's e-mail cannot lock them out. When it is
    /// right at several and `tenant_id` names none, the person chooses. A wrong e-mail and a
    /// wrong password look the same and take as long. Passwords are checked on the blocking
    /// threads (see [`PASSWORD_HASHES_AT_ONCE_MAX`]).
    pub async fn sign_in_staff(
        &self,
        tenant_id: Option<TenantId>,
        email: &str,
        password: &str,
    ) -> Result<StaffSignIn, StoreError> {
        let email = email.trim().to_lowercase();
        let rows = self
            .db
            .fetch(
                "SELECT u.id, u.tenant_id, u.email, u.name, u.role, u.created_at, u.disabled_at, \
                 u.password_hash, t.name AS tenant_name FROM users u JOIN tenants t ON t.id = u.tenant_id \
                 WHERE u.email = $1 AND u.disabled_at IS NULL ORDER BY u.created_at, u.id",
                crate::binds![email],
            )
            .await?;
        let wanted = tenant_id.map(|tenant| tenant.to_string());
        let mut candidates = Vec::new();
        for row in &rows {
            if candidates.len() == SIGN_IN_ACCOUNTS_MAX {
                break;
            }
            if wanted.is_none() || wanted == Some(row.text("tenant_id")?) {
                candidates.push(row);
            }
        }
        let hashes = candidates
            .iter()
            .map(|row| row.text("password_hash"))
            .collect::<Result<Vec<String>, StoreError>>()?;
        let password = password.to_owned();
        let matching = hashing(move || {
            if hashes.is_empty() {
                // Hash anyway so a wrong e-mail takes as long as a wrong password.
                let _ = hash_password(&password);
            }
            hashes
                .iter()
                .map(|hash| password_matches(&password, hash))
                .collect::<Vec<bool>>()
        })
        .await?;
        let matched: Vec<_> = candidates
            .iter()
            .zip(matching)
            .filter(|(_, matches)| *matches)
            .map(|(row, _)| *row)
            .collect();
        let row = match matched.as_slice() {
            [] => return Ok(StaffSignIn::Refused),
            [row] => *row,
            several => {
                let choices = several
                    .iter()
                    .map(|row| {
                        Ok(TenantChoice {
                            tenant_id: row.text("tenant_id")?,
                            name: row.text("tenant_name")?,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?;
                return Ok(StaffSignIn::ChooseTenant(choices));
            }
        };
        let user = user_from_row(row)?;
        let session = NewSession {
            token: random_token("ps_"),
            csrf_token: random_token(""),
            expires_at: chrono::Utc::now() + SESSION_TTL,
        };
        self.db
            .execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                crate::binds![
                    sha256(&session.token),
                    &user.id,
                    &session.csrf_token,
                    to_micros(chrono::Utc::now()),
                    to_micros(session.expires_at),
                ],
            )
            .await?;
        Ok(StaffSignIn::SignedIn(user, session))
    }

    /// The live session behind a cookie's token.
    pub async fn session(&self, token: &str) -> Result<Option<SessionGrant>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT u.id, u.tenant_id, u.email, u.name, u.role, u.created_at, u.disabled_at, s.csrf_token \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
                crate::binds![sha256(token), to_micros(chrono::Utc::now())],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionGrant {
            user: user_from_row(&row)?,
            csrf_token: row.text("csrf_token")?,
        }))
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM sessions WHERE token_hash = $1",
                crate::binds![sha256(token)],
            )
            .await?;
        Ok(())
    }
}
