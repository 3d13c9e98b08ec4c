//! Arrow → PostgreSQL wire values, a batch at a time.
//!
//! Each batch is encoded column-typed into one buffer (one downcast per column
//! per batch, no per-cell allocation); every row is then split off that buffer
//! as a `DataRow` sharing its allocation. Text follows PostgreSQL's output
//! rules (`t`/`f`, `2026-03-02 09:00:00+00`, `1 day 02:00:00`, `{a,"b c"}`),
//! binary follows its `send` functions.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray, RecordBatch, StringArray, StringViewArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, FieldRef, IntervalUnit, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;

use super::errors::PgError;

/// µs between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// The PostgreSQL type a column of this Arrow type is sent as.
pub fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
        DataType::List(f) | DataType::LargeList(f) => match pg_type(f.data_type()) {
            Type::BOOL => Type::BOOL_ARRAY,
            Type::INT2 => Type::INT2_ARRAY,
            Type::INT4 => Type::INT4_ARRAY,
            Type::INT8 => Type::INT8_ARRAY,
            Type::FLOAT4 => Type::FLOAT4_ARRAY,
            Type::FLOAT8 => Type::FLOAT8_ARRAY,
            Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
            Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
            Type::DATE => Type::DATE_ARRAY,
            Type::INTERVAL => Type::INTERVAL_ARRAY,
            Type::NUMERIC => Type::NUMERIC_ARRAY,
            _ => Type::TEXT_ARRAY,
        },
        _ => Type::TEXT,
    }
}

/// Field metadata naming the PostgreSQL type (its OID) a column is sent as
/// where the Arrow type alone cannot say it: the catalog's `oid`, `name` and
/// `"char"` columns, functions answering `name` or `json`. Column references
/// keep it through joins, subqueries and aliases, as PostgreSQL keeps a
/// column's type; anything computed from them is typed by its Arrow type.
pub const PG_TYPE: &str = "leadline.pg_type";

/// `field`, sent as PostgreSQL's type `ty` (see [`PG_TYPE`]).
pub fn with_pg_type(field: Field, ty: &Type) -> Field {
    field.with_metadata([(PG_TYPE.to_string(), ty.oid().to_string())].into())
}

/// The PostgreSQL type a column is sent as: the one its metadata names, if
/// its values are sent alike under that type (same text, same binary),
/// else its Arrow type's.
pub fn pg_type_of(field: &Field) -> Type {
    let own = pg_type(field.data_type());
    let named = field.metadata().get(PG_TYPE).and_then(|oid| oid.parse().ok()).and_then(Type::from_oid);
    match named {
        Some(named) if same_wire(&named, &own) => named,
        _ => own,
    }
}

/// Whether values sent as `own` are sent byte for byte alike as `named`: a
/// cast of an `oid` column to `bigint` keeps its metadata, but not its type.
fn same_wire(named: &Type, own: &Type) -> bool {
    match *own {
        Type::TEXT => {
            matches!(*named, Type::NAME | Type::CHAR | Type::VARCHAR | Type::JSON | Type::VOID | Type::PG_NODE_TREE)
        }
        Type::INT4 => matches!(*named, Type::OID | Type::XID | Type::REGCLASS | Type::REGTYPE),
        Type::INT2_ARRAY => *named == Type::INT2_VECTOR,
        Type::INT4_ARRAY => matches!(*named, Type::OID_ARRAY | Type::OID_VECTOR),
        // aclitem has no binary form in PostgreSQL: leadline's are text arrays.
        Type::TEXT_ARRAY => {
            matches!(*named, Type::NAME_ARRAY | Type::CHAR_ARRAY | Type::ACLITEM_ARRAY | Type::ANYARRAY)
        }
        _ => false,
    }
}

/// `pg_type.typlen` of a type sent in a RowDescription.
pub fn type_len(t: &Type) -> i16 {
    match *t {
        Type::BOOL | Type::CHAR => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE | Type::OID | Type::REGCLASS | Type::REGTYPE | Type::VOID => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIMESTAMPTZ | Type::TIMESTAMP => 8,
        Type::INTERVAL => 16,
        Type::NAME => 64,
        _ => -1,
    }
}

/// Row description fields for a result.
pub fn fields(names: &[String], types: &[FieldRef], format: impl Fn(usize) -> FieldFormat) -> Vec<FieldInfo> {
    names
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (n, field))| {
            let t = pg_type_of(field);
            let len = type_len(&t);
            FieldInfo::new(n.clone(), None, None, t, format(i)).with_type_size(len)
        })
        .collect()
}

