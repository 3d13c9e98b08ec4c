//! A compact `pg_catalog` and `information_schema` over the session's tables,
//! the PostgreSQL functions catalog queries call, and the rewrites that let
//! DataFusion run what clients send (`::regclass`, `OPERATOR(pg_catalog.~)`,
//! `COLLATE pg_catalog.default`, subqueries over relations leadline never
//! has rows in).
//!
//! Why not `datafusion-pg-catalog`: its release for DataFusion 55 turns on
//! DataFusion's default features (compression codecs and their C builds), and
//! it failed pgjdbc's `getPrimaryKeys` and psql's `\df`; what the corpus in
//! `../shared/pg-corpus` needs fits in this file.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self as ast, Expr, FunctionArguments, Ident, JoinOperator, ObjectNamePart, Query, SelectItem, SetExpr, SetOperator,
    Statement, TableFactor, TableWithJoins, Value, VisitMut, VisitorMut,
};
use regex::Regex;

use super::encode::pg_type;

pub const NS_PG_CATALOG: i32 = 11;
pub const NS_PUBLIC: i32 = 2200;
pub const NS_INFORMATION_SCHEMA: i32 = 13183;
pub const OWNER: i32 = 10;
pub const FIRST_TABLE_OID: i32 = 16384;
pub const DATABASE: &str = "leadline";

/// `SELECT version()`: SQLAlchemy and others parse the leading `PostgreSQL N.M`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL 16.6 (leadline {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION")
    )
}
pub const SERVER_VERSION: &str = "16.6";
pub const SERVER_VERSION_NUM: &str = "160006";

/// Well-known relation OIDs for `'pg_class'::regclass` and friends.
const CATALOG_OIDS: &[(&str, i32)] = &[
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_proc", 1255),
    ("pg_class", 1259),
    ("pg_database", 1262),
    ("pg_namespace", 2615),
    ("pg_constraint", 2606),
    ("pg_index", 2610),
    ("pg_description", 2609),
    ("pg_attrdef", 2604),
    ("pg_inherits", 2611),
    ("pg_trigger", 2620),
    ("pg_rewrite", 2618),
    ("pg_am", 2601),
    ("pg_roles", 1260),
    ("pg_authid", 1260),
];

/// (oid, name, typlen, typcategory, element oid, array oid, format_type name)
const TYPES: &[(i32, &str, i16, &str, i32, i32, &str)] = &[
    (16, "bool", 1, "B", 0, 1000, "boolean"),
    (17, "bytea", -1, "U", 0, 1001, "bytea"),
    (18, "char", 1, "Z", 0, 1002, "\"char\""),
    (19, "name", 64, "S", 0, 1003, "name"),
    (20, "int8", 8, "N", 0, 1016, "bigint"),
    (21, "int2", 2, "N", 0, 1005, "smallint"),
    (22, "int2vector", -1, "A", 21, 1006, "int2vector"),
    (23, "int4", 4, "N", 0, 1007, "integer"),
    (25, "text", -1, "S", 0, 1009, "text"),
    (26, "oid", 4, "N", 0, 1028, "oid"),
    (30, "oidvector", -1, "A", 26, 1013, "oidvector"),
    (114, "json", -1, "U", 0, 199, "json"),
    (700, "float4", 4, "N", 0, 1021, "real"),
    (701, "float8", 8, "N", 0, 1022, "double precision"),
    (705, "unknown", -2, "X", 0, 0, "unknown"),
    (1000, "_bool", -1, "A", 16, 0, "boolean[]"),
    (1005, "_int2", -1, "A", 21, 0, "smallint[]"),
    (1007, "_int4", -1, "A", 23, 0, "integer[]"),
    (1009, "_text", -1, "A", 25, 0, "text[]"),
    (1015, "_varchar", -1, "A", 1043, 0, "character varying[]"),
    (1016, "_int8", -1, "A", 20, 0, "bigint[]"),
    (1021, "_float4", -1, "A", 700, 0, "real[]"),
    (1022, "_float8", -1, "A", 701, 0, "double precision[]"),
    (1043, "varchar", -1, "S", 0, 1015, "character varying"),
    (1082, "date", 4, "D", 0, 1182, "date"),
    (1114, "timestamp", 8, "D", 0, 1115, "timestamp without time zone"),
    (1115, "_timestamp", -1, "A", 1114, 0, "timestamp without time zone[]"),
    (1182, "_date", -1, "A", 1082, 0, "date[]"),
    (1184, "timestamptz", 8, "D", 0, 1185, "timestamp with time zone"),
    (1185, "_timestamptz", -1, "A", 1184, 0, "timestamp with time zone[]"),
    (1186, "interval", 16, "T", 0, 1187, "interval"),
    (1187, "_interval", -1, "A", 1186, 0, "interval[]"),
    (1231, "_numeric", -1, "A", 1700, 0, "numeric[]"),
    (1700, "numeric", -1, "N", 0, 1231, "numeric"),
    (2205, "regclass", 4, "N", 0, 2210, "regclass"),
    (2206, "regtype", 4, "N", 0, 2211, "regtype"),
    (2249, "record", -1, "P", 0, 2287, "record"),
    (2278, "void", 4, "P", 0, 0, "void"),
    (2950, "uuid", 16, "U", 0, 2951, "uuid"),
    (3802, "jsonb", -1, "U", 0, 3807, "jsonb"),
];

