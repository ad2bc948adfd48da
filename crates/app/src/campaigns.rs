//! Campaigns: a message to a segment, over the tenant's channels in the order given (the next
//! one when a member cannot be reached on the first: no address, no consent, a refusal), with
//! message variants (A/B) and a hold-out share drawn per member, deterministically, that is not
//! sent to, so the report can say what the campaign changed.
//!
//! Starting a campaign fixes its audience: every member of the segment then gets one `messages`
//! row, rendered (minijinja, the member's fields) and queued, held out, or suppressed with the
//! reason; the dispatcher ([`crate::dispatch`]) sends the queued ones as the rules of respect
//! allow.

use crate::error::AppError;
use crate::grant::{Grant, Permission};
use chrono::{DateTime, Utc};
use patron_core::time::Timestamp;
use patron_core::MemberId;
use patron_store::campaigns::{CampaignRow, NewMessage};
use patron_store::members::MemberSummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest campaign name, in characters.
pub const CAMPAIGN_NAME_MAX: usize = 100;
/// Most message variants of one campaign.
pub const VARIANTS_MAX: usize = 5;
/// Largest hold-out share, in percent.
pub const HOLDOUT_PERCENT_MAX: u8 = 50;
/// Longest attribution window, in days.
pub const ATTRIBUTION_DAYS_MAX: u32 = 90;
/// Longest template, in bytes.
pub const TEMPLATE_BYTES_MAX: usize = 20_000;
/// Longest SMS after rendering, in characters (4 Unicode segments).
pub const SMS_CHARS_MAX: usize = 268;
/// Members read and queued per transaction when a campaign starts.
pub const QUEUE_CHUNK: usize = 2_000;

/// A channel a campaign sends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Zns,
    Sms,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Zns => "zns",
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        [Channel::Zns, Channel::Sms, Channel::Email]
            .into_iter()
            .find(|channel| channel.as_str() == text)
    }
}

/// Why a campaign is sent: advertising (promotions; the law's rules on advertising SMS apply)
/// or care (birthday wishes, points expiring, feedback).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    #[default]
    Advertising,
    Care,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Advertising => "advertising",
            Purpose::Care => "care",
        }
    }
}

/// A ZNS template and the values of its parameters (each a template over the member).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZnsContent {
    pub template_id: String,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// An e-mail's templates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailContent {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// One version of the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// Share of the sent group, relative to the other variants' weights (1 to 100).
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub zns: Option<ZnsContent>,
    #[serde(default)]
    pub sms: Option<String>,
    #[serde(default)]
    pub email: Option<EmailContent>,
}

fn one() -> u32 {
    1
}

fn seven() -> u32 {
    7
}

/// A campaign as the marketer writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignDefinition {
    pub name: String,
    pub segment_id: String,
    #[serde(default)]
    pub purpose: Purpose,
    /// In order: the next is tried when a member cannot be reached on one.
    pub channels: Vec<Channel>,
    pub variants: Vec<Variant>,
    /// Share of the audience not sent to, for the report's comparison (0 to 50).
    #[serde(default)]
    pub holdout_percent: u8,
    /// Purchases this many days after the start count as the campaign's (1 to 90).
    #[serde(default = "seven")]
    pub attribution_days: u32,
    /// When to start; now when missing.
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// What a template may name.
#[derive(Clone, Debug, Serialize)]
pub struct TemplateMember {
    pub name: String,
    pub first_name: String,
    pub tier: String,
    pub points: i64,
    pub phone: String,
    pub email: String,
}

#[derive(Clone, Debug, Serialize)]
struct TemplateContext<'a> {
    member: &'a TemplateMember,
    tenant: &'a TemplateTenant,
}

/// The tenant as templates see it.
#[derive(Clone, Debug, Serialize)]
pub struct TemplateTenant {
    pub name: String,
}

impl TemplateMember {
    pub fn of(member: &MemberSummary) -> TemplateMember {
        let name = member.name.clone().unwrap_or_default();
        // Vietnamese names end with the given name: "Nguyễn Thị Lan" is Lan.
        let first_name = name
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned();
        TemplateMember {
            name,
            first_name,
            tier: member.tier.clone(),
            points: member.balance,
            phone: member.phone.clone().unwrap_or_default(),
            email: member.email.clone().unwrap_or_default(),
        }
    }

