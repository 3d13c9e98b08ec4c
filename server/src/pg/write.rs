//! Writes over the wire: `INSERT INTO events (...) VALUES ...` and
//! `COPY events FROM STDIN`, both through the engine's one append path
//! (`Appender::append`: validated, idempotent, durable before the command tag
//! is sent). In a transaction block the rows are validated at once and held
//! by the session's `Transaction` until COMMIT appends them all as one
//! commit. Rejected rows are reported as WARNINGs with their row/line and
//! reason, and kept in `rejected_events`. COPY data is decoded as it arrives
//! by the engine's [`CopyDecoder`]; this module parses the statement and
//! moves the bytes.

use std::fmt::Debug;
use std::sync::Arc;

use leadline_engine::AppendReport;
use leadline_engine::event::{Event, RawRow, RawValue, RejectionKind, events_schema, raw_row_json};
use leadline_engine::input::copy::{CopyColumns, CopyDecoder, CopyFormat, CopyHeader, CopyOptions};
use leadline_engine::input::{InputRow, text_value};
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::error::ErrorInfo;
use pgwire::messages::copy::CopyData;

use datafusion::sql::sqlparser::ast::{self as ast, Expr, SetExpr, Statement, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{IsOptional, Parser};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::errors::PgError;
use super::transaction::Held;
use super::{Conn, ServerState};

/// Rejected rows reported one by one; the rest are counted.
const REPORTED_REJECTIONS: usize = 20;

/// A COPY FROM STDIN in progress: the decoder and the rows it has completed.
#[derive(Debug)]
pub struct CopyIn {
    decoder: CopyDecoder,
    rows: Vec<InputRow>,
    bytes: usize,
}

/// The columns of `events` in order: what INSERT and COPY without a column
/// list write (`ingested_at` is accepted and ignored).
fn table_columns() -> Vec<String> {
    events_schema().fields().iter().map(|f| f.name().clone()).collect()
}

/// Appends inputs (source, rows) as one commit through the server's writer
/// (which may commit other sessions' appends with them: group commit).
async fn append(state: &Arc<ServerState>, source: &str, inputs: Vec<Held>) -> Result<AppendReport, PgError> {
    let inputs = inputs.into_iter().map(|h| (h.source, h.rows)).collect();
    state.writer.append(source, inputs).await.map_err(PgError::from)
}

/// What a source's rows are numbered by.
fn unit(source: &str) -> &'static str {
    if source.starts_with("COPY") { "line" } else { "row" }
}

/// A WARNING for one rejected row; `named`: with its source, when the rows
/// of several statements are reported together (at COMMIT).
fn rejection_warning(
    source: &str,
    named: bool,
    line: u64,
    reason: &str,
    kind: RejectionKind,
    notices: &mut Vec<ErrorInfo>,
) {
    let at = format!("{} {line}", unit(source));
    let at = if named { format!("{source}, {at}") } else { at };
    notices.push(ErrorInfo::new("WARNING".into(), "01000".into(), format!("{at}: {reason} ({})", kind.as_str())));
}

/// The count of rejected rows beyond those reported one by one.
fn more_rejected(more: u64, held: bool, notices: &mut Vec<ErrorInfo>) {
    if more > 0 {
        let kept = if held { "kept in rejected_events at COMMIT" } else { "SELECT * FROM rejected_events" };
        notices.push(ErrorInfo::new("WARNING".into(), "01000".into(), format!("… and {more} more rejected: {kept}")));
    }
}

