//! The PostgreSQL functions catalog queries and drivers call
//! (`current_setting`, `format_type`, `pg_get_userbyid`, `has_*_privilege` …),
//! answered from what the catalog knows about the session.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, exec_datafusion_err};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use pgwire::api::Type;

use super::arrays::parse_array;
use super::format::{format, parse_ident, quote_ident, quote_literal};
use super::tables::{CatalogInfo, i, leadline_function, t, type_by_oid, type_oid_by_name, typname};
use super::templates::{self, ZoneLabel};
use super::{DATABASE, Settings, version_string};
use crate::pg::encode::{Zone, with_pg_type};
use crate::pg::errors::PgError;

/// A PostgreSQL function evaluated row by row over scalars (catalog queries
/// touch a handful of rows).
struct PgFn {
    name: &'static str,
    signature: Signature,
    ret: DataType,
    /// PostgreSQL's STRICT: a NULL argument makes the result NULL, `f` unasked.
    strict: bool,
    f: Body,
}

/// A function's body: its result for one row's arguments.
type Body = Box<dyn Fn(&[ScalarValue]) -> DfResult<ScalarValue> + Send + Sync>;

/// The body of a function that answers every argument.
type InfallibleBody = Box<dyn Fn(&[ScalarValue]) -> ScalarValue + Send + Sync>;

/// The functions whose result PostgreSQL types with a type of its own.
const PG_RESULT_TYPES: &[(&str, Type)] = &[
    ("current_schema", Type::NAME),
    ("current_database", Type::NAME),
    ("current_catalog", Type::NAME),
    ("current_user", Type::NAME),
    ("session_user", Type::NAME),
    ("current_role", Type::NAME),
    ("user", Type::NAME),
    ("current_schemas", Type::NAME_ARRAY),
    ("pg_get_userbyid", Type::NAME),
    ("pg_encoding_to_char", Type::NAME),
    ("pg_advisory_unlock_all", Type::VOID),
    ("pg_advisory_lock", Type::VOID),
];

/// The functions that are not STRICT in PostgreSQL (they answer a NULL argument).
const NOT_STRICT: &[&str] = &["format_type", "set_config", "pg_typeof_name", "format"];

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
    /// PostgreSQL's result type where it has one of its own (`name` …).
    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let field = Field::new(self.name, self.ret.clone(), true);
        Ok(Arc::new(match PG_RESULT_TYPES.iter().find(|(name, _)| *name == self.name) {
            Some((_, ty)) => with_pg_type(field, ty),
            None => field,
        }))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            let vals: Vec<ScalarValue> = args
                .args
                .iter()
                .filter_map(|a| match a {
                    ColumnarValue::Scalar(s) => Some(s.clone()),
                    ColumnarValue::Array(_) => None,
                })
                .collect();
            return Ok(ColumnarValue::Scalar(self.call(&vals)?));
        }
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<DfResult<_>>()?;
        let mut out = Vec::with_capacity(n);
        for row in 0..n {
            let vals: Vec<ScalarValue> =
                arrays.iter().map(|a| ScalarValue::try_from_array(a, row)).collect::<DfResult<_>>()?;
            out.push(self.call(&vals)?);
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(arrow::array::new_empty_array(&self.ret)));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

impl PgFn {
    /// The result for one row, of the declared type.
    fn call(&self, args: &[ScalarValue]) -> DfResult<ScalarValue> {
        let out =
            if self.strict && args.iter().any(ScalarValue::is_null) { ScalarValue::Null } else { (self.f)(args)? };
        Ok(cast_scalar(out, &self.ret))
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

/// An integer argument (an OID, a size): an integer, or text that is one;
/// anything else is the caller's error (22P02, as PostgreSQL's input check).
fn int_arg(v: Option<&ScalarValue>, ty: &str) -> DfResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => {
            as_i64(v).map(Some).ok_or_else(|| exec_datafusion_err!("invalid input syntax for type {ty}: \"{v}\""))
        }
    }
}

