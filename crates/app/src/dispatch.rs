//! Sending the queued messages: the dispatcher leases due messages, asks the rules of respect
//! (`patron_core::outreach::decide`: consent, the law's hours and daily limit for advertising
//! SMS, the tenant's cap and quiet hours) whether each may go now, and sends it through the
//! tenant's account on its channel (`patron_channels`), falling back to the next channel when
//! the member cannot be reached on this one, retrying with back-off what the provider failed
//! for a while, and recording what happened. The tenant's accounts are kept sealed with the
//! server's key and opened only here.

use crate::campaigns::{Channel, Rendered, Step};
use crate::error::AppError;
use crate::grant::{Grant, Permission};
use chrono::{DateTime, Utc};
use patron_channels::secrets::Sealer;
use patron_channels::{Body, Outgoing, SendFailure};
use patron_core::outreach::{self, Decision, Planned, Recipient, Respect};
use patron_core::time::Timestamp;
use patron_core::TenantId;
use patron_store::campaigns::{MessageOutcome, MessageRow};
use patron_store::Store;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Messages leased at once.
pub const LEASE_BATCH: usize = 100;
/// Sends of one message before a provider's passing failure counts as final.
pub const ATTEMPTS_MAX: i64 = 5;
/// How far back the caps look at what was sent.
pub const HISTORY_DAYS: i64 = 31;

/// A tenant's account with a provider, as sealed at rest. Never shown back.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum Account {
    Zns {
        app_id: String,
        secret_key: String,
        /// The OA's secret, which signs delivery webhooks.
        oa_secret_key: String,
        access_token: String,
        refresh_token: String,
        expires_at: DateTime<Utc>,
        #[serde(default)]
        api_base_url: Option<String>,
        #[serde(default)]
        oauth_base_url: Option<String>,
    },
    Esms {
        api_key: String,
        secret_key: String,
        brandname: String,
        #[serde(default)]
        base_url: Option<String>,
        #[serde(default)]
        sandbox: bool,
    },
    Speedsms {
        access_token: String,
        sender: String,
        #[serde(default)]
        base_url: Option<String>,
    },
    Smtp {
        host: String,
        port: u16,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default = "yes")]
        starttls: bool,
        from: String,
    },
}

fn yes() -> bool {
    true
}

impl Account {
    /// Refuses what would send the server's requests elsewhere than to the provider: another
    /// API address, an SMTP host on this machine or its private network — unless `local`
    /// (tests, closed networks).
    pub fn check_targets(&self, local: bool) -> Result<(), AppError> {
        if local {
            return Ok(());
        }
        let overrides: [(&str, &Option<String>); 3] = match self {
            Account::Zns {
                api_base_url,
                oauth_base_url,
                ..
            } => [
                ("api_base_url", api_base_url),
                ("oauth_base_url", oauth_base_url),
                ("", &None),
            ],
            Account::Esms { base_url, .. } | Account::Speedsms { base_url, .. } => {
                [("base_url", base_url), ("", &None), ("", &None)]
            }
            Account::Smtp { host, .. } => {
                let lowered = host.trim().to_ascii_lowercase();
                let local_name = lowered == "localhost" || lowered.ends_with(".localhost");
                let local_address = lowered
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|address| match address {
                        std::net::IpAddr::V4(v4) => {
                            v4.is_loopback()
                                || v4.is_private()
                                || v4.is_link_local()
                                || v4.is_unspecified()
                        }
                        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
                    });
                if local_name || local_address {
                    return Err(AppError::invalid(
                        "host",
                        "an SMTP host on this machine or a private network is not allowed",
                    ));
                }
                return Ok(());
            }
        };
        for (field, value) in overrides {
            if value.is_some() {
                return Err(AppError::invalid(
                    field,
                    "the provider's own address is used; another is allowed only in tests",
                ));
            }
        }
        Ok(())
    }

    /// The channel the account sends on.
    pub fn channel(&self) -> Channel {
        match self {
            Account::Zns { .. } => Channel::Zns,
            Account::Esms { .. } | Account::Speedsms { .. } => Channel::Sms,
            Account::Smtp { .. } => Channel::Email,
        }
    }

    pub fn provider(&self) -> &'static str {
        match self {
            Account::Zns { .. } => "zns",
            Account::Esms { .. } => "esms",
            Account::Speedsms { .. } => "speedsms",
            Account::Smtp { .. } => "smtp",
        }
    }
}

