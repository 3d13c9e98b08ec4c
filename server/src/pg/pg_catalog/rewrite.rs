//! Rewrites of a parsed statement that let DataFusion run what PostgreSQL
//! clients send. They change the AST only, never SQL text, so string
//! literals and quoted identifiers reach DataFusion as the client wrote them.
//!
//! - `pg_catalog.` qualifiers are dropped from relations, functions, types
//!   and column references: the catalog's relations and functions are
//!   registered under their bare names.
//! - `OPERATOR(pg_catalog.~)` becomes the operator `~`.
//! - `COLLATE "default"`, `"C"` and `"POSIX"` are dropped: leadline compares
//!   text bytewise, which is what they mean here.
//! - `'events'::regclass`, `::regtype`, `::regnamespace`, `::oid` of a
//!   literal become the OID; `::name`, `::"char"` become text.
//! - `LIKE … ESCAPE c` becomes backslash escapes (DataFusion knows no other).
//! - `ARRAY(SELECT …)` and correlated catalog lookups become aggregates that
//!   DataFusion can decorrelate; subqueries over relations leadline never
//!   has rows in (`pg_index` …) become their empty answer.
//!
//! [`plan`] then plans the statement, and answers a query over such a
//! relation that DataFusion cannot type with no rows — but never hides an
//! error in what the query names (an unknown column, table or function).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{Field, FieldRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    self as ast, BinaryOperator, Expr, FunctionArguments, Ident, JoinOperator, ObjectName, ObjectNamePart, Query,
    Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, SetOperator, Statement, TableFactor, TableWithJoins,
    Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use pgwire::api::Type;

use super::arrays::parse_array;
use super::tables::{
    CatalogInfo, LEADLINE_FUNCTIONS, LeadlineFunction, REGPROC_COLUMNS, empty_relation_columns, stub_column_field,
    type_by_oid, type_oid_by_name,
};
use super::{DATABASE, NS_INFORMATION_SCHEMA, NS_PG_CATALOG, NS_PUBLIC};
use crate::pg::encode::PG_TYPE;
use crate::pg::errors::PgError;

/// A statement planned for a client.
#[derive(Debug)]
pub enum Planned {
    /// `names`: the result's column names as PostgreSQL gives them (when the
    /// select list has no wildcard; otherwise the plan's names are right).
    /// `types`: the result's columns, typed as PostgreSQL types them
    /// ([`crate::pg::encode::pg_type_of`]).
    Plan { plan: LogicalPlan, names: Option<Vec<String>>, types: Vec<FieldRef> },
    /// A query that reads a relation leadline never has rows in and that
    /// DataFusion cannot type: no rows, these columns (named as PostgreSQL
    /// names them; the relation's columns typed, the others text).
    Empty { columns: Vec<FieldRef> },
}

/// Rewrites and plans one parsed statement.
pub async fn plan(state: &SessionState, info: &CatalogInfo, mut stmt: Statement) -> Result<Planned, PgError> {
    // Named before the rewrites: PostgreSQL names what the client wrote.
    let names = name_columns(&mut stmt);
    rewrite_in(state, &mut stmt, info)?;
    let reads_stub = matches!(&stmt, Statement::Query(q) if query_is_empty(q));
    let stub_names = names.clone().filter(|_| reads_stub);
    let stub_columns = stub_names.map(|names| stub_answer_columns(&mut stmt, names));
    let planned = match state.statement_to_plan(DfStatement::Statement(Box::new(stmt))).await {
        // Type coercion runs in the analyzer, and some shapes (an `unnest` of
        // a column of another `FROM` item) fail only in the physical planner:
        // check both now, so that a query DataFusion cannot run gets its
        // empty answer here, not at Execute.
        Ok(plan) if reads_stub => match state.optimize(&plan) {
            Ok(optimized) => state.query_planner().create_physical_plan(&optimized, state).await.map(|_| plan),
            Err(e) => Err(e),
        },
        other => other,
    };
    match (planned, stub_columns) {
        (Ok(plan), _) => {
            let plan = typed_as_postgres(plan);
            let types = plan.schema().fields().to_vec();
            Ok(Planned::Plan { plan, names, types })
        }
        (Err(e), Some(columns)) if !names_something_undefined(&e) => {
            tracing::debug!("answering a query over empty catalog relations that DataFusion cannot type: {e}");
            Ok(Planned::Empty { columns })
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// Gives every projected and aggregated column the PostgreSQL type
/// PostgreSQL would give it, where DataFusion's field metadata
/// ([`crate::pg::encode::PG_TYPE`]) says otherwise: DataFusion keeps the
/// metadata of what a cast casts (`relkind::text` would stay a `"char"`) and
/// none of a `CASE`'s branches (`CASE … THEN c.amname END` is a `name`).
/// The plan is left as it is where nothing differs, or if it cannot be retyped.
fn typed_as_postgres(plan: LogicalPlan) -> LogicalPlan {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{Aggregate, Expr as Df, Projection};

    let retype = |exprs: Vec<Df>, schema: &datafusion::common::DFSchema| -> Vec<Df> {
        exprs
            .into_iter()
            .map(|e| match (retyping(&e, schema), e) {
                (None, e) => e,
                (Some(metadata), Df::Alias(alias)) => Df::Alias(alias.with_metadata(Some(metadata.into()))),
                (Some(metadata), e) => {
                    let name = e.schema_name().to_string();
                    e.alias_with_metadata(name, Some(metadata.into()))
                }
            })
            .collect()
    };
    let differs = |p: &LogicalPlan| match p {
        LogicalPlan::Projection(p) => p.expr.iter().any(|e| retyping(e, p.input.schema()).is_some()),
        LogicalPlan::Aggregate(a) => a.aggr_expr.iter().any(|e| retyping(e, a.input.schema()).is_some()),
        _ => false,
    };
    if !plan.exists(|p| Ok(differs(p))).unwrap_or(false) {
        return plan;
    }
    let retyped = plan.clone().transform_up(|node| match node {
        LogicalPlan::Projection(p) => {
            let exprs = retype(p.expr, p.input.schema());
            Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(exprs, p.input)?)))
        }
        LogicalPlan::Aggregate(a) => {
            let aggr_expr = retype(a.aggr_expr, a.input.schema());
            Ok(Transformed::yes(LogicalPlan::Aggregate(Aggregate::try_new(a.input, a.group_expr, aggr_expr)?)))
        }
        // Its input may have been retyped.
        other => Ok(Transformed::yes(other.recompute_schema()?)),
    });
    match retyped {
        Ok(t) => t.data,
        Err(e) => {
            tracing::debug!("left the plan's types as DataFusion gave them: {e}");
            plan
        }
    }
}

