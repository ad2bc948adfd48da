//! Texts in Vietnamese and English from message files (`messages/<locale>/<area>.toml`), one
//! file per area of the web so the areas grow apart without conflicts. Sections become dotted
//! keys: `[cashier] title = "…"` is `cashier.title`.

use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The cookie that keeps a visitor's chosen language.
pub const LANG_COOKIE: &str = "patron_lang";

/// Every message file, per locale. Add an area's file to both lists.
const VI: &[&str] = &[
    include_str!("../messages/vi/common.toml"),
    include_str!("../messages/vi/cashier.toml"),
    include_str!("../messages/vi/member.toml"),
    include_str!("../messages/vi/admin.toml"),
    include_str!("../messages/vi/programme.toml"),
    include_str!("../messages/vi/settings.toml"),
    include_str!("../messages/vi/segments.toml"),
];
const EN: &[&str] = &[
    include_str!("../messages/en/common.toml"),
    include_str!("../messages/en/cashier.toml"),
    include_str!("../messages/en/member.toml"),
    include_str!("../messages/en/admin.toml"),
    include_str!("../messages/en/programme.toml"),
    include_str!("../messages/en/settings.toml"),
    include_str!("../messages/en/segments.toml"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locale {
    Vi,
    En,
}

impl Locale {
    pub fn code(self) -> &'static str {
        match self {
            Locale::Vi => "vi",
            Locale::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Locale> {
        match code {
            "vi" => Some(Locale::Vi),
            "en" => Some(Locale::En),
            _ => None,
        }
    }

    /// The visitor's language: the cookie they chose, else English when their browser asks
    /// for it before Vietnamese, else Vietnamese.
    pub fn from_headers(headers: &HeaderMap) -> Locale {
        if let Some(locale) =
            patron_server::auth::cookie_value(headers, LANG_COOKIE).and_then(Locale::parse)
        {
            return locale;
        }
        let accept = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let first = accept
            .split(',')
            .map(|part| part.trim().to_ascii_lowercase())
            .find(|part| part.starts_with("vi") || part.starts_with("en"));
        match first {
            Some(part) if part.starts_with("en") => Locale::En,
            _ => Locale::Vi,
        }
    }

    pub fn texts(self) -> Texts {
        static TABLES: OnceLock<(Table, Table)> = OnceLock::new();
        let (vi, en) = TABLES.get_or_init(|| (load(VI), load(EN)));
        Texts {
            locale: self,
            table: match self {
                Locale::Vi => vi,
                Locale::En => en,
            },
        }
    }
}

type Table = HashMap<String, String>;

fn load(files: &[&str]) -> Table {
    let mut table = Table::new();
    for file in files {
        let value: toml::Table = toml::from_str(file).expect("a message file is valid TOML");
        flatten("", &toml::Value::Table(value), &mut table);
    }
    table
}

fn flatten(prefix: &str, value: &toml::Value, table: &mut Table) {
    match value {
        toml::Value::Table(entries) => {
            for (key, value) in entries {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, table);
            }
        }
        toml::Value::String(text) => {
            table.insert(prefix.to_owned(), text.clone());
        }
        other => panic!("message {prefix} is not text: {other:?}"),
    }
}

/// The texts of one locale, handed to every template as `t`.
#[derive(Clone, Copy)]
pub struct Texts {
    pub locale: Locale,
    table: &'static Table,
}

impl Texts {
    /// The text for `key`; the key itself when it is missing (a test keeps that from happening).
    pub fn get<'a>(&self, key: &'a str) -> &'a str {
        self.table.get(key).map(String::as_str).unwrap_or(key)
    }

    /// The text for `key` with `{name}` placeholders filled.
    pub fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut text = self.get(key).to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    pub fn lang(&self) -> &'static str {
        self.locale.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_locales_have_the_same_keys() {
        let vi = load(VI);
        let en = load(EN);
        let mut only_vi: Vec<_> = vi.keys().filter(|key| !en.contains_key(*key)).collect();
        let mut only_en: Vec<_> = en.keys().filter(|key| !vi.contains_key(*key)).collect();
        only_vi.sort();
        only_en.sort();
        assert!(only_vi.is_empty(), "only in vi: {only_vi:?}");
        assert!(only_en.is_empty(), "only in en: {only_en:?}");
    }

    /// Every `t.get("…")` and `t.fill("…"` in the templates and sources names a message.
    #[test]
    fn every_key_used_exists() {
        let vi = load(VI);
        let mut missing = Vec::new();
        for dir in ["templates", "src"] {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for path in files_under(&root) {
                let text = std::fs::read_to_string(&path).unwrap();
                for pattern in ["t.get(\"", "t.fill(\"", "texts.get(\"", "texts.fill(\""] {
                    for (index, _) in text.match_indices(pattern) {
                        let rest = &text[index + pattern.len()..];
                        let key = &rest[..rest.find('"').unwrap()];
                        if !key.is_empty() && !vi.contains_key(key) && !key.contains("{") {
                            missing.push(format!("{}: {key}", path.display()));
                        }
                    }
                }
            }
        }
        missing.retain(|entry| !entry.ends_with(": …"));
        assert!(missing.is_empty(), "messages missing: {missing:#?}");
    }

    fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found
    }

    #[test]
    fn the_browser_language_is_honoured_and_the_cookie_wins() {
        let mut headers = HeaderMap::new();
        assert_eq!(Locale::from_headers(&headers), Locale::Vi);
        headers.insert(
            "accept-language",
            "en-GB,en;q=0.9,vi;q=0.8".parse().unwrap(),
        );
        assert_eq!(Locale::from_headers(&headers), Locale::En);
        headers.insert("cookie", "patron_lang=vi".parse().unwrap());
        assert_eq!(Locale::from_headers(&headers), Locale::Vi);
        assert_eq!(Locale::Vi.texts().get("common.sign_in"), "Đăng nhập");
        assert_eq!(Locale::En.texts().get("common.sign_in"), "Sign in");
    }
}