/// The context an account is sealed under: a sealed account moved to another tenant or channel
/// does not open.
fn context(tenant_id: TenantId, channel: Channel) -> String {
    format!("patron/channel-account/{tenant_id}/{}", channel.as_str())
}

/// A tenant's opened adapter on a channel.
type Adapter = Arc<dyn patron_channels::Channel>;

/// The server's key and the opened adapters, shared by the dispatchers.
#[derive(Clone, Default)]
pub struct Outbox {
    /// Accounts may name other provider addresses and local SMTP hosts (tests, closed
    /// networks); otherwise only the providers' own addresses and public SMTP hosts.
    pub(crate) local_targets: bool,
    sealer: Option<Arc<Sealer>>,
    adapters: Arc<Mutex<HashMap<(TenantId, Channel), Adapter>>>,
}

/// Keeps a ZNS account's tokens: each refresh seals the new pair into the stored account.
struct StoredTokens {
    store: Store,
    sealer: Arc<Sealer>,
    tenant_id: TenantId,
}

impl StoredTokens {
    async fn account(&self) -> Result<Account, String> {
        open_account(&self.store, &self.sealer, self.tenant_id, Channel::Zns)
            .await
            .map_err(|error| error.message)?
            .ok_or_else(|| "no ZNS account".to_owned())
    }
}

impl patron_channels::zns::TokenStore for StoredTokens {
    fn load(&self) -> patron_channels::zns::TokenFuture<'_, patron_channels::zns::ZnsTokens> {
        Box::pin(async move {
            match self.account().await {
                Ok(Account::Zns {
                    access_token,
                    refresh_token,
                    expires_at,
                    ..
                }) => Ok(patron_channels::zns::ZnsTokens {
                    access_token,
                    refresh_token,
                    expires_at,
                }),
                Ok(_) => Err(patron_channels::zns::TokenStoreError(
                    "not a ZNS account".into(),
                )),
                Err(error) => Err(patron_channels::zns::TokenStoreError(error)),
            }
        })
    }

    fn save<'a>(
        &'a self,
        tokens: &'a patron_channels::zns::ZnsTokens,
    ) -> patron_channels::zns::TokenFuture<'a, ()> {
        Box::pin(async move {
            let mut account = self
                .account()
                .await
                .map_err(patron_channels::zns::TokenStoreError)?;
            if let Account::Zns {
                access_token,
                refresh_token,
                expires_at,
                ..
            } = &mut account
            {
                *access_token = tokens.access_token.clone();
                *refresh_token = tokens.refresh_token.clone();
                *expires_at = tokens.expires_at;
            }
            seal_account(&self.store, &self.sealer, self.tenant_id, &account)
                .await
                .map_err(|error| patron_channels::zns::TokenStoreError(error.message))
        })
    }
}

async fn seal_account(
    store: &Store,
    sealer: &Sealer,
    tenant_id: TenantId,
    account: &Account,
) -> Result<(), AppError> {
    let channel = account.channel();
    let text = serde_json::to_vec(account).expect("an account serialises");
    let sealed = sealer.seal(&text, &context(tenant_id, channel));
    store
        .save_channel_account(tenant_id, channel.as_str(), account.provider(), &sealed)
        .await?;
    Ok(())
}

