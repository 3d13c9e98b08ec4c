//! The PostgreSQL-wire front end: `leadline serve`.
//!
//! One module per protocol concern: [`startup`] (auth, limits at connect),
//! [`simple`] (the simple query protocol), [`extended`]
//! (Parse/Bind/Describe/Execute), [`query`] (planning and streaming over
//! DataFusion), [`statement`] (statement kinds and parameters, from the
//! text), [`encode`] (Arrow → wire values), [`write`] (INSERT and COPY into
//! the event log), `copy` (the COPY sub-protocol's messages), [`views`]
//! (CREATE and DROP VIEW, kept by the engine), [`transaction`] (blocks:
//! held writes, failed blocks, savepoints), [`pg_catalog`] (pg_catalog,
//! information_schema and the statement rewrites), [`errors`] (SQLSTATEs)
//! and [`cancel`] (cancel requests, timeouts); [`guard`] wraps every
//! handler so that a panic is an `XX000` for its client, not a hang.
//!
//! Data flows one way: `startup`, `simple`, `extended` and `copy` call
//! `query`, which uses `write`, `views`, `transaction`, `statement`,
//! `encode`, `pg_catalog`, `errors` and `cancel`; those use no module above
//! them (`scripts/check-layers` checks it).

pub mod cancel;
mod copy;
pub mod encode;
pub mod errors;
pub mod extended;
pub mod guard;
pub mod parameters;
pub mod pg_catalog;
pub mod query;
pub mod simple;
pub mod startup;
pub mod statement;
pub mod transaction;
pub mod views;
mod write;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::prelude::SessionContext;
use leadline_engine::{Catalog, ReadSession, session_config};
use pgwire::api::{ClientInfo, PgWireServerHandlers};
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use errors::PgError;
use guard::Guarded;

/// Everything the connections share.
pub struct ServerState {
    catalog: Arc<Catalog>,
    config: ServerConfig,
    /// The one writer of the data directory, shared with the HTTP front.
    writer: Arc<crate::writer::SharedWriter>,
    connections: AtomicUsize,
    cancels: Arc<cancel::Registry>,
    /// A duplicate of each client socket by peer address, to notice a client
    /// that hangs up while its query is still executing.
    peers: Mutex<std::collections::HashMap<SocketAddr, Arc<std::net::TcpStream>>>,
    /// The catalog tables every session shares, built by the first.
    catalog_tables: pg_catalog::FixedTables,
}

impl ServerState {
    pub fn new(
        data_dir: PathBuf,
        config: ServerConfig,
        writer: Arc<crate::writer::SharedWriter>,
    ) -> anyhow::Result<Arc<Self>> {
        let catalog = Catalog::open(&data_dir, config.limits.memory())?;
        Ok(Arc::new(Self {
            catalog,
            config,
            writer,
            connections: AtomicUsize::new(0),
            cancels: Arc::new(cancel::Registry::default()),
            peers: Mutex::new(Default::default()),
            catalog_tables: Default::default(),
        }))
    }

    pub fn auth_enabled(&self) -> bool {
        !self.config.users.is_empty()
    }

    /// The catalog the sessions share (its memory pool is reported by `/metrics`).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// One connection's session: its DataFusion context over the log, its
/// settings and its running statement.
pub struct Conn {
    ctx: SessionContext,
    /// The view of the log this session's statements read.
    catalog: ReadSession,
    info: Arc<pg_catalog::CatalogInfo>,
    user: String,
    read_only: bool,
    vars: Arc<Mutex<BTreeMap<String, String>>>,
    slot: Arc<cancel::Slot>,
    copy: Mutex<Option<write::CopyIn>>,
    cursors: tokio::sync::Mutex<std::collections::HashMap<String, query::Cursor>>,
    /// Cursors declared since the last extended-protocol Execute, to be
    /// visible as portals (psycopg 3 describes a DECLAREd cursor's portal).
    declared: Mutex<Vec<DeclaredCursor>>,
    /// The session's transaction block, shared with its result streams
    /// (an error while rows stream fails the block).
    tx: Arc<Mutex<transaction::Transaction>>,
    /// ParameterStatus messages owed to the client after a SET.
    reported: Mutex<Vec<(String, String)>>,
    /// The client's socket (a duplicate), watched while statements run.
    peer: Option<Arc<std::net::TcpStream>>,
    /// The session's views version the catalog relations list.
    views_listed: AtomicU64,
    _registration: cancel::Registration,
}

/// A cursor as its portal shows it: name, column names and types.
pub type DeclaredCursor = (String, Vec<String>, Vec<arrow::datatypes::FieldRef>);

/// Default session variables (what `SHOW` answers and `pg_settings` lists).
fn default_vars(state: &ServerState, user: &str, application_name: &str) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    for (k, val) in [
        ("server_version", pg_catalog::SERVER_VERSION),
        ("server_version_num", pg_catalog::SERVER_VERSION_NUM),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("intervalstyle", "postgres"),
        ("timezone", "UTC"),
        ("standard_conforming_strings", "on"),
        ("integer_datetimes", "on"),
        ("search_path", "\"$user\", public"),
        ("extra_float_digits", "1"),
        // A transaction block reads one snapshot.
        ("transaction_isolation", "repeatable read"),
        ("default_transaction_isolation", "repeatable read"),
        ("transaction_read_only", "off"),
        ("default_transaction_read_only", "off"),
        ("max_identifier_length", "63"),
        ("lc_collate", "C.UTF-8"),
        ("lc_ctype", "C.UTF-8"),
        ("lc_messages", "C.UTF-8"),
        ("is_superuser", "off"),
        ("default_table_access_method", "heap"),
        ("bytea_output", "hex"),
        ("in_hot_standby", "off"),
    ] {
        v.insert(k.to_string(), val.to_string());
    }
    v.insert("statement_timeout".into(), state.config.limits.statement_timeout_ms.to_string());
    v.insert("max_connections".into(), state.config.limits.max_connections.to_string());
    v.insert("session_authorization".into(), user.to_string());
    v.insert("application_name".into(), application_name.to_string());
    v
}

