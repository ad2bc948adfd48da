//! Configuration: defaults, then a TOML file (`--config`, `PATRON_CONFIG`, or `./patron.toml`
//! when present), then `PATRON_*` environment variables, then command-line flags. Unknown keys
//! in the file are errors that name the key, so a typo never silently falls back to a default.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The file read when no other is named, if it exists.
pub const DEFAULT_FILE: &str = "patron.toml";

/// Keys read from the environment as `PATRON_<KEY>`.
const ENV_KEYS: &[&str] = &[
    "database",
    "sqlite_synchronous_full",
    "listen",
    "jobs_interval_seconds",
    "rate_limit_per_second",
    "rate_limit_burst",
    "platform_token",
    "log_format",
    "webhooks_allow_private_targets",
    "public_url",
    "trusted_proxies",
    "tls_cert_path",
    "tls_key_path",
    "secret_key_file",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the request's id and tenant in every line of a request.
    Json,
}

/// Everything `patron serve` needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `patron.db` (SQLite) or `postgres://user@host/db`.
    pub database: String,
    /// SQLite `synchronous=FULL` (survives a power cut; slower) instead of NORMAL.
    pub sqlite_synchronous_full: bool,
    pub listen: SocketAddr,
    /// Seconds between runs of the expiry and tier review jobs (0: never).
    pub jobs_interval_seconds: u64,
    /// Sustained requests per second allowed per API key (0: no limit).
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// The platform operator's token for `/v1/tenants`; absent turns those endpoints off.
    pub platform_token: Option<String>,
    pub log_format: LogFormat,
    /// Let webhooks be subscribed and sent to loopback, private and link-local addresses
    /// (tests, closed networks). Off, only public addresses are allowed.
    pub webhooks_allow_private_targets: bool,
    /// The site's address as visitors reach it (`https://loyalty.example`): links handed to
    /// members start with it. Absent: `http://` and the listen address (loopback when
    /// listening on every interface), which suits a demo on one machine.
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed
    /// (`["10.0.0.2"]`; in the environment `PATRON_TRUSTED_PROXIES='["10.0.0.2"]'`). Others'
    /// are ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// Serve HTTPS with this certificate chain (PEM); needs `tls_key_path` too.
    pub tls_cert_path: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key_path: Option<PathBuf>,
    /// The key that seals the tenants' messaging accounts (64 hex characters); made, readable
    /// by its owner only, on the first `patron serve` when missing. Keep it with the backups:
    /// without it the accounts must be entered again.
    pub secret_key_file: PathBuf,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            database: "patron.db".into(),
            sqlite_synchronous_full: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jobs_interval_seconds: 3600,
            rate_limit_per_second: 200,
            rate_limit_burst: 400,
            platform_token: None,
            log_format: LogFormat::Text,
            webhooks_allow_private_targets: false,
            public_url: None,
            trusted_proxies: Vec::new(),
            tls_cert_path: None,
            tls_key_path: None,
            secret_key_file: PathBuf::from("patron.key"),
        }
    }
}

/// Flags given on the command line (only those given override).
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
pub struct Overrides {
    /// `./patron.db` (SQLite, the default) or `postgres://user@host/db`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// SQLite `synchronous=FULL` instead of NORMAL.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sqlite_synchronous_full: bool,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Seconds between runs of the expiry and tier review jobs (0: never; default 3600).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_interval_seconds: Option<u64>,
    /// Sustained requests per second allowed per API key (0: no limit; default 200).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// Requests an idle API key may make at once (default 400).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<u32>,
    /// Let webhooks go to loopback, private and link-local addresses (tests, closed networks).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub webhooks_allow_private_targets: bool,
}

/// The file to read: the one named, else `./patron.toml` if it exists.
pub fn file_to_read(named: Option<&Path>) -> Option<PathBuf> {
    match named {
        Some(path) => Some(path.to_owned()),
        None => Path::new(DEFAULT_FILE)
            .exists()
            .then(|| PathBuf::from(DEFAULT_FILE)),
    }
}

