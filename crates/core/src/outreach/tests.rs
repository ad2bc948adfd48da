use super::*;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

const HANOI: Tz = chrono_tz::Asia::Ho_Chi_Minh;

/// An instant given by Hà Nội's clock in March 2026.
fn hanoi(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    HANOI
        .with_ymd_and_hms(2026, 3, day, hour, minute, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn time(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).unwrap()
}

fn granted_everywhere() -> Recipient {
    let consents = Channel::ALL
        .iter()
        .map(|channel| Consent {
            channel: *channel,
            granted: true,
            at: hanoi(1, 9, 0),
            source: "registration_sms".into(),
        })
        .collect();
    Recipient {
        zone: None,
        consents: Consents::new(consents),
        valid_addresses: Channel::ALL.to_vec(),
        do_not_advertise: false,
    }
}

fn planned(channel: Channel, purpose: Purpose) -> Planned {
    Planned {
        channel,
        purpose,
        send_by: None,
    }
}

fn sent(channel: Channel, purpose: Purpose, at: DateTime<Utc>) -> Sent {
    Sent {
        channel,
        purpose,
        at,
    }
}

fn defer(until: DateTime<Utc>, reason: DeferReason) -> Decision {
    Decision::Defer { until, reason }
}

fn suppress(reason: SuppressReason) -> Decision {
    Decision::Suppress { reason }
}

const AD_SMS: Planned = Planned {
    channel: Channel::Sms,
    purpose: Purpose::Advertising,
    send_by: None,
};

#[test]
fn advertising_sms_waits_for_seven_and_stops_at_ten() {
    let policy = Respect::default();
    let member = granted_everywhere();
    let early = decide(&policy, &member, &AD_SMS, &[], hanoi(10, 6, 30));
    assert_eq!(early, defer(hanoi(10, 7, 0), DeferReason::AdvertisingHours));
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &[], hanoi(10, 7, 0)),
        Decision::Send
    );
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &[], hanoi(10, 21, 59)),
        Decision::Send
    );
    // 22:00 itself is past the window.
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &[], hanoi(10, 22, 0)),
        defer(hanoi(11, 7, 0), DeferReason::AdvertisingHours)
    );
    // The same hour by the care of a birthday SMS, or an advertising email: no legal window.
    let care = planned(Channel::Sms, Purpose::Care);
    assert_eq!(
        decide(&policy, &member, &care, &[], hanoi(10, 23, 0)),
        Decision::Send
    );
    let email = planned(Channel::Email, Purpose::Advertising);
    assert_eq!(
        decide(&policy, &member, &email, &[], hanoi(10, 23, 0)),
        Decision::Send
    );
    // ZNS promotions obey the same hours.
    let zns = planned(Channel::Zns, Purpose::Advertising);
    assert_eq!(
        decide(&policy, &member, &zns, &[], hanoi(10, 23, 0)),
        defer(hanoi(11, 7, 0), DeferReason::AdvertisingHours)
    );
}

#[test]
fn the_hours_are_the_members_own() {
    let policy = Respect::default();
    let member = Recipient {
        zone: Some(chrono_tz::Asia::Tokyo),
        ..granted_everywhere()
    };
    // 06:30 in Hà Nội is 08:30 in Tokyo.
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &[], hanoi(10, 6, 30)),
        Decision::Send
    );
    // 20:30 in Hà Nội is 22:30 in Tokyo: wait for 07:00 Tokyo, 05:00 Hà Nội.
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &[], hanoi(10, 20, 30)),
        defer(hanoi(11, 5, 0), DeferReason::AdvertisingHours)
    );
    // A tenant elsewhere sets its default zone for members without one.
    let policy = Respect {
        zone_default: chrono_tz::Asia::Tokyo,
        ..Respect::default()
    };
    assert_eq!(
        decide(
            &policy,
            &granted_everywhere(),
            &AD_SMS,
            &[],
            hanoi(10, 6, 30)
        ),
        Decision::Send
    );
}

