//! The `pg_catalog` and `information_schema` relations of a session: what
//! PostgreSQL has in them for leadline's tables (`pg_class`, `pg_attribute`,
//! `pg_type`, `information_schema.columns` …), and the relations leadline
//! never has rows in (`pg_index`, `pg_constraint` …) as empty tables with
//! PostgreSQL's columns, so that queries over them plan and name real columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::format::parse_ident;
use super::{DATABASE, NS_INFORMATION_SCHEMA, NS_PG_CATALOG, NS_PUBLIC, OWNER, Settings};
use pgwire::api::Type;

use crate::pg::encode::{pg_type, with_pg_type};
use crate::pg::errors::PgError;

/// The catalog's relations and their OIDs, for `'pg_class'::regclass` and
/// `to_regclass`: PostgreSQL's own for its system catalogs; views, whose OIDs
/// PostgreSQL assigns at initdb, get fixed ones of that range.
const CATALOG_OIDS: &[(&str, i32)] = &[
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_proc", 1255),
    ("pg_class", 1259),
    ("pg_authid", 1260),
    ("pg_roles", 1260),
    ("pg_auth_members", 1261),
    ("pg_database", 1262),
    ("pg_tablespace", 1213),
    ("pg_foreign_server", 1417),
    ("pg_sequence", 2224),
    ("pg_foreign_data_wrapper", 2328),
    ("pg_shdescription", 2396),
    ("pg_am", 2601),
    ("pg_attrdef", 2604),
    ("pg_constraint", 2606),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_namespace", 2615),
    ("pg_language", 2612),
    ("pg_opclass", 2616),
    ("pg_rewrite", 2618),
    ("pg_trigger", 2620),
    ("pg_extension", 3079),
    ("pg_foreign_table", 3118),
    ("pg_policy", 3256),
    ("pg_statistic_ext", 3381),
    ("pg_collation", 3456),
    ("pg_event_trigger", 3466),
    ("pg_enum", 3501),
    ("pg_range", 3541),
    ("pg_publication", 6104),
    ("pg_publication_rel", 6106),
    ("pg_publication_namespace", 6237),
    ("pg_user", 12001),
    ("pg_tables", 12002),
    ("pg_views", 12003),
    ("pg_matviews", 12004),
    ("pg_indexes", 12005),
    ("pg_settings", 12006),
    ("pg_cursors", 12007),
    ("pg_prepared_statements", 12008),
    ("pg_locks", 12009),
    ("pg_stat_activity", 12010),
    ("pg_stat_activity_empty", 12011),
    ("pg_stat_all_tables", 12012),
    ("pg_stat_user_tables", 12013),
];

/// The `information_schema` views and their OIDs (fixed, as for views above).
const INFORMATION_SCHEMA_OIDS: &[(&str, i32)] = &[
    ("schemata", 13201),
    ("tables", 13202),
    ("columns", 13203),
    ("table_constraints", 13204),
    ("key_column_usage", 13205),
    ("referential_constraints", 13206),
    ("views", 13207),
    ("check_constraints", 13208),
    ("routines", 13209),
];

/// One row of `pg_type`, as PostgreSQL 15 has it.
pub(super) struct PgType {
    pub oid: i32,
    /// `typname`.
    pub name: &'static str,
    /// `typlen`: bytes, or -1 for variable length.
    pub len: i16,
    /// `typbyval`.
    pub byval: bool,
    /// `typcategory`.
    pub category: &'static str,
    /// `typispreferred`.
    pub preferred: bool,
    /// `typelem`: the element type of an array type.
    pub elem: i32,
    /// `typarray`: the array type of this one.
    pub array: i32,
    /// `typalign`.
    pub align: &'static str,
    /// `typstorage`.
    pub storage: &'static str,
    /// `typcollation`.
    pub collation: i32,
    /// `typinput`, `typoutput`, `typreceive`, `typsend` (`-`: none).
    pub io: [&'static str; 4],
    /// `typsubscript`.
    pub subscript: &'static str,
    /// What `format_type` shows.
    pub display: &'static str,
}

/// The types leadline's tables and catalog use, as PostgreSQL 15's `pg_type` has them.
#[rustfmt::skip]
const TYPES: &[PgType] = &[
    PgType { oid: 16, name: "bool", len: 1, byval: true, category: "B", preferred: true, elem: 0, array: 1000, align: "c", storage: "p", collation: 0, io: ["boolin", "boolout", "boolrecv", "boolsend"], subscript: "-", display: "boolean" },
    PgType { oid: 17, name: "bytea", len: -1, byval: false, category: "U", preferred: false, elem: 0, array: 1001, align: "i", storage: "x", collation: 0, io: ["byteain", "byteaout", "bytearecv", "byteasend"], subscript: "-", display: "bytea" },
    PgType { oid: 18, name: "char", len: 1, byval: true, category: "Z", preferred: false, elem: 0, array: 1002, align: "c", storage: "p", collation: 0, io: ["charin", "charout", "charrecv", "charsend"], subscript: "-", display: "\"char\"" },
    PgType { oid: 19, name: "name", len: 64, byval: false, category: "S", preferred: false, elem: 18, array: 1003, align: "c", storage: "p", collation: 950, io: ["namein", "nameout", "namerecv", "namesend"], subscript: "raw_array_subscript_handler", display: "name" },
    PgType { oid: 20, name: "int8", len: 8, byval: true, category: "N", preferred: false, elem: 0, array: 1016, align: "d", storage: "p", collation: 0, io: ["int8in", "int8out", "int8recv", "int8send"], subscript: "-", display: "bigint" },
    PgType { oid: 21, name: "int2", len: 2, byval: true, category: "N", preferred: false, elem: 0, array: 1005, align: "s", storage: "p", collation: 0, io: ["int2in", "int2out", "int2recv", "int2send"], subscript: "-", display: "smallint" },
    PgType { oid: 22, name: "int2vector", len: -1, byval: false, category: "A", preferred: false, elem: 21, array: 1006, align: "i", storage: "p", collation: 0, io: ["int2vectorin", "int2vectorout", "int2vectorrecv", "int2vectorsend"], subscript: "array_subscript_handler", display: "int2vector" },
    PgType { oid: 23, name: "int4", len: 4, byval: true, category: "N", preferred: false, elem: 0, array: 1007, align: "i", storage: "p", collation: 0, io: ["int4in", "int4out", "int4recv", "int4send"], subscript: "-", display: "integer" },
    PgType { oid: 25, name: "text", len: -1, byval: false, category: "S", preferred: true, elem: 0, array: 1009, align: "i", storage: "x", collation: 100, io: ["textin", "textout", "textrecv", "textsend"], subscript: "-", display: "text" },
    PgType { oid: 26, name: "oid", len: 4, byval: true, category: "N", preferred: true, elem: 0, array: 1028, align: "i", storage: "p", collation: 0, io: ["oidin", "oidout", "oidrecv", "oidsend"], subscript: "-", display: "oid" },
    PgType { oid: 30, name: "oidvector", len: -1, byval: false, category: "A", preferred: false, elem: 26, array: 1013, align: "i", storage: "p", collation: 0, io: ["oidvectorin", "oidvectorout", "oidvectorrecv", "oidvectorsend"], subscript: "array_subscript_handler", display: "oidvector" },
    PgType { oid: 114, name: "json", len: -1, byval: false, category: "U", preferred: false, elem: 0, array: 199, align: "i", storage: "x", collation: 0, io: ["json_in", "json_out", "json_recv", "json_send"], subscript: "-", display: "json" },
    PgType { oid: 700, name: "float4", len: 4, byval: true, category: "N", preferred: false, elem: 0, array: 1021, align: "i", storage: "p", collation: 0, io: ["float4in", "float4out", "float4recv", "float4send"], subscript: "-", display: "real" },
    PgType { oid: 701, name: "float8", len: 8, byval: true, category: "N", preferred: true, elem: 0, array: 1022, align: "d", storage: "p", collation: 0, io: ["float8in", "float8out", "float8recv", "float8send"], subscript: "-", display: "double precision" },
    PgType { oid: 705, name: "unknown", len: -2, byval: false, category: "X", preferred: false, elem: 0, array: 0, align: "c", storage: "p", collation: 0, io: ["unknownin", "unknownout", "unknownrecv", "unknownsend"], subscript: "-", display: "unknown" },
    PgType { oid: 1000, name: "_bool", len: -1, byval: false, category: "A", preferred: false, elem: 16, array: 0, align: "i", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "boolean[]" },
    PgType { oid: 1005, name: "_int2", len: -1, byval: false, category: "A", preferred: false, elem: 21, array: 0, align: "i", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "smallint[]" },
    PgType { oid: 1007, name: "_int4", len: -1, byval: false, category: "A", preferred: false, elem: 23, array: 0, align: "i", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "integer[]" },
    PgType { oid: 1009, name: "_text", len: -1, byval: false, category: "A", preferred: false, elem: 25, array: 0, align: "i", storage: "x", collation: 100, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "text[]" },
    PgType { oid: 1015, name: "_varchar", len: -1, byval: false, category: "A", preferred: false, elem: 1043, array: 0, align: "i", storage: "x", collation: 100, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "character varying[]" },
    PgType { oid: 1016, name: "_int8", len: -1, byval: false, category: "A", preferred: false, elem: 20, array: 0, align: "d", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "bigint[]" },
    PgType { oid: 1021, name: "_float4", len: -1, byval: false, category: "A", preferred: false, elem: 700, array: 0, align: "i", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "real[]" },
    PgType { oid: 1022, name: "_float8", len: -1, byval: false, category: "A", preferred: false, elem: 701, array: 0, align: "d", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "double precision[]" },
    PgType { oid: 1043, name: "varchar", len: -1, byval: false, category: "S", preferred: false, elem: 0, array: 1015, align: "i", storage: "x", collation: 100, io: ["varcharin", "varcharout", "varcharrecv", "varcharsend"], subscript: "-", display: "character varying" },
    PgType { oid: 1082, name: "date", len: 4, byval: true, category: "D", preferred: false, elem: 0, array: 1182, align: "i", storage: "p", collation: 0, io: ["date_in", "date_out", "date_recv", "date_send"], subscript: "-", display: "date" },
    PgType { oid: 1114, name: "timestamp", len: 8, byval: true, category: "D", preferred: false, elem: 0, array: 1115, align: "d", storage: "p", collation: 0, io: ["timestamp_in", "timestamp_out", "timestamp_recv", "timestamp_send"], subscript: "-", display: "timestamp without time zone" },
    PgType { oid: 1115, name: "_timestamp", len: -1, byval: false, category: "A", preferred: false, elem: 1114, array: 0, align: "d", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "timestamp without time zone[]" },
    PgType { oid: 1182, name: "_date", len: -1, byval: false, category: "A", preferred: false, elem: 1082, array: 0, align: "i", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "date[]" },
    PgType { oid: 1184, name: "timestamptz", len: 8, byval: true, category: "D", preferred: true, elem: 0, array: 1185, align: "d", storage: "p", collation: 0, io: ["timestamptz_in", "timestamptz_out", "timestamptz_recv", "timestamptz_send"], subscript: "-", display: "timestamp with time zone" },
    PgType { oid: 1185, name: "_timestamptz", len: -1, byval: false, category: "A", preferred: false, elem: 1184, array: 0, align: "d", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "timestamp with time zone[]" },
    PgType { oid: 1186, name: "interval", len: 16, byval: false, category: "T", preferred: true, elem: 0, array: 1187, align: "d", storage: "p", collation: 0, io: ["interval_in", "interval_out", "interval_recv", "interval_send"], subscript: "-", display: "interval" },
    PgType { oid: 1187, name: "_interval", len: -1, byval: false, category: "A", preferred: false, elem: 1186, array: 0, align: "d", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "interval[]" },
    PgType { oid: 1231, name: "_numeric", len: -1, byval: false, category: "A", preferred: false, elem: 1700, array: 0, align: "i", storage: "x", collation: 0, io: ["array_in", "array_out", "array_recv", "array_send"], subscript: "array_subscript_handler", display: "numeric[]" },
    PgType { oid: 1700, name: "numeric", len: -1, byval: false, category: "N", preferred: false, elem: 0, array: 1231, align: "i", storage: "m", collation: 0, io: ["numeric_in", "numeric_out", "numeric_recv", "numeric_send"], subscript: "-", display: "numeric" },
    PgType { oid: 2205, name: "regclass", len: 4, byval: true, category: "N", preferred: false, elem: 0, array: 2210, align: "i", storage: "p", collation: 0, io: ["regclassin", "regclassout", "regclassrecv", "regclasssend"], subscript: "-", display: "regclass" },
    PgType { oid: 2206, name: "regtype", len: 4, byval: true, category: "N", preferred: false, elem: 0, array: 2211, align: "i", storage: "p", collation: 0, io: ["regtypein", "regtypeout", "regtyperecv", "regtypesend"], subscript: "-", display: "regtype" },
    PgType { oid: 2249, name: "record", len: -1, byval: false, category: "P", preferred: false, elem: 0, array: 2287, align: "d", storage: "x", collation: 0, io: ["record_in", "record_out", "record_recv", "record_send"], subscript: "-", display: "record" },
    PgType { oid: 2278, name: "void", len: 4, byval: true, category: "P", preferred: false, elem: 0, array: 0, align: "i", storage: "p", collation: 0, io: ["void_in", "void_out", "void_recv", "void_send"], subscript: "-", display: "void" },
    PgType { oid: 2279, name: "trigger", len: 4, byval: true, category: "P", preferred: false, elem: 0, array: 0, align: "i", storage: "p", collation: 0, io: ["trigger_in", "trigger_out", "-", "-"], subscript: "-", display: "trigger" },
    PgType { oid: 2950, name: "uuid", len: 16, byval: false, category: "U", preferred: false, elem: 0, array: 2951, align: "c", storage: "p", collation: 0, io: ["uuid_in", "uuid_out", "uuid_recv", "uuid_send"], subscript: "-", display: "uuid" },
    PgType { oid: 3802, name: "jsonb", len: -1, byval: false, category: "U", preferred: false, elem: 0, array: 3807, align: "i", storage: "x", collation: 0, io: ["jsonb_in", "jsonb_out", "jsonb_recv", "jsonb_send"], subscript: "jsonb_subscript_handler", display: "jsonb" },
];

pub(super) fn type_by_oid(oid: i64) -> Option<&'static PgType> {
    TYPES.iter().find(|t| i64::from(t.oid) == oid)
}