/// Loads the settings, layer by layer.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Settings, Box<figment::Error>> {
    use figment::providers::{Env, Format, Serialized, Toml};
    let mut figment = figment::Figment::from(Serialized::defaults(Settings::default()));
    if let Some(path) = file_to_read(file) {
        if !path.exists() {
            return Err(Box::new(figment::Error::from(format!(
                "configuration file {} does not exist",
                path.display()
            ))));
        }
        figment = figment.merge(Toml::file(path));
    }
    let settings: Settings = figment
        .merge(Env::prefixed("PATRON_").only(ENV_KEYS))
        .merge(Serialized::defaults(overrides))
        .extract()
        .map_err(Box::new)?;
    settings.check()?;
    Ok(settings)
}

impl Settings {
    /// What the types cannot say: the public address's form, certificate and key together.
    fn check(&self) -> Result<(), Box<figment::Error>> {
        if let Some(url) = &self.public_url {
            patron_server::parse_public_url(url)
                .map_err(|error| Box::new(figment::Error::from(format!("public_url: {error}"))))?;
        }
        if self.tls_cert_path.is_some() != self.tls_key_path.is_some() {
            return Err(Box::new(figment::Error::from(
                "tls_cert_path and tls_key_path: give both or neither".to_owned(),
            )));
        }
        Ok(())
    }

    /// The certificate and key to serve HTTPS with, when configured.
    pub fn tls_files(&self) -> Option<patron_server::tls::TlsFiles> {
        Some(patron_server::tls::TlsFiles {
            cert_path: self.tls_cert_path.clone()?,
            key_path: self.tls_key_path.clone()?,
        })
    }