/// The metadata that gives `e` PostgreSQL's type, if DataFusion gives it
/// another ([`pg_type_oid`]).
fn retyping(
    e: &datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> Option<HashMap<String, String>> {
    use datafusion::logical_expr::ExprSchemable;
    let field = e.to_field(schema).ok()?.1;
    let given = field.metadata().get(PG_TYPE).and_then(|oid| oid.parse().ok());
    let want = pg_type_oid(e, schema);
    // The type Arrow's own gives, named, overrides any other.
    (want != given).then(|| {
        let oid = want.unwrap_or_else(|| crate::pg::encode::pg_type(field.data_type()).oid());
        [(PG_TYPE.to_string(), oid.to_string())].into()
    })
}

/// The PostgreSQL type (OID) PostgreSQL gives `e` where it is one the
/// catalog types with metadata (`name`, `oid` …); None where Arrow's type
/// says it. A cast is of the type it names; a `CASE`, `COALESCE` or `NULLIF`
/// of its branches' (NULLs aside); `array_agg` of a `name`, `"char"` or `oid`
/// an array of it; anything else what DataFusion gives it.
fn pg_type_oid(e: &datafusion::logical_expr::Expr, schema: &datafusion::common::DFSchema) -> Option<u32> {
    use datafusion::logical_expr::{Expr as Df, ExprSchemable};
    let common = |branches: Vec<&Df>| {
        let mut types = branches
            .into_iter()
            .filter(|b| !matches!(b, Df::Literal(v, _) if v.is_null()))
            .map(|b| pg_type_oid(b, schema));
        let first = types.next()??;
        types.all(|t| t == Some(first)).then_some(first)
    };
    match e {
        Df::Alias(alias) => pg_type_oid(&alias.expr, schema),
        Df::Cast(_) | Df::TryCast(_) => None,
        Df::Case(case) => {
            common(case.when_then_expr.iter().map(|(_, then)| then.as_ref()).chain(case.else_expr.as_deref()).collect())
        }
        Df::ScalarFunction(f) if f.name() == "coalesce" => common(f.args.iter().collect()),
        Df::ScalarFunction(f) if f.name() == "nullif" => pg_type_oid(f.args.first()?, schema),
        Df::AggregateFunction(f) if f.func.name() == "array_agg" => {
            match Type::from_oid(pg_type_oid(f.params.args.first()?, schema)?)? {
                Type::NAME => Some(Type::NAME_ARRAY.oid()),
                Type::CHAR => Some(Type::CHAR_ARRAY.oid()),
                Type::OID => Some(Type::OID_ARRAY.oid()),
                _ => None,
            }
        }
        e => e.to_field(schema).ok()?.1.metadata().get(PG_TYPE)?.parse().ok(),
    }
}

/// An error in what a query names — an undefined column, table, function or
/// type, an ambiguous column — is the client's to see, whatever it reads.
/// Other planning errors over relations leadline never has rows in come from
/// PostgreSQL's implicit casts and features DataFusion lacks (comparing an
/// `oid[]` with `'{0}'`, …), where the empty answer is the right one.
fn names_something_undefined(e: &DataFusionError) -> bool {
    matches!(PgError::sqlstate_of(e), "42703" | "42P01" | "42883" | "42704" | "42702")
}

/// Applies every rewrite to a parsed statement (as [`plan`] does, less the
/// session's table functions). Fails with PostgreSQL's
/// SQLSTATE for a literal that names nothing (`'nope'::regclass`) and for an
/// unknown column of a relation leadline never has rows in.
#[cfg(test)]
pub fn rewrite(stmt: &mut Statement, info: &CatalogInfo) -> Result<(), PgError> {
    rewrite_with(stmt, info, &[])
}

/// Applies every rewrite to a parsed statement, as [`plan`] does before
/// planning it (a view's query is stored rewritten).
pub fn rewrite_in(state: &SessionState, stmt: &mut Statement, info: &CatalogInfo) -> Result<(), PgError> {
    let table_functions: Vec<String> = state.table_functions().keys().cloned().collect();
    rewrite_with(stmt, info, &table_functions)
}

/// The rewrites, knowing the session's table functions: any other function
/// in `FROM` is a scalar one, which PostgreSQL reads as a one-row relation.
fn rewrite_with(stmt: &mut Statement, info: &CatalogInfo, table_functions: &[String]) -> Result<(), PgError> {
    match stmt.visit(&mut Rewriter { info, table_functions }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct Rewriter<'a> {
    info: &'a CatalogInfo,
    table_functions: &'a [String],
}

impl VisitorMut for Rewriter<'_> {
    type Break = PgError;

    fn post_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<PgError> {
        strip_database(name);
        strip_pg_catalog(name);
        ControlFlow::Continue(())
    }

    /// `SELECT pg_catalog.pg_class.*`; `SELECT x IN (SELECT …)`.
    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<PgError> {
        for item in &mut select.projection {
            match item {
                SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
                    strip_pg_catalog(name);
                }
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => in_subqueries_as_arrays(e),
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    /// `FROM unnest(a) x` / `generate_series(1, n) g`: PostgreSQL names the
    /// single column after the alias.
    fn post_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<PgError> {
        if let TableFactor::Table { name, args: Some(args), .. } = f {
            resolve_table_function_name(name);
            if let Err(e) = check_table_function_arguments(name, args.args.len()) {
                return ControlFlow::Break(e);
            }
        }
        if let Some(derived) = self.scalar_function_relation(f) {
            *f = derived;
            return ControlFlow::Continue(());
        }
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

    /// `ORDER BY x IN (SELECT …)` (Grafana's table list); subqueries in a sort.
    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<PgError> {
        if let Some(ast::OrderBy { kind: ast::OrderByKind::Expressions(keys), .. }) = &mut query.order_by {
            keys.iter_mut().for_each(|key| in_subqueries_as_arrays(&mut key.expr));
        }
        sort_by_subqueries(query);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<PgError> {
        drop_pg_catalog_qualifiers(expr);
        match self.replacement(expr) {
            Ok(Some(r)) => *expr = r,
            Ok(None) => {}
            Err(e) => return ControlFlow::Break(e),
        }
        ControlFlow::Continue(())
    }
}

/// `ORDER BY (SELECT … WHERE s.a = t.a)`: DataFusion decorrelates a
/// subquery in a select list or a filter, not in a sort. The query selects
/// such sort keys as hidden columns and is sorted outside, where they are
/// dropped: `SELECT * EXCLUDE (hidden) FROM (SELECT …, key AS hidden …) ORDER BY hidden`.
fn sort_by_subqueries(query: &mut Query) {
    let Some(ast::OrderBy { kind: ast::OrderByKind::Expressions(keys), .. }) = &query.order_by else { return };
    if !keys.iter().any(|k| has_subquery(&k.expr)) {
        return;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return };
    let outputs: Option<Vec<String>> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
            SelectItem::UnnamedExpr(e) => Some(figure_name(e).unwrap_or_default()),
            _ => None,
        })
        .collect();
    let (Some(outputs), None) = (outputs, &select.distinct) else { return };
    // The shape of the sorting query (a fixed text, not the client's).
    let Ok(Some(Statement::Query(mut outer))) =
        Parser::parse_sql(&PostgreSqlDialect {}, "SELECT * FROM (SELECT 1) AS __leadline_sorted").map(|mut s| s.pop())
    else {
        return;
    };
    let mut inner = query.clone();
    let (Some(mut order_by), limit_clause, fetch) =
        (inner.order_by.take(), inner.limit_clause.take(), inner.fetch.take())
    else {
        return;
    };
    let ast::OrderByKind::Expressions(keys) = &mut order_by.kind else { return };
    let SetExpr::Select(select) = inner.body.as_mut() else { return };
    let mut hidden = Vec::new();
    for (n, key) in keys.iter_mut().enumerate() {
        // A position or an output column's name sorts the outer query alike.
        let by_output = match &key.expr {
            Expr::Value(v) => matches!(v.value, Value::Number(..)),
            Expr::Identifier(id) => outputs.contains(&ident_name(id)),
            _ => false,
        };
        if by_output {
            continue;
        }
        let name = Ident::with_quote('"', format!("__leadline_sort_{n}"));
        let expr = std::mem::replace(&mut key.expr, Expr::Identifier(name.clone()));
        select.projection.push(SelectItem::ExprWithAlias { expr, alias: name.clone() });
        hidden.push(ObjectName::from(vec![name]));
    }
    let SetExpr::Select(sorting) = outer.body.as_mut() else { return };
    if let Some(SelectItem::Wildcard(options)) = sorting.projection.first_mut() {
        options.opt_exclude = Some(ast::ExcludeSelectItem::Multiple(hidden));
    }
    if let Some(TableWithJoins { relation: TableFactor::Derived { subquery, .. }, .. }) = sorting.from.first_mut() {
        **subquery = inner;
    }
    outer.order_by = Some(order_by);
    outer.limit_clause = limit_clause;
    outer.fetch = fetch;
    *query = *outer;
}

/// `x [NOT] IN (SELECT …)` of an expression (DataFusion plans it only in a
/// filter or a join) as the same test on the subquery's rows as one array
/// ([`rows_as_array`]): [`membership`]. `x` stays where it was, outside the
/// subquery, so it names what it named. Subqueries nested in `e` are their
/// own clauses' to rewrite.
fn in_subqueries_as_arrays(e: &mut Expr) {
    struct Arrays {
        depth: usize,
    }
    impl VisitorMut for Arrays {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0
                && let Expr::InSubquery { expr, subquery, negated } = e
            {
                let test = membership(expr.as_ref().clone(), Expr::Subquery(rows_as_array(subquery)));
                *e = if *negated { Expr::UnaryOp { op: ast::UnaryOperator::Not, expr: Box::new(test) } } else { test };
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut Arrays { depth: 0 });
}

/// `x IN (rows)` with PostgreSQL's three-valued answer, `rows` an array
/// (NULL when the subquery had no rows): false for no rows, true if found,
/// else NULL if `x` or any row is NULL, else false.
fn membership(x: Expr, rows: Expr) -> Expr {
    let boolean = |b: bool| Expr::value(Value::Boolean(b));
    let when = |condition: Expr, result: Expr| ast::CaseWhen { condition, result };
    let has_null = Expr::IsNotNull(Box::new(function("array_position", vec![rows.clone(), Expr::value(Value::Null)])));
    Expr::Case {
        case_token: ast::helpers::attached_token::AttachedToken::empty(),
        end_token: ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![
            when(Expr::IsNull(Box::new(rows.clone())), boolean(false)),
            when(function("array_has", vec![rows, x.clone()]), boolean(true)),
            when(
                Expr::BinaryOp {
                    // Parenthesized: a view's query is stored as text (`(a = b) IS NULL`).
                    left: Box::new(Expr::IsNull(Box::new(Expr::Nested(Box::new(x))))),
                    op: BinaryOperator::Or,
                    right: Box::new(has_null),
                },
                Expr::value(Value::Null),
            ),
        ],
        else_result: Some(Box::new(boolean(false))),
    }
}

/// Whether an expression holds a subquery.
fn has_subquery(e: &Expr) -> bool {
    struct Finder;
    impl ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    ast::Visit::visit(e, &mut Finder).is_break()
}

/// The `pg_catalog.` qualifier of a function, type, operator or column
/// reference, dropped in place; `OPERATOR(pg_catalog.~)` becomes `~`.
fn drop_pg_catalog_qualifiers(expr: &mut Expr) {
    match expr {
        Expr::Function(f) => {
            strip_pg_catalog(&mut f.name);
        }
        // `pg_catalog.pg_class.oid`; two parts would be a column of a table.
        Expr::CompoundIdentifier(ids) if ids.len() >= 3 && is_pg_catalog(&ids[0]) => {
            ids.remove(0);
        }
        Expr::Cast { data_type, .. } => builtin_type(data_type),
        Expr::TypedString(ts) => builtin_type(&mut ts.data_type),
        Expr::BinaryOp { op, .. } => {
            if let Some(builtin) = builtin_operator(op) {
                *op = builtin;
            }
        }
        _ => {}
    }
}

/// `pg_catalog` as an identifier: any case unquoted, exactly so quoted.
fn is_pg_catalog(id: &Ident) -> bool {
    match id.quote_style {
        None => id.value.eq_ignore_ascii_case("pg_catalog"),
        Some(_) => id.value == "pg_catalog",
    }
}

/// Drops a leading `pg_catalog.` of a qualified name; true if it had one.
fn strip_pg_catalog(name: &mut ObjectName) -> bool {
    let qualified = name.0.len() >= 2 && matches!(&name.0[0], ObjectNamePart::Identifier(id) if is_pg_catalog(id));
    if qualified {
        name.0.remove(0);
    }
    qualified
}

/// Drops a leading `leadline.` (the database) of a three-part name:
/// `leadline.public.events` is `public.events`, as in PostgreSQL.
fn strip_database(name: &mut ObjectName) {
    if name.0.len() == 3 && matches!(&name.0[0], ObjectNamePart::Identifier(id) if ident_name(id) == DATABASE) {
        name.0.remove(0);
    }
}

/// A table function's name as DataFusion looks it up: one bare name, folded
/// to lower case unless quoted. `DORA_METRICS(…)` (Superset upper-cases
/// names), `"dora_metrics"(…)`, `public.dora_metrics(…)` and
/// `leadline.public.dora_metrics(…)` all name `dora_metrics`. A name in
/// another schema is left for DataFusion to refuse.
fn resolve_table_function_name(name: &mut ObjectName) {
    strip_database(name);
    let in_search_path = name.0.len() == 2
        && matches!(&name.0[0], ObjectNamePart::Identifier(id) if ["public", "pg_catalog"].contains(&ident_name(id).as_str()));
    if in_search_path {
        name.0.remove(0);
    }
    if let [ObjectNamePart::Identifier(id)] = name.0.as_mut_slice() {
        *id = Ident::new(ident_name(id));
    }
}

/// A call of one of leadline's table functions with a number of arguments
/// it does not take is PostgreSQL's "function … does not exist".
fn check_table_function_arguments(name: &ObjectName, given: usize) -> Result<(), PgError> {
    let called = last_name(name);
    let mut signatures = LEADLINE_FUNCTIONS.iter().filter(|f| f.retset && f.name == called).peekable();
    let Some(first) = signatures.peek() else { return Ok(()) };
    let hint = format!("{called} takes {}", signature(first));
    if signatures.any(|f| (f.args.len() - f.defaults as usize..=f.args.len()).contains(&given)) {
        return Ok(());
    }
    let unknowns = vec!["unknown"; given].join(", ");
    Err(PgError::with_hint("42883", format!("function {called}({unknowns}) does not exist"), hint))
}

/// `grain text, from timestamp with time zone, to timestamp with time zone
/// (the last 2 optional)`.
fn signature(f: &LeadlineFunction) -> String {
    let args: Vec<String> = f
        .args
        .iter()
        .map(|(name, oid)| format!("{name} {}", type_by_oid((*oid).into()).map_or("-", |t| t.display)))
        .collect();
    match f.defaults {
        0 if args.is_empty() => "no arguments".into(),
        0 => args.join(", "),
        n => format!("{} (the last {n} optional)", args.join(", ")),
    }
}

/// `pg_catalog.int4`, `pg_catalog.text[]`: a type named with its schema is
/// the built-in type of that name, as sqlparser reads an unqualified one.
/// Quoted names (`pg_catalog."char"`) stay what they are.
fn builtin_type(data_type: &mut ast::DataType) {
    match data_type {
        ast::DataType::Custom(name, modifiers) => {
            if !strip_pg_catalog(name) || !modifiers.is_empty() {
                return;
            }
            let [ObjectNamePart::Identifier(id)] = name.0.as_slice() else { return };
            if id.quote_style.is_some() {
                return;
            }
            let parsed =
                Parser::new(&PostgreSqlDialect {}).try_with_sql(&id.value).and_then(|mut p| p.parse_data_type());
            if let Ok(builtin) = parsed
                && !matches!(builtin, ast::DataType::Custom(..))
            {
                *data_type = builtin;
            }
        }
        ast::DataType::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::AngleBracket(inner)
            | ast::ArrayElemTypeDef::Parenthesis(inner),
        ) => builtin_type(inner),
        _ => {}
    }
}

/// The built-in operator `OPERATOR(pg_catalog.op)` or `OPERATOR(op)` names.
/// sqlparser keeps the operator's tokens as text (`"pg_catalog"`, `"~"`).
fn builtin_operator(op: &BinaryOperator) -> Option<BinaryOperator> {
    let BinaryOperator::PGCustomBinaryOperator(parts) = op else { return None };
    let symbol = match parts.as_slice() {
        [schema, symbol] if schema.eq_ignore_ascii_case("pg_catalog") || schema == "\"pg_catalog\"" => symbol,
        [symbol] => symbol,
        _ => return None,
    };
    Some(match symbol.as_str() {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "~~" => BinaryOperator::PGLikeMatch,
        "~~*" => BinaryOperator::PGILikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "!~~*" => BinaryOperator::PGNotILikeMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        "%" => BinaryOperator::Modulo,
        "||" => BinaryOperator::StringConcat,
        _ => return None,
    })
}

/// `COLLATE "default"`, `"C"`, `"POSIX"` (with or without `pg_catalog.`):
/// the bytewise order leadline's text has anyway.
fn is_bytewise_collation(collation: &ObjectName) -> bool {
    let parts = match collation.0.as_slice() {
        [ObjectNamePart::Identifier(schema), rest @ ..] if rest.len() == 1 && is_pg_catalog(schema) => rest,
        parts => parts,
    };
    matches!(parts, [ObjectNamePart::Identifier(id)]
        if ["default", "c", "posix"].iter().any(|c| id.value.eq_ignore_ascii_case(c)))
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// `typreceive`, `t.typsend`: a `regproc` column of the catalog.
fn is_regproc_column(e: &Expr) -> bool {
    let column = match e {
        Expr::Identifier(id) => id,
        Expr::CompoundIdentifier(ids) => match ids.last() {
            Some(id) => id,
            None => return false,
        },
        _ => return false,
    };
    REGPROC_COLUMNS.contains(&ident_name(column).as_str())
}

/// An OID literal compared with a `regproc` column, as the name it shows:
/// `-` for 0.
fn regproc_name(value: &mut Expr) {
    if let Expr::Value(v) = value
        && let Value::Number(n, _) = &v.value
    {
        let name = if n.trim() == "0" { "-".to_string() } else { n.clone() };
        *value = string(&name);
    }
}

/// `x::regtype` of a value, which the rewrites make the type's name.
fn is_regtype_name(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if last_name(&f.name) == "pg_leadline_regtype")
}

/// `'trigger'::regtype` (an OID by now) compared with a `::regtype` value
/// (a name): the type's name, as pgcli's `prorettype::regtype != 'trigger'::regtype`.
fn regtype_name(value: &mut Expr) {
    if let Expr::Value(v) = value
        && let Value::Number(n, _) = &v.value
        && let Some(ty) = n.trim().parse().ok().and_then(type_by_oid)
    {
        *value = string(ty.name);
    }
}

/// Functions PostgreSQL calls without parentheses that sqlparser reads as names.
const SPECIAL_FUNCTIONS: &[&str] = &["current_schema", "current_role"];

/// The `reg*` types: an OID shown as a name.
const REG_TYPES: &[&str] = &["regclass", "regtype", "regnamespace", "regproc", "regprocedure", "regrole", "regoper"];

fn array_element_type(elem: &ast::ArrayElemTypeDef) -> Option<&ast::DataType> {
    match elem {
        ast::ArrayElemTypeDef::SquareBracket(inner, _)
        | ast::ArrayElemTypeDef::AngleBracket(inner)
        | ast::ArrayElemTypeDef::Parenthesis(inner) => Some(inner),
        ast::ArrayElemTypeDef::None => None,
    }
}

fn bigint_array() -> ast::DataType {
    ast::DataType::Array(ast::ArrayElemTypeDef::SquareBracket(Box::new(ast::DataType::BigInt(None)), None))
}

/// The type a `::type` cast of a literal names, when it is one the rewrites handle.
fn custom_type_name(dt: &ast::DataType) -> Option<String> {
    match dt {
        ast::DataType::Custom(name, _) => Some(last_name(name)),
        ast::DataType::Regclass => Some("regclass".into()),
        _ => None,
    }
}

impl Rewriter<'_> {
    /// `FROM string_to_array(…) s` (Grafana's search-path lookup): a scalar
    /// function in `FROM` is a one-row relation whose one column is named
    /// after the alias, so `(SELECT string_to_array(…) AS s) s`.
    fn scalar_function_relation(&self, f: &TableFactor) -> Option<TableFactor> {
        let TableFactor::Table { name, args: Some(args), alias, .. } = f else { return None };
        let [ObjectNamePart::Identifier(id)] = name.0.as_slice() else { return None };
        // Set-returning functions the planner or other rewrites read in `FROM`.
        let set_returning = ["unnest", "generate_subscripts", "generate_series", "range"];
        if self.table_functions.is_empty()
            || self.table_functions.contains(&id.value)
            || set_returning.contains(&ident_name(id).as_str())
        {
            return None;
        }
        let column = alias.as_ref().map(|a| a.name.clone()).unwrap_or_else(|| id.clone());
        let call = Expr::Function(ast::Function {
            name: name.clone(),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(ast::FunctionArgumentList {
                duplicate_treatment: None,
                args: args.args.clone(),
                clauses: vec![],
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: vec![],
        });
        // The shape of a one-item SELECT (a fixed text, not the client's),
        // with the call as its item.
        let mut subquery = match Parser::parse_sql(&PostgreSqlDialect {}, "SELECT NULL").ok()?.pop()? {
            Statement::Query(q) => q,
            _ => return None,
        };
        let SetExpr::Select(select) = subquery.body.as_mut() else { return None };
        select.projection = vec![SelectItem::ExprWithAlias { expr: call, alias: column.clone() }];
        Some(TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(alias.clone().unwrap_or(ast::TableAlias {
                name: column,
                columns: vec![],
                explicit: true,
                at: None,
            })),
            sample: None,
        })
    }

    /// What replaces `expr`, if anything.
    fn replacement(&self, expr: &mut Expr) -> Result<Option<Expr>, PgError> {
        Ok(match expr {
            // Bare `CURRENT_SCHEMA` and `CURRENT_ROLE`: sqlparser reads them as
            // names, PostgreSQL as calls (`SESSION_USER`, `CURRENT_USER` parse as calls).
            Expr::Identifier(id)
                if id.quote_style.is_none() && SPECIAL_FUNCTIONS.contains(&id.value.to_ascii_lowercase().as_str()) =>
            {
                Some(function(&id.value.to_ascii_lowercase(), vec![]))
            }
            // `typreceive != 0`: a `regproc` column (kept as the function's name)
            // compared with an OID, as ADBC's type query does.
            Expr::BinaryOp { left, op, right } if is_comparison(op) => {
                if is_regproc_column(left) {
                    regproc_name(right);
                } else if is_regproc_column(right) {
                    regproc_name(left);
                } else if is_regtype_name(left) {
                    regtype_name(right);
                } else if is_regtype_name(right) {
                    regtype_name(left);
                }
                None
            }
            // `'{r,p}'::text[]`: an array of its elements, not of the one string.
            Expr::Cast { expr: inner, data_type: ast::DataType::Array(elem), .. } => {
                let Some(elem_type) = array_element_type(elem) else { return Ok(None) };
                let reg = custom_type_name(elem_type).filter(|t| REG_TYPES.contains(&t.as_str()));
                match (inner.as_ref(), reg) {
                    (Expr::Value(v), reg) if matches!(&v.value, Value::SingleQuotedString(_)) => {
                        let Value::SingleQuotedString(text) = &v.value else { return Ok(None) };
                        let elements = parse_array(text)?;
                        let items = match &reg {
                            Some(ty) => elements
                                .iter()
                                .map(|e| match e {
                                    Some(e) => Ok(Expr::value(Value::Number(self.oid(ty, e)?.to_string(), false))),
                                    None => Ok(Expr::value(Value::Null)),
                                })
                                .collect::<Result<Vec<_>, PgError>>()?,
                            None => elements
                                .into_iter()
                                .map(|e| e.map_or_else(|| Expr::value(Value::Null), |e| string(&e)))
                                .collect(),
                        };
                        let array = Expr::Array(ast::Array { elem: items, named: true });
                        Some(match reg {
                            Some(_) => cast(array, bigint_array()),
                            None => cast(array, ast::DataType::Array(elem.clone())),
                        })
                    }
                    // `proargtypes::regtype[]`: the types' names.
                    (_, Some(ty)) if ty == "regtype" => Some(call("pg_leadline_regtypes", inner.as_ref().clone())),
                    (_, Some(_)) => Some(cast(inner.as_ref().clone(), bigint_array())),
                    _ => None,
                }
            }
            Expr::Collate { expr: inner, collation } if is_bytewise_collation(collation) => {
                Some(std::mem::replace(inner.as_mut(), Expr::value(Value::Null)))
            }
            Expr::Cast { expr: inner, data_type, .. } => match custom_type_name(data_type).as_deref() {
                Some(
                    ty @ ("regclass" | "regtype" | "regnamespace" | "regproc" | "regprocedure" | "regrole" | "regoper"
                    | "oid" | "xid"),
                ) => match inner.as_ref() {
                    Expr::Value(v) => match &v.value {
                        Value::SingleQuotedString(s) => {
                            Some(Expr::value(Value::Number(self.oid(ty, s)?.to_string(), false)))
                        }
                        _ => Some(cast(inner.as_ref().clone(), ast::DataType::BigInt(None))),
                    },
                    _ if ty == "regtype" => Some(call("pg_leadline_regtype", inner.as_ref().clone())),
                    // `CAST(FORMAT('%I.%I', …) AS REGCLASS)`: a name or an OID.
                    _ if ty == "regclass" => Some(call("pg_leadline_regclass", inner.as_ref().clone())),
                    _ => Some(cast(inner.as_ref().clone(), ast::DataType::BigInt(None))),
                },
                Some("name" | "char" | "bpchar" | "citext") => Some(cast(inner.as_ref().clone(), ast::DataType::Text)),
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
            // Set-returning functions DataFusion lacks, as unnests.
            Expr::Function(f) if last_name(&f.name) == "generate_subscripts" => match arguments(f).as_deref() {
                Some([array, dim]) if is_one(dim) => Some(subscripts((*array).clone())),
                _ => None,
            },
            // information_schema._pg_expandarray(a): rows of (x: element, n: its subscript).
            Expr::Function(f) if is_information_schema_function(&f.name, "_pg_expandarray") => {
                match arguments(f).as_deref() {
                    Some([array]) => Some(function(
                        "named_struct",
                        vec![string("x"), call("unnest", (*array).clone()), string("n"), subscripts((*array).clone())],
                    )),
                    _ => None,
                }
            }
            // `(record).field`
            Expr::CompoundFieldAccess { root, access_chain } => match access_chain.as_slice() {
                [ast::AccessExpr::Dot(Expr::Identifier(field))] => {
                    Some(function("get_field", vec![root.as_ref().clone(), string(&ident_name(field))]))
                }
                _ => None,
            },
            // ARRAY(SELECT …): an aggregated scalar subquery.
            Expr::Function(f) if last_name(&f.name) == "array" => match &f.args {
                FunctionArguments::Subquery(q) if query_is_empty(q) => {
                    check_stub_columns(q)?;
                    Some(Expr::value(Value::Null))
                }
                FunctionArguments::Subquery(q) if unnests_catalog_column(q) => Some(Expr::value(Value::Null)),
                FunctionArguments::Subquery(q) => Some(Expr::Subquery(rows_as_array(q))),
                _ => None,
            },
            Expr::Subquery(q) if query_is_empty(q) => {
                check_stub_columns(q)?;
                Some(empty_scalar_subquery(q))
            }
            Expr::Subquery(q) => {
                aggregate_catalog_lookup(q);
                None
            }
            Expr::Exists { subquery, negated } if query_is_empty(subquery) => {
                check_stub_columns(subquery)?;
                Some(Expr::value(Value::Boolean(*negated)))
            }
            Expr::InSubquery { subquery, negated, .. } if query_is_empty(subquery) => {
                check_stub_columns(subquery)?;
                Some(Expr::value(Value::Boolean(*negated)))
            }
            _ => None,
        })
    }

    /// The OID a `'text'::reg…` literal names; an unknown relation, type or
    /// schema is an error, as in PostgreSQL.
    fn oid(&self, ty: &str, s: &str) -> Result<i64, PgError> {
        let oid = match ty {
            "regclass" => self.info.regclass(s)?,
            "regtype" => type_oid_by_name(s)
                .ok_or_else(|| PgError::new("42704", format!("type \"{}\" does not exist", s.trim())))?,
            "regnamespace" => match s.trim().trim_matches('"') {
                "pg_catalog" => NS_PG_CATALOG,
                "public" => NS_PUBLIC,
                "information_schema" => NS_INFORMATION_SCHEMA,
                other => return Err(PgError::new("3F000", format!("schema \"{other}\" does not exist"))),
            },
            "oid" | "xid" => {
                return s
                    .trim()
                    .parse()
                    .map_err(|_| PgError::new("22P02", format!("invalid input syntax for type {ty}: \"{s}\"")));
            }
            // regproc, regrole, …: leadline has none to name; a number is the OID.
            _ => s.trim().parse().unwrap_or(0),
        };
        Ok(i64::from(oid))
    }
}

/// A subquery answered without planning (it reads a relation leadline never
/// has rows in) must still name real columns of that relation:
/// `d.no_such_column` is PostgreSQL's 42703 even when `d` has no rows.
fn check_stub_columns(q: &Query) -> Result<(), PgError> {
    let SetExpr::Select(sel) = q.body.as_ref() else { return Ok(()) };
    let stubs = stub_relations(sel);
    if stubs.is_empty() {
        return Ok(());
    }
    match ast::Visit::visit(q, &mut StubColumns { stubs, depth: 0 }) {
        ControlFlow::Break(column) => Err(PgError::new("42703", format!("column {column} does not exist"))),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// The relations leadline never has rows in that a select reads, by the
/// name its columns are qualified with: their columns (`name:type`).
fn stub_relations(sel: &Select) -> HashMap<String, &'static [&'static str]> {
    let mut stubs = HashMap::new();
    for twj in &sel.from {
        for factor in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            if let TableFactor::Table { name, alias, args: None, .. } = factor
                && let Some(columns) = empty_relation_columns(&last_name(name))
            {
                let key = alias.as_ref().map(|a| ident_name(&a.name)).unwrap_or_else(|| last_name(name));
                stubs.insert(key, columns);
            }
        }
    }
    stubs
}

/// The column of a relation leadline never has rows in that `e` names
/// (`pol.polname`, `polname`), as a field named `name`.
fn stub_column(stubs: &HashMap<String, &'static [&'static str]>, e: &Expr, name: &str) -> Option<Field> {
    match e {
        Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
            let columns = stubs.get(&ident_name(&ids[ids.len() - 2]))?;
            stub_column_field(columns, &ident_name(&ids[ids.len() - 1]), name)
        }
        Expr::Identifier(id) => stubs.values().find_map(|columns| stub_column_field(columns, &ident_name(id), name)),
        Expr::Nested(inner) => stub_column(stubs, inner, name),
        _ => None,
    }
}

/// The columns of the answer to a query that reads a relation leadline never
/// has rows in, named `names`: a column of that relation has its type, any
/// other column is text.
fn stub_answer_columns(stmt: &mut Statement, names: Vec<String>) -> Vec<FieldRef> {
    let select = top_select(stmt);
    let (stubs, items) = match select {
        Some(sel) => (stub_relations(sel), sel.projection.clone()),
        None => Default::default(),
    };
    names
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let expr = match items.get(n) {
                Some(SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) => Some(e),
                _ => None,
            };
            let field = expr.and_then(|e| stub_column(&stubs, e, name));
            Arc::new(field.unwrap_or_else(|| Field::new(name, arrow::datatypes::DataType::Utf8, true)))
        })
        .collect()
}

