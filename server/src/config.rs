//! The server's config file (JSON): users with SCRAM-SHA-256 verifiers, TLS
//! PEM files and limits. Passwords are never stored: `leadline passwd`
//! prints the verifier to paste in.
//!
//! ```json
//! {
//!   "users": [
//!     {"name": "analyst", "scram": "SCRAM-SHA-256$4096:…$…:…", "read_only": true},
//!     {"name": "ingest", "scram": "SCRAM-SHA-256$4096:…$…:…"}
//!   ],
//!   "tls": {"cert": "server.crt", "key": "server.key", "required": true},
//!   "limits": {"max_connections": 64, "statement_timeout_ms": 0, "query_memory_mb": 1024, "memory_mb": 4096,
//!              "write_buffer_mb": 1024},
//!   "http": {"listen": "127.0.0.1:8080", "max_body_mb": 4, "max_queued_appends": 16},
//!   "webhooks": {
//!     "github": {"secret": "…"}, "gitlab": {"token": "…"}, "pagerduty": {"secret": "…"}, "events": {"token": "…"},
//!     "map": {
//!       "services": {"acme/checkout": {"service": "checkout", "team": "payments"},
//!                    "Checkout API": {"service": "checkout", "team": "payments", "environment": "production"}},
//!       "environments": {"prod": "production"}
//!     }
//!   },
//!   "log": {"format": "json", "slow_query_ms": 1000}
//! }
//! ```
//!
//! Secrets (webhook secrets and tokens) are [`Secret`]s: their `Debug` form
//! is redacted, so no log line can show one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// The HTTP front (`leadline serve --http`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on (`--http` overrides it); none: no HTTP front.
    pub listen: Option<String>,
    /// Largest request body, in MiB; a larger one is answered 413.
    pub max_body_mb: f64,
    /// Writes (webhook deliveries, event batches) read and waiting for the
    /// writer at once; beyond, 503 with Retry-After.
    pub max_queued_appends: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: None, max_body_mb: 4.0, max_queued_appends: 16 }
    }
}

impl HttpConfig {
    /// [`max_body_mb`](Self::max_body_mb) in bytes.
    pub fn max_body_bytes(&self) -> usize {
        (self.max_body_mb.max(0.0) * (1u64 << 20) as f64) as usize
    }
}

/// A secret from the config file: compared, never shown.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// What each webhook endpoint checks, and how vendors' names map to leadline's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    pub github: Option<SignedBy>,
    pub gitlab: Option<TokenAuth>,
    pub pagerduty: Option<SignedBy>,
    /// `POST /v1/events` (canonical NDJSON).
    pub events: Option<TokenAuth>,
    pub map: Mapping,
}

/// Vendors' names → leadline's (`webhooks.map`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    /// By repository (`owner/name`, or `name`) or PagerDuty service (name or id).
    pub services: BTreeMap<String, ServiceMapping>,
    /// Environment names as the vendor sends them → canonical ones (`prod` → `production`).
    pub environments: BTreeMap<String, String>,
    /// Branches whose pushes are changes (`main`); empty: each repository's default branch.
    pub branches: Vec<String>,
}

/// What one repository or PagerDuty service is in leadline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceMapping {
    /// The leadline service (default: the repository's or PagerDuty service's name).
    pub service: Option<String>,
    pub team: Option<String>,
    /// The environment of a PagerDuty service's incidents (default `production`).
    pub environment: Option<String>,
}

/// An HMAC-SHA256 secret shared with the sender.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedBy {
    pub secret: Secret,
}

/// A token the sender presents as is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenAuth {
    pub token: Secret,
}

/// How the server logs (to stderr; `LEADLINE_LOG` filters as before).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (the default) or `json` (one JSON object per line).
    pub format: LogFormat,
    /// Statements slower than this are logged (0: none).
    pub slow_query_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// PostgreSQL's verifier format: `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    pub scram: String,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Refuse clients that do not use TLS.
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_connections: usize,
    /// Default `statement_timeout` (0 = none); a session may `SET statement_timeout`.
    pub statement_timeout_ms: u64,
    /// Memory one query may use (DataFusion memory pool), in MiB.
    pub query_memory_mb: usize,
    /// Memory all queries and the caches may use together, in MiB.
    pub memory_mb: usize,
    /// Input one COPY, or one transaction block's INSERTs and COPYs, may
    /// hold until its append, in MiB.
    pub write_buffer_mb: usize,
}

