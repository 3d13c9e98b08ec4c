//! A compact `pg_catalog` and `information_schema` over the session's tables
//! ([`tables`]), the PostgreSQL functions catalog queries call
//! ([`functions`]), and the rewrites of a parsed statement that let DataFusion
//! run what clients send ([`rewrite`]: `pg_catalog.` qualifiers,
//! `OPERATOR(pg_catalog.~)`, `COLLATE pg_catalog.default`, `::regclass`,
//! subqueries over relations leadline never has rows in).
//!
//! `rewrite` and `functions` read what `tables` knows (types, relation OIDs);
//! `tables` uses neither.
//!
//! Why not `datafusion-pg-catalog`: its release for DataFusion 55 turns on
//! DataFusion's default features (compression codecs and their C builds), and
//! it failed pgjdbc's `getPrimaryKeys` and psql's `\df`; what the corpus in
//! `../shared/pg-corpus` needs fits in this module.

mod arrays;
mod format;
mod functions;
mod rewrite;
mod tables;
mod templates;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::common::Result as DfResult;
use datafusion::prelude::SessionContext;

pub use rewrite::{Planned, plan, rewrite_in};
pub use tables::{CatalogInfo, TableInfo, ViewDetails};

pub const NS_PG_CATALOG: i32 = 11;
pub const NS_PUBLIC: i32 = 2200;
pub const NS_INFORMATION_SCHEMA: i32 = 13183;
pub const OWNER: i32 = 10;
pub const FIRST_TABLE_OID: i32 = 16384;
/// Durable views' OIDs start here (plus the view's id, which `CREATE OR
/// REPLACE` keeps); temporary views count down from `i32::MAX`.
pub const FIRST_VIEW_OID: i32 = 1_000_000;

/// The OID of the view with the engine's `id`.
pub fn view_oid(id: u32, temporary: bool) -> i32 {
    if temporary {
        i32::MAX - (u32::MAX - id).min(i32::MAX as u32 / 2) as i32
    } else {
        FIRST_VIEW_OID.saturating_add(id.min(i32::MAX as u32 / 2) as i32)
    }
}
pub const DATABASE: &str = "leadline";
pub const SERVER_VERSION: &str = "16.6";
pub const SERVER_VERSION_NUM: &str = "160006";

/// `SELECT version()`: SQLAlchemy and others parse the leading `PostgreSQL N.M`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (leadline {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION")
    )
}

/// A session's variables: what `SHOW` answers, `pg_settings` lists and
/// `current_setting`/`set_config` read and write.
pub type Settings = Arc<Mutex<BTreeMap<String, String>>>;

/// Registers the catalog tables and functions in a session.
pub fn register(ctx: &SessionContext, info: Arc<CatalogInfo>, settings: Settings) -> DfResult<()> {
    // Tables first: `pg_proc` lists the functions the session had before these.
    tables::register_tables(ctx, &info, &settings)?;
    functions::register_functions(ctx, info, settings);
    Ok(())
}

/// Lists the session's views anew in the catalog relations, after
/// [`CatalogInfo::set_views`].
pub fn register_views(ctx: &SessionContext, info: &CatalogInfo) -> DfResult<()> {
    tables::register_relations(ctx, info)
}

/// A session with the catalog registered over one user table, `climate`
/// (the table of `../shared/pg-corpus`), at OID [`FIRST_TABLE_OID`].
#[cfg(test)]
pub(crate) fn test_session() -> (SessionContext, Arc<CatalogInfo>) {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;

    let schema = Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, true),
        Field::new("meantemp", DataType::Float64, false),
        Field::new("humidity", DataType::Float64, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
    ]));
    let ctx = SessionContext::new();
    let table = MemTable::try_new(schema.clone(), vec![vec![]]).expect("an empty table");
    ctx.register_table("climate", Arc::new(table)).expect("register climate");
    let info = Arc::new(CatalogInfo {
        tables: vec![TableInfo {
            oid: FIRST_TABLE_OID,
            name: "climate".into(),
            schema,
            rows: 3,
            insertable: false,
            view: None,
        }],
        views: Default::default(),
        user: "analyst".into(),
        roles: vec!["analyst".into()],
    });
    let settings: Settings = Arc::new(Mutex::new(BTreeMap::from(
        [("datestyle", "ISO, MDY"), ("default_table_access_method", "heap"), ("search_path", "\"$user\", public")]
            .map(|(k, v)| (k.to_string(), v.to_string())),
    )));
    register(&ctx, info.clone(), settings).expect("register the catalog");
    (ctx, info)
}

/// Runs one statement as the server does (parse, [`plan`], execute) and
/// returns its rows as text, `NULL` for nulls.
#[cfg(test)]
pub(crate) async fn run(
    ctx: &SessionContext,
    info: &CatalogInfo,
    sql: &str,
) -> Result<Vec<Vec<String>>, crate::pg::errors::PgError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql)?;
    assert_eq!(stmts.len(), 1, "one statement: {sql}");
    let plan = match plan(&ctx.state(), info, stmts.remove(0)).await? {
        Planned::Plan { plan, .. } => plan,
        Planned::Empty { .. } => return Ok(vec![]),
    };
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in &batches {
        let columns: Vec<ArrayFormatter> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c.value(row).to_string()).collect());
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::statement::{Kind, classify, split_statements, substitute};

    /// `-- [execute S_1 pid=1] parameters: $1 = 'a', $2 = 'it''s'` → the
    /// parameters as SQL literals.
    fn parameters(header: &str) -> Vec<String> {
        let Some((_, list)) = header.split_once("parameters: ") else { return vec![] };
        let mut out = Vec::new();
        let mut chars = list.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\'' {
                continue;
            }
            let mut value = String::from("'");
            while let Some(c) = chars.next() {
                value.push(c);
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        value.extend(chars.next());
                    } else {
                        break;
                    }
                }
            }
            out.push(value);
        }
        out
    }

    /// Every query of `../shared/pg-corpus` and `tests/pg-corpus` (what real
    /// clients send) plans and runs against the catalog, over the corpus's
    /// `climate` table.
    #[tokio::test]
    async fn every_corpus_query_plans_and_runs() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in [root.join("../../shared/pg-corpus"), root.join("../tests/pg-corpus")] {
            files.extend(
                std::fs::read_dir(&dir)
                    .unwrap_or_else(|e| panic!("{}: {e} (the checkout must sit beside shared/)", dir.display()))
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "sql")),
            );
        }
        files.sort();
        let (ctx, info) = test_session();
        let mut failures = Vec::new();
        let mut queries = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let mut entries: Vec<(&str, String)> = Vec::new();
            for line in text.lines() {
                match entries.last_mut() {
                    _ if line.starts_with("-- [") => entries.push((line, String::new())),
                    Some((_, body)) => {
                        body.push_str(line);
                        body.push('\n');
                    }
                    None => {}
                }
            }
            for (header, body) in entries {
                let sql = substitute(&body, &parameters(header)).unwrap_or_else(|e| panic!("{header}: {e}"));
                for stmt in split_statements(&sql).into_iter().filter(|s| classify(s) == Kind::Query) {
                    queries += 1;
                    if let Err(e) = run(&ctx, &info, &stmt).await {
                        failures.push(format!("{}: {e}\n{stmt}", file.display()));
                    }
                }
            }
        }
        assert!(queries > 60, "only {queries} corpus queries");
        assert!(
            failures.is_empty(),
            "{} of {queries} corpus queries failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}