/// A scalar subquery over a relation leadline never has rows in, as its
/// empty answer: NULL, typed as the column it selects if that is one of the
/// relation's (`(SELECT c.collname FROM pg_collation c …)` is a `name`), by
/// selecting it from the relation alone, which DataFusion plans uncorrelated.
fn empty_scalar_subquery(q: &Query) -> Expr {
    let mut q = q.clone();
    let SetExpr::Select(sel) = q.body.as_mut() else { return Expr::value(Value::Null) };
    let stubs = stub_relations(sel);
    let column = match sel.projection.as_slice() {
        [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] => e.clone(),
        _ => return Expr::value(Value::Null),
    };
    let qualifier = match &column {
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => ident_name(&ids[0]),
        _ => return Expr::value(Value::Null),
    };
    if stub_column(&stubs, &column, "").is_none() {
        return Expr::value(Value::Null);
    }
    let named = |f: &&TableFactor| match f {
        TableFactor::Table { name, alias, .. } => {
            alias.as_ref().map(|a| ident_name(&a.name)).unwrap_or_else(|| last_name(name)) == qualifier
        }
        _ => false,
    };
    let relation = sel
        .from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
        .find(named)
        .cloned();
    let Some(relation) = relation else { return Expr::value(Value::Null) };
    sel.from = vec![TableWithJoins { relation, joins: vec![] }];
    sel.selection = Some(Expr::value(Value::Boolean(false)));
    sel.group_by = ast::GroupByExpr::Expressions(vec![], vec![]);
    sel.having = None;
    q.order_by = None;
    q.limit_clause = None;
    Expr::Subquery(Box::new(q))
}

