//! The simple query protocol: a query string split into statements, each run
//! as [`QueryHandler::execute`] runs it (session statements answered in place,
//! INSERT and COPY into the event log, everything else through DataFusion).

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::portal::Format;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::Response;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use super::query::QueryHandler;
use super::statement::split_statements;

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = super::conn(&self.state, client).await?;
        let mut responses = Vec::new();
        for stmt in split_statements(query) {
            let mut notices = Vec::new();
            let r = self.execute(client, &conn, &stmt, &Format::UnifiedText, &mut notices).await;
            for n in notices {
                client.feed(PgWireBackendMessage::NoticeResponse(n.into())).await?;
            }
            for m in super::parameter_statuses(&conn) {
                client.feed(m).await?;
            }
            match r {
                Ok(resp) => {
                    let is_copy = matches!(resp, Response::CopyIn(_));
                    responses.push(resp);
                    if is_copy {
                        break;
                    }
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.info())));
                    break;
                }
            }
        }
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}