async fn open_account(
    store: &Store,
    sealer: &Sealer,
    tenant_id: TenantId,
    channel: Channel,
) -> Result<Option<Account>, AppError> {
    let accounts = store.channel_accounts(tenant_id).await?;
    let Some((_, _, sealed)) = accounts
        .into_iter()
        .find(|(name, _, _)| name == channel.as_str())
    else {
        return Ok(None);
    };
    let text = sealer
        .open(&sealed, &context(tenant_id, channel))
        .map_err(|error| AppError::internal(format!("a channel account does not open: {error}")))?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|error| AppError::internal(format!("a channel account: {error}")))
}

impl Outbox {
    /// With the server's key, which seals the tenants' accounts.
    pub fn with_key(key: [u8; 32]) -> Outbox {
        Outbox {
            local_targets: false,
            sealer: Some(Arc::new(Sealer::new(key))),
            adapters: Arc::default(),
        }
    }

    fn sealer(&self) -> Result<&Arc<Sealer>, AppError> {
        self.sealer.as_ref().ok_or_else(|| {
            AppError::invalid(
                "account",
                "the server has no secret key to keep accounts with (set secret_key_file)",
            )
        })
    }

    async fn adapter(
        &self,
        store: &Store,
        tenant_id: TenantId,
        channel: Channel,
    ) -> Result<Option<Adapter>, AppError> {
        if let Some(adapter) = self
            .adapters
            .lock()
            .expect("adapters lock")
            .get(&(tenant_id, channel))
        {
            return Ok(Some(Arc::clone(adapter)));
        }
        let Some(sealer) = self.sealer.clone() else {
            return Ok(None);
        };
        let Some(account) = open_account(store, &sealer, tenant_id, channel).await? else {
            return Ok(None);
        };
        let adapter: Adapter = match account {
            Account::Zns {
                app_id,
                secret_key,
                api_base_url,
                oauth_base_url,
                ..
            } => {
                let mut config = patron_channels::zns::ZnsConfig::new(app_id, secret_key);
                if let Some(url) = api_base_url {
                    config.api_base_url = url;
                }
                if let Some(url) = oauth_base_url {
                    config.oauth_base_url = url;
                }
                let tokens = Arc::new(StoredTokens {
                    store: store.clone(),
                    sealer,
                    tenant_id,
                });
                Arc::new(patron_channels::zns::ZnsChannel::new(config, tokens))
            }
            Account::Esms {
                api_key,
                secret_key,
                brandname,
                base_url,
                sandbox,
            } => {
                let mut config =
                    patron_channels::esms::EsmsConfig::new(api_key, secret_key, brandname);
                if let Some(url) = base_url {
                    config.base_url = url;
                }
                config.sandbox = sandbox;
                Arc::new(patron_channels::esms::EsmsChannel::new(config))
            }
            Account::Speedsms {
                access_token,
                sender,
                base_url,
            } => {
                let mut config =
                    patron_channels::speedsms::SpeedSmsConfig::new(access_token, sender);
                if let Some(url) = base_url {
                    config.base_url = url;
                }
                Arc::new(patron_channels::speedsms::SpeedSmsChannel::new(config))
            }
            Account::Smtp {
                host,
                port,
                username,
                password,
                starttls,
                from,
            } => {
                let mut config = patron_channels::email::EmailConfig::new(host, from);
                config.port = port;
                config.username = username;
                config.password = password;
                config.tls = if starttls {
                    patron_channels::email::TlsMode::StartTls
                } else {
                    patron_channels::email::TlsMode::None
                };
                Arc::new(
                    patron_channels::email::EmailChannel::new(config)
                        .map_err(|error| AppError::invalid("account", error.to_string()))?,
                )
            }
        };
        self.adapters
            .lock()
            .expect("adapters lock")
            .insert((tenant_id, channel), Arc::clone(&adapter));
        Ok(Some(adapter))
    }
}