impl Conn {
    async fn open<C: ClientInfo>(state: &Arc<ServerState>, client: &C) -> Result<Conn, PgError> {
        let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
        let app = client.metadata().get(pgwire::api::METADATA_APPLICATION_NAME).cloned().unwrap_or_default();
        let read_only = state.config.user(&user).is_some_and(|u| u.read_only);
        let mut config = session_config().with_information_schema(false);
        // now() and friends are timestamptz in UTC, as PostgreSQL's.
        config.options_mut().execution.time_zone = Some("+00:00".into());
        // A query over its memory limit fails with 53200 instead of growing.
        let catalog = state.catalog.session(config)?;
        let ctx = catalog.context().clone();

        // The user tables, before the catalog's own are registered beside them.
        let tables = pg_catalog::user_tables(&ctx, |name| catalog.row_count(name)).await?;
        let info = Arc::new(pg_catalog::CatalogInfo {
            tables,
            views: Default::default(),
            user: user.clone(),
            roles: state.config.users.iter().map(|u| u.name.clone()).chain(std::iter::once(user.clone())).collect(),
        });
        // The views too, so that the relations are listed once, here.
        let views_version = catalog.views_version();
        info.set_views(session_views(&catalog).await);
        let vars = Arc::new(Mutex::new(default_vars(state, &user, &app)));
        pg_catalog::register(&ctx, &state.catalog_tables, info.clone(), vars.clone())?;
        guard::register_debug_functions(&ctx);

        let slot = Arc::new(cancel::Slot::default());
        let (pid, key) = client.pid_and_secret_key();
        let registration = state.cancels.register(pid, key.to_bytes(), &slot);
        let conn = Conn {
            ctx,
            catalog,
            info,
            user,
            read_only,
            vars,
            slot,
            copy: Mutex::new(None),
            cursors: Default::default(),
            declared: Mutex::new(Vec::new()),
            tx: Arc::new(Mutex::new(transaction::Transaction::new(state.config.limits.write_buffer()))),
            reported: Mutex::new(Vec::new()),
            peer: state.peers.lock().ok().and_then(|p| p.get(&client.socket_addr()).cloned()),
            views_listed: AtomicU64::new(views_version),
            _registration: registration,
        };
        Ok(conn)
    }

    /// Pins the latest snapshot and views for the next statement; in a
    /// transaction block, only for its first (the block reads one snapshot).
    pub async fn refresh(&self) -> Result<(), PgError> {
        if self.tx().needs_view() {
            self.catalog.refresh().await?;
            self.tx().pin();
        }
        self.list_views().await
    }

    /// The session's transaction.
    pub fn tx(&self) -> MutexGuard<'_, transaction::Transaction> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists the session's views in the catalog relations again if they
    /// changed (created or dropped here or, seen at a refresh, elsewhere).
    pub async fn list_views(&self) -> Result<(), PgError> {
        let version = self.catalog.views_version();
        if self.views_listed.swap(version, Ordering::SeqCst) == version {
            return Ok(());
        }
        self.info.set_views(session_views(&self.catalog).await);
        pg_catalog::register_views(&self.ctx, &self.info)?;
        Ok(())
    }

    pub fn var(&self, name: &str) -> Option<String> {
        self.vars.lock().ok().and_then(|v| v.get(&name.to_ascii_lowercase()).cloned())
    }

    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        let ms: u64 = self.var("statement_timeout")?.parse().ok()?;
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }
}

/// ParameterStatus messages for the settings a client changed (PostgreSQL
/// reports TimeZone, DateStyle, … whenever they change; psycopg 3 reads
/// TimeZone from it).
pub fn parameter_statuses(conn: &Conn) -> Vec<pgwire::messages::PgWireBackendMessage> {
    let owed: Vec<(String, String)> = conn.reported.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
    owed.into_iter()
        .map(|(k, v)| {
            pgwire::messages::PgWireBackendMessage::ParameterStatus(pgwire::messages::startup::ParameterStatus::new(
                k, v,
            ))
        })
        .collect()
}