/// The OID of a type named as SQL or `::regtype` text names it
/// (`integer`, `pg_catalog.int4`, `"char"`, `text[]`).
pub(super) fn type_oid_by_name(name: &str) -> Option<i32> {
    let n = name.trim().trim_matches('"').to_ascii_lowercase();
    let n = n.strip_prefix("pg_catalog.").unwrap_or(&n).to_string();
    let alias = match n.as_str() {
        "boolean" => "bool",
        "bigint" => "int8",
        "integer" | "int" => "int4",
        "smallint" => "int2",
        "double precision" => "float8",
        "real" => "float4",
        "character varying" => "varchar",
        "timestamp with time zone" => "timestamptz",
        "timestamp without time zone" => "timestamp",
        "text[]" => "_text",
        other => other,
    };
    TYPES.iter().find(|t| t.name == alias || t.display == n).map(|t| t.oid)
}

/// One of leadline's own functions as `pg_proc` lists it: in `public`, so
/// that psql's `\df` (which hides `pg_catalog`) and pgcli's completion show it.
pub(super) struct LeadlineFunction {
    pub oid: i32,
    pub name: &'static str,
    /// `(name, type OID)` of each argument.
    pub args: &'static [(&'static str, i32)],
    /// How many of the last arguments may be left out.
    pub defaults: i16,
    pub ret: i32,
    /// `a` for an aggregate, `f` for a function.
    pub kind: &'static str,
    /// A table function (`SETOF record`).
    pub retset: bool,
}

const fn leadline_fn(
    oid: i32,
    name: &'static str,
    args: &'static [(&'static str, i32)],
    defaults: i16,
    ret: i32,
    kind: &'static str,
) -> LeadlineFunction {
    LeadlineFunction { oid, name, args, defaults, ret, kind, retset: ret == 2249 }
}

const INTERVAL: i32 = 1186;
const TIMESTAMPTZ: i32 = 1184;

/// The DORA aggregates and functions (`leadline_udfs`) and table functions
/// (the engine's catalog), with the signatures their planners accept.
pub(super) const LEADLINE_FUNCTIONS: &[LeadlineFunction] = &[
    leadline_fn(17001, "lead_time", &[("lead_time", INTERVAL)], 0, INTERVAL, "a"),
    leadline_fn(17002, "time_to_restore", &[("restore_time", INTERVAL)], 0, INTERVAL, "a"),
    leadline_fn(17003, "failed_deployment_recovery_time", &[("recovery_time", INTERVAL)], 0, INTERVAL, "a"),
    leadline_fn(17004, "change_failure_rate", &[("failed", 16)], 0, 701, "a"),
    leadline_fn(17005, "deployment_frequency", &[("ts", TIMESTAMPTZ), ("grain", 25)], 1, 701, "a"),
    leadline_fn(17006, "dora_tier", &[("metric", 25), ("value", 701)], 0, 25, "f"),
    leadline_fn(17007, "dora_tier", &[("metric", 25), ("value", INTERVAL)], 0, 25, "f"),
    leadline_fn(17008, "dora_metrics", &[("grain", 25), ("from", TIMESTAMPTZ), ("to", TIMESTAMPTZ)], 2, 2249, "f"),
    leadline_fn(17009, "dora_quality", &[], 0, 2249, "f"),
    leadline_fn(17010, "rework_rate", &[("rework", 16)], 0, 701, "a"),
];

pub(super) fn leadline_function(oid: i64) -> Option<&'static LeadlineFunction> {
    LEADLINE_FUNCTIONS.iter().find(|f| i64::from(f.oid) == oid)
}

/// The procedural languages `pg_proc.prolang` names (PostgreSQL's OIDs).
const LANGUAGES: &[(i32, &str)] = &[(12, "internal"), (13, "c"), (14, "sql")];

/// One user table or view as the catalog shows it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub oid: i32,
    pub name: String,
    pub schema: SchemaRef,
    pub rows: i64,
    pub insertable: bool,
    /// Set for a view.
    pub view: Option<ViewDetails>,
}

/// What a view has that a table has not.
#[derive(Debug, Clone)]
pub struct ViewDetails {
    pub definition: String,
    pub temporary: bool,
}

/// What the catalog tables and functions know about a session.
#[derive(Debug)]
pub struct CatalogInfo {
    pub tables: Vec<TableInfo>,
    /// The session's views, replaced when they change ([`CatalogInfo::set_views`]).
    pub views: std::sync::RwLock<Vec<TableInfo>>,
    pub user: String,
    pub roles: Vec<String>,
}

impl CatalogInfo {
    /// The tables, then the views.
    pub fn relations(&self) -> Vec<TableInfo> {
        let views = self.views.read().unwrap_or_else(|p| p.into_inner());
        self.tables.iter().chain(views.iter()).cloned().collect()
    }

    pub fn set_views(&self, views: Vec<TableInfo>) {
        *self.views.write().unwrap_or_else(|p| p.into_inner()) = views;
    }

    /// Whether `name` (folded, unqualified) is one of the session's views.
    pub fn is_view(&self, name: &str) -> bool {
        self.views.read().unwrap_or_else(|p| p.into_inner()).iter().any(|v| v.name == name)
    }

    /// The OID of a relation named as `'name'::regclass` names it:
    /// `events`, `public.events`, `"events"`, `pg_catalog.pg_class`,
    /// `information_schema.columns`, `leadline.public.events`.
    pub fn table_oid(&self, name: &str) -> Option<i32> {
        self.regclass(name).ok()
    }