/// Finds an `alias.column` of the query's own select (not of a query nested
/// in it, whose aliases may be other relations) that its stub lacks.
struct StubColumns {
    stubs: HashMap<String, &'static [&'static str]>,
    depth: usize,
}

impl ast::Visitor for StubColumns {
    type Break = String;

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<String> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<String> {
        if let Expr::CompoundIdentifier(ids) = e
            && let [relation, column] = ids.as_slice()
            && self.depth == 1
            && let Some(columns) = self.stubs.get(&ident_name(relation))
            && !columns.iter().any(|c| c.split(':').next() == Some(ident_name(column).as_str()))
        {
            return ControlFlow::Break(format!("{}.{}", relation.value, column.value));
        }
        ControlFlow::Continue(())
    }
}

/// An identifier as PostgreSQL resolves it: folded to lower case unless quoted.
fn ident_name(id: &Ident) -> String {
    match id.quote_style {
        None => id.value.to_ascii_lowercase(),
        Some(_) => id.value.clone(),
    }
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
/// from a relation that is always empty, or from a `WITH` query that is.
pub fn query_is_empty(q: &Query) -> bool {
    query_is_empty_in(q, &HashMap::new())
}

/// The common table expressions in scope, by name: whether each is empty.
type Ctes = HashMap<String, bool>;

fn query_is_empty_in(q: &Query, outer: &Ctes) -> bool {
    let mut ctes = outer.clone();
    for cte in q.with.iter().flat_map(|w| &w.cte_tables) {
        // Each may read the ones before it (a recursive one is not yet in scope: not empty).
        let empty = query_is_empty_in(&cte.query, &ctes);
        ctes.insert(ident_name(&cte.alias.name), empty);
    }
    set_expr_is_empty(&q.body, &ctes)
}

fn set_expr_is_empty(s: &SetExpr, ctes: &Ctes) -> bool {
    match s {
        SetExpr::Select(sel) => {
            if sel.from.is_empty() {
                return false;
            }
            let grouped = !matches!(&sel.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty());
            if !grouped && has_aggregate(&sel.projection) {
                return false;
            }
            sel.from.iter().any(|t| twj_is_empty(t, ctes))
        }
        SetExpr::Query(q) => query_is_empty_in(q, ctes),
        SetExpr::SetOperation { op, left, right, .. } => match op {
            SetOperator::Union => set_expr_is_empty(left, ctes) && set_expr_is_empty(right, ctes),
            SetOperator::Intersect => set_expr_is_empty(left, ctes) || set_expr_is_empty(right, ctes),
            _ => set_expr_is_empty(left, ctes),
        },
        _ => false,
    }
}

fn twj_is_empty(t: &TableWithJoins, ctes: &Ctes) -> bool {
    factor_is_empty(&t.relation, ctes)
        || t.joins.iter().any(|j| {
            matches!(j.join_operator, JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_))
                && factor_is_empty(&j.relation, ctes)
        })
}

