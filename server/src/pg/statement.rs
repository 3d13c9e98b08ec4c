//! What a statement's text is, before any parsing: where one statement of a
//! simple query ends, what kind of statement it is (session statements,
//! writes, cursors, queries) and where its `$n` parameters are. A leaf: the
//! protocol modules and `query` use it; it uses only `errors`.

use super::errors::PgError;

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
    /// BEGIN, COMMIT, ROLLBACK and savepoints (see `transaction`).
    Transaction(TxCommand),
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
    /// `CREATE [OR REPLACE] [TEMP] VIEW`, `DROP VIEW`, `ALTER TABLE … RENAME`:
    /// views, or (for any other ALTER) what `what` says is unsupported.
    View {
        what: String,
    },
    /// Statements leadline does not do.
    Unsupported {
        what: String,
    },
    Query,
}

impl Kind {
    /// What `/metrics` times it as.
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Insert => "insert",
            Kind::Copy => "copy",
            Kind::Declare | Kind::Fetch | Kind::Close { .. } => "cursor",
            Kind::Set { .. } | Kind::Reset { .. } | Kind::Show { .. } => "setting",
            Kind::Transaction(_) => "transaction",
            Kind::View { .. } => "view",
            Kind::Empty | Kind::Noop { .. } | Kind::Unsupported { .. } => "other",
        }
    }
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
        "begin" | "start" | "commit" | "end" | "abort" | "rollback" | "savepoint" | "release" => transaction(s),
        "prepare" if second == "transaction" => {
            Kind::Unsupported { what: "PREPARE TRANSACTION (two-phase commit)".into() }
        }
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
        "create" | "drop" | "alter" if is_view_statement(s) => Kind::View { what: unsupported_ddl(first) },
        "create" | "drop" | "alter" | "grant" | "revoke" | "vacuum" | "analyze" | "cluster" | "reindex" | "comment" => {
            Kind::Unsupported { what: unsupported_ddl(first) }
        }
        _ if s.starts_with('(') => Kind::Query,
        _ => Kind::Query,
    }
}

/// A transaction statement.
#[derive(Debug, Clone, PartialEq)]
pub enum TxCommand {
    /// `BEGIN`, `START TRANSACTION` (any modes).
    Begin,
    /// `COMMIT`, `END`.
    Commit,
    /// `ROLLBACK`, `ABORT`.
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
}

/// `s` without its leading words that are among `words` (any case).
fn skip_words<'a>(mut s: &'a str, words: &[&str]) -> &'a str {
    loop {
        s = s.trim_start();
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        if end == 0 || !words.iter().any(|w| s[..end].eq_ignore_ascii_case(w)) {
            return s;
        }
        s = &s[end..];
    }
}

/// A savepoint's name as PostgreSQL folds it: as written when quoted, in
/// lower case otherwise.
fn savepoint_name(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        s[1..s.len() - 1].replace("\"\"", "\"")
    } else {
        s.to_lowercase()
    }
}

/// BEGIN, COMMIT, ROLLBACK, savepoints; two-phase commit and `AND CHAIN`
/// are refused.
fn transaction(s: &str) -> Kind {
    let w = words(s, 4);
    let has = |word: &str| w.iter().skip(1).any(|x| x == word);
    let first = w[0].as_str();
    if has("prepared") {
        return Kind::Unsupported { what: format!("{} PREPARED (two-phase commit)", first.to_ascii_uppercase()) };
    }
    let rest = skip_words(s, &[first]);
    let chained = |rest: &str| {
        let r = skip_words(rest, &["work", "transaction"]).to_ascii_lowercase();
        r.split_whitespace().collect::<Vec<_>>() == ["and", "chain"]
    };
    let cmd = match first {
        "begin" | "start" => TxCommand::Begin,
        "commit" | "end" | "abort" | "rollback" if chained(rest) => {
            return Kind::Unsupported { what: format!("{} AND CHAIN", first.to_ascii_uppercase()) };
        }
        "commit" | "end" => TxCommand::Commit,
        "abort" => TxCommand::Rollback,
        "rollback" => {
            let after = skip_words(rest, &["work", "transaction"]);
            match after.get(..2) {
                Some(to) if to.eq_ignore_ascii_case("to") && after[2..].starts_with(char::is_whitespace) => {
                    TxCommand::RollbackTo(savepoint_name(skip_words(&after[2..], &["savepoint"])))
                }
                _ => TxCommand::Rollback,
            }
        }
        "savepoint" => TxCommand::Savepoint(savepoint_name(rest)),
        _ => TxCommand::Release(savepoint_name(skip_words(rest, &["savepoint"]))),
    };
    Kind::Transaction(cmd)
}

fn unsupported_ddl(first: &str) -> String {
    format!("{} (leadline's tables are defined by the event log)", first.to_ascii_uppercase())
}

