//! The `pg_catalog` and `information_schema` relations of a session: what
//! PostgreSQL has in them for leadline's tables (`pg_class`, `pg_attribute`,
//! `pg_type`, `information_schema.columns` …), and the relations leadline
//! never has rows in (`pg_index`, `pg_constraint` …) as empty tables with
//! PostgreSQL's columns, so that queries over them plan and name real columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::format::parse_ident;
use super::{DATABASE, NS_INFORMATION_SCHEMA, NS_PG_CATALOG, NS_PUBLIC, OWNER, Settings};
use crate::pg::encode::pg_type;
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

/// One row of `pg_type`.
pub(super) struct PgType {
    pub oid: i32,
    /// `typname`.
    pub name: &'static str,
    /// `typlen`: bytes, or -1 for variable length.
    pub len: i16,
    /// `typcategory`.
    pub category: &'static str,
    /// `typelem`: the element type of an array type.
    pub elem: i32,
    /// `typarray`: the array type of this one.
    pub array: i32,
    /// What `format_type` shows.
    pub display: &'static str,
}

const fn ty(
    oid: i32,
    name: &'static str,
    len: i16,
    category: &'static str,
    elem: i32,
    array: i32,
    display: &'static str,
) -> PgType {
    PgType { oid, name, len, category, elem, array, display }
}