    /// [`CatalogInfo::table_oid`], or PostgreSQL's error for a name that
    /// names nothing (42P01) or is no name (42602).
    pub fn regclass(&self, name: &str) -> Result<i32, PgError> {
        let parts = parse_ident(name, true)
            .map_err(|_| PgError::new("42602", format!("invalid name syntax: \"{}\"", name.trim())))?;
        let (schema, relation) = match parts.as_slice() {
            [relation] => (None, relation),
            [schema, relation] => (Some(schema.as_str()), relation),
            [database, schema, relation] if database == DATABASE => (Some(schema.as_str()), relation),
            [_, _, _] => {
                let message = format!("cross-database references are not implemented: {}", parts.join("."));
                return Err(PgError::new("0A000", message));
            }
            _ => {
                let message = format!("improper relation name (too many dotted names): {}", parts.join("."));
                return Err(PgError::new("42601", message));
            }
        };
        let find = |list: &[(&str, i32)]| list.iter().find(|(n, _)| n == relation).map(|(_, oid)| *oid);
        let user = || self.relations().iter().find(|t| &t.name == relation).map(|t| t.oid);
        let oid = match schema {
            // The search path: public, then pg_catalog.
            None => user().or_else(|| find(CATALOG_OIDS)),
            Some("public") => user(),
            Some("pg_catalog") => find(CATALOG_OIDS),
            Some("information_schema") => find(INFORMATION_SCHEMA_OIDS),
            Some(_) => None,
        };
        oid.ok_or_else(|| PgError::new("42P01", format!("relation \"{}\" does not exist", parts.join("."))))
    }
}

const EMPTY_TABLES: &[(&str, &[&str])] = &[
    ("pg_description", &["objoid:oid", "classoid:oid", "objsubid:i", "description:t"]),
    ("pg_shdescription", &["objoid:oid", "classoid:oid", "description:t"]),
    ("pg_attrdef", &["oid:oid", "adrelid:oid", "adnum:s", "adbin:pg_node_tree"]),
    (
        "pg_index",
        &[
            "indexrelid:oid",
            "indrelid:oid",
            "indnatts:s",
            "indnkeyatts:s",
            "indisunique:b",
            "indnullsnotdistinct:b",
            "indisprimary:b",
            "indisexclusion:b",
            "indimmediate:b",
            "indisclustered:b",
            "indisvalid:b",
            "indcheckxmin:b",
            "indisready:b",
            "indislive:b",
            "indisreplident:b",
            "indkey:int2vector",
            "indcollation:oidvector",
            "indclass:oidvector",
            "indoption:int2vector",
            "indexprs:pg_node_tree",
            "indpred:pg_node_tree",
        ],
    ),
    (
        "pg_constraint",
        &[
            "oid:oid",
            "conname:name",
            "connamespace:oid",
            "contype:char",
            "condeferrable:b",
            "condeferred:b",
            "convalidated:b",
            "conrelid:oid",
            "contypid:oid",
            "conindid:oid",
            "conparentid:oid",
            "confrelid:oid",
            "confupdtype:char",
            "confdeltype:char",
            "confmatchtype:char",
            "conislocal:b",
            "coninhcount:i",
            "connoinherit:b",
            "conkey:h",
            "confkey:h",
            "conpfeqop:_oid",
            "conppeqop:_oid",
            "conffeqop:_oid",
            "confdelsetcols:h",
            "conexclop:_oid",
            "conbin:pg_node_tree",
        ],
    ),
    ("pg_inherits", &["inhrelid:oid", "inhparent:oid", "inhseqno:i", "inhdetachpending:b"]),
    (
        "pg_collation",
        &[
            "oid:oid",
            "collname:name",
            "collnamespace:oid",
            "collowner:oid",
            "collprovider:char",
            "collisdeterministic:b",
            "collencoding:i",
            "collcollate:t",
            "collctype:t",
            "colliculocale:t",
            "collversion:t",
        ],
    ),
    (
        "pg_sequence",
        &[
            "seqrelid:oid",
            "seqtypid:oid",
            "seqstart:I",
            "seqincrement:I",
            "seqmax:I",
            "seqmin:I",
            "seqcache:I",
            "seqcycle:b",
        ],
    ),
    (
        "pg_opclass",
        &[
            "oid:oid",
            "opcmethod:oid",
            "opcname:name",
            "opcnamespace:oid",
            "opcowner:oid",
            "opcfamily:oid",
            "opcintype:oid",
            "opcdefault:b",
            "opckeytype:oid",
        ],
    ),
    (
        "pg_policy",
        &[
            "oid:oid",
            "polname:name",
            "polrelid:oid",
            "polcmd:char",
            "polpermissive:b",
            "polroles:_oid",
            "polqual:pg_node_tree",
            "polwithcheck:pg_node_tree",
        ],
    ),
    (
        "pg_statistic_ext",
        &[
            "oid:oid",
            "stxrelid:oid",
            "stxname:name",
            "stxnamespace:oid",
            "stxowner:oid",
            "stxstattarget:i",
            "stxkeys:int2vector",
            "stxkind:_char",
            "stxexprs:pg_node_tree",
        ],
    ),
    (
        "pg_publication",
        &[
            "oid:oid",
            "pubname:name",
            "pubowner:oid",
            "puballtables:b",
            "pubinsert:b",
            "pubupdate:b",
            "pubdelete:b",
            "pubtruncate:b",
            "pubviaroot:b",
        ],
    ),
    ("pg_publication_rel", &["oid:oid", "prpubid:oid", "prrelid:oid", "prqual:pg_node_tree", "prattrs:int2vector"]),
    ("pg_publication_namespace", &["oid:oid", "pnpubid:oid", "pnnspid:oid"]),
    (
        "pg_trigger",
        &[
            "oid:oid",
            "tgrelid:oid",
            "tgparentid:oid",
            "tgname:name",
            "tgfoid:oid",
            "tgtype:s",
            "tgenabled:char",
            "tgisinternal:b",
            "tgconstrrelid:oid",
            "tgconstrindid:oid",
            "tgconstraint:oid",
            "tgdeferrable:b",
            "tginitdeferred:b",
            "tgnargs:s",
            "tgattr:int2vector",
            "tgargs:bytea",
            "tgqual:pg_node_tree",
            "tgoldtable:name",
            "tgnewtable:name",
        ],
    ),
    (
        "pg_rewrite",
        &[
            "oid:oid",
            "rulename:name",
            "ev_class:oid",
            "ev_type:char",
            "ev_enabled:char",
            "is_instead:b",
            "ev_qual:pg_node_tree",
            "ev_action:pg_node_tree",
        ],
    ),
    (
        "pg_extension",
        &[
            "oid:oid",
            "extname:name",
            "extowner:oid",
            "extnamespace:oid",
            "extrelocatable:b",
            "extversion:t",
            "extconfig:_oid",
            "extcondition:a",
        ],
    ),
    ("pg_enum", &["oid:oid", "enumtypid:oid", "enumsortorder:f", "enumlabel:name"]),
    (
        "pg_range",
        &[
            "rngtypid:oid",
            "rngsubtype:oid",
            "rngmultitypid:oid",
            "rngcollation:oid",
            "rngsubopc:oid",
            "rngcanonical:t",
            "rngsubdiff:t",
        ],
    ),
    (
        "pg_depend",
        &["classid:oid", "objid:oid", "objsubid:i", "refclassid:oid", "refobjid:oid", "refobjsubid:i", "deptype:char"],
    ),
    ("pg_foreign_table", &["ftrelid:oid", "ftserver:oid", "ftoptions:a"]),
    (
        "pg_foreign_server",
        &[
            "oid:oid",
            "srvname:name",
            "srvowner:oid",
            "srvfdw:oid",
            "srvtype:t",
            "srvversion:t",
            "srvacl:_aclitem",
            "srvoptions:a",
        ],
    ),
    (
        "pg_foreign_data_wrapper",
        &[
            "oid:oid",
            "fdwname:name",
            "fdwowner:oid",
            "fdwhandler:oid",
            "fdwvalidator:oid",
            "fdwacl:_aclitem",
            "fdwoptions:a",
        ],
    ),
    (
        "pg_event_trigger",
        &["oid:oid", "evtname:name", "evtevent:name", "evtowner:oid", "evtfoid:oid", "evtenabled:char", "evttags:a"],
    ),
    (
        "pg_matviews",
        &[
            "schemaname:name",
            "matviewname:name",
            "matviewowner:name",
            "tablespace:name",
            "hasindexes:b",
            "ispopulated:b",
            "definition:t",
        ],
    ),
    ("pg_indexes", &["schemaname:name", "tablename:name", "indexname:name", "tablespace:name", "indexdef:t"]),
    ("pg_auth_members", &["roleid:oid", "member:oid", "grantor:oid", "admin_option:b"]),
    (
        "pg_cursors",
        &["name:t", "statement:t", "is_holdable:b", "is_binary:b", "is_scrollable:b", "creation_time:timestamptz"],
    ),
    (
        "pg_prepared_statements",
        &[
            "name:t",
            "statement:t",
            "prepare_time:timestamptz",
            "parameter_types:a",
            "from_sql:b",
            "generic_plans:I",
            "custom_plans:I",
        ],
    ),
    (
        "pg_locks",
        &[
            "locktype:t",
            "database:oid",
            "relation:oid",
            "page:i",
            "tuple:s",
            "virtualxid:t",
            "transactionid:xid",
            "classid:oid",
            "objid:oid",
            "objsubid:s",
            "virtualtransaction:t",
            "pid:i",
            "mode:t",
            "granted:b",
            "fastpath:b",
            "waitstart:timestamptz",
        ],
    ),
    ("pg_stat_activity_empty", &["pid:i"]),
];

const EMPTY_INFORMATION_SCHEMA: &[(&str, &[&str])] = &[
    (
        "table_constraints",
        &[
            "constraint_catalog:name",
            "constraint_schema:name",
            "constraint_name:name",
            "table_catalog:name",
            "table_schema:name",
            "table_name:name",
            "constraint_type:varchar",
            "is_deferrable:varchar",
            "initially_deferred:varchar",
            "enforced:varchar",
            "nulls_distinct:varchar",
        ],
    ),
    (
        "key_column_usage",
        &[
            "constraint_catalog:name",
            "constraint_schema:name",
            "constraint_name:name",
            "table_catalog:name",
            "table_schema:name",
            "table_name:name",
            "column_name:name",
            "ordinal_position:i",
            "position_in_unique_constraint:i",
        ],
    ),
    (
        "referential_constraints",
        &[
            "constraint_catalog:name",
            "constraint_schema:name",
            "constraint_name:name",
            "unique_constraint_catalog:name",
            "unique_constraint_schema:name",
            "unique_constraint_name:name",
            "match_option:varchar",
            "update_rule:varchar",
            "delete_rule:varchar",
        ],
    ),
    (
        "check_constraints",
        &["constraint_catalog:name", "constraint_schema:name", "constraint_name:name", "check_clause:varchar"],
    ),
];