/// `CREATE [OR REPLACE] [TEMP|TEMPORARY] VIEW`, `DROP VIEW`, and `ALTER
/// TABLE|VIEW … RENAME` (which renames a view, and is refused for a table).
fn is_view_statement(s: &str) -> bool {
    let w = words(s, 8);
    match w.first().map(String::as_str) {
        Some("create") => {
            let kind = w[1..].iter().find(|w| !matches!(w.as_str(), "or" | "replace" | "temp" | "temporary"));
            kind.is_some_and(|k| k == "view")
        }
        Some("drop") => w.get(1).is_some_and(|k| k == "view"),
        Some("alter") => w.get(1).is_some_and(|k| k == "table" || k == "view") && w.iter().any(|w| w == "rename"),
        _ => false,
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

/// The highest `$n` in a statement (outside quotes), i.e. its parameter count.
pub fn placeholder_count(sql: &str) -> usize {
    let mut max = 0;
    scan_placeholders(sql, |n, _, _| max = max.max(n));
    max
}

/// Calls `f(n, start, end)` for every `$n` outside quotes and comments.
fn scan_placeholders(sql: &str, mut f: impl FnMut(usize, usize, usize)) {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i > start + 1
                    && let Ok(n) = sql[start + 1..i].parse::<usize>()
                {
                    f(n, start, i);
                }
            }
            _ => i += 1,
        }
    }
}

/// Replaces `$n` with the given SQL literals.
pub fn substitute(sql: &str, literals: &[String]) -> Result<String, PgError> {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    let mut err = None;
    scan_placeholders(sql, |n, s, e| {
        out.push_str(&sql[last..s]);
        match literals.get(n.wrapping_sub(1)) {
            Some(l) => out.push_str(l),
            None => err = Some(PgError::new("08P01", format!("there is no parameter ${n}"))),
        }
        last = e;
    });
    out.push_str(&sql[last..]);
    match err {
        Some(e) => Err(e),
        None => Ok(out),
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
        assert_eq!(classify("SAVEPOINT \"_pg3_1\""), Kind::Transaction(TxCommand::Savepoint("_pg3_1".into())));
        assert_eq!(classify("/* c */ select 1"), Kind::Query);
        assert_eq!(classify("RESET leadline.as_of"), Kind::Reset { name: Some("leadline.as_of".into()) });
        for view in [
            "CREATE VIEW v AS SELECT 1",
            "create or replace temp view v as select 1",
            "CREATE TEMPORARY VIEW v AS SELECT 1",
            "drop view if exists v",
            "alter table \"v__dbt_tmp\" rename to \"v\"",
        ] {
            assert!(matches!(classify(view), Kind::View { .. }), "{view}");
        }
        for other in ["CREATE TABLE t (a int)", "CREATE MATERIALIZED VIEW v AS SELECT 1", "DROP TABLE events"] {
            assert!(matches!(classify(other), Kind::Unsupported { .. }), "{other}");
        }
    }

    #[test]
    fn transaction_statements() {
        let tx = |sql: &str| match classify(sql) {
            Kind::Transaction(c) => c,
            other => panic!("{sql}: {other:?}"),
        };
        for begin in ["BEGIN", "begin work;", "START TRANSACTION ISOLATION LEVEL REPEATABLE READ", "BEGIN READ ONLY"] {
            assert_eq!(tx(begin), TxCommand::Begin, "{begin}");
        }
        for commit in ["COMMIT", "commit work", "END TRANSACTION", "/* x */ COMMIT;"] {
            assert_eq!(tx(commit), TxCommand::Commit, "{commit}");
        }
        for rollback in ["ROLLBACK", "rollback transaction", "ABORT", "ABORT WORK"] {
            assert_eq!(tx(rollback), TxCommand::Rollback, "{rollback}");
        }
        assert_eq!(tx("SAVEPOINT PGJDBC_AUTOSAVE"), TxCommand::Savepoint("pgjdbc_autosave".into()));
        assert_eq!(tx("RELEASE \"_pg3_1\""), TxCommand::Release("_pg3_1".into()));
        assert_eq!(tx("release savepoint Sp1;"), TxCommand::Release("sp1".into()));
        assert_eq!(tx("ROLLBACK TO \"_pg3_1\""), TxCommand::RollbackTo("_pg3_1".into()));
        assert_eq!(tx("rollback work to savepoint \"a \"\"b\"\"\""), TxCommand::RollbackTo("a \"b\"".into()));
        assert_eq!(tx("SAVEPOINT"), TxCommand::Savepoint(String::new()));
        for refused in ["COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'", "PREPARE TRANSACTION 'x'", "COMMIT AND CHAIN"] {
            assert!(matches!(classify(refused), Kind::Unsupported { .. }), "{refused}");
        }
        assert_eq!(tx("COMMIT AND NO CHAIN"), TxCommand::Commit);
    }

    #[test]
    fn placeholders_outside_quotes_are_substituted() {
        let sql = "SELECT $1, '$2', \"$3\", $2 -- $4\n";
        assert_eq!(placeholder_count(sql), 2);
        assert_eq!(
            substitute(sql, &["1".into(), "'x'".into()]).ok().as_deref(),
            Some("SELECT 1, '$2', \"$3\", 'x' -- $4\n")
        );
        assert!(substitute("SELECT $2", &["1".into()]).is_err());
    }
}
