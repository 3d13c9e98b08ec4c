//! The COPY sub-protocol (CopyData, CopyDone, CopyFail) of a COPY FROM
//! STDIN that [`super::write`] started: each message is handed to it. A
//! COPY that fails fails the transaction block it ran in.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::Tag;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use super::errors::PgError;
use super::query::QueryHandler;
use super::{Conn, write};

/// `r`, having failed the session's transaction block if it is an error.
fn failing<T>(conn: &Conn, r: Result<T, PgError>) -> Result<T, PgError> {
    if r.is_err() {
        conn.tx().fail();
    }
    r
}

#[async_trait]
impl CopyHandler for QueryHandler {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = super::conn(&self.state, client).await?;
        Ok(failing(&conn, write::copy_data(&conn, &data.data))?)
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = super::conn(&self.state, client).await?;
        let done = write::copy_done(&self.state, &conn).await;
        let (stored, mut notices) = failing(&conn, done)?;
        // A COPY that ended a multi-statement query ends its implicit block.
        let ended = self.end_implicit(&conn, &mut notices).await;
        for n in notices {
            client.feed(PgWireBackendMessage::NoticeResponse(n.into())).await?;
        }
        ended?;
        // The status of the ReadyForQuery that follows (pgwire does not
        // track it across a COPY started by a multi-statement query).
        let status = conn.tx().status();
        client.set_transaction_status(status);
        client.send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(stored as usize).into())).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(conn) = client.session_extensions().get::<Conn>() {
            write::copy_abandoned(&conn);
            conn.tx().fail();
        }
        PgError::new("57014", format!("COPY from stdin failed: {}", fail.message)).into()
    }
}
