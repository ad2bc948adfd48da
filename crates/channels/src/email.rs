//! E-mail over SMTP with `lettre`: multipart/alternative (text and HTML), and one-click
//! unsubscribe (RFC 8058) when the message gives an unsubscribe URL.
//!
//! Advertising e-mail gets the "[QC] " label at the start of its subject, as Decree 91/2020
//! asks of advertising messages.

use std::time::Duration;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::channel::{
    Body, Channel, ChannelKind, FailureReason, Outgoing, SendFailure, SendFuture, Sent,
};
use crate::{http, sms};

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP: only for a relay on the same host or network, and for tests.
    None,
    /// Upgrade with STARTTLS, and refuse to go on without it.
    StartTls,
}

#[derive(Clone)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: TlsMode,
    /// The sender, as "Name <address>" or a bare address.
    pub from: String,
    pub timeout: Duration,
}

impl EmailConfig {
    /// STARTTLS on port 587, no credentials.
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> Self {
        EmailConfig {
            host: host.into(),
            port: 587,
            username: None,
            password: None,
            tls: TlsMode::StartTls,
            from: from.into(),
            timeout: http::TIMEOUT_DEFAULT,
        }
    }
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EmailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmailConfigError {
    #[error("the from address {0:?} is not a mailbox")]
    From(String),
    #[error("TLS for {host:?} cannot be set up: {error}")]
    Tls {
        host: String,
        error: lettre::transport::smtp::Error,
    },
    #[error("a username needs a password, and a password a username")]
    HalfCredentials,
}

pub struct EmailChannel {
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl EmailChannel {
    pub fn new(config: EmailConfig) -> Result<Self, EmailConfigError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| EmailConfigError::From(config.from.clone()))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(config.timeout));
        if config.tls == TlsMode::StartTls {
            let parameters =
                TlsParameters::new(config.host.clone()).map_err(|error| EmailConfigError::Tls {
                    host: config.host.clone(),
                    error,
                })?;
            builder = builder.tls(Tls::Required(parameters));
        }
        match (config.username, config.password) {
            (Some(username), Some(password)) => {
                builder = builder.credentials(Credentials::new(username, password));
            }
            (None, None) => {}
            _ => return Err(EmailConfigError::HalfCredentials),
        }
        Ok(EmailChannel {
            from,
            transport: builder.build(),
        })
    }

    async fn send_email(&self, outgoing: &Outgoing) -> Result<Sent, SendFailure> {
        let message = self.message(outgoing)?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or_default()
            .to_owned();
        self.transport.send(message).await.map_err(smtp_failure)?;
        Ok(Sent {
            provider_id: message_id,
            cost_vnd: None,
            parts: 1,
        })
    }

    fn message(&self, outgoing: &Outgoing) -> Result<Message, SendFailure> {
        let Body::Email {
            subject,
            html,
            text,
            unsubscribe_url,
        } = &outgoing.body
        else {
            return Err(SendFailure::unsendable("e-mail sends Body::Email only"));
        };
        let to: Mailbox = outgoing.to.parse().map_err(|_| {
            SendFailure::invalid_recipient(format!("{:?} is not an e-mail address", outgoing.to))
        })?;
        let subject = if outgoing.advertising {
            sms::advertising_text(subject)
        } else {
            subject.clone()
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id(&outgoing.tracking_id, &self.from)));
        if let Some(url) = unsubscribe_url {
            builder = builder
                .header(ListUnsubscribe(format!("<{url}>")))
                .header(ListUnsubscribePost);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                text.clone(),
                html.clone(),
            ))
            .map_err(|error| {
                SendFailure::unsendable(format!("the e-mail cannot be built: {error}"))
            })
    }
}

impl Channel for EmailChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(self.send_email(message))
    }
}

/// `<tracking-id@sender-domain>`, so bounces and complaints lead back to our message; only
/// characters a Message-ID may hold are kept from the tracking id.
fn message_id(tracking_id: &str, from: &Mailbox) -> String {
    let local: String = tracking_id
        .chars()
        .filter(|character| character.is_ascii_alphanumeric() || "-_.".contains(*character))
        .collect();
    let local = if local.is_empty() { "message" } else { &local };
    format!("<{local}@{}>", from.email.domain())
}

/// `List-Unsubscribe: <https://…>`.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(text.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// SMTP replies to failures: 4xx and lost connections are worth another try, 5xx are not.
fn smtp_failure(error: lettre::transport::smtp::Error) -> SendFailure {
    let code = error.status().map(u16::from);
    let provider_code = code.map(|code| code.to_string()).unwrap_or_default();
    let detail = error.to_string();
    if error.is_permanent() {
        let reason = match code {
            Some(530 | 534 | 535 | 538) => FailureReason::Unauthorized,
            Some(550 | 551 | 553) => FailureReason::InvalidRecipient,
            Some(552) => FailureReason::RecipientRefused,
            Some(554) => FailureReason::ContentRefused,
            _ => FailureReason::Other,
        };
        return SendFailure::new(reason, false, provider_code, detail);
    }
    SendFailure::unavailable(provider_code, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_keep_only_safe_characters() {
        let from: Mailbox = "Patron <noreply@shop.vn>".parse().unwrap();
        assert_eq!(message_id("c-42_a.b", &from), "<c-42_a.b@shop.vn>");
        assert_eq!(message_id("<bad> id", &from), "<badid@shop.vn>");
        assert_eq!(message_id("<>", &from), "<message@shop.vn>");
    }

    #[test]
    fn half_credentials_are_refused() {
        let mut config = EmailConfig::new("127.0.0.1", "noreply@shop.vn");
        config.tls = TlsMode::None;
        config.username = Some("user".to_owned());
        assert!(matches!(
            EmailChannel::new(config),
            Err(EmailConfigError::HalfCredentials)
        ));
        let bad_from = EmailConfig::new("127.0.0.1", "not an address");
        assert!(matches!(
            EmailChannel::new(bad_from),
            Err(EmailConfigError::From(_))
        ));
    }
}