fn type_by_oid(oid: i64) -> Option<&'static (i32, &'static str, i16, &'static str, i32, i32, &'static str)> {
    TYPES.iter().find(|t| t.0 as i64 == oid)
}

fn type_oid_by_name(name: &str) -> Option<i32> {
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
    TYPES.iter().find(|t| t.1 == alias || t.6 == n).map(|t| t.0)
}

/// One user table as the catalog shows it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub oid: i32,
    pub name: String,
    pub schema: SchemaRef,
    pub rows: i64,
    pub insertable: bool,
}

/// What the catalog tables and functions know about a session.
#[derive(Debug, Clone)]
pub struct CatalogInfo {
    pub tables: Vec<TableInfo>,
    pub user: String,
    pub roles: Vec<String>,
}

impl CatalogInfo {
    pub fn table_oid(&self, name: &str) -> Option<i32> {
        let n = name.trim().trim_matches('"');
        let n = n.rsplit('.').next().unwrap_or(n).trim_matches('"').to_ascii_lowercase();
        self.tables
            .iter()
            .find(|t| t.name == n)
            .map(|t| t.oid)
            .or_else(|| CATALOG_OIDS.iter().find(|(c, _)| *c == n).map(|(_, o)| *o))
    }
}

/// Relations leadline never has rows in: a subquery over one of them is empty.
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
    ("pg_views", &["schemaname:t", "viewname:t", "viewowner:t", "definition:t"]),
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
    (
        "views",
        &[
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
        ],
    ),
    ("check_constraints", &["constraint_catalog:t", "constraint_schema:t", "constraint_name:t", "check_clause:t"]),
    (
        "routines",
        &[
            "specific_catalog:t",
            "specific_schema:t",
            "specific_name:t",
            "routine_catalog:t",
            "routine_schema:t",
            "routine_name:t",
            "routine_type:t",
            "data_type:t",
        ],
    ),
];

pub fn is_empty_relation(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    EMPTY_TABLES.iter().any(|(t, _)| *t == n) || EMPTY_INFORMATION_SCHEMA.iter().any(|(t, _)| *t == n)
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

fn t(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}
fn i(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}
fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

/// `udt_name` / `typname` of an Arrow type.
fn typname(dt: &DataType) -> &'static str {
    let oid = pg_type(dt).oid() as i64;
    type_by_oid(oid).map(|t| t.1).unwrap_or("text")
}

fn format_type_name(dt: &DataType) -> &'static str {
    let oid = pg_type(dt).oid() as i64;
    type_by_oid(oid).map(|t| t.6).unwrap_or("text")
}