/// The session's views as the catalog relations list them.
async fn session_views(catalog: &ReadSession) -> Vec<pg_catalog::TableInfo> {
    let views = catalog.views().await.into_iter().map(|v| pg_catalog::TableInfo {
        oid: pg_catalog::view_oid(v.id, v.temporary),
        name: v.name,
        schema: v.schema.unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty())),
        rows: -1,
        insertable: false,
        view: Some(pg_catalog::ViewDetails { definition: v.definition, temporary: v.temporary }),
    });
    views.collect()
}

/// The connection's session, created on its first statement.
pub async fn conn<C: ClientInfo>(state: &Arc<ServerState>, client: &C) -> Result<Arc<Conn>, PgError> {
    if let Some(c) = client.session_extensions().get::<Conn>() {
        return Ok(c);
    }
    let c = Conn::open(state, client).await?;
    client.session_extensions().insert(c);
    client.session_extensions().get::<Conn>().ok_or_else(|| PgError::new("XX000", "session lost"))
}

/// The handler set of one server, each under the panic guard.
pub struct Handlers {
    startup: Arc<Guarded<startup::Startup>>,
    query: Arc<Guarded<query::QueryHandler>>,
    cancel: Arc<Guarded<cancel::Canceller>>,
}

impl Handlers {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self {
            startup: Arc::new(Guarded(Arc::new(startup::Startup::new(state.clone())))),
            query: Arc::new(Guarded(Arc::new(query::QueryHandler::new(state.clone())))),
            cancel: Arc::new(Guarded(Arc::new(cancel::Canceller { registry: state.cancels.clone() }))),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.query.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.query.clone()
    }
    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }
    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.query.clone()
    }
    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// Loads the TLS acceptor from PEM files.
fn tls_acceptor(cfg: &crate::config::TlsConfig) -> anyhow::Result<pgwire::tokio::TlsAcceptor> {
    use anyhow::Context;
    use pgwire::tokio::tokio_rustls::rustls::ServerConfig as RustlsConfig;
    use pgwire::tokio::tokio_rustls::rustls::pki_types::pem::PemObject;
    use pgwire::tokio::tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_pem =
        std::fs::read(&cfg.cert).with_context(|| format!("reading TLS certificate {}", cfg.cert.display()))?;
    let key_pem = std::fs::read(&cfg.key).with_context(|| format!("reading TLS key {}", cfg.key.display()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cfg.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", cfg.cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| format!("parsing TLS key {}", cfg.key.display()))?;
    let config = RustlsConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

/// Serves the data directory until the process is stopped. `ready` is called
/// with the bound address once the server accepts connections.
pub async fn serve(state: Arc<ServerState>, listen: &str, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && !state.auth_enabled() {
        anyhow::bail!(
            "refusing to listen on {addr} without authentication: with no users configured leadline trusts every \
             client, which is only safe on loopback. Add users (see `leadline passwd`) with --config, or listen on 127.0.0.1"
        );
    }
    let tls = match &state.config.tls {
        Some(t) => Some(tls_acceptor(t)?),
        None => None,
    };
    let handlers = Arc::new(Handlers::new(state.clone()));
    let conn_ids = AtomicU64::new(1);
    ready(addr);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handlers = handlers.clone();
        let tls = tls.clone();
        // Keep a duplicate of the socket to peek at while a query executes.
        let socket = match socket.into_std().and_then(|s| {
            let dup = s.try_clone()?;
            Ok((tokio::net::TcpStream::from_std(s)?, dup))
        }) {
            Ok((s, dup)) => {
                if let Ok(mut p) = state.peers.lock() {
                    p.insert(peer, Arc::new(dup));
                }
                s
            }
            Err(e) => {
                tracing::warn!(%peer, "cannot set up the connection: {e}");
                continue;
            }
        };
        let state = state.clone();
        // Every log line of the connection names it.
        let span = tracing::info_span!("conn", id = conn_ids.fetch_add(1, Ordering::Relaxed), %peer);
        let connection = async move {
            // A panic outside the handlers (the protocol codec) ends this
            // connection only, and its socket is closed.
            let served = std::panic::AssertUnwindSafe(pgwire::tokio::process_socket(socket, tls, handlers));
            match futures::FutureExt::catch_unwind(served).await {
                Ok(Err(e)) => tracing::debug!("connection ended: {e}"),
                Ok(Ok(())) => {}
                Err(payload) => {
                    guard::log_bug(peer, "the connection", payload.as_ref());
                }
            }
            if let Ok(mut p) = state.peers.lock() {
                p.remove(&peer);
            }
        };
        tokio::spawn(tracing::Instrument::instrument(connection, span));
    }
}

/// Counts a connection for `max_connections` while it lives.
pub struct ConnectionSlot(pub Arc<ServerState>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}
