//! The rewrites that let DataFusion run what clients send: text rewrites
//! before parsing (`pg_catalog.` qualifiers, `OPERATOR(pg_catalog.~)`,
//! `COLLATE pg_catalog.default`), and AST rewrites after (`::regclass`,
//! subqueries over relations leadline never has rows in, column names).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::sqlparser::ast::{
    self as ast, Expr, FunctionArguments, Ident, JoinOperator, ObjectNamePart, Query, SelectItem, SetExpr, SetOperator,
    Statement, TableFactor, TableWithJoins, Value, VisitMut, VisitorMut,
};
use regex::Regex;

use super::tables::{CatalogInfo, is_empty_relation, type_oid_by_name};
use super::{NS_INFORMATION_SCHEMA, NS_PG_CATALOG, NS_PUBLIC};

static OPERATOR_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)OPERATOR\s*\(\s*(?:"?pg_catalog"?\s*\.\s*)?([~!<>=*+\-/]+)\s*\)"#)
        .unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
});
static COLLATE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\bCOLLATE\s+(?:"?pg_catalog"?\s*\.\s*)?"?(default|C|POSIX)"?"#).unwrap_or_else(|_| unreachable!())
});
static PG_CATALOG_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)"?\bpg_catalog"?\s*\.\s*"#).unwrap_or_else(|_| unreachable!()));

/// Text rewrites applied before parsing.
pub fn rewrite_text(sql: &str) -> String {
    let s = OPERATOR_RE.replace_all(sql, " $1 ");
    let s = COLLATE_RE.replace_all(&s, "");
    PG_CATALOG_RE.replace_all(&s, "").into_owned()
}

fn last_name(name: &ast::ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => id.value.to_ascii_lowercase(),
        Some(other) => other.to_string().to_ascii_lowercase(),
        None => String::new(),
    }
}

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
];

fn is_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => AGGREGATES.contains(&last_name(&f.name).as_str()),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_aggregate(expr),
        Expr::BinaryOp { left, right, .. } => is_aggregate(left) || is_aggregate(right),
        _ => false,
    }
}

/// A select list with a top-level aggregate returns a row even over no input.
fn has_aggregate(items: &[SelectItem]) -> bool {
    items.iter().any(|i| match i {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => is_aggregate(e),
        _ => false,
    })
}

/// True if the query can be proven to return no rows: it reads (inner-joined)
/// from a relation that is always empty.
pub fn query_is_empty(q: &Query) -> bool {
    set_expr_is_empty(&q.body)
}

fn set_expr_is_empty(s: &SetExpr) -> bool {
    match s {
        SetExpr::Select(sel) => {
            if sel.from.is_empty() {
                return false;
            }
            let grouped = !matches!(&sel.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty());
            if !grouped && has_aggregate(&sel.projection) {
                return false;
            }
            sel.from.iter().any(twj_is_empty)
        }
        SetExpr::Query(q) => query_is_empty(q),
        SetExpr::SetOperation { op, left, right, .. } => match op {
            SetOperator::Union => set_expr_is_empty(left) && set_expr_is_empty(right),
            SetOperator::Intersect => set_expr_is_empty(left) || set_expr_is_empty(right),
            _ => set_expr_is_empty(left),
        },
        _ => false,
    }
}

fn twj_is_empty(t: &TableWithJoins) -> bool {
    factor_is_empty(&t.relation)
        || t.joins.iter().any(|j| {
            matches!(j.join_operator, JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_))
                && factor_is_empty(&j.relation)
        })
}

fn factor_is_empty(f: &TableFactor) -> bool {
    match f {
        TableFactor::Table { name, args: None, .. } => is_empty_relation(&last_name(name)),
        TableFactor::Derived { subquery, .. } => query_is_empty(subquery),
        TableFactor::NestedJoin { table_with_joins, .. } => twj_is_empty(table_with_joins),
        _ => false,
    }
}

/// AST rewrites: reg* casts, always-empty subqueries.
struct Rewriter<'a> {
    info: &'a CatalogInfo,
}