/// The types leadline's tables and catalog use, with PostgreSQL's OIDs.
const TYPES: &[PgType] = &[
    ty(16, "bool", 1, "B", 0, 1000, "boolean"),
    ty(17, "bytea", -1, "U", 0, 1001, "bytea"),
    ty(18, "char", 1, "Z", 0, 1002, "\"char\""),
    ty(19, "name", 64, "S", 0, 1003, "name"),
    ty(20, "int8", 8, "N", 0, 1016, "bigint"),
    ty(21, "int2", 2, "N", 0, 1005, "smallint"),
    ty(22, "int2vector", -1, "A", 21, 1006, "int2vector"),
    ty(23, "int4", 4, "N", 0, 1007, "integer"),
    ty(25, "text", -1, "S", 0, 1009, "text"),
    ty(26, "oid", 4, "N", 0, 1028, "oid"),
    ty(30, "oidvector", -1, "A", 26, 1013, "oidvector"),
    ty(114, "json", -1, "U", 0, 199, "json"),
    ty(700, "float4", 4, "N", 0, 1021, "real"),
    ty(701, "float8", 8, "N", 0, 1022, "double precision"),
    ty(705, "unknown", -2, "X", 0, 0, "unknown"),
    ty(1000, "_bool", -1, "A", 16, 0, "boolean[]"),
    ty(1005, "_int2", -1, "A", 21, 0, "smallint[]"),
    ty(1007, "_int4", -1, "A", 23, 0, "integer[]"),
    ty(1009, "_text", -1, "A", 25, 0, "text[]"),
    ty(1015, "_varchar", -1, "A", 1043, 0, "character varying[]"),
    ty(1016, "_int8", -1, "A", 20, 0, "bigint[]"),
    ty(1021, "_float4", -1, "A", 700, 0, "real[]"),
    ty(1022, "_float8", -1, "A", 701, 0, "double precision[]"),
    ty(1043, "varchar", -1, "S", 0, 1015, "character varying"),
    ty(1082, "date", 4, "D", 0, 1182, "date"),
    ty(1114, "timestamp", 8, "D", 0, 1115, "timestamp without time zone"),
    ty(1115, "_timestamp", -1, "A", 1114, 0, "timestamp without time zone[]"),
    ty(1182, "_date", -1, "A", 1082, 0, "date[]"),
    ty(1184, "timestamptz", 8, "D", 0, 1185, "timestamp with time zone"),
    ty(1185, "_timestamptz", -1, "A", 1184, 0, "timestamp with time zone[]"),
    ty(1186, "interval", 16, "T", 0, 1187, "interval"),
    ty(1187, "_interval", -1, "A", 1186, 0, "interval[]"),
    ty(1231, "_numeric", -1, "A", 1700, 0, "numeric[]"),
    ty(1700, "numeric", -1, "N", 0, 1231, "numeric"),
    ty(2205, "regclass", 4, "N", 0, 2210, "regclass"),
    ty(2206, "regtype", 4, "N", 0, 2211, "regtype"),
    ty(2249, "record", -1, "P", 0, 2287, "record"),
    ty(2278, "void", 4, "P", 0, 0, "void"),
    ty(2279, "trigger", 4, "P", 0, 0, "trigger"),
    ty(2950, "uuid", 16, "U", 0, 2951, "uuid"),
    ty(3802, "jsonb", -1, "U", 0, 3807, "jsonb"),
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
    ("pg_description", &["objoid:i", "classoid:i", "objsubid:i", "description:t"]),
    ("pg_shdescription", &["objoid:i", "classoid:i", "description:t"]),
    ("pg_attrdef", &["oid:i", "adrelid:i", "adnum:s", "adbin:t"]),
    (
        "pg_index",
        &[
            "indexrelid:i",
            "indrelid:i",
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
            "indkey:h",
            "indcollation:o",
            "indclass:o",
            "indoption:h",
            "indexprs:t",
            "indpred:t",
        ],
    ),
    (
        "pg_constraint",
        &[
            "oid:i",
            "conname:t",
            "connamespace:i",
            "contype:t",
            "condeferrable:b",
            "condeferred:b",
            "convalidated:b",
            "conrelid:i",
            "contypid:i",
            "conindid:i",
            "conparentid:i",
            "confrelid:i",
            "confupdtype:t",
            "confdeltype:t",
            "confmatchtype:t",
            "conislocal:b",
            "coninhcount:i",
            "connoinherit:b",
            "conkey:h",
            "confkey:h",
            "conbin:t",
        ],
    ),
    ("pg_inherits", &["inhrelid:i", "inhparent:i", "inhseqno:i", "inhdetachpending:b"]),
    (
        "pg_collation",
        &[
            "oid:i",
            "collname:t",
            "collnamespace:i",
            "collowner:i",
            "collprovider:t",
            "collisdeterministic:b",
            "collencoding:i",
            "collcollate:t",
            "collctype:t",
        ],
    ),
    (
        "pg_sequence",
        &[
            "seqrelid:i",
            "seqtypid:i",
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
            "oid:i",
            "opcmethod:i",
            "opcname:t",
            "opcnamespace:i",
            "opcowner:i",
            "opcfamily:i",
            "opcintype:i",
            "opcdefault:b",
            "opckeytype:i",
        ],
    ),
    (
        "pg_policy",
        &[
            "oid:i",
            "polname:t",
            "polrelid:i",
            "polcmd:t",
            "polpermissive:b",
            "polroles:o",
            "polqual:t",
            "polwithcheck:t",
        ],
    ),
    (
        "pg_statistic_ext",
        &[
            "oid:i",
            "stxrelid:i",
            "stxname:t",
            "stxnamespace:i",
            "stxowner:i",
            "stxstattarget:i",
            "stxkeys:h",
            "stxkind:a",
        ],
    ),
    (
        "pg_publication",
        &[
            "oid:i",
            "pubname:t",
            "pubowner:i",
            "puballtables:b",
            "pubinsert:b",
            "pubupdate:b",
            "pubdelete:b",
            "pubtruncate:b",
            "pubviaroot:b",
        ],
    ),
    ("pg_publication_rel", &["oid:i", "prpubid:i", "prrelid:i", "prqual:t", "prattrs:h"]),
    ("pg_publication_namespace", &["oid:i", "pnpubid:i", "pnnspid:i"]),
    (
        "pg_trigger",
        &["oid:i", "tgrelid:i", "tgparentid:i", "tgname:t", "tgfoid:i", "tgtype:s", "tgenabled:t", "tgisinternal:b"],
    ),
    ("pg_rewrite", &["oid:i", "rulename:t", "ev_class:i", "ev_type:t", "ev_enabled:t", "is_instead:b"]),
    ("pg_extension", &["oid:i", "extname:t", "extowner:i", "extnamespace:i", "extrelocatable:b", "extversion:t"]),
    ("pg_enum", &["oid:i", "enumtypid:i", "enumsortorder:F", "enumlabel:t"]),
    ("pg_range", &["rngtypid:i", "rngsubtype:i", "rngmultitypid:i"]),
    ("pg_depend", &["classid:i", "objid:i", "objsubid:i", "refclassid:i", "refobjid:i", "refobjsubid:i", "deptype:t"]),
    ("pg_foreign_table", &["ftrelid:i", "ftserver:i", "ftoptions:a"]),
    ("pg_foreign_server", &["oid:i", "srvname:t", "srvowner:i", "srvfdw:i"]),
    ("pg_foreign_data_wrapper", &["oid:i", "fdwname:t", "fdwowner:i"]),
    ("pg_event_trigger", &["oid:i", "evtname:t", "evtevent:t", "evtowner:i", "evtfoid:i", "evtenabled:t"]),
    ("pg_matviews", &["schemaname:t", "matviewname:t", "matviewowner:t", "definition:t"]),
    ("pg_indexes", &["schemaname:t", "tablename:t", "indexname:t", "tablespace:t", "indexdef:t"]),
    ("pg_auth_members", &["roleid:i", "member:i", "grantor:i", "admin_option:b"]),
    ("pg_cursors", &["name:t", "statement:t", "is_holdable:b", "is_binary:b", "is_scrollable:b"]),
    ("pg_prepared_statements", &["name:t", "statement:t", "parameter_types:a", "from_sql:b"]),
    ("pg_locks", &["locktype:t", "database:i", "relation:i", "pid:i", "mode:t", "granted:b"]),
    ("pg_stat_activity_empty", &["pid:i"]),
];

