//! Why points were earned, in the visitor's language. The engine names its own lines (the
//! base rate, the caps) in English in the stored reason; a programme's rules keep the names
//! the tenant gave them.

use crate::format;
use crate::i18n::Texts;
use patron_core::programme::BASE_RULE_ID;

/// The name of one earning line.
pub fn line_name(t: Texts, rule: &str, name: &str) -> String {
    match rule {
        BASE_RULE_ID => t.get("reason.base").to_owned(),
        "cap_per_event" => t.get("reason.cap_per_event").to_owned(),
        "cap_per_day" => t.get("reason.cap_per_day").to_owned(),
        _ => name.to_owned(),
    }
}

/// The lines of a stored earn reason (`{"lines": [{rule, name, points, detail}]}`) that gave
/// or took points, as "Name +N · Other −M"; empty when the reason has no lines.
pub fn earn_lines(t: Texts, reason: &serde_json::Value) -> String {
    let Some(lines) = reason.get("lines").and_then(|lines| lines.as_array()) else {
        return String::new();
    };
    lines
        .iter()
        .filter_map(|line| {
            let points = line.get("points").and_then(|points| points.as_i64())?;
            if points == 0 {
                return None;
            }
            let text = |key: &str| line.get(key).and_then(|value| value.as_str()).unwrap_or("");
            let sign = if points > 0 { "+" } else { "" };
            Some(format!(
                "{} {sign}{}",
                line_name(t, text("rule"), text("name")),
                format::points(t.locale, points)
            ))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The engine's own note on a history entry (`reason.detail`, written in English) in the
/// visitor's language: expiry and refund clawbacks are said from the entry's figures; a note
/// staff typed (an adjustment's reason) is shown as typed.
pub fn entry_detail(t: Texts, entry: &patron_store::HistoryEntry) -> String {
    let reason = &entry.reason;
    let text = |key: &str| {
        reason
            .get(key)
            .and_then(|value| value.as_str())
            .unwrap_or("")
    };
    let points = format::points(t.locale, entry.points.abs());
    match entry.kind.as_str() {
        "expiry" => t.fill("reason.expired", &[("points", &points)]),
        "clawback" => t.fill(
            "reason.clawback",
            &[("points", &points), ("event", text("original_event_id"))],
        ),
        _ => text("detail").to_owned(),
    }
}

/// Why the engine or the store refused an event, in the visitor's language (by its stable
/// code), or the error's own text when it has no message.
pub fn refusal(t: Texts, error: &patron_store::EventError) -> String {
    let key = format!("reason.refused.{}", error.code());
    match t.get(&key) {
        text if text == key => error.to_string(),
        text => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Locale;

    #[test]
    fn engine_notes_are_said_in_the_visitors_language() {
        let entry =
            |kind: &str, points: i64, reason: serde_json::Value| patron_store::HistoryEntry {
                cursor: Default::default(),
                transaction_id: "t".into(),
                kind: kind.into(),
                points,
                holdings: Default::default(),
                event_id: None,
                occurred_at: "2026-01-01T00:00:00+07:00".into(),
                reason,
            };
        let expired = entry(
            "expiry",
            -1909,
            serde_json::json!({"detail": "1909 points expired", "lots": 2}),
        );
        assert_eq!(
            entry_detail(Locale::Vi.texts(), &expired),
            "1.909 điểm đã hết hạn"
        );
        assert_eq!(
            entry_detail(Locale::En.texts(), &expired),
            "1,909 points expired"
        );
        let clawback = entry(
            "clawback",
            -20,
            serde_json::json!({"original_event_id": "HD-1", "refunded": 200000,
                               "detail": "20 of 40 points earned by HD-1"}),
        );
        assert_eq!(
            entry_detail(Locale::Vi.texts(), &clawback),
            "Thu lại 20 điểm do hoàn tiền đơn HD-1"
        );
        let adjustment = entry("adjustment", 5, serde_json::json!({"detail": "Bù lỗi máy"}));
        assert_eq!(entry_detail(Locale::Vi.texts(), &adjustment), "Bù lỗi máy");
    }

    #[test]
    fn refusals_are_said_in_the_visitors_language() {
        use patron_store::EventError;
        assert_eq!(
            refusal(Locale::Vi.texts(), &EventError::NoProgramme),
            "Cửa hàng chưa công bố chương trình tích điểm nào."
        );
        assert_eq!(
            refusal(Locale::Vi.texts(), &EventError::OriginalNotFound),
            "Không tìm thấy đơn gốc."
        );
        assert_eq!(
            refusal(Locale::En.texts(), &EventError::NoProgramme),
            "No loyalty programme has been published yet."
        );
    }

    #[test]
    fn engine_lines_are_named_in_the_visitors_language() {
        let reason = serde_json::json!({"lines": [
            {"rule": "base", "name": "Base rate", "points": 1200, "detail": "1 point per 10.000đ of 12.000.000đ"},
            {"rule": "cake", "name": "Bánh ngọt <b>", "points": 10, "detail": "10"},
            {"rule": "cap_per_event", "name": "Cap per event", "points": -10, "detail": "at most 1200 points per event"},
            {"rule": "skipped", "name": "Sinh nhật", "points": 0, "detail": "skipped: …"}
        ]});
        assert_eq!(
            earn_lines(Locale::Vi.texts(), &reason),
            "Theo số tiền mua hàng +1.200 · Bánh ngọt <b> +10 · Giới hạn mỗi giao dịch -10"
        );
        assert_eq!(
            earn_lines(Locale::En.texts(), &reason),
            "For the amount spent +1,200 · Bánh ngọt <b> +10 · Cap per purchase -10"
        );
        assert_eq!(earn_lines(Locale::Vi.texts(), &serde_json::json!({})), "");
    }
}