fn custom_type_name(dt: &ast::DataType) -> Option<String> {
    match dt {
        ast::DataType::Custom(name, _) => Some(last_name(name)),
        ast::DataType::Regclass => Some("regclass".into()),
        _ => None,
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    /// `FROM unnest(a) x` / `generate_series(1, n) g`: PostgreSQL names the
    /// single column after the alias.
    fn post_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
        let alias = match f {
            TableFactor::UNNEST { alias, array_exprs, .. } if array_exprs.len() == 1 => alias.as_mut(),
            TableFactor::Table { name, args: Some(_), alias, .. }
                if matches!(last_name(name).as_str(), "generate_series" | "unnest" | "generate_subscripts") =>
            {
                alias.as_mut()
            }
            _ => None,
        };
        if let Some(a) = alias
            && a.columns.is_empty()
        {
            a.columns.push(ast::TableAliasColumnDef::from_name(a.name.value.clone()));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let replacement = match expr {
            Expr::Cast { expr: inner, data_type, .. } => match custom_type_name(data_type).as_deref() {
                Some(
                    ty @ ("regclass" | "regtype" | "regnamespace" | "regproc" | "regprocedure" | "regrole" | "regoper"
                    | "oid" | "xid"),
                ) => {
                    let lit = match inner.as_ref() {
                        Expr::Value(v) => match &v.value {
                            Value::SingleQuotedString(s) => Some(s.clone()),
                            _ => None,
                        },
                        _ => None,
                    };
                    match lit {
                        Some(s) => {
                            let oid = match ty {
                                "regclass" => self.info.table_oid(&s).unwrap_or(0),
                                "regtype" => type_oid_by_name(&s).unwrap_or(0),
                                "regnamespace" => match s.as_str() {
                                    "pg_catalog" => NS_PG_CATALOG,
                                    "public" => NS_PUBLIC,
                                    "information_schema" => NS_INFORMATION_SCHEMA,
                                    _ => 0,
                                },
                                _ => s.trim().parse().unwrap_or(0),
                            };
                            Some(Expr::value(Value::Number(oid.to_string(), false)))
                        }
                        None if ty == "regtype" => Some(Expr::Function(ast::Function {
                            name: ast::ObjectName(vec![ObjectNamePart::Identifier(Ident::new("pg_leadline_regtype"))]),
                            uses_odbc_syntax: false,
                            parameters: FunctionArguments::None,
                            args: FunctionArguments::List(ast::FunctionArgumentList {
                                duplicate_treatment: None,
                                args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr((**inner).clone()))],
                                clauses: vec![],
                            }),
                            filter: None,
                            null_treatment: None,
                            over: None,
                            within_group: vec![],
                        })),
                        None => Some(Expr::Cast {
                            kind: ast::CastKind::Cast,
                            expr: inner.clone(),
                            data_type: ast::DataType::BigInt(None),
                            array: false,
                            format: None,
                        }),
                    }
                }
                Some("name" | "char" | "bpchar" | "citext") => Some(Expr::Cast {
                    kind: ast::CastKind::Cast,
                    expr: inner.clone(),
                    data_type: ast::DataType::Text,
                    array: false,
                    format: None,
                }),
                _ => None,
            },
            Expr::Like { pattern, escape_char, .. } | Expr::ILike { pattern, escape_char, .. } => {
                let esc = escape_char.as_ref().and_then(|v| match &v.value {
                    Value::SingleQuotedString(s) => s.chars().next(),
                    _ => None,
                });
                if let Some(c) = esc.filter(|c| *c != '\\') {
                    // DataFusion only knows the backslash: rewrite the pattern's literals.
                    rewrite_like_escape(pattern, c);
                    *escape_char = None;
                }
                None
            }
            // ARRAY(SELECT …): an aggregated scalar subquery.
            Expr::Function(f) if last_name(&f.name) == "array" && matches!(f.args, FunctionArguments::Subquery(_)) => {
                match &f.args {
                    FunctionArguments::Subquery(q) if query_is_empty(q) || unnests_catalog_column(q) => {
                        Some(Expr::value(Value::Null))
                    }
                    FunctionArguments::Subquery(q) => {
                        let mut q = q.clone();
                        if let SetExpr::Select(sel) = q.body.as_mut()
                            && sel.projection.len() == 1
                        {
                            let item = sel.projection.remove(0);
                            let e = match item {
                                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                                _ => Expr::value(Value::Null),
                            };
                            sel.projection.push(SelectItem::UnnamedExpr(call("array_agg", e)));
                            q.order_by = None;
                        }
                        Some(Expr::Subquery(q))
                    }
                    _ => None,
                }
            }
            Expr::Subquery(q) if query_is_empty(q) => Some(Expr::value(Value::Null)),
            Expr::Subquery(q) => {
                aggregate_catalog_lookup(q);
                None
            }
            Expr::Exists { subquery, negated } if query_is_empty(subquery) => {
                Some(Expr::value(Value::Boolean(*negated)))
            }
            Expr::InSubquery { subquery, negated, .. } if query_is_empty(subquery) => {
                Some(Expr::value(Value::Boolean(*negated)))
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        ControlFlow::Continue(())
    }
}

/// `SELECT … FROM unnest(t.reloptions) x`: a correlated unnest of a catalog
/// array column, which leadline's catalog always has NULL.
fn unnests_catalog_column(q: &Query) -> bool {
    let SetExpr::Select(sel) = q.body.as_ref() else { return false };
    sel.from.len() == 1
        && sel.from[0].joins.is_empty()
        && match &sel.from[0].relation {
            TableFactor::UNNEST { array_exprs, .. } => {
                array_exprs.iter().all(|e| matches!(e, Expr::CompoundIdentifier(_)))
            }
            TableFactor::Table { name, args: Some(args), .. } if last_name(name) == "unnest" => {
                args.args.iter().all(|a| {
                    matches!(a, ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::CompoundIdentifier(_))))
                })
            }
            _ => false,
        }
}