/// `information_schema.routines`: the functions `pg_proc` lists, with
/// PostgreSQL 15's columns.
const ROUTINES_COLUMNS: &[&str] = &[
    "specific_catalog:name",
    "specific_schema:name",
    "specific_name:name",
    "routine_catalog:name",
    "routine_schema:name",
    "routine_name:name",
    "routine_type:varchar",
    "module_catalog:name",
    "module_schema:name",
    "module_name:name",
    "udt_catalog:name",
    "udt_schema:name",
    "udt_name:name",
    "data_type:varchar",
    "character_maximum_length:i",
    "character_octet_length:i",
    "character_set_catalog:name",
    "character_set_schema:name",
    "character_set_name:name",
    "collation_catalog:name",
    "collation_schema:name",
    "collation_name:name",
    "numeric_precision:i",
    "numeric_precision_radix:i",
    "numeric_scale:i",
    "datetime_precision:i",
    "interval_type:varchar",
    "interval_precision:i",
    "type_udt_catalog:name",
    "type_udt_schema:name",
    "type_udt_name:name",
    "scope_catalog:name",
    "scope_schema:name",
    "scope_name:name",
    "maximum_cardinality:i",
    "dtd_identifier:name",
    "routine_body:varchar",
    "routine_definition:varchar",
    "external_name:varchar",
    "external_language:varchar",
    "parameter_style:varchar",
    "is_deterministic:varchar",
    "sql_data_access:varchar",
    "is_null_call:varchar",
    "sql_path:varchar",
    "schema_level_routine:varchar",
    "max_dynamic_result_sets:i",
    "is_user_defined_cast:varchar",
    "is_implicitly_invocable:varchar",
    "security_type:varchar",
    "to_sql_specific_catalog:name",
    "to_sql_specific_schema:name",
    "to_sql_specific_name:name",
    "as_locator:varchar",
    "created:timestamptz",
    "last_altered:timestamptz",
    "new_savepoint_level:varchar",
    "is_udt_dependent:varchar",
    "result_cast_from_data_type:varchar",
    "result_cast_as_locator:varchar",
    "result_cast_char_max_length:i",
    "result_cast_char_octet_length:i",
    "result_cast_char_set_catalog:name",
    "result_cast_char_set_schema:name",
    "result_cast_char_set_name:name",
    "result_cast_collation_catalog:name",
    "result_cast_collation_schema:name",
    "result_cast_collation_name:name",
    "result_cast_numeric_precision:i",
    "result_cast_numeric_precision_radix:i",
    "result_cast_numeric_scale:i",
    "result_cast_datetime_precision:i",
    "result_cast_interval_type:varchar",
    "result_cast_interval_precision:i",
    "result_cast_type_udt_catalog:name",
    "result_cast_type_udt_schema:name",
    "result_cast_type_udt_name:name",
    "result_cast_scope_catalog:name",
    "result_cast_scope_schema:name",
    "result_cast_scope_name:name",
    "result_cast_maximum_cardinality:i",
    "result_cast_dtd_identifier:name",
];

/// The columns (`name:type code`) of a relation leadline never has rows in.
pub(super) fn empty_relation_columns(name: &str) -> Option<&'static [&'static str]> {
    let name = name.to_ascii_lowercase();
    EMPTY_TABLES.iter().chain(EMPTY_INFORMATION_SCHEMA).find(|(t, _)| *t == name).map(|(_, columns)| *columns)
}

/// A catalog column: `code` is Arrow's type (`i` int4, `I` int8, `s` int2,
/// `b` bool, `f` float4, `F` float8, `t` text, `a` text[], `h` int2[]) or the
/// PostgreSQL type it is sent as where PostgreSQL's catalog has a type of its
/// own for it (`oid`, `name`, `"char"` …), as PostgreSQL 15's catalog types it.
fn column_field(name: &str, code: &str) -> Field {
    let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
    let (data_type, pg) = match code {
        "i" => (DataType::Int32, None),
        "I" => (DataType::Int64, None),
        "s" => (DataType::Int16, None),
        "b" => (DataType::Boolean, None),
        "f" => (DataType::Float32, None),
        "F" => (DataType::Float64, None),
        "a" => (list(DataType::Utf8), None),
        "h" => (list(DataType::Int16), None),
        "timestamptz" => (DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), None),
        "oid" => (DataType::Int32, Some(Type::OID)),
        "xid" => (DataType::Int32, Some(Type::XID)),
        "name" => (DataType::Utf8, Some(Type::NAME)),
        "char" => (DataType::Utf8, Some(Type::CHAR)),
        "varchar" => (DataType::Utf8, Some(Type::VARCHAR)),
        "pg_node_tree" => (DataType::Utf8, Some(Type::PG_NODE_TREE)),
        "int2vector" => (list(DataType::Int16), Some(Type::INT2_VECTOR)),
        "oidvector" => (list(DataType::Int32), Some(Type::OID_VECTOR)),
        "_oid" => (list(DataType::Int32), Some(Type::OID_ARRAY)),
        "_char" => (list(DataType::Utf8), Some(Type::CHAR_ARRAY)),
        "_name" => (list(DataType::Utf8), Some(Type::NAME_ARRAY)),
        "_aclitem" => (list(DataType::Utf8), Some(Type::ACLITEM_ARRAY)),
        "anyarray" => (list(DataType::Utf8), Some(Type::ANYARRAY)),
        "bytea" => (DataType::Binary, None),
        _ => (DataType::Utf8, None),
    };
    let field = Field::new(name, data_type, true);
    match pg {
        Some(pg) => with_pg_type(field, &pg),
        None => field,
    }
}

/// A field named `name` of the type `column` has among `columns` (an entry
/// of [`EMPTY_TABLES`]).
pub(super) fn stub_column_field(columns: &[&str], column: &str, name: &str) -> Option<Field> {
    columns.iter().find_map(|c| {
        let (n, code) = c.split_once(':').unwrap_or((c, "t"));
        (n == column).then(|| column_field(name, code))
    })
}

/// A small table built row by row from `ScalarValue`s.
struct Builder {
    schema: SchemaRef,
    rows: Vec<Vec<ScalarValue>>,
}

impl Builder {
    fn new(cols: &[&str]) -> Self {
        let fields: Vec<Field> = cols
            .iter()
            .map(|c| {
                let (name, code) = c.split_once(':').unwrap_or((c, "t"));
                column_field(name, code)
            })
            .collect();
        Self { schema: Arc::new(Schema::new(fields)), rows: Vec::new() }
    }

    /// Adds a row; values are given by column name, the rest are NULL.
    fn row(&mut self, values: Vec<(&str, ScalarValue)>) {
        let mut row: Vec<ScalarValue> = self
            .schema
            .fields()
            .iter()
            .map(|f| ScalarValue::try_from(f.data_type()).unwrap_or(ScalarValue::Null))
            .collect();
        for (name, v) in values {
            if let Ok(i) = self.schema.index_of(name) {
                let want = self.schema.field(i).data_type();
                row[i] = if v.data_type() == *want { v } else { v.cast_to(want).unwrap_or(row[i].clone()) };
            }
        }
        self.rows.push(row);
    }

    fn table(&self) -> DfResult<Arc<MemTable>> {
        let columns: Vec<ArrayRef> = (0..self.schema.fields().len())
            .map(|i| {
                if self.rows.is_empty() {
                    Ok(arrow::array::new_empty_array(self.schema.field(i).data_type()))
                } else {
                    ScalarValue::iter_to_array(self.rows.iter().map(|r| r[i].clone()))
                }
            })
            .collect::<DfResult<_>>()?;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(Arc::new(MemTable::try_new(self.schema.clone(), vec![vec![batch]])?))
    }
}

pub(super) fn t(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}
pub(super) fn i(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}
fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

/// `udt_name` / `typname` of an Arrow type.
pub(super) fn typname(dt: &DataType) -> &'static str {
    let oid = pg_type(dt).oid() as i64;
    type_by_oid(oid).map(|t| t.name).unwrap_or("text")
}

fn format_type_name(dt: &DataType) -> &'static str {
    let oid = pg_type(dt).oid() as i64;
    type_by_oid(oid).map(|t| t.display).unwrap_or("text")
}

/// The `regproc` columns of the catalog, kept as the function's name; `-`
/// is PostgreSQL's name for none (OID 0).
pub(super) const REGPROC_COLUMNS: &[&str] =
    &["typinput", "typoutput", "typreceive", "typsend", "typmodin", "typmodout", "typanalyze", "aggfnoid"];

/// A row of `information_schema.routines`. Aggregates have no
/// `routine_type`, as in PostgreSQL (Harlequin's completion tells them so);
/// `ret` is unknown for the functions DataFusion brings.
fn routine(
    name: &str,
    oid: i32,
    schema: &str,
    aggregate: bool,
    ret: Option<&PgType>,
) -> Vec<(&'static str, ScalarValue)> {
    let specific = format!("{name}_{oid}");
    let mut row = vec![
        ("specific_catalog", t(DATABASE)),
        ("specific_schema", t(schema)),
        ("specific_name", t(&specific)),
        ("routine_catalog", t(DATABASE)),
        ("routine_schema", t(schema)),
        ("routine_name", t(name)),
        ("routine_body", t("EXTERNAL")),
        ("external_language", t("INTERNAL")),
        ("security_type", t("INVOKER")),
    ];
    if !aggregate {
        row.push(("routine_type", t("FUNCTION")));
    }
    if let Some(ret) = ret {
        // A set-returning function's `SETOF record` is `record` here.
        let data_type = if ret.category == "A" { "ARRAY" } else { ret.display };
        row.extend([
            ("data_type", t(data_type)),
            ("type_udt_catalog", t(DATABASE)),
            ("type_udt_schema", t("pg_catalog")),
            ("type_udt_name", t(ret.name)),
        ]);
    }
    row
}