/// The warnings and counts of an append. At COMMIT the invalid rows were
/// reported by their statements: only conflicts are, each named by its
/// statement.
fn report_notices(r: &AppendReport, at_commit: bool, notices: &mut Vec<ErrorInfo>) {
    let mut shown = 0;
    for rej in r.first_rejections.iter().filter(|rej| !at_commit || rej.kind == RejectionKind::Conflict) {
        rejection_warning(&rej.source, at_commit, rej.line, &rej.reason, rej.kind, notices);
        shown += 1;
    }
    let unreported = if at_commit { r.conflicts } else { r.rejected + r.conflicts };
    more_rejected(unreported.saturating_sub(shown), false, notices);
    if r.rejected + r.conflicts > 0 || r.duplicates > 0 {
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

/// One statement's rows: appended at once outside a transaction block; in
/// one, validated now (invalid rows are reported at the statement, and
/// quarantined at COMMIT) and held until COMMIT. Returns how many rows were
/// appended, or are held valid.
async fn store(
    state: &Arc<ServerState>,
    conn: &Conn,
    source: String,
    rows: Vec<InputRow>,
    bytes: usize,
    notices: &mut Vec<ErrorInfo>,
) -> Result<u64, PgError> {
    if !conn.tx().in_block() {
        let commit_source = source.clone();
        let report = append(state, &commit_source, vec![Held { source, rows }]).await?;
        report_notices(&report, false, notices);
        return Ok(report.appended);
    }
    let mut invalid = 0u64;
    for row in &rows {
        let reason = match &row.fields {
            Ok(fields) => Event::from_raw(fields).err(),
            Err(reason) => Some(reason.clone()),
        };
        if let Some(reason) = reason {
            invalid += 1;
            if invalid <= REPORTED_REJECTIONS as u64 {
                rejection_warning(&source, false, row.line, &reason, RejectionKind::Invalid, notices);
            }
        }
    }
    more_rejected(invalid.saturating_sub(REPORTED_REJECTIONS as u64), true, notices);
    let valid = rows.len() as u64 - invalid;
    conn.tx().hold(Held { source, rows }, bytes)?;
    Ok(valid)
}

/// COMMIT: the block's rows, appended as one commit.
pub async fn commit(
    state: &Arc<ServerState>,
    conn: &Conn,
    held: Vec<Held>,
    notices: &mut Vec<ErrorInfo>,
) -> Result<(), PgError> {
    if held.iter().all(|h| h.rows.is_empty()) {
        return Ok(());
    }
    let report = append(state, &format!("{} statements in transaction by {}", held.len(), conn.user), held).await?;
    report_notices(&report, true, notices);
    Ok(())
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
            _ => return Err("only a number can be negated".into()),
        },
        Expr::Array(a) => RawValue::List(a.elem.iter().map(raw_value).collect::<Result<_, _>>()?),
        other => return Err(format!("only constant values can be inserted, not `{other}`")),
    })
}

/// `INSERT INTO events (...) VALUES (...), ...`.
pub async fn insert(
    state: &Arc<ServerState>,
    conn: &Arc<Conn>,
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
    let Some(source) = &ins.source else { return Err(PgError::unsupported("INSERT without VALUES")) };
    let SetExpr::Values(values) = source.body.as_ref() else {
        return Err(PgError::unsupported("INSERT … SELECT (insert constant VALUES, or use COPY events FROM STDIN)"));
    };
    let width = values.rows.first().map_or(0, |r| r.content.len());
    if values.rows.iter().any(|r| r.content.len() != width) {
        return Err(PgError::syntax("VALUES lists must all be the same length"));
    }
    let columns: Vec<String> = if ins.columns.is_empty() {
        // As PostgreSQL: fewer values than columns fill the first columns.
        let mut columns = table_columns();
        if width > columns.len() {
            return Err(PgError::syntax("INSERT has more expressions than target columns"));
        }
        columns.truncate(width);
        columns
    } else {
        let columns: Vec<String> = ins.columns.iter().map(|c| c.to_string().trim_matches('"').to_string()).collect();
        if width > columns.len() {
            return Err(PgError::syntax("INSERT has more expressions than target columns"));
        }
        if width < columns.len() {
            return Err(PgError::syntax("INSERT has more target columns than expressions"));
        }
        columns
    };
    let schema = events_schema();
    let mut rows = Vec::with_capacity(values.rows.len());
    for (n, exprs) in values.rows.iter().enumerate() {
        let line = n as u64 + 1;
        let mut row = RawRow::new();
        let mut err = None;
        for (c, e) in columns.iter().zip(&exprs.content) {
            // A string is the column's text form (an array literal for change_ids).
            let value = raw_value(e).and_then(|v| match (v, schema.field_with_name(c)) {
                (RawValue::Text(s), Ok(field)) => text_value(field.data_type(), s),
                (v, _) => Ok(v),
            });
            match value {
                Ok(v) => {
                    row.insert(c.clone(), v);
                }
                Err(m) => err = Some(format!("{c}: {m}")),
            }
        }
        let raw = raw_row_json(&row);
        rows.push(InputRow {
            line,
            raw,
            fields: match err {
                Some(m) => Err(m),
                None => Ok(row),
            },
        });
    }
    let bytes = rows.iter().map(|r| r.raw.len()).sum();
    let stored = store(state, conn, format!("INSERT by {}", conn.user), rows, bytes, notices).await?;
    Ok(Tag::new("INSERT").with_oid(0).with_rows(stored as usize))
}