#[test]
fn a_fourth_advertising_sms_waits_for_the_oldest_to_leave_the_24_hours() {
    let policy = Respect::default();
    let member = granted_everywhere();
    let history = [
        sent(Channel::Sms, Purpose::Advertising, hanoi(10, 9, 0)),
        sent(Channel::Zns, Purpose::Advertising, hanoi(10, 12, 0)),
        sent(Channel::Sms, Purpose::Advertising, hanoi(10, 15, 0)),
        // Neither counts: care, and advertising by email.
        sent(Channel::Sms, Purpose::Care, hanoi(10, 16, 0)),
        sent(Channel::Email, Purpose::Advertising, hanoi(10, 16, 0)),
    ];
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &history, hanoi(10, 18, 0)),
        defer(hanoi(11, 9, 0), DeferReason::AdvertisingSmsPerDay)
    );
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &history, hanoi(11, 9, 0)),
        Decision::Send
    );
    // An advertising email is not held by the per-number limit.
    let email = planned(Channel::Email, Purpose::Advertising);
    assert_eq!(
        decide(&policy, &member, &email, &history, hanoi(10, 18, 0)),
        Decision::Send
    );
    // Sent late in the evening, the oldest frees its slot at night: wait for 07:00 too.
    let evening = [
        sent(Channel::Sms, Purpose::Advertising, hanoi(10, 21, 0)),
        sent(Channel::Sms, Purpose::Advertising, hanoi(10, 21, 30)),
        sent(Channel::Sms, Purpose::Advertising, hanoi(10, 21, 45)),
    ];
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &evening, hanoi(11, 8, 0)),
        defer(hanoi(11, 21, 0), DeferReason::AdvertisingSmsPerDay)
    );
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &evening, hanoi(10, 21, 50)),
        defer(hanoi(11, 21, 0), DeferReason::AdvertisingSmsPerDay)
    );
}

#[test]
fn quiet_hours_wrap_midnight_and_defer_care_and_advertising() {
    let policy = Respect {
        quiet_hours: Some(QuietHours {
            start: time(21, 0),
            end: time(8, 0),
        }),
        ..Respect::default()
    };
    let member = granted_everywhere();
    let birthday = planned(Channel::Email, Purpose::Care);
    assert_eq!(
        decide(&policy, &member, &birthday, &[], hanoi(10, 23, 0)),
        defer(hanoi(11, 8, 0), DeferReason::QuietHours)
    );
    assert_eq!(
        decide(&policy, &member, &birthday, &[], hanoi(11, 2, 0)),
        defer(hanoi(11, 8, 0), DeferReason::QuietHours)
    );
    assert_eq!(
        decide(&policy, &member, &birthday, &[], hanoi(11, 8, 0)),
        Decision::Send
    );
    // 07:30 is inside the law's hours but not the tenant's.
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &[], hanoi(11, 7, 30)),
        defer(hanoi(11, 8, 0), DeferReason::QuietHours)
    );
    // 06:00 is outside both: the law is named, 08:00 is when both allow.
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &[], hanoi(11, 6, 0)),
        defer(hanoi(11, 8, 0), DeferReason::AdvertisingHours)
    );
    // A sign-in code ignores them.
    let code = planned(Channel::Sms, Purpose::Transactional);
    assert_eq!(
        decide(&policy, &member, &code, &[], hanoi(11, 2, 0)),
        Decision::Send
    );
    assert!(!QuietHours {
        start: time(9, 0),
        end: time(9, 0)
    }
    .contains(time(9, 0)));
}

#[test]
fn quiet_hours_that_cover_the_legal_window_leave_no_time_for_advertising_sms() {
    let policy = Respect {
        quiet_hours: Some(QuietHours {
            start: time(6, 0),
            end: time(23, 0),
        }),
        ..Respect::default()
    };
    let member = granted_everywhere();
    assert_eq!(
        decide(&policy, &member, &AD_SMS, &[], hanoi(10, 12, 0)),
        suppress(SuppressReason::NoAllowedHours)
    );
    let email = planned(Channel::Email, Purpose::Advertising);
    assert_eq!(
        decide(&policy, &member, &email, &[], hanoi(10, 12, 0)),
        defer(hanoi(10, 23, 0), DeferReason::QuietHours)
    );
}