/// The tenant's rules of respect, as kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespectSettings {
    /// At most this many advertising and care messages per member in `cap_days` (none: no cap).
    #[serde(default)]
    pub cap_messages: Option<u32>,
    #[serde(default)]
    pub cap_days: Option<u32>,
    /// Quiet hours in the member's local time, e.g. "21:00" to "08:00".
    #[serde(default)]
    pub quiet_from: Option<String>,
    #[serde(default)]
    pub quiet_to: Option<String>,
}

impl RespectSettings {
    /// Checks the settings and turns them into the rules `decide` applies.
    pub fn respect(&self, zone: chrono_tz::Tz) -> Result<Respect, AppError> {
        let time = |field: &str, text: &str| {
            chrono::NaiveTime::parse_from_str(text, "%H:%M")
                .map_err(|_| AppError::invalid(field.to_owned(), "HH:MM, e.g. 21:00".to_owned()))
        };
        let quiet_hours = match (&self.quiet_from, &self.quiet_to) {
            (Some(from), Some(to)) => Some(outreach::QuietHours {
                start: time("quiet_from", from)?,
                end: time("quiet_to", to)?,
            }),
            (None, None) => None,
            _ => {
                return Err(AppError::invalid(
                    "quiet_to",
                    "both ends of the quiet hours, or neither",
                ))
            }
        };
        let frequency_cap = match (self.cap_messages, self.cap_days) {
            (Some(messages), Some(days)) if (1..=365).contains(&days) => {
                Some(outreach::FrequencyCap {
                    messages_max: messages,
                    window: chrono::Duration::days(i64::from(days)),
                })
            }
            (None, None) => None,
            _ => {
                return Err(AppError::invalid(
                    "cap_days",
                    "a cap needs cap_messages and cap_days (1 to 365)",
                ))
            }
        };
        Ok(Respect {
            frequency_cap,
            quiet_hours,
            zone_default: zone,
        })
    }
}

fn outreach_channel(channel: Channel) -> outreach::Channel {
    match channel {
        Channel::Zns => outreach::Channel::Zns,
        Channel::Sms => outreach::Channel::Sms,
        Channel::Email => outreach::Channel::Email,
    }
}

fn outreach_purpose(purpose: &str) -> outreach::Purpose {
    match purpose {
        "care" => outreach::Purpose::Care,
        "transactional" => outreach::Purpose::Transactional,
        _ => outreach::Purpose::Advertising,
    }
}

/// The tracking id providers de-duplicate on: 32 hex characters of the message id's hash.
fn tracking_id(message_id: &str) -> String {
    hex::encode(&sha2::Sha256::digest(message_id.as_bytes())[..16])
}

fn body_of(content: &Rendered) -> Body {
    match content {
        Rendered::Zns { template_id, data } => Body::Template {
            template_id: template_id.clone(),
            data: data.clone(),
        },
        Rendered::Sms { text } => Body::Text(text.clone()),
        Rendered::Email {
            subject,
            html,
            text,
        } => Body::Email {
            subject: subject.clone(),
            html: html.clone(),
            text: text.clone(),
            unsubscribe_url: None,
        },
    }
}

/// Back-off before the next try of a passing failure: 1, 4, 16, 64 minutes.
fn back_off(attempts: i64) -> chrono::Duration {
    chrono::Duration::minutes(4i64.saturating_pow(attempts.clamp(1, 5) as u32 - 1))
}

/// The message goes on on its next channel, or stops with `reason`.
fn next_or(message: &MessageRow, reason: &str, detail: String, now: Timestamp) -> MessageOutcome {
    let steps: Vec<Step> = message
        .fallback
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let mut steps = steps.into_iter();
    match steps.next() {
        Some(step) => {
            let rest: Vec<Step> = steps.collect();
            let _ = now;
            MessageOutcome::FellBack {
                channel: step.content.channel().as_str().to_owned(),
                to_address: step.to,
                body: serde_json::to_string(&step.content).expect("content serialises"),
                fallback: (!rest.is_empty())
                    .then(|| serde_json::to_string(&rest).expect("steps serialise")),
                reason: format!("{}: {reason}", message.channel),
            }
        }
        None => MessageOutcome::Failed {
            reason: reason.to_owned(),
            detail,
        },
    }
}

