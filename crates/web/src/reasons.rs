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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Locale;

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
