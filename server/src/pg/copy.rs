//! Writes over the wire: `INSERT INTO events (...) VALUES ...` and
//! `COPY events FROM STDIN`, both through the engine's one append path
//! (`Writer::append`: validated, idempotent, durable before the command tag
//! is sent). Rejected rows are reported as WARNINGs with their row/line and
//! reason, and kept in `rejected_events`.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use leadline_engine::event::{INPUT_FIELDS, RawRow, RawValue};
use leadline_engine::input::InputRow;
use leadline_engine::{AppendReport, Appender};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::api::{ClientInfo, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use datafusion::sql::sqlparser::ast::{self as ast, Expr, SetExpr, Statement, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::errors::PgError;
use super::query::QueryHandler;
use super::{Conn, ServerState};

/// COPY input above this size is refused (it is buffered before the append).
const MAX_COPY_BYTES: usize = 1 << 30;

/// A COPY FROM STDIN in progress.
#[derive(Debug)]
pub struct CopyIn {
    columns: Vec<String>,
    csv: bool,
    header: bool,
    delimiter: u8,
    data: Vec<u8>,
}

fn writable_columns() -> Vec<String> {
    INPUT_FIELDS[..13].iter().map(|s| s.to_string()).collect()
}

/// Appends rows through the server's writer (one append at a time).
async fn append(state: &Arc<ServerState>, source: String, rows: Vec<InputRow>) -> Result<AppendReport, PgError> {
    let mut guard = state.appender.lock().await;
    let dir = state.data_dir.clone();
    let result = tokio::task::block_in_place(|| -> Result<AppendReport, PgError> {
        if guard.is_none() {
            *guard = Some(Appender::open(&dir, "leadline serve")?);
        }
        let appender = guard.as_mut().ok_or_else(|| PgError::new("XX000", "writer unavailable"))?;
        let r = appender.append(&source, rows.into_iter().map(Ok), &mut |_| {});
        r.map_err(PgError::from)
    });
    // Keep the writer (and its lock) while appends keep coming, e.g. an
    // executemany; release it after a quiet second so `leadline ingest` can
    // take the lock between the server's appends.
    let generation = state.appends.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if result.is_err() {
        *guard = None;
    }
    drop(guard);
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let mut w = state.appender.lock().await;
        if state.appends.load(std::sync::atomic::Ordering::SeqCst) == generation {
            *w = None;
        }
    });
    result
}

fn report_notices(r: &AppendReport, what: &str, notices: &mut Vec<ErrorInfo>) {
    for rej in &r.first_rejections {
        notices.push(ErrorInfo::new(
            "WARNING".into(),
            "01000".into(),
            format!("{what} {}: {} ({})", rej.line, rej.reason, rej.kind.as_str()),
        ));
    }
    let total = r.rejected + r.conflicts;
    if total > r.first_rejections.len() as u64 {
        notices.push(ErrorInfo::new(
            "WARNING".into(),
            "01000".into(),
            format!("… and {} more rejected: SELECT * FROM rejected_events", total - r.first_rejections.len() as u64),
        ));
    }
    if total > 0 || r.duplicates > 0 {
        notices.push(ErrorInfo::new(
            "NOTICE".into(),
            "00000".into(),
            format!(
                "appended {}, duplicates {}, conflicts {}, rejected {}",
                r.appended, r.duplicates, r.conflicts, r.rejected
            ),
        ));
    }
}

fn target_table(name: &ast::ObjectName) -> String {
    name.0.last().map(|p| p.to_string().trim_matches('"').to_ascii_lowercase()).unwrap_or_default()
}

/// A VALUES expression as an input value.
fn raw_value(e: &Expr) -> Result<RawValue, String> {
    Ok(match e {
        Expr::Value(v) => match &v.value {
            Value::Null => RawValue::Null,
            Value::Boolean(b) => RawValue::Bool(*b),
            Value::Number(n, _) => match n.parse::<i64>() {
                Ok(i) => RawValue::Int(i),
                Err(_) => RawValue::Float(n.parse().map_err(|_| format!("bad number {n}"))?),
            },
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) | Value::NationalStringLiteral(s) => {
                RawValue::Text(s.clone())
            }
            Value::DollarQuotedString(d) => RawValue::Text(d.value.clone()),
            other => return Err(format!("unsupported value {other}")),
        },
        Expr::Cast { expr, .. } => raw_value(expr)?,
        Expr::Nested(e) => raw_value(e)?,
        Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => match raw_value(expr)? {
            RawValue::Int(i) => RawValue::Int(-i),
            RawValue::Float(f) => RawValue::Float(-f),
            other => return Err(format!("cannot negate {other:?}")),
        },
        Expr::Array(a) => RawValue::List(a.elem.iter().map(raw_value).collect::<Result<_, _>>()?),
        other => return Err(format!("only constant values can be inserted, not `{other}`")),
    })
}