/// Registers the catalog tables and functions in a session. `settings` are
/// the session's variables (for `pg_settings` and `current_setting`).
pub fn register(
    ctx: &SessionContext,
    info: Arc<CatalogInfo>,
    settings: Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
) -> DfResult<()> {
    let mut tables: Vec<(&str, Arc<MemTable>)> = Vec::new();

    let mut ns = Builder::new(&["oid:i", "nspname:t", "nspowner:i", "nspacl:a"]);
    for (oid, name) in
        [(NS_PG_CATALOG, "pg_catalog"), (NS_PUBLIC, "public"), (NS_INFORMATION_SCHEMA, "information_schema")]
    {
        ns.row(vec![("oid", i(oid)), ("nspname", t(name)), ("nspowner", i(OWNER))]);
    }
    tables.push(("pg_namespace", ns.table()?));

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
    for tbl in &info.tables {
        class.row(vec![
            ("oid", i(tbl.oid)),
            ("relname", t(&tbl.name)),
            ("relnamespace", i(NS_PUBLIC)),
            ("reltype", i(0)),
            ("reloftype", i(0)),
            ("relowner", i(OWNER)),
            ("relam", i(2)),
            ("relfilenode", i(tbl.oid)),
            ("reltablespace", i(0)),
            ("relpages", i(0)),
            ("reltuples", ScalarValue::Float32(Some(tbl.rows as f32))),
            ("relallvisible", i(0)),
            ("reltoastrelid", i(0)),
            ("relhasindex", b(false)),
            ("relisshared", b(false)),
            ("relpersistence", t("p")),
            ("relkind", t("r")),
            ("relnatts", ScalarValue::Int16(Some(tbl.schema.fields().len() as i16))),
            ("relchecks", ScalarValue::Int16(Some(0))),
            ("relhasrules", b(false)),
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
        stat.row(vec![
            ("relid", i(tbl.oid)),
            ("schemaname", t("public")),
            ("relname", t(&tbl.name)),
            ("n_live_tup", ScalarValue::Int64(Some(tbl.rows))),
            ("seq_scan", ScalarValue::Int64(Some(0))),
            ("n_dead_tup", ScalarValue::Int64(Some(0))),
        ]);
        ist.row(vec![
            ("table_catalog", t(DATABASE)),
            ("table_schema", t("public")),
            ("table_name", t(&tbl.name)),
            ("table_type", t("BASE TABLE")),
            ("is_insertable_into", t(if tbl.insertable { "YES" } else { "NO" })),
            ("is_typed", t("NO")),
        ]);
        for (n, f) in tbl.schema.fields().iter().enumerate() {
            let ty = pg_type(f.data_type());
            let entry = type_by_oid(ty.oid() as i64);
            let len = entry.map(|e| e.2).unwrap_or(-1);
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
                ("attbyval", b(len > 0 && len <= 8)),
                (
                    "attalign",
                    t(if len == 8 {
                        "d"
                    } else if len == 2 {
                        "s"
                    } else if len == 1 {
                        "c"
                    } else {
                        "i"
                    }),
                ),
                ("attstorage", t(if len < 0 { "x" } else { "p" })),
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
    tables.push(("pg_class", class.table()?));
    tables.push(("pg_attribute", attr.table()?));
    tables.push(("pg_stat_user_tables", stat.table()?));
    tables.push(("pg_stat_all_tables", stat.table()?));

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
    for tbl in &info.tables {
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
    tables.push(("pg_tables", tables_view.table()?));

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
    for (oid, name, len, cat, elem, arr, _) in TYPES {
        let pseudo = *cat == "P" || *cat == "X";
        ty.row(vec![
            ("oid", i(*oid)),
            ("typname", t(name)),
            ("typnamespace", i(NS_PG_CATALOG)),
            ("typowner", i(OWNER)),
            ("typlen", ScalarValue::Int16(Some(*len))),
            ("typbyval", b(*len > 0 && *len <= 8)),
            ("typtype", t(if pseudo { "p" } else { "b" })),
            ("typcategory", t(cat)),
            ("typispreferred", b(matches!(*name, "text" | "float8" | "timestamptz" | "bool" | "interval" | "oid"))),
            ("typisdefined", b(true)),
            ("typdelim", t(",")),
            ("typrelid", i(0)),
            ("typelem", i(*elem)),
            ("typarray", i(*arr)),
            ("typinput", t(&format!("{}in", name.trim_start_matches('_')))),
            ("typoutput", t(&format!("{}out", name.trim_start_matches('_')))),
            ("typreceive", t(&format!("{}recv", name.trim_start_matches('_')))),
            ("typsend", t(&format!("{}send", name.trim_start_matches('_')))),
            (
                "typalign",
                t(if *len == 8 {
                    "d"
                } else if *len == 2 {
                    "s"
                } else if *len == 1 {
                    "c"
                } else {
                    "i"
                }),
            ),
            ("typstorage", t(if *len < 0 { "x" } else { "p" })),
            ("typnotnull", b(false)),
            ("typbasetype", i(0)),
            ("typtypmod", i(-1)),
            ("typndims", i(0)),
            ("typcollation", i(if matches!(*name, "text" | "varchar" | "name") { 100 } else { 0 })),
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
    for (n, name) in fn_names.iter().enumerate() {
        let agg = ctx.state().aggregate_functions().contains_key(name);
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
    is.register_table("tables".into(), ist.table()?)?;
    is.register_table("columns".into(), isc.table()?)?;
    for (name, cols) in EMPTY_INFORMATION_SCHEMA {
        is.register_table(name.to_string(), Builder::new(cols).table()?)?;
    }
    if let Some(cat) = ctx.catalog("datafusion") {
        cat.register_schema("information_schema", is)?;
        // `pg_catalog.x` is rewritten to `x`; the schema exists for tools that list schemas.
        cat.register_schema("pg_catalog", Arc::new(MemorySchemaProvider::new()))?;
    }

    register_functions(ctx, info, settings);
    Ok(())
}

/// A PostgreSQL function evaluated row by row over scalars (catalog queries
/// touch a handful of rows).
struct PgFn {
    name: &'static str,
    signature: Signature,
    ret: DataType,
    f: Box<dyn Fn(&[ScalarValue]) -> ScalarValue + Send + Sync>,
}

impl std::fmt::Debug for PgFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgFn({})", self.name)
    }
}
impl PartialEq for PgFn {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for PgFn {}
impl std::hash::Hash for PgFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for PgFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.ret.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if all_scalar {
            let vals: Vec<ScalarValue> = args
                .args
                .iter()
                .map(|a| match a {
                    ColumnarValue::Scalar(s) => s.clone(),
                    ColumnarValue::Array(_) => ScalarValue::Null,
                })
                .collect();
            let out = (self.f)(&vals);
            return Ok(ColumnarValue::Scalar(cast_scalar(out, &self.ret)));
        }
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<DfResult<_>>()?;
        let mut out = Vec::with_capacity(n);
        for row in 0..n {
            let vals: Vec<ScalarValue> =
                arrays.iter().map(|a| ScalarValue::try_from_array(a, row)).collect::<DfResult<_>>()?;
            out.push(cast_scalar((self.f)(&vals), &self.ret));
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(arrow::array::new_empty_array(&self.ret)));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

fn cast_scalar(v: ScalarValue, dt: &DataType) -> ScalarValue {
    if v.data_type() == *dt {
        return v;
    }
    if v.is_null() {
        return ScalarValue::try_from(dt).unwrap_or(v);
    }
    v.cast_to(dt).unwrap_or_else(|_| ScalarValue::try_from(dt).unwrap_or(ScalarValue::Null))
}

fn as_i64(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int8(Some(x)) => Some(*x as i64),
        ScalarValue::Int16(Some(x)) => Some(*x as i64),
        ScalarValue::Int32(Some(x)) => Some(*x as i64),
        ScalarValue::Int64(Some(x)) => Some(*x),
        ScalarValue::UInt32(Some(x)) => Some(*x as i64),
        ScalarValue::UInt64(Some(x)) => Some(*x as i64),
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            s.trim().parse().ok()
        }
        _ => None,
    }
}

fn as_str(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            Some(s.clone())
        }
        v if v.is_null() => None,
        v => Some(v.to_string()),
    }
}

fn register_functions(
    ctx: &SessionContext,
    info: Arc<CatalogInfo>,
    settings: Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
) {
    let any = |n: usize| {
        let mut sigs = vec![TypeSignature::Nullary];
        sigs.extend((1..=n).map(TypeSignature::Any));
        Signature::one_of(sigs, Volatility::Stable)
    };
    let text = DataType::Utf8;
    let mut fns: Vec<PgFn> = Vec::new();
    let mut add = |name: &'static str,
                   arity: usize,
                   ret: DataType,
                   f: Box<dyn Fn(&[ScalarValue]) -> ScalarValue + Send + Sync>| {
        fns.push(PgFn { name, signature: any(arity), ret, f });
    };
    let null_text =
        || -> Box<dyn Fn(&[ScalarValue]) -> ScalarValue + Send + Sync> { Box::new(|_| ScalarValue::Utf8(None)) };
    let always = |v: bool| -> Box<dyn Fn(&[ScalarValue]) -> ScalarValue + Send + Sync> {
        Box::new(move |_| ScalarValue::Boolean(Some(v)))
    };

    add("version", 0, text.clone(), Box::new(|_| t(&version_string())));
    add("current_schema", 0, text.clone(), Box::new(|_| t("public")));
    add("current_database", 0, text.clone(), Box::new(|_| t(DATABASE)));
    add("current_catalog", 0, text.clone(), Box::new(|_| t(DATABASE)));
    let user = info.user.clone();
    add("current_user", 0, text.clone(), Box::new(move |_| t(&user)));
    let user = info.user.clone();
    add("session_user", 0, text.clone(), Box::new(move |_| t(&user)));
    let user = info.user.clone();
    add("user", 0, text.clone(), Box::new(move |_| t(&user)));
    add(
        "current_schemas",
        1,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        Box::new(|args| {
            let with_implicit = matches!(args.first(), Some(ScalarValue::Boolean(Some(true))));
            let mut v = Vec::new();
            if with_implicit {
                v.push(t("pg_catalog"));
            }
            v.push(t("public"));
            ScalarValue::List(ScalarValue::new_list_nullable(&v, &DataType::Utf8))
        }),
    );
    add("pg_backend_pid", 0, DataType::Int32, Box::new(|_| i(std::process::id() as i32)));
    add("pg_table_is_visible", 1, DataType::Boolean, always(true));
    add("pg_type_is_visible", 1, DataType::Boolean, always(true));
    add("pg_function_is_visible", 1, DataType::Boolean, always(true));
    add("pg_collation_is_visible", 1, DataType::Boolean, always(true));
    add("pg_relation_is_publishable", 1, DataType::Boolean, always(false));
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
        "has_function_privilege",
        "has_sequence_privilege",
    ] {
        add(name, 4, DataType::Boolean, always(true));
    }
    add(
        "format_type",
        2,
        text.clone(),
        Box::new(|args| match args.first().and_then(as_i64) {
            Some(oid) => match type_by_oid(oid) {
                Some(tinfo) => t(tinfo.6),
                None => t("???"),
            },
            None => ScalarValue::Utf8(None),
        }),
    );
    for name in [
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
        "pg_get_expr",
        "pg_get_indexdef",
        "pg_get_constraintdef",
        "pg_get_viewdef",
        "pg_get_triggerdef",
        "pg_get_ruledef",
        "pg_get_functiondef",
        "pg_get_statisticsobjdef_columns",
        "pg_get_serial_sequence",
        "col_description",
        "obj_description",
        "shobj_description",
        "pg_get_partkeydef",
    ] {
        add(name, 3, text.clone(), null_text());
    }
    add("pg_get_userbyid", 1, text.clone(), Box::new(|_| t(DATABASE)));
    add(
        "pg_encoding_to_char",
        1,
        text.clone(),
        Box::new(|args| t(if args.first().and_then(as_i64) == Some(6) { "UTF8" } else { "SQL_ASCII" })),
    );
    add(
        "quote_ident",
        1,
        text.clone(),
        Box::new(|args| match args.first().and_then(as_str) {
            Some(s) => {
                let plain = !s.is_empty()
                    && s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                t(&if plain { s } else { format!("\"{}\"", s.replace('"', "\"\"")) })
            }
            None => ScalarValue::Utf8(None),
        }),
    );
    let vars = settings.clone();
    add(
        "current_setting",
        2,
        text.clone(),
        Box::new(move |args| {
            let name = args.first().and_then(as_str).unwrap_or_default().to_ascii_lowercase();
            let v = vars.lock().ok().and_then(|m| m.get(&name).cloned());
            match v {
                Some(v) => t(&v),
                None if name == "default_table_access_method" => t("heap"),
                None => ScalarValue::Utf8(None),
            }
        }),
    );
    let vars = settings.clone();
    add(
        "set_config",
        3,
        text.clone(),
        Box::new(move |args| {
            let name = args.first().and_then(as_str).unwrap_or_default().to_ascii_lowercase();
            let value = args.get(1).and_then(as_str).unwrap_or_default();
            if let Ok(mut m) = vars.lock() {
                m.insert(name, value.clone());
            }
            t(&value)
        }),
    );
    add("pg_advisory_unlock_all", 0, text.clone(), null_text());
    add("pg_advisory_lock", 2, text.clone(), null_text());
    add("pg_advisory_unlock", 2, DataType::Boolean, always(true));
    add("pg_try_advisory_lock", 2, DataType::Boolean, always(true));
    add("txid_current", 0, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(1))));
    add("pg_is_in_recovery", 0, DataType::Boolean, always(false));
    add("pg_postmaster_start_time", 0, text.clone(), Box::new(|_| t("2026-01-01 00:00:00+00")));
    add("inet_server_addr", 0, text.clone(), null_text());
    add("inet_server_port", 0, DataType::Int32, Box::new(|_| ScalarValue::Int32(None)));
    add(
        "to_regtype",
        1,
        DataType::Int32,
        Box::new(|args| ScalarValue::Int32(args.first().and_then(as_str).and_then(|s| type_oid_by_name(&s)))),
    );
    let ci = info.clone();
    add(
        "to_regclass",
        1,
        DataType::Int32,
        Box::new(move |args| ScalarValue::Int32(args.first().and_then(as_str).and_then(|s| ci.table_oid(&s)))),
    );
    add(
        "pg_typeof_name",
        1,
        text.clone(),
        Box::new(|args| t(args.first().map(|a| typname(&a.data_type())).unwrap_or("unknown"))),
    );
    add(
        "array_lower",
        2,
        DataType::Int32,
        Box::new(|args| match args.first() {
            Some(ScalarValue::List(l)) if !l.is_null(0) && l.value_length(0) > 0 => i(1),
            _ => ScalarValue::Int32(None),
        }),
    );
    add(
        "array_upper",
        2,
        DataType::Int32,
        Box::new(|args| match args.first() {
            Some(ScalarValue::List(l)) if !l.is_null(0) && l.value_length(0) > 0 => i(l.value_length(0)),
            _ => ScalarValue::Int32(None),
        }),
    );
    add(
        "pg_size_pretty",
        1,
        text.clone(),
        Box::new(|args| t(&format!("{} bytes", args.first().and_then(as_i64).unwrap_or(0)))),
    );
    add("pg_total_relation_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    add("pg_relation_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    add("pg_table_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    add("pg_indexes_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    add("pg_database_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    add("pg_tablespace_location", 1, text.clone(), Box::new(|_| t("")));
    add(
        "pg_leadline_regtype",
        1,
        text.clone(),
        Box::new(|args| match args.first().and_then(as_i64) {
            Some(oid) => t(type_by_oid(oid).map(|x| x.1).unwrap_or("-")),
            None => ScalarValue::Utf8(None),
        }),
    );
    for f in fns {
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
}

// ---------------------------------------------------------------------------
// Rewrites.

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
