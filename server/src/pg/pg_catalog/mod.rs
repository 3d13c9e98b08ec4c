//! A compact `pg_catalog` and `information_schema` over the session's tables
//! ([`tables`]), the PostgreSQL functions catalog queries call
//! ([`functions`]), and the rewrites that let DataFusion run what clients
//! send ([`rewrite`]: `::regclass`, `OPERATOR(pg_catalog.~)`,
//! `COLLATE pg_catalog.default`, subqueries over relations leadline never
//! has rows in).
//!
//! `rewrite` and `functions` read what `tables` knows (types, relation OIDs);
//! `tables` uses neither.
//!
//! Why not `datafusion-pg-catalog`: its release for DataFusion 55 turns on
//! DataFusion's default features (compression codecs and their C builds), and
//! it failed pgjdbc's `getPrimaryKeys` and psql's `\df`; what the corpus in
//! `../shared/pg-corpus` needs fits in this module.

mod functions;
mod rewrite;
mod tables;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::common::Result as DfResult;
use datafusion::prelude::SessionContext;

pub use rewrite::{empty_result_names, name_columns, rewrite_ast, rewrite_text};
pub use tables::{CatalogInfo, TableInfo};

pub const NS_PG_CATALOG: i32 = 11;
pub const NS_PUBLIC: i32 = 2200;
pub const NS_INFORMATION_SCHEMA: i32 = 13183;
pub const OWNER: i32 = 10;
pub const FIRST_TABLE_OID: i32 = 16384;
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