fn call(name: &str, e: Expr) -> Expr {
    Expr::Function(ast::Function {
        name: ast::ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// DataFusion needs a correlated scalar subquery to be aggregated; a catalog
/// lookup by OID (`(SELECT typcollation FROM pg_type WHERE oid = a.atttypid)`)
/// returns one row, so `max(...)` of it is the same value.
fn aggregate_catalog_lookup(q: &mut Query) {
    let SetExpr::Select(sel) = q.body.as_mut() else { return };
    let grouped = !matches!(&sel.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty());
    if grouped || sel.projection.len() != 1 || has_aggregate(&sel.projection) || sel.from.is_empty() {
        return;
    }
    let catalog_only = sel.from.iter().all(|t| {
        std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)).all(|f| match f {
            TableFactor::Table { name, .. } => {
                last_name(name).starts_with("pg_")
                    || name.to_string().to_ascii_lowercase().starts_with("information_schema.")
            }
            _ => false,
        })
    });
    if !catalog_only {
        return;
    }
    let item = sel.projection.remove(0);
    sel.projection.push(match item {
        SelectItem::UnnamedExpr(e) => SelectItem::UnnamedExpr(call("max", e)),
        SelectItem::ExprWithAlias { expr, alias } => SelectItem::ExprWithAlias { expr: call("max", expr), alias },
        other => other,
    });
}

fn rewrite_like_escape(e: &mut Expr, esc: char) {
    match e {
        Expr::Value(v) => {
            if let Value::SingleQuotedString(s) = &mut v.value {
                let mut out = String::with_capacity(s.len());
                let mut chars = s.chars();
                while let Some(ch) = chars.next() {
                    if ch == esc {
                        out.push('\\');
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    } else if ch == '\\' {
                        out.push_str("\\\\");
                    } else {
                        out.push(ch);
                    }
                }
                *s = out;
            }
        }
        Expr::BinaryOp { left, right, .. } => {
            rewrite_like_escape(left, esc);
            rewrite_like_escape(right, esc);
        }
        Expr::Nested(inner) => rewrite_like_escape(inner, esc),
        _ => {}
    }
}

pub fn rewrite_ast(stmt: &mut Statement, info: &CatalogInfo) {
    let _ = stmt.visit(&mut Rewriter { info });
}

/// PostgreSQL's column name for an unaliased select item (FigureColname).
fn figure_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(id.value.clone()),
        Expr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.clone()),
        Expr::Function(f) => Some(last_name(&f.name)),
        Expr::Cast { expr, data_type, .. } => figure_name(expr).or_else(|| {
            Some(match data_type {
                ast::DataType::Custom(n, _) => last_name(n),
                ast::DataType::Int(_) | ast::DataType::Integer(_) => "int4".into(),
                ast::DataType::BigInt(_) => "int8".into(),
                ast::DataType::SmallInt(_) => "int2".into(),
                ast::DataType::Text => "text".into(),
                ast::DataType::Varchar(_) | ast::DataType::CharacterVarying(_) => "varchar".into(),
                ast::DataType::Boolean | ast::DataType::Bool => "bool".into(),
                ast::DataType::Double(_) | ast::DataType::DoublePrecision | ast::DataType::Float8 => "float8".into(),
                ast::DataType::Real | ast::DataType::Float4 => "float4".into(),
                ast::DataType::Numeric(_) | ast::DataType::Decimal(_) => "numeric".into(),
                ast::DataType::Interval { .. } => "interval".into(),
                ast::DataType::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
                    "timestamptz".into()
                }
                ast::DataType::Timestamp(..) => "timestamp".into(),
                ast::DataType::Date => "date".into(),
                other => other.to_string().to_ascii_lowercase(),
            })
        }),
        Expr::Nested(e) => figure_name(e),
        Expr::Case { .. } => Some("case".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => s.projection.first().and_then(|p| match p {
                SelectItem::UnnamedExpr(e) => figure_name(e),
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                _ => None,
            }),
            _ => None,
        },
        Expr::CompoundFieldAccess { access_chain, .. } => access_chain.last().and_then(|a| match a {
            ast::AccessExpr::Dot(e) => figure_name(e),
            _ => None,
        }),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Trim { .. } => Some("btrim".into()),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        _ => None,
    }
}