fn factor_is_empty(f: &TableFactor, ctes: &Ctes) -> bool {
    match f {
        TableFactor::Table { name, args: None, .. } => match name.0.as_slice() {
            [ObjectNamePart::Identifier(id)] if ctes.contains_key(&ident_name(id)) => ctes[&ident_name(id)],
            _ => empty_relation_columns(&last_name(name)).is_some(),
        },
        TableFactor::Derived { subquery, .. } => query_is_empty_in(subquery, ctes),
        TableFactor::NestedJoin { table_with_joins, .. } => twj_is_empty(table_with_joins, ctes),
        _ => false,
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

/// A subquery's rows (its one column) as one array, NULL for no rows: a
/// scalar subquery, which DataFusion runs anywhere. `SELECT e FROM …` becomes
/// `SELECT array_agg(e) FROM …`, so that a correlated one stays one DataFusion
/// can decorrelate; a query that groups, aggregates, limits or combines its
/// rows is read as a derived table first.
fn rows_as_array(q: &Query) -> Box<Query> {
    let mut array = Box::new(q.clone());
    if let SetExpr::Select(sel) = array.body.as_mut()
        && let [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] = sel.projection.as_slice()
        && !is_aggregate(e)
        && !matches!(e, Expr::Function(f) if f.over.is_some())
        && matches!(&sel.group_by, ast::GroupByExpr::Expressions(keys, _) if keys.is_empty())
        && sel.having.is_none()
        && q.limit_clause.is_none()
        && q.fetch.is_none()
    {
        let aggregated = call("array_agg", e.clone());
        sel.projection = vec![SelectItem::UnnamedExpr(aggregated)];
        array.order_by = None;
        return array;
    }
    // The shape of the aggregating query (a fixed text, not the client's).
    let Ok(Some(Statement::Query(mut outer))) = Parser::parse_sql(
        &PostgreSqlDialect {},
        "SELECT array_agg(__leadline_rows.v) FROM (SELECT 1) AS __leadline_rows (v)",
    )
    .map(|mut s| s.pop()) else {
        return array;
    };
    if let SetExpr::Select(sel) = outer.body.as_mut()
        && let Some(TableWithJoins { relation: TableFactor::Derived { subquery, .. }, .. }) = sel.from.first_mut()
    {
        *subquery = array;
    }
    outer
}

fn call(name: &str, e: Expr) -> Expr {
    function(name, vec![e])
}

fn function(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ast::ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|e| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn string(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

/// The plain arguments of a function call.
fn arguments(f: &ast::Function) -> Option<Vec<&Expr>> {
    let FunctionArguments::List(list) = &f.args else { return None };
    list.args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// `function` or `information_schema.function`.
fn is_information_schema_function(name: &ObjectName, function: &str) -> bool {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(f)] => f.value.eq_ignore_ascii_case(function),
        [ObjectNamePart::Identifier(schema), ObjectNamePart::Identifier(f)] => {
            schema.value.eq_ignore_ascii_case("information_schema") && f.value.eq_ignore_ascii_case(function)
        }
        _ => false,
    }
}

/// `1`, `'1'`, `'1'::integer`; or a parameter (`$1::integer`), which has its value
/// only once bound: until then the statement is planned for its shape.
fn is_one(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) | Value::SingleQuotedString(n) => n.trim() == "1",
            Value::Placeholder(_) => true,
            _ => false,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_one(expr),
        _ => false,
    }
}

/// `unnest(generate_series(1, array_length(a)))::int4`: the subscripts of a
/// one-dimensional array, one row each, as PostgreSQL's set-returning
/// functions in a select list give them (and zipped with an `unnest(a)` beside).
fn subscripts(array: Expr) -> Expr {
    let series =
        function("generate_series", vec![Expr::value(Value::Number("1".into(), false)), call("array_length", array)]);
    cast(call("unnest", series), ast::DataType::Int(None))
}

fn cast(e: Expr, data_type: ast::DataType) -> Expr {
    Expr::Cast { kind: ast::CastKind::Cast, expr: Box::new(e), data_type, array: false, format: None }
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

/// PostgreSQL's column name for an unaliased select item (FigureColname).
fn figure_name(e: &Expr) -> Option<String> {
    figure(e).map(|(name, _)| name)
}

/// FigureColnameInternal: a name and how strongly the expression gives it
/// (2: a column, a function, a field; 1: a cast's type, `case`), so that a
/// `CASE` is named after its `ELSE` when that names something strongly.
fn figure(e: &Expr) -> Option<(String, u8)> {
    let strong = |name: String| Some((name, 2));
    match e {
        Expr::Identifier(id) => strong(ident_name(id)),
        Expr::CompoundIdentifier(ids) => strong(ident_name(ids.last()?)),
        Expr::Function(f) => strong(last_name(&f.name)),
        Expr::Cast { expr, data_type, .. } => match figure(expr) {
            Some((name, 2)) => strong(name),
            _ => Some((cast_type_name(data_type), 1)),
        },
        Expr::Nested(e) => figure(e),
        Expr::Case { else_result, .. } => match else_result.as_deref().and_then(figure) {
            Some((name, 2)) => strong(name),
            _ => Some(("case".into(), 1)),
        },
        Expr::Array(_) => strong("array".into()),
        Expr::Exists { .. } => strong("exists".into()),
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => s.projection.first().and_then(|p| match p {
                SelectItem::UnnamedExpr(e) => figure(e),
                SelectItem::ExprWithAlias { alias, .. } => strong(ident_name(alias)),
                _ => None,
            }),
            _ => None,
        },
        Expr::CompoundFieldAccess { access_chain, .. } => access_chain.last().and_then(|a| match a {
            ast::AccessExpr::Dot(e) => figure(e),
            _ => None,
        }),
        Expr::Extract { .. } => strong("extract".into()),
        Expr::Position { .. } => strong("position".into()),
        Expr::Substring { .. } => strong("substring".into()),
        Expr::Trim { .. } => strong("btrim".into()),
        Expr::Ceil { .. } => strong("ceil".into()),
        Expr::Floor { .. } => strong("floor".into()),
        _ => None,
    }
}

/// The name PostgreSQL gives a cast of something unnamed: its type's.
fn cast_type_name(data_type: &ast::DataType) -> String {
    match data_type {
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
        ast::DataType::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => "timestamptz".into(),
        ast::DataType::Timestamp(..) => "timestamp".into(),
        ast::DataType::Date => "date".into(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// The select list of a query's first SELECT (where its column names come from).
fn top_select(stmt: &mut Statement) -> Option<&mut Select> {
    let Statement::Query(q) = stmt else { return None };
    let mut body = q.body.as_mut();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_mut(),
            SetExpr::Query(inner) => body = inner.body.as_mut(),
            SetExpr::Select(sel) => return Some(sel),
            _ => return None,
        }
    }
}

/// Gives every unaliased, non-column select item of the top-level query
/// PostgreSQL's name as an alias (so `SELECT count(*)` is named `count` and
/// `SELECT 1, 1` plans), and returns the names clients should see if the
/// select list has no wildcard.
pub fn name_columns(stmt: &mut Statement) -> Option<Vec<String>> {
    let sel = top_select(stmt)?;
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
            // PostgreSQL allows two columns of one name; DataFusion needs a unique internal alias.
            SelectItem::ExprWithAlias { alias, .. } => {
                let name = ident_name(alias);
                let count = seen.entry(name.clone()).or_insert(0);
                *count += 1;
                if *count > 1 {
                    *alias = Ident::with_quote('"', format!("{name}__{n}"));
                }
                names.push(name);
            }
            _ => wildcard = true,
        }
    }
    (!wildcard).then_some(names)
}