/// Casts a column to the few physical layouts the encoders know.
fn normalize(col: &ArrayRef) -> Result<ArrayRef, PgError> {
    use arrow::compute::cast;
    let target = match col.data_type() {
        DataType::Int8 | DataType::UInt8 => Some(DataType::Int16),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
        DataType::Float16 => Some(DataType::Float32),
        DataType::LargeUtf8 | DataType::Dictionary(..) => Some(DataType::Utf8),
        DataType::Timestamp(u, tz) if *u != TimeUnit::Microsecond => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
        }
        DataType::Date64 => Some(DataType::Date32),
        DataType::Interval(u) if *u != IntervalUnit::MonthDayNano => {
            Some(DataType::Interval(IntervalUnit::MonthDayNano))
        }
        DataType::Duration(_) => Some(DataType::Interval(IntervalUnit::MonthDayNano)),
        DataType::Decimal256(p, s) => Some(DataType::Decimal128((*p).min(38), *s)),
        DataType::LargeList(f) => Some(DataType::List(f.clone())),
        _ => None,
    };
    match target {
        Some(t) => match cast(col, &t) {
            Ok(c) => Ok(c),
            Err(_) if matches!(col.data_type(), DataType::Duration(_)) => {
                // Durations beyond the cast's range: go through µs by hand.
                let us = cast(col, &DataType::Duration(TimeUnit::Microsecond)).map_err(PgError::from)?;
                let us = us.as_primitive::<arrow::datatypes::DurationMicrosecondType>();
                let v: IntervalMonthDayNanoArray = us
                    .iter()
                    .map(|o| o.map(|u| arrow::datatypes::IntervalMonthDayNano::new(0, 0, u.saturating_mul(1000))))
                    .collect();
                Ok(Arc::new(v))
            }
            Err(e) => Err(e.into()),
        },
        None => Ok(col.clone()),
    }
}

