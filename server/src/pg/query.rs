//! Running one statement: session statements answered in place, queries
//! rewritten, planned by DataFusion and streamed batch by batch.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{FieldRef, Schema};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::{Stream, StreamExt};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, QueryResponse, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::response::TransactionStatus;

use super::cancel::Guard;
use super::encode::{BatchEncoder, fields};
use super::errors::PgError;
use super::pg_catalog::{self, Planned};
use super::statement::{Kind, classify, placeholder_count, strip_leading_comments, substitute};
use super::transaction::Outcome;
use super::write::CopyOutFormat;
use super::{Conn, ServerState};
use crate::config::MAX_STATEMENT_TIMEOUT_MS;

pub struct QueryHandler {
    pub state: Arc<ServerState>,
}

/// A planned query: what the client sees, and where the rows come from.
pub struct Prepared {
    pub names: Vec<String>,
    /// Each column's Arrow type, and PostgreSQL's where its metadata names one.
    pub types: Vec<FieldRef>,
    pub source: Source,
}

pub enum Source {
    Plan(LogicalPlan),
    Batch(RecordBatch),
    /// Rows already fetched (FETCH from a cursor).
    Batches(Arc<Schema>, Vec<RecordBatch>),
}

/// The rows of a prepared query as a stream: planned queries start executing
/// (under the statement's guard), rows already at hand are replayed.
async fn source_stream(conn: &Conn, source: Source, guard: &Guard) -> Result<SendableRecordBatchStream, PgError> {
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    Ok(match source {
        Source::Plan(plan) => {
            guard
                .run(async {
                    let df = conn.ctx.execute_logical_plan(plan).await?;
                    Ok(df.execute_stream().await?)
                })
                .await?
        }
        Source::Batch(b) => Box::pin(RecordBatchStreamAdapter::new(b.schema(), futures::stream::iter(vec![Ok(b)]))),
        Source::Batches(schema, batches) => {
            Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(batches.into_iter().map(Ok))))
        }
    })
}

/// A cursor made by `DECLARE … CURSOR FOR`: its running result.
pub struct Cursor {
    names: Vec<String>,
    types: Vec<FieldRef>,
    schema: Arc<Schema>,
    stream: SendableRecordBatchStream,
    pending: Option<RecordBatch>,
    binary: bool,
}

/// `DECLARE name [BINARY] … CURSOR … FOR query` → (name, binary, query).
fn parse_declare(sql: &str) -> Result<(String, bool, String), PgError> {
    let s = strip_leading_comments(sql).trim().trim_end_matches(';');
    let lower = s.to_ascii_lowercase();
    let bad = || PgError::syntax("expected DECLARE name CURSOR FOR query");
    let rest = lower.strip_prefix("declare").ok_or_else(bad)?;
    let name_start = s.len() - rest.len() + (rest.len() - rest.trim_start().len());
    let name_end = s[name_start..].find(char::is_whitespace).map(|p| name_start + p).ok_or_else(bad)?;
    let name = s[name_start..name_end].trim_matches('"').to_string();
    let cursor_at = lower[name_end..].find(" cursor").map(|p| p + name_end).ok_or_else(bad)?;
    let binary = lower[name_end..cursor_at].split_whitespace().any(|w| w == "binary");
    let for_at = lower[cursor_at..].find(" for ").map(|p| p + cursor_at).ok_or_else(bad)?;
    Ok((name, binary, s[for_at + 5..].trim().to_string()))
}

/// `FETCH [FORWARD|NEXT] [n|ALL] [FROM|IN] name` → (count, name, is_move).
fn parse_fetch(sql: &str) -> Result<(usize, String, bool), PgError> {
    let s = strip_leading_comments(sql).trim().trim_end_matches(';');
    let words: Vec<&str> = s.split_whitespace().collect();
    let is_move = words.first().is_some_and(|w| w.eq_ignore_ascii_case("move"));
    let mut count = 1usize;
    let mut name = None;
    for w in words.iter().skip(1) {
        let l = w.to_ascii_lowercase();
        match l.as_str() {
            "next" | "forward" | "from" | "in" => {}
            "all" => count = usize::MAX,
            n if n.chars().all(|c| c.is_ascii_digit()) => count = n.parse().unwrap_or(1),
            "prior" | "first" | "last" | "absolute" | "relative" | "backward" => {
                return Err(PgError::unsupported("leadline cursors only move forward (FETCH [FORWARD] n|ALL)"));
            }
            _ => name = Some(w.trim_matches('"').to_string()),
        }
    }
    Ok((count, name.ok_or_else(|| PgError::syntax("FETCH needs a cursor name"))?, is_move))
}