    fn sample() -> TemplateMember {
        TemplateMember {
            name: "Nguyễn Thị Lan".into(),
            first_name: "Lan".into(),
            tier: "gold".into(),
            points: 1250,
            phone: "+84901234567".into(),
            email: "lan@example.vn".into(),
        }
    }
}

/// A message's rendered content for one channel, as the outbox keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Rendered {
    Zns {
        template_id: String,
        data: BTreeMap<String, String>,
    },
    Sms {
        text: String,
    },
    Email {
        subject: String,
        html: String,
        text: String,
    },
}

impl Rendered {
    pub fn channel(&self) -> Channel {
        match self {
            Rendered::Zns { .. } => Channel::Zns,
            Rendered::Sms { .. } => Channel::Sms,
            Rendered::Email { .. } => Channel::Email,
        }
    }
}

/// A step of a message's fallback: the channel's address and content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub to: String,
    pub content: Rendered,
}

/// The compiled templates of a campaign's variants.
pub struct Templates {
    plain: minijinja::Environment<'static>,
    html: minijinja::Environment<'static>,
    tenant: TemplateTenant,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> AppError {
    AppError::invalid(field.into(), message.into())
}

impl Templates {
    /// Compiles every template of `definition` under stable names, refusing any that does not
    /// parse or names what a template cannot read.
    pub fn compile(
        definition: &CampaignDefinition,
        tenant: TemplateTenant,
    ) -> Result<Templates, AppError> {
        let mut plain = minijinja::Environment::new();
        plain.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let mut html = minijinja::Environment::new();
        html.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        html.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        for (index, variant) in definition.variants.iter().enumerate() {
            let mut sources: Vec<(String, String, bool)> = Vec::new();
            if let Some(zns) = &variant.zns {
                for (key, value) in &zns.data {
                    sources.push((
                        format!("variants[{index}].zns.data.{key}"),
                        value.clone(),
                        false,
                    ));
                }
            }
            if let Some(sms) = &variant.sms {
                sources.push((format!("variants[{index}].sms"), sms.clone(), false));
            }
            if let Some(email) = &variant.email {
                sources.push((
                    format!("variants[{index}].email.subject"),
                    email.subject.clone(),
                    false,
                ));
                sources.push((
                    format!("variants[{index}].email.html"),
                    email.html.clone(),
                    true,
                ));
                sources.push((
                    format!("variants[{index}].email.text"),
                    email.text.clone(),
                    false,
                ));
            }
            for (name, source, is_html) in sources {
                if source.len() > TEMPLATE_BYTES_MAX {
                    return Err(invalid(name, format!("at most {TEMPLATE_BYTES_MAX} bytes")));
                }
                let environment = if is_html { &mut html } else { &mut plain };
                environment
                    .add_template_owned(name.clone(), source)
                    .map_err(|error| invalid(name.clone(), format!("does not parse: {error}")))?;
            }
        }
        let templates = Templates {
            plain,
            html,
            tenant,
        };
        // Every template renders for a sample member, or it names something that is not there.
        for (index, variant) in definition.variants.iter().enumerate() {
            for channel in &definition.channels {
                let rendered = templates
                    .render(index, variant, *channel, &TemplateMember::sample())?
                    .ok_or_else(|| {
                        invalid(
                            format!("variants[{index}].{}", channel.as_str()),
                            "every variant needs content for every channel of the campaign",
                        )
                    })?;
                if let Rendered::Sms { text } = &rendered {
                    if text.chars().count() > SMS_CHARS_MAX {
                        return Err(invalid(
                            format!("variants[{index}].sms"),
                            format!("at most {SMS_CHARS_MAX} characters once filled in"),
                        ));
                    }
                }
            }
        }
        Ok(templates)
    }

    fn fill(&self, name: &str, html: bool, member: &TemplateMember) -> Result<String, AppError> {
        let environment = if html { &self.html } else { &self.plain };
        let context = TemplateContext {
            member,
            tenant: &self.tenant,
        };
        environment
            .get_template(name)
            .and_then(|template| template.render(&context))
            .map_err(|error| invalid(name.to_owned(), format!("does not render: {error}")))
    }