#[test]
fn the_frequency_cap_defers_until_a_slot_frees() {
    let policy = Respect {
        frequency_cap: Some(FrequencyCap {
            messages_max: 2,
            window: Duration::days(7),
        }),
        ..Respect::default()
    };
    let member = granted_everywhere();
    let history = [
        sent(Channel::Email, Purpose::Advertising, hanoi(3, 10, 0)),
        sent(Channel::Zns, Purpose::Care, hanoi(5, 10, 0)),
        // Transactional messages take no slot.
        sent(Channel::Sms, Purpose::Transactional, hanoi(6, 10, 0)),
    ];
    let inbox = planned(Channel::Inbox, Purpose::Care);
    assert_eq!(
        decide(&policy, &member, &inbox, &history, hanoi(6, 12, 0)),
        defer(hanoi(10, 10, 0), DeferReason::FrequencyCap)
    );
    assert_eq!(
        decide(&policy, &member, &inbox, &history, hanoi(10, 10, 0)),
        Decision::Send
    );
    let receipt = planned(Channel::Email, Purpose::Transactional);
    assert_eq!(
        decide(&policy, &member, &receipt, &history, hanoi(6, 12, 0)),
        Decision::Send
    );
    // A cap of zero: waiting is pointless.
    let closed = Respect {
        frequency_cap: Some(FrequencyCap {
            messages_max: 0,
            window: Duration::days(7),
        }),
        ..Respect::default()
    };
    assert_eq!(
        decide(&closed, &member, &inbox, &[], hanoi(6, 12, 0)),
        suppress(SuppressReason::Capped)
    );
    assert_eq!(
        decide(&closed, &member, &receipt, &[], hanoi(6, 12, 0)),
        Decision::Send
    );
}

#[test]
fn a_message_that_cannot_go_before_its_deadline_is_dropped() {
    let policy = Respect::default();
    let member = granted_everywhere();
    let flash_sale = Planned {
        send_by: Some(hanoi(10, 23, 59)),
        ..AD_SMS
    };
    assert_eq!(
        decide(&policy, &member, &flash_sale, &[], hanoi(10, 22, 30)),
        suppress(SuppressReason::TooLate)
    );
    assert_eq!(
        decide(&policy, &member, &flash_sale, &[], hanoi(10, 21, 30)),
        Decision::Send
    );
    let expired_code = Planned {
        channel: Channel::Sms,
        purpose: Purpose::Transactional,
        send_by: Some(hanoi(10, 12, 0)),
    };
    assert_eq!(
        decide(&policy, &member, &expired_code, &[], hanoi(10, 12, 1)),
        suppress(SuppressReason::TooLate)
    );
}

#[test]
fn who_gets_nothing() {
    let policy = Respect::default();
    let noon = hanoi(10, 12, 0);
    let no_phone = Recipient {
        valid_addresses: vec![Channel::Email],
        ..granted_everywhere()
    };
    let code = planned(Channel::Sms, Purpose::Transactional);
    assert_eq!(
        decide(&policy, &no_phone, &code, &[], noon),
        suppress(SuppressReason::InvalidAddress)
    );
    let listed = Recipient {
        do_not_advertise: true,
        ..granted_everywhere()
    };
    let email_ad = planned(Channel::Email, Purpose::Advertising);
    assert_eq!(
        decide(&policy, &listed, &email_ad, &[], noon),
        suppress(SuppressReason::DoNotAdvertise)
    );
    assert_eq!(decide(&policy, &listed, &code, &[], noon), Decision::Send);
    let mut opted_out = granted_everywhere();
    opted_out.consents.record(Consent {
        channel: Channel::Sms,
        granted: false,
        at: hanoi(5, 9, 0),
        source: "reply_tu_choi".into(),
    });
    assert_eq!(
        decide(&policy, &opted_out, &code, &[], noon),
        suppress(SuppressReason::OptedOut)
    );
    let stranger = Recipient {
        consents: Consents::default(),
        ..granted_everywhere()
    };
    assert_eq!(
        decide(&policy, &stranger, &AD_SMS, &[], noon),
        suppress(SuppressReason::NoConsent)
    );
    assert_eq!(
        decide(
            &policy,
            &stranger,
            &planned(Channel::Zns, Purpose::Care),
            &[],
            noon
        ),
        Decision::Send
    );
}

