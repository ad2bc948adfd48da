//! CSV downloads of the dashboard's tables: UTF-8 with a byte-order mark (so Excel set to
//! Vietnamese reads the diacritics right), comma-separated, quoted where needed, and text that
//! a spreadsheet would run as a formula defused with a leading apostrophe.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// One CSV file being written.
pub struct Csv {
    text: String,
}

impl Csv {
    pub fn new(headers: &[&str]) -> Csv {
        let mut csv = Csv {
            text: String::from("\u{feff}"),
        };
        csv.row(headers.iter().map(|header| header.to_string()));
        csv
    }

    /// Adds a row of fields, each defused and quoted as needed.
    pub fn row(&mut self, fields: impl IntoIterator<Item = String>) {
        self.text.push_str(&line(fields));
    }

    /// The download, as an attachment named `file_name` (ASCII).
    pub fn into_response(self, file_name: &str) -> Response {
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file_name}\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            self.text,
        )
            .into_response()
    }
}

/// One CSV line of fields, each defused and quoted as needed, ended by CRLF: what a download
/// streamed a part at a time writes.
pub fn line(fields: impl IntoIterator<Item = String>) -> String {
    let mut text = String::new();
    for (index, field) in fields.into_iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&quote(&text_field(&field)));
    }
    text.push_str("\r\n");
    text
}

/// Text a spreadsheet would read as a formula, defused by the one rule every Patron CSV uses
/// ([`patron_store::exports::spreadsheet_safe`]).
pub fn text_field(text: &str) -> String {
    patron_store::exports::spreadsheet_safe(text).into_owned()
}

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        let mut csv = Csv::new(&["Tên", "Điểm"]);
        csv.row([text_field("Bánh, \"ngọt\""), "-12".to_owned()]);
        csv.row([text_field("=HYPERLINK(\"x\")"), text_field("-5")]);
        assert_eq!(
            csv.text,
            "\u{feff}Tên,Điểm\r\n\"Bánh, \"\"ngọt\"\"\",-12\r\n\"'=HYPERLINK(\"\"x\"\")\",-5\r\n"
        );
    }
}