impl crate::App {
    /// Keeps a tenant's account with a provider, sealed; replaces the channel's account.
    pub async fn save_channel_account(
        &self,
        grant: &Grant,
        account: &Account,
    ) -> Result<(), AppError> {
        grant.require(Permission::ManageMarketing)?;
        account.check_targets(self.outbox.local_targets)?;
        let sealer = self.outbox.sealer()?;
        seal_account(&self.store, sealer, grant.tenant_id, account).await?;
        self.outbox
            .adapters
            .lock()
            .expect("adapters lock")
            .remove(&(grant.tenant_id, account.channel()));
        Ok(())
    }

    /// The tenant's accounts: (channel, provider). The credentials are never shown back.
    pub async fn channel_accounts(&self, grant: &Grant) -> Result<Vec<(String, String)>, AppError> {
        grant.require(Permission::Read)?;
        Ok(self
            .store
            .channel_accounts(grant.tenant_id)
            .await?
            .into_iter()
            .map(|(channel, provider, _)| (channel, provider))
            .collect())
    }

    /// The OA secret that signs the tenant's ZNS delivery webhooks.
    pub async fn zns_webhook_secret(
        &self,
        tenant_id: TenantId,
    ) -> Result<Option<(String, String)>, AppError> {
        let sealer = self.outbox.sealer()?;
        Ok(
            match open_account(&self.store, sealer, tenant_id, Channel::Zns).await? {
                Some(Account::Zns {
                    app_id,
                    oa_secret_key,
                    ..
                }) => Some((app_id, oa_secret_key)),
                _ => None,
            },
        )
    }

    /// Keeps the tenant's rules of respect.
    pub async fn save_respect(
        &self,
        grant: &Grant,
        settings: &RespectSettings,
    ) -> Result<(), AppError> {
        grant.require(Permission::ManageMarketing)?;
        let zone = self.store.tenant(grant.tenant_id).await?.zone;
        settings.respect(zone)?;
        let text = serde_json::to_string(settings).expect("settings serialise");
        self.store
            .save_outreach_settings(grant.tenant_id, &text)
            .await?;
        Ok(())
    }

    /// The tenant's rules of respect (none kept: only the law's).
    pub async fn respect_settings(&self, tenant_id: TenantId) -> Result<RespectSettings, AppError> {
        Ok(match self.store.outreach_settings(tenant_id).await? {
            Some(text) => serde_json::from_str(&text).map_err(AppError::internal)?,
            None => RespectSettings::default(),
        })
    }

    /// Leases the messages due now and sends or settles each; returns how many it handled.
    pub async fn dispatch_due(&self, now: Timestamp) -> Result<usize, AppError> {
        let leased = self.store.lease_messages(now, LEASE_BATCH).await?;
        let mut campaigns = std::collections::BTreeSet::new();
        for message in &leased {
            let outcome = match self.dispatch(message, now).await {
                Ok(outcome) => outcome,
                Err(error) => MessageOutcome::Deferred {
                    until: now + back_off(message.attempts),
                    reason: format!("internal: {}", error.message),
                },
            };
            self.store
                .finish_message(&message.id, &outcome, Utc::now())
                .await?;
            if let Some(campaign) = &message.campaign_id {
                campaigns.insert((message.tenant_id, campaign.clone()));
            }
        }
        for (tenant_id, campaign) in campaigns {
            if self.store.campaign_pending(&campaign).await? == 0 {
                self.store
                    .move_campaign(tenant_id, &campaign, &["sending"], "sent", now)
                    .await?;
            }
        }
        Ok(leased.len())
    }

