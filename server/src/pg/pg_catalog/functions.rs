//! The PostgreSQL functions catalog queries and drivers call
//! (`current_setting`, `format_type`, `pg_get_userbyid`, `has_*_privilege` …),
//! answered from what the catalog knows about the session.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, Field};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::tables::{CatalogInfo, i, t, type_by_oid, type_oid_by_name, typname};
use super::{DATABASE, Settings, version_string};

/// A PostgreSQL function evaluated row by row over scalars (catalog queries
/// touch a handful of rows).
struct PgFn {
    name: &'static str,
    signature: Signature,
    ret: DataType,
    f: Body,
}

/// A function's body: its result for one row's arguments.
type Body = Box<dyn Fn(&[ScalarValue]) -> ScalarValue + Send + Sync>;

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

/// Registers the functions in a session; `settings` are the session's
/// variables, read by `current_setting` and written by `set_config`.
pub(super) fn register_functions(ctx: &SessionContext, info: Arc<CatalogInfo>, settings: Settings) {
    let any = |n: usize| {
        let mut sigs = vec![TypeSignature::Nullary];
        sigs.extend((1..=n).map(TypeSignature::Any));
        Signature::one_of(sigs, Volatility::Stable)
    };
    let text = DataType::Utf8;
    let mut fns: Vec<PgFn> = Vec::new();
    let mut add = |name: &'static str, arity: usize, ret: DataType, f: Body| {
        fns.push(PgFn { name, signature: any(arity), ret, f });
    };
    let null_text = || -> Body { Box::new(|_| ScalarValue::Utf8(None)) };
    let always = |v: bool| -> Body { Box::new(move |_| ScalarValue::Boolean(Some(v))) };

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