/// A statement's shape, for Describe.
pub struct Description {
    pub params: Vec<Type>,
    pub columns: Option<(Vec<String>, Vec<FieldRef>)>,
}

fn text_batch(names: &[&str], rows: Vec<Vec<Option<String>>>) -> Result<Prepared, PgError> {
    let schema = Arc::new(Schema::new(names.iter().map(|n| super::encode::text_field(n)).collect::<Vec<_>>()));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|c| {
            Arc::new(StringArray::from(rows.iter().map(|r| r.get(c).cloned().flatten()).collect::<Vec<_>>()))
                as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema, columns)?;
    Ok(Prepared {
        names: names.iter().map(|s| s.to_string()).collect(),
        types: batch.schema().fields().to_vec(),
        source: Source::Batch(batch),
    })
}

fn notice(severity: &str, code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(severity.to_owned(), code.to_owned(), message.into())
}

/// A bound parameter as a SQL literal of its type.
pub fn literal(value: Option<&str>, ty: &Type) -> Result<String, PgError> {
    let Some(v) = value else { return Ok("NULL".into()) };
    let quoted = || format!("'{}'", v.replace('\'', "''"));
    Ok(match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            let n: i64 = v
                .trim()
                .parse()
                .map_err(|_| PgError::new("22P02", format!("invalid input syntax for type {}: \"{v}\"", ty.name())))?;
            format!("({n})")
        }
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
            let t = v.trim();
            let n: f64 = t
                .parse()
                .map_err(|_| PgError::new("22P02", format!("invalid input syntax for type {}: \"{v}\"", ty.name())))?;
            if n.is_finite() { format!("({t})") } else { format!("CAST('{t}' AS DOUBLE)") }
        }
        Type::BOOL => match v.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "on" | "yes" | "y" => "TRUE".into(),
            "f" | "false" | "0" | "off" | "no" | "n" => "FALSE".into(),
            _ => return Err(PgError::new("22P02", format!("invalid input syntax for type boolean: \"{v}\""))),
        },
        Type::TIMESTAMPTZ => format!("CAST({} AS TIMESTAMP WITH TIME ZONE)", quoted()),
        Type::TIMESTAMP => format!("CAST({} AS TIMESTAMP)", quoted()),
        Type::DATE => format!("CAST({} AS DATE)", quoted()),
        Type::INTERVAL => format!("CAST({} AS INTERVAL)", quoted()),
        // `'{r,p}'` for a text[] parameter: an array (the catalog rewrites read the literal).
        _ => match array_element_sql(ty) {
            Some(elem) => format!("CAST({} AS {elem}[])", quoted()),
            None => quoted(),
        },
    })
}

/// The SQL name of an array parameter type's elements.
fn array_element_sql(ty: &Type) -> Option<&'static str> {
    Some(match *ty {
        Type::TEXT_ARRAY | Type::NAME_ARRAY | Type::CHAR_ARRAY | Type::BPCHAR_ARRAY => "TEXT",
        Type::VARCHAR_ARRAY => "VARCHAR",
        Type::BOOL_ARRAY => "BOOLEAN",
        Type::INT2_ARRAY => "SMALLINT",
        Type::INT4_ARRAY => "INT",
        Type::INT8_ARRAY | Type::OID_ARRAY => "BIGINT",
        Type::FLOAT4_ARRAY => "REAL",
        Type::FLOAT8_ARRAY => "DOUBLE PRECISION",
        Type::DATE_ARRAY => "DATE",
        Type::TIMESTAMP_ARRAY => "TIMESTAMP",
        Type::TIMESTAMPTZ_ARRAY => "TIMESTAMPTZ",
        _ => return None,
    })
}

