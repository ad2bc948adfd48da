//! The decision: may this message go to this member now, later, or never.

use super::channel::{Channel, Purpose};
use super::consent::Consents;
use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Decree 91/2020 art. 13: advertising messages to a phone number only from 07:00 (included) to
/// 22:00 (excluded) in the recipient's local time.
pub const ADVERTISING_HOURS: (NaiveTime, NaiveTime) = (
    NaiveTime::from_hms_opt(7, 0, 0).expect("07:00 exists"),
    NaiveTime::from_hms_opt(22, 0, 0).expect("22:00 exists"),
);

/// Decree 91/2020 art. 13: at most this many advertising messages to one phone number in any
/// [`ADVERTISING_SMS_WINDOW`].
pub const ADVERTISING_SMS_PER_DAY_MAX: u32 = 3;

/// The rolling window of [`ADVERTISING_SMS_PER_DAY_MAX`]: 24 hours, not a calendar day.
pub const ADVERTISING_SMS_WINDOW: Duration = Duration::hours(24);

/// The zone of local time when neither the member nor the tenant names one: Vietnam's.
pub const ZONE_DEFAULT: Tz = chrono_tz::Asia::Ho_Chi_Minh;

/// How many whole days ahead of a blocked instant the next allowed local time is looked for.
/// One day covers every daily pattern; the second covers a day shortened by a clock change.
const DAYS_AHEAD_MAX: u64 = 2;

/// The longest skipped stretch of local time (a clock moved forward) stepped over, in minutes.
const CLOCK_GAP_MINUTES_MAX: i64 = 24 * 60;

/// At most `messages_max` advertising and care messages to one member, over every channel, in
/// any `window` (rolling). A message sent at `t` holds its slot until `t + window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrequencyCap {
    /// Zero sends nothing but transactional messages.
    pub messages_max: u32,
    /// A window of zero or less never binds.
    pub window: Duration,
}

/// Local times at which the tenant sends no advertising or care message: from `start`
/// (included) to `end` (excluded), wrapping midnight when `end` comes before `start`
/// (21:00–08:00 is the night). `start == end` is no quiet time at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Whether `time` falls in the quiet hours.
    pub fn contains(&self, time: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= time && time < self.end
        } else {
            self.start <= time || time < self.end
        }
    }
}

/// A tenant's policy of respect for its members' attention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Respect {
    pub frequency_cap: Option<FrequencyCap>,
    /// In the member's local time.
    pub quiet_hours: Option<QuietHours>,
    /// The zone of members whose own zone is unknown.
    pub zone_default: Tz,
}

impl Default for Respect {
    /// No cap, no quiet hours, Vietnam's time: only the law applies.
    fn default() -> Respect {
        Respect {
            frequency_cap: None,
            quiet_hours: None,
            zone_default: ZONE_DEFAULT,
        }
    }
}

/// What [`decide`] needs to know of the member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The member's own zone, when known.
    pub zone: Option<Tz>,
    pub consents: Consents,
    /// The channels on which the member has an address that can receive: a phone that parsed
    /// for SMS and ZNS, an email address, a webhook endpoint, an app account for the inbox.
    pub valid_addresses: Vec<Channel>,
    /// On the do-not-advertise list (the member's own request, or the national one).
    pub do_not_advertise: bool,
}

/// The message to decide about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    pub channel: Channel,
    pub purpose: Purpose,
    /// After this instant the message is pointless (the offer has ended, the code has expired):
    /// send it by then or not at all.
    pub send_by: Option<DateTime<Utc>>,
}

/// A message already sent to the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub channel: Channel,
    pub purpose: Purpose,
    pub at: DateTime<Utc>,
}

/// What to do with a planned message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it now.
    Send,
    /// Ask again at `until`, the first instant at which the same history lets it go.
    Defer {
        until: DateTime<Utc>,
        reason: DeferReason,
    },
    /// Never send it.
    Suppress { reason: SuppressReason },
}

impl Decision {
    /// The stable name of the kind of decision.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Send => "send",
            Decision::Defer { .. } => "defer",
            Decision::Suppress { .. } => "suppress",
        }
    }
}

/// Why a message waits. When several rules hold it, the first in this order is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeferReason {
    /// Outside [`ADVERTISING_HOURS`] for advertising to a phone number.
    AdvertisingHours,
    /// [`ADVERTISING_SMS_PER_DAY_MAX`] advertising messages already reached the number in the
    /// last [`ADVERTISING_SMS_WINDOW`].
    AdvertisingSmsPerDay,
    /// In the tenant's quiet hours.
    QuietHours,
    /// The tenant's frequency cap is full.
    FrequencyCap,
}

