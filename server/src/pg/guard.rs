//! The one panic guard of the front end. Every message a client sends is
//! handled inside [`Guarded`], a wrapper around the server's handlers: a
//! panic while handling it (a bug: input must never panic) becomes an
//! `XX000` ErrorResponse for that client, followed as usual by
//! ReadyForQuery (or, in the extended protocol, at the next Sync), and is
//! logged with `tracing::error!`. The client is never left hanging and the
//! server keeps serving every connection, that one included.
//!
//! The guard wraps whole messages (`on_query`, `on_execute`, …), not just
//! planning, so a panic while rows stream is caught too. The connection
//! task itself is guarded in [`super::serve`] (a panic in the protocol
//! codec closes that connection, logged the same way).

use std::any::Any;
use std::fmt::Debug;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{FutureExt, Sink};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::PgWireFrontendMessage;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Flush, Parse, Sync as PgSync};
use pgwire::messages::simplequery::Query;

use super::errors::PgError;
use super::{Conn, write};

/// A handler whose every message is handled under the panic guard.
pub struct Guarded<H>(pub Arc<H>);

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Logs a caught panic as the bug it is.
pub fn log_bug(peer: std::net::SocketAddr, during: &str, payload: &(dyn Any + Send)) -> String {
    let message = panic_message(payload);
    tracing::error!(%peer, during, panic = %message, "bug: a panic while serving a client (please report it)");
    message
}

/// One message's handling, run under the guard.
enum Handled<T> {
    Done(PgWireResult<T>),
    /// It panicked: the `XX000` error for the client.
    Panicked(PgWireError),
}

impl<T> Handled<T> {
    /// What the client is answered. After a panic the session's transaction
    /// block is failed as after any statement's error (an implicit block is
    /// over, writing nothing): rows the abandoned statement may have held
    /// are never committed, and ReadyForQuery says so. A COPY in progress is
    /// dropped.
    fn answer<C: ClientInfo>(self, client: &C) -> PgWireResult<T> {
        match self {
            Handled::Done(result) => result,
            Handled::Panicked(error) => {
                if let Some(conn) = client.session_extensions().get::<Conn>() {
                    conn.tx().fail();
                    write::copy_abandoned(&conn);
                }
                Err(error)
            }
        }
    }
}

/// Runs `work` (one message's handling); a panic in it becomes an `XX000`
/// error for the client.
async fn guarded<T>(
    peer: std::net::SocketAddr,
    during: impl FnOnce() -> String,
    work: impl Future<Output = PgWireResult<T>>,
) -> Handled<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => Handled::Done(result),
        Err(payload) => {
            let message = log_bug(peer, &during(), payload.as_ref());
            Handled::Panicked(
                PgError::with_hint(
                    "XX000",
                    format!("internal error: leadline hit a bug ({message}); the statement was abandoned"),
                    "the server logged it and goes on serving; this connection is still usable",
                )
                .into(),
            )
        }
    }
}

/// A statement's text for the log, shortened.
fn sql_for_log(sql: &str) -> String {
    const MAX: usize = 200;
    match sql.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &sql[..end]),
        None => sql.to_string(),
    }
}

#[async_trait]
impl<H: StartupHandler> StartupHandler for Guarded<H> {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        // A failed start-up ends the connection: FATAL, as PostgreSQL's.
        guarded(peer, || "start-up".into(), self.0.on_startup(client, message)).await.answer(client).map_err(
            |e| match e {
                PgWireError::UserError(mut info) if info.code == "XX000" => {
                    info.severity = "FATAL".into();
                    PgWireError::UserError(info)
                }
                e => e,
            },
        )
    }
}

#[async_trait]
impl<H: SimpleQueryHandler> SimpleQueryHandler for Guarded<H> {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        let during = format!("query {}", sql_for_log(&query.query));
        guarded(peer, || during, self.0.on_query(client, query)).await.answer(client)
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.0.do_query(client, query).await
    }
}

#[async_trait]
impl<H: ExtendedQueryHandler> ExtendedQueryHandler for Guarded<H> {
    type Statement = H::Statement;
    type QueryParser = H::QueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.0.query_parser()
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        let during = format!("parse {}", sql_for_log(&message.query));
        guarded(peer, || during, self.0.on_parse(client, message)).await.answer(client)
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        guarded(peer, || "bind".into(), self.0.on_bind(client, message)).await.answer(client)
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        guarded(peer, || "execute".into(), self.0.on_execute(client, message)).await.answer(client)
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        guarded(peer, || "describe".into(), self.0.on_describe(client, message)).await.answer(client)
    }

    async fn on_flush<C>(&self, client: &mut C, message: Flush) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        guarded(peer, || "flush".into(), self.0.on_flush(client, message)).await.answer(client)
    }

    async fn on_sync<C>(&self, client: &mut C, message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        guarded(peer, || "sync".into(), self.0.on_sync(client, message)).await.answer(client)
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        guarded(peer, || "close".into(), self.0.on_close(client, message)).await.answer(client)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.0.do_query(client, portal, max_rows).await
    }
}

#[async_trait]
impl<H: CopyHandler> CopyHandler for Guarded<H> {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        guarded(peer, || "COPY data".into(), self.0.on_copy_data(client, data)).await.answer(client)
    }

    async fn on_copy_done<C>(&self, client: &mut C, done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        guarded(peer, || "COPY done".into(), self.0.on_copy_done(client, done)).await.answer(client)
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        let work = self.0.on_copy_fail(client, fail).map(Err::<(), _>);
        match guarded(peer, || "COPY fail".into(), work).await.answer(client) {
            Err(e) => e,
            Ok(()) => PgError::new("XX000", "COPY failed").into(),
        }
    }
}

#[async_trait]
impl<H: CancelHandler> CancelHandler for Guarded<H> {
    async fn on_cancel_request(&self, req: CancelRequest) {
        if let Err(payload) = AssertUnwindSafe(self.0.on_cancel_request(req)).catch_unwind().await {
            let peer = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
            log_bug(peer, "cancel request", payload.as_ref());
        }
    }
}

/// `leadline_debug_panic(text)`: panics while its query runs. Only debug
/// builds have it, to test the guard from a real client; a release build
/// answers 42883 (no such function).
pub fn register_debug_functions(ctx: &datafusion::prelude::SessionContext) {
    #[cfg(debug_assertions)]
    {
        use arrow::datatypes::DataType;
        use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
        let udf = create_udf(
            "leadline_debug_panic",
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Volatile,
            Arc::new(|args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
                panic!("leadline_debug_panic was called ({} argument)", args.len())
            }),
        );
        ctx.register_udf(udf);
    }
    #[cfg(not(debug_assertions))]
    let _ = ctx;
}
