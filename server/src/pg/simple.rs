//! The simple query protocol, and what kind of statement a text is: session
//! statements (SET/SHOW/BEGIN/DISCARD …) are answered here, INSERT and COPY
//! go to the event log, everything else is a query for DataFusion.

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

/// Splits a simple-query string into statements on `;`, respecting quotes,
/// dollar quotes and comments.
pub fn split_statements(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let q = bytes[i];
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        if i + 1 < bytes.len() && bytes[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    // E'…' strings may escape quotes with a backslash.
                    if bytes[i] == b'\\' && q == b'\'' && i + 1 < bytes.len() {
                        let e_string = start < i
                            && sql[..i].rfind('\'').is_some_and(|p| p > 0 && matches!(bytes[p - 1], b'E' | b'e'));
                        if e_string {
                            i += 2;
                            continue;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' => {
                // $tag$ … $tag$
                let rest = &sql[i + 1..];
                if let Some(end) = rest.find('$') {
                    let tag = &rest[..end];
                    if tag.chars().all(|c| c.is_alphanumeric() || c == '_')
                        && !tag.chars().next().is_some_and(|c| c.is_ascii_digit())
                    {
                        let delim = format!("${tag}$");
                        let body_start = i + delim.len();
                        if let Some(close) = sql[body_start..].find(&delim) {
                            i = body_start + close + delim.len();
                            continue;
                        }
                    }
                }
                i += 1;
            }
            b';' => {
                let s = sql[start..i].trim();
                if !s.is_empty() {
                    out.push(s.to_string());
                }
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < sql.len() {
        let s = sql[start..].trim();
        if !s.is_empty() && !is_only_comments(s) {
            out.push(s.to_string());
        }
    }
    out
}

fn is_only_comments(s: &str) -> bool {
    strip_leading_comments(s).trim().is_empty()
}

/// The text after leading whitespace and comments.
pub fn strip_leading_comments(s: &str) -> &str {
    let mut s = s.trim_start();
    loop {
        if let Some(r) = s.strip_prefix("--") {
            s = r.split_once('\n').map(|(_, b)| b).unwrap_or("").trim_start();
        } else if let Some(r) = s.strip_prefix("/*") {
            s = r.split_once("*/").map(|(_, b)| b).unwrap_or("").trim_start();
        } else {
            return s;
        }
    }
}

/// What a statement is, decided from its leading words.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Empty,
    /// BEGIN/COMMIT/…: accepted as no-ops; `start` tells the transaction status.
    Transaction {
        tag: &'static str,
        start: Option<bool>,
    },
    /// `SET name = value` (`None` = DEFAULT).
    Set {
        name: String,
        value: Option<String>,
    },
    Reset {
        name: Option<String>,
    },
    Show {
        name: String,
    },
    /// Statements accepted and ignored (DISCARD ALL, UNLISTEN *, …).
    Noop {
        tag: String,
    },
    Insert,
    Copy,
    Declare,
    Fetch,
    /// `CLOSE name` (`None` = `CLOSE ALL`).
    Close {
        name: Option<String>,
    },
    /// Statements leadline does not do.
    Unsupported {
        what: String,
    },
    Query,
}

fn words(s: &str, n: usize) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .take(n)
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

fn unquote(v: &str) -> String {
    let v = v.trim().trim_end_matches(';').trim();
    if v.len() >= 2 && ((v.starts_with('\'') && v.ends_with('\'')) || (v.starts_with('"') && v.ends_with('"'))) {
        let q = &v[..1];
        v[1..v.len() - 1].replace(&format!("{q}{q}"), q)
    } else {
        v.to_string()
    }
}

/// Normalizes a variable name (`TimeZone` → `timezone`, `TRANSACTION ISOLATION LEVEL`).
pub fn var_name(name: &str) -> String {
    let n = name.trim().trim_matches('"').to_ascii_lowercase();
    match n.split_whitespace().collect::<Vec<_>>().join(" ").as_str() {
        "transaction isolation level" => "transaction_isolation".into(),
        "time zone" => "timezone".into(),
        "session authorization" => "session_authorization".into(),
        other => other.to_string(),
    }
}

pub fn classify(sql: &str) -> Kind {
    let s = strip_leading_comments(sql).trim().trim_end_matches(';').trim();
    if s.is_empty() {
        return Kind::Empty;
    }
    let w = words(s, 3);
    let first = w.first().map(String::as_str).unwrap_or("");
    let second = w.get(1).map(String::as_str).unwrap_or("");
    match first {
        "begin" | "start" => Kind::Transaction { tag: "BEGIN", start: Some(true) },
        "commit" | "end" => Kind::Transaction { tag: "COMMIT", start: Some(false) },
        "abort" => Kind::Transaction { tag: "ROLLBACK", start: Some(false) },
        "rollback" if second == "to" => Kind::Transaction { tag: "ROLLBACK", start: None },
        "rollback" => Kind::Transaction { tag: "ROLLBACK", start: Some(false) },
        "savepoint" => Kind::Transaction { tag: "SAVEPOINT", start: None },
        "release" => Kind::Transaction { tag: "RELEASE", start: None },
        "set" => parse_set(s),
        "reset" => {
            let rest = s[5..].trim();
            if rest.eq_ignore_ascii_case("all") {
                Kind::Reset { name: None }
            } else {
                Kind::Reset { name: Some(var_name(rest)) }
            }
        }
        "show" => Kind::Show { name: var_name(&s[4..]) },
        "discard" => Kind::Noop { tag: format!("DISCARD {}", second.to_ascii_uppercase()).trim().to_string() },
        "close" => {
            let n = s[5..].trim().trim_matches('"');
            Kind::Close { name: (!n.eq_ignore_ascii_case("all")).then(|| n.to_string()) }
        }
        "declare" => Kind::Declare,
        "fetch" | "move" => Kind::Fetch,
        "unlisten" => Kind::Noop { tag: "UNLISTEN".into() },
        "listen" => Kind::Noop { tag: "LISTEN".into() },
        "deallocate" => Kind::Noop { tag: "DEALLOCATE".into() },
        "insert" => Kind::Insert,
        "copy" => Kind::Copy,
        "select" | "with" | "values" | "table" | "explain" => Kind::Query,
        "(" => Kind::Query,
        "update" | "delete" | "truncate" | "merge" => Kind::Unsupported {
            what: format!("{} on leadline's tables: the event log is append-only", first.to_ascii_uppercase()),
        },
        "create" | "drop" | "alter" | "grant" | "revoke" | "vacuum" | "analyze" | "cluster" | "reindex" | "comment" => {
            Kind::Unsupported {
                what: format!("{} (leadline's tables are defined by the event log)", first.to_ascii_uppercase()),
            }
        }
        _ if s.starts_with('(') => Kind::Query,
        _ => Kind::Query,
    }
}

fn parse_set(s: &str) -> Kind {
    let rest = s[3..].trim();
    let mut lower = rest.to_ascii_lowercase();
    let mut rest = rest;
    for prefix in ["session ", "local "] {
        if lower.starts_with(prefix)
            && !lower.starts_with("session characteristics")
            && !lower.starts_with("session authorization")
        {
            rest = rest[prefix.len()..].trim_start();
            lower = rest.to_ascii_lowercase();
        }
    }
    if lower.starts_with("transaction") || lower.starts_with("session characteristics") {
        return Kind::Noop { tag: "SET".into() };
    }
    if let Some(v) = lower.strip_prefix("time zone") {
        let value = rest[rest.len() - v.len()..].trim();
        let value = if value.eq_ignore_ascii_case("local") || value.eq_ignore_ascii_case("default") {
            None
        } else {
            Some(unquote(value))
        };
        return Kind::Set { name: "timezone".into(), value };
    }
    if lower.starts_with("names") {
        return Kind::Set { name: "client_encoding".into(), value: Some(unquote(rest[5..].trim())) };
    }
    if lower.starts_with("session authorization") || lower.starts_with("role") {
        return Kind::Noop { tag: "SET".into() };
    }
    let (name, value) = match rest.find('=') {
        Some(p) if !rest[..p].to_ascii_lowercase().contains(" to ") => (&rest[..p], &rest[p + 1..]),
        _ => match lower.find(" to ") {
            Some(p) => (&rest[..p], &rest[p + 4..]),
            None => (rest, ""),
        },
    };
    let value = value.trim();
    let value = if value.eq_ignore_ascii_case("default") {
        None
    } else {
        // `search_path = a, b`: keep the list, unquoting each item.
        Some(value.split(',').map(unquote).collect::<Vec<_>>().join(", "))
    };
    Kind::Set { name: var_name(name), value }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_classifies() {
        let s = split_statements("SELECT pg_advisory_unlock_all();\n\tCLOSE ALL;\n\tUNLISTEN *;\n\tRESET ALL;");
        assert_eq!(s.len(), 4);
        assert_eq!(split_statements("select 'a;b'; select 2 -- x;\n").len(), 2);
        assert_eq!(split_statements("select E'a\\';b'").len(), 1);
        assert_eq!(
            classify("SET extra_float_digits = 3"),
            Kind::Set { name: "extra_float_digits".into(), value: Some("3".into()) }
        );
        assert_eq!(classify("SET TIME ZONE 'UTC'"), Kind::Set { name: "timezone".into(), value: Some("UTC".into()) });
        assert_eq!(
            classify("set application_name to 'x y'"),
            Kind::Set { name: "application_name".into(), value: Some("x y".into()) }
        );
        assert_eq!(classify("show transaction isolation level"), Kind::Show { name: "transaction_isolation".into() });
        assert_eq!(classify("SAVEPOINT \"_pg3_1\""), Kind::Transaction { tag: "SAVEPOINT", start: None });
        assert_eq!(classify("/* c */ select 1"), Kind::Query);
        assert_eq!(classify("RESET leadline.as_of"), Kind::Reset { name: Some("leadline.as_of".into()) });
    }
}