/// The functions being registered.
#[derive(Default)]
struct Functions(Vec<PgFn>);

impl Functions {
    fn add(&mut self, name: &'static str, arity: usize, ret: DataType, f: InfallibleBody) {
        self.add_fallible(name, arity, ret, move |args| Ok(f(args)));
    }

    /// A function of any number of arguments (`format`).
    fn add_variadic(
        &mut self,
        name: &'static str,
        ret: DataType,
        f: impl Fn(&[ScalarValue]) -> DfResult<ScalarValue> + Send + Sync + 'static,
    ) {
        self.0.push(PgFn {
            name,
            signature: Signature::variadic_any(Volatility::Stable),
            ret,
            strict: !NOT_STRICT.contains(&name),
            f: Box::new(f),
        });
    }

    /// `arity`: the most arguments it takes (it takes any fewer too).
    fn add_fallible(
        &mut self,
        name: &'static str,
        arity: usize,
        ret: DataType,
        f: impl Fn(&[ScalarValue]) -> DfResult<ScalarValue> + Send + Sync + 'static,
    ) {
        let mut arities = vec![TypeSignature::Nullary];
        arities.extend((1..=arity).map(TypeSignature::Any));
        self.0.push(PgFn {
            name,
            signature: Signature::one_of(arities, Volatility::Stable),
            ret,
            strict: !NOT_STRICT.contains(&name),
            f: Box::new(f),
        });
    }
}