/// `'{a,b}'` (an array parameter sent as text) → list of text.
fn pg_array_text(s: &str) -> Option<Vec<RawValue>> {
    let inner = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    if inner.trim().is_empty() {
        return Some(vec![]);
    }
    Some(
        inner
            .split(',')
            .map(|p| {
                let p = p.trim();
                if p.eq_ignore_ascii_case("null") {
                    RawValue::Null
                } else {
                    RawValue::Text(p.trim_matches('"').to_string())
                }
            })
            .collect(),
    )
}

fn raw_json(row: &RawRow) -> String {
    let obj: serde_json::Map<String, serde_json::Value> = row
        .iter()
        .map(|(k, v)| {
            let j = match v {
                RawValue::Null => serde_json::Value::Null,
                RawValue::Text(s) => serde_json::Value::String(s.clone()),
                RawValue::Int(i) => serde_json::Value::from(*i),
                RawValue::Float(f) => serde_json::Value::from(*f),
                RawValue::Bool(b) => serde_json::Value::Bool(*b),
                other => serde_json::Value::String(format!("{other:?}")),
            };
            (k.clone(), j)
        })
        .collect();
    serde_json::Value::Object(obj).to_string()
}

/// `INSERT INTO events (...) VALUES (...), ...`.
pub async fn insert<C: ClientInfo>(
    state: &Arc<ServerState>,
    conn: &Arc<Conn>,
    client: &C,
    sql: &str,
    notices: &mut Vec<ErrorInfo>,
) -> Result<Tag, PgError> {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql)?;
    let Some(Statement::Insert(ins)) = stmts.pop() else {
        return Err(PgError::syntax("expected one INSERT statement"));
    };
    let table = match &ins.table {
        ast::TableObject::TableName(n) => target_table(n),
        other => other.to_string(),
    };
    if conn.info.is_view(&table) {
        return Err(PgError::new("42809", format!("cannot insert into view \"{table}\": views are read-only")));
    }
    if table != "events" {
        return Err(PgError::with_hint(
            "42501",
            format!("cannot insert into \"{table}\": only events accepts rows"),
            "INSERT INTO events (event_id, event_type, occurred_at, service, …) VALUES …",
        ));
    }
    if conn.read_only {
        return Err(PgError::read_only("INSERT INTO events"));
    }
    let columns: Vec<String> = if ins.columns.is_empty() {
        leadline_engine::event::events_schema().fields().iter().map(|f| f.name().clone()).collect()
    } else {
        ins.columns.iter().map(|c| c.to_string().trim_matches('"').to_string()).collect()
    };
    let Some(source) = &ins.source else { return Err(PgError::unsupported("INSERT without VALUES")) };
    let SetExpr::Values(values) = source.body.as_ref() else {
        return Err(PgError::unsupported("INSERT … SELECT (insert constant VALUES, or use COPY events FROM STDIN)"));
    };
    let mut rows = Vec::with_capacity(values.rows.len());
    for (n, exprs) in values.rows.iter().enumerate() {
        let line = n as u64 + 1;
        if exprs.content.len() != columns.len() {
            return Err(PgError::syntax(format!(
                "VALUES row {line} has {} values for {} columns",
                exprs.content.len(),
                columns.len()
            )));
        }
        let mut row = RawRow::new();
        let mut err = None;
        for (c, e) in columns.iter().zip(&exprs.content) {
            match raw_value(e) {
                Ok(RawValue::Text(s)) if c == "change_ids" && s.trim_start().starts_with('{') => {
                    row.insert(c.clone(), pg_array_text(&s).map(RawValue::List).unwrap_or(RawValue::Text(s)));
                }
                Ok(v) => {
                    row.insert(c.clone(), v);
                }
                Err(m) => err = Some(format!("{c}: {m}")),
            }
        }
        let raw = raw_json(&row);
        rows.push(InputRow {
            line,
            raw,
            fields: match err {
                Some(m) => Err(m),
                None => Ok(row),
            },
        });
    }
    let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
    let report = append(state, format!("INSERT by {user}"), rows).await?;
    report_notices(&report, "row", notices);
    Ok(Tag::new("INSERT").with_oid(0).with_rows(report.appended as usize))
}