/// `COPY events [(cols)] FROM STDIN [[WITH] (options) | legacy options]`:
/// checks the statement and starts the COPY; its data goes to a [`CopyDecoder`].
pub fn start(conn: &Arc<Conn>, sql: &str) -> Result<Response, PgError> {
    let copy = parse_copy_from(sql)?;
    if copy.table != "events" {
        return Err(PgError::new("42501", format!("cannot COPY into \"{}\": only events accepts rows", copy.table)));
    }
    if conn.read_only {
        return Err(PgError::read_only("COPY events FROM STDIN"));
    }
    let columns = copy.columns.unwrap_or_else(table_columns);
    let decoder = CopyDecoder::new(&copy.options, &columns)?;
    let format = if copy.options.format == CopyFormat::Binary { 1 } else { 0 };
    *copy_in(conn) = Some(CopyIn { decoder, rows: Vec::new(), bytes: 0 });
    Ok(Response::CopyIn(CopyResponse::new(format, columns.len(), futures::stream::empty())))
}

/// A parsed `COPY … FROM STDIN`.
struct CopyFrom {
    table: String,
    columns: Option<Vec<String>>,
    options: CopyOptions,
}

/// The argument of a COPY option, as PostgreSQL's grammar allows it.
enum OptionArg {
    None,
    /// A word, number or string literal.
    Text(String),
    Star,
    Columns(Vec<String>),
}

/// An identifier as PostgreSQL names it: folded to lower case unless quoted.
fn ident_name(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

fn parse_copy_from(sql: &str) -> Result<CopyFrom, PgError> {
    let dialect = PostgreSqlDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql)?;
    p.expect_keyword_is(Keyword::COPY)?;
    let writes_out =
        || PgError::unsupported("COPY … TO a file or program (COPY … TO STDOUT sends the rows to the client)");
    if p.peek_token().token == Token::LParen {
        return Err(writes_out());
    }
    let table = target_table(&p.parse_object_name(false)?);
    let columns = p.parse_parenthesized_column_list(IsOptional::Optional, false)?;
    let columns = (!columns.is_empty()).then(|| columns.iter().map(ident_name).collect());
    if p.parse_keyword(Keyword::TO) {
        return Err(writes_out());
    }
    p.expect_keyword_is(Keyword::FROM)?;
    if !p.parse_keyword(Keyword::STDIN) {
        return Err(PgError::unsupported(
            "COPY FROM a file or program: the server reads COPY data from STDIN only (psql's \\copy sends a file that way)",
        ));
    }
    let _ = p.parse_keyword(Keyword::WITH);
    let options = if p.consume_token(&Token::LParen) { generic_options(&mut p)? } else { legacy_options(&mut p)? };
    if p.parse_keyword(Keyword::WHERE) {
        return Err(PgError::unsupported("COPY FROM … WHERE (filter the rows before sending them)"));
    }
    while p.consume_token(&Token::SemiColon) {}
    let next = p.next_token();
    if next.token != Token::EOF {
        return Err(PgError::syntax(format!("syntax error at or near \"{next}\" in COPY")));
    }
    Ok(CopyFrom { table, columns, options: copy_from_options(options)? })
}