    /// One variant's content on `channel` for `member`; `None` when the variant has none.
    pub fn render(
        &self,
        index: usize,
        variant: &Variant,
        channel: Channel,
        member: &TemplateMember,
    ) -> Result<Option<Rendered>, AppError> {
        Ok(match channel {
            Channel::Zns => match &variant.zns {
                None => None,
                Some(zns) => {
                    let mut data = BTreeMap::new();
                    for key in zns.data.keys() {
                        let name = format!("variants[{index}].zns.data.{key}");
                        data.insert(key.clone(), self.fill(&name, false, member)?);
                    }
                    Some(Rendered::Zns {
                        template_id: zns.template_id.clone(),
                        data,
                    })
                }
            },
            Channel::Sms => match &variant.sms {
                None => None,
                Some(_) => Some(Rendered::Sms {
                    text: self.fill(&format!("variants[{index}].sms"), false, member)?,
                }),
            },
            Channel::Email => match &variant.email {
                None => None,
                Some(_) => Some(Rendered::Email {
                    subject: self.fill(
                        &format!("variants[{index}].email.subject"),
                        false,
                        member,
                    )?,
                    html: self.fill(&format!("variants[{index}].email.html"), true, member)?,
                    text: self.fill(&format!("variants[{index}].email.text"), false, member)?,
                }),
            },
        })
    }
}

impl CampaignDefinition {
    /// Checks every field but the templates (see [`Templates::compile`]).
    pub fn check(&self) -> Result<(), AppError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > CAMPAIGN_NAME_MAX {
            return Err(invalid(
                "name",
                format!("1 to {CAMPAIGN_NAME_MAX} characters"),
            ));
        }
        if self.channels.is_empty() {
            return Err(invalid("channels", "at least one channel"));
        }
        let mut seen = self.channels.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.channels.len() {
            return Err(invalid("channels", "each channel once"));
        }
        if self.variants.is_empty() || self.variants.len() > VARIANTS_MAX {
            return Err(invalid("variants", format!("1 to {VARIANTS_MAX} variants")));
        }
        for (index, variant) in self.variants.iter().enumerate() {
            if !(1..=100).contains(&variant.weight) {
                return Err(invalid(format!("variants[{index}].weight"), "1 to 100"));
            }
            if variant.name.trim().is_empty() {
                return Err(invalid(format!("variants[{index}].name"), "a name"));
            }
        }
        if self.holdout_percent > HOLDOUT_PERCENT_MAX {
            return Err(invalid(
                "holdout_percent",
                format!("0 to {HOLDOUT_PERCENT_MAX}"),
            ));
        }
        if !(1..=ATTRIBUTION_DAYS_MAX).contains(&self.attribution_days) {
            return Err(invalid(
                "attribution_days",
                format!("1 to {ATTRIBUTION_DAYS_MAX}"),
            ));
        }
        Ok(())
    }
}

/// A campaign with its definition read.
#[derive(Clone, Debug)]
pub struct Campaign {
    pub row: CampaignRow,
    pub definition: CampaignDefinition,
}

fn definition_of(row: &CampaignRow) -> Result<CampaignDefinition, AppError> {
    serde_json::from_str(&row.definition)
        .map_err(|error| AppError::internal(format!("campaign {}: {error}", row.id)))
}

/// The address of a member on a channel, if they have one.
fn address(member: &MemberSummary, channel: Channel) -> Option<String> {
    match channel {
        Channel::Zns | Channel::Sms => member.phone.clone(),
        Channel::Email => member.email.clone(),
    }
    .filter(|address| !address.is_empty())
}

/// The stable id of a campaign's message to a member: starting twice queues nothing twice.
pub fn message_id(campaign_id: &str, member: &MemberId) -> String {
    format!("{campaign_id}:{member}")
}