/// `COPY events [(cols)] FROM STDIN [WITH] (FORMAT csv, HEADER …)`.
pub fn start(conn: &Arc<Conn>, sql: &str) -> Result<Response, PgError> {
    let lower = sql.to_ascii_lowercase();
    let norm: String = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    let after = norm.strip_prefix("copy ").ok_or_else(|| PgError::syntax("expected COPY"))?;
    if !norm.contains(" from stdin") {
        return Err(PgError::unsupported("COPY other than COPY events FROM STDIN (to read, use SELECT)"));
    }
    let (target, _) = after.split_once(" from stdin").unwrap_or((after, ""));
    let (table, cols) = match target.split_once('(') {
        Some((t, c)) => (
            t.trim(),
            Some(
                c.trim_end_matches(')').split(',').map(|s| s.trim().trim_matches('"').to_string()).collect::<Vec<_>>(),
            ),
        ),
        None => (target.trim(), None),
    };
    let table = table.trim_matches('"');
    let table = table.rsplit('.').next().unwrap_or(table);
    if table != "events" {
        return Err(PgError::new("42501", format!("cannot COPY into \"{table}\": only events accepts rows")));
    }
    if conn.read_only {
        return Err(PgError::read_only("COPY events FROM STDIN"));
    }
    let opts = norm.split_once(" from stdin").map(|(_, o)| o).unwrap_or("");
    let (csv, header, delimiter) = copy_options(opts);
    let columns = cols.unwrap_or_else(writable_columns);
    if let Ok(mut c) = conn.copy.lock() {
        *c = Some(CopyIn { columns: columns.clone(), csv, header, delimiter, data: Vec::new() });
    }
    Ok(Response::CopyIn(CopyResponse::new(0, columns.len(), futures::stream::empty())))
}

/// COPY's `(FORMAT csv, HEADER, DELIMITER 'x')` options, from lower-cased
/// text: (csv, header, delimiter). Text format's delimiter is a tab.
fn copy_options(opts: &str) -> (bool, bool, u8) {
    let csv = opts.contains("csv");
    let header = opts
        .split(|c: char| !c.is_alphanumeric())
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == "header" && !matches!(w[1], "false" | "off" | "0"))
        || opts.trim_end().ends_with("header");
    let delimiter = opts
        .split_once("delimiter")
        .and_then(|(_, r)| r.trim_start().strip_prefix('\'').and_then(|r| r.bytes().next()))
        .unwrap_or(if csv { b',' } else { b'\t' });
    (csv, header, delimiter)
}

pub fn is_copy_out(sql: &str) -> bool {
    let norm: String = sql.to_ascii_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
    norm.contains(" to stdout")
}

/// `COPY table [(cols)] | (query) TO STDOUT [WITH] (…)` → (query, csv, header, delimiter).
pub fn parse_copy_out(sql: &str) -> Result<(String, bool, bool, u8), PgError> {
    let s = super::statement::strip_leading_comments(sql).trim().trim_end_matches(';');
    let lower = s.to_ascii_lowercase();
    let at = lower.rfind(" to stdout").ok_or_else(|| PgError::syntax("expected COPY … TO STDOUT"))?;
    let source = s[4..at].trim();
    let opts: String = lower[at + 10..].split_whitespace().collect::<Vec<_>>().join(" ");
    let query = if let Some(q) = source.strip_prefix('(') {
        q.strip_suffix(')').ok_or_else(|| PgError::syntax("unbalanced parentheses in COPY (query)"))?.to_string()
    } else {
        match source.split_once('(') {
            Some((t, cols)) => format!("SELECT {} FROM {}", cols.trim_end().trim_end_matches(')'), t.trim()),
            None => format!("SELECT * FROM {source}"),
        }
    };
    let (csv, header, delimiter) = copy_options(&opts);
    Ok((query, csv, header, delimiter))
}

