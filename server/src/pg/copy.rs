//! The COPY sub-protocol (CopyData, CopyDone, CopyFail) of a COPY FROM
//! STDIN that [`super::write`] started: each message is handed to it.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::Tag;
use pgwire::api::{ClientInfo, METADATA_USER};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use super::errors::PgError;
use super::query::QueryHandler;
use super::{Conn, write};

#[async_trait]
impl CopyHandler for QueryHandler {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = super::conn(&self.state, client).await?;
        Ok(write::copy_data(&conn, &data.data)?)
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = super::conn(&self.state, client).await?;
        let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        let (appended, notices) = write::copy_done(&self.state, &conn, &user).await?;
        for n in notices {
            client.feed(PgWireBackendMessage::NoticeResponse(n.into())).await?;
        }
        client
            .send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(appended as usize).into()))
            .await?;
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
        }
        PgError::new("57014", format!("COPY from stdin failed: {}", fail.message)).into()
    }
}
