//! Connection start-up: TLS requirement, no replication connections, the
//! connection limit, the database name, then SCRAM-SHA-256 against the configured verifiers (or trust on
//! loopback when no users are configured), then the server parameters.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, ScramSecret};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{ClientInfo, PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::{PasswordMessageFamily, SASLInitialResponse};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::errors::PgError;
use super::{ConnectionSlot, ServerState, pg_catalog};

/// Users and their verifiers from the config file.
struct Verifiers {
    state: Arc<ServerState>,
}

impl Debug for Verifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifiers({} users)", self.state.config.users.len())
    }
}

#[async_trait]
impl AuthSource for Verifiers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(login.user().unwrap_or_default().to_owned()))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().unwrap_or_default();
        let v = self
            .state
            .config
            .user(user)
            .and_then(|u| crate::config::parse_verifier(&u.scram).ok())
            .ok_or_else(|| PgWireError::InvalidPassword(user.to_owned()))?;
        Ok((
            ScramSecret::Verifier {
                salt: v.salt,
                iterations: v.iterations,
                stored_key: v.stored_key,
                server_key: v.server_key,
            },
            None,
        ))
    }
}

fn parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = pg_catalog::SERVER_VERSION.to_string();
    p.date_style = "ISO, MDY".to_string();
    p.time_zone = "UTC".to_string();
    p.interval_style = "postgres".to_string();
    p.is_superuser = false;
    p.search_path = "\"$user\", public".to_string();
    p
}

/// Marks a connection whose SASL exchange has begun.
struct SaslStarted;

/// A SASLInitialResponse (mechanism name, then the length of its data and
/// the data), or `None` if the bytes are not one.
fn sasl_initial_response(body: &[u8]) -> Option<SASLInitialResponse> {
    let nul = body.iter().position(|&b| b == 0)?;
    let mechanism = std::str::from_utf8(&body[..nul]).ok()?.to_string();
    let rest = &body[nul + 1..];
    let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let data = &rest[4..];
    let data = match len {
        -1 if data.is_empty() => None,
        n if usize::try_from(n).ok()? == data.len() => Some(bytes::Bytes::copy_from_slice(data)),
        _ => return None,
    };
    Some(SASLInitialResponse::new(mechanism, data))
}

pub struct Startup {
    state: Arc<ServerState>,
    sasl: SASLAuthStartupHandler<DefaultServerParameterProvider>,
    params: DefaultServerParameterProvider,
    pids: Arc<RandomPidSecretKeyGenerator>,
}

impl Startup {
    pub fn new(state: Arc<ServerState>) -> Self {
        let pids = Arc::new(RandomPidSecretKeyGenerator::default());
        let mut scram = ScramAuth::new(Arc::new(Verifiers { state: state.clone() }));
        scram.set_iterations(4096);
        let sasl = SASLAuthStartupHandler::new(Arc::new(parameters()))
            .with_scram(scram)
            .with_pid_secret_key_generator(pids.clone());
        Self { state, sasl, params: parameters(), pids }
    }

    /// Checks made before authentication; errors end the connection.
    fn admit<C: ClientInfo>(&self, client: &C) -> Result<(), PgError> {
        if self.state.config.tls.as_ref().is_some_and(|t| t.required) && !client.is_secure() {
            return Err(PgError::fatal(
                "28000",
                "this server requires TLS (connect with sslmode=require); the connection was not encrypted",
            ));
        }
        // A walsender (physical or logical replication) speaks another protocol.
        if let Some(mode) = client.metadata().get("replication")
            && !matches!(mode.to_ascii_lowercase().as_str(), "false" | "off" | "no" | "0")
        {
            return Err(PgError::fatal(
                "0A000",
                format!("leadline does not support replication connections (replication={mode})"),
            ));
        }
        let db = client.metadata().get(pgwire::api::METADATA_DATABASE).cloned().unwrap_or_default();
        let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
        if !db.is_empty() && db != pg_catalog::DATABASE && db != user {
            return Err(PgError::fatal(
                "3D000",
                format!("database \"{db}\" does not exist (the database is named \"leadline\")"),
            ));
        }
        let max = self.state.config.limits.max_connections;
        let n = self.state.connections.fetch_add(1, Ordering::SeqCst);
        let slot = ConnectionSlot(self.state.clone());
        if n >= max {
            drop(slot);
            return Err(PgError::fatal("53300", format!("sorry, too many clients already (max_connections is {max})")));
        }
        client.session_extensions().insert(slot);
        Ok(())
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut message = message;
        if let PgWireFrontendMessage::PasswordMessageFamily(PasswordMessageFamily::Raw(body)) = &message
            && self.state.auth_enabled()
            && client.session_extensions().get::<SaslStarted>().is_none()
        {
            // pgwire decodes the first answer to the SASL request without
            // checking its lengths (a cleartext or md5 password there
            // panicked it): it reaches pgwire only once checked here.
            let initial = sasl_initial_response(body).ok_or_else(|| {
                PgError::fatal(
                    "08P01",
                    "malformed SASL message: this server authenticates with SCRAM-SHA-256 only (no cleartext or md5 passwords)",
                )
            })?;
            client.session_extensions().insert(SaslStarted);
            message = PgWireFrontendMessage::PasswordMessageFamily(PasswordMessageFamily::SASLInitialResponse(initial));
        }
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            self.admit(client)?;
            if !self.state.auth_enabled() {
                // Trust: only ever reachable on loopback (checked at start).
                let (pid, key) = self.pids.generate(client);
                client.set_pid_and_secret_key(pid, key);
                return finish_authentication(client, &self.params).await;
            }
        }
        self.sasl.on_startup(client, message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_sasl_initial_response_gets_through() {
        let good = [b"SCRAM-SHA-256\0".as_slice(), &3i32.to_be_bytes(), b"n,,"].concat();
        let r = sasl_initial_response(&good).unwrap();
        assert_eq!((r.auth_method.as_str(), r.data.as_deref()), ("SCRAM-SHA-256", Some(b"n,,".as_slice())));
        let no_data = [b"SCRAM-SHA-256\0".as_slice(), &(-1i32).to_be_bytes()].concat();
        assert_eq!(sasl_initial_response(&no_data).unwrap().data, None);
        for bad in [
            b"wonderland\0".to_vec(),
            b"md5abc".to_vec(),
            [b"SCRAM-SHA-256\0".as_slice(), &9i32.to_be_bytes(), b"n,,"].concat(),
            [b"SCRAM-SHA-256\0".as_slice(), &(-7i32).to_be_bytes()].concat(),
            [b"SCRAM-SHA-256\0".as_slice(), &(i32::MAX).to_be_bytes()].concat(),
            [b"\xff\0".as_slice(), &0i32.to_be_bytes()].concat(),
            vec![],
        ] {
            assert!(sasl_initial_response(&bad).is_none(), "{bad:?}");
        }
    }
}