    async fn dispatch(
        &self,
        message: &MessageRow,
        now: Timestamp,
    ) -> Result<MessageOutcome, AppError> {
        let channel = Channel::parse(&message.channel)
            .ok_or_else(|| AppError::internal(format!("message channel {}", message.channel)))?;
        let content: Rendered = serde_json::from_str(&message.body).map_err(AppError::internal)?;
        let settings = self.store.tenant(message.tenant_id).await?;
        let respect = self
            .respect_settings(message.tenant_id)
            .await?
            .respect(settings.zone)?;
        let consents = self
            .store
            .consents(message.tenant_id, message.member_id)
            .await?
            .into_iter()
            .filter_map(|consent| {
                let channel = match consent.channel {
                    patron_store::segments::ConsentChannel::Zns => outreach::Channel::Zns,
                    patron_store::segments::ConsentChannel::Sms => outreach::Channel::Sms,
                    patron_store::segments::ConsentChannel::Email => outreach::Channel::Email,
                };
                let at = DateTime::parse_from_rfc3339(&consent.at)
                    .ok()?
                    .with_timezone(&Utc);
                Some(outreach::Consent {
                    channel,
                    granted: consent.granted,
                    at,
                    source: consent.source,
                })
            })
            .collect();
        let recipient = Recipient {
            zone: None,
            consents: outreach::Consents::new(consents),
            valid_addresses: if message.to_address.is_empty() {
                Vec::new()
            } else {
                vec![outreach_channel(channel)]
            },
            do_not_advertise: false,
        };
        let history: Vec<outreach::Sent> = self
            .store
            .sent_to(
                message.member_id,
                now - chrono::Duration::days(HISTORY_DAYS),
            )
            .await?
            .into_iter()
            .filter_map(|(channel, purpose, at)| {
                Some(outreach::Sent {
                    channel: outreach_channel(Channel::parse(&channel)?),
                    purpose: outreach_purpose(&purpose),
                    at,
                })
            })
            .collect();
        let planned = Planned {
            channel: outreach_channel(channel),
            purpose: outreach_purpose(&message.purpose),
            send_by: None,
        };
        match outreach::decide(&respect, &recipient, &planned, &history, now) {
            Decision::Defer { until, reason } => {
                return Ok(MessageOutcome::Deferred {
                    until,
                    reason: reason.as_str().to_owned(),
                })
            }
            Decision::Suppress { reason } => {
                return Ok(match message.fallback {
                    // Another channel may reach the member.
                    Some(_) => next_or(message, reason.as_str(), String::new(), now),
                    None => MessageOutcome::Suppressed {
                        reason: reason.as_str().to_owned(),
                    },
                });
            }
            Decision::Send => {}
        }
        let Some(adapter) = self
            .outbox
            .adapter(&self.store, message.tenant_id, channel)
            .await?
        else {
            return Ok(next_or(
                message,
                "no_account",
                format!("no {} account", channel.as_str()),
                now,
            ));
        };
        let outgoing = Outgoing {
            to: message.to_address.clone(),
            tracking_id: tracking_id(&message.id),
            body: body_of(&content),
            advertising: planned.purpose == outreach::Purpose::Advertising,
        };
        Ok(match adapter.send(&outgoing).await {
            Ok(sent) => MessageOutcome::Sent {
                provider_id: sent.provider_id,
                cost: sent.cost_vnd,
                parts: i64::from(sent.parts),
            },
            Err(failure) => failed(message, failure, now),
        })
    }
}

/// What a provider's refusal means for the message: try again later, go on on the next
/// channel, or stop.
fn failed(message: &MessageRow, failure: SendFailure, now: Timestamp) -> MessageOutcome {
    let reason = failure.reason.as_str();
    if failure.retryable && message.attempts < ATTEMPTS_MAX {
        return MessageOutcome::Deferred {
            until: now + back_off(message.attempts),
            reason: reason.to_owned(),
        };
    }
    next_or(
        message,
        reason,
        format!("{} {}", failure.provider_code, failure.detail),
        now,
    )
}