#[cfg(test)]
mod tests {
    use super::super::{run, test_session};
    use super::*;
    use crate::pg::encode::pg_type_of;

    fn parse(sql: &str) -> Statement {
        match Parser::parse_sql(&PostgreSqlDialect {}, sql) {
            Ok(mut stmts) if stmts.len() == 1 => stmts.remove(0),
            other => panic!("{sql}: {other:?}"),
        }
    }

    /// The statement after the rewrites, as SQL.
    fn rewritten(sql: &str) -> String {
        let (_, info) = test_session();
        let mut stmt = parse(sql);
        if let Err(e) = rewrite(&mut stmt, &info) {
            panic!("{sql}: {e}");
        }
        stmt.to_string()
    }

    async fn rows(sql: &str) -> Result<Vec<Vec<String>>, PgError> {
        let (ctx, info) = test_session();
        run(&ctx, &info, sql).await
    }

    async fn sqlstate(sql: &str) -> &'static str {
        match rows(sql).await {
            Ok(rows) => panic!("{sql} answered {rows:?}"),
            Err(e) => e.parts().0,
        }
    }

    #[test]
    fn pg_catalog_qualifiers_are_dropped() {
        assert_eq!(
            rewritten("SELECT c.relname FROM pg_catalog.pg_class c JOIN \"pg_catalog\".pg_namespace n ON true"),
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON true"
        );
        assert_eq!(rewritten("SELECT PG_CATALOG.PG_GET_EXPR(x, y)"), "SELECT PG_GET_EXPR(x, y)");
        assert_eq!(
            rewritten("SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class ORDER BY pg_catalog.pg_class.oid"),
            "SELECT pg_class.relname FROM pg_class ORDER BY pg_class.oid"
        );
        assert_eq!(
            rewritten("SELECT pg_catalog.pg_class.* FROM pg_catalog.pg_class"),
            "SELECT pg_class.* FROM pg_class"
        );
        assert_eq!(
            rewritten("SELECT * FROM pg_catalog.generate_series(1, 2) s"),
            "SELECT * FROM generate_series(1, 2) s (s)"
        );
    }

    #[test]
    fn pg_catalog_types_become_builtin_types() {
        assert_eq!(
            rewritten("SELECT a::pg_catalog.text, b::pg_catalog.int2[], c::pg_catalog.regtype::pg_catalog.text"),
            "SELECT a::TEXT, b::INT2[], pg_leadline_regtype(c)::TEXT"
        );
        // A quoted name is that type, not the keyword: "char" is PostgreSQL's one-byte type.
        assert_eq!(rewritten("SELECT 'f'::pg_catalog.\"char\""), "SELECT CAST('f' AS TEXT)");
    }

    #[test]
    fn operators_of_pg_catalog_are_the_builtin_operators() {
        assert_eq!(
            rewritten("SELECT a OPERATOR(pg_catalog.~) '^x$', b OPERATOR(pg_catalog.!~*) 'y', c OPERATOR(=) 1"),
            "SELECT a ~ '^x$', b !~* 'y', c = 1"
        );
        // An operator leadline does not know stays for DataFusion to refuse.
        assert_eq!(rewritten("SELECT a OPERATOR(myschema.~) b"), "SELECT a OPERATOR(myschema.~) b");
    }

    #[test]
    fn bytewise_collations_are_dropped() {
        assert_eq!(
            rewritten(
                "SELECT a COLLATE pg_catalog.default, b COLLATE \"C\", c COLLATE \"POSIX\", \
                 d COLLATE pg_catalog.\"default\" FROM t"
            ),
            "SELECT a, b, c, d FROM t"
        );
        assert_eq!(
            rewritten(
                "SELECT relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(climate)$' COLLATE pg_catalog.default"
            ),
            "SELECT relname FROM pg_class c WHERE c.relname ~ '^(climate)$'"
        );
        assert_eq!(rewritten("SELECT a COLLATE \"de_DE\" FROM t"), "SELECT a COLLATE \"de_DE\" FROM t");
    }

    #[test]
    fn literals_and_quoted_identifiers_are_never_rewritten() {
        let sql = "SELECT 'a pg_catalog.pg_class b', 'x OPERATOR(pg_catalog.~) y', 'COLLATE pg_catalog.default', \
                   E'pg_catalog.\\'x', $$pg_catalog.pg_type$$, \"pg_catalog.pg_class\".relname, 1 AS \"pg_catalog.x\" \
                   FROM \"pg_catalog.pg_class\", \"PG_CATALOG\".pg_type";
        assert_eq!(rewritten(sql), parse(sql).to_string());
    }

    #[tokio::test]
    async fn a_literal_naming_pg_catalog_comes_back_unchanged() -> Result<(), PgError> {
        assert_eq!(rows("SELECT 'a pg_catalog.pg_class b'").await?, [["a pg_catalog.pg_class b"]]);
        assert_eq!(
            rows("SELECT relname FROM pg_catalog.pg_class WHERE relname OPERATOR(pg_catalog.~) '^clim' COLLATE pg_catalog.default")
                .await?,
            [["climate"]]
        );
        Ok(())
    }

    #[tokio::test]
    async fn reg_casts_of_literals_are_oids() -> Result<(), PgError> {
        assert_eq!(
            rows(
                "SELECT 'climate'::regclass, 'pg_catalog.pg_class'::pg_catalog.regclass, 'integer'::regtype, \
                  'public'::regnamespace, '42'::oid"
            )
            .await?,
            [["16384", "1259", "23", "2200", "42"]]
        );
        assert_eq!(rows("SELECT atttypid::regtype::text FROM pg_attribute WHERE attnum = 2").await?, [["float8"]]);
        assert_eq!(sqlstate("SELECT 'no_such_table'::regclass").await, "42P01");
        assert_eq!(sqlstate("SELECT 'no_such_type'::regtype").await, "42704");
        assert_eq!(sqlstate("SELECT 'no_such_schema'::regnamespace").await, "3F000");
        assert_eq!(sqlstate("SELECT 'x'::oid").await, "22P02");
        Ok(())
    }

    #[tokio::test]
    async fn like_escape_becomes_backslashes() -> Result<(), PgError> {
        assert_eq!(rewritten("SELECT 'a_b' LIKE 'a#_b' ESCAPE '#'"), "SELECT 'a_b' LIKE 'a\\_b'");
        assert_eq!(
            rows("SELECT 'a_b' LIKE 'a#_b' ESCAPE '#', 'axb' LIKE 'a#_b' ESCAPE '#'").await?,
            [["true", "false"]]
        );
        Ok(())
    }

    #[tokio::test]
    async fn set_returning_functions_and_array_subqueries_plan() -> Result<(), PgError> {
        assert_eq!(rows("SELECT s FROM generate_series(1, 2) s").await?, [["1"], ["2"]]);
        assert_eq!(
            rows("SELECT unnest(a), generate_subscripts(a, 1) FROM (SELECT make_array('p', 'q') AS a) t").await?,
            [["p", "1"], ["q", "2"]]
        );
        // pgjdbc's getPrimaryKeys: `_pg_expandarray` rows and `(record).field`.
        assert_eq!(
            rows(
                "SELECT k.n, (k.keys).x FROM (SELECT (information_schema._pg_expandarray(a)).n AS n, \
                  information_schema._pg_expandarray(a) AS keys FROM (SELECT make_array(7, 9) AS a) t) k"
            )
            .await?,
            [["1", "7"], ["2", "9"]]
        );
        assert_eq!(rows("SELECT ARRAY(SELECT relname FROM pg_class)").await?, [["[climate]"]]);
        // A correlated lookup by OID: aggregated so DataFusion can decorrelate it.
        assert_eq!(
            rows(
                "SELECT a.attname, (SELECT t.typname FROM pg_type t WHERE t.oid = a.atttypid) FROM pg_attribute a \
                  WHERE a.attnum = 1"
            )
            .await?,
            [["date", "date"]]
        );
        Ok(())
    }

    #[tokio::test]
    async fn subqueries_over_stub_relations_are_their_empty_answer() -> Result<(), PgError> {
        assert_eq!(
            rows(
                "SELECT c.relname, (SELECT d.description FROM pg_description d WHERE d.objoid = c.oid), \
                  EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid), \
                  c.oid IN (SELECT i.indrelid FROM pg_index i), \
                  ARRAY(SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = c.oid) FROM pg_class c"
            )
            .await?,
            [["climate", "NULL", "false", "false", "NULL"]]
        );
        // …but what they name must exist; a nested query's `d` is its own.
        assert_eq!(sqlstate("SELECT (SELECT d.no_such_column FROM pg_description d) FROM pg_class").await, "42703");
        assert_eq!(
            rows(
                "SELECT (SELECT d.description FROM pg_description d WHERE d.objoid IN \
                  (SELECT d.oid FROM pg_class d WHERE d.relname = 'climate')) FROM pg_class"
            )
            .await?,
            [["NULL"]]
        );
        Ok(())
    }

    #[tokio::test]
    async fn with_queries_over_stub_relations_are_empty() -> Result<(), PgError> {
        // ADBC's `adbc_get_objects` constraint query: a CTE over `pg_constraint`
        // with an `unnest` of a column of another `FROM` item, which
        // DataFusion's physical planner refuses.
        let sql = "WITH c AS (SELECT con.conname, conkeys FROM pg_constraint AS con \
                   CROSS JOIN UNNEST(con.conkey) AS conkeys WHERE con.contype = 'u'), \
                   named AS (SELECT conname FROM c) \
                   SELECT conname, 'x' AS kind FROM named UNION ALL SELECT conname, 'y' FROM c";
        assert!(query_is_empty(match &parse(sql) {
            Statement::Query(q) => q,
            _ => unreachable!(),
        }));
        assert!(rows(sql).await?.is_empty());
        // A CTE with rows, even one named like a stub relation, is not empty.
        assert_eq!(
            rows("WITH pg_index AS (SELECT relname FROM pg_class) SELECT * FROM pg_index").await?,
            [["climate"]]
        );
        Ok(())
    }

    #[tokio::test]
    async fn in_subqueries_in_order_by_and_select_lists_run() -> Result<(), PgError> {
        // Grafana's table list, in short: `IN (SELECT …)` in ORDER BY. The set's
        // column is named like the tested value, which must still be `t.v`.
        let sets = [
            "SELECT x FROM (VALUES ('b'), ('c')) s(x)",
            "SELECT v FROM (VALUES ('b'), ('c')) s(v)",
            "SELECT x FROM (VALUES ('b'), ('c')) AS __leadline_rows(x)",
        ];
        for set in sets {
            let sql = format!(
                "SELECT v FROM (VALUES ('a'), ('b'), ('c')) t(v) ORDER BY CASE WHEN v IN ({set}) THEN 0 ELSE 1 END, 1"
            );
            assert_eq!(rows(&sql).await?, [["b"], ["c"], ["a"]], "{sql}");
        }
        // Over a catalog relation, sorted by an output name; with a wildcard.
        let sql =
            "SELECT relname AS t FROM pg_class ORDER BY CASE WHEN relname IN (SELECT 'climate') THEN 0 ELSE 1 END, t";
        assert_eq!(rows(sql).await?, [["climate"]]);
        assert_eq!(
            rows("SELECT * FROM (VALUES ('a'), ('b'), ('c')) t(v) ORDER BY v IN (SELECT 'b') DESC, v").await?,
            [["b"], ["a"], ["c"]]
        );
        // PostgreSQL's three values: found, not found, NULL, and no rows at all.
        assert_eq!(
            rows(
                "SELECT v, v IN (SELECT 2), v NOT IN (SELECT x FROM (VALUES (2), (NULL)) s(x)), \
                 v IN (SELECT 1 WHERE false) FROM (VALUES (1), (2), (NULL)) t(v) ORDER BY v"
            )
            .await?,
            [["1", "false", "NULL", "false"], ["2", "true", "false", "false"], ["NULL", "NULL", "NULL", "false"]]
        );
        let sql = "SELECT relname IN (SELECT 'climate'), 'x' IN (SELECT 'climate'), 'x' IN (SELECT NULL), \
                   'x' NOT IN (SELECT relname FROM pg_class WHERE false) FROM pg_class";
        assert_eq!(rows(sql).await?, [["true", "false", "NULL", "true"]]);
        // Sets that aggregate, limit or combine their rows (answers from PostgreSQL 15).
        assert_eq!(
            rows(
                "SELECT v, v IN (SELECT max(x) FROM (VALUES (1), (2)) s(x)), \
                 v IN (SELECT x FROM (VALUES (1), (2)) s(x) ORDER BY x LIMIT 1), v IN (SELECT 1 UNION SELECT 3) \
                 FROM (VALUES (1), (2), (3)) t(v) ORDER BY v"
            )
            .await?,
            [["1", "false", "true", "true"], ["2", "true", "false", "false"], ["3", "false", "false", "true"]]
        );
        // A set correlated with the row, in a select list and in ORDER BY.
        let (set, t) = (
            "SELECT x FROM (VALUES (1, 'a'), (2, 'b')) s(x, k) WHERE s.k = t.k",
            "(VALUES (1, 'a'), (1, 'b'), (2, 'b')) t(v, k)",
        );
        assert_eq!(
            rows(&format!("SELECT v, k, v IN ({set}) FROM {t} ORDER BY v, k")).await?,
            [["1", "a", "true"], ["1", "b", "false"], ["2", "b", "true"]]
        );
        assert_eq!(
            rows(&format!("SELECT v, k FROM {t} ORDER BY v IN ({set}) DESC, v, k")).await?,
            [["1", "a"], ["2", "b"], ["1", "b"]]
        );
        // Any correlated subquery in ORDER BY.
        assert_eq!(
            rows(
                "SELECT v FROM (VALUES ('a'), ('b'), ('c')) t(v) \
                 ORDER BY (SELECT count(*) FROM (VALUES ('b'), ('c'), ('c')) s(x) WHERE s.x = t.v) DESC, 1"
            )
            .await?,
            [["c"], ["b"], ["a"]]
        );
        // Named as PostgreSQL names what the client wrote.
        let (ctx, info) = test_session();
        let Planned::Plan { names, .. } =
            plan(&ctx.state(), &info, parse("SELECT 1 IN (SELECT 1), 2 IN (SELECT 2) AS Found")).await?
        else {
            panic!("planned empty");
        };
        assert_eq!(names, Some(["?column?", "found"].map(String::from).to_vec()));
        Ok(())
    }

    #[tokio::test]
    async fn an_unknown_column_of_a_stub_relation_is_42703() {
        assert_eq!(sqlstate("SELECT no_such_column FROM pg_index").await, "42703");
        assert_eq!(sqlstate("SELECT i.no_such_column FROM pg_catalog.pg_index i").await, "42703");
        assert_eq!(sqlstate("SELECT no_such_function(indrelid) FROM pg_index").await, "42883");
        assert_eq!(sqlstate("SELECT * FROM pg_index JOIN no_such_table ON true").await, "42P01");
    }

    #[tokio::test]
    async fn a_stub_query_datafusion_cannot_type_is_empty() -> Result<(), PgError> {
        let (ctx, info) = test_session();
        // `oid[] = '{0}'`: PostgreSQL casts the literal, DataFusion cannot.
        let sql = "SELECT pol.polname, pol.polpermissive AS p, NULL FROM pg_policy pol WHERE pol.polroles = '{0}'";
        let Planned::Empty { columns } = plan(&ctx.state(), &info, parse(sql)).await? else {
            panic!("{sql} planned");
        };
        // Named and typed as PostgreSQL's: a `name`, a `bool`, an unknown (text).
        let shown: Vec<_> = columns.iter().map(|c| (c.name().as_str(), pg_type_of(c))).collect();
        assert_eq!(shown, [("polname", Type::NAME), ("p", Type::BOOL), ("?column?", Type::TEXT)]);
        Ok(())
    }

    #[tokio::test]
    async fn a_table_function_called_with_arguments_it_does_not_take_is_42883() {
        assert_eq!(sqlstate("SELECT * FROM dora_metrics()").await, "42883");
        assert_eq!(sqlstate("SELECT * FROM public.dora_metrics('week', NULL, NULL, NULL)").await, "42883");
        assert_eq!(sqlstate("SELECT * FROM dora_quality('week')").await, "42883");
    }

    #[test]
    fn table_functions_resolve_like_tables() {
        for sql in [
            "SELECT * FROM DORA_METRICS('week')",
            "SELECT * FROM \"dora_metrics\"('week')",
            "SELECT * FROM public.dora_metrics('week')",
            "SELECT * FROM leadline.public.dora_metrics('week')",
        ] {
            assert_eq!(rewritten(sql), "SELECT * FROM dora_metrics('week')", "{sql}");
        }
        // A quoted name is exact, and another schema stays for the planner to refuse.
        assert_eq!(rewritten("SELECT * FROM \"DORA_METRICS\"('week')"), "SELECT * FROM DORA_METRICS('week')");
        assert_eq!(rewritten("SELECT * FROM other.dora_metrics('week')"), "SELECT * FROM other.dora_metrics('week')");
        assert_eq!(rewritten("SELECT * FROM leadline.public.climate"), "SELECT * FROM public.climate");
    }

    #[tokio::test]
    async fn special_names_arrays_and_reg_values() -> Result<(), PgError> {
        assert_eq!(rows("SELECT CURRENT_SCHEMA, CURRENT_ROLE").await?, [["public", "analyst"]]);
        assert_eq!(rows("SELECT '{r,\"p q\",NULL}'::text[], '{}'::text[]").await?, [["[r, p q, NULL]", "[]"]]);
        assert_eq!(rows("SELECT relname FROM pg_class WHERE relkind = ANY('{r,p}'::text[])").await?, [["climate"]]);
        assert_eq!(rows("SELECT '{1,2}'::int[]").await?, [["[1, 2]"]]);
        assert_eq!(rows("SELECT '{int4,text}'::regtype[]").await?, [["[23, 25]"]]);
        assert_eq!(sqlstate("SELECT '{a,'::text[]").await, "22P02");
        assert_eq!(sqlstate("SELECT '{nope}'::regtype[]").await, "42704");
        // A reg* cast of a value: a name or an OID; NULL stays NULL.
        assert_eq!(
            rows(
                "SELECT CAST(CAST(FORMAT('%I.%I', 'public', relname) AS REGCLASS) AS OID), CAST(oid AS regclass), \
                  CAST(CAST(NULL AS TEXT) AS regclass) FROM pg_class"
            )
            .await?,
            [["16384", "16384", "NULL"]]
        );
        assert_eq!(sqlstate("SELECT CAST(relname || 'x' AS regclass) FROM pg_class").await, "42P01");
        // regproc columns compare with OIDs; regtype values with reg literals.
        // As in PostgreSQL, only `trigger` has no receive function.
        assert_eq!(rows("SELECT typname FROM pg_type WHERE typreceive = 0").await?, [["trigger"]]);
        // Named as PostgreSQL names them: ADBC maps types by these names.
        assert_eq!(
            rows(
                "SELECT typreceive::text FROM pg_type WHERE typreceive != 0 \
                 AND typname IN ('int4', '_text', 'timestamptz', 'interval') ORDER BY 1"
            )
            .await?,
            [["array_recv"], ["int4recv"], ["interval_recv"], ["timestamptz_recv"]]
        );
        assert_eq!(
            rows("SELECT count(*) FROM pg_attribute WHERE atttypid::regtype != 'trigger'::regtype").await?,
            [["5"]]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_scalar_function_in_from_is_a_one_row_relation() -> Result<(), PgError> {
        assert_eq!(
            rows(
                "SELECT trim(s[i]) FROM generate_series(array_lower(string_to_array('a, b', ','), 1), \
                  array_upper(string_to_array('a, b', ','), 1)) AS i, string_to_array('a, b', ',') s ORDER BY 1"
            )
            .await?,
            [["a"], ["b"]]
        );
        assert_eq!(sqlstate("SELECT * FROM no_such_function(1)").await, "42883");
        Ok(())
    }

    #[test]
    fn columns_are_named_as_postgres_names_them() {
        let mut stmt =
            parse("SELECT count(*), 1, 1, c.relname, x.y::int4, CAST(z AS text) AS t, now() FROM pg_class c");
        assert_eq!(
            name_columns(&mut stmt),
            Some(["count", "?column?", "?column?", "relname", "y", "t", "now"].map(String::from).to_vec())
        );
        assert_eq!(name_columns(&mut parse("SELECT *, 1 FROM pg_class")), None);
    }

    #[tokio::test]
    async fn two_columns_may_have_one_name() -> Result<(), PgError> {
        let (ctx, info) = test_session();
        let Planned::Plan { names, .. } = plan(&ctx.state(), &info, parse("SELECT 1 AS a, 2 AS A, 3 AS \"A\"")).await?
        else {
            panic!("planned empty");
        };
        assert_eq!(names, Some(["a", "a", "A"].map(String::from).to_vec()));
        assert_eq!(rows("SELECT 1 AS a, 2 AS a").await?, [["1", "2"]]);
        Ok(())
    }
}