impl DeferReason {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeferReason::AdvertisingHours => "advertising_hours",
            DeferReason::AdvertisingSmsPerDay => "advertising_sms_per_day",
            DeferReason::QuietHours => "quiet_hours",
            DeferReason::FrequencyCap => "frequency_cap",
        }
    }

    /// The reason of a stable name.
    pub fn parse(text: &str) -> Option<DeferReason> {
        [
            DeferReason::AdvertisingHours,
            DeferReason::AdvertisingSmsPerDay,
            DeferReason::QuietHours,
            DeferReason::FrequencyCap,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}

/// Why a message will never go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    /// No valid address on the channel.
    InvalidAddress,
    /// The member's latest record on the channel is an opt-out.
    OptedOut,
    /// Advertising to a member on the do-not-advertise list.
    DoNotAdvertise,
    /// Advertising on a channel the member never opted in to.
    NoConsent,
    /// The tenant's frequency cap allows no message at all (zero), or a slot would free only
    /// past the end of time.
    Capped,
    /// The quiet hours (with the advertising hours) leave no local time at which it may go.
    NoAllowedHours,
    /// The next instant at which it may go is after its `send_by`.
    TooLate,
}

impl SuppressReason {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::InvalidAddress => "invalid_address",
            SuppressReason::OptedOut => "opted_out",
            SuppressReason::DoNotAdvertise => "do_not_advertise",
            SuppressReason::NoConsent => "no_consent",
            SuppressReason::Capped => "capped",
            SuppressReason::NoAllowedHours => "no_allowed_hours",
            SuppressReason::TooLate => "too_late",
        }
    }

    /// The reason of a stable name.
    pub fn parse(text: &str) -> Option<SuppressReason> {
        [
            SuppressReason::InvalidAddress,
            SuppressReason::OptedOut,
            SuppressReason::DoNotAdvertise,
            SuppressReason::NoConsent,
            SuppressReason::Capped,
            SuppressReason::NoAllowedHours,
            SuppressReason::TooLate,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}

/// Whether `message` may go to `member` at `now`, given the tenant's `policy` and what was sent
/// to the member before (`history`, any order; for the advertising limit per number, include
/// what went to other members sharing the number). The rules are in the module's doc.
///
/// A message in `history` later than `now` is counted as holding its slot from `now` on, which
/// can only make the answer stricter; it keeps every limit monotone, so that a `Defer`'s `until`
/// is an instant at which the same question, with the same history, is answered `Send` (or
/// `Suppress` when the message's `send_by` has passed).
pub fn decide(
    policy: &Respect,
    member: &Recipient,
    message: &Planned,
    history: &[Sent],
    now: DateTime<Utc>,
) -> Decision {
    let Planned {
        channel, purpose, ..
    } = *message;
    if !member.valid_addresses.contains(&channel) {
        return Decision::Suppress {
            reason: SuppressReason::InvalidAddress,
        };
    }
    if purpose == Purpose::Advertising && member.do_not_advertise {
        return Decision::Suppress {
            reason: SuppressReason::DoNotAdvertise,
        };
    }
    if let Err(reason) = member.consents.permits(channel, purpose) {
        return Decision::Suppress { reason };
    }
    let limits = Limits::of(policy, member, message);
    let earliest = match limits.earliest_allowed(history, now) {
        Ok(earliest) => earliest,
        Err(reason) => return Decision::Suppress { reason },
    };
    if message.send_by.is_some_and(|send_by| send_by < earliest) {
        return Decision::Suppress {
            reason: SuppressReason::TooLate,
        };
    }
    match limits.blocking(history, now) {
        None => Decision::Send,
        Some(reason) => Decision::Defer {
            until: earliest,
            reason,
        },
    }
}

/// The timing rules that apply to one message.
struct Limits {
    zone: Tz,
    /// Decree 91's hours and daily limit apply.
    legal: bool,
    quiet_hours: Option<QuietHours>,
    frequency_cap: Option<FrequencyCap>,
}

impl Limits {
    fn of(policy: &Respect, member: &Recipient, message: &Planned) -> Limits {
        let tenant = message.purpose.is_limited();
        Limits {
            zone: member.zone.unwrap_or(policy.zone_default),
            legal: message.purpose == Purpose::Advertising && message.channel.is_number(),
            quiet_hours: policy.quiet_hours.filter(|_| tenant),
            frequency_cap: policy.frequency_cap.filter(|_| tenant),
        }
    }

    /// Why the message cannot go at `at`, the first rule that holds it; `None` when it can.
    fn blocking(&self, history: &[Sent], at: DateTime<Utc>) -> Option<DeferReason> {
        let local = at.with_timezone(&self.zone).time();
        if self.legal && !in_advertising_hours(local) {
            return Some(DeferReason::AdvertisingHours);
        }
        if self.legal && self.advertising_slot_free_at(history, at) != Some(at) {
            return Some(DeferReason::AdvertisingSmsPerDay);
        }
        if self.quiet_hours.is_some_and(|quiet| quiet.contains(local)) {
            return Some(DeferReason::QuietHours);
        }
        if self.frequency_cap.is_some() && self.cap_slot_free_at(history, at) != Some(at) {
            return Some(DeferReason::FrequencyCap);
        }
        None
    }

    /// The first instant from `now` on at which every rule lets the message go, or why there is
    /// none.
    fn earliest_allowed(
        &self,
        history: &[Sent],
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, SuppressReason> {
        let mut from = now;
        if self.legal {
            // `None` only when the slot would free past the last representable instant.
            let free_at = self.advertising_slot_free_at(history, now);
            from = from.max(free_at.ok_or(SuppressReason::Capped)?);
        }
        if self.frequency_cap.is_some() {
            let free_at = self.cap_slot_free_at(history, now);
            from = from.max(free_at.ok_or(SuppressReason::Capped)?);
        }
        self.next_allowed_local_time(from)
            .ok_or(SuppressReason::NoAllowedHours)
    }

    fn advertising_slot_free_at(
        &self,
        history: &[Sent],
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let counted = history
            .iter()
            .filter(|sent| sent.purpose == Purpose::Advertising && sent.channel.is_number())
            .map(|sent| sent.at);
        slot_free_at(
            counted,
            ADVERTISING_SMS_PER_DAY_MAX,
            ADVERTISING_SMS_WINDOW,
            now,
        )
    }

    fn cap_slot_free_at(&self, history: &[Sent], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(cap) = self.frequency_cap else {
            return Some(now);
        };
        let counted = history
            .iter()
            .filter(|sent| sent.purpose.is_limited())
            .map(|sent| sent.at);
        slot_free_at(counted, cap.messages_max, cap.window, now)
    }

    /// Whether the local time of day lets the message go.
    fn allows_local(&self, local: NaiveTime) -> bool {
        (!self.legal || in_advertising_hours(local))
            && !self.quiet_hours.is_some_and(|quiet| quiet.contains(local))
    }

    /// The first instant from `from` on whose local time lets the message go. The allowed
    /// times of day are an intersection of daily intervals, so the first allowed instant after
    /// a disallowed one is where one of them opens: 07:00 or the end of the quiet hours.
    fn next_allowed_local_time(&self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = from.with_timezone(&self.zone);
        if self.allows_local(local.time()) {
            return Some(from);
        }
        let openings = [
            self.legal.then_some(ADVERTISING_HOURS.0),
            self.quiet_hours.map(|quiet| quiet.end),
        ];
        let first_day = local.date_naive();
        (0..=DAYS_AHEAD_MAX)
            .filter_map(|days| first_day.checked_add_days(chrono::Days::new(days)))
            .flat_map(|day| {
                openings
                    .into_iter()
                    .flatten()
                    .flat_map(move |opening| instants_at(day, opening, self.zone))
            })
            .filter(|candidate| {
                *candidate > from && self.allows_local(candidate.with_timezone(&self.zone).time())
            })
            .min()
    }
}

fn in_advertising_hours(local: NaiveTime) -> bool {
    ADVERTISING_HOURS.0 <= local && local < ADVERTISING_HOURS.1
}

/// When a rolling window of `window` would hold fewer than `messages_max` of the messages sent
/// at `sent_at`, from `now` on: `now` if it already does, `None` if never. A message holds its
/// slot from when it was sent (or from `now`, if that is later) until `window` after it was
/// sent.
fn slot_free_at(
    sent_at: impl Iterator<Item = DateTime<Utc>>,
    messages_max: u32,
    window: Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if messages_max == 0 {
        return None;
    }
    if window <= Duration::zero() {
        return Some(now);
    }
    let window_start = now.checked_sub_signed(window);
    let mut holding: Vec<DateTime<Utc>> = sent_at
        .filter(|at| window_start.is_none_or(|start| *at > start))
        .collect();
    let messages_max = messages_max as usize;
    if holding.len() < messages_max {
        return Some(now);
    }
    // Slots free oldest first; once all but `messages_max - 1` have freed, one is open.
    holding.sort_unstable();
    let must_free = holding.len() - messages_max;
    holding[must_free]
        .checked_add_signed(window)
        .map(|free_at| free_at.max(now))
}

/// The instants at which the clock in `zone` reads `time` on `day`: one, two when the clock is
/// set back over it, and when it is set forward over it, the first instant after the gap.
fn instants_at(day: NaiveDate, time: NaiveTime, zone: Tz) -> Vec<DateTime<Utc>> {
    let local = day.and_time(time);
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => vec![at.with_timezone(&Utc)],
        LocalResult::Ambiguous(first, second) => {
            vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
        }
        LocalResult::None => (1..=CLOCK_GAP_MINUTES_MAX)
            .find_map(|minutes| {
                zone.from_local_datetime(&(local + Duration::minutes(minutes)))
                    .earliest()
            })
            .map(|at| at.with_timezone(&Utc))
            .into_iter()
            .collect(),
    }
}