/// Re-encodes text DataRows as COPY lines (text or CSV format).
pub fn copy_out(
    names: Vec<String>,
    rows: pgwire::api::results::SendableRowStream,
    csv: bool,
    header: bool,
    delimiter: u8,
) -> CopyResponse {
    use futures::StreamExt;
    let cols = names.len();
    let field = move |out: &mut Vec<u8>, v: Option<&[u8]>| match v {
        None if csv => {}
        None => out.extend_from_slice(b"\\N"),
        Some(b) if csv => {
            let quote = b.is_empty() || b.iter().any(|&c| c == delimiter || c == b'"' || c == b'\n' || c == b'\r');
            if quote {
                out.push(b'"');
                for &c in b {
                    if c == b'"' {
                        out.push(b'"');
                    }
                    out.push(c);
                }
                out.push(b'"');
            } else {
                out.extend_from_slice(b);
            }
        }
        Some(b) => {
            for &c in b {
                match c {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    c if c == delimiter => {
                        out.push(b'\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
        }
    };
    let mut head = if header {
        let mut h = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                h.push(delimiter);
            }
            field(&mut h, Some(n.as_bytes()));
        }
        h.push(b'\n');
        Some(h)
    } else {
        None
    };
    let body = rows.map(move |r| {
        let row = r?;
        let mut out = head.take().unwrap_or_default();
        let d = &row.data[..];
        let mut at = 0;
        for i in 0..row.field_count as usize {
            if i > 0 {
                out.push(delimiter);
            }
            let len = d.get(at..at + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(-1);
            at += 4;
            if len < 0 {
                field(&mut out, None);
            } else {
                let end = (at + len as usize).min(d.len());
                field(&mut out, Some(&d[at..end]));
                at = end;
            }
        }
        out.push(b'\n');
        Ok(CopyData::new(bytes::Bytes::from(out)))
    });
    CopyResponse::new(0, cols, body)
}

/// The COPY input as CSV with a header row (what `ingest::csv_rows` reads).
fn as_csv(c: &CopyIn) -> Vec<u8> {
    let mut out = Vec::with_capacity(c.data.len() + 256);
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(&mut out);
    let _ = w.write_record(&c.columns);
    let _ = w.flush();
    drop(w);
    let body: &[u8] = &c.data;
    // Drop the client's `\.` end marker line if present.
    let text = String::from_utf8_lossy(body);
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.last().is_some_and(|l| l.trim_end() == "\\.") {
        lines.pop();
    }
    let mut skip_header = c.header;
    if c.csv && c.delimiter == b',' {
        for l in lines {
            if skip_header {
                skip_header = false;
                continue;
            }
            out.extend_from_slice(l.as_bytes());
        }
        return out;
    }
    // Text format (or another delimiter): re-encode each line as CSV.
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(out);
    let delim = c.delimiter as char;
    for l in lines {
        if skip_header {
            skip_header = false;
            continue;
        }
        let l = l.trim_end_matches(['\n', '\r']);
        let fields: Vec<String> = if c.csv {
            let mut r = csv::ReaderBuilder::new().has_headers(false).delimiter(c.delimiter).from_reader(l.as_bytes());
            r.records().next().and_then(|r| r.ok()).map(|r| r.iter().map(String::from).collect()).unwrap_or_default()
        } else {
            l.split(delim)
                .map(|f| {
                    if f == "\\N" {
                        String::new()
                    } else {
                        f.replace("\\t", "\t").replace("\\n", "\n").replace("\\\\", "\\")
                    }
                })
                .collect()
        };
        let _ = w.write_record(&fields);
    }
    w.into_inner().unwrap_or_default()
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
        let mut guard = conn.copy.lock().map_err(|_| PgError::new("XX000", "COPY state lost"))?;
        if let Some(c) = guard.as_mut() {
            if c.data.len() + data.data.len() > MAX_COPY_BYTES {
                *guard = None;
                return Err(PgError::new("54000", "COPY input over 1 GiB: split it into several COPY commands").into());
            }
            c.data.extend_from_slice(&data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = super::conn(&self.state, client).await?;
        let copy = conn.copy.lock().map_err(|_| PgError::new("XX000", "COPY state lost"))?.take();
        let Some(copy) = copy else { return Err(PgError::new("08P01", "no COPY in progress").into()) };
        let csv_bytes = as_csv(&copy);
        let rows: Vec<InputRow> = leadline_engine::input::csv_rows(std::io::Cursor::new(csv_bytes))
            .map_err(PgError::from)?
            .map(|r| {
                r.map(|mut row| {
                    // Line numbers of the client's data (our header is line 1).
                    row.line = row.line.saturating_sub(1) + u64::from(copy.header);
                    row
                })
            })
            .collect::<Result<_, _>>()
            .map_err(PgError::from)?;
        let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        let report = append(&self.state, format!("COPY by {user}"), rows).await?;
        let mut notices = Vec::new();
        report_notices(&report, "line", &mut notices);
        for n in notices {
            client.feed(PgWireBackendMessage::NoticeResponse(n.into())).await?;
        }
        client
            .send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(report.appended as usize).into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(c) = client.session_extensions().get::<Conn>()
            && let Ok(mut g) = c.copy.lock()
        {
            *g = None;
        }
        PgError::new("57014", format!("COPY from stdin failed: {}", fail.message)).into()
    }
}