#[test]
fn reason_names_are_stable() {
    let defer_names = [
        (DeferReason::AdvertisingHours, "advertising_hours"),
        (DeferReason::AdvertisingSmsPerDay, "advertising_sms_per_day"),
        (DeferReason::QuietHours, "quiet_hours"),
        (DeferReason::FrequencyCap, "frequency_cap"),
    ];
    for (reason, name) in defer_names {
        assert_eq!(reason.as_str(), name);
        assert_eq!(DeferReason::parse(name), Some(reason));
        assert_eq!(
            serde_json::to_string(&reason).unwrap(),
            format!("\"{name}\"")
        );
    }
    let suppress_names = [
        (SuppressReason::InvalidAddress, "invalid_address"),
        (SuppressReason::OptedOut, "opted_out"),
        (SuppressReason::DoNotAdvertise, "do_not_advertise"),
        (SuppressReason::NoConsent, "no_consent"),
        (SuppressReason::Capped, "capped"),
        (SuppressReason::NoAllowedHours, "no_allowed_hours"),
        (SuppressReason::TooLate, "too_late"),
    ];
    for (reason, name) in suppress_names {
        assert_eq!(reason.as_str(), name);
        assert_eq!(SuppressReason::parse(name), Some(reason));
        assert_eq!(
            serde_json::to_string(&reason).unwrap(),
            format!("\"{name}\"")
        );
    }
    assert_eq!(SuppressReason::parse("capped "), None);
    assert_eq!(Decision::Send.as_str(), "send");
}

#[test]
fn the_limits_are_the_decrees() {
    assert_eq!(ADVERTISING_HOURS, (time(7, 0), time(22, 0)));
    assert_eq!(ADVERTISING_SMS_PER_DAY_MAX, 3);
    assert_eq!(ADVERTISING_SMS_WINDOW, Duration::hours(24));
    assert_eq!(ZONE_DEFAULT, HANOI);
    assert_eq!(Respect::default().zone_default, HANOI);
}

// Property tests.

/// Zones with and without clock changes, and a member without a zone.
const ZONES: [Option<Tz>; 5] = [
    None,
    Some(chrono_tz::Asia::Ho_Chi_Minh),
    Some(chrono_tz::Asia::Tokyo),
    Some(chrono_tz::Europe::London),
    Some(chrono_tz::America::New_York),
];

const PURPOSES: [Purpose; 3] = [Purpose::Advertising, Purpose::Care, Purpose::Transactional];

fn channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(Channel::ALL.to_vec())
}

fn purpose() -> impl Strategy<Value = Purpose> {
    prop::sample::select(PURPOSES.to_vec())
}

fn policy() -> impl Strategy<Value = Respect> {
    let cap =
        prop::option::of(
            (0u32..5, 1i64..24 * 10).prop_map(|(messages_max, hours)| FrequencyCap {
                messages_max,
                window: Duration::hours(hours),
            }),
        );
    let quiet =
        prop::option::of(
            (0u32..24 * 60, 0u32..24 * 60).prop_map(|(start, end)| QuietHours {
                start: time(start / 60, start % 60),
                end: time(end / 60, end % 60),
            }),
        );
    (cap, quiet, prop::sample::select(ZONES[1..].to_vec())).prop_map(|(cap, quiet, zone)| Respect {
        frequency_cap: cap,
        quiet_hours: quiet,
        zone_default: zone.unwrap_or(ZONE_DEFAULT),
    })
}

/// Per channel: no record, opted in, or opted out; and whether the address is valid.
fn recipient() -> impl Strategy<Value = Recipient> {
    (
        prop::sample::select(ZONES.to_vec()),
        prop::collection::vec((0u8..3, prop::bool::weighted(0.9)), 5),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(zone, per_channel, do_not_advertise)| {
            let mut consents = Consents::default();
            let mut valid_addresses = Vec::new();
            for (channel, (standing, valid)) in Channel::ALL.iter().zip(per_channel) {
                if standing > 0 {
                    consents.record(Consent {
                        channel: *channel,
                        granted: standing == 1,
                        at: hanoi(1, 9, 0),
                        source: "test".into(),
                    });
                }
                if valid {
                    valid_addresses.push(*channel);
                }
            }
            Recipient {
                zone,
                consents,
                valid_addresses,
                do_not_advertise,
            }
        })
}

/// An instant in 2026, minute-precise, clock changes included.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (0i64..365 * 24 * 60).prop_map(move |minutes| start + Duration::minutes(minutes))
}

fn history_before(now: DateTime<Utc>) -> impl Strategy<Value = Vec<Sent>> {
    prop::collection::vec((channel(), purpose(), 0i64..4 * 24 * 60), 0..12).prop_map(move |sends| {
        sends
            .into_iter()
            .map(|(channel, purpose, minutes_ago)| Sent {
                channel,
                purpose,
                at: now - Duration::minutes(minutes_ago),
            })
            .collect()
    })
}