/// The message of `campaign` for one member: held out, or rendered for the first channel the
/// member has an address on, with the rest as its fallback; suppressed when none.
pub fn message_for(
    campaign: &Campaign,
    templates: &Templates,
    member: &MemberSummary,
    now: Timestamp,
) -> Result<NewMessage, AppError> {
    let definition = &campaign.definition;
    let member_id = MemberId::parse(&member.id).map_err(AppError::internal)?;
    let basis_points = u32::from(definition.holdout_percent) * 100;
    let held_out = patron_core::outreach::in_holdout(&campaign.row.id, &member.id, basis_points);
    let weights: Vec<u32> = definition
        .variants
        .iter()
        .map(|variant| variant.weight)
        .collect();
    let variant =
        patron_core::outreach::variant(&campaign.row.id, &member.id, &weights).unwrap_or(0);
    let context = TemplateMember::of(member);
    let mut steps = Vec::new();
    if !held_out {
        for channel in &definition.channels {
            let Some(to) = address(member, *channel) else {
                continue;
            };
            let content = templates
                .render(variant, &definition.variants[variant], *channel, &context)?
                .ok_or_else(|| AppError::internal("a checked variant lacks a channel"))?;
            steps.push(Step { to, content });
        }
    }
    let mut steps = steps.into_iter();
    let first = steps.next();
    let rest: Vec<Step> = steps.collect();
    let (status, reason) = match (&first, held_out) {
        (_, true) => ("held_out", None),
        (None, false) => ("suppressed", Some("invalid_address".to_owned())),
        (Some(_), false) => ("queued", None),
    };
    let (channel, to_address, body) = match &first {
        Some(step) => (
            step.content.channel().as_str().to_owned(),
            step.to.clone(),
            serde_json::to_string(&step.content).expect("content serialises"),
        ),
        None => (
            definition.channels[0].as_str().to_owned(),
            String::new(),
            "null".to_owned(),
        ),
    };
    Ok(NewMessage {
        id: message_id(&campaign.row.id, &member_id),
        member_id,
        campaign_id: Some(campaign.row.id.clone()),
        variant: variant as i64,
        held_out,
        purpose: definition.purpose.as_str().to_owned(),
        channel,
        to_address,
        body,
        fallback: (!rest.is_empty())
            .then(|| serde_json::to_string(&rest).expect("steps serialise")),
        status: status.to_owned(),
        reason,
        next_at: now,
    })
}

impl crate::App {
    /// Saves a campaign: scheduled at its time, or to start at once.
    pub async fn create_campaign(
        &self,
        grant: &Grant,
        definition: &CampaignDefinition,
    ) -> Result<Campaign, AppError> {
        grant.require(Permission::ManageMarketing)?;
        definition.check()?;
        let settings = self.store.tenant(grant.tenant_id).await?;
        Templates::compile(
            definition,
            TemplateTenant {
                name: settings.name.clone(),
            },
        )?;
        self.store
            .segment(grant.tenant_id, &definition.segment_id)
            .await
            .map_err(|_| invalid("segment_id", "no such segment"))?;
        let now = chrono::Utc::now();
        let row = CampaignRow {
            id: uuid_v7(),
            tenant_id: grant.tenant_id,
            name: definition.name.trim().to_owned(),
            segment_id: definition.segment_id.clone(),
            definition: serde_json::to_string(definition).expect("a definition serialises"),
            status: "scheduled".into(),
            scheduled_at: Some(definition.scheduled_at.unwrap_or(now)),
            started_at: None,
            finished_at: None,
            audience: None,
            created_at: now,
            created_by: grant.actor.0.clone(),
        };
        self.store.create_campaign(&row).await?;
        Ok(Campaign {
            row,
            definition: definition.clone(),
        })
    }

    /// A campaign of the grant's tenant.
    pub async fn campaign(&self, grant: &Grant, id: &str) -> Result<Campaign, AppError> {
        grant.require(Permission::Read)?;
        let row = self.store.campaign(grant.tenant_id, id).await?;
        let definition = definition_of(&row)?;
        Ok(Campaign { row, definition })
    }

    /// Starts a campaign now (it must be scheduled): fixes its audience and queues its
    /// messages. Returns how many members it targets.
    pub async fn start_campaign(&self, grant: &Grant, id: &str) -> Result<usize, AppError> {
        grant.require(Permission::ManageMarketing)?;
        let row = self.store.campaign(grant.tenant_id, id).await?;
        self.start(row).await
    }