/// `( name [arg], … )`, after the opening parenthesis.
fn generic_options(p: &mut Parser) -> Result<Vec<(String, OptionArg)>, PgError> {
    let mut options = Vec::new();
    loop {
        let name = match p.next_token().token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_lowercase(),
            Token::Word(w) => w.value,
            other => return Err(PgError::syntax(format!("expected a COPY option name, found \"{other}\""))),
        };
        let arg = match p.peek_token().token {
            Token::Comma | Token::RParen => OptionArg::None,
            Token::Mul => {
                p.next_token();
                OptionArg::Star
            }
            Token::LParen => OptionArg::Columns(
                p.parse_parenthesized_column_list(IsOptional::Mandatory, false)?.iter().map(ident_name).collect(),
            ),
            Token::Word(w) if w.quote_style.is_none() => {
                p.next_token();
                OptionArg::Text(w.value.to_lowercase())
            }
            Token::Number(n, _) => {
                p.next_token();
                OptionArg::Text(n)
            }
            _ => OptionArg::Text(p.parse_literal_string()?),
        };
        options.push((name, arg));
        if !p.consume_token(&Token::Comma) {
            p.expect_token(&Token::RParen)?;
            return Ok(options);
        }
    }
}

/// The pre-9.0 syntax psql's `\copy … with csv header` still sends:
/// `BINARY`, `CSV`, `HEADER`, `DELIMITER [AS] 'x'`, `NULL [AS] 'x'`,
/// `QUOTE [AS] 'x'`, `ESCAPE [AS] 'x'`, `FORCE [NOT] NULL|QUOTE columns`,
/// `ENCODING 'x'`, `FREEZE`.
fn legacy_options(p: &mut Parser) -> Result<Vec<(String, OptionArg)>, PgError> {
    let mut options = Vec::new();
    loop {
        let Token::Word(w) = p.peek_token().token else { return Ok(options) };
        let word = w.value.to_lowercase();
        let string = |p: &mut Parser| -> Result<OptionArg, PgError> {
            let _ = p.parse_keyword(Keyword::AS);
            Ok(OptionArg::Text(p.parse_literal_string()?))
        };
        let columns = |p: &mut Parser| -> Result<OptionArg, PgError> {
            if p.consume_token(&Token::Mul) {
                return Ok(OptionArg::Star);
            }
            Ok(OptionArg::Columns(p.parse_comma_separated(|p| p.parse_identifier())?.iter().map(ident_name).collect()))
        };
        let option = match word.as_str() {
            "binary" | "csv" => {
                p.next_token();
                ("format".to_string(), OptionArg::Text(word))
            }
            "header" | "freeze" => {
                p.next_token();
                (word, OptionArg::None)
            }
            "delimiter" | "null" | "quote" | "escape" | "encoding" => {
                p.next_token();
                (word, string(p)?)
            }
            "force" => {
                p.next_token();
                let name = if p.parse_keyword(Keyword::QUOTE) {
                    "force_quote"
                } else if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                    "force_not_null"
                } else {
                    p.expect_keyword_is(Keyword::NULL)?;
                    "force_null"
                };
                (name.to_string(), columns(p)?)
            }
            _ => return Ok(options),
        };
        options.push(option);
    }
}