fn local_time(member: &Recipient, policy: &Respect, at: DateTime<Utc>) -> NaiveTime {
    at.with_timezone(&member.zone.unwrap_or(policy.zone_default))
        .time()
}

fn in_legal_hours(local: NaiveTime) -> bool {
    ADVERTISING_HOURS.0 <= local && local < ADVERTISING_HOURS.1
}

/// The most messages among `times` in any half-open window of `window`.
fn busiest_window(times: &[DateTime<Utc>], window: Duration) -> usize {
    let mut times = times.to_vec();
    times.sort();
    (0..times.len())
        .map(|first| {
            times[first..]
                .iter()
                .take_while(|at| **at < times[first] + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A campaign's run against one member: attempts at increasing instants; a deferred message
/// is asked again at its `until` and sent then. Returns every message sent.
fn simulate(
    policy: &Respect,
    member: &Recipient,
    attempts: &[(Channel, Purpose, i64)],
    start: DateTime<Utc>,
) -> Result<Vec<Sent>, TestCaseError> {
    let mut history = Vec::new();
    let mut clock = start;
    for (channel, purpose, minutes_later) in attempts {
        clock += Duration::minutes(*minutes_later);
        let message = planned(*channel, *purpose);
        let mut decision = decide(policy, member, &message, &history, clock);
        if let Decision::Defer { until, .. } = decision {
            prop_assert!(until > clock);
            clock = until;
            decision = decide(policy, member, &message, &history, clock);
            prop_assert_eq!(decision, Decision::Send, "asked again at {}", until);
        }
        if decision == Decision::Send {
            history.push(sent(*channel, *purpose, clock));
        }
    }
    Ok(history)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A Defer names an instant, later than now, at which the same question is answered Send
    /// (no deadline here, so never Suppress); and Send is only ever answered inside the law's
    /// hours for advertising to a number, outside quiet hours for non-transactional messages.
    #[test]
    fn a_deferral_ends_when_the_message_may_go(
        policy in policy(),
        member in recipient(),
        message in (channel(), purpose()).prop_map(|(c, p)| planned(c, p)),
        (now, history) in instant().prop_flat_map(|now| (Just(now), history_before(now))),
    ) {
        let decision = decide(&policy, &member, &message, &history, now);
        let legal = message.purpose == Purpose::Advertising && message.channel.is_number();
        match decision {
            Decision::Defer { until, .. } => {
                prop_assert!(until > now);
                prop_assert_eq!(
                    decide(&policy, &member, &message, &history, until),
                    Decision::Send
                );
                // And no earlier: a second before, it still waits.
                let just_before = until - Duration::seconds(1);
                prop_assert!(decide(&policy, &member, &message, &history, just_before).as_str() == "defer");
                prop_assert!(!legal || in_legal_hours(local_time(&member, &policy, until)));
                // Transactional messages are never deferred.
                prop_assert!(message.purpose != Purpose::Transactional);
            }
            Decision::Send => {
                let local = local_time(&member, &policy, now);
                prop_assert!(!legal || in_legal_hours(local));
                if message.purpose != Purpose::Transactional {
                    prop_assert!(!policy.quiet_hours.is_some_and(|q| q.contains(local)));
                }
                prop_assert!(member.valid_addresses.contains(&message.channel));
                prop_assert!(member.consents.standing(message.channel) != Standing::OptedOut);
            }
            Decision::Suppress { reason: SuppressReason::NoAllowedHours } => {
                // Truly no minute of the day would do.
                for minute in 0..24 * 60 {
                    let local = time(minute / 60, minute % 60);
                    let quiet = policy.quiet_hours.is_some_and(|q| q.contains(local));
                    prop_assert!(quiet || (legal && !in_legal_hours(local)));
                }
            }
            Decision::Suppress { .. } => {}
        }
    }

    /// With a deadline, a Defer's `until` is still an instant answered Send (it is never
    /// past the deadline), and a deadline passed suppresses.
    #[test]
    fn a_deferral_never_passes_the_deadline(
        policy in policy(),
        member in recipient(),
        message in (channel(), purpose(), 0i64..3 * 24 * 60)
            .prop_map(|(c, p, minutes)| (c, p, Duration::minutes(minutes))),
        (now, history) in instant().prop_flat_map(|now| (Just(now), history_before(now))),
    ) {
        let (channel, purpose, lead) = message;
        let message = Planned { channel, purpose, send_by: Some(now + lead) };
        match decide(&policy, &member, &message, &history, now) {
            Decision::Defer { until, .. } => {
                prop_assert!(until <= now + lead);
                prop_assert_eq!(
                    decide(&policy, &member, &message, &history, until),
                    Decision::Send
                );
            }
            Decision::Send | Decision::Suppress { .. } => {}
        }
        let late = Planned { send_by: Some(now - Duration::minutes(1)), ..message };
        let late_decision = decide(&policy, &member, &late, &history, now);
        prop_assert_eq!(late_decision.as_str(), "suppress");
    }

    /// Transactional messages ignore caps, quiet hours and the law's advertising limits; only
    /// an invalid address or an opt-out stops them.
    #[test]
    fn transactional_messages_go_unless_unreachable(
        policy in policy(),
        member in recipient(),
        channel in channel(),
        (now, history) in instant().prop_flat_map(|now| (Just(now), history_before(now))),
    ) {
        let code = planned(channel, Purpose::Transactional);
        let expected = if !member.valid_addresses.contains(&channel) {
            suppress(SuppressReason::InvalidAddress)
        } else if member.consents.standing(channel) == Standing::OptedOut {
            suppress(SuppressReason::OptedOut)
        } else {
            Decision::Send
        };
        prop_assert_eq!(decide(&policy, &member, &code, &history, now), expected);
    }

    /// A whole run: every message sent obeys the law and the tenant's policy over all the
    /// messages sent, not just the last one.
    #[test]
    fn a_run_never_breaks_a_limit(
        policy in policy(),
        member in recipient(),
        attempts in prop::collection::vec((channel(), purpose(), 0i64..12 * 60), 1..40),
        start in instant(),
    ) {
        let history = simulate(&policy, &member, &attempts, start)?;
        let number_ads: Vec<_> = history
            .iter()
            .filter(|s| s.purpose == Purpose::Advertising && s.channel.is_number())
            .map(|s| s.at)
            .collect();
        prop_assert!(
            busiest_window(&number_ads, ADVERTISING_SMS_WINDOW)
                <= ADVERTISING_SMS_PER_DAY_MAX as usize
        );
        for at in &number_ads {
            prop_assert!(in_legal_hours(local_time(&member, &policy, *at)));
        }
        if let Some(cap) = policy.frequency_cap {
            let limited: Vec<_> = history
                .iter()
                .filter(|s| s.purpose != Purpose::Transactional)
                .map(|s| s.at)
                .collect();
            prop_assert!(busiest_window(&limited, cap.window) <= cap.messages_max as usize);
        }
        for message in &history {
            prop_assert!(member.valid_addresses.contains(&message.channel));
            prop_assert!(member.consents.standing(message.channel) != Standing::OptedOut);
            if message.purpose == Purpose::Advertising {
                prop_assert!(!member.do_not_advertise);
                prop_assert_eq!(member.consents.standing(message.channel), Standing::Granted);
            }
            if message.purpose != Purpose::Transactional {
                let local = local_time(&member, &policy, message.at);
                prop_assert!(!policy.quiet_hours.is_some_and(|q| q.contains(local)));
            }
        }
    }

    /// A fourth advertising SMS in 24 hours is never sent, however the first three came.
    #[test]
    fn never_a_fourth_advertising_sms_in_24_hours(
        offsets in prop::collection::vec(0i64..24 * 60, 3),
        later in 0i64..24 * 60,
        start in instant(),
    ) {
        let policy = Respect::default();
        let member = granted_everywhere();
        let history: Vec<_> = offsets
            .iter()
            .map(|minutes| sent(Channel::Sms, Purpose::Advertising, start + Duration::minutes(*minutes)))
            .collect();
        let last = history.iter().map(|s| s.at).max().unwrap_or(start);
        let first = history.iter().map(|s| s.at).min().unwrap_or(start);
        let now = last + Duration::minutes(later);
        let decision = decide(&policy, &member, &AD_SMS, &history, now);
        if now < first + ADVERTISING_SMS_WINDOW {
            prop_assert!(decision != Decision::Send);
        }
        if let Decision::Defer { until, .. } = decision {
            prop_assert!(until >= first + ADVERTISING_SMS_WINDOW);
            let local = until.with_timezone(&HANOI);
            prop_assert!((7..22).contains(&local.hour()));
        }
    }
}
