//! What the store keeps of an accepted event's answer, as versioned records rather than as
//! whatever the HTTP API returned: the answer stored with the event (given again to a
//! duplicate, read for the till's receipt) and the payload of the webhooks it implies. The
//! HTTP answer is the server's own type, made from [`EventResult`]; changing it changes
//! neither record. A record's shape changes only with a new version, and every version ever
//! written can still be read.

use crate::model::EventResult;
use crate::StoreError;
use serde::{Deserialize, Serialize};

/// The version of the answer record written now. Version 1 was the bare answer (the HTTP
/// body of the time, without `v`); version 2 wraps the same fields as `{"v":2,"answer":…}`.
pub const ANSWER_RECORD_VERSION: i64 = 2;

/// The version of the webhook payload, sent as its `version` field.
pub const WEBHOOK_PAYLOAD_VERSION: i64 = 1;

#[derive(Serialize)]
struct AnswerRecord<'a> {
    v: i64,
    answer: &'a EventResult,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StoredAnswer {
    Versioned { v: i64, answer: serde_json::Value },
    Bare(Box<EventResult>),
}

/// The stored text of an event's answer.
pub(crate) fn encode_answer(answer: &EventResult) -> String {
    serde_json::to_string(&AnswerRecord {
        v: ANSWER_RECORD_VERSION,
        answer,
    })
    .expect("an answer serialises")
}

/// An event's answer from its stored text, of any version written.
pub(crate) fn decode_answer(text: &str) -> Result<EventResult, StoreError> {
    let corrupt = |error: serde_json::Error| StoreError::Corrupt(format!("stored answer: {error}"));
    match serde_json::from_str(text).map_err(corrupt)? {
        StoredAnswer::Versioned { v: 2, answer } => serde_json::from_value(answer).map_err(corrupt),
        StoredAnswer::Versioned { v, .. } => Err(StoreError::Corrupt(format!(
            "stored answer of version {v}, which this Patron does not know (it writes {ANSWER_RECORD_VERSION})"
        ))),
        StoredAnswer::Bare(answer) => Ok(*answer),
    }
}

/// A webhook's body, the same envelope for every topic: `version` (of this shape), `id` (of
/// the outbox row), `topic`, `tenant_id`, `occurred_at` and the topic's `data` record.
#[derive(Serialize)]
pub(crate) struct WebhookPayload<'a, D: Serialize> {
    pub version: i64,
    pub id: &'a str,
    pub topic: &'a str,
    pub tenant_id: String,
    /// RFC 3339 in the tenant's zone.
    pub occurred_at: String,
    pub data: D,
}

impl<D: Serialize> WebhookPayload<'_, D> {
    pub(crate) fn text(&self) -> String {
        serde_json::to_string(self).expect("a payload serialises")
    }
}

/// A new webhook payload of `topic` with its data; returns the outbox id and the body.
pub(crate) fn webhook_payload<D: Serialize>(
    topic: &str,
    tenant_id: String,
    occurred_at: String,
    data: D,
) -> (String, String) {
    let id = uuid::Uuid::now_v7().to_string();
    let text = WebhookPayload {
        version: WEBHOOK_PAYLOAD_VERSION,
        id: &id,
        topic,
        tenant_id,
        occurred_at,
        data,
    }
    .text();
    (id, text)
}

/// `points.expiring`: a member's points that expire soon.
#[derive(Serialize)]
pub(crate) struct ExpiringPoints {
    pub member_id: String,
    pub phone: Option<String>,
    pub points: i64,
    /// RFC 3339 in the tenant's zone.
    pub expires_at: String,
}

/// `member.sign_in_code`: a one-time code for the tenant's channel to send the member.
#[derive(Serialize)]
pub(crate) struct SignInCode<'a> {
    pub member_id: String,
    pub phone: &'a str,
    pub code: &'a str,
    /// RFC 3339 in the tenant's zone.
    pub expires_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> EventResult {
        EventResult {
            event_id: "sale-1".into(),
            kind: "purchase".into(),
            member_id: Some("0199a0c1-0000-7000-8000-000000000001".into()),
            programme_version: Some(3),
            points_earned: 30,
            points_spent: 0,
            points_taken_back: 0,
            points_returned: 0,
            balance: 130,
            available: 100,
            pending: 30,
            tier: Some("gold".into()),
            tier_change: None,
            lines: Vec::new(),
            voucher: None,
            member_created: false,
            holdings: [("money".to_owned(), 5_000)].into_iter().collect(),
        }
    }

    #[test]
    fn an_answer_reads_back_from_its_record() {
        let text = encode_answer(&answer());
        assert!(text.starts_with("{\"v\":2,\"answer\":{"), "{text}");
        assert_eq!(decode_answer(&text).unwrap(), answer());
    }

    #[test]
    fn a_version_1_answer_still_reads() {
        // As version 1 stored it: the bare answer, without `points_returned` or `holdings`
        // (fields added since, which read as their defaults).
        let text = r#"{"event_id":"sale-1","type":"purchase","member_id":"0199a0c1-0000-7000-8000-000000000001","programme_version":3,"points_earned":30,"points_spent":0,"points_taken_back":0,"balance":130,"available":100,"pending":30,"tier":"gold","tier_change":null,"lines":[],"voucher":null,"member_created":false}"#;
        let mut expected = answer();
        expected.holdings.clear();
        assert_eq!(decode_answer(text).unwrap(), expected);
    }

    #[test]
    fn a_webhook_payload_carries_its_version_and_data() {
        let (id, text) = webhook_payload(
            "points.earned",
            "tenant".into(),
            "2026-01-10T09:00:00+07:00".into(),
            answer(),
        );
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["version"], WEBHOOK_PAYLOAD_VERSION);
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["topic"], "points.earned");
        assert_eq!(body["data"]["points_earned"], 30);
        assert_eq!(body["data"]["holdings"]["money"], 5_000);
    }

    #[test]
    fn an_unknown_version_is_refused_by_name() {
        let error = decode_answer(r#"{"v":3,"answer":{}}"#).unwrap_err();
        assert!(error.to_string().contains("version 3"), "{error}");
        assert!(decode_answer("not json").is_err());
    }
}