    /// Starts every campaign whose time has come; what the scheduler runs.
    pub async fn start_due_campaigns(&self) -> Result<usize, AppError> {
        let mut started = 0;
        for row in self.store.due_campaigns(chrono::Utc::now()).await? {
            let id = row.id.clone();
            match self.start(row).await {
                Ok(_) => started += 1,
                Err(error) => tracing::error!(campaign = %id, %error, "a campaign did not start"),
            }
        }
        Ok(started)
    }

    async fn start(&self, row: CampaignRow) -> Result<usize, AppError> {
        let now = chrono::Utc::now();
        let tenant_id = row.tenant_id;
        // Only one node starts it.
        if !self
            .store
            .move_campaign(tenant_id, &row.id, &["scheduled"], "sending", now)
            .await?
        {
            return Err(AppError::new(
                crate::ErrorKind::Conflict,
                "campaign_not_scheduled",
                "the campaign is not waiting to start",
                None,
            ));
        }
        let campaign = Campaign {
            definition: definition_of(&row)?,
            row,
        };
        let settings = self.store.tenant(tenant_id).await?;
        let templates = Templates::compile(
            &campaign.definition,
            TemplateTenant {
                name: settings.name.clone(),
            },
        )?;
        let audience = self
            .segments_members(tenant_id, &campaign.definition.segment_id)
            .await?;
        for chunk in audience.chunks(QUEUE_CHUNK) {
            let members = self.store.member_summaries(tenant_id, chunk).await?;
            let mut messages = Vec::with_capacity(members.len());
            for member in members.iter().filter(|member| !member.erased) {
                messages.push(message_for(&campaign, &templates, member, now)?);
            }
            self.store.queue_messages(tenant_id, messages, now).await?;
        }
        self.store
            .set_campaign_audience(&campaign.row.id, audience.len() as i64)
            .await?;
        Ok(audience.len())
    }
}

fn uuid_v7() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What a campaign did: who it targeted, what happened to each message, and what the members
/// sent to bought against the held-out ones in the attribution window.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignReport {
    pub targeted: i64,
    pub held_out: i64,
    /// Never sent, by reason (no consent, opted out, invalid address, capped, …).
    pub suppressed: BTreeMap<String, i64>,
    /// Waiting: queued or deferred.
    pub pending: i64,
    /// Accepted by a provider (delivered ones included).
    pub sent: i64,
    pub delivered: i64,
    /// Failed for good, by reason.
    pub failed: BTreeMap<String, i64>,
    /// Sent per channel.
    pub sent_by_channel: BTreeMap<String, i64>,
    /// What the providers charged, in đồng.
    pub cost: i64,
    pub window_from: Timestamp,
    pub window_to: Timestamp,
    /// The audience not held out, whatever became of their message (intention to treat), and
    /// the held out: members, converted, revenue.
    pub sent_group: GroupFigures,
    pub holdout_group: GroupFigures,
    pub variants: Vec<VariantFigures>,
    pub uplift: patron_core::outreach::Uplift,
}

/// Members of a group, how many bought in the window, and what they spent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFigures {
    pub members: i64,
    pub converted: i64,
    pub purchases: i64,
    pub revenue: i64,
}

/// A variant's part of the sent group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VariantFigures {
    pub name: String,
    pub sent: i64,
    pub figures: GroupFigures,
}

