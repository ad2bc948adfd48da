//! How members reach their own page, and what the till reads beside the journal.
//!
//! - **Card codes**: eight characters a cashier can type (`K7QX-2M9D`), shown on the member's
//!   card and in its QR code. A code is derived from the member id (the first 40 bits of
//!   SHA-256 of `card:<member id>:<attempt>`, written in Crockford's base 32, which has no I, L,
//!   O or U to misread), and stored the first time it is shown, so a lookup is one indexed
//!   read. Should two members of a tenant ever derive the same code, the later one takes the
//!   next attempt's code.
//! - **One-time sign-in codes**: six digits, stored as a salted hash, valid for
//!   [`SIGN_IN_CODE_TTL`], for at most [`SIGN_IN_CODE_ATTEMPTS_MAX`] tries; only the newest code
//!   of a member counts. The code is sent through the tenant's channel: an outbox row of topic
//!   [`SIGN_IN_CODE_TOPIC`] (so the tenant's SMS or Zalo gateway receives it as a signed
//!   webhook) when the tenant subscribes to that topic, and a log line at info (the demo reads
//!   the code there).
//! - **Signed links** a member of staff hands out: HMAC-SHA256 over tenant, member and expiry
//!   with a per-tenant secret kept in the database.
//! - **Member sessions**: a random token in a cookie, its SHA-256 in the database, with a CSRF
//!   token for the page's forms.

use crate::error::Unique;
use crate::model::EventResult;
use crate::{rfc3339, Store, StoreError};
use hmac::{Hmac, Mac};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{MemberId, Phone, TenantId};
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

/// Digits in a one-time sign-in code.
pub const SIGN_IN_CODE_DIGITS: usize = 6;
/// How long a sign-in code is valid after it is issued.
pub const SIGN_IN_CODE_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// Tries (right or wrong) one sign-in code allows.
pub const SIGN_IN_CODE_ATTEMPTS_MAX: i64 = 5;
/// Codes one member may be sent per hour, so a stranger cannot flood their phone nor get
/// fresh tries without end.
pub const SIGN_IN_CODES_PER_HOUR_MAX: i64 = 5;
/// How long a member stays signed in on their phone.
pub const MEMBER_SESSION_TTL: chrono::Duration = chrono::Duration::days(30);
/// How long a signed sign-in link works after staff make it.
pub const MEMBER_LINK_TTL: chrono::Duration = chrono::Duration::hours(24);
/// The webhook topic that carries sign-in codes to the tenant's gateway.
pub const SIGN_IN_CODE_TOPIC: &str = "member.sign_in_code";
/// Characters in a card code (without the hyphen shown in the middle).
pub const CARD_CODE_LENGTH: usize = 8;
/// Derivation attempts before giving up on a free card code (each collides with odds of about
/// one in a trillion times the tenant's members).
pub const CARD_CODE_ATTEMPTS_MAX: u32 = 4;

/// Crockford's base 32: digits and letters without I, L, O, U.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A code issued to a member; `code` is what they type.
#[derive(Clone, Debug)]
pub struct IssuedCode {
    pub member_id: MemberId,
    pub code: String,
    pub expires_at: Timestamp,
}

/// The answer to a typed sign-in code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right: the member is signed in with this session.
    SignedIn(NewMemberSession),
    /// Wrong, with tries left on this code.
    Wrong { attempts_left: i64 },
    /// The newest code has expired; ask for a new one.
    Expired,
    /// The newest code has had all its tries; ask for a new one.
    Locked,
    /// No code was issued (or the phone is no member's).
    NoCode,
}

/// A new member session: the token goes in the cookie, the CSRF token in the page's forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMemberSession {
    pub member_id: MemberId,
    pub token: String,
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// A live member session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSession {
    pub member_id: MemberId,
    pub csrf_token: String,
}