/// Gives every unaliased, non-column select item of the top-level query
/// PostgreSQL's name as an alias (so `SELECT count(*)` is named `count` and
/// `SELECT 1, 1` plans), and returns the names clients should see if the
/// select list has no wildcard.
pub fn name_columns(stmt: &mut Statement) -> Option<Vec<String>> {
    let Statement::Query(q) = stmt else { return None };
    let mut body = q.body.as_mut();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_mut(),
            SetExpr::Query(inner) => body = inner.body.as_mut(),
            _ => break,
        }
    }
    let SetExpr::Select(sel) = body else { return None };
    let mut names = Vec::with_capacity(sel.projection.len());
    let mut wildcard = false;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, item) in sel.projection.iter_mut().enumerate() {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let name = figure_name(e).unwrap_or_else(|| "?column?".to_string());
                let is_column = matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                let count = seen.entry(name.clone()).or_insert(0);
                *count += 1;
                if !is_column {
                    // Unique internal alias; the client sees `name`.
                    let alias = if *count == 1 { name.clone() } else { format!("{name}__{n}") };
                    *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: Ident::with_quote('"', alias) };
                }
                names.push(name);
            }
            SelectItem::ExprWithAlias { alias, .. } => names.push(alias.value.clone()),
            _ => wildcard = true,
        }
    }
    (!wildcard).then_some(names)
}

/// Column names of a query that could not be planned but is provably empty.
pub fn empty_result_names(stmt: &Statement) -> Option<Vec<String>> {
    let Statement::Query(q) = stmt else { return None };
    if !query_is_empty(q) {
        return None;
    }
    let mut body = q.body.as_ref();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            _ => break,
        }
    }
    let SetExpr::Select(sel) = body else { return None };
    Some(
        sel.projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(e) => figure_name(e).unwrap_or_else(|| "?column?".into()),
                SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                other => other.to_string(),
            })
            .collect(),
    )
}