/// A setting's name as PostgreSQL spells it, in ParameterStatus and as the
/// column `SHOW` answers with.
fn setting_name(name: &str) -> &str {
    match name {
        "timezone" => "TimeZone",
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        other => other,
    }
}

/// Parses one statement.
fn parse(sql: &str) -> Result<datafusion::sql::sqlparser::ast::Statement, PgError> {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql)?;
    match stmts.len() {
        1 => Ok(stmts.remove(0)),
        0 => Err(PgError::syntax("empty statement")),
        _ => Err(PgError::syntax("cannot insert multiple commands into a prepared statement")),
    }
}

impl QueryHandler {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

/// Rewrites and plans a query (placeholders allowed).
pub async fn prepare(conn: &Conn, sql: &str) -> Result<Prepared, PgError> {
    let stmt = parse(sql)?;
    match pg_catalog::plan(&conn.ctx.state(), &conn.info, stmt).await? {
        Planned::Plan { plan, names, types } => {
            let names = match names {
                Some(n) if n.len() == types.len() => n,
                _ => types.iter().map(|f| f.name().clone()).collect(),
            };
            Ok(Prepared { names, types, source: Source::Plan(plan) })
        }
        Planned::Empty { columns } => {
            let batch = RecordBatch::new_empty(Arc::new(Schema::new(columns.clone())));
            Ok(Prepared {
                names: columns.iter().map(|c| c.name().clone()).collect(),
                types: columns,
                source: Source::Batch(batch),
            })
        }
    }
}

/// Runs `work` for a statement of `kind` as the session's transaction
/// allows: refused in a failed block (25P02); its error fails the block.
async fn in_transaction<T>(
    conn: &Conn,
    kind: &Kind,
    work: impl Future<Output = Result<T, PgError>>,
) -> Result<T, PgError> {
    let checked = conn.tx().check(kind);
    let r = match checked {
        Ok(()) => work.await,
        Err(e) => Err(e),
    };
    if r.is_err() {
        conn.tx().fail();
    }
    r
}

/// Parameter types and result columns of a statement, without side effects
/// (but failing a transaction block as its error would when it runs).
pub async fn describe(conn: &Conn, sql: &str, declared: &[Option<Type>]) -> Result<Description, PgError> {
    in_transaction(conn, &classify(sql), describe_statement(conn, sql, declared)).await
}

async fn describe_statement(conn: &Conn, sql: &str, declared: &[Option<Type>]) -> Result<Description, PgError> {
    let count = placeholder_count(sql).max(declared.len());
    let declared_or = |i: usize, t: Type| declared.get(i).cloned().flatten().unwrap_or(t);
    match classify(sql) {
        Kind::Query => {
            conn.refresh().await?;
            match prepare(conn, sql).await {
                Ok(p) => {
                    let inferred = match &p.source {
                        Source::Plan(plan) => super::parameters::parameter_types(plan),
                        Source::Batch(_) | Source::Batches(..) => Default::default(),
                    };
                    let params = (0..count)
                        .map(|i| {
                            let t = inferred
                                .get(&format!("${}", i + 1))
                                .cloned()
                                .flatten()
                                .map(|dt| super::encode::pg_type(&dt))
                                .unwrap_or(Type::TEXT);
                            declared_or(i, t)
                        })
                        .collect();
                    Ok(Description { params, columns: Some((p.names, p.types)) })
                }
                Err(first) => {
                    // Retry with NULLs for the parameters (for the shape only).
                    let nulls: Vec<String> = (0..count).map(|_| "NULL".to_string()).collect();
                    let p = prepare(conn, &substitute(sql, &nulls)?).await.map_err(|_| first)?;
                    Ok(Description {
                        params: (0..count).map(|i| declared_or(i, Type::TEXT)).collect(),
                        columns: Some((p.names, p.types)),
                    })
                }
            }
        }
        Kind::Fetch => {
            let (_, name, is_move) = parse_fetch(sql)?;
            let cursors = conn.cursors.lock().await;
            let columns = match cursors.get(&name) {
                Some(c) if !is_move => Some((c.names.clone(), c.types.clone())),
                _ => None,
            };
            Ok(Description { params: vec![], columns })
        }
        Kind::Show { name } => {
            let cols = if name == "all" { vec!["name", "setting", "description"] } else { vec![setting_name(&name)] };
            Ok(Description {
                params: vec![],
                columns: Some((
                    cols.iter().map(|s| s.to_string()).collect(),
                    cols.iter().map(|c| Arc::new(super::encode::text_field(c))).collect(),
                )),
            })
        }
        _ => Ok(Description { params: (0..count).map(|i| declared_or(i, Type::TEXT)).collect(), columns: None }),
    }
}

/// The NOTICE, once per block, that a read does not see the rows the block
/// holds.
fn notice_unseen(conn: &Conn, notices: &mut Vec<ErrorInfo>) {
    if conn.tx().notice_unseen() {
        notices.push(notice(
            "NOTICE",
            "00000",
            "rows written in this transaction are not visible until COMMIT: its reads see the snapshot taken at its first statement",
        ));
    }
}

impl QueryHandler {
    /// Runs one statement (parameters already substituted). In a failed
    /// transaction block it is refused (25P02); its own error fails the block.
    pub async fn execute(
        &self,
        conn: &Arc<Conn>,
        sql: &str,
        format: &Format,
        notices: &mut Vec<ErrorInfo>,
    ) -> Result<Response, PgError> {
        let kind = classify(sql);
        in_transaction(conn, &kind.clone(), self.run(conn, kind, sql, format, notices)).await
    }

