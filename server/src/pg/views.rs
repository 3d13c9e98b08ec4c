//! `CREATE [OR REPLACE] [TEMP] VIEW`, `DROP VIEW` and `ALTER TABLE view
//! RENAME TO` (how dbt swaps a new view in): parsed and named here, done by
//! the engine's `ReadSession`, which keeps the views. Other DDL stays
//! unsupported.

use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, CreateTableOptions, CreateView, Ident, ObjectName, ObjectType, RenameTableNameKind, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use leadline_engine::{Error, RelationProblem};
use pgwire::api::results::Tag;
use pgwire::error::ErrorInfo;

use super::Conn;
use super::errors::PgError;
use super::pg_catalog;

/// Runs one view statement; `unsupported` is the error for any other DDL.
pub async fn run(conn: &Conn, sql: &str, notices: &mut Vec<ErrorInfo>, unsupported: PgError) -> Result<Tag, PgError> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)?;
    let (Some(statement), true) = (statements.pop(), statements.is_empty()) else {
        return Err(PgError::syntax("expected one statement"));
    };
    let what = match &statement {
        Statement::CreateView(_) => "CREATE VIEW",
        Statement::Drop { object_type: ObjectType::View, .. } => "DROP VIEW",
        Statement::AlterTable(_) => "ALTER TABLE",
        _ => return Err(unsupported),
    };
    if conn.read_only {
        return Err(PgError::read_only(what));
    }
    // The relations as they are now: the checks below read the catalog.
    conn.refresh().await?;
    let tag = match statement {
        Statement::CreateView(view) => create(conn, view, notices).await?,
        Statement::Drop { names, if_exists, .. } => drop(conn, &names, if_exists, notices).await?,
        Statement::AlterTable(alter) => {
            let [
                AlterTableOperation::RenameTable {
                    table_name: RenameTableNameKind::To(to) | RenameTableNameKind::As(to),
                },
            ] = alter.operations.as_slice()
            else {
                return Err(unsupported);
            };
            let from = relation_name(&alter.name)?;
            if !conn.info.is_view(&from) {
                if conn.info.table_oid(&from).is_some() {
                    return Err(unsupported);
                }
                if alter.if_exists {
                    notices.push(skipping(&from));
                    return Ok(Tag::new("ALTER TABLE"));
                }
                return Err(PgError::new("42P01", format!("relation \"{from}\" does not exist")));
            }
            conn.catalog.rename_view(&from, &relation_name(to)?).await?;
            Tag::new("ALTER TABLE")
        }
        _ => return Err(unsupported),
    };
    conn.list_views().await?;
    Ok(tag)
}

async fn create(conn: &Conn, view: CreateView, notices: &mut Vec<ErrorInfo>) -> Result<Tag, PgError> {
    if view.materialized {
        return Err(PgError::unsupported(
            "leadline does not support materialized views (a view is computed when read)",
        ));
    }
    if !matches!(view.options, CreateTableOptions::None) || view.to.is_some() {
        return Err(PgError::unsupported("leadline does not support view options"));
    }
    let name = relation_name(&view.name)?;
    let columns: Vec<String> = view.columns.iter().map(|c| fold(&c.name)).collect();
    // The query as leadline runs it: the catalog rewrites applied once, here.
    let mut query = Statement::Query(view.query);
    pg_catalog::rewrite_in(&conn.ctx.state(), &mut query, &conn.info)?;
    let created = conn.catalog.create_view(&name, &query.to_string(), &columns, view.or_replace, view.temporary).await;
    match created {
        Err(Error::Relation { problem: RelationProblem::Exists, message }) if view.if_not_exists => {
            notices.push(ErrorInfo::new("NOTICE".into(), "42P07".into(), format!("{message}, skipping")));
        }
        other => other?,
    }
    Ok(Tag::new("CREATE VIEW"))
}

/// `DROP VIEW [IF EXISTS] a, b [CASCADE]`: all of them or, if one is not a
/// view, none. Nothing records which views read a view, so CASCADE drops the
/// named views only (and RESTRICT does not check).
async fn drop(
    conn: &Conn,
    names: &[ObjectName],
    if_exists: bool,
    notices: &mut Vec<ErrorInfo>,
) -> Result<Tag, PgError> {
    let names = names.iter().map(relation_name).collect::<Result<Vec<_>, _>>()?;
    for name in &names {
        if conn.info.is_view(name) {
            continue;
        }
        if conn.info.table_oid(name).is_some() {
            return Err(PgError::with_hint(
                "42809",
                format!("\"{name}\" is not a view"),
                "leadline's tables are defined by the event log",
            ));
        }
        if !if_exists {
            return Err(PgError::new("42P01", format!("view \"{name}\" does not exist")));
        }
    }
    for name in &names {
        if !conn.catalog.drop_view(name, if_exists).await? {
            notices.push(skipping(name));
        }
    }
    Ok(Tag::new("DROP VIEW"))
}

fn skipping(name: &str) -> ErrorInfo {
    ErrorInfo::new("NOTICE".into(), "00000".into(), format!("view \"{name}\" does not exist, skipping"))
}

/// A relation's name as PostgreSQL folds it: `name`, `public.name` or
/// `db.public.name` (leadline serves one database under any name).
fn relation_name(name: &ObjectName) -> Result<String, PgError> {
    let parts = name
        .0
        .iter()
        .map(|p| p.as_ident().map(fold))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| PgError::syntax(format!("not a relation name: {name}")))?;
    match parts.as_slice() {
        [relation] => Ok(relation.clone()),
        [schema, relation] | [_, schema, relation] if schema == "public" => Ok(relation.clone()),
        [schema, _] | [_, schema, _] => Err(PgError::new("3F000", format!("schema \"{schema}\" does not exist"))),
        _ => Err(PgError::syntax(format!("improper relation name (too many dotted names): {name}"))),
    }
}

/// Unquoted names are folded to lower case, quoted ones kept.
fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(sql: &str) -> Result<String, PgError> {
        match Parser::parse_sql(&PostgreSqlDialect {}, &format!("DROP VIEW {sql}")).unwrap().remove(0) {
            Statement::Drop { names, .. } => relation_name(&names[0]),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn names_fold_like_postgresql() {
        assert_eq!(name("Weekly").unwrap(), "weekly");
        assert_eq!(name("\"Weekly\"").unwrap(), "Weekly");
        assert_eq!(name("public.weekly").unwrap(), "weekly");
        assert_eq!(name("\"leadline\".\"public\".\"m\"").unwrap(), "m");
        assert_eq!(name("other.weekly").unwrap_err().parts().0, "3F000");
    }
}