/// What a signed link carries; the page puts it in its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedLink {
    pub member_id: MemberId,
    /// Unix seconds.
    pub expires: i64,
    /// Hex HMAC-SHA256.
    pub signature: String,
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn random_hex(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// A uniformly drawn code of [`SIGN_IN_CODE_DIGITS`] digits.
fn new_sign_in_code() -> String {
    let code: u32 = rand::rng().random_range(0..1_000_000);
    format!("{code:0width$}", width = SIGN_IN_CODE_DIGITS)
}

/// The stored form of a sign-in code: salted with its row's id, so equal codes differ.
fn code_hash(row_id: &str, code: &str) -> String {
    sha256(&format!("{row_id}:{code}"))
}

/// The card code derived from a member id at `attempt` (see the module's doc).
pub fn card_code_of(member_id: MemberId, attempt: u32) -> String {
    let digest = Sha256::digest(format!("card:{member_id}:{attempt}").as_bytes());
    let bits = digest[..5]
        .iter()
        .fold(0u64, |value, byte| (value << 8) | u64::from(*byte));
    (0..CARD_CODE_LENGTH)
        .map(|index| {
            let shift = 5 * (CARD_CODE_LENGTH - 1 - index);
            CROCKFORD[((bits >> shift) & 31) as usize] as char
        })
        .collect()
}

/// A card code as typed or scanned (`k7qx-2m9d`, `K7QX 2M9D`, `K7QX2M9O`) in its stored form,
/// or `None` when it cannot be one.
pub fn parse_card_code(text: &str) -> Option<String> {
    let mut code = String::with_capacity(CARD_CODE_LENGTH);
    for character in text.trim().chars() {
        let character = match character.to_ascii_uppercase() {
            ' ' | '-' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        };
        if !CROCKFORD.contains(&(character as u8)) || !character.is_ascii() {
            return None;
        }
        code.push(character);
    }
    (code.len() == CARD_CODE_LENGTH).then_some(code)
}

/// A card code as printed: `K7QX-2M9D`.
pub fn display_card_code(code: &str) -> String {
    if code.len() == CARD_CODE_LENGTH && code.is_ascii() {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

/// The message a link's signature covers.
fn link_message(tenant_id: TenantId, member_id: MemberId, expires: i64) -> String {
    format!("{tenant_id}.{member_id}.{expires}")
}

fn link_mac(secret: &str, message: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    mac
}

impl Store {
    /// The member with `phone` in `tenant_id`, if any.
    async fn member_with_phone(
        &self,
        tenant_id: TenantId,
        phone: &Phone,
    ) -> Result<Option<MemberId>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT id FROM members WHERE tenant_id = $1 AND phone = $2 AND erased_at IS NULL",
                crate::binds![tenant_id.to_string(), phone.as_str()],
            )
            .await?;
        row.map(|row| crate::batch::parse_member_id(&row.text("id")?))
            .transpose()
    }

    /// Issues a sign-in code to the member with `phone` and sends it through the tenant's
    /// channel. `None` when the phone is no member's (the page does not tell the visitor, so
    /// it cannot be used to learn who is a member). Refused when the member was sent
    /// [`SIGN_IN_CODES_PER_HOUR_MAX`] codes in the last hour.
    pub async fn issue_sign_in_code(
        &self,
        tenant_id: TenantId,
        phone: &Phone,
        now: Timestamp,
    ) -> Result<Option<IssuedCode>, StoreError> {
        let settings = self.tenant(tenant_id).await?;
        let Some(member_id) = self.member_with_phone(tenant_id, phone).await? else {
            tracing::info!(tenant_id = %tenant_id, "member sign-in code asked for a phone that is no member's");
            return Ok(None);
        };
        let id = uuid::Uuid::now_v7().to_string();
        let code = new_sign_in_code();
        let expires_at = now + SIGN_IN_CODE_TTL;
        let mut transaction = self.db.begin_write().await?;
        // Count and insert must be one step, or requests sent at once all see room under the
        // limit. On PostgreSQL the member's row is locked first, so requests for one member
        // take turns; on SQLite the write transaction holds the database's write lock from
        // its start until commit. Either way the count below sees every code issued before
        // ours.
        if self.backend == crate::Backend::Postgres {
            transaction
                .fetch(
                    "SELECT id FROM members WHERE id = $1 FOR UPDATE",
                    crate::binds![member_id.to_string()],
                )
                .await?;
        }
        transaction
            .execute(
                "INSERT INTO member_sign_in_codes (id, tenant_id, member_id, code_hash, attempts, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6)",
                crate::binds![
                    &id,
                    tenant_id.to_string(),
                    member_id.to_string(),
                    code_hash(&id, &code),
                    to_micros(now),
                    to_micros(expires_at),
                ],
            )
            .await?;
        let issued = transaction
            .fetch_one(
                "SELECT COUNT(*) AS issued FROM member_sign_in_codes WHERE member_id = $1 AND created_at > $2",
                crate::binds![
                    member_id.to_string(),
                    to_micros(now - chrono::Duration::hours(1)),
                ],
            )
            .await?
            .int("issued")?;
        if issued > SIGN_IN_CODES_PER_HOUR_MAX {
            transaction.rollback().await?;
            return Err(StoreError::invalid(
                "phone",
                format!("at most {SIGN_IN_CODES_PER_HOUR_MAX} codes an hour"),
            ));
        }
        let has_channel = settings.webhook_topics.contains(SIGN_IN_CODE_TOPIC);
        if has_channel {
            let (outbox_id, payload) = crate::records::webhook_payload(
                SIGN_IN_CODE_TOPIC,
                tenant_id.to_string(),
                rfc3339(now, settings.zone),
                crate::records::SignInCode {
                    member_id: member_id.to_string(),
                    phone: phone.as_str(),
                    code: &code,
                    expires_at: rfc3339(expires_at, settings.zone),
                },
            );
            transaction
                .execute(
                    &format!(
                        "{} VALUES ($1, $2, $3, $4, $5, 0)",
                        crate::webhooks::OUTBOX_INSERT
                    ),
                    crate::binds![
                        outbox_id,
                        tenant_id.to_string(),
                        SIGN_IN_CODE_TOPIC,
                        payload,
                        to_micros(now),
                    ],
                )
                .await?;
        }
        transaction.commit().await?;
        if has_channel {
            tracing::info!(tenant_id = %tenant_id, member_id = %member_id,
                "member sign-in code issued and sent through the tenant's webhook");
        } else {
            // No channel to send it (the demo, a tenant still setting up): the log is the
            // only way to read it, so it is written there.
            tracing::info!(tenant_id = %tenant_id, member_id = %member_id, code = %code,
                "member sign-in code {code} issued; no member.sign_in_code webhook to send it");
        }
        Ok(Some(IssuedCode {
            member_id,
            code,
            expires_at,
        }))
    }

    /// Checks a typed code against the newest code issued to the member with `phone`. Every
    /// try, right or wrong, uses one of the code's [`SIGN_IN_CODE_ATTEMPTS_MAX`] tries; a right
    /// one signs the member in (and the code cannot be used again).
    pub async fn check_sign_in_code(
        &self,
        tenant_id: TenantId,
        phone: &Phone,
        typed: &str,
        now: Timestamp,
    ) -> Result<CodeCheck, StoreError> {
        let Some(member_id) = self.member_with_phone(tenant_id, phone).await? else {
            return Ok(CodeCheck::NoCode);
        };
        let row = self
            .db
            .fetch_optional(
                "SELECT id, code_hash, attempts, expires_at, used_at FROM member_sign_in_codes \
                 WHERE tenant_id = $1 AND member_id = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
                crate::binds![tenant_id.to_string(), member_id.to_string()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(CodeCheck::NoCode);
        };
        let id = row.text("id")?;
        if row.opt_int("used_at")?.is_some() {
            return Ok(CodeCheck::NoCode);
        }
        if from_micros(row.int("expires_at")?) <= now {
            return Ok(CodeCheck::Expired);
        }
        // Take a try first, atomically, so tries sent at once cannot pass the limit.
        let taken = self
            .db
            .execute(
                "UPDATE member_sign_in_codes SET attempts = attempts + 1 \
                 WHERE id = $1 AND attempts < $2 AND used_at IS NULL",
                crate::binds![&id, SIGN_IN_CODE_ATTEMPTS_MAX],
            )
            .await?;
        if taken == 0 {
            return Ok(CodeCheck::Locked);
        }
        let attempts = row
            .int("attempts")?
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("sign-in code attempts overflow".into()))?;
        let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        let presented = code_hash(&id, &typed);
        if !constant_time_eq(presented.as_bytes(), row.text("code_hash")?.as_bytes()) {
            let attempts_left = (SIGN_IN_CODE_ATTEMPTS_MAX - attempts).max(0);
            if attempts_left == 0 {
                return Ok(CodeCheck::Locked);
            }
            return Ok(CodeCheck::Wrong { attempts_left });
        }
        let used = self
            .db
            .execute(
                "UPDATE member_sign_in_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
                crate::binds![to_micros(now), id],
            )
            .await?;
        if used == 0 {
            return Ok(CodeCheck::NoCode);
        }
        Ok(CodeCheck::SignedIn(
            self.start_member_session(tenant_id, member_id, now).await?,
        ))
    }

    /// Signs a member in: a new session of [`MEMBER_SESSION_TTL`].
    pub async fn start_member_session(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
        now: Timestamp,
    ) -> Result<NewMemberSession, StoreError> {
        let session = NewMemberSession {
            member_id,
            token: random_hex("pm_"),
            csrf_token: random_hex(""),
            expires_at: now + MEMBER_SESSION_TTL,
        };
        self.db
            .execute(
                "INSERT INTO member_sessions (token_hash, tenant_id, member_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                crate::binds![
                    sha256(&session.token),
                    tenant_id.to_string(),
                    member_id.to_string(),
                    &session.csrf_token,
                    to_micros(now),
                    to_micros(session.expires_at),
                ],
            )
            .await?;
        Ok(session)
    }

    /// The live session of `tenant_id` behind a cookie's token (another tenant's is none).
    pub async fn member_session(
        &self,
        tenant_id: TenantId,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<MemberSession>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT s.member_id, s.csrf_token FROM member_sessions s JOIN members m ON m.id = s.member_id \
                 WHERE s.token_hash = $1 AND s.tenant_id = $2 AND s.expires_at > $3 AND m.tenant_id = $2 \
                 AND m.erased_at IS NULL",
                crate::binds![sha256(token), tenant_id.to_string(), to_micros(now)],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(MemberSession {
            member_id: crate::batch::parse_member_id(&row.text("member_id")?)?,
            csrf_token: row.text("csrf_token")?,
        }))
    }

    /// Ends a member session.
    pub async fn end_member_session(&self, token: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM member_sessions WHERE token_hash = $1",
                crate::binds![sha256(token)],
            )
            .await?;
        Ok(())
    }

    /// The tenant's link-signing secret, made on first use.
    async fn member_link_secret(&self, tenant_id: TenantId) -> Result<String, StoreError> {
        let select = || {
            self.db.fetch_optional(
                "SELECT secret FROM member_link_secrets WHERE tenant_id = $1",
                crate::binds![tenant_id.to_string()],
            )
        };
        if let Some(row) = select().await? {
            return row.text("secret");
        }
        self.tenant(tenant_id).await?;
        let inserted = self
            .db
            .execute(
                "INSERT INTO member_link_secrets (tenant_id, secret, created_at) VALUES ($1, $2, $3)",
                crate::binds![
                    tenant_id.to_string(),
                    random_hex(""),
                    to_micros(chrono::Utc::now()),
                ],
            )
            .await;
        match inserted {
            // Another request made it first: theirs is the secret.
            Err(error) if error.violated() == Some(Unique::MemberLinkSecret) => {}
            other => {
                other?;
            }
        }
        select()
            .await?
            .ok_or(StoreError::NotFound {
                what: "member link secret",
            })?
            .text("secret")
    }

    /// A sign-in link for a member of `tenant_id`, valid for [`MEMBER_LINK_TTL`] from `now`.
    pub async fn member_link(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
        now: Timestamp,
    ) -> Result<SignedLink, StoreError> {
        self.member_id(tenant_id, &crate::MemberRef::Id(member_id))
            .await?;
        let secret = self.member_link_secret(tenant_id).await?;
        let expires = (now + MEMBER_LINK_TTL).timestamp();
        let message = link_message(tenant_id, member_id, expires);
        Ok(SignedLink {
            member_id,
            expires,
            signature: hex::encode(link_mac(&secret, &message).finalize().into_bytes()),
        })
    }

    /// The member a link signs in, when its signature is the tenant's, it has not expired and
    /// the member is still the tenant's.
    pub async fn verify_member_link(
        &self,
        tenant_id: TenantId,
        member: &str,
        expires: i64,
        signature: &str,
        now: Timestamp,
    ) -> Result<Option<MemberId>, StoreError> {
        let Ok(member_id) = MemberId::parse(member) else {
            return Ok(None);
        };
        if expires <= now.timestamp() {
            return Ok(None);
        }
        let Ok(signature) = hex::decode(signature) else {
            return Ok(None);
        };
        let secret = self.member_link_secret(tenant_id).await?;
        let message = link_message(tenant_id, member_id, expires);
        if link_mac(&secret, &message)
            .verify_slice(&signature)
            .is_err()
        {
            return Ok(None);
        }
        match self
            .member_id(tenant_id, &crate::MemberRef::Id(member_id))
            .await
        {
            Ok(member_id) => Ok(Some(member_id)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The member's card code (stored form, see [`display_card_code`]), made on first use.
    pub async fn card_code(
        &self,
        tenant_id: TenantId,
        member_id: MemberId,
    ) -> Result<String, StoreError> {
        let select = || {
            self.db.fetch_optional(
                "SELECT code FROM member_cards WHERE member_id = $1",
                crate::binds![member_id.to_string()],
            )
        };
        if let Some(row) = select().await? {
            return row.text("code");
        }
        for attempt in 0..CARD_CODE_ATTEMPTS_MAX {
            let code = card_code_of(member_id, attempt);
            let inserted = self
                .db
                .execute(
                    "INSERT INTO member_cards (tenant_id, code, member_id, created_at) VALUES ($1, $2, $3, $4)",
                    crate::binds![
                        tenant_id.to_string(),
                        &code,
                        member_id.to_string(),
                        to_micros(chrono::Utc::now()),
                    ],
                )
                .await;
            match inserted {
                Ok(_) => return Ok(code),
                Err(error) => match error.violated() {
                    // Made at the same moment by another request: theirs is the card.
                    Some(Unique::MemberCard) => {
                        if let Some(row) = select().await? {
                            return row.text("code");
                        }
                    }
                    // The code is another member's: try the next attempt's code.
                    Some(Unique::MemberCardCode) => {}
                    _ => return Err(error),
                },
            }
        }
        Err(StoreError::Conflict {
            what: "card code for this member",
        })
    }

    /// The member of `tenant_id` with card code `code` (as typed or scanned).
    pub async fn member_by_card(
        &self,
        tenant_id: TenantId,
        code: &str,
    ) -> Result<Option<MemberId>, StoreError> {
        let Some(code) = parse_card_code(code) else {
            return Ok(None);
        };
        let row = self
            .db
            .fetch_optional(
                "SELECT c.member_id FROM member_cards c JOIN members m ON m.id = c.member_id \
                 WHERE c.tenant_id = $1 AND c.code = $2 AND m.erased_at IS NULL",
                crate::binds![tenant_id.to_string(), code],
            )
            .await?;
        row.map(|row| crate::batch::parse_member_id(&row.text("member_id")?))
            .transpose()
    }

    /// The tenant's stores as (code, name), by code, for the till's store picker.
    pub async fn store_names(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.db
            .fetch(
                "SELECT code, name FROM stores WHERE tenant_id = $1 ORDER BY code",
                crate::binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| Ok((row.text("code")?, row.text("name")?)))
            .collect()
    }

    /// The stored answer to an accepted event of `tenant_id` (the till's receipt).
    pub async fn event_result(
        &self,
        tenant_id: TenantId,
        event_id: &str,
    ) -> Result<Option<EventResult>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT result FROM events WHERE tenant_id = $1 AND event_id = $2",
                crate::binds![tenant_id.to_string(), event_id],
            )
            .await?;
        row.map(|row| crate::records::decode_answer(&row.text("result")?))
            .transpose()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_codes_are_eight_unambiguous_characters_and_parse_back() {
        let member = MemberId::new();
        let code = card_code_of(member, 0);
        assert_eq!(code.len(), CARD_CODE_LENGTH);
        assert!(code.bytes().all(|b| CROCKFORD.contains(&b)), "{code}");
        assert_eq!(card_code_of(member, 0), code, "derived, so stable");
        assert_ne!(card_code_of(member, 1), code);
        let shown = display_card_code(&code);
        assert_eq!(shown.len(), 9);
        assert_eq!(parse_card_code(&shown), Some(code.clone()));
        assert_eq!(
            parse_card_code(&format!(" {} ", shown.to_lowercase())),
            Some(code)
        );
        assert_eq!(parse_card_code("oil0-0000"), Some("01100000".into()));
        assert_eq!(parse_card_code("ABCD-EFG"), None);
        assert_eq!(parse_card_code("ABCD-EFGHU"), None);
        assert_eq!(parse_card_code("ABCD-ÉFGH"), None);
    }

    #[test]
    fn sign_in_codes_have_six_digits() {
        for _ in 0..100 {
            let code = new_sign_in_code();
            assert_eq!(code.len(), SIGN_IN_CODE_DIGITS);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(code_hash("a", "123456"), code_hash("b", "123456"));
    }
}