/// Registers the functions in a session; `settings` are the session's
/// variables, read by `current_setting` and written by `set_config`.
pub(super) fn register_functions(ctx: &SessionContext, info: Arc<CatalogInfo>, settings: Settings) {
    let text = DataType::Utf8;
    let mut fns = Functions::default();
    let null_text = || -> InfallibleBody { Box::new(|_| ScalarValue::Utf8(None)) };
    let always = |v: bool| -> InfallibleBody { Box::new(move |_| ScalarValue::Boolean(Some(v))) };

    fns.add("version", 0, text.clone(), Box::new(|_| t(&version_string())));
    fns.add("current_schema", 0, text.clone(), Box::new(|_| t("public")));
    fns.add("current_database", 0, text.clone(), Box::new(|_| t(DATABASE)));
    fns.add("current_catalog", 0, text.clone(), Box::new(|_| t(DATABASE)));
    let user = info.user.clone();
    fns.add("current_user", 0, text.clone(), Box::new(move |_| t(&user)));
    let user = info.user.clone();
    fns.add("session_user", 0, text.clone(), Box::new(move |_| t(&user)));
    let user = info.user.clone();
    fns.add("current_role", 0, text.clone(), Box::new(move |_| t(&user)));
    let user = info.user.clone();
    fns.add("user", 0, text.clone(), Box::new(move |_| t(&user)));
    fns.add(
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
    fns.add("pg_backend_pid", 0, DataType::Int32, Box::new(|_| i(std::process::id() as i32)));
    fns.add("pg_table_is_visible", 1, DataType::Boolean, always(true));
    fns.add("pg_type_is_visible", 1, DataType::Boolean, always(true));
    fns.add("pg_function_is_visible", 1, DataType::Boolean, always(true));
    fns.add("pg_collation_is_visible", 1, DataType::Boolean, always(true));
    fns.add("pg_relation_is_publishable", 1, DataType::Boolean, always(false));
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
        "has_function_privilege",
        "has_sequence_privilege",
    ] {
        fns.add(name, 4, DataType::Boolean, always(true));
    }
    fns.add_fallible("format_type", 2, text.clone(), |args| {
        Ok(match int_arg(args.first(), "oid")? {
            Some(oid) => t(type_by_oid(oid).map(|ty| ty.display).unwrap_or("???")),
            None => ScalarValue::Utf8(None),
        })
    });
    // leadline's own functions have signatures (psql's `\df`); others none.
    fns.add_fallible("pg_get_function_result", 1, text.clone(), |args| {
        Ok(match int_arg(args.first(), "oid")?.and_then(leadline_function) {
            Some(f) if f.retset => t("SETOF record"),
            Some(f) => t(type_by_oid(f.ret.into()).map(|ty| ty.display).unwrap_or("-")),
            None => ScalarValue::Utf8(None),
        })
    });
    for (name, with_defaults) in [("pg_get_function_arguments", true), ("pg_get_function_identity_arguments", false)] {
        fns.add_fallible(name, 1, text.clone(), move |args| {
            let Some(f) = int_arg(args.first(), "oid")?.and_then(leadline_function) else {
                return Ok(ScalarValue::Utf8(None));
            };
            let optional_from = f.args.len() - f.defaults as usize;
            let list: Vec<String> = f
                .args
                .iter()
                .enumerate()
                .map(|(n, (arg, oid))| {
                    let ty = type_by_oid((*oid).into()).map(|ty| ty.display).unwrap_or("-");
                    let default = if with_defaults && n >= optional_from { " DEFAULT NULL" } else { "" };
                    format!("{} {ty}{default}", quote_ident(arg))
                })
                .collect();
            Ok(t(&list.join(", ")))
        });
    }
    for name in [
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
        fns.add(name, 3, text.clone(), null_text());
    }
    fns.add("pg_get_userbyid", 1, text.clone(), Box::new(|_| t(DATABASE)));
    fns.add_fallible("pg_encoding_to_char", 1, text.clone(), |args| {
        Ok(t(if int_arg(args.first(), "integer")? == Some(6) { "UTF8" } else { "SQL_ASCII" }))
    });
    fns.add(
        "quote_ident",
        1,
        text.clone(),
        Box::new(|args| match args.first().and_then(as_str) {
            Some(s) => t(&quote_ident(&s)),
            None => ScalarValue::Utf8(None),
        }),
    );
    fns.add(
        "quote_literal",
        1,
        text.clone(),
        Box::new(|args| match args.first().and_then(as_str) {
            Some(s) => t(&quote_literal(&s)),
            None => ScalarValue::Utf8(None),
        }),
    );
    let vars = settings.clone();
    // current_setting(name [, missing_ok])
    fns.add_fallible("current_setting", 2, text.clone(), move |args| {
        let name = args.first().and_then(as_str).unwrap_or_default().to_ascii_lowercase();
        let missing_ok = matches!(args.get(1), Some(ScalarValue::Boolean(Some(true))));
        match vars.lock().ok().and_then(|m| m.get(&name).cloned()) {
            Some(v) => Ok(t(&v)),
            None if missing_ok => Ok(ScalarValue::Utf8(None)),
            None => Err(DataFusionError::External(Box::new(PgError::new(
                "42704",
                format!("unrecognized configuration parameter \"{name}\""),
            )))),
        }
    });
    let vars = settings.clone();
    fns.add(
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
    // void: PostgreSQL shows an empty value.
    fns.add("pg_advisory_unlock_all", 0, text.clone(), Box::new(|_| t("")));
    fns.add("pg_advisory_lock", 2, text.clone(), Box::new(|_| t("")));
    fns.add("pg_advisory_unlock", 2, DataType::Boolean, always(true));
    fns.add("pg_try_advisory_lock", 2, DataType::Boolean, always(true));
    fns.add("txid_current", 0, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(1))));
    fns.add("pg_is_in_recovery", 0, DataType::Boolean, always(false));
    fns.add("pg_postmaster_start_time", 0, text.clone(), Box::new(|_| t("2026-01-01 00:00:00+00")));
    fns.add("inet_server_addr", 0, text.clone(), null_text());
    fns.add("inet_server_port", 0, DataType::Int32, Box::new(|_| ScalarValue::Int32(None)));
    fns.add(
        "to_regtype",
        1,
        DataType::Int32,
        Box::new(|args| ScalarValue::Int32(args.first().and_then(as_str).and_then(|s| type_oid_by_name(&s)))),
    );
    let ci = info.clone();
    fns.add(
        "to_regclass",
        1,
        DataType::Int32,
        Box::new(move |args| ScalarValue::Int32(args.first().and_then(as_str).and_then(|s| ci.table_oid(&s)))),
    );
    fns.add(
        "pg_typeof_name",
        1,
        text.clone(),
        Box::new(|args| t(args.first().map(|a| typname(&a.data_type())).unwrap_or("unknown"))),
    );
    fns.add(
        "array_lower",
        2,
        DataType::Int32,
        Box::new(|args| match args.first() {
            Some(ScalarValue::List(l)) if !l.is_null(0) && l.value_length(0) > 0 => i(1),
            _ => ScalarValue::Int32(None),
        }),
    );
    fns.add(
        "array_upper",
        2,
        DataType::Int32,
        Box::new(|args| match args.first() {
            Some(ScalarValue::List(l)) if !l.is_null(0) && l.value_length(0) > 0 => i(l.value_length(0)),
            _ => ScalarValue::Int32(None),
        }),
    );
    fns.add_fallible("pg_size_pretty", 1, text.clone(), |args| {
        Ok(t(&format!("{} bytes", int_arg(args.first(), "bigint")?.unwrap_or(0))))
    });
    fns.add("pg_total_relation_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    fns.add("pg_relation_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    fns.add("pg_table_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    fns.add("pg_indexes_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    fns.add("pg_database_size", 1, DataType::Int64, Box::new(|_| ScalarValue::Int64(Some(0))));
    fns.add("pg_tablespace_location", 1, text.clone(), Box::new(|_| t("")));
    // `oid::regtype` of a column: the type's name.
    fns.add_fallible("pg_leadline_regtype", 1, text.clone(), |args| {
        Ok(match int_arg(args.first(), "oid")? {
            Some(oid) => t(type_by_oid(oid).map(|ty| ty.name).unwrap_or("-")),
            None => ScalarValue::Utf8(None),
        })
    });
    // `CAST(x AS regclass)` of a value: a relation's name (as `format('%I.%I', …)`
    // gives it) or an OID.
    let ci = info.clone();
    fns.add_fallible("pg_leadline_regclass", 1, DataType::Int64, move |args| {
        let Some(v) = args.first() else { return Ok(ScalarValue::Int64(None)) };
        if let Some(oid) = as_i64(v) {
            return Ok(ScalarValue::Int64(Some(oid)));
        }
        let oid = ci.regclass(&as_str(v).unwrap_or_default()).map_err(pg_error)?;
        Ok(ScalarValue::Int64(Some(oid.into())))
    });
    // `proargtypes::regtype[]`: the names of the types of an OID array.
    fns.add(
        "pg_leadline_regtypes",
        1,
        text_array(),
        Box::new(|args| match args.first() {
            Some(ScalarValue::List(l)) if !l.is_null(0) => {
                let oids = l.value(0);
                let names = (0..oids.len()).map(|i| {
                    ScalarValue::try_from_array(&oids, i)
                        .ok()
                        .and_then(|v| as_i64(&v))
                        .map(|oid| type_by_oid(oid).map(|ty| ty.name).unwrap_or("-").to_string())
                });
                list_of_text(names)
            }
            _ => ScalarValue::List(ScalarValue::new_list_nullable(&[], &DataType::Utf8)),
        }),
    );
    fns.add("pg_is_other_temp_schema", 1, DataType::Boolean, always(false));
    // No session has a schema of its own: temporary views are listed in `public`.
    fns.add("pg_my_temp_schema", 0, DataType::Int32, Box::new(|_| i(0)));
    fns.add_variadic("format", text.clone(), |args| {
        let Some(template) = args.first() else {
            return Err(pg_error(PgError::new("42883", "function format() does not exist")));
        };
        let Some(template) = as_str(template) else { return Ok(ScalarValue::Utf8(None)) };
        let values: Vec<Option<String>> = args[1..].iter().map(as_str).collect();
        format(&template, &values).map(|s| t(&s)).map_err(pg_error)
    });
    fns.add_fallible("parse_ident", 2, text_array(), |args| {
        let name = args.first().and_then(as_str).unwrap_or_default();
        let strict = !matches!(args.get(1), Some(ScalarValue::Boolean(Some(false))));
        let parts = parse_ident(&name, strict).map_err(pg_error)?;
        Ok(list_of_text(parts.into_iter().map(Some)))
    });
    // `'{a,b}'` as text[]: what an untyped array parameter and `::text[]` of a
    // value hold (the rewrites turn literals into arrays themselves).
    fns.add_fallible("pg_leadline_text_array", 1, text_array(), |args| {
        let text = args.first().and_then(as_str).unwrap_or_default();
        Ok(list_of_text(parse_array(&text).map_err(pg_error)?))
    });
    let vars = settings.clone();
    fns.add_fallible("to_char", 2, text.clone(), move |args| {
        let (Some(value), Some(template)) = (args.first(), args.get(1).and_then(as_str)) else {
            return Err(pg_error(PgError::new("42883", "function to_char needs a value and a template")));
        };
        let zone = session_zone(&vars);
        let (local, label) = local_time(value, zone)?;
        let abbreviation = label.as_ref().map(|(a, _)| a.as_str()).unwrap_or("");
        let offset_secs = label.as_ref().map(|(_, o)| *o).unwrap_or(0);
        Ok(t(&templates::format(local, ZoneLabel { abbreviation, offset_secs }, &template)))
    });
    let vars = settings.clone();
    fns.add_fallible("to_timestamp", 2, timestamptz(), move |args| {
        let micros = match args {
            [seconds] if as_f64(seconds).is_some() => epoch_micros(as_f64(seconds).unwrap_or_default())?,
            // DataFusion's one-argument form: an ISO 8601 timestamp.
            [text] => return text.cast_to(&timestamptz()),
            [input, template] => {
                let (input, template) = (as_str(input).unwrap_or_default(), as_str(template).unwrap_or_default());
                let parsed = templates::parse(&input, &template).map_err(pg_error)?;
                utc_micros(parsed, session_zone(&vars))?
            }
            _ => return Err(pg_error(PgError::new("42883", "function to_timestamp takes one or two arguments"))),
        };
        Ok(ScalarValue::TimestampMicrosecond(Some(micros), Some("+00:00".into())))
    });
    fns.add_fallible("to_date", 2, DataType::Date32, |args| match args {
        [text] => text.cast_to(&DataType::Date32),
        [input, template] => {
            let (input, template) = (as_str(input).unwrap_or_default(), as_str(template).unwrap_or_default());
            let date = templates::parse(&input, &template).map_err(pg_error)?.local.date();
            Ok(ScalarValue::Date32(Some(date.signed_duration_since(chrono::NaiveDate::default()).num_days() as i32)))
        }
        _ => Err(pg_error(PgError::new("42883", "function to_date takes a text and a template"))),
    });
    for f in fns.0 {
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
    if let Ok(series) = ctx.table_function("generate_series") {
        ctx.register_udtf("generate_series", Arc::new(IntegerSeries(series.function().clone())));
    }
}

/// An error with its SQLSTATE, through DataFusion.
fn pg_error(e: PgError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn text_array() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn list_of_text(items: impl IntoIterator<Item = Option<String>>) -> ScalarValue {
    let values: Vec<ScalarValue> = items.into_iter().map(ScalarValue::Utf8).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
}

/// timestamptz: an instant, shown in the session's zone.
fn timestamptz() -> DataType {
    DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("+00:00".into()))
}

fn as_f64(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float32(Some(x)) => Some(f64::from(*x)),
        ScalarValue::Float64(Some(x)) => Some(*x),
        ScalarValue::Decimal128(Some(_), ..) => v.cast_to(&DataType::Float64).ok().and_then(|f| as_f64(&f)),
        v if v.data_type().is_integer() => as_i64(v).map(|n| n as f64),
        _ => None,
    }
}

fn out_of_range(what: &str) -> DataFusionError {
    pg_error(PgError::new("22008", format!("timestamp out of range: \"{what}\"")))
}

/// `to_timestamp(seconds since 1970)`.
fn epoch_micros(seconds: f64) -> DfResult<i64> {
    let micros = (seconds * 1e6).round();
    if !micros.is_finite() || micros.abs() > 9.2e18 {
        return Err(out_of_range(&seconds.to_string()));
    }
    Ok(micros as i64)
}

/// The session's `TimeZone` (UTC if unset or unknown).
fn session_zone(vars: &Settings) -> Zone {
    vars.lock().ok().and_then(|v| v.get("timezone").and_then(|z| Zone::parse(z))).unwrap_or_default()
}

/// A parsed local time as an instant: at its own offset if it gave one,
/// else in the session's zone.
fn utc_micros(parsed: templates::Parsed, zone: Zone) -> DfResult<i64> {
    use chrono::TimeZone as _;
    let utc = match (parsed.offset_secs, zone) {
        (Some(offset), _) => parsed.local - chrono::Duration::seconds(offset.into()),
        (None, Zone::Utc) => parsed.local,
        (None, Zone::Named(tz)) => match tz.from_local_datetime(&parsed.local).earliest() {
            Some(t) => t.naive_utc(),
            // A local time skipped by a DST change: PostgreSQL moves it forward.
            None => parsed.local - chrono::Duration::seconds(i64::from(zone_offset(zone, &parsed.local))),
        },
    };
    Ok(utc.and_utc().timestamp_micros())
}

/// The offset of `zone` from UTC at a UTC time.
fn zone_offset(zone: Zone, utc: &chrono::NaiveDateTime) -> i32 {
    use chrono::{Offset, TimeZone as _};
    match zone {
        Zone::Utc => 0,
        Zone::Named(tz) => tz.offset_from_utc_datetime(utc).fix().local_minus_utc(),
    }
}

/// A timestamp or date value as the local time `to_char` formats, with
/// the zone's abbreviation and offset for a timestamptz (none for others).
fn local_time(v: &ScalarValue, zone: Zone) -> DfResult<(chrono::NaiveDateTime, Option<(String, i32)>)> {
    use chrono::TimeZone as _;
    let micros = |v: &ScalarValue| -> Option<i64> {
        match v.cast_to(&DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None)).ok()? {
            ScalarValue::TimestampMicrosecond(Some(us), _) => Some(us),
            _ => None,
        }
    };
    let unsupported = || {
        pg_error(PgError::with_hint(
            "42883",
            format!("function to_char({}, text) does not exist", typname(&v.data_type())),
            "leadline's to_char formats timestamps and dates",
        ))
    };
    let with_zone = matches!(v.data_type(), DataType::Timestamp(_, Some(_)));
    let Some(us) = (match v.data_type() {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => micros(v),
        _ => return Err(unsupported()),
    }) else {
        return Err(unsupported());
    };
    let utc = chrono::DateTime::from_timestamp_micros(us).ok_or_else(|| out_of_range(&us.to_string()))?.naive_utc();
    if !with_zone {
        return Ok((utc, None));
    }
    Ok(match zone {
        Zone::Utc => (utc, Some(("UTC".to_string(), 0))),
        Zone::Named(tz) => {
            let local = tz.from_utc_datetime(&utc);
            let offset = zone_offset(zone, &utc);
            (local.naive_local(), Some((local.format("%Z").to_string(), offset)))
        }
    })
}