const EMPTY_INFORMATION_SCHEMA: &[(&str, &[&str])] = &[
    (
        "table_constraints",
        &[
            "constraint_catalog:t",
            "constraint_schema:t",
            "constraint_name:t",
            "table_catalog:t",
            "table_schema:t",
            "table_name:t",
            "constraint_type:t",
            "is_deferrable:t",
            "initially_deferred:t",
            "enforced:t",
            "nulls_distinct:t",
        ],
    ),
    (
        "key_column_usage",
        &[
            "constraint_catalog:t",
            "constraint_schema:t",
            "constraint_name:t",
            "table_catalog:t",
            "table_schema:t",
            "table_name:t",
            "column_name:t",
            "ordinal_position:i",
            "position_in_unique_constraint:i",
        ],
    ),
    (
        "referential_constraints",
        &[
            "constraint_catalog:t",
            "constraint_schema:t",
            "constraint_name:t",
            "unique_constraint_catalog:t",
            "unique_constraint_schema:t",
            "unique_constraint_name:t",
            "match_option:t",
            "update_rule:t",
            "delete_rule:t",
        ],
    ),
    ("check_constraints", &["constraint_catalog:t", "constraint_schema:t", "constraint_name:t", "check_clause:t"]),
];

/// `information_schema.routines`: the functions `pg_proc` lists.
const ROUTINES_COLUMNS: &[&str] = &[
    "specific_catalog:t",
    "specific_schema:t",
    "specific_name:t",
    "routine_catalog:t",
    "routine_schema:t",
    "routine_name:t",
    "routine_type:t",
    "data_type:t",
    "type_udt_catalog:t",
    "type_udt_schema:t",
    "type_udt_name:t",
    "routine_body:t",
    "routine_definition:t",
    "external_language:t",
    "is_deterministic:t",
    "security_type:t",
];

/// The columns (`name:type code`) of a relation leadline never has rows in.
pub(super) fn empty_relation_columns(name: &str) -> Option<&'static [&'static str]> {
    let name = name.to_ascii_lowercase();
    EMPTY_TABLES.iter().chain(EMPTY_INFORMATION_SCHEMA).find(|(t, _)| *t == name).map(|(_, columns)| *columns)
}