    /// The key in `secret_key_file`, made there when the file does not exist.
    pub fn secret_key(&self) -> anyhow::Result<[u8; 32]> {
        use anyhow::Context;
        let path = &self.secret_key_file;
        if !path.exists() {
            let key: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .with_context(|| format!("create {}", path.display()))?;
            std::io::Write::write_all(&mut file, format!("{}\n", hex_of(&key)).as_bytes())?;
            tracing::info!(path = %path.display(), "made the secret key that seals messaging accounts");
            return Ok(key);
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let text = text.trim();
        anyhow::ensure!(
            text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()),
            "{}: 64 hex characters expected",
            path.display()
        );
        let mut key = [0u8; 32];
        for (index, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16)?;
        }
        Ok(key)
    }

    /// The settings as TOML, with secrets hidden.
    pub fn describe(&self) -> String {
        let mut shown = self.clone();
        if shown.platform_token.is_some() {
            shown.platform_token = Some("(set)".into());
        }
        if let Some(at) = shown.database.find('@') {
            if let Some(scheme_end) = shown.database.find("://") {
                let credentials = &shown.database[scheme_end + 3..at];
                if let Some((user, _)) = credentials.split_once(':') {
                    shown.database = format!(
                        "{}{user}:***{}",
                        &shown.database[..scheme_end + 3],
                        &shown.database[at..]
                    );
                }
            }
        }
        let mut lines = vec![
            format!("database = {:?}", shown.database),
            format!(
                "sqlite_synchronous_full = {}",
                shown.sqlite_synchronous_full
            ),
            format!("listen = \"{}\"", shown.listen),
            format!("jobs_interval_seconds = {}", shown.jobs_interval_seconds),
            format!("rate_limit_per_second = {}", shown.rate_limit_per_second),
            format!("rate_limit_burst = {}", shown.rate_limit_burst),
            format!(
                "log_format = \"{}\"",
                match shown.log_format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }
            ),
            format!(
                "webhooks_allow_private_targets = {}",
                shown.webhooks_allow_private_targets
            ),
        ];
        if let Some(token) = &shown.platform_token {
            lines.push(format!("platform_token = {token:?}"));
        }
        if let Some(url) = &shown.public_url {
            lines.push(format!("public_url = {url:?}"));
        }
        if !shown.trusted_proxies.is_empty() {
            let proxies: Vec<String> = shown
                .trusted_proxies
                .iter()
                .map(|proxy| format!("\"{proxy}\""))
                .collect();
            lines.push(format!("trusted_proxies = [{}]", proxies.join(", ")));
        }
        if let (Some(cert), Some(key)) = (&shown.tls_cert_path, &shown.tls_key_path) {
            lines.push(format!("tls_cert_path = {:?}", cert.display().to_string()));
            lines.push(format!("tls_key_path = {:?}", key.display().to_string()));
        }
        lines.push(format!(
            "secret_key_file = {:?}",
            shown.secret_key_file.display().to_string()
        ));
        lines.join("\n")
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("patron-config-{}.toml", uuid::Uuid::now_v7()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn layers_file_then_flags() {
        let path =
            write("listen = \"0.0.0.0:9000\"\nrate_limit_burst = 10\nlog_format = \"json\"\n");
        let overrides = Overrides {
            rate_limit_burst: Some(20),
            ..Overrides::default()
        };
        let settings = load(Some(&path), &overrides).unwrap();
        assert_eq!(settings.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(settings.rate_limit_burst, 20, "a flag beats the file");
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.rate_limit_per_second, 200, "the default stays");
    }

    #[test]
    fn errors_name_the_key() {
        let path = write("listne = \"0.0.0.0:9000\"\n");
        let error = load(Some(&path), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("listne"), "{error}");
        let path = write("listen = \"not an address\"\n");
        let error = load(Some(&path), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen"), "{error}");
        let missing = std::env::temp_dir().join("patron-no-such-file.toml");
        let error = load(Some(&missing), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not exist"), "{error}");
    }

    #[test]
    fn public_address_proxies_and_tls_are_read_and_checked() {
        let path = write(
            "public_url = \"https://loyalty.example/\"\ntrusted_proxies = [\"10.0.0.2\"]\n\
             tls_cert_path = \"cert.pem\"\ntls_key_path = \"key.pem\"\n",
        );
        let settings = load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(
            settings.public_url.as_deref(),
            Some("https://loyalty.example/")
        );
        assert_eq!(
            settings.trusted_proxies,
            vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            settings.tls_files().unwrap().key_path,
            PathBuf::from("key.pem")
        );
        let text = settings.describe();
        assert!(text.contains("trusted_proxies = [\"10.0.0.2\"]"), "{text}");
        let path = write("public_url = \"loyalty.example\"\n");
        let error = load(Some(&path), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("public_url"), "{error}");
        let path = write("tls_cert_path = \"cert.pem\"\n");
        let error = load(Some(&path), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("tls_key_path"), "{error}");
    }

    #[test]
    fn describe_hides_secrets() {
        let settings = Settings {
            database: "postgres://patron:hunter2@db/patron".into(),
            platform_token: Some("very-secret".into()),
            ..Settings::default()
        };
        let text = settings.describe();
        assert!(
            !text.contains("hunter2") && !text.contains("very-secret"),
            "{text}"
        );
        assert!(text.contains("postgres://patron:***@db/patron"));
    }

    #[test]
    fn private_webhook_targets_are_off_unless_asked_for() {
        let settings = load(Some(&write("")), &Overrides::default()).unwrap();
        assert!(!settings.webhooks_allow_private_targets);
        assert!(settings
            .describe()
            .contains("webhooks_allow_private_targets = false"));
        let path = write("webhooks_allow_private_targets = true\n");
        let settings = load(Some(&path), &Overrides::default()).unwrap();
        assert!(settings.webhooks_allow_private_targets);
        let overrides = Overrides {
            webhooks_allow_private_targets: true,
            ..Overrides::default()
        };
        let settings = load(Some(&write("")), &overrides).unwrap();
        assert!(settings
            .describe()
            .contains("webhooks_allow_private_targets = true"));
    }
}