/// `generate_series` over int4 and int2 as well as int8: PostgreSQL's
/// overloads. DataFusion's takes int8 only (Grafana sends
/// `generate_series(array_lower(…), array_upper(…))`, int4).
#[derive(Debug)]
struct IntegerSeries(Arc<dyn TableFunctionImpl>);

impl TableFunctionImpl for IntegerSeries {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let widened: Vec<Expr> = args
            .exprs()
            .iter()
            .map(|e| match e {
                Expr::Literal(v, meta) if v.data_type().is_integer() => {
                    Ok(Expr::Literal(v.cast_to(&DataType::Int64)?, meta.clone()))
                }
                e => Ok(e.clone()),
            })
            .collect::<DfResult<_>>()?;
        self.0.call_with_args(TableFunctionArgs::new(&widened, args.session()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{run, test_session};
    use crate::pg::errors::PgError;

    async fn one(sql: &str) -> Result<String, PgError> {
        let (ctx, info) = test_session();
        let rows = run(&ctx, &info, sql).await?;
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        Ok(rows[0].join("|"))
    }

    async fn sqlstate(sql: &str) -> &'static str {
        match one(sql).await {
            Ok(v) => panic!("{sql} answered {v}"),
            Err(e) => e.parts().0,
        }
    }

    #[tokio::test]
    async fn session_functions_answer_for_the_session() -> Result<(), PgError> {
        assert!(one("SELECT version()").await?.starts_with("PostgreSQL 16.6 (leadline "));
        assert_eq!(one("SELECT current_database(), current_schema(), session_user").await?, "leadline|public|analyst");
        assert_eq!(one("SELECT current_schemas(true), current_schemas(false)").await?, "[pg_catalog, public]|[public]");
        assert_eq!(one("SELECT pg_catalog.pg_get_userbyid(10)").await?, "leadline");
        assert_eq!(one("SELECT pg_encoding_to_char(6), pg_encoding_to_char(0)").await?, "UTF8|SQL_ASCII");
        assert_eq!(
            one("SELECT has_table_privilege('climate', 'SELECT'), pg_table_is_visible(16384)").await?,
            "true|true"
        );
        Ok(())
    }

    #[tokio::test]
    async fn format_type_names_types_and_takes_columns() -> Result<(), PgError> {
        assert_eq!(
            one("SELECT format_type(1184, NULL), format_type(23, -1)").await?,
            "timestamp with time zone|integer"
        );
        // Not STRICT in PostgreSQL: NULL for a NULL type, ??? for an unknown one.
        assert_eq!(one("SELECT format_type(NULL, NULL), format_type(424242, NULL)").await?, "NULL|???");
        assert_eq!(sqlstate("SELECT format_type('abc', NULL)").await, "22P02");
        let (ctx, info) = test_session();
        let got = run(&ctx, &info, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute ORDER BY attnum").await?;
        assert_eq!(got, [["date"], ["double precision"], ["double precision"], ["text"], ["text[]"]]);
        Ok(())
    }

    #[tokio::test]
    async fn strict_functions_give_null_for_null() -> Result<(), PgError> {
        assert_eq!(
            one("SELECT pg_get_userbyid(NULL), quote_ident(NULL), has_table_privilege(NULL, 'SELECT'), to_regclass(NULL)")
                .await?,
            "NULL|NULL|NULL|NULL"
        );
        Ok(())
    }

    #[tokio::test]
    async fn settings_are_read_and_written() -> Result<(), PgError> {
        let (ctx, info) = test_session();
        assert_eq!(run(&ctx, &info, "SELECT current_setting('DateStyle')").await?, [["ISO, MDY"]]);
        assert_eq!(run(&ctx, &info, "SELECT set_config('application_name', 'app', false)").await?, [["app"]]);
        assert_eq!(run(&ctx, &info, "SELECT current_setting('application_name')").await?, [["app"]]);
        assert_eq!(run(&ctx, &info, "SELECT current_setting('no_such_setting', true)").await?, [["NULL"]]);
        assert_eq!(sqlstate("SELECT current_setting('no_such_setting')").await, "42704");
        Ok(())
    }

    #[tokio::test]
    async fn dialect_functions_answer_good_null_and_bad_input() -> Result<(), PgError> {
        assert_eq!(
            one("SELECT format('%s.%I = %L', 'a', 'B', 'it''s'), format(NULL), format('%s', NULL)").await?,
            "a.\"B\" = 'it''s'|NULL|"
        );
        assert_eq!(sqlstate("SELECT format('%I', NULL)").await, "22004");
        assert_eq!(one("SELECT parse_ident('a.\"B\"'), parse_ident(NULL)").await?, "[a, B]|NULL");
        assert_eq!(sqlstate("SELECT parse_ident('a.')").await, "22023");
        assert_eq!(one("SELECT pg_is_other_temp_schema(2200), pg_is_other_temp_schema(NULL)").await?, "false|NULL");
        assert_eq!(one("SELECT pg_my_temp_schema()").await?, "0");
        assert_eq!(one("SELECT quote_literal('O''R'), quote_literal(NULL)").await?, "'O''R'|NULL");
        assert_eq!(
            one("SELECT to_timestamp('2026-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US'), to_timestamp(0), \
                 to_timestamp(NULL, 'YYYY')")
            .await?,
            "2026-01-01T00:00:00Z|1970-01-01T00:00:00Z|NULL"
        );
        assert_eq!(sqlstate("SELECT to_timestamp('x', 'YYYY-MM-DD')").await, "22007");
        assert_eq!(
            one("SELECT to_date('05 Dec 2000', 'DD Mon YYYY'), to_date(NULL, 'YYYY')").await?,
            "2000-12-05|NULL"
        );
        assert_eq!(sqlstate("SELECT to_date('2026-02-30', 'YYYY-MM-DD')").await, "22008");
        assert_eq!(
            one("SELECT to_char(to_timestamp('2026-03-02 21:05', 'YYYY-MM-DD HH24:MI'), 'Dy DD Mon YYYY HH12:MI AM TZ'), \
                 to_char(DATE '2026-03-02', 'IYYY-IW'), to_char(NULL, 'YYYY')")
                .await?,
            "Mon 02 Mar 2026 09:05 PM UTC|2026-10|NULL"
        );
        assert_eq!(sqlstate("SELECT to_char(1.5, '9.9')").await, "42883");
        Ok(())
    }

    #[tokio::test]
    async fn leadline_functions_have_signatures() -> Result<(), PgError> {
        let (ctx, info) = test_session();
        let got = run(
            &ctx,
            &info,
            "SELECT proname, pg_get_function_arguments(oid), pg_get_function_result(oid) FROM pg_proc \
             WHERE proname IN ('dora_metrics', 'change_failure_rate') ORDER BY 1",
        )
        .await?;
        assert_eq!(
            got,
            [
                ["change_failure_rate", "failed boolean", "double precision"],
                [
                    "dora_metrics",
                    "grain text, \"from\" timestamp with time zone DEFAULT NULL, \"to\" timestamp with time zone DEFAULT NULL",
                    "SETOF record"
                ],
            ]
        );
        assert_eq!(one("SELECT pg_get_function_result(NULL), pg_get_function_result(1)").await?, "NULL|NULL");
        assert_eq!(
            run(&ctx, &info, "SELECT lanname FROM pg_language ORDER BY oid").await?,
            [["internal"], ["c"], ["sql"]]
        );
        Ok(())
    }

    #[tokio::test]
    async fn names_and_oids_resolve() -> Result<(), PgError> {
        assert_eq!(
            one("SELECT quote_ident('events'), quote_ident('Mixed Case'), quote_ident('a\"b')").await?,
            "events|\"Mixed Case\"|\"a\"\"b\""
        );
        assert_eq!(
            one("SELECT to_regclass('climate'), to_regclass('public.climate'), to_regclass('nope')").await?,
            "16384|16384|NULL"
        );
        assert_eq!(
            one("SELECT to_regtype('integer'), to_regtype('pg_catalog.text'), to_regtype('nope')").await?,
            "23|25|NULL"
        );
        assert_eq!(
            one("SELECT array_lower(make_array(7, 8, 9), 1), array_upper(make_array(7, 8, 9), 1)").await?,
            "1|3"
        );
        assert_eq!(one("SELECT pg_size_pretty(2048)").await?, "2048 bytes");
        assert_eq!(sqlstate("SELECT pg_size_pretty('lots')").await, "22P02");
        Ok(())
    }
}