/// `pg_settings`: the session's variables as they are when a statement
/// reads it, so that a `SET` shows at once, as in PostgreSQL.
#[derive(Debug)]
struct SettingsTable {
    schema: SchemaRef,
    settings: Settings,
}

impl SettingsTable {
    fn new(settings: &Settings) -> Self {
        Self { schema: Builder::new(SETTINGS_COLUMNS).schema, settings: settings.clone() }
    }
}

#[async_trait::async_trait]
impl TableProvider for SettingsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        settings_rows(&self.settings).table()?.scan(state, projection, filters, limit).await
    }
}

/// `pg_settings`' columns.
const SETTINGS_COLUMNS: &[&str] = &[
    "name:t",
    "setting:t",
    "unit:t",
    "category:t",
    "short_desc:t",
    "extra_desc:t",
    "context:t",
    "vartype:t",
    "source:t",
    "min_val:t",
    "max_val:t",
    "enumvals:a",
    "boot_val:t",
    "reset_val:t",
    "sourcefile:t",
    "sourceline:i",
    "pending_restart:b",
];

fn settings_rows(settings: &Settings) -> Builder {
    let mut rows = Builder::new(SETTINGS_COLUMNS);
    if let Ok(vars) = settings.lock() {
        for (k, v) in vars.iter() {
            rows.row(vec![
                ("name", t(k)),
                ("setting", t(v)),
                ("context", t("user")),
                ("vartype", t("string")),
                ("source", t("default")),
                ("pending_restart", b(false)),
            ]);
        }
    }
    rows
}

/// The catalog tables whose rows are the same in every session of a server
/// (namespaces, types, functions, …): built once, by the first session,
/// and shared (a `MemTable` is read-only here), so that opening a
/// connection does not rebuild them.
#[derive(Default)]
pub struct FixedTables(std::sync::OnceLock<Fixed>);

struct Fixed {
    pg_catalog: NamedTables,
    information_schema: NamedTables,
}

impl FixedTables {
    /// The tables, built from `ctx` (its functions are `pg_proc`'s) the first time.
    fn get(&self, ctx: &SessionContext) -> DfResult<&Fixed> {
        if let Some(fixed) = self.0.get() {
            return Ok(fixed);
        }
        let built = fixed_tables(ctx)?;
        Ok(self.0.get_or_init(|| built))
    }
}

fn fixed_tables(ctx: &SessionContext) -> DfResult<Fixed> {
    let mut tables: NamedTables = Vec::new();

    let mut ns = Builder::new(&["oid:oid", "nspname:name", "nspowner:oid", "nspacl:_aclitem"]);
    for (oid, name) in
        [(NS_PG_CATALOG, "pg_catalog"), (NS_PUBLIC, "public"), (NS_INFORMATION_SCHEMA, "information_schema")]
    {
        ns.row(vec![("oid", i(oid)), ("nspname", t(name)), ("nspowner", i(OWNER))]);
    }
    tables.push(("pg_namespace", ns.table()?));

    let mut ty = Builder::new(&[
        "oid:oid",
        "typname:name",
        "typnamespace:oid",
        "typowner:oid",
        "typlen:s",
        "typbyval:b",
        "typtype:char",
        "typcategory:char",
        "typispreferred:b",
        "typisdefined:b",
        "typdelim:char",
        "typrelid:oid",
        "typsubscript:t",
        "typelem:oid",
        "typarray:oid",
        "typinput:t",
        "typoutput:t",
        "typreceive:t",
        "typsend:t",
        "typmodin:t",
        "typmodout:t",
        "typanalyze:t",
        "typalign:char",
        "typstorage:char",
        "typnotnull:b",
        "typbasetype:oid",
        "typtypmod:i",
        "typndims:i",
        "typcollation:oid",
        "typdefaultbin:pg_node_tree",
        "typdefault:t",
        "typacl:_aclitem",
    ]);
    for pg in TYPES {
        let pseudo = pg.category == "P" || pg.category == "X";
        let [input, output, receive, send] = pg.io;
        ty.row(vec![
            ("oid", i(pg.oid)),
            ("typname", t(pg.name)),
            ("typnamespace", i(NS_PG_CATALOG)),
            ("typowner", i(OWNER)),
            ("typlen", ScalarValue::Int16(Some(pg.len))),
            ("typbyval", b(pg.byval)),
            ("typtype", t(if pseudo { "p" } else { "b" })),
            ("typcategory", t(pg.category)),
            ("typispreferred", b(pg.preferred)),
            ("typisdefined", b(true)),
            ("typdelim", t(",")),
            ("typrelid", i(0)),
            ("typsubscript", t(pg.subscript)),
            ("typelem", i(pg.elem)),
            ("typarray", i(pg.array)),
            ("typinput", t(input)),
            ("typoutput", t(output)),
            ("typreceive", t(receive)),
            ("typsend", t(send)),
            ("typmodin", t("-")),
            ("typmodout", t("-")),
            ("typanalyze", t("-")),
            ("typalign", t(pg.align)),
            ("typstorage", t(pg.storage)),
            ("typnotnull", b(false)),
            ("typbasetype", i(0)),
            ("typtypmod", i(-1)),
            ("typndims", i(0)),
            ("typcollation", i(pg.collation)),
        ]);
    }
    tables.push(("pg_type", ty.table()?));

    let mut db = Builder::new(&[
        "oid:oid",
        "datname:name",
        "datdba:oid",
        "encoding:i",
        "datlocprovider:char",
        "datistemplate:b",
        "datallowconn:b",
        "datconnlimit:i",
        "datfrozenxid:xid",
        "datminmxid:xid",
        "dattablespace:oid",
        "datcollate:t",
        "datctype:t",
        "daticulocale:t",
        "datcollversion:t",
        "datacl:_aclitem",
        "daticurules:t",
    ]);
    db.row(vec![
        ("oid", i(16383)),
        ("datname", t(DATABASE)),
        ("datdba", i(OWNER)),
        ("encoding", i(6)),
        ("datlocprovider", t("c")),
        ("datistemplate", b(false)),
        ("datallowconn", b(true)),
        ("datconnlimit", i(-1)),
        ("dattablespace", i(1663)),
        ("datcollate", t("C.UTF-8")),
        ("datctype", t("C.UTF-8")),
    ]);
    tables.push(("pg_database", db.table()?));

    let mut ts = Builder::new(&["oid:oid", "spcname:name", "spcowner:oid", "spcacl:_aclitem", "spcoptions:a"]);
    ts.row(vec![("oid", i(1663)), ("spcname", t("pg_default")), ("spcowner", i(OWNER))]);
    ts.row(vec![("oid", i(1664)), ("spcname", t("pg_global")), ("spcowner", i(OWNER))]);
    tables.push(("pg_tablespace", ts.table()?));

    let mut am = Builder::new(&["oid:oid", "amname:name", "amhandler:t", "amtype:char"]);
    am.row(vec![("oid", i(2)), ("amname", t("heap")), ("amhandler", t("heap_tableam_handler")), ("amtype", t("t"))]);
    am.row(vec![("oid", i(403)), ("amname", t("btree")), ("amhandler", t("bthandler")), ("amtype", t("i"))]);
    tables.push(("pg_am", am.table()?));

    let mut proc = Builder::new(&[
        "oid:oid",
        "proname:name",
        "pronamespace:oid",
        "proowner:oid",
        "prolang:oid",
        "procost:f",
        "prorows:f",
        "provariadic:oid",
        "prosupport:t",
        "prokind:char",
        "prosecdef:b",
        "proleakproof:b",
        "proisstrict:b",
        "proretset:b",
        "provolatile:char",
        "proparallel:char",
        "pronargs:s",
        "pronargdefaults:s",
        "prorettype:oid",
        "proargtypes:oidvector",
        "proallargtypes:_oid",
        "proargmodes:_char",
        "proargnames:a",
        "proargdefaults:pg_node_tree",
        "protrftypes:_oid",
        "prosrc:t",
        "probin:t",
        "prosqlbody:pg_node_tree",
        "proconfig:a",
        "proacl:_aclitem",
    ]);
    let state = ctx.state();
    let mut fn_names: Vec<String> = state.scalar_functions().keys().cloned().collect();
    fn_names.extend(state.aggregate_functions().keys().cloned());
    fn_names.sort();
    fn_names.dedup();
    let mut routines = Builder::new(ROUTINES_COLUMNS);
    for f in LEADLINE_FUNCTIONS {
        routines.row(routine(f.name, f.oid, "public", f.kind == "a", type_by_oid(f.ret.into())));
        let arg_types: Vec<ScalarValue> = f.args.iter().map(|(_, oid)| i(*oid)).collect();
        let arg_names: Vec<ScalarValue> = f.args.iter().map(|(name, _)| t(name)).collect();
        proc.row(vec![
            ("oid", i(f.oid)),
            ("proname", t(f.name)),
            ("pronamespace", i(NS_PUBLIC)),
            ("proowner", i(OWNER)),
            ("prolang", i(12)),
            ("procost", ScalarValue::Float64(Some(1.0))),
            ("prorows", ScalarValue::Float64(Some(if f.retset { 1000.0 } else { 0.0 }))),
            ("provariadic", i(0)),
            ("prokind", t(f.kind)),
            ("prosecdef", b(false)),
            ("proleakproof", b(false)),
            ("proisstrict", b(false)),
            ("proretset", b(f.retset)),
            ("provolatile", t("s")),
            ("proparallel", t("s")),
            ("pronargs", ScalarValue::Int16(Some(f.args.len() as i16))),
            ("pronargdefaults", ScalarValue::Int16(Some(f.defaults))),
            ("prorettype", i(f.ret)),
            ("proargtypes", ScalarValue::List(ScalarValue::new_list_nullable(&arg_types, &DataType::Int32))),
            ("proargnames", ScalarValue::List(ScalarValue::new_list_nullable(&arg_names, &DataType::Utf8))),
            ("prosrc", t(f.name)),
        ]);
    }
    let own = |name: &str| LEADLINE_FUNCTIONS.iter().any(|f| f.name == name);
    for (n, name) in fn_names.iter().enumerate().filter(|(_, name)| !own(name)) {
        let agg = state.aggregate_functions().contains_key(name);
        routines.row(routine(name, 20000 + n as i32, "pg_catalog", agg, None));
        proc.row(vec![
            ("oid", i(20000 + n as i32)),
            ("proname", t(name)),
            ("pronamespace", i(NS_PG_CATALOG)),
            ("proowner", i(OWNER)),
            ("prolang", i(12)),
            ("prokind", t(if agg { "a" } else { "f" })),
            ("proretset", b(false)),
            ("provolatile", t("i")),
            ("pronargs", ScalarValue::Int16(Some(0))),
            ("prorettype", i(25)),
            ("prosrc", t(name)),
        ]);
    }
    tables.push(("pg_proc", proc.table()?));

    let mut language = Builder::new(&[
        "oid:oid",
        "lanname:name",
        "lanowner:oid",
        "lanispl:b",
        "lanpltrusted:b",
        "lanplcallfoid:oid",
        "laninline:oid",
        "lanvalidator:oid",
        "lanacl:_aclitem",
    ]);
    for (oid, name) in LANGUAGES {
        language.row(vec![
            ("oid", i(*oid)),
            ("lanname", t(name)),
            ("lanowner", i(OWNER)),
            ("lanispl", b(false)),
            ("lanpltrusted", b(*name == "sql")),
            ("lanplcallfoid", i(0)),
            ("laninline", i(0)),
            ("lanvalidator", i(0)),
        ]);
    }
    tables.push(("pg_language", language.table()?));

    for (name, cols) in EMPTY_TABLES {
        tables.push((name, Builder::new(cols).table()?));
    }

    let mut information_schema: NamedTables = Vec::new();
    let mut schemata = Builder::new(&[
        "catalog_name:name",
        "schema_name:name",
        "schema_owner:name",
        "default_character_set_catalog:name",
        "default_character_set_schema:name",
        "default_character_set_name:name",
        "sql_path:varchar",
    ]);
    for s in ["pg_catalog", "public", "information_schema"] {
        schemata.row(vec![("catalog_name", t(DATABASE)), ("schema_name", t(s)), ("schema_owner", t(DATABASE))]);
    }
    information_schema.push(("schemata", schemata.table()?));
    information_schema.push(("routines", routines.table()?));
    for (name, cols) in EMPTY_INFORMATION_SCHEMA {
        information_schema.push((name, Builder::new(cols).table()?));
    }
    Ok(Fixed { pg_catalog: tables, information_schema })
}

