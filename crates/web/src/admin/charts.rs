//! Bar charts as SVG, drawn on the server: no script, no library, readable at 375 px (the
//! view box scales with the card; text stays large enough). Every text inside is escaped
//! here, so the markup may be inserted as is. Colours come from the stylesheet (`.series-N`).

use std::fmt::Write;

const WIDTH: i64 = 400;
const HEIGHT: i64 = 220;
const LEFT: i64 = 8;
const TOP: i64 = 22;
const BOTTOM: i64 = 26;
/// Most labels under the bars; more would overlap on a phone.
const X_LABELS_MAX: usize = 6;
/// Height of one row of a horizontal bar chart, and the width of its label column.
const ROW_HEIGHT: i64 = 34;
const LABEL_WIDTH: i64 = 120;

/// Escapes text for SVG (XML) content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// One series of values, one per label.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<i64>,
}

/// The largest value, at least 1 so an empty chart still has a scale.
fn scale_max<'a>(values: impl Iterator<Item = &'a i64>) -> i64 {
    values.copied().max().unwrap_or(0).max(1)
}

fn open(out: &mut String, id: &str, title: &str, width: i64, height: i64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{id}-title"><title id="{id}-title">{}</title>"#,
        escape(title)
    );
}

/// Vertical bars: one group per label, one bar per series in the group. `format` writes a
/// value for the scale and each bar's tooltip.
pub fn bars(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    format: impl Fn(i64) -> String,
) -> String {
    let mut out = String::new();
    open(&mut out, id, title, WIDTH, HEIGHT);
    let max = scale_max(series.iter().flat_map(|one| one.values.iter()));
    let plot_height = HEIGHT - TOP - BOTTOM;
    let base = HEIGHT - BOTTOM;
    let _ = write!(
        out,
        r#"<text class="chart-scale" x="{LEFT}" y="14">{}</text><line class="chart-axis" x1="{LEFT}" y1="{base}" x2="{}" y2="{base}"/>"#,
        escape(&format(max)),
        WIDTH - LEFT
    );
    let groups = labels.len().max(1) as i64;
    let group_width = (WIDTH - 2 * LEFT) * 1000 / groups;
    let bar_count = series.len().max(1) as i64;
    let bar_width = (group_width * 8 / 10 / bar_count).max(1);
    let step = labels.len().div_ceil(X_LABELS_MAX).max(1);
    for (index, label) in labels.iter().enumerate() {
        let group_left = LEFT * 1000 + group_width * index as i64 + group_width / 10;
        for (number, one) in series.iter().enumerate() {
            let value = one.values.get(index).copied().unwrap_or(0).max(0);
            let height = (value * plot_height * 1000 / max).max(0);
            let x = group_left + bar_width * number as i64;
            let _ = write!(
                out,
                r#"<rect class="series-{number}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>"#,
                milli(x),
                milli(base * 1000 - height),
                milli(bar_width),
                milli(height),
                escape(&format!("{label} · {}: {}", one.name, format(value)))
            );
        }
        if index % step == 0 {
            let _ = write!(
                out,
                r#"<text class="chart-label" x="{}" y="{}" text-anchor="middle">{}</text>"#,
                milli(LEFT * 1000 + group_width * index as i64 + group_width / 2),
                HEIGHT - 8,
                escape(label)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Horizontal bars: one row per (label, value), the value written at the bar's end.
pub fn horizontal_bars(
    id: &str,
    title: &str,
    rows: &[(String, i64)],
    format: impl Fn(i64) -> String,
) -> String {
    let height = ROW_HEIGHT * rows.len().max(1) as i64 + 8;
    let mut out = String::new();
    open(&mut out, id, title, WIDTH, height);
    let max = scale_max(rows.iter().map(|(_, value)| value));
    let bar_room = WIDTH - LABEL_WIDTH - 96;
    for (index, (label, value)) in rows.iter().enumerate() {
        let y = 4 + ROW_HEIGHT * index as i64;
        let width = ((*value).max(0) * bar_room * 1000 / max).max(0);
        let _ = write!(
            out,
            r#"<text class="chart-label" x="{LEFT}" y="{}">{}</text><rect class="series-0" x="{LABEL_WIDTH}" y="{}" width="{}" height="{}"><title>{}</title></rect><text class="chart-value" x="{}" y="{}">{}</text>"#,
            y + 21,
            escape(label),
            y + 4,
            milli(width),
            ROW_HEIGHT - 10,
            escape(&format!("{label}: {}", format(*value))),
            milli(LABEL_WIDTH * 1000 + width + 6000),
            y + 21,
            escape(&format(*value))
        );
    }
    out.push_str("</svg>");
    out
}

/// Thousandths as a decimal: coordinates are computed in integers, written with 3 decimals.
fn milli(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let value = value.unsigned_abs();
    format!("{sign}{}.{:03}", value / 1000, value % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_inside_a_chart_is_escaped() {
        let svg = bars(
            "c",
            "<script>alert(1)</script>",
            &["a&b".into()],
            &[Series {
                name: "\"x\"",
                values: vec![5],
            }],
            |value| value.to_string(),
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(svg.contains("a&amp;b"), "{svg}");
        assert!(svg.contains("&quot;x&quot;"), "{svg}");
        let svg = horizontal_bars("h", "t", &[("<b>".into(), 3)], |value| value.to_string());
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
    }

    #[test]
    fn the_tallest_bar_fills_the_plot_and_an_empty_chart_draws_nothing_tall() {
        let svg = bars(
            "c",
            "t",
            &["1".into(), "2".into()],
            &[Series {
                name: "s",
                values: vec![10, 5],
            }],
            |value| value.to_string(),
        );
        let plot = HEIGHT - TOP - BOTTOM;
        assert!(svg.contains(&format!("height=\"{plot}.000\"")), "{svg}");
        assert!(
            svg.contains(&format!("height=\"{}.000\"", plot / 2)),
            "{svg}"
        );
        let empty = bars("c", "t", &[], &[], |value| value.to_string());
        assert!(empty.starts_with("<svg") && empty.ends_with("</svg>"));
        assert_eq!(milli(-1500), "-1.500");
    }
}
