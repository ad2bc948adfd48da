//! What every page shares: the visitor's texts, rendering a template into a response, error
//! pages, the front page and the language switch.

use crate::i18n::{Locale, Texts, LANG_COOKIE};
use askama::Template;
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

/// Renders `template`, or a plain 500 when a template fails (which a test would catch first).
pub fn render(template: &impl Template) -> Response {
    render_with(StatusCode::OK, template)
}

/// As `render`, with another status (a form shown again with its errors is a 422).
pub fn render_with(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub t: Texts,
    pub title: &'a str,
    pub message: &'a str,
}

/// A page that says what went wrong, in the visitor's language, with `status`.
pub fn message(status: StatusCode, t: Texts, title_key: &str, message_key: &str) -> Response {
    render_with(
        status,
        &MessagePage {
            t,
            title: t.get(title_key),
            message: t.get(message_key),
        },
    )
}

/// 403: signed in, but this role may not open the page.
pub fn forbidden(t: Texts) -> Response {
    message(
        StatusCode::FORBIDDEN,
        t,
        "common.forbidden_title",
        "common.forbidden_message",
    )
}

/// 404.
pub fn not_found(t: Texts) -> Response {
    message(
        StatusCode::NOT_FOUND,
        t,
        "common.not_found_title",
        "common.not_found_message",
    )
}

/// 500, logged.
pub fn failed(t: Texts, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "a page failed");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        t,
        "common.failed_title",
        "common.failed_message",
    )
}

#[derive(Template)]
#[template(path = "front.html")]
struct FrontPage {
    t: Texts,
}

/// `/`: where to go: staff sign-in, the till, the API docs.
pub async fn front(headers: HeaderMap) -> Response {
    render(&FrontPage {
        t: Locale::from_headers(&headers).texts(),
    })
}

/// `/lang/vi`, `/lang/en`: keeps the choice in a cookie and goes back where the visitor was.
pub async fn choose_language(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let Some(locale) = Locale::parse(&code) else {
        return not_found(Locale::from_headers(&headers).texts());
    };
    let back = headers
        .get(header::REFERER)
        .and_then(|value| value.to_str().ok())
        .and_then(local_path)
        .unwrap_or("/")
        .to_owned();
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
        locale.code()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

/// Whether a `Secure` cookie set now would be dropped by the browser: the page came over plain
/// HTTP, at an address other than a loopback one (`localhost`, `127.0.0.1`, `[::1]`, where
/// browsers keep such cookies anyway). Sessions keep `Secure` so they never cross a café's
/// Wi-Fi in clear; the pages say why signing in cannot work instead of failing silently.
pub fn secure_cookies_dropped(https: bool, headers: &HeaderMap) -> bool {
    if https {
        return false;
    }
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    let name = name.to_ascii_lowercase();
    let loopback = name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    !loopback
}

/// The path of a same-site address, so a redirect never leaves the site: it starts with one
/// `/` and holds no `\` (some browsers read `/\evil.example` as `//evil.example`) nor any
/// control character or space (which browsers strip before reading the address).
pub fn local_path(address: &str) -> Option<&str> {
    let path = match address.find("://") {
        Some(scheme_end) => {
            let rest = &address[scheme_end + 3..];
            &rest[rest.find('/')?..]
        }
        None => address,
    };
    let plain = !path.contains('\\') && !path.chars().any(|c| c.is_control() || c == ' ');
    (path.starts_with('/') && !path.starts_with("//") && plain).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookies_are_dropped_over_plain_http_at_network_addresses() {
        let host = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, value.parse().unwrap());
            headers
        };
        assert!(secure_cookies_dropped(false, &host("192.168.1.20:8080")));
        assert!(secure_cookies_dropped(false, &host("patron.lan")));
        assert!(!secure_cookies_dropped(true, &host("192.168.1.20:8080")));
        assert!(!secure_cookies_dropped(false, &host("localhost:8080")));
        assert!(!secure_cookies_dropped(false, &host("127.0.0.1:8080")));
        assert!(!secure_cookies_dropped(false, &host("[::1]:8080")));
        assert!(!secure_cookies_dropped(false, &host("till.localhost")));
        assert!(!secure_cookies_dropped(false, &HeaderMap::new()));
    }

    #[test]
    fn redirects_stay_on_the_site() {
        assert_eq!(local_path("http://x:1/admin?a=1"), Some("/admin?a=1"));
        assert_eq!(local_path("/cashier"), Some("/cashier"));
        assert_eq!(local_path("//evil.example/"), None);
        assert_eq!(local_path("https://evil.example"), None);
        assert_eq!(local_path("javascript:alert(1)"), None);
        assert_eq!(local_path("/\\evil.example"), None);
        assert_eq!(local_path("http://x:1/\\evil.example"), None);
        assert_eq!(local_path("/admin\\..\\x"), None);
        assert_eq!(local_path("/\t/evil.example"), None);
        assert_eq!(local_path("/ /evil.example"), None);
    }
}