/// Registers the catalog's relations in a session: `pg_catalog`'s under their
/// bare names (the rewrites drop the `pg_catalog.` qualifier), and the
/// `information_schema` schema. The fixed ones are `fixed`'s, shared.
pub(super) fn register_tables(
    ctx: &SessionContext,
    fixed: &FixedTables,
    info: &CatalogInfo,
    settings: &Settings,
) -> DfResult<()> {
    let fixed = fixed.get(ctx)?;
    let mut tables: NamedTables = fixed.pg_catalog.clone();

    let (relations, information_schema) = relation_tables(info)?;
    tables.extend(relations);

    let role_cols = [
        "rolname:name",
        "rolsuper:b",
        "rolinherit:b",
        "rolcreaterole:b",
        "rolcreatedb:b",
        "rolcanlogin:b",
        "rolreplication:b",
        "rolconnlimit:i",
        "rolpassword:t",
        "rolvaliduntil:timestamptz",
        "rolbypassrls:b",
        "rolconfig:a",
        "oid:oid",
    ];
    let mut roles = Builder::new(&role_cols);
    // The same roles, in the relation pg_roles is a view of.
    let mut authid = Builder::new(&[
        "oid:oid",
        "rolname:name",
        "rolsuper:b",
        "rolinherit:b",
        "rolcreaterole:b",
        "rolcreatedb:b",
        "rolcanlogin:b",
        "rolreplication:b",
        "rolbypassrls:b",
        "rolconnlimit:i",
        "rolpassword:t",
        "rolvaliduntil:timestamptz",
    ]);
    let mut names = vec![DATABASE.to_string()];
    names.extend(info.roles.iter().filter(|r| r.as_str() != DATABASE).cloned());
    for (n, r) in names.iter().enumerate() {
        let role = vec![
            ("oid", i(if n == 0 { OWNER } else { 16390 + n as i32 })),
            ("rolname", t(r)),
            ("rolsuper", b(false)),
            ("rolinherit", b(true)),
            ("rolcreaterole", b(false)),
            ("rolcreatedb", b(false)),
            ("rolcanlogin", b(true)),
            ("rolreplication", b(false)),
            ("rolconnlimit", i(-1)),
            ("rolpassword", t("********")),
            ("rolbypassrls", b(false)),
        ];
        roles.row(role.clone());
        authid.row(role);
    }
    tables.push(("pg_roles", roles.table()?));
    tables.push(("pg_authid", authid.table()?));
    let mut user = Builder::new(&[
        "usename:name",
        "usesysid:oid",
        "usecreatedb:b",
        "usesuper:b",
        "userepl:b",
        "usebypassrls:b",
        "passwd:t",
        "valuntil:timestamptz",
        "useconfig:a",
    ]);
    for (n, r) in names.iter().enumerate() {
        user.row(vec![
            ("usename", t(r)),
            ("usesysid", i(if n == 0 { OWNER } else { 16390 + n as i32 })),
            ("usesuper", b(false)),
        ]);
    }
    tables.push(("pg_user", user.table()?));

    // pg_stat_activity: this connection only (leadline keeps no global view).
    let mut act = Builder::new(&[
        "datid:oid",
        "datname:name",
        "pid:i",
        "leader_pid:i",
        "usesysid:oid",
        "usename:name",
        "application_name:t",
        "client_addr:t",
        "client_hostname:t",
        "client_port:i",
        "backend_start:timestamptz",
        "xact_start:timestamptz",
        "query_start:timestamptz",
        "state_change:timestamptz",
        "wait_event_type:t",
        "wait_event:t",
        "state:t",
        "backend_xid:xid",
        "backend_xmin:xid",
        "query_id:I",
        "query:t",
        "backend_type:t",
    ]);
    act.row(vec![
        ("datid", i(16383)),
        ("datname", t(DATABASE)),
        ("usename", t(&info.user)),
        ("state", t("active")),
        ("backend_type", t("client backend")),
    ]);
    tables.push(("pg_stat_activity", act.table()?));

    for (name, table) in tables {
        ctx.register_table(name, table)?;
    }
    ctx.register_table("pg_settings", Arc::new(SettingsTable::new(settings)))?;

    // information_schema as a schema of its own.
    let is = Arc::new(MemorySchemaProvider::new());
    for (name, table) in fixed.information_schema.iter().cloned().chain(information_schema) {
        is.register_table(name.to_string(), table)?;
    }
    if let Some(cat) = ctx.catalog("datafusion") {
        cat.register_schema("information_schema", is)?;
        // `pg_catalog.x` is rewritten to `x`; the schema exists for tools that list schemas.
        cat.register_schema("pg_catalog", Arc::new(MemorySchemaProvider::new()))?;
    }
    Ok(())
}

