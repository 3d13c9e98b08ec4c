//! The simple query protocol: a query string split into statements, each run
//! as [`QueryHandler::execute`] runs it (session statements answered in place,
//! INSERT and COPY into the event log, everything else through DataFusion).
//! Several statements outside a transaction block run as one implicit block,
//! as in PostgreSQL: their writes are one commit at the end of the query (or
//! at the end of the COPY it ends with), or none if a statement fails. In
//! such a query, results are read to their end before the next statement
//! runs, so that an error while computing one comes before the commit.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt, TryStreamExt};
use pgwire::api::portal::Format;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::simplequery::Query;

use super::Conn;
use super::query::QueryHandler;
use super::statement::{Kind, classify, split_statements};

/// A result's rows, read to the end now.
async fn read_to_end(resp: &mut QueryResponse) -> Result<(), ErrorInfo> {
    let rows: Vec<_> = resp.data_rows().try_collect().await.map_err(ErrorInfo::from)?;
    *resp.data_rows() = Box::pin(futures::stream::iter(rows.into_iter().map(Ok)));
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire moves the status on from here as the responses say.
        if let Some(conn) = client.session_extensions().get::<Conn>() {
            let status = conn.tx().status_before(&query.query);
            client.set_transaction_status(status);
        }
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = super::conn(&self.state, client).await?;
        let statements = split_statements(query);
        let implicit = statements.len() > 1;
        let writes = implicit && statements.iter().any(|s| matches!(classify(s), Kind::Insert | Kind::Copy));
        let mut responses = Vec::new();
        let mut copying = false;
        for stmt in statements {
            if implicit {
                conn.tx().begin_implicit();
            }
            let mut notices = Vec::new();
            let r = self.execute(&conn, &stmt, &Format::UnifiedText, &mut notices).await;
            for n in notices {
                client.feed(PgWireBackendMessage::NoticeResponse(n.into())).await?;
            }
            for m in super::parameter_statuses(&conn) {
                client.feed(m).await?;
            }
            match r {
                Ok(Response::Query(mut resp)) if writes => match read_to_end(&mut resp).await {
                    Ok(()) => responses.push(Response::Query(resp)),
                    Err(e) => {
                        // (The stream failed the block.)
                        responses.push(Response::Error(Box::new(e)));
                        break;
                    }
                },
                Ok(resp) => {
                    copying = matches!(resp, Response::CopyIn(_));
                    responses.push(resp);
                    if copying {
                        break;
                    }
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.info())));
                    break;
                }
            }
        }
        if !copying {
            let mut notices = Vec::new();
            if let Err(e) = self.end_implicit(&conn, &mut notices).await {
                responses.push(Response::Error(Box::new(e.info())));
            }
            for n in notices {
                client.feed(PgWireBackendMessage::NoticeResponse(n.into())).await?;
            }
        }
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}