fn column_type(code: &str) -> DataType {
    match code {
        "i" => DataType::Int32,
        "I" => DataType::Int64,
        "s" => DataType::Int16,
        "b" => DataType::Boolean,
        "f" => DataType::Float32,
        "F" => DataType::Float64,
        "a" => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        "h" => DataType::List(Arc::new(Field::new("item", DataType::Int16, true))),
        "o" => DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        _ => DataType::Utf8,
    }
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
                Field::new(name, column_type(code), true)
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

/// A type's input/output function (`typinput`, `typreceive` …, `regproc`
/// columns shown by name) as PostgreSQL names it: `int4recv`, but
/// `timestamptz_recv`, and `array_recv` for every array type. Drivers map
/// types by these names (ADBC reads `typreceive`), so they must match.
fn io_function(pg: &PgType, suffix: &str) -> String {
    if pg.name == "trigger" && matches!(suffix, "recv" | "send") {
        return "-".into();
    }
    let separated = matches!(
        pg.name,
        "date"
            | "timestamp"
            | "timestamptz"
            | "interval"
            | "numeric"
            | "json"
            | "jsonb"
            | "uuid"
            | "record"
            | "void"
            | "trigger"
    );
    match (pg.elem != 0 && pg.category == "A" && pg.name.starts_with('_'), separated) {
        (true, _) => format!("array_{suffix}"),
        (false, true) => format!("{}_{suffix}", pg.name),
        (false, false) => format!("{}{suffix}", pg.name),
    }
}

/// The `regproc` columns of the catalog, kept as the function's name; `-`
/// is PostgreSQL's name for none (OID 0).
pub(super) const REGPROC_COLUMNS: &[&str] =
    &["typinput", "typoutput", "typreceive", "typsend", "typmodin", "typmodout", "typanalyze", "aggfnoid"];

/// `typbyval`/`attbyval`: fixed-size values up to 8 bytes are passed by value.
fn by_value(len: i16) -> bool {
    len > 0 && len <= 8
}

/// `typalign`/`attalign` of a value of `len` bytes.
fn alignment(len: i16) -> &'static str {
    match len {
        8 => "d",
        2 => "s",
        1 => "c",
        _ => "i",
    }
}

/// `typstorage`/`attstorage`: variable-length values may be TOASTed.
fn storage(len: i16) -> &'static str {
    if len < 0 { "x" } else { "p" }
}

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

