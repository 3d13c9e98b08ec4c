//! The types of a statement's untyped parameters, from their context, as
//! PostgreSQL infers them: DataFusion types `col = $1` and other
//! comparisons itself; this adds `LIMIT $1` / `OFFSET $1` (int8, postgres.js
//! sends `LIMIT $2` untyped) and `col = ANY($1)` (an array of `col`'s type,
//! pgcli sends `relkind = ANY($1)` with `'{r,p,f}'`).

use std::collections::HashMap;

use arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::{Placeholder, ScalarFunction};
use datafusion::logical_expr::{Expr, ExprSchemable, Limit, LogicalPlan};

/// Parameter id (`$1`) → its type, where the plan says one.
pub fn parameter_types(plan: &LogicalPlan) -> HashMap<String, Option<DataType>> {
    let mut types = plan.get_parameter_types().unwrap_or_default();
    let mut infer = |id: &str, ty: DataType| {
        let slot = types.entry(id.to_string()).or_insert(None);
        if slot.is_none() {
            *slot = Some(ty);
        }
    };
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Limit(Limit { skip, fetch, .. }) = node {
            for e in skip.iter().chain(fetch.iter()) {
                if let Expr::Placeholder(Placeholder { id, field: None }) = e.as_ref() {
                    infer(id, DataType::Int64);
                }
            }
        }
        let schema = input_schema(node);
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Some((id, element)) = any_parameter(e, &schema) {
                    infer(&id, DataType::List(std::sync::Arc::new(Field::new("item", element, true))));
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    types
}

/// `needle = ANY($n)` is planned as `array_has($n, needle)` (and its
/// relatives over the array): `$n`'s id and the needle's type.
fn any_parameter(e: &Expr, schema: &DFSchema) -> Option<(String, DataType)> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = e else { return None };
    if !matches!(func.name(), "array_has" | "array_contains" | "list_has") {
        return None;
    }
    let [Expr::Placeholder(Placeholder { id, field: None }), needle] = args.as_slice() else { return None };
    let ty = needle.get_type(schema).ok()?;
    Some((id.clone(), ty))
}

/// The schema a plan node's expressions are evaluated over: its input's,
/// or its inputs' together (a join's condition).
fn input_schema(node: &LogicalPlan) -> DFSchema {
    let inputs = node.inputs();
    let mut schema = DFSchema::empty();
    for input in inputs {
        let merged: DfResult<DFSchema> = schema.join(input.schema());
        match merged {
            Ok(s) => schema = s,
            Err(_) => schema.merge(input.schema()),
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::errors::PgError;
    use crate::pg::pg_catalog::{Planned, plan, test_session};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    async fn types(sql: &str) -> Result<Vec<Option<DataType>>, PgError> {
        let (ctx, info) = test_session();
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)?.remove(0);
        let Planned::Plan { plan, .. } = plan(&ctx.state(), &info, stmt).await? else { panic!("{sql}: no plan") };
        let types = parameter_types(&plan);
        Ok((1..=types.len()).map(|n| types.get(&format!("${n}")).cloned().flatten()).collect())
    }

    fn list(dt: DataType) -> DataType {
        DataType::List(std::sync::Arc::new(Field::new("item", dt, true)))
    }

    #[tokio::test]
    async fn parameters_take_their_type_from_context() -> Result<(), PgError> {
        assert_eq!(types("SELECT city FROM climate LIMIT $1").await?, [Some(DataType::Int64)]);
        assert_eq!(
            types("SELECT city FROM climate WHERE meantemp > $1 LIMIT $2 OFFSET $3").await?,
            [Some(DataType::Float64), Some(DataType::Int64), Some(DataType::Int64)]
        );
        assert_eq!(types("SELECT relname FROM pg_class WHERE relkind = ANY($1)").await?, [Some(list(DataType::Utf8))]);
        // A parameter nothing types stays unknown (the client's text).
        assert_eq!(types("SELECT $1").await?, [None]);
        Ok(())
    }
}