/// The relations that list the session's tables and views: `pg_catalog`'s
/// (`pg_class`, `pg_attribute`, `pg_tables`, `pg_views` …) and
/// `information_schema`'s (`tables`, `columns`, `views`).
type NamedTables = Vec<(&'static str, Arc<MemTable>)>;

fn relation_tables(info: &CatalogInfo) -> DfResult<(NamedTables, NamedTables)> {
    let relations = info.relations();
    let mut pg_catalog: NamedTables = Vec::new();
    let mut pg_views = Builder::new(&["schemaname:name", "viewname:name", "viewowner:name", "definition:t"]);
    let mut isv = Builder::new(&[
        "table_catalog:name",
        "table_schema:name",
        "table_name:name",
        "view_definition:varchar",
        "check_option:varchar",
        "is_updatable:varchar",
        "is_insertable_into:varchar",
        "is_trigger_updatable:varchar",
        "is_trigger_deletable:varchar",
        "is_trigger_insertable_into:varchar",
    ]);
    let mut class = Builder::new(&[
        "oid:oid",
        "relname:name",
        "relnamespace:oid",
        "reltype:oid",
        "reloftype:oid",
        "relowner:oid",
        "relam:oid",
        "relfilenode:oid",
        "reltablespace:oid",
        "relpages:i",
        "reltuples:f",
        "relallvisible:i",
        "reltoastrelid:oid",
        "relhasindex:b",
        "relisshared:b",
        "relpersistence:char",
        "relkind:char",
        "relnatts:s",
        "relchecks:s",
        "relhasrules:b",
        "relhastriggers:b",
        "relhassubclass:b",
        "relrowsecurity:b",
        "relforcerowsecurity:b",
        "relispopulated:b",
        "relreplident:char",
        "relispartition:b",
        "relrewrite:oid",
        "relfrozenxid:xid",
        "relminmxid:xid",
        "relacl:_aclitem",
        "reloptions:a",
        "relpartbound:pg_node_tree",
    ]);
    let mut attr = Builder::new(&[
        "attrelid:oid",
        "attname:name",
        "atttypid:oid",
        "attstattarget:i",
        "attlen:s",
        "attnum:s",
        "attndims:i",
        "attcacheoff:i",
        "atttypmod:i",
        "attbyval:b",
        "attalign:char",
        "attstorage:char",
        "attcompression:char",
        "attnotnull:b",
        "atthasdef:b",
        "atthasmissing:b",
        "attidentity:char",
        "attgenerated:char",
        "attisdropped:b",
        "attislocal:b",
        "attinhcount:i",
        "attcollation:oid",
        "attacl:_aclitem",
        "attoptions:a",
        "attfdwoptions:a",
        "attmissingval:anyarray",
    ]);
    let mut stat = Builder::new(&[
        "relid:oid",
        "schemaname:name",
        "relname:name",
        "seq_scan:I",
        "seq_tup_read:I",
        "idx_scan:I",
        "idx_tup_fetch:I",
        "n_tup_ins:I",
        "n_tup_upd:I",
        "n_tup_del:I",
        "n_tup_hot_upd:I",
        "n_live_tup:I",
        "n_dead_tup:I",
        "n_mod_since_analyze:I",
        "n_ins_since_vacuum:I",
        "last_vacuum:timestamptz",
        "last_autovacuum:timestamptz",
        "last_analyze:timestamptz",
        "last_autoanalyze:timestamptz",
        "vacuum_count:I",
        "autovacuum_count:I",
        "analyze_count:I",
        "autoanalyze_count:I",
    ]);
    let mut ist = Builder::new(&[
        "table_catalog:name",
        "table_schema:name",
        "table_name:name",
        "table_type:varchar",
        "self_referencing_column_name:name",
        "reference_generation:varchar",
        "user_defined_type_catalog:name",
        "user_defined_type_schema:name",
        "user_defined_type_name:name",
        "is_insertable_into:varchar",
        "is_typed:varchar",
        "commit_action:varchar",
    ]);
    let mut isc = Builder::new(&[
        "table_catalog:name",
        "table_schema:name",
        "table_name:name",
        "column_name:name",
        "ordinal_position:i",
        "column_default:varchar",
        "is_nullable:varchar",
        "data_type:varchar",
        "character_maximum_length:i",
        "character_octet_length:i",
        "numeric_precision:i",
        "numeric_precision_radix:i",
        "numeric_scale:i",
        "datetime_precision:i",
        "interval_type:varchar",
        "interval_precision:i",
        "character_set_catalog:name",
        "character_set_schema:name",
        "character_set_name:name",
        "collation_catalog:name",
        "collation_schema:name",
        "collation_name:name",
        "domain_catalog:name",
        "domain_schema:name",
        "domain_name:name",
        "udt_catalog:name",
        "udt_schema:name",
        "udt_name:name",
        "scope_catalog:name",
        "scope_schema:name",
        "scope_name:name",
        "maximum_cardinality:i",
        "dtd_identifier:name",
        "is_self_referencing:varchar",
        "is_identity:varchar",
        "identity_generation:varchar",
        "identity_start:varchar",
        "identity_increment:varchar",
        "identity_maximum:varchar",
        "identity_minimum:varchar",
        "identity_cycle:varchar",
        "is_generated:varchar",
        "generation_expression:varchar",
        "is_updatable:varchar",
    ]);
    for tbl in &relations {
        let view = tbl.view.as_ref();
        class.row(vec![
            ("oid", i(tbl.oid)),
            ("relname", t(&tbl.name)),
            ("relnamespace", i(NS_PUBLIC)),
            ("reltype", i(0)),
            ("reloftype", i(0)),
            ("relowner", i(OWNER)),
            ("relam", i(if view.is_some() { 0 } else { 2 })),
            ("relfilenode", i(if view.is_some() { 0 } else { tbl.oid })),
            ("reltablespace", i(0)),
            ("relpages", i(0)),
            ("reltuples", ScalarValue::Float32(Some(tbl.rows as f32))),
            ("relallvisible", i(0)),
            ("reltoastrelid", i(0)),
            ("relhasindex", b(false)),
            ("relisshared", b(false)),
            ("relpersistence", t(if view.is_some_and(|v| v.temporary) { "t" } else { "p" })),
            ("relkind", t(if view.is_some() { "v" } else { "r" })),
            ("relnatts", ScalarValue::Int16(Some(tbl.schema.fields().len() as i16))),
            ("relchecks", ScalarValue::Int16(Some(0))),
            // A view is its `_RETURN` rule.
            ("relhasrules", b(view.is_some())),
            ("relhastriggers", b(false)),
            ("relhassubclass", b(false)),
            ("relrowsecurity", b(false)),
            ("relforcerowsecurity", b(false)),
            ("relispopulated", b(true)),
            ("relreplident", t("d")),
            ("relispartition", b(false)),
            ("relrewrite", i(0)),
            ("relfrozenxid", i(0)),
            ("relminmxid", i(0)),
        ]);
        match view {
            None => stat.row(vec![
                ("relid", i(tbl.oid)),
                ("schemaname", t("public")),
                ("relname", t(&tbl.name)),
                ("n_live_tup", ScalarValue::Int64(Some(tbl.rows))),
                ("seq_scan", ScalarValue::Int64(Some(0))),
                ("n_dead_tup", ScalarValue::Int64(Some(0))),
            ]),
            Some(v) => {
                pg_views.row(vec![
                    ("schemaname", t("public")),
                    ("viewname", t(&tbl.name)),
                    ("viewowner", t(DATABASE)),
                    ("definition", t(&v.definition)),
                ]);
                isv.row(vec![
                    ("table_catalog", t(DATABASE)),
                    ("table_schema", t("public")),
                    ("table_name", t(&tbl.name)),
                    ("view_definition", t(&v.definition)),
                    ("check_option", t("NONE")),
                    ("is_updatable", t("NO")),
                    ("is_insertable_into", t("NO")),
                    ("is_trigger_updatable", t("NO")),
                    ("is_trigger_deletable", t("NO")),
                    ("is_trigger_insertable_into", t("NO")),
                ]);
            }
        }
        ist.row(vec![
            ("table_catalog", t(DATABASE)),
            ("table_schema", t("public")),
            ("table_name", t(&tbl.name)),
            ("table_type", t(if view.is_some() { "VIEW" } else { "BASE TABLE" })),
            ("is_insertable_into", t(if tbl.insertable { "YES" } else { "NO" })),
            ("is_typed", t("NO")),
        ]);
        for (n, f) in tbl.schema.fields().iter().enumerate() {
            let ty = pg_type(f.data_type());
            let entry = type_by_oid(ty.oid() as i64);
            // PostgreSQL knows no constraints on a view's columns.
            let not_null = !f.is_nullable() && view.is_none();
            let len = entry.map(|e| e.len).unwrap_or(-1);
            attr.row(vec![
                ("attrelid", i(tbl.oid)),
                ("attname", t(f.name())),
                ("atttypid", i(ty.oid() as i32)),
                ("attstattarget", i(-1)),
                ("attlen", ScalarValue::Int16(Some(len))),
                ("attnum", ScalarValue::Int16(Some(n as i16 + 1))),
                ("attndims", i(if matches!(f.data_type(), DataType::List(_)) { 1 } else { 0 })),
                ("attcacheoff", i(-1)),
                ("atttypmod", i(-1)),
                ("attbyval", b(entry.is_some_and(|e| e.byval))),
                ("attalign", t(entry.map_or("i", |e| e.align))),
                ("attstorage", t(entry.map_or("x", |e| e.storage))),
                ("attcompression", t("")),
                ("attnotnull", b(not_null)),
                ("atthasdef", b(false)),
                ("atthasmissing", b(false)),
                ("attidentity", t("")),
                ("attgenerated", t("")),
                ("attisdropped", b(false)),
                ("attislocal", b(true)),
                ("attinhcount", i(0)),
                ("attcollation", i(entry.map_or(0, |e| e.collation))),
            ]);
            let is_array = matches!(f.data_type(), DataType::List(_));
            let (precision, radix, scale) = match f.data_type() {
                DataType::Int16 => (Some(16), Some(2), Some(0)),
                DataType::Int32 => (Some(32), Some(2), Some(0)),
                DataType::Int64 => (Some(64), Some(2), Some(0)),
                DataType::Float32 => (Some(24), Some(2), None),
                DataType::Float64 => (Some(53), Some(2), None),
                _ => (None, None, None),
            };
            isc.row(vec![
                ("table_catalog", t(DATABASE)),
                ("table_schema", t("public")),
                ("table_name", t(&tbl.name)),
                ("column_name", t(f.name())),
                ("ordinal_position", i(n as i32 + 1)),
                ("is_nullable", t(if not_null { "NO" } else { "YES" })),
                ("data_type", t(if is_array { "ARRAY" } else { format_type_name(f.data_type()) })),
                ("numeric_precision", ScalarValue::Int32(precision)),
                ("numeric_precision_radix", ScalarValue::Int32(radix)),
                ("numeric_scale", ScalarValue::Int32(scale)),
                (
                    "datetime_precision",
                    ScalarValue::Int32(match f.data_type() {
                        DataType::Timestamp(..) | DataType::Interval(_) | DataType::Duration(_) => Some(6),
                        DataType::Date32 | DataType::Date64 => Some(0),
                        _ => None,
                    }),
                ),
                ("udt_catalog", t(DATABASE)),
                ("udt_schema", t("pg_catalog")),
                ("udt_name", t(typname(f.data_type()))),
                ("dtd_identifier", t(&(n + 1).to_string())),
                ("is_self_referencing", t("NO")),
                ("is_identity", t("NO")),
                ("is_generated", t("NEVER")),
                ("is_updatable", t("NO")),
            ]);
        }
    }
    pg_catalog.push(("pg_class", class.table()?));
    pg_catalog.push(("pg_attribute", attr.table()?));
    pg_catalog.push(("pg_stat_user_tables", stat.table()?));
    pg_catalog.push(("pg_stat_all_tables", stat.table()?));

    let mut tables_view = Builder::new(&[
        "schemaname:name",
        "tablename:name",
        "tableowner:name",
        "tablespace:name",
        "hasindexes:b",
        "hasrules:b",
        "hastriggers:b",
        "rowsecurity:b",
    ]);
    for tbl in relations.iter().filter(|r| r.view.is_none()) {
        tables_view.row(vec![
            ("schemaname", t("public")),
            ("tablename", t(&tbl.name)),
            ("tableowner", t(DATABASE)),
            ("hasindexes", b(false)),
            ("hasrules", b(false)),
            ("hastriggers", b(false)),
            ("rowsecurity", b(false)),
        ]);
    }
    pg_catalog.push(("pg_tables", tables_view.table()?));
    pg_catalog.push(("pg_views", pg_views.table()?));
    let information_schema: NamedTables =
        vec![("tables", ist.table()?), ("columns", isc.table()?), ("views", isv.table()?)];
    Ok((pg_catalog, information_schema))
}

/// Lists the session's views as they are now in the relations that list
/// tables and views (after [`CatalogInfo::set_views`]).
pub(super) fn register_relations(ctx: &SessionContext, info: &CatalogInfo) -> DfResult<()> {
    let (pg_catalog, information_schema) = relation_tables(info)?;
    // Registering a name that is taken is an error: replace each.
    for (name, table) in pg_catalog {
        ctx.deregister_table(name)?;
        ctx.register_table(name, table)?;
    }
    if let Some(is) = ctx.catalog("datafusion").and_then(|c| c.schema("information_schema")) {
        for (name, table) in information_schema {
            is.deregister_table(name)?;
            is.register_table(name.to_string(), table)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{run, test_session};
    use super::*;

    async fn rows(sql: &str) -> Vec<Vec<String>> {
        let (ctx, info) = test_session();
        match run(&ctx, &info, sql).await {
            Ok(rows) => rows,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    #[tokio::test]
    async fn pg_class_and_pg_namespace_list_the_user_tables() {
        let got = rows(
            "SELECT c.oid, n.nspname, c.relname, c.relkind, c.relnatts, c.reltuples FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace",
        )
        .await;
        assert_eq!(got, [["16384", "public", "climate", "r", "5", "3.0"]]);
        let got = rows("SELECT oid, nspname FROM pg_namespace ORDER BY oid").await;
        assert_eq!(got, [["11", "pg_catalog"], ["2200", "public"], ["13183", "information_schema"]]);
    }

    #[tokio::test]
    async fn pg_attribute_types_the_columns_as_pg_type_has_them() {
        let got = rows(
            "SELECT a.attnum, a.attname, t.typname, a.attlen, a.attnotnull, a.attalign FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = 16384 ORDER BY a.attnum",
        )
        .await;
        assert_eq!(
            got,
            [
                ["1", "date", "date", "4", "false", "i"],
                ["2", "meantemp", "float8", "8", "true", "d"],
                ["3", "humidity", "float8", "8", "false", "d"],
                ["4", "city", "text", "-1", "false", "i"],
                ["5", "tags", "_text", "-1", "false", "i"],
            ]
        );
    }

    #[tokio::test]
    async fn pg_type_rows_link_arrays_and_elements() {
        let got = rows("SELECT typname, typlen, typcategory, typbyval, typarray FROM pg_type WHERE oid = 1184").await;
        assert_eq!(got, [["timestamptz", "8", "D", "true", "1185"]]);
        let got =
            rows("SELECT e.typname FROM pg_type a JOIN pg_type e ON e.oid = a.typelem WHERE a.typname = '_text'").await;
        assert_eq!(got, [["text"]]);
        assert_eq!(type_oid_by_name("pg_catalog.int4"), Some(23));
        assert_eq!(type_oid_by_name("timestamp with time zone"), Some(1184));
        assert_eq!(type_oid_by_name("\"char\""), Some(18));
        assert_eq!(type_oid_by_name("no_such_type"), None);
    }

    #[tokio::test]
    async fn information_schema_describes_tables_and_columns() {
        let got =
            rows("SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables").await;
        assert_eq!(got, [["leadline", "public", "climate", "BASE TABLE"]]);
        let got = rows(
            "SELECT column_name, ordinal_position, is_nullable, data_type, udt_name FROM information_schema.columns \
             WHERE table_name = 'climate' ORDER BY ordinal_position",
        )
        .await;
        assert_eq!(
            got,
            [
                ["date", "1", "YES", "date", "date"],
                ["meantemp", "2", "NO", "double precision", "float8"],
                ["humidity", "3", "YES", "double precision", "float8"],
                ["city", "4", "YES", "text", "text"],
                ["tags", "5", "YES", "ARRAY", "_text"],
            ]
        );
        let got = rows("SELECT schema_name FROM information_schema.schemata ORDER BY 1").await;
        assert_eq!(got, [["information_schema"], ["pg_catalog"], ["public"]]);
    }

    #[tokio::test]
    async fn information_schema_routines_lists_the_functions() {
        let got = rows(
            "SELECT routine_schema, routine_name, routine_type, data_type FROM information_schema.routines \
             WHERE routine_name IN ('dora_metrics', 'lead_time', 'dora_tier', 'upper', 'count') \
             ORDER BY 2, specific_name",
        )
        .await;
        assert_eq!(
            got,
            [
                ["pg_catalog", "count", "NULL", "NULL"],
                ["public", "dora_metrics", "FUNCTION", "record"],
                ["public", "dora_tier", "FUNCTION", "text"],
                ["public", "dora_tier", "FUNCTION", "text"],
                ["public", "lead_time", "NULL", "interval"],
                ["pg_catalog", "upper", "FUNCTION", "NULL"],
            ]
        );
    }

    #[tokio::test]
    async fn stub_relations_are_empty_with_postgres_columns() {
        assert_eq!(rows("SELECT count(*) FROM pg_index").await, [["0"]]);
        assert!(rows("SELECT indexrelid, indkey FROM pg_index").await.is_empty());
        assert!(rows("SELECT constraint_name FROM information_schema.table_constraints").await.is_empty());
        assert!(empty_relation_columns("PG_INDEX").is_some());
        assert!(empty_relation_columns("pg_class").is_none());
    }

    #[tokio::test]
    async fn every_catalog_relation_has_an_oid() {
        let (ctx, info) = test_session();
        for (schema, qualifier) in [("public", "pg_catalog"), ("information_schema", "information_schema")] {
            let Some(relations) = ctx.catalog("datafusion").and_then(|c| c.schema(schema)) else {
                panic!("no schema {schema}");
            };
            for relation in relations.table_names().into_iter().filter(|n| n != "climate") {
                assert!(info.table_oid(&format!("{qualifier}.{relation}")).is_some(), "{qualifier}.{relation}");
            }
        }
        assert_eq!(info.table_oid("climate"), Some(16384));
        assert_eq!(info.table_oid("public.\"climate\""), Some(16384));
        assert_eq!(info.table_oid("pg_class"), Some(1259));
        assert_eq!(info.table_oid("columns"), None);
        assert_eq!(info.table_oid("pg_catalog.climate"), None);
        assert_eq!(info.table_oid("no_such_table"), None);
        assert_eq!(info.table_oid("leadline.public.climate"), Some(16384));
        assert_eq!(info.table_oid("\"Climate\""), None);
        assert_eq!(info.table_oid("CLIMATE"), Some(16384));
        // PostgreSQL's errors, naming the relation as parsed.
        let error = |name: &str| {
            info.regclass(name).map(|_| ("", String::new())).unwrap_or_else(|e| {
                let (code, message, _) = e.parts();
                (code, message)
            })
        };
        assert_eq!(error("\"nope\""), ("42P01", "relation \"nope\" does not exist".into()));
        assert_eq!(error("public.Nope"), ("42P01", "relation \"public.nope\" does not exist".into()));
        assert_eq!(error("other.public.climate").0, "0A000");
        assert_eq!(error("a.b.c.d").0, "42601");
        assert_eq!(error("1abc").0, "42602");
    }

    #[tokio::test]
    async fn session_rows_come_from_the_session() {
        assert_eq!(rows("SELECT datname, encoding FROM pg_database").await, [["leadline", "6"]]);
        assert_eq!(rows("SELECT rolname FROM pg_roles ORDER BY oid").await, [["leadline"], ["analyst"]]);
        assert_eq!(rows("SELECT setting FROM pg_settings WHERE name = 'datestyle'").await, [["ISO, MDY"]]);
        // pg_settings reads the variables when it is scanned: a SET shows at once.
        let (ctx, info) = test_session();
        let datestyle = "SELECT setting FROM pg_settings WHERE name = 'datestyle'";
        run(&ctx, &info, "SELECT set_config('datestyle', 'ISO, DMY', false)").await.unwrap();
        assert_eq!(run(&ctx, &info, datestyle).await.unwrap(), [["ISO, DMY"]]);
        assert_eq!(rows("SELECT usename FROM pg_stat_activity").await, [["analyst"]]);
    }

    /// Two sessions of one server: the fixed tables are built once and
    /// shared; what is the session's own (its user, its relations) is not.
    #[tokio::test]
    async fn sessions_share_the_fixed_tables_only() {
        use super::super::register;
        let fixed = FixedTables::default();
        let session = |user: &str, table: &str| {
            let ctx = SessionContext::new();
            let schema = Arc::new(arrow::datatypes::Schema::new(vec![Field::new("x", DataType::Int64, true)]));
            ctx.register_table(table, Arc::new(MemTable::try_new(schema.clone(), vec![vec![]]).unwrap())).unwrap();
            let info = Arc::new(CatalogInfo {
                tables: vec![TableInfo {
                    oid: super::super::FIRST_TABLE_OID,
                    name: table.into(),
                    schema,
                    rows: 0,
                    insertable: false,
                    view: None,
                }],
                views: Default::default(),
                user: user.into(),
                roles: vec![user.into()],
            });
            register(&ctx, &fixed, info.clone(), super::super::test_settings()).unwrap();
            (ctx, info)
        };
        let (a, a_info) = session("ann", "alpha");
        let (b, b_info) = session("bob", "beta");
        for (name, shared) in [("pg_type", true), ("pg_proc", true), ("pg_class", false), ("pg_roles", false)] {
            let (pa, pb) = (a.table_provider(name).await.unwrap(), b.table_provider(name).await.unwrap());
            assert_eq!(Arc::ptr_eq(&pa, &pb), shared, "{name}");
        }
        let relname = "SELECT relname FROM pg_class WHERE relnamespace = 2200";
        assert_eq!(run(&a, &a_info, relname).await.unwrap(), [["alpha"]]);
        assert_eq!(run(&b, &b_info, relname).await.unwrap(), [["beta"]]);
        assert_eq!(run(&b, &b_info, "SELECT usename FROM pg_stat_activity").await.unwrap(), [["bob"]]);
        let types = "SELECT count(*) FROM pg_type WHERE typname = 'int8'";
        assert_eq!(run(&b, &b_info, types).await.unwrap(), [["1"]]);
    }
}