/// Registers the catalog's relations in a session: `pg_catalog`'s under their
/// bare names (the rewrites drop the `pg_catalog.` qualifier), and the
/// `information_schema` schema.
pub(super) fn register_tables(ctx: &SessionContext, info: &CatalogInfo, settings: &Settings) -> DfResult<()> {
    let mut tables: Vec<(&str, Arc<MemTable>)> = Vec::new();

    let mut ns = Builder::new(&["oid:i", "nspname:t", "nspowner:i", "nspacl:a"]);
    for (oid, name) in
        [(NS_PG_CATALOG, "pg_catalog"), (NS_PUBLIC, "public"), (NS_INFORMATION_SCHEMA, "information_schema")]
    {
        ns.row(vec![("oid", i(oid)), ("nspname", t(name)), ("nspowner", i(OWNER))]);
    }
    tables.push(("pg_namespace", ns.table()?));

    let (relations, information_schema) = relation_tables(info)?;
    tables.extend(relations);

    let mut ty = Builder::new(&[
        "oid:i",
        "typname:t",
        "typnamespace:i",
        "typowner:i",
        "typlen:s",
        "typbyval:b",
        "typtype:t",
        "typcategory:t",
        "typispreferred:b",
        "typisdefined:b",
        "typdelim:t",
        "typrelid:i",
        "typsubscript:t",
        "typelem:i",
        "typarray:i",
        "typinput:t",
        "typoutput:t",
        "typreceive:t",
        "typsend:t",
        "typmodin:t",
        "typmodout:t",
        "typanalyze:t",
        "typalign:t",
        "typstorage:t",
        "typnotnull:b",
        "typbasetype:i",
        "typtypmod:i",
        "typndims:i",
        "typcollation:i",
        "typdefaultbin:t",
        "typdefault:t",
        "typacl:a",
    ]);
    for pg in TYPES {
        let (name, len) = (pg.name, pg.len);
        let pseudo = pg.category == "P" || pg.category == "X";
        ty.row(vec![
            ("oid", i(pg.oid)),
            ("typname", t(name)),
            ("typnamespace", i(NS_PG_CATALOG)),
            ("typowner", i(OWNER)),
            ("typlen", ScalarValue::Int16(Some(len))),
            ("typbyval", b(by_value(len))),
            ("typtype", t(if pseudo { "p" } else { "b" })),
            ("typcategory", t(pg.category)),
            ("typispreferred", b(matches!(name, "text" | "float8" | "timestamptz" | "bool" | "interval" | "oid"))),
            ("typisdefined", b(true)),
            ("typdelim", t(",")),
            ("typrelid", i(0)),
            ("typelem", i(pg.elem)),
            ("typarray", i(pg.array)),
            ("typinput", t(&io_function(pg, "in"))),
            ("typoutput", t(&io_function(pg, "out"))),
            ("typreceive", t(&io_function(pg, "recv"))),
            ("typsend", t(&io_function(pg, "send"))),
            ("typmodin", t("-")),
            ("typmodout", t("-")),
            ("typanalyze", t("-")),
            ("typalign", t(alignment(len))),
            ("typstorage", t(storage(len))),
            ("typnotnull", b(false)),
            ("typbasetype", i(0)),
            ("typtypmod", i(-1)),
            ("typndims", i(0)),
            ("typcollation", i(if matches!(name, "text" | "varchar" | "name") { 100 } else { 0 })),
        ]);
    }
    tables.push(("pg_type", ty.table()?));

    let mut db = Builder::new(&[
        "oid:i",
        "datname:t",
        "datdba:i",
        "encoding:i",
        "datlocprovider:t",
        "datistemplate:b",
        "datallowconn:b",
        "datconnlimit:i",
        "datfrozenxid:i",
        "datminmxid:i",
        "dattablespace:i",
        "datcollate:t",
        "datctype:t",
        "daticulocale:t",
        "daticurules:t",
        "datcollversion:t",
        "datacl:a",
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

    let role_cols = [
        "oid:i",
        "rolname:t",
        "rolsuper:b",
        "rolinherit:b",
        "rolcreaterole:b",
        "rolcreatedb:b",
        "rolcanlogin:b",
        "rolreplication:b",
        "rolconnlimit:i",
        "rolpassword:t",
        "rolvaliduntil:t",
        "rolbypassrls:b",
        "rolconfig:a",
    ];
    let mut roles = Builder::new(&role_cols);
    let mut names = vec![DATABASE.to_string()];
    names.extend(info.roles.iter().filter(|r| r.as_str() != DATABASE).cloned());
    for (n, r) in names.iter().enumerate() {
        roles.row(vec![
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
        ]);
    }
    tables.push(("pg_roles", roles.table()?));
    tables.push(("pg_authid", roles.table()?));
    let mut user = Builder::new(&[
        "usename:t",
        "usesysid:i",
        "usecreatedb:b",
        "usesuper:b",
        "userepl:b",
        "usebypassrls:b",
        "passwd:t",
        "valuntil:t",
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

    let mut ts = Builder::new(&["oid:i", "spcname:t", "spcowner:i", "spcacl:a", "spcoptions:a"]);
    ts.row(vec![("oid", i(1663)), ("spcname", t("pg_default")), ("spcowner", i(OWNER))]);
    ts.row(vec![("oid", i(1664)), ("spcname", t("pg_global")), ("spcowner", i(OWNER))]);
    tables.push(("pg_tablespace", ts.table()?));

    let mut am = Builder::new(&["oid:i", "amname:t", "amhandler:t", "amtype:t"]);
    am.row(vec![("oid", i(2)), ("amname", t("heap")), ("amhandler", t("heap_tableam_handler")), ("amtype", t("t"))]);
    am.row(vec![("oid", i(403)), ("amname", t("btree")), ("amhandler", t("bthandler")), ("amtype", t("i"))]);
    tables.push(("pg_am", am.table()?));

    let mut settings_tbl = Builder::new(&[
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
    ]);
    if let Ok(vars) = settings.lock() {
        for (k, v) in vars.iter() {
            settings_tbl.row(vec![
                ("name", t(k)),
                ("setting", t(v)),
                ("context", t("user")),
                ("vartype", t("string")),
                ("source", t("default")),
                ("pending_restart", b(false)),
            ]);
        }
    }
    tables.push(("pg_settings", settings_tbl.table()?));

    let mut proc = Builder::new(&[
        "oid:i",
        "proname:t",
        "pronamespace:i",
        "proowner:i",
        "prolang:i",
        "procost:F",
        "prorows:F",
        "provariadic:i",
        "prosupport:t",
        "prokind:t",
        "prosecdef:b",
        "proleakproof:b",
        "proisstrict:b",
        "proretset:b",
        "provolatile:t",
        "proparallel:t",
        "pronargs:s",
        "pronargdefaults:s",
        "prorettype:i",
        "proargtypes:o",
        "proallargtypes:o",
        "proargmodes:a",
        "proargnames:a",
        "proargdefaults:t",
        "protrftypes:o",
        "prosrc:t",
        "probin:t",
        "prosqlbody:t",
        "proconfig:a",
        "proacl:a",
    ]);
    let mut fn_names: Vec<String> = ctx.state().scalar_functions().keys().cloned().collect();
    fn_names.extend(ctx.state().aggregate_functions().keys().cloned());
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
        let agg = ctx.state().aggregate_functions().contains_key(name);
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
        "oid:i",
        "lanname:t",
        "lanowner:i",
        "lanispl:b",
        "lanpltrusted:b",
        "lanplcallfoid:i",
        "laninline:i",
        "lanvalidator:i",
        "lanacl:a",
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

    // pg_stat_activity: this connection only (leadline keeps no global view).
    let mut act = Builder::new(&[
        "datid:i",
        "datname:t",
        "pid:i",
        "usesysid:i",
        "usename:t",
        "application_name:t",
        "client_addr:t",
        "state:t",
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

    // information_schema as a schema of its own.
    let is = Arc::new(MemorySchemaProvider::new());
    let mut schemata = Builder::new(&[
        "catalog_name:t",
        "schema_name:t",
        "schema_owner:t",
        "default_character_set_catalog:t",
        "default_character_set_schema:t",
        "default_character_set_name:t",
        "sql_path:t",
    ]);
    for s in ["pg_catalog", "public", "information_schema"] {
        schemata.row(vec![("catalog_name", t(DATABASE)), ("schema_name", t(s)), ("schema_owner", t(DATABASE))]);
    }
    is.register_table("schemata".into(), schemata.table()?)?;
    for (name, table) in information_schema {
        is.register_table(name.to_string(), table)?;
    }
    is.register_table("routines".into(), routines.table()?)?;
    for (name, cols) in EMPTY_INFORMATION_SCHEMA {
        is.register_table(name.to_string(), Builder::new(cols).table()?)?;
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
    let mut pg_views = Builder::new(&["schemaname:t", "viewname:t", "viewowner:t", "definition:t"]);
    let mut isv = Builder::new(&[
        "table_catalog:t",
        "table_schema:t",
        "table_name:t",
        "view_definition:t",
        "check_option:t",
        "is_updatable:t",
        "is_insertable_into:t",
        "is_trigger_updatable:t",
        "is_trigger_deletable:t",
        "is_trigger_insertable_into:t",
    ]);
    let mut class = Builder::new(&[
        "oid:i",
        "relname:t",
        "relnamespace:i",
        "reltype:i",
        "reloftype:i",
        "relowner:i",
        "relam:i",
        "relfilenode:i",
        "reltablespace:i",
        "relpages:i",
        "reltuples:f",
        "relallvisible:i",
        "reltoastrelid:i",
        "relhasindex:b",
        "relisshared:b",
        "relpersistence:t",
        "relkind:t",
        "relnatts:s",
        "relchecks:s",
        "relhasrules:b",
        "relhastriggers:b",
        "relhassubclass:b",
        "relrowsecurity:b",
        "relforcerowsecurity:b",
        "relispopulated:b",
        "relreplident:t",
        "relispartition:b",
        "relrewrite:i",
        "relfrozenxid:i",
        "relminmxid:i",
        "relacl:a",
        "reloptions:a",
        "relpartbound:t",
    ]);
    let mut attr = Builder::new(&[
        "attrelid:i",
        "attname:t",
        "atttypid:i",
        "attstattarget:i",
        "attlen:s",
        "attnum:s",
        "attndims:i",
        "attcacheoff:i",
        "atttypmod:i",
        "attbyval:b",
        "attalign:t",
        "attstorage:t",
        "attcompression:t",
        "attnotnull:b",
        "atthasdef:b",
        "atthasmissing:b",
        "attidentity:t",
        "attgenerated:t",
        "attisdropped:b",
        "attislocal:b",
        "attinhcount:i",
        "attcollation:i",
        "attacl:a",
        "attoptions:a",
        "attfdwoptions:a",
    ]);
    let mut stat = Builder::new(&[
        "relid:i",
        "schemaname:t",
        "relname:t",
        "seq_scan:I",
        "seq_tup_read:I",
        "idx_scan:I",
        "n_tup_ins:I",
        "n_live_tup:I",
        "n_dead_tup:I",
        "last_analyze:t",
        "last_autoanalyze:t",
    ]);
    let mut ist = Builder::new(&[
        "table_catalog:t",
        "table_schema:t",
        "table_name:t",
        "table_type:t",
        "self_referencing_column_name:t",
        "reference_generation:t",
        "user_defined_type_catalog:t",
        "user_defined_type_schema:t",
        "user_defined_type_name:t",
        "is_insertable_into:t",
        "is_typed:t",
        "commit_action:t",
    ]);
    let mut isc = Builder::new(&[
        "table_catalog:t",
        "table_schema:t",
        "table_name:t",
        "column_name:t",
        "ordinal_position:i",
        "column_default:t",
        "is_nullable:t",
        "data_type:t",
        "character_maximum_length:i",
        "character_octet_length:i",
        "numeric_precision:i",
        "numeric_precision_radix:i",
        "numeric_scale:i",
        "datetime_precision:i",
        "interval_type:t",
        "interval_precision:i",
        "character_set_catalog:t",
        "character_set_schema:t",
        "character_set_name:t",
        "collation_catalog:t",
        "collation_schema:t",
        "collation_name:t",
        "domain_catalog:t",
        "domain_schema:t",
        "domain_name:t",
        "udt_catalog:t",
        "udt_schema:t",
        "udt_name:t",
        "scope_catalog:t",
        "scope_schema:t",
        "scope_name:t",
        "maximum_cardinality:i",
        "dtd_identifier:t",
        "is_self_referencing:t",
        "is_identity:t",
        "identity_generation:t",
        "identity_start:t",
        "identity_increment:t",
        "identity_maximum:t",
        "identity_minimum:t",
        "identity_cycle:t",
        "is_generated:t",
        "generation_expression:t",
        "is_updatable:t",
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
            let len = entry.map(|e| e.len).unwrap_or(-1);
            let collation = if matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                100
            } else {
                0
            };
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
                ("attbyval", b(by_value(len))),
                ("attalign", t(alignment(len))),
                ("attstorage", t(storage(len))),
                ("attcompression", t("")),
                ("attnotnull", b(!f.is_nullable())),
                ("atthasdef", b(false)),
                ("atthasmissing", b(false)),
                ("attidentity", t("")),
                ("attgenerated", t("")),
                ("attisdropped", b(false)),
                ("attislocal", b(true)),
                ("attinhcount", i(0)),
                ("attcollation", i(collation)),
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
                ("is_nullable", t(if f.is_nullable() { "YES" } else { "NO" })),
                ("data_type", t(if is_array { "ARRAY" } else { format_type_name(f.data_type()) })),
                ("numeric_precision", ScalarValue::Int32(precision)),
                ("numeric_precision_radix", ScalarValue::Int32(radix)),
                ("numeric_scale", ScalarValue::Int32(scale)),
                (
                    "datetime_precision",
                    ScalarValue::Int32(
                        matches!(
                            f.data_type(),
                            DataType::Timestamp(..) | DataType::Interval(_) | DataType::Duration(_)
                        )
                        .then_some(6),
                    ),
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
        "schemaname:t",
        "tablename:t",
        "tableowner:t",
        "tablespace:t",
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
        assert_eq!(rows("SELECT usename FROM pg_stat_activity").await, [["analyst"]]);
    }
}