/// One column, downcast once per batch.
enum Col<'a> {
    Utf8(&'a StringArray),
    Utf8View(&'a StringViewArray),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Bool(&'a BooleanArray),
    Ts(&'a TimestampMicrosecondArray, bool),
    Date(&'a Date32Array),
    Interval(&'a IntervalMonthDayNanoArray),
    Decimal(&'a Decimal128Array, i8),
    List(&'a ListArray, Box<Col<'a>>, Type),
    Other(ArrayFormatter<'a>),
}

fn col<'a>(a: &'a dyn Array, opts: &'a FormatOptions<'a>) -> Result<Col<'a>, PgError> {
    Ok(match a.data_type() {
        DataType::Utf8 => Col::Utf8(a.as_string::<i32>()),
        DataType::Utf8View => Col::Utf8View(a.as_string_view()),
        DataType::Int16 => Col::I16(a.as_primitive()),
        DataType::Int32 => Col::I32(a.as_primitive()),
        DataType::Int64 => Col::I64(a.as_primitive()),
        DataType::Float32 => Col::F32(a.as_primitive()),
        DataType::Float64 => Col::F64(a.as_primitive()),
        DataType::Boolean => Col::Bool(a.as_boolean()),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Col::Ts(a.as_primitive(), tz.is_some()),
        DataType::Date32 => Col::Date(a.as_primitive()),
        DataType::Interval(IntervalUnit::MonthDayNano) => Col::Interval(a.as_primitive()),
        DataType::Decimal128(_, s) => Col::Decimal(a.as_primitive(), *s),
        DataType::List(f) => {
            let l = a.as_list::<i32>();
            let t = pg_type(f.data_type());
            // The values array lives as long as `a`.
            let inner = col(l.values().as_ref(), opts)?;
            Col::List(l, Box::new(inner), t)
        }
        _ => Col::Other(ArrayFormatter::try_new(a, opts)?),
    })
}

/// The session's `TimeZone`, for timestamptz text.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Zone {
    #[default]
    Utc,
    Named(chrono_tz::Tz),
}

impl Zone {
    /// TimeZone values: `UTC` and IANA names (`Europe/Paris`).
    pub fn parse(v: &str) -> Option<Zone> {
        let t = v.trim();
        if matches!(
            t.to_ascii_lowercase().as_str(),
            "utc" | "etc/utc" | "gmt" | "z" | "zulu" | "universal" | "etc/universal" | "0"
        ) {
            return Some(Zone::Utc);
        }
        // Numeric strings are POSIX zones in PostgreSQL (sign inverted);
        // only names are accepted (e.g. 'Asia/Kolkata', 'Etc/GMT-5').
        t.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
    }

    fn offset_secs(&self, us: i64) -> i32 {
        use chrono::Offset;
        use chrono::TimeZone as _;
        match self {
            Zone::Utc => 0,
            Zone::Named(tz) => match chrono::DateTime::from_timestamp_micros(us) {
                Some(t) => tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc(),
                None => 0,
            },
        }
    }
}

/// Encodes record batches into DataRows for fixed per-column formats.
pub struct BatchEncoder {
    binary: Vec<bool>,
    /// `int2vector`/`oidvector` columns, whose text is their elements
    /// separated by spaces (their binary is an array's).
    vector: Vec<bool>,
    opts: FormatOptions<'static>,
    zone: Zone,
}

impl BatchEncoder {
    /// An encoder of rows as `fields` (the RowDescription) describes them.
    pub fn new(fields: &[FieldInfo], zone: Zone) -> Self {
        Self {
            binary: fields.iter().map(|f| f.format() == FieldFormat::Binary).collect(),
            vector: fields.iter().map(|f| matches!(*f.datatype(), Type::INT2_VECTOR | Type::OID_VECTOR)).collect(),
            opts: FormatOptions::default(),
            zone,
        }
    }

    pub fn encode(&self, batch: &RecordBatch, out: &mut Vec<DataRow>) -> Result<(), PgError> {
        let n = batch.num_rows();
        let cols: Vec<ArrayRef> = batch.columns().iter().map(normalize).collect::<Result<_, _>>()?;
        let encs: Vec<Col<'_>> = cols.iter().map(|c| col(c.as_ref(), &self.opts)).collect::<Result<_, _>>()?;
        let ncols = encs.len() as i16;
        // Logical nulls: a NullArray (`SELECT NULL`) has no validity buffer.
        let nulls: Vec<Option<arrow::buffer::NullBuffer>> = cols.iter().map(|c| c.logical_nulls()).collect();
        let estimate: usize = cols.iter().map(|c| c.get_array_memory_size() / n.max(1) + 8).sum::<usize>() * n + 64;
        let mut buf = BytesMut::with_capacity(estimate.min(64 << 20));
        out.reserve(n);
        for row in 0..n {
            for (i, c) in encs.iter().enumerate() {
                if nulls[i].as_ref().is_some_and(|n| n.is_null(row)) {
                    buf.put_i32(-1);
                    continue;
                }
                let at = buf.len();
                buf.put_i32(0);
                if self.binary.get(i).copied().unwrap_or(false) {
                    binary(c, row, &mut buf)?;
                } else if self.vector.get(i).copied().unwrap_or(false) {
                    vector_text(c, row, &mut buf, &self.zone);
                } else {
                    text(c, row, &mut buf, false, &self.zone);
                }
                let len = (buf.len() - at - 4) as i32;
                buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            out.push(DataRow::new(buf.split(), ncols));
        }
        Ok(())
    }
}

fn text(c: &Col<'_>, i: usize, buf: &mut BytesMut, in_array: bool, zone: &Zone) {
    match c {
        Col::Utf8(a) => put_text(buf, a.value(i), in_array),
        Col::Utf8View(a) => put_text(buf, a.value(i), in_array),
        Col::I16(a) => buf.put_slice(itoa::Buffer::new().format(a.value(i)).as_bytes()),
        Col::I32(a) => buf.put_slice(itoa::Buffer::new().format(a.value(i)).as_bytes()),
        Col::I64(a) => buf.put_slice(itoa::Buffer::new().format(a.value(i)).as_bytes()),
        Col::F32(a) => put_float(buf, a.value(i) as f64, true),
        Col::F64(a) => put_float(buf, a.value(i), false),
        Col::Bool(a) => buf.put_u8(if a.value(i) { b't' } else { b'f' }),
        Col::Ts(a, tz) => {
            if in_array {
                buf.put_u8(b'"');
            }
            if *tz {
                put_timestamptz(buf, a.value(i), zone);
            } else {
                put_timestamp(buf, a.value(i), false);
            }
            if in_array {
                buf.put_u8(b'"');
            }
        }
        Col::Date(a) => put_date(buf, a.value(i) as i64),
        Col::Interval(a) => {
            let v = a.value(i);
            if in_array {
                buf.put_u8(b'"');
            }
            put_interval(buf, v.months, v.days, v.nanoseconds / 1000);
            if in_array {
                buf.put_u8(b'"');
            }
        }
        Col::Decimal(a, s) => buf.put_slice(decimal_string(a.value(i), *s).as_bytes()),
        Col::List(l, inner, _) => {
            let offsets = l.value_offsets();
            let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
            let values = l.values();
            buf.put_u8(b'{');
            for j in start..end {
                if j > start {
                    buf.put_u8(b',');
                }
                if values.is_null(j) {
                    buf.put_slice(b"NULL");
                } else {
                    text(inner, j, buf, true, zone);
                }
            }
            buf.put_u8(b'}');
        }
        Col::Other(f) => {
            let s = f.value(i).to_string();
            put_text(buf, &s, in_array);
        }
    }
}

/// An `int2vector`/`oidvector` as text: `1 2 3`.
fn vector_text(c: &Col<'_>, i: usize, buf: &mut BytesMut, zone: &Zone) {
    let Col::List(l, inner, _) = c else { return text(c, i, buf, false, zone) };
    let offsets = l.value_offsets();
    let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
    for j in start..end {
        if j > start {
            buf.put_u8(b' ');
        }
        text(inner, j, buf, false, zone);
    }
}

/// Writes a string, quoted as an array element if needed.
fn put_text(buf: &mut BytesMut, s: &str, in_array: bool) {
    if !in_array {
        buf.put_slice(s.as_bytes());
        return;
    }
    let needs_quote = s.is_empty()
        || s.eq_ignore_ascii_case("null")
        || s.bytes().any(|b| matches!(b, b'{' | b'}' | b',' | b'"' | b'\\' | b' ' | b'\t' | b'\n' | b'\r'));
    if !needs_quote {
        buf.put_slice(s.as_bytes());
        return;
    }
    buf.put_u8(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            buf.put_u8(b'\\');
        }
        buf.put_u8(b);
    }
    buf.put_u8(b'"');
}

/// PostgreSQL's shortest exact float output (`extra_float_digits = 1`).
fn put_float(buf: &mut BytesMut, v: f64, single: bool) {
    if v.is_nan() {
        buf.put_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        buf.put_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
        return;
    }
    let mut r = ryu::Buffer::new();
    let s = if single { r.format(v as f32) } else { r.format(v) };
    let s = s.strip_suffix(".0").unwrap_or(s);
    match s.split_once('e') {
        Some((m, e)) => {
            buf.put_slice(m.as_bytes());
            buf.put_u8(b'e');
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            buf.put_u8(sign as u8);
            if digits.len() < 2 {
                buf.put_u8(b'0');
            }
            buf.put_slice(digits.as_bytes());
        }
        None => buf.put_slice(s.as_bytes()),
    }
}

fn put2(buf: &mut BytesMut, v: u32) {
    buf.put_u8(b'0' + (v / 10) as u8);
    buf.put_u8(b'0' + (v % 10) as u8);
}

fn put_date(buf: &mut BytesMut, days: i64) {
    let (y, m, d) = leadline_udfs::civil_from_days(days);
    if (0..=9999).contains(&y) {
        let y = y as u32;
        put2(buf, y / 100);
        put2(buf, y % 100);
    } else {
        buf.put_slice(format!("{:04}", y.abs()).as_bytes());
    }
    buf.put_u8(b'-');
    put2(buf, m);
    buf.put_u8(b'-');
    put2(buf, d);
    if y <= 0 {
        buf.put_slice(b" BC");
    }
}

fn put_time_of_day(buf: &mut BytesMut, us: i64) {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    put2(buf, (secs / 3600) as u32);
    buf.put_u8(b':');
    put2(buf, ((secs / 60) % 60) as u32);
    buf.put_u8(b':');
    put2(buf, (secs % 60) as u32);
    put_fraction(buf, frac);
}

fn put_fraction(buf: &mut BytesMut, frac: i64) {
    if frac != 0 {
        let s = format!("{:06}", frac);
        buf.put_u8(b'.');
        buf.put_slice(s.trim_end_matches('0').as_bytes());
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+00]` in UTC.
fn put_timestamp(buf: &mut BytesMut, us: i64, tz: bool) {
    let days = us.div_euclid(86_400_000_000);
    let tod = us.rem_euclid(86_400_000_000);
    put_date(buf, days);
    buf.put_u8(b' ');
    put_time_of_day(buf, tod);
    if tz {
        buf.put_slice(b"+00");
    }
}

/// A timestamptz in the session's zone: `2026-03-02 10:00:00+01`, `+05:30`.
fn put_timestamptz(buf: &mut BytesMut, us: i64, zone: &Zone) {
    let off = zone.offset_secs(us);
    put_timestamp(buf, us + off as i64 * 1_000_000, false);
    buf.put_u8(if off < 0 { b'-' } else { b'+' });
    let a = off.unsigned_abs();
    put2(buf, a / 3600);
    if !a.is_multiple_of(3600) {
        buf.put_u8(b':');
        put2(buf, (a % 3600) / 60);
    }
}

/// PostgreSQL's `IntervalStyle = postgres` output.
pub fn interval_text(months: i32, days: i32, us: i64) -> String {
    let mut b = BytesMut::new();
    put_interval(&mut b, months, days, us);
    String::from_utf8_lossy(&b).into_owned()
}

fn put_interval(buf: &mut BytesMut, months: i32, days: i32, us: i64) {
    let mut parts: Vec<String> = Vec::new();
    let (years, mons) = (months / 12, months % 12);
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n.abs() == 1 { "" } else { "s" });
    if years != 0 {
        parts.push(plural(years as i64, "year"));
    }
    if mons != 0 {
        parts.push(plural(mons as i64, "mon"));
    }
    if days != 0 {
        parts.push(plural(days as i64, "day"));
    }
    let mut s = parts.join(" ");
    if us != 0 || parts.is_empty() {
        if !s.is_empty() {
            s.push(' ');
        }
        let neg = us < 0;
        let a = us.unsigned_abs();
        let secs = a / 1_000_000;
        let frac = a % 1_000_000;
        if neg {
            s.push('-');
        } else if days < 0 || months < 0 {
            s.push('+');
        }
        s.push_str(&format!("{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60));
        if frac != 0 {
            s.push_str(format!(".{:06}", frac).trim_end_matches('0'));
        }
    }
    buf.put_slice(s.as_bytes());
}

fn decimal_string(v: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = v.to_string();
        for _ in 0..(-scale) {
            s.push('0');
        }
        return s;
    }
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded =
        if digits.len() <= scale { format!("{}{}", "0".repeat(scale - digits.len() + 1), digits) } else { digits };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{}.{}", if neg { "-" } else { "" }, int, frac)
}

fn binary(c: &Col<'_>, i: usize, buf: &mut BytesMut) -> Result<(), PgError> {
    match c {
        Col::Utf8(a) => buf.put_slice(a.value(i).as_bytes()),
        Col::Utf8View(a) => buf.put_slice(a.value(i).as_bytes()),
        Col::I16(a) => buf.put_i16(a.value(i)),
        Col::I32(a) => buf.put_i32(a.value(i)),
        Col::I64(a) => buf.put_i64(a.value(i)),
        Col::F32(a) => buf.put_f32(a.value(i)),
        Col::F64(a) => buf.put_f64(a.value(i)),
        Col::Bool(a) => buf.put_u8(a.value(i) as u8),
        Col::Ts(a, _) => buf.put_i64(a.value(i) - PG_EPOCH_US),
        Col::Date(a) => buf.put_i32(a.value(i) - PG_EPOCH_DAYS),
        Col::Interval(a) => {
            let v = a.value(i);
            buf.put_i64(v.nanoseconds / 1000);
            buf.put_i32(v.days);
            buf.put_i32(v.months);
        }
        Col::Decimal(a, s) => put_numeric_binary(buf, &decimal_string(a.value(i), *s)),
        Col::List(l, inner, t) => {
            let offsets = l.value_offsets();
            let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
            let values = l.values();
            let elem = element_oid(t);
            let has_null = (start..end).any(|j| values.is_null(j));
            buf.put_i32(1);
            buf.put_i32(has_null as i32);
            buf.put_u32(elem);
            buf.put_i32((end - start) as i32);
            buf.put_i32(1);
            for j in start..end {
                if values.is_null(j) {
                    buf.put_i32(-1);
                    continue;
                }
                let at = buf.len();
                buf.put_i32(0);
                binary(inner, j, buf)?;
                let len = (buf.len() - at - 4) as i32;
                buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        Col::Other(f) => buf.put_slice(f.value(i).to_string().as_bytes()),
    }
    Ok(())
}

fn element_oid(array_type: &Type) -> u32 {
    match *array_type {
        Type::BOOL_ARRAY => Type::BOOL.oid(),
        Type::INT2_ARRAY => Type::INT2.oid(),
        Type::INT4_ARRAY => Type::INT4.oid(),
        Type::INT8_ARRAY => Type::INT8.oid(),
        Type::FLOAT4_ARRAY => Type::FLOAT4.oid(),
        Type::FLOAT8_ARRAY => Type::FLOAT8.oid(),
        Type::TIMESTAMPTZ_ARRAY => Type::TIMESTAMPTZ.oid(),
        Type::TIMESTAMP_ARRAY => Type::TIMESTAMP.oid(),
        Type::DATE_ARRAY => Type::DATE.oid(),
        Type::INTERVAL_ARRAY => Type::INTERVAL.oid(),
        Type::NUMERIC_ARRAY => Type::NUMERIC.oid(),
        _ => Type::TEXT.oid(),
    }
}

/// PostgreSQL's binary `numeric`: base-10000 digits around the decimal point.
fn put_numeric_binary(buf: &mut BytesMut, s: &str) {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let dscale = frac.len() as i16;
    let int = int.trim_start_matches('0');
    // Pad the integer part on the left and the fraction on the right to groups of 4.
    let int_pad = (4 - int.len() % 4) % 4;
    let int_s = format!("{}{}", "0".repeat(int_pad), int);
    let frac_pad = (4 - frac.len() % 4) % 4;
    let frac_s = format!("{}{}", frac, "0".repeat(frac_pad));
    let group = |g: &str| g.bytes().fold(0i16, |acc, b| acc * 10 + (b - b'0') as i16);
    let mut digits: Vec<i16> =
        int_s.as_bytes().chunks(4).map(|c| group(std::str::from_utf8(c).unwrap_or("0"))).collect();
    let mut weight = digits.len() as i16 - 1;
    digits.extend(frac_s.as_bytes().chunks(4).map(|c| group(std::str::from_utf8(c).unwrap_or("0"))));
    // Strip leading zero groups (adjusting the weight) and trailing ones.
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    buf.put_i16(digits.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if neg && !digits.is_empty() { 0x4000 } else { 0 });
    buf.put_i16(dscale);
    for d in digits {
        buf.put_i16(d);
    }
}

/// A text-typed Arrow field (for results the server makes itself).
pub fn text_field(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut BytesMut)) -> String {
        let mut b = BytesMut::new();
        f(&mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn timestamps_and_intervals_read_like_postgres() {
        assert_eq!(s(|b| put_timestamp(b, 1_772_442_000_000_000, true)), "2026-03-02 09:00:00+00");
        assert_eq!(s(|b| put_timestamp(b, 1_772_442_000_123_400, true)), "2026-03-02 09:00:00.1234+00");
        assert_eq!(interval_text(0, 1, 7_200_000_000), "1 day 02:00:00");
        assert_eq!(
            s(|b| put_timestamptz(b, 1_772_442_000_000_000, &Zone::parse("Europe/Paris").unwrap())),
            "2026-03-02 10:00:00+01"
        );
        assert_eq!(
            s(|b| put_timestamptz(b, 1_772_442_000_000_000, &Zone::parse("Asia/Kolkata").unwrap())),
            "2026-03-02 14:30:00+05:30"
        );
        assert_eq!(
            s(|b| put_timestamptz(b, 1_772_442_000_000_000, &Zone::parse("America/New_York").unwrap())),
            "2026-03-02 04:00:00-05"
        );
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(interval_text(14, 3, 0), "1 year 2 mons 3 days");
        assert_eq!(interval_text(0, 0, -1_500_000), "-00:00:01.5");
    }

    #[test]
    fn floats_read_like_postgres() {
        assert_eq!(s(|b| put_float(b, 1.0, false)), "1");
        assert_eq!(s(|b| put_float(b, 0.1, false)), "0.1");
        assert_eq!(s(|b| put_float(b, 1e30, false)), "1e+30");
        assert_eq!(s(|b| put_float(b, 1.5e-7, false)), "1.5e-07");
    }

    #[test]
    fn numeric_binary_groups() {
        let mut b = BytesMut::new();
        put_numeric_binary(&mut b, "12345.678");
        // ndigits 3, weight 1, sign 0, dscale 3, digits 1 2345 6780
        assert_eq!(&b[..], &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]);
        assert_eq!(decimal_string(-5, 2), "-0.05");
    }
}