/// COPY FROM's options by name, as PostgreSQL's ProcessCopyOptions reads
/// them; the decoder checks how they combine.
fn copy_from_options(given: Vec<(String, OptionArg)>) -> Result<CopyOptions, PgError> {
    let mut options = CopyOptions::default();
    let mut seen = std::collections::HashSet::new();
    for (name, arg) in given {
        if !seen.insert(name.clone()) {
            return Err(PgError::syntax("conflicting or redundant options"));
        }
        let text = |arg: OptionArg| match arg {
            OptionArg::Text(s) => Ok(s),
            OptionArg::None => Err(PgError::syntax(format!("{name} requires a parameter"))),
            _ => Err(PgError::new("22023", format!("{name} requires a string value"))),
        };
        match name.as_str() {
            "format" => {
                options.format = match text(arg)?.to_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => return Err(PgError::new("22023", format!("COPY format \"{other}\" not recognized"))),
                }
            }
            "header" => {
                options.header = match arg {
                    OptionArg::None => CopyHeader::Skip,
                    OptionArg::Text(s) if s.eq_ignore_ascii_case("match") => CopyHeader::Match,
                    OptionArg::Text(s) if boolean(&s) == Some(true) => CopyHeader::Skip,
                    OptionArg::Text(s) if boolean(&s) == Some(false) => CopyHeader::Absent,
                    _ => return Err(PgError::new("22023", "header requires a Boolean value or \"match\"")),
                }
            }
            "freeze" => match arg {
                OptionArg::Text(s) if boolean(&s) == Some(false) => {}
                OptionArg::None | OptionArg::Text(_) => {
                    return Err(PgError::unsupported("COPY FREEZE (leadline does not freeze rows)"));
                }
                _ => return Err(PgError::new("22023", "freeze requires a Boolean value")),
            },
            "delimiter" => options.delimiter = Some(text(arg)?),
            "null" => options.null = Some(text(arg)?),
            "quote" => options.quote = Some(text(arg)?),
            "escape" => options.escape = Some(text(arg)?),
            "encoding" => options.encoding = Some(text(arg)?),
            "force_not_null" | "force_null" => {
                let columns = match arg {
                    OptionArg::Star => CopyColumns::All,
                    OptionArg::Columns(c) => CopyColumns::Named(c),
                    _ => {
                        return Err(PgError::new(
                            "22023",
                            format!("argument to option \"{name}\" must be a list of column names"),
                        ));
                    }
                };
                if name == "force_null" {
                    options.force_null = Some(columns);
                } else {
                    options.force_not_null = Some(columns);
                }
            }
            "force_quote" => return Err(PgError::unsupported("COPY FORCE_QUOTE only available using COPY TO")),
            "default" | "on_error" | "reject_limit" | "log_verbosity" => {
                return Err(PgError::unsupported(format!(
                    "COPY option {name} (rows leadline cannot take are rejected one by one and kept in rejected_events)"
                )));
            }
            _ => return Err(PgError::syntax(format!("option \"{name}\" not recognized"))),
        }
    }
    Ok(options)
}

