//! The extended query protocol: Parse plans the statement once to learn its
//! parameter types (DataFusion's placeholder inference) and result columns;
//! Bind/Execute substitute the bound values as typed literals and run it
//! through the same path as a simple query, so rewrites, session statements
//! and writes behave the same in both protocols. pgwire keeps the portals
//! (named/unnamed, `max_rows` suspension). Outside a transaction block each
//! Execute is its own commit (no implicit block up to Sync).

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::FieldRef;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{Describe, Sync as PgSync, TARGET_TYPE_BYTE_STATEMENT};
use pgwire::messages::response::ReadyForQuery;

use super::encode::fields;
use super::errors::PgError;
use super::query::{QueryHandler, describe, literal};
use super::statement::substitute;
use super::{ServerState, conn};

/// A parsed statement: its text and its shape.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Type>,
    pub columns: Option<(Vec<String>, Vec<FieldRef>)>,
}

pub struct StmtParser {
    pub state: Arc<ServerState>,
}

#[async_trait]
impl QueryParser for StmtParser {
    type Statement = Stmt;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Stmt>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let conn = conn(&self.state, client).await?;
        let d = describe(&conn, sql, types).await?;
        Ok(Some(Stmt { sql: sql.to_string(), params: d.params, columns: d.columns }))
    }

    fn get_parameter_types(&self, stmt: &Stmt) -> PgWireResult<Vec<Type>> {
        Ok(stmt.params.clone())
    }

    fn get_result_schema(&self, stmt: &Stmt, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Ok(match &stmt.columns {
            Some((names, types)) => {
                fields(names, types, |i| format.map_or(pgwire::api::results::FieldFormat::Text, |f| f.format_for(i)))
            }
            None => vec![],
        })
    }
}

/// A bound parameter as text.
fn decode_param(raw: Option<&Bytes>, binary: bool, ty: &Type) -> Result<Option<String>, PgError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || PgError::new("22P02", format!("invalid binary value for a parameter of type {}", ty.name()));
    if !binary {
        return String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| PgError::new("22021", "parameter is not valid UTF-8"));
    }
    let b = raw.as_ref();
    let fixed = |n: usize| -> Result<&[u8], PgError> { if b.len() == n { Ok(b) } else { Err(bad()) } };
    Ok(Some(match *ty {
        Type::BOOL => (fixed(1)?[0] != 0).to_string(),
        Type::INT2 => i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| bad())?).to_string(),
        Type::INT4 | Type::OID => i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?).to_string(),
        Type::INT8 => i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?).to_string(),
        Type::FLOAT4 => f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?).to_string(),
        Type::FLOAT8 => f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?).to_string(),
        Type::TIMESTAMPTZ | Type::TIMESTAMP => {
            let pg_us = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?);
            let us = pg_us.checked_add(946_684_800_000_000).ok_or_else(bad)?;
            let t = chrono::DateTime::from_timestamp_micros(us).ok_or_else(bad)?;
            if *ty == Type::TIMESTAMPTZ {
                t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            } else {
                t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            }
        }
        Type::DATE => {
            let d = i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?) as i64 + 10_957;
            let t = chrono::DateTime::from_timestamp(d * 86_400, 0).ok_or_else(bad)?;
            t.format("%Y-%m-%d").to_string()
        }
        Type::INTERVAL => {
            let b = fixed(16)?;
            let us = i64::from_be_bytes(b[0..8].try_into().map_err(|_| bad())?);
            let days = i32::from_be_bytes(b[8..12].try_into().map_err(|_| bad())?);
            let months = i32::from_be_bytes(b[12..16].try_into().map_err(|_| bad())?);
            super::encode::interval_text(months, days, us)
        }
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::UNKNOWN | Type::BPCHAR | Type::JSON => {
            String::from_utf8(b.to_vec()).map_err(|_| PgError::new("22021", "parameter is not valid UTF-8"))?
        }
        _ => return Err(PgError::unsupported(format!("binary parameters of type {} (send it as text)", ty.name()))),
    }))
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = Stmt;
    type QueryParser = StmtParser;

    fn query_parser(&self) -> Arc<StmtParser> {
        Arc::new(StmtParser { state: self.state.clone() })
    }

    /// pgwire's Describe, but a statement that returns no rows is answered
    /// with NoData, as PostgreSQL does; pgwire sends an empty RowDescription
    /// when it has parameters (`INSERT … VALUES ($1)`), which pgjdbc takes
    /// for a result set ("A result was returned when none was expected").
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT
            && let Some(Entry::Value(stmt)) = client.portal_store().get_statement(name)
            && stmt.statement.columns.is_none()
        {
            let described = self.do_describe_statement(client, &stmt).await?;
            let oids = described.parameters.iter().map(|t| t.oid()).collect();
            client.send(PgWireBackendMessage::ParameterDescription(ParameterDescription::new(oids))).await?;
            client.send(PgWireBackendMessage::NoData(NoData::new())).await?;
            return Ok(());
        }
        self._on_describe(client, message).await
    }

    /// pgwire's Sync, with the session's transaction status: each Execute's
    /// responses cannot take a failed block back to a live one (ROLLBACK TO
    /// a savepoint does).
    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(conn) = client.session_extensions().get::<super::Conn>() {
            let status = conn.tx().status();
            client.set_transaction_status(status);
        }
        client.portal_store().rm_portal(pgwire::api::DEFAULT_NAME);
        client.send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(client.transaction_status()))).await?;
        client.flush().await?;
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Stmt>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = conn(&self.state, client).await?;
        let stmt = &portal.statement.statement;
        let declared = &portal.statement.parameter_types;
        let mut literals = Vec::with_capacity(portal.parameters.len());
        for (i, raw) in portal.parameters.iter().enumerate() {
            let ty = declared
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN || stmt.params.get(i).is_none())
                .or_else(|| stmt.params.get(i).cloned())
                .unwrap_or(Type::TEXT);
            let binary = portal.parameter_format.is_binary(i);
            let text = decode_param(raw.as_ref(), binary, &ty)?;
            literals.push(literal(text.as_deref(), &ty)?);
        }
        let sql = substitute(&stmt.sql, &literals)?;
        let mut notices = Vec::new();
        let r = self.execute(&conn, &sql, &portal.result_column_format, &mut notices).await;
        for n in notices {
            client.feed(PgWireBackendMessage::NoticeResponse(n.into())).await?;
        }
        for m in super::parameter_statuses(&conn) {
            client.feed(m).await?;
        }
        let declared: Vec<_> = conn.declared.lock().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default();
        for (name, names, types) in declared {
            let stmt = Stmt {
                sql: format!("FETCH ALL FROM \"{}\"", name.replace('"', "\"\"")),
                params: vec![],
                columns: Some((names, types)),
            };
            let stored = Arc::new(StoredStatement::new(name.clone(), stmt, vec![]));
            client.portal_store().put_portal(Arc::new(Portal::new_cursor(name, stored)));
        }
        Ok(r?)
    }
}