    /// The end of a multi-statement query (or of the COPY it ended with):
    /// its implicit block, if still open, commits.
    pub async fn end_implicit(&self, conn: &Conn, notices: &mut Vec<ErrorInfo>) -> Result<(), PgError> {
        let held = conn.tx().end_implicit();
        match held {
            Some(held) => super::write::commit(&self.state, conn, held, notices).await,
            None => Ok(()),
        }
    }

    async fn run(
        &self,
        conn: &Arc<Conn>,
        kind: Kind,
        sql: &str,
        format: &Format,
        notices: &mut Vec<ErrorInfo>,
    ) -> Result<Response, PgError> {
        let slow = self.state.config.log.slow_query_ms;
        let slow = (slow > 0).then(|| std::time::Duration::from_millis(slow));
        let guard = Guard {
            token: conn.slot.begin(),
            deadline: conn.statement_timeout().and_then(|d| Instant::now().checked_add(d)),
            peer: conn.peer.clone(),
            _timer: Some(Arc::new(crate::telemetry::StatementTimer::start(kind.label(), slow))),
        };
        let in_block = conn.tx().in_block();
        if in_block && !matches!(kind, Kind::Transaction(_) | Kind::Empty) {
            // The block's first statement pins the view all of it reads.
            conn.refresh().await?;
        }
        match kind {
            Kind::Empty => Ok(Response::EmptyQuery),
            Kind::Transaction(command) => {
                let live_block = conn.tx().status() == TransactionStatus::Transaction;
                let step = conn.tx().run(&command)?;
                if let Some((code, message)) = step.warning {
                    notices.push(notice("WARNING", code, message));
                }
                let tag = Tag::new(step.tag);
                Ok(match step.outcome {
                    Outcome::Begun => Response::TransactionStart(tag),
                    Outcome::Commit(held) => {
                        if let Err(e) = super::write::commit(&self.state, conn, held, notices).await {
                            if live_block {
                                // The client sees the block failed (E) until it rolls back.
                                conn.tx().commit_failed();
                            }
                            return Err(e);
                        }
                        Response::TransactionEnd(tag)
                    }
                    Outcome::RolledBack => Response::TransactionEnd(tag),
                    Outcome::Continued => Response::Execution(tag),
                })
            }
            Kind::Set { name, value } => {
                self.set(conn, &name, value, notices).await?;
                Ok(Response::Execution(Tag::new("SET")))
            }
            Kind::Reset { name } => {
                match name {
                    Some(n) => self.set(conn, &n, None, notices).await?,
                    None => {
                        let defaults = super::default_vars(&self.state, &conn.user, "");
                        if let Ok(mut v) = conn.vars.lock() {
                            *v = defaults;
                        }
                        self.set(conn, "leadline.as_of", None, notices).await?;
                        self.set(conn, "leadline.attribution_window", None, notices).await?;
                    }
                }
                Ok(Response::Execution(Tag::new("RESET")))
            }
            Kind::Show { name } => {
                let p = self.show(conn, &name)?;
                Ok(Response::Query(self.respond(conn, p, format, guard).await?))
            }
            Kind::Noop { tag } => Ok(Response::Execution(Tag::new(&tag))),
            Kind::Declare => {
                notice_unseen(conn, notices);
                self.declare(conn, sql, &guard).await?;
                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            Kind::Fetch => self.fetch(conn, sql, format, guard).await,
            Kind::Close { name } => {
                let mut cursors = conn.cursors.lock().await;
                match name {
                    None => cursors.clear(),
                    Some(n) => {
                        cursors
                            .remove(&n)
                            .ok_or_else(|| PgError::new("34000", format!("cursor \"{n}\" does not exist")))?;
                    }
                }
                Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
            }
            Kind::View { what } => {
                if conn.tx().status() == TransactionStatus::Transaction {
                    notices.push(notice(
                        "NOTICE",
                        "00000",
                        "views are not transactional: this takes effect now, and ROLLBACK does not undo it",
                    ));
                }
                let unsupported = PgError::unsupported(format!("leadline does not support {what}"));
                Ok(Response::Execution(super::views::run(conn, sql, notices, unsupported).await?))
            }
            Kind::Unsupported { what } => {
                if conn.read_only {
                    Err(PgError::read_only(&what))
                } else {
                    Err(PgError::unsupported(format!("leadline does not support {what}")))
                }
            }
            Kind::Insert => {
                let tag = super::write::insert(&self.state, conn, sql, notices).await?;
                Ok(Response::Execution(tag))
            }
            Kind::Copy if super::write::is_copy_out(sql) => {
                notice_unseen(conn, notices);
                conn.refresh().await?;
                let out = super::write::parse_copy_out(sql)?;
                let p = guard.run(prepare(conn, &out.query)).await?;
                let names = p.names.clone();
                let values =
                    if out.format == CopyOutFormat::Binary { Format::UnifiedBinary } else { Format::UnifiedText };
                let mut resp = self.respond(conn, p, &values, guard).await?;
                let rows = std::mem::replace(resp.data_rows(), Box::pin(futures::stream::empty()));
                Ok(Response::CopyOut(super::write::copy_out(names, rows, out.format)))
            }
            Kind::Copy => super::write::start(conn, sql),
            Kind::Query => {
                notice_unseen(conn, notices);
                conn.refresh().await?;
                let p = guard.run(prepare(conn, sql)).await?;
                Ok(Response::Query(self.respond(conn, p, format, guard).await?))
            }
        }
    }

    async fn set(
        &self,
        conn: &Conn,
        name: &str,
        value: Option<String>,
        _notices: &mut Vec<ErrorInfo>,
    ) -> Result<(), PgError> {
        if name.starts_with("leadline.") || name.starts_with("datafusion.") {
            let v = value.unwrap_or_else(|| "default".into());
            if name.starts_with("datafusion.") && v == "default" {
                return Ok(());
            }
            let sql = format!("SET {name} = '{}'", v.replace('\'', "''"));
            conn.ctx.sql(&sql).await.map_err(|e| {
                // A data exception keeps its SQLSTATE (22007, 22015…); any other is a bad value.
                let (code, m, _) = PgError::from(e).parts();
                PgError::new(if code.starts_with("22") { code } else { "22023" }, m)
            })?;
            return Ok(());
        }
        let value = match (name, value) {
            (_, None) => super::default_vars(&self.state, &conn.user, "").get(name).cloned().unwrap_or_default(),
            ("statement_timeout", Some(v)) => parse_duration_ms(&v)
                .filter(|ms| *ms <= MAX_STATEMENT_TIMEOUT_MS)
                .ok_or_else(|| {
                    PgError::with_hint(
                        "22023",
                        format!("invalid value for parameter \"statement_timeout\": \"{v}\""),
                        format!("a number of milliseconds from 0 (none) to {MAX_STATEMENT_TIMEOUT_MS}, or with a unit: '5s', '2min'"),
                    )
                })?
                .to_string(),
            ("timezone", Some(v)) => {
                if super::encode::Zone::parse(&v).is_none() {
                    return Err(PgError::with_hint(
                        "22023",
                        format!("invalid value for parameter \"TimeZone\": \"{v}\""),
                        "use UTC or an IANA zone name such as 'Europe/Paris' or 'Etc/GMT-5'",
                    ));
                }
                v
            }
            (_, Some(v)) => v,
        };
        let reported =
            matches!(name, "timezone" | "datestyle" | "intervalstyle" | "application_name" | "client_encoding")
                .then(|| setting_name(name));
        if let Some(r) = reported
            && let Ok(mut owed) = conn.reported.lock()
        {
            owed.push((r.to_string(), value.clone()));
        }
        if let Ok(mut vars) = conn.vars.lock() {
            vars.insert(name.to_string(), value);
        }
        Ok(())
    }

    fn show(&self, conn: &Conn, name: &str) -> Result<Prepared, PgError> {
        let leadline_entries = || -> Vec<(String, Option<String>, String)> {
            use datafusion::common::config::ExtensionOptions;
            conn.ctx
                .state()
                .config_options()
                .extensions
                .get::<leadline_engine::LeadlineOptions>()
                .cloned()
                .unwrap_or_default()
                .entries()
                .into_iter()
                .filter(|e| e.key.starts_with("leadline."))
                .map(|e| (e.key.clone(), e.value.clone(), e.description.to_string()))
                .collect()
        };
        if name == "all" {
            let mut rows: Vec<Vec<Option<String>>> = conn
                .vars
                .lock()
                .map(|v| v.iter().map(|(k, v)| vec![Some(k.clone()), Some(v.clone()), None]).collect())
                .unwrap_or_default();
            for (k, v, d) in leadline_entries() {
                rows.push(vec![Some(k), Some(v.unwrap_or_default()), Some(d)]);
            }
            return text_batch(&["name", "setting", "description"], rows);
        }
        if name.starts_with("leadline.") {
            let v = leadline_entries().into_iter().find(|(k, _, _)| k == name);
            return match v {
                Some((_, v, _)) => text_batch(&[name], vec![vec![Some(v.unwrap_or_default())]]),
                None => Err(PgError::new("42704", format!("unrecognized configuration parameter \"{name}\""))),
            };
        }
        match conn.var(name) {
            Some(v) => text_batch(&[setting_name(name)], vec![vec![Some(v)]]),
            None => Err(PgError::new("42704", format!("unrecognized configuration parameter \"{name}\""))),
        }
    }

    async fn declare(&self, conn: &Conn, sql: &str, guard: &Guard) -> Result<(), PgError> {
        let (name, binary, query) = parse_declare(sql)?;
        conn.refresh().await?;
        let p = guard.run(prepare(conn, &query)).await?;
        let schema = Arc::new(Schema::new(
            p.names.iter().zip(&p.types).map(|(n, t)| t.as_ref().clone().with_name(n)).collect::<Vec<_>>(),
        ));
        let stream = source_stream(conn, p.source, guard).await?;
        if let Ok(mut d) = conn.declared.lock() {
            d.push((name.clone(), p.names.clone(), p.types.clone()));
        }
        let cursor = Cursor { names: p.names, types: p.types, schema, stream, pending: None, binary };
        conn.cursors.lock().await.insert(name, cursor);
        Ok(())
    }

    /// FETCH/MOVE: the next rows of a cursor.
    async fn fetch(&self, conn: &Conn, sql: &str, format: &Format, guard: Guard) -> Result<Response, PgError> {
        let (count, name, is_move) = parse_fetch(sql)?;
        let mut cursors = conn.cursors.lock().await;
        let cur =
            cursors.get_mut(&name).ok_or_else(|| PgError::new("34000", format!("cursor \"{name}\" does not exist")))?;
        let mut need = count;
        let mut out = Vec::new();
        while need > 0 {
            let batch = match cur.pending.take() {
                Some(b) => b,
                None => match guard.run(async { Ok(cur.stream.next().await) }).await? {
                    None => break,
                    Some(b) => b?,
                },
            };
            if batch.num_rows() > need {
                out.push(batch.slice(0, need));
                cur.pending = Some(batch.slice(need, batch.num_rows() - need));
                need = 0;
            } else {
                need -= batch.num_rows();
                out.push(batch);
            }
        }
        let n: usize = out.iter().map(|b| b.num_rows()).sum();
        if is_move {
            return Ok(Response::Execution(Tag::new("MOVE").with_rows(n)));
        }
        let format = if cur.binary { Format::UnifiedBinary } else { format.clone() };
        let p = Prepared {
            names: cur.names.clone(),
            types: cur.types.clone(),
            source: Source::Batches(cur.schema.clone(), out),
        };
        drop(cursors);
        let mut resp = self.respond(conn, p, &format, guard).await?;
        resp.set_command_tag("FETCH");
        Ok(Response::Query(resp))
    }

    /// Starts the rows of a prepared query streaming.
    async fn respond(&self, conn: &Conn, p: Prepared, format: &Format, guard: Guard) -> Result<QueryResponse, PgError> {
        let formats: Vec<FieldFormat> = (0..p.types.len()).map(|i| format.format_for(i)).collect();
        let row_fields = Arc::new(fields(&p.names, &p.types, |i| formats[i]));
        let zone = conn.var("timezone").and_then(|z| super::encode::Zone::parse(&z)).unwrap_or_default();
        let encoder = BatchEncoder::new(&row_fields, zone);
        let stream = source_stream(conn, p.source, &guard).await?;
        let tx = conn.tx.clone();
        let failed = move || tx.lock().unwrap_or_else(|p| p.into_inner()).fail();
        let mut resp = QueryResponse::new(row_fields, row_stream(stream, encoder, guard, failed));
        resp.set_command_tag("SELECT");
        Ok(resp)
    }
}

/// Rows of a result, encoded a batch at a time, stopping on cancel/timeout;
/// `failed` hears of an error (which fails a transaction block).
pub fn row_stream(
    stream: SendableRecordBatchStream,
    encoder: BatchEncoder,
    guard: Guard,
    failed: impl Fn() + Send + 'static,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send {
    struct St {
        stream: Option<SendableRecordBatchStream>,
        rows: std::vec::IntoIter<DataRow>,
        encoder: BatchEncoder,
        guard: Guard,
    }
    let st = St { stream: Some(stream), rows: Vec::new().into_iter(), encoder, guard };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(r) = st.rows.next() {
                return Some((Ok(r), st));
            }
            let s = st.stream.as_mut()?;
            let next = tokio::select! {
                b = s.next() => b,
                e = st.guard.stopped() => {
                    st.stream = None;
                    return Some((Err(PgWireError::from(e)), st));
                }
            };
            match next {
                None => return None,
                Some(Err(e)) => {
                    st.stream = None;
                    return Some((Err(PgWireError::from(PgError::from(e))), st));
                }
                Some(Ok(batch)) => {
                    if let Err(e) = st.guard.check() {
                        st.stream = None;
                        return Some((Err(e.into()), st));
                    }
                    let mut rows = Vec::with_capacity(batch.num_rows());
                    if let Err(e) = st.encoder.encode(&batch, &mut rows) {
                        st.stream = None;
                        return Some((Err(e.into()), st));
                    }
                    st.rows = rows.into_iter();
                }
            }
        }
    })
    .inspect(move |r| {
        if r.is_err() {
            failed();
        }
    })
}

/// `100`, `100ms`, `2s`, `1min`, `1h` → milliseconds.
pub fn parse_duration_ms(v: &str) -> Option<u64> {
    let v = v.trim().trim_matches('\'').trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.trim().parse().ok()?;
    let mult = match unit.trim() {
        "" | "ms" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000.0,
        "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        "us" => 0.001,
        _ => return None,
    };
    // `as` would saturate a huge value into a timeout that no Instant can hold.
    let ms = n * mult;
    (ms.is_finite() && ms < u64::MAX as f64).then_some(ms as u64)
}