impl crate::App {
    /// The campaign's report now (conversions up to now, within the attribution window).
    pub async fn campaign_report(
        &self,
        grant: &Grant,
        id: &str,
    ) -> Result<CampaignReport, AppError> {
        let campaign = self.campaign(grant, id).await?;
        let counts = self.store.campaign_counts(id).await?;
        let mut report = CampaignReport {
            targeted: 0,
            held_out: 0,
            suppressed: BTreeMap::new(),
            pending: 0,
            sent: 0,
            delivered: 0,
            failed: BTreeMap::new(),
            sent_by_channel: BTreeMap::new(),
            cost: 0,
            window_from: campaign.row.started_at.unwrap_or(campaign.row.created_at),
            window_to: campaign.row.started_at.unwrap_or(campaign.row.created_at),
            sent_group: GroupFigures::default(),
            holdout_group: GroupFigures::default(),
            variants: campaign
                .definition
                .variants
                .iter()
                .map(|variant| VariantFigures {
                    name: variant.name.clone(),
                    ..VariantFigures::default()
                })
                .collect(),
            uplift: patron_core::outreach::uplift(
                &patron_core::outreach::GroupOutcome::default(),
                &patron_core::outreach::GroupOutcome::default(),
            ),
        };
        for count in &counts {
            report.targeted += count.messages;
            report.cost += count.cost;
            let group = if count.held_out {
                report.held_out += count.messages;
                &mut report.holdout_group
            } else {
                &mut report.sent_group
            };
            group.members += count.messages;
            let reason = count.reason.clone().unwrap_or_default();
            let variant = report.variants.get_mut(count.variant as usize);
            match count.status.as_str() {
                "suppressed" => *report.suppressed.entry(reason).or_default() += count.messages,
                "queued" | "deferred" => report.pending += count.messages,
                "sent" | "delivered" => {
                    report.sent += count.messages;
                    if count.status == "delivered" {
                        report.delivered += count.messages;
                    }
                    *report
                        .sent_by_channel
                        .entry(count.channel.clone())
                        .or_default() += count.messages;
                    if let Some(variant) = variant {
                        variant.sent += count.messages;
                    }
                }
                "failed" => *report.failed.entry(reason).or_default() += count.messages,
                _ => {}
            }
        }
        for count in counts.iter().filter(|count| !count.held_out) {
            if let Some(variant) = report.variants.get_mut(count.variant as usize) {
                variant.figures.members += count.messages;
            }
        }
        let Some(started) = campaign.row.started_at else {
            return Ok(report);
        };
        let window_end =
            started + chrono::Duration::days(i64::from(campaign.definition.attribution_days));
        let until = window_end.min(chrono::Utc::now());
        report.window_to = window_end;
        let conversions = self
            .store
            .campaign_conversions(grant.tenant_id, id, started, until)
            .await?;
        let mut sent_members = Vec::new();
        let mut holdout_members = Vec::new();
        for conversion in &conversions {
            let group = if conversion.held_out {
                holdout_members.push((true, conversion.revenue));
                &mut report.holdout_group
            } else {
                sent_members.push((true, conversion.revenue));
                if let Some(variant) = report.variants.get_mut(conversion.variant as usize) {
                    variant.figures.converted += 1;
                    variant.figures.purchases += conversion.purchases;
                    variant.figures.revenue += conversion.revenue;
                }
                &mut report.sent_group
            };
            group.converted += 1;
            group.purchases += conversion.purchases;
            group.revenue += conversion.revenue;
        }
        // Members who did not buy count with no revenue.
        let pad = |members: &mut Vec<(bool, i64)>, all: i64| {
            let missing = usize::try_from(all)
                .unwrap_or(0)
                .saturating_sub(members.len());
            members.extend(std::iter::repeat_n((false, 0), missing));
        };
        pad(&mut sent_members, report.sent_group.members);
        pad(&mut holdout_members, report.holdout_group.members);
        let outcome = |members: Vec<(bool, i64)>| {
            patron_core::outreach::GroupOutcome::from_members(members).unwrap_or_default()
        };
        report.uplift =
            patron_core::outreach::uplift(&outcome(sent_members), &outcome(holdout_members));
        Ok(report)
    }

    /// The tenant's campaigns, newest first.
    pub async fn campaigns(&self, grant: &Grant) -> Result<Vec<Campaign>, AppError> {
        grant.require(Permission::Read)?;
        self.store
            .campaigns(grant.tenant_id)
            .await?
            .into_iter()
            .map(|row| {
                Ok(Campaign {
                    definition: definition_of(&row)?,
                    row,
                })
            })
            .collect()
    }

    /// Cancels a campaign not yet started, or stops one sending: what is not sent yet is not.
    pub async fn cancel_campaign(&self, grant: &Grant, id: &str) -> Result<(), AppError> {
        grant.require(Permission::ManageMarketing)?;
        let moved = self
            .store
            .move_campaign(
                grant.tenant_id,
                id,
                &["scheduled", "sending"],
                "cancelled",
                chrono::Utc::now(),
            )
            .await?;
        if !moved {
            return Err(AppError::new(
                crate::ErrorKind::Conflict,
                "campaign_finished",
                "the campaign has finished or was cancelled",
                None,
            ));
        }
        self.store.cancel_campaign_messages(id).await?;
        Ok(())
    }
}
