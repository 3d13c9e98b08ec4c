//! Identifiers and literals as PostgreSQL quotes and reads them:
//! `quote_ident`, `quote_literal`, `format('%s %I %L', …)` and `parse_ident`.
//! Metabase builds its field sync on `FORMAT('%I.%I', schema, table)`,
//! Grafana its column lookup on `parse_ident(…)`.

use crate::pg::errors::PgError;

/// PostgreSQL's keywords that `quote_ident` quotes (reserved, and those that
/// cannot name a function or type); unreserved ones stay bare.
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// `quote_ident`: quoted unless it is a plain lower-case identifier that is
/// no keyword.
pub fn quote_ident(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !KEYWORDS.contains(&s);
    if plain { s.to_string() } else { format!("\"{}\"", s.replace('"', "\"\"")) }
}

/// `quote_literal` / `%L`: a string literal, `E'…'` when it holds a backslash.
pub fn quote_literal(s: &str) -> String {
    let quoted = s.replace('\'', "''");
    if s.contains('\\') { format!("E'{}'", quoted.replace('\\', "\\\\")) } else { format!("'{quoted}'") }
}

/// `format(template, args…)`: `%s` (text, NULL is empty), `%I` (an
/// identifier; NULL is an error), `%L` (a literal; NULL is `NULL`), `%%`,
/// argument positions (`%2$s`) and widths (`%-10s`, `%*s`).
pub fn format(template: &str, args: &[Option<String>]) -> Result<String, PgError> {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = template.chars().peekable();
    let unterminated = || PgError::new("22023", "unterminated format() type specifier");
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        // %[position$][flags][width]type
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        if !digits.is_empty() && chars.peek() == Some(&'$') {
            chars.next();
            next = position(&digits)? - 1;
            digits.clear();
        }
        let mut left = false;
        if digits.is_empty() && chars.peek() == Some(&'-') {
            chars.next();
            left = true;
        }
        let mut width: Option<usize> = None;
        if digits.is_empty() && chars.peek() == Some(&'*') {
            chars.next();
            let w = argument(args, next)?.as_deref().map(str::trim).unwrap_or("0");
            next += 1;
            let w: i64 = w.parse().map_err(|_| PgError::new("22023", format!("invalid width \"{w}\"")))?;
            left |= w < 0;
            width = Some(w.unsigned_abs() as usize);
        } else {
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            if !digits.is_empty() {
                width = Some(digits.parse().map_err(|_| PgError::new("22023", "invalid width in format()"))?);
            }
        }
        let kind = chars.next().ok_or_else(unterminated)?;
        let value = argument(args, next)?;
        next += 1;
        let text = match kind {
            's' => value.clone().unwrap_or_default(),
            'I' => match value {
                Some(v) => quote_ident(v),
                None => return Err(PgError::new("22004", "null values cannot be formatted as an SQL identifier")),
            },
            'L' => value.as_deref().map(quote_literal).unwrap_or_else(|| "NULL".to_string()),
            other => {
                return Err(PgError::new("22023", format!("unrecognized format() type specifier \"{other}\"")));
            }
        };
        match width {
            Some(w) if left => out.push_str(&format!("{text:<w$}")),
            Some(w) => out.push_str(&format!("{text:>w$}")),
            None => out.push_str(&text),
        }
    }
    Ok(out)
}

fn position(digits: &str) -> Result<usize, PgError> {
    match digits.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(PgError::new("22023", "format specifies argument 0, but arguments are numbered from 1")),
    }
}

fn argument(args: &[Option<String>], i: usize) -> Result<&Option<String>, PgError> {
    args.get(i).ok_or_else(|| PgError::new("22023", "too few arguments for format()"))
}

/// `parse_ident('a."B c".d')` → `[a, B c, d]`: unquoted parts folded to
/// lower case, quoted ones as written. With `strict`, text after the name is
/// an error; without, it is ignored.
pub fn parse_ident(s: &str, strict: bool) -> Result<Vec<String>, PgError> {
    let invalid = |why: &str| PgError::with_hint("22023", format!("string is not a valid identifier: \"{s}\""), why);
    let mut parts = Vec::new();
    let mut chars = s.trim_start().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(invalid("String has unclosed double quotes.")),
                }
            }
            if part.is_empty() {
                return Err(invalid("Quoted identifier must not be empty."));
            }
        } else {
            while let Some(c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_' || **c == '$') {
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            if part.is_empty() || part.starts_with(|c: char| c.is_ascii_digit() || c == '$') {
                return Err(invalid("No valid identifier before \".\"."));
            }
        }
        parts.push(part);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            Some('.') => {
                chars.next();
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            None => return Ok(parts),
            Some(_) if strict => return Err(invalid("Text after the identifier.")),
            Some(_) => return Ok(parts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn format_quotes_as_postgres_does() -> Result<(), PgError> {
        assert_eq!(format("%s", &some(&["int4"]))?, "int4");
        assert_eq!(format("%I.%I", &some(&["public", "Deploy Ments"]))?, "public.\"Deploy Ments\"");
        assert_eq!(format("%L and %L", &[Some("it's".into()), None])?, "'it''s' and NULL");
        assert_eq!(format("%s|%s", &[None, Some("x".into())])?, "|x");
        assert_eq!(format("100%% %2$s %1$s", &some(&["a", "b"]))?, "100% b a");
        assert_eq!(format("[%5s][%-5s][%*s]", &some(&["a", "b", "3", "c"]))?, "[    a][b    ][  c]");
        assert_eq!(format("%L", &some(&["a\\b"]))?, "E'a\\\\b'");
        Ok(())
    }

    #[test]
    fn format_errors_carry_sqlstates() {
        let code = |t: &str, args: &[Option<String>]| match format(t, args) {
            Ok(v) => panic!("{t} gave {v}"),
            Err(e) => e.parts().0,
        };
        assert_eq!(code("%I", &[None]), "22004");
        assert_eq!(code("%s %s", &some(&["a"])), "22023");
        assert_eq!(code("%x", &some(&["a"])), "22023");
        assert_eq!(code("%0$s", &some(&["a"])), "22023");
        assert_eq!(code("abc %", &[]), "22023");
    }

    #[test]
    fn parse_ident_splits_and_folds() -> Result<(), PgError> {
        assert_eq!(parse_ident("deployments", true)?, ["deployments"]);
        assert_eq!(parse_ident("Public.\"My Table\"", true)?, ["public", "My Table"]);
        assert_eq!(parse_ident("a . \"b\"\"c\"", true)?, ["a", "b\"c"]);
        assert_eq!(parse_ident("a.b junk", false)?, ["a", "b"]);
        for bad in ["", "a.", "\"unclosed", "\"\"", "a.b junk", "1abc"] {
            match parse_ident(bad, true) {
                Ok(v) => panic!("{bad}: {v:?}"),
                Err(e) => assert_eq!(e.parts().0, "22023", "{bad}"),
            }
        }
        Ok(())
    }

    #[test]
    fn quote_ident_and_literal() {
        assert_eq!(quote_ident("events"), "events");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("from"), "\"from\"");
        assert_eq!(quote_ident("service"), "service");
        assert_eq!(quote_literal("O'Reilly"), "'O''Reilly'");
    }
}