impl Limits {
    /// The engine's memory limits, in bytes.
    pub fn memory(&self) -> leadline_engine::MemoryLimits {
        let per_query = self.query_memory_mb.max(1) << 20;
        leadline_engine::MemoryLimits { total: (self.memory_mb.max(1) << 20).max(per_query), per_query }
    }

    /// [`write_buffer_mb`](Self::write_buffer_mb) in bytes.
    pub fn write_buffer(&self) -> usize {
        self.write_buffer_mb.max(1) << 20
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            statement_timeout_ms: 0,
            query_memory_mb: 1024,
            memory_mb: 4096,
            write_buffer_mb: 1024,
        }
    }
}

/// A parsed SCRAM verifier.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub iterations: usize,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ServerConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the config file {}", path.display()))?;
        let mut cfg: ServerConfig =
            serde_json::from_str(&text).with_context(|| format!("parsing the config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut cfg.tls {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
        for u in &cfg.users {
            parse_verifier(&u.scram).with_context(|| format!("user '{}' in {}", u.name, path.display()))?;
        }
        if cfg.limits.max_connections == 0 {
            bail!("limits.max_connections must be at least 1");
        }
        if cfg.http.max_queued_appends == 0 {
            bail!("http.max_queued_appends must be at least 1");
        }
        if cfg.http.max_body_mb.is_nan() || cfg.http.max_body_mb <= 0.0 {
            bail!("http.max_body_mb must be more than 0");
        }
        for (name, auth) in [
            ("webhooks.github.secret", cfg.webhooks.github.as_ref().map(|s| &s.secret)),
            ("webhooks.pagerduty.secret", cfg.webhooks.pagerduty.as_ref().map(|s| &s.secret)),
            ("webhooks.gitlab.token", cfg.webhooks.gitlab.as_ref().map(|t| &t.token)),
            ("webhooks.events.token", cfg.webhooks.events.as_ref().map(|t| &t.token)),
        ] {
            if auth.is_some_and(|s| s.expose().is_empty()) {
                bail!("{name} is empty in {}: an empty secret would let anyone in", path.display());
            }
        }
        Ok(cfg)
    }

    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }
}

pub fn parse_verifier(s: &str) -> anyhow::Result<Verifier> {
    let bad = || anyhow::anyhow!("not a SCRAM-SHA-256 verifier (make one with `leadline passwd`)");
    let rest = s.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
    let (iter_salt, keys) = rest.split_once('$').ok_or_else(bad)?;
    let (iter, salt) = iter_salt.split_once(':').ok_or_else(bad)?;
    let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
    Ok(Verifier {
        iterations: iter.parse().map_err(|_| bad())?,
        salt: B64.decode(salt).map_err(|_| bad())?,
        stored_key: B64.decode(stored).map_err(|_| bad())?,
        server_key: B64.decode(server).map_err(|_| bad())?,
    })
}

/// Makes a verifier for a password (what `leadline passwd` prints).
pub fn make_verifier(password: &str) -> String {
    use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};
    let salt: [u8; 16] = rand::random();
    let iterations = 4096;
    let salted = gen_salted_password(password, &salt, iterations);
    match ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, iterations) {
        ScramSecret::Verifier { stored_key, server_key, .. } => format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            B64.encode(salt),
            B64.encode(stored_key),
            B64.encode(server_key)
        ),
        ScramSecret::SaltedPassword { .. } => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_round_trips() {
        let v = make_verifier("secret");
        let p = parse_verifier(&v).unwrap();
        assert_eq!(p.iterations, 4096);
        assert_eq!(p.salt.len(), 16);
        assert_eq!(p.stored_key.len(), 32);
        assert!(!v.contains("secret"));
    }
}