/// A Boolean option value as PostgreSQL spells it.
fn boolean(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "on" | "1" => Some(true),
        "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// COPY's `(FORMAT csv, HEADER, DELIMITER 'x')` options, from lower-cased
/// text: (csv, header, delimiter). Text format's delimiter is a tab.
pub fn is_copy_out(sql: &str) -> bool {
    let norm: String = sql.to_ascii_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
    norm.contains(" to stdout")
}

/// A `COPY … TO STDOUT`: the query whose rows are sent, and how.
#[derive(Debug, PartialEq)]
pub struct CopyOut {
    pub query: String,
    pub format: CopyOutFormat,
}

/// The format COPY TO answers in: always the one asked for.
#[derive(Debug, PartialEq)]
pub enum CopyOutFormat {
    Text {
        delimiter: u8,
        null: String,
        header: bool,
    },
    Csv {
        delimiter: u8,
        null: String,
        header: bool,
    },
    /// PostgreSQL's binary COPY: PGCOPY framing around each row's values in
    /// their binary send format (the same encoding as binary results).
    Binary,
}

/// `COPY table [(cols)] | (query) TO STDOUT [[WITH] (options) | legacy options]`.
pub fn parse_copy_out(sql: &str) -> Result<CopyOut, PgError> {
    let dialect = PostgreSqlDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql)?;
    p.expect_keyword_is(Keyword::COPY)?;
    let query = if p.consume_token(&Token::LParen) {
        let q = p.parse_query()?;
        p.expect_token(&Token::RParen)?;
        q.to_string()
    } else {
        let table = p.parse_object_name(false)?;
        let columns = p.parse_parenthesized_column_list(IsOptional::Optional, false)?;
        let list = if columns.is_empty() {
            "*".to_string()
        } else {
            columns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        format!("SELECT {list} FROM {table}")
    };
    p.expect_keyword_is(Keyword::TO)?;
    if !p.parse_keyword(Keyword::STDOUT) {
        return Err(PgError::unsupported(
            "COPY … TO a file or program (COPY … TO STDOUT sends the rows to the client)",
        ));
    }
    let _ = p.parse_keyword(Keyword::WITH);
    let options = if p.consume_token(&Token::LParen) { generic_options(&mut p)? } else { legacy_options(&mut p)? };
    while p.consume_token(&Token::SemiColon) {}
    let next = p.next_token();
    if next.token != Token::EOF {
        return Err(PgError::syntax(format!("syntax error at or near \"{next}\" in COPY")));
    }
    Ok(CopyOut { query, format: copy_out_format(copy_from_options(options)?)? })
}

/// The options COPY TO can honour; the others are refused, never ignored.
fn copy_out_format(o: CopyOptions) -> Result<CopyOutFormat, PgError> {
    if o.quote.is_some() || o.escape.is_some() || o.force_null.is_some() || o.force_not_null.is_some() {
        return Err(PgError::unsupported("COPY TO with QUOTE, ESCAPE or FORCE options"));
    }
    if o.encoding.as_deref().is_some_and(|e| !e.eq_ignore_ascii_case("utf8") && !e.eq_ignore_ascii_case("utf-8")) {
        return Err(PgError::unsupported("COPY TO in an encoding other than UTF8"));
    }
    let header = match o.header {
        CopyHeader::Absent => false,
        CopyHeader::Skip => true,
        CopyHeader::Match => return Err(PgError::new("0A000", "cannot use \"match\" with HEADER in COPY TO")),
    };
    let delimiter = |default: u8| match o.delimiter.as_deref() {
        None => Ok(default),
        Some(d) if d.len() == 1 && !matches!(d.as_bytes()[0], b'\n' | b'\r' | b'\\') => Ok(d.as_bytes()[0]),
        Some(_) => {
            Err(PgError::new("22023", "COPY delimiter must be a single one-byte character other than \\, CR or LF"))
        }
    };
    Ok(match o.format {
        CopyFormat::Text => {
            CopyOutFormat::Text { delimiter: delimiter(b'\t')?, null: o.null.unwrap_or("\\N".into()), header }
        }
        CopyFormat::Csv => CopyOutFormat::Csv { delimiter: delimiter(b',')?, null: o.null.unwrap_or_default(), header },
        CopyFormat::Binary => {
            for (given, name) in [(o.delimiter.is_some(), "DELIMITER"), (o.null.is_some(), "NULL"), (header, "HEADER")]
            {
                if given {
                    return Err(PgError::syntax(format!("cannot specify {name} in BINARY mode")));
                }
            }
            CopyOutFormat::Binary
        }
    })
}

/// The rows of a COPY TO as CopyData messages: `rows` are DataRows in text
/// format for text and CSV, in binary format for binary.
pub fn copy_out(
    names: Vec<String>,
    rows: pgwire::api::results::SendableRowStream,
    format: CopyOutFormat,
) -> CopyResponse {
    use futures::StreamExt;
    let cols = names.len();
    let (csv, delimiter, null, header) = match format {
        CopyOutFormat::Binary => return binary_copy_out(cols, rows),
        CopyOutFormat::Text { delimiter, null, header } => (false, delimiter, null, header),
        CopyOutFormat::Csv { delimiter, null, header } => (true, delimiter, null, header),
    };
    let field = move |out: &mut Vec<u8>, v: Option<&[u8]>| match v {
        None => out.extend_from_slice(null.as_bytes()),
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

/// PGCOPY: the signature, no flags, no header extension; per row the field
/// count and each value as (length, bytes) — a binary DataRow's own layout —
/// and a trailer of -1. The header travels with the first row (or the
/// trailer), as PostgreSQL sends it: clients parse it as part of a row.
fn binary_copy_out(cols: usize, rows: pgwire::api::results::SendableRowStream) -> CopyResponse {
    use futures::StreamExt;
    let mut header = b"PGCOPY\n\xff\r\n\0".to_vec();
    header.extend_from_slice(&0i32.to_be_bytes());
    header.extend_from_slice(&0i32.to_be_bytes());
    let framed = futures::stream::unfold((rows, Some(header), false), |(mut rows, mut head, ended)| async move {
        if ended {
            return None;
        }
        let mut out = head.take().unwrap_or_default();
        match rows.next().await {
            Some(Ok(row)) => {
                out.extend_from_slice(&row.field_count.to_be_bytes());
                out.extend_from_slice(&row.data);
                Some((Ok(CopyData::new(bytes::Bytes::from(out))), (rows, None, false)))
            }
            Some(Err(e)) => Some((Err(e), (rows, None, true))),
            None => {
                out.extend_from_slice(&(-1i16).to_be_bytes());
                Some((Ok(CopyData::new(bytes::Bytes::from(out))), (rows, None, true)))
            }
        }
    });
    // pgwire would append a trailer of its own as a message apart, which
    // clients reject after an empty result: the stream is ours whole.
    let mut response = CopyResponse::new(1, cols, futures::stream::empty());
    *response.data_stream() = Box::pin(framed);
    response
}

/// One CopyData message of a COPY FROM STDIN in progress: decoded at once,
/// its complete rows kept for CopyDone.
pub fn copy_data(conn: &Conn, data: &[u8]) -> Result<(), PgError> {
    let room = conn.tx().room();
    let mut guard = copy_in(conn);
    let Some(c) = guard.as_mut() else { return Ok(()) };
    c.bytes += data.len();
    if c.bytes > room {
        *guard = None;
        return Err(conn.tx().over_limit());
    }
    if let Err(e) = c.decoder.push(data, &mut c.rows) {
        *guard = None;
        return Err(PgError::from(e));
    }
    Ok(())
}

/// CopyDone: the rows are appended as one commit, or held by the block.
/// Returns how many were appended (or held valid) and the warnings about
/// rejected ones.
pub async fn copy_done(state: &Arc<ServerState>, conn: &Conn) -> Result<(u64, Vec<ErrorInfo>), PgError> {
    let copy = copy_in(conn).take();
    let Some(CopyIn { mut decoder, mut rows, bytes }) = copy else {
        return Err(PgError::new("08P01", "no COPY in progress"));
    };
    decoder.finish(&mut rows).map_err(PgError::from)?;
    let mut notices = Vec::new();
    let stored = store(state, conn, format!("COPY by {}", conn.user), rows, bytes, &mut notices).await?;
    Ok((stored, notices))
}

/// CopyFail, the client gone or a bug (a panic) while it ran: the COPY is
/// dropped.
pub fn copy_abandoned(conn: &Conn) {
    *copy_in(conn) = None;
}

/// The session's COPY in progress. A panic while it was locked (a bug, that
/// the guard answered) leaves it usable: the guard abandons that COPY.
fn copy_in(conn: &Conn) -> std::sync::MutexGuard<'_, Option<CopyIn>> {
    conn.copy.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> CopyFrom {
        parse_copy_from(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    fn code(sql: &str) -> &'static str {
        parse_copy_from(sql).err().map_or("ok", |e| e.parts().0)
    }

    #[test]
    fn copy_to_statements_answer_in_the_format_asked() {
        let out = |sql: &str| parse_copy_out(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let text = CopyOutFormat::Text { delimiter: b'\t', null: "\\N".into(), header: false };
        assert_eq!(out("COPY events TO STDOUT"), CopyOut { query: "SELECT * FROM events".into(), format: text });
        let c = out("copy (select 'a TO STDOUT b' as x) to stdout (format binary);");
        assert_eq!(c, CopyOut { query: "SELECT 'a TO STDOUT b' AS x".into(), format: CopyOutFormat::Binary });
        assert_eq!(out("COPY events (service, team) TO STDOUT WITH BINARY").query, "SELECT service, team FROM events");
        assert_eq!(
            out("COPY events TO STDOUT (FORMAT csv, HEADER true, DELIMITER ';', NULL 'NULL')").format,
            CopyOutFormat::Csv { delimiter: b';', null: "NULL".into(), header: true }
        );
        assert_eq!(
            out("COPY events TO STDOUT WITH CSV HEADER").format,
            CopyOutFormat::Csv { delimiter: b',', null: String::new(), header: true }
        );
        let code = |sql: &str| parse_copy_out(sql).err().map_or("ok", |e| e.parts().0);
        assert_eq!(code("COPY events TO STDOUT (FORMAT xml)"), "22023");
        assert_eq!(code("COPY events TO STDOUT (FORMAT binary, HEADER)"), "42601");
        assert_eq!(code("COPY events TO STDOUT (FORMAT binary, NULL 'x')"), "42601");
        assert_eq!(code("COPY events TO STDOUT (DELIMITER '||')"), "22023");
        assert_eq!(code("COPY events TO STDOUT (HEADER MATCH)"), "0A000");
        assert_eq!(code("COPY events TO STDOUT (FORCE_QUOTE *)"), "0A000");
        assert_eq!(code("COPY events TO '/tmp/x'"), "0A000");
        assert_eq!(code("COPY events TO STDOUT (FORMAT csv) trailing"), "42601");
    }

    #[test]
    fn copy_from_statements() {
        let c = parsed("copy public.Events (Event_ID, \"team\") from stdin;");
        assert_eq!(c.table, "events");
        assert_eq!(c.columns, Some(vec!["event_id".to_string(), "team".to_string()]));
        assert_eq!(c.options, CopyOptions::default());
        let c = parsed(
            "COPY events FROM STDIN WITH (FORMAT 'csv', HEADER MATCH, DELIMITER E'\\t', NULL 'NA', QUOTE '''', \
             ESCAPE '\\', FORCE_NULL (team), FORCE_NOT_NULL *, ENCODING 'UTF8', FREEZE false)",
        );
        assert_eq!(c.columns, None);
        assert_eq!(
            c.options,
            CopyOptions {
                format: CopyFormat::Csv,
                delimiter: Some("\t".into()),
                null: Some("NA".into()),
                header: CopyHeader::Match,
                quote: Some("'".into()),
                escape: Some("\\".into()),
                force_not_null: Some(CopyColumns::All),
                force_null: Some(CopyColumns::Named(vec!["team".into()])),
                encoding: Some("UTF8".into()),
            }
        );
        assert_eq!(parsed("COPY events FROM STDIN (FORMAT binary)").options.format, CopyFormat::Binary);
        assert_eq!(parsed("COPY events FROM STDIN (HEADER)").options.header, CopyHeader::Skip);
        assert_eq!(parsed("COPY events FROM STDIN (HEADER off)").options.header, CopyHeader::Absent);
        assert_eq!(parsed("COPY events FROM STDIN (HEADER 1)").options.header, CopyHeader::Skip);
        // The pre-9.0 syntax psql passes through from `\copy … with csv header`.
        let c = parsed(
            "COPY events (event_id) FROM STDIN WITH CSV HEADER DELIMITER AS '|' NULL 'x' FORCE NOT NULL event_id",
        );
        assert_eq!(
            c.options,
            CopyOptions {
                format: CopyFormat::Csv,
                delimiter: Some("|".into()),
                null: Some("x".into()),
                header: CopyHeader::Skip,
                force_not_null: Some(CopyColumns::Named(vec!["event_id".into()])),
                ..Default::default()
            }
        );
        assert_eq!(parsed("COPY events FROM STDIN BINARY").options.format, CopyFormat::Binary);
    }

    #[test]
    fn copy_from_statement_errors() {
        assert_eq!(code("COPY events FROM STDIN (FORMAT csv, FORMAT text)"), "42601");
        assert_eq!(code("COPY events FROM STDIN (SHOUTING)"), "42601");
        assert_eq!(code("COPY events FROM STDIN (DELIMITER)"), "42601");
        assert_eq!(code("COPY events FROM STDIN (FORMAT json)"), "22023");
        assert_eq!(code("COPY events FROM STDIN (HEADER maybe)"), "22023");
        assert_eq!(code("COPY events FROM STDIN (FORCE_NULL 'team')"), "22023");
        assert_eq!(code("COPY events FROM STDIN (FREEZE)"), "0A000");
        assert_eq!(code("COPY events FROM STDIN (FORCE_QUOTE *)"), "0A000");
        assert_eq!(code("COPY events FROM STDIN (ON_ERROR ignore)"), "0A000");
        assert_eq!(code("COPY events FROM STDIN WHERE team = 'x'"), "0A000");
        assert_eq!(code("COPY events FROM '/tmp/x.csv'"), "0A000");
        assert_eq!(code("COPY events TO '/tmp/x.csv'"), "0A000");
        assert_eq!(code("COPY (SELECT 1) TO '/tmp/x.csv'"), "0A000");
        assert_eq!(code("COPY events FROM STDIN (FORMAT csv) garbage"), "42601");
        assert_eq!(code("COPY events FROM STDIN CSV; COPY events FROM STDIN"), "42601");
    }
}
