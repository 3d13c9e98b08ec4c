//! `COPY events [(columns)] FROM STDIN` data, decoded as it arrives: the
//! CopyData chunks of the wire, split anywhere (a row, even an escape
//! sequence, may straddle two chunks), become [`InputRow`]s as soon as each
//! row is complete. The three formats follow PostgreSQL 16's `COPY`:
//!
//! - **text**: fields split at the delimiter (tab), rows at `\n` or `\r\n`;
//!   backslash escapes (`\b \f \n \r \t \v \\`, 1–3 octal digits, `\x` and
//!   1–2 hex digits, any other character is itself; a backslash before a line
//!   break makes the break data); a field whose raw text is the NULL string
//!   (`\N`) is null; a line `\.` ends the data.
//! - **csv**: fields may be quoted, a quoted field holds delimiters, quotes
//!   (doubled, or after ESCAPE) and line breaks; an unquoted field equal to
//!   the NULL string (empty) is null, a quoted one never is (FORCE_NULL and
//!   FORCE_NOT_NULL change that per column); a line `\.` ends the data.
//! - **binary**: the `PGCOPY` header, then per tuple a field count and
//!   length-prefixed values in each column type's binary send format.
//!
//! A problem with one row (wrong field count, bytes that are not UTF-8, a
//! value of the wrong binary size) rejects that row with a reason; a problem
//! with the stream (bad binary framing, an unterminated quoted field at the
//! end) is a [`CopyError`] and nothing of the COPY is appended.
//!
//! `line` of a row is its 1-based line in the text (the header line counts,
//! a row spanning lines is numbered by its first), or its tuple number in
//! binary.

use arrow::datatypes::DataType;

use super::InputRow;
use super::pg_text::text_value;
use crate::event::{RawRow, RawValue, events_schema, raw_row_json};

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 UTC.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// The first bytes of binary COPY data.
const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags and header extension length.
const BINARY_HEADER_LEN: usize = 19;
/// Element type OIDs a `text[]`-like binary array may carry: text, varchar,
/// bpchar, name.
const TEXT_OIDS: [i32; 4] = [25, 1043, 1042, 19];
/// Characters a text-format delimiter cannot be: they start or follow escapes.
const TEXT_DELIMITER_FORBIDDEN: &[u8] = b"\\.abcdefghijklmnopqrstuvwxyz0123456789";

/// COPY's `FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyFormat {
    #[default]
    Text,
    Csv,
    Binary,
}

/// COPY's `HEADER`: absent (false), skip the first line (true), or check it
/// names the target columns (`MATCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyHeader {
    #[default]
    Absent,
    Skip,
    Match,
}

/// The columns `FORCE_NULL`/`FORCE_NOT_NULL` apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyColumns {
    All,
    Named(Vec<String>),
}

/// The options of a `COPY … FROM STDIN` statement as written; `None` is the
/// format's default. [`CopyDecoder::new`] checks them as PostgreSQL does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: Option<String>,
    pub null: Option<String>,
    pub header: CopyHeader,
    pub quote: Option<String>,
    pub escape: Option<String>,
    pub force_not_null: Option<CopyColumns>,
    pub force_null: Option<CopyColumns>,
    pub encoding: Option<String>,
}

/// What kind of problem a [`CopyError`] is; the server maps each to a SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyErrorKind {
    /// The data breaks the format (22P04).
    BadFormat,
    /// An option has a value COPY does not accept (22023).
    InvalidOption,
    /// Options that cannot go together (42601).
    ConflictingOptions,
    /// A COPY feature leadline does not implement (0A000).
    Unsupported,
    /// The column list names a column `events` does not have (42703).
    UndefinedColumn,
    /// The column list names a column twice (42701).
    DuplicateColumn,
    /// FORCE_NULL/FORCE_NOT_NULL names a column not being copied (42P10).
    InvalidColumnReference,
}

/// A problem with a COPY as a whole: its options, or its data stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CopyError {
    pub kind: CopyErrorKind,
    pub message: String,
}

impl CopyError {
    fn new(kind: CopyErrorKind, message: impl Into<String>) -> Self {
        CopyError { kind, message: message.into() }
    }
    fn bad_format(message: impl Into<String>) -> Self {
        Self::new(CopyErrorKind::BadFormat, message)
    }
    fn with_line(mut self, line: u64) -> Self {
        self.message = format!("{} (line {line})", self.message);
        self
    }
}

/// A target column of the COPY.
#[derive(Debug)]
struct Column {
    name: String,
    ty: DataType,
    /// `attributes` holds JSON: a binary jsonb value (version byte 1) is accepted.
    json: bool,
    force_null: bool,
    force_not_null: bool,
}

/// Decodes the data of one `COPY … FROM STDIN` into input rows. Feed it the
/// CopyData chunks with [`push`](Self::push) and end with
/// [`finish`](Self::finish); after an error it must not be fed again.
#[derive(Debug)]
pub struct CopyDecoder {
    columns: Vec<Column>,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Lines(LineDecoder),
    Binary(BinaryDecoder),
}

impl CopyDecoder {
    /// A decoder for `columns` of the events table (in the order the data
    /// carries them), with the statement's options checked as PostgreSQL's
    /// ProcessCopyOptions does.
    pub fn new(options: &CopyOptions, columns: &[String]) -> Result<CopyDecoder, CopyError> {
        use CopyErrorKind::*;
        let mut columns = target_columns(columns)?;
        if let Some(encoding) = &options.encoding {
            let norm: String =
                encoding.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
            if norm != "utf8" && norm != "unicode" {
                return Err(CopyError::new(
                    Unsupported,
                    format!("COPY ENCODING '{encoding}' is not supported: leadline reads COPY data as UTF8"),
                ));
            }
        }
        if options.format != CopyFormat::Csv {
            for (given, what) in [
                (options.quote.is_some(), "quote"),
                (options.escape.is_some(), "escape"),
                (options.force_not_null.is_some(), "force not null"),
                (options.force_null.is_some(), "force null"),
            ] {
                if given {
                    return Err(CopyError::new(Unsupported, format!("COPY {what} available only in CSV mode")));
                }
            }
        }
        let body = if options.format == CopyFormat::Binary {
            for (given, what) in [
                (options.delimiter.is_some(), "DELIMITER"),
                (options.null.is_some(), "NULL"),
                (options.header != CopyHeader::Absent, "HEADER"),
            ] {
                if given {
                    return Err(CopyError::new(ConflictingOptions, format!("cannot specify {what} in BINARY mode")));
                }
            }
            Body::Binary(BinaryDecoder::default())
        } else {
            Body::Lines(LineDecoder::new(options, &mut columns)?)
        };
        Ok(CopyDecoder { columns, body })
    }

    /// Decodes one chunk of data, appending the rows it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<InputRow>) -> Result<(), CopyError> {
        match &mut self.body {
            Body::Lines(lines) => lines.push(&self.columns, chunk, out),
            Body::Binary(binary) => binary.push(&self.columns, chunk, out),
        }
    }

    /// The end of the data (CopyDone): a last row without a line break is a
    /// row; a row cut short (an open quoted field, a partial binary tuple) is
    /// an error.
    pub fn finish(&mut self, out: &mut Vec<InputRow>) -> Result<(), CopyError> {
        match &mut self.body {
            Body::Lines(lines) => lines.finish(&self.columns, out),
            Body::Binary(binary) => binary.finish(),
        }
    }
}

/// The target columns, by name, with their types in `events`.
fn target_columns(names: &[String]) -> Result<Vec<Column>, CopyError> {
    let schema = events_schema();
    let mut columns: Vec<Column> = Vec::with_capacity(names.len());
    for name in names {
        let field = schema.field_with_name(name).map_err(|_| {
            CopyError::new(
                CopyErrorKind::UndefinedColumn,
                format!("column \"{name}\" of relation \"events\" does not exist"),
            )
        })?;
        if columns.iter().any(|c| &c.name == name) {
            return Err(CopyError::new(
                CopyErrorKind::DuplicateColumn,
                format!("column \"{name}\" specified more than once"),
            ));
        }
        columns.push(Column {
            name: name.clone(),
            ty: field.data_type().clone(),
            json: name == "attributes",
            force_null: false,
            force_not_null: false,
        });
    }
    Ok(columns)
}

/// A single-byte option (DELIMITER, QUOTE, ESCAPE), or its default.
fn one_byte(name: &str, given: Option<&str>, default: u8) -> Result<u8, CopyError> {
    match given.map(str::as_bytes) {
        None => Ok(default),
        Some(&[b]) => Ok(b),
        Some(_) => {
            Err(CopyError::new(CopyErrorKind::Unsupported, format!("COPY {name} must be a single one-byte character")))
        }
    }
}

/// How a text or CSV row splits into fields.
#[derive(Debug, Clone, Copy)]
enum Syntax {
    Text { delimiter: u8 },
    Csv { delimiter: u8, quote: u8, escape: u8 },
}

/// Where the row scanner is, carried from one chunk to the next.
#[derive(Debug, Default)]
struct Scan {
    /// Text: the previous byte was a backslash that escapes this one.
    backslash: bool,
    /// CSV: inside a quoted field.
    in_quote: bool,
    /// CSV, ESCAPE other than QUOTE: the previous byte escapes this one.
    last_was_escape: bool,
    /// The previous byte was a plain (unescaped, unquoted) carriage return.
    cr: bool,
    /// Line breaks inside the row so far (escaped or quoted).
    newlines: u64,
}

/// Text and CSV: bytes → rows (where a row ends depends on escapes and
/// quotes) → fields.
#[derive(Debug)]
struct LineDecoder {
    syntax: Syntax,
    null: Vec<u8>,
    /// The first row is still to come and is a header.
    header: CopyHeader,
    /// The start of a row whose end has not arrived yet.
    pending: Vec<u8>,
    scan: Scan,
    /// The line the next row starts on.
    next_line: u64,
    /// `\.` was seen: the rest of the data is ignored, as PostgreSQL does.
    ended: bool,
}

/// Why a row's fields could not be read.
enum RowError {
    /// This row is rejected; the COPY goes on.
    Reject(String),
    /// The COPY stops.
    Fatal(CopyError),
}

impl LineDecoder {
    /// Text or CSV with the statement's DELIMITER, NULL, QUOTE, ESCAPE and
    /// FORCE_* options (marked on `columns`).
    fn new(options: &CopyOptions, columns: &mut [Column]) -> Result<LineDecoder, CopyError> {
        use CopyErrorKind::*;
        let csv = options.format == CopyFormat::Csv;
        let delimiter = one_byte("delimiter", options.delimiter.as_deref(), if csv { b',' } else { b'\t' })?;
        let null = options.null.clone().unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
        if matches!(delimiter, b'\n' | b'\r') {
            return Err(CopyError::new(InvalidOption, "COPY delimiter cannot be newline or carriage return"));
        }
        if null.contains(['\n', '\r']) {
            return Err(CopyError::new(
                InvalidOption,
                "COPY null representation cannot use newline or carriage return",
            ));
        }
        if !csv && TEXT_DELIMITER_FORBIDDEN.contains(&delimiter) {
            return Err(CopyError::new(InvalidOption, format!("COPY delimiter cannot be \"{}\"", delimiter as char)));
        }
        if null.as_bytes().contains(&delimiter) {
            return Err(CopyError::new(InvalidOption, "COPY delimiter must not appear in the NULL specification"));
        }
        let syntax = if csv {
            let quote = one_byte("quote", options.quote.as_deref(), b'"')?;
            let escape = one_byte("escape", options.escape.as_deref(), quote)?;
            if quote == delimiter {
                return Err(CopyError::new(InvalidOption, "COPY delimiter and quote must be different"));
            }
            if null.as_bytes().contains(&quote) {
                return Err(CopyError::new(
                    InvalidOption,
                    "CSV quote character must not appear in the NULL specification",
                ));
            }
            let not_null: fn(&mut Column) = |c| c.force_not_null = true;
            let null: fn(&mut Column) = |c| c.force_null = true;
            for (force, option, set) in
                [(&options.force_not_null, "FORCE_NOT_NULL", not_null), (&options.force_null, "FORCE_NULL", null)]
            {
                match force {
                    None => {}
                    Some(CopyColumns::All) => columns.iter_mut().for_each(set),
                    Some(CopyColumns::Named(names)) => {
                        for name in names {
                            let column = columns.iter_mut().find(|c| &c.name == name).ok_or_else(|| {
                                CopyError::new(
                                    InvalidColumnReference,
                                    format!("{option} column \"{name}\" not referenced by COPY"),
                                )
                            })?;
                            set(column);
                        }
                    }
                }
            }
            Syntax::Csv { delimiter, quote, escape }
        } else {
            Syntax::Text { delimiter }
        };
        Ok(LineDecoder {
            syntax,
            null: null.into_bytes(),
            header: options.header,
            pending: Vec::new(),
            scan: Scan::default(),
            next_line: 1,
            ended: false,
        })
    }

    fn push(&mut self, columns: &[Column], chunk: &[u8], out: &mut Vec<InputRow>) -> Result<(), CopyError> {
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if self.ended {
                return Ok(());
            }
            if !self.row_ends_at(b) {
                continue;
            }
            if self.pending.is_empty() {
                self.row(columns, &chunk[start..i], out)?;
            } else {
                let mut row = std::mem::take(&mut self.pending);
                row.extend_from_slice(&chunk[start..i]);
                let done = self.row(columns, &row, out);
                row.clear();
                self.pending = row;
                done?;
            }
            start = i + 1;
        }
        if !self.ended {
            self.pending.extend_from_slice(&chunk[start..]);
        }
        Ok(())
    }

    fn finish(&mut self, columns: &[Column], out: &mut Vec<InputRow>) -> Result<(), CopyError> {
        if self.ended || self.pending.is_empty() {
            return Ok(());
        }
        if self.scan.in_quote {
            return Err(CopyError::bad_format(format!(
                "unterminated CSV quoted field in the row starting at line {}",
                self.next_line
            )));
        }
        let row = std::mem::take(&mut self.pending);
        self.row(columns, &row, out)
    }

    /// Scans one byte; true when it is the line break that ends the row.
    fn row_ends_at(&mut self, b: u8) -> bool {
        let s = &mut self.scan;
        let data = match self.syntax {
            Syntax::Text { .. } => {
                let escaped = s.backslash;
                s.backslash = !escaped && b == b'\\';
                escaped
            }
            Syntax::Csv { quote, escape, .. } => {
                // As PostgreSQL's CopyReadLineText: an ESCAPE other than QUOTE
                // only counts inside quotes, and not when itself escaped.
                let escape = (escape != quote).then_some(escape);
                if s.in_quote && Some(b) == escape {
                    s.last_was_escape = !s.last_was_escape;
                }
                if b == quote && !s.last_was_escape {
                    s.in_quote = !s.in_quote;
                }
                if Some(b) != escape {
                    s.last_was_escape = false;
                }
                s.in_quote
            }
        };
        if data {
            s.cr = false;
            s.newlines += u64::from(b == b'\n');
            return false;
        }
        if b == b'\n' {
            return true;
        }
        s.cr = b == b'\r';
        false
    }

    /// One complete row (without its `\n`).
    fn row(&mut self, columns: &[Column], bytes: &[u8], out: &mut Vec<InputRow>) -> Result<(), CopyError> {
        let bytes = if self.scan.cr { bytes.strip_suffix(b"\r").unwrap_or(bytes) } else { bytes };
        let line = self.next_line;
        self.next_line += 1 + self.scan.newlines;
        self.scan = Scan::default();
        if bytes == b"\\." {
            self.ended = true;
            return Ok(());
        }
        let header = std::mem::replace(&mut self.header, CopyHeader::Absent);
        if header == CopyHeader::Skip {
            return Ok(());
        }
        let fields = match self.fields(columns, bytes) {
            Err(RowError::Fatal(e)) => return Err(e.with_line(line)),
            Err(RowError::Reject(why)) if header == CopyHeader::Match => {
                return Err(CopyError::bad_format(format!("unreadable header line: {why}")));
            }
            Ok(names) if header == CopyHeader::Match => return check_header(columns, &names),
            Ok(values) => row_fields(columns, values),
            Err(RowError::Reject(why)) => Err(why),
        };
        out.push(InputRow { line, raw: String::from_utf8_lossy(bytes).into_owned(), fields });
        Ok(())
    }

    /// Splits a row into its fields: `None` is NULL, `Some` the decoded bytes.
    fn fields(&self, columns: &[Column], row: &[u8]) -> Result<Vec<Option<Vec<u8>>>, RowError> {
        match self.syntax {
            Syntax::Text { delimiter } => text_fields(row, delimiter, &self.null),
            Syntax::Csv { delimiter, quote, escape } => csv_fields(columns, row, delimiter, quote, escape, &self.null),
        }
    }
}

/// Text format: fields of one row, escapes decoded (PostgreSQL's
/// CopyReadAttributesText). A field is NULL when its raw text, before
/// decoding, is the NULL string: `\N` is null, `\\N` is the text `\N`.
fn text_fields(row: &[u8], delimiter: u8, null: &[u8]) -> Result<Vec<Option<Vec<u8>>>, RowError> {
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        let mut value = Vec::new();
        let mut more = false;
        while let Some(&b) = row.get(i) {
            i += 1;
            if b == delimiter {
                more = true;
                break;
            }
            match b {
                b'\r' => {
                    return Err(RowError::Reject("literal carriage return found in data (write it as \\r)".into()));
                }
                b'\\' => {
                    let Some(&e) = row.get(i) else {
                        return Err(RowError::Reject("the data ends with a lone backslash".into()));
                    };
                    i += 1;
                    let decoded = match e {
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'v' => 0x0b,
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match row.get(i) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            (v & 0xff) as u8
                        }
                        b'x' => match row.get(i).and_then(|&d| hex_digit(d)) {
                            Some(high) => {
                                i += 1;
                                match row.get(i).and_then(|&d| hex_digit(d)) {
                                    Some(low) => {
                                        i += 1;
                                        high * 16 + low
                                    }
                                    None => high,
                                }
                            }
                            None => b'x',
                        },
                        b'.' => {
                            return Err(RowError::Fatal(CopyError::bad_format(
                                "end-of-copy marker corrupt: \\. must be alone on its line",
                            )));
                        }
                        other => other,
                    };
                    value.push(decoded);
                }
                _ => value.push(b),
            }
        }
        let raw = &row[start..if more { i - 1 } else { i }];
        fields.push(if raw == null { None } else { Some(value) });
        if !more {
            return Ok(fields);
        }
    }
}

fn hex_digit(d: u8) -> Option<u8> {
    (d as char).to_digit(16).map(|v| v as u8)
}

/// CSV format: fields of one row, quotes removed (PostgreSQL's
/// CopyReadAttributesCSV). An unquoted field equal to the NULL string is
/// NULL unless its column is FORCE_NOT_NULL; a quoted one is NULL only if its
/// column is FORCE_NULL.
fn csv_fields(
    columns: &[Column],
    row: &[u8],
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: &[u8],
) -> Result<Vec<Option<Vec<u8>>>, RowError> {
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        let mut value = Vec::new();
        let (mut quoted, mut more) = (false, false);
        'field: loop {
            loop {
                let Some(&b) = row.get(i) else { break 'field };
                i += 1;
                if b == delimiter {
                    more = true;
                    break 'field;
                }
                if b == quote {
                    quoted = true;
                    break;
                }
                if b == b'\r' {
                    return Err(RowError::Reject("unquoted carriage return found in data (quote the field)".into()));
                }
                value.push(b);
            }
            loop {
                let Some(&b) = row.get(i) else {
                    return Err(RowError::Reject("unterminated CSV quoted field".into()));
                };
                i += 1;
                if b == escape
                    && let Some(&next) = row.get(i)
                    && (next == escape || next == quote)
                {
                    value.push(next);
                    i += 1;
                    continue;
                }
                if b == quote {
                    break;
                }
                value.push(b);
            }
        }
        let raw = &row[start..if more { i - 1 } else { i }];
        let column = columns.get(fields.len());
        let field = if !quoted && raw == null {
            column.is_some_and(|c| c.force_not_null).then_some(value)
        } else if column.is_some_and(|c| c.force_null) && value == null {
            None
        } else {
            Some(value)
        };
        fields.push(field);
        if !more {
            return Ok(fields);
        }
    }
}

/// HEADER MATCH: the header line names the target columns, in order.
fn check_header(columns: &[Column], names: &[Option<Vec<u8>>]) -> Result<(), CopyError> {
    if names.len() != columns.len() {
        return Err(CopyError::bad_format(format!(
            "wrong number of fields in header line: got {}, expected {}",
            names.len(),
            columns.len()
        )));
    }
    for (n, (name, column)) in names.iter().zip(columns).enumerate() {
        match name {
            None => {
                return Err(CopyError::bad_format(format!(
                    "column name mismatch in header line field {}: got null value, expected \"{}\"",
                    n + 1,
                    column.name
                )));
            }
            Some(name) if name.as_slice() != column.name.as_bytes() => {
                return Err(CopyError::bad_format(format!(
                    "column name mismatch in header line field {}: got \"{}\", expected \"{}\"",
                    n + 1,
                    String::from_utf8_lossy(name),
                    column.name
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Text/CSV fields → the row's values, or why the row is rejected.
fn row_fields(columns: &[Column], values: Vec<Option<Vec<u8>>>) -> Result<RawRow, String> {
    check_field_count(columns, values.len())?;
    let mut row = RawRow::new();
    for (column, value) in columns.iter().zip(values) {
        let value = match value {
            None => RawValue::Null,
            Some(bytes) => {
                let text = utf8_text(bytes).map_err(|why| format!("column {}: {why}", column.name))?;
                text_value(&column.ty, text).map_err(|why| format!("column {}: {why}", column.name))?
            }
        };
        row.insert(column.name.clone(), value);
    }
    Ok(row)
}

fn check_field_count(columns: &[Column], got: usize) -> Result<(), String> {
    let want = columns.len();
    if got < want {
        let missing = columns.get(got).map_or("", |c| c.name.as_str());
        return Err(format!("row has {got} fields, expected {want}: missing data for column \"{missing}\""));
    }
    if got > want {
        return Err(format!("row has {got} fields, expected {want}: extra data after the last expected column"));
    }
    Ok(())
}

/// Bytes of a text value: UTF-8 without NUL, as PostgreSQL's text types.
fn utf8_text(bytes: Vec<u8>) -> Result<String, String> {
    let text = String::from_utf8(bytes).map_err(|e| {
        let bad = e.as_bytes().get(e.utf8_error().valid_up_to()).copied().unwrap_or_default();
        format!("invalid byte sequence for encoding UTF8 (byte 0x{bad:02x})")
    })?;
    if text.contains('\0') {
        return Err("invalid byte sequence for encoding UTF8 (byte 0x00: text cannot hold NUL)".into());
    }
    Ok(text)
}

/// Where the binary decoder is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum BinaryState {
    #[default]
    Header,
    /// Skipping the header extension area: this many bytes are left.
    Extension(usize),
    Tuples,
    /// After the trailer (field count −1): no data may follow.
    Trailer,
}

/// Binary format: header, then tuples of length-prefixed fields.
#[derive(Debug, Default)]
struct BinaryDecoder {
    /// Bytes received but not decoded yet (a header or tuple cut by a chunk end).
    buf: Vec<u8>,
    state: BinaryState,
    tuples: u64,
}

impl BinaryDecoder {
    fn push(&mut self, columns: &[Column], chunk: &[u8], out: &mut Vec<InputRow>) -> Result<(), CopyError> {
        if self.buf.is_empty() {
            let used = self.decode(columns, chunk, out)?;
            self.buf.extend_from_slice(&chunk[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(chunk);
            let used = self.decode(columns, &buf, out)?;
            buf.drain(..used);
            self.buf = buf;
        }
        Ok(())
    }

    /// Decodes what `data` holds completely; returns how many bytes it used.
    fn decode(&mut self, columns: &[Column], data: &[u8], out: &mut Vec<InputRow>) -> Result<usize, CopyError> {
        let mut at = 0;
        loop {
            let rest = &data[at..];
            match self.state {
                BinaryState::Header => {
                    if !BINARY_SIGNATURE.starts_with(&rest[..rest.len().min(BINARY_SIGNATURE.len())]) {
                        return Err(CopyError::bad_format("COPY file signature not recognized"));
                    }
                    let Some(header) = rest.first_chunk::<BINARY_HEADER_LEN>() else { return Ok(at) };
                    let flags = i32::from_be_bytes([header[11], header[12], header[13], header[14]]);
                    if flags & (1 << 16) != 0 {
                        return Err(CopyError::bad_format("invalid COPY file header (WITH OIDS)"));
                    }
                    if flags >> 16 != 0 {
                        return Err(CopyError::bad_format("unrecognized critical flags in COPY file header"));
                    }
                    let extension = i32::from_be_bytes([header[15], header[16], header[17], header[18]]);
                    let extension = usize::try_from(extension)
                        .map_err(|_| CopyError::bad_format("invalid COPY file header (negative extension length)"))?;
                    at += BINARY_HEADER_LEN;
                    self.state = BinaryState::Extension(extension);
                }
                BinaryState::Extension(left) => {
                    let skip = left.min(rest.len());
                    at += skip;
                    if skip < left {
                        self.state = BinaryState::Extension(left - skip);
                        return Ok(at);
                    }
                    self.state = BinaryState::Tuples;
                }
                BinaryState::Tuples => match next_tuple(rest)? {
                    None => return Ok(at),
                    Some((used, Tuple::Trailer)) => {
                        at += used;
                        self.state = BinaryState::Trailer;
                    }
                    Some((used, Tuple::Fields(fields))) => {
                        at += used;
                        self.tuples += 1;
                        out.push(binary_row(columns, self.tuples, &fields));
                    }
                },
                BinaryState::Trailer => {
                    if !rest.is_empty() {
                        return Err(CopyError::bad_format("received copy data after EOF marker"));
                    }
                    return Ok(at);
                }
            }
        }
    }

    fn finish(&mut self) -> Result<(), CopyError> {
        match self.state {
            BinaryState::Header => Err(CopyError::bad_format(if self.buf.len() < BINARY_SIGNATURE.len() {
                "COPY file signature not recognized (the data ends before it)"
            } else {
                "invalid COPY file header (the data ends inside it)"
            })),
            BinaryState::Extension(_) => Err(CopyError::bad_format("invalid COPY file header (wrong length)")),
            // The trailer may be left out, as long as the data ends between tuples.
            BinaryState::Tuples if !self.buf.is_empty() => Err(CopyError::bad_format(format!(
                "unexpected EOF in COPY data: tuple {} is cut short",
                self.tuples + 1
            ))),
            BinaryState::Tuples | BinaryState::Trailer => Ok(()),
        }
    }
}

/// One binary tuple: its fields (`None` for NULL), or the trailer.
enum Tuple<'a> {
    Fields(Vec<Option<&'a [u8]>>),
    Trailer,
}

/// The tuple at the start of `data` and the bytes it takes; `None` while it
/// is incomplete.
fn next_tuple(data: &[u8]) -> Result<Option<(usize, Tuple<'_>)>, CopyError> {
    let Some(count) = data.first_chunk::<2>() else { return Ok(None) };
    let count = i16::from_be_bytes(*count);
    if count == -1 {
        return Ok(Some((2, Tuple::Trailer)));
    }
    let count = usize::try_from(count)
        .map_err(|_| CopyError::bad_format(format!("invalid field count {count} in binary COPY tuple")))?;
    let mut fields = Vec::with_capacity(count);
    let mut rest = Bytes(&data[2..]);
    for _ in 0..count {
        let Some(len) = rest.i32() else { return Ok(None) };
        if len == -1 {
            fields.push(None);
            continue;
        }
        let len = usize::try_from(len)
            .map_err(|_| CopyError::bad_format(format!("invalid field size {len} in binary COPY data")))?;
        let Some(value) = rest.take(len) else { return Ok(None) };
        fields.push(Some(value));
    }
    Ok(Some((data.len() - rest.0.len(), Tuple::Fields(fields))))
}

/// Reads big-endian values off the front of a byte slice.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn i32(&mut self) -> Option<i32> {
        let (head, tail) = self.0.split_first_chunk::<4>()?;
        self.0 = tail;
        Some(i32::from_be_bytes(*head))
    }
}

/// One binary tuple as an input row; `raw` is the row as JSON, with a value
/// that could not be decoded shown as `\x` and its bytes in hex.
fn binary_row(columns: &[Column], line: u64, fields: &[Option<&[u8]>]) -> InputRow {
    let shown = |b: Option<&[u8]>| b.map_or(RawValue::Null, |b| RawValue::Text(hex(b)));
    if let Err(why) = check_field_count(columns, fields.len()) {
        let row: RawRow = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (columns.get(i).map_or_else(|| format!("field {}", i + 1), |c| c.name.clone()), shown(*f)))
            .collect();
        return InputRow { line, raw: raw_row_json(&row), fields: Err(why) };
    }
    let mut row = RawRow::new();
    let mut problem = None;
    for (column, field) in columns.iter().zip(fields) {
        let value = binary_value(column, *field).unwrap_or_else(|why| {
            problem.get_or_insert(format!("column {}: {why}", column.name));
            shown(*field)
        });
        row.insert(column.name.clone(), value);
    }
    let raw = raw_row_json(&row);
    InputRow { line, raw, fields: problem.map_or(Ok(row), Err) }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::from("\\x"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A value in its column type's binary send format.
fn binary_value(column: &Column, bytes: Option<&[u8]>) -> Result<RawValue, String> {
    let Some(bytes) = bytes else { return Ok(RawValue::Null) };
    match &column.ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            // jsonb's binary form is a version byte (1) and the JSON text; JSON
            // text never starts with byte 1, so plain text/json is told apart.
            let bytes = match bytes {
                [1, json @ ..] if column.json => json,
                _ => bytes,
            };
            utf8_text(bytes.to_vec()).map(RawValue::Text)
        }
        DataType::Timestamp(..) => {
            let us: [u8; 8] = bytes
                .try_into()
                .map_err(|_| format!("a binary timestamptz is 8 bytes (µs since 2000-01-01), got {}", bytes.len()))?;
            match i64::from_be_bytes(us) {
                i64::MAX | i64::MIN => Err("infinite timestamps are not accepted".into()),
                us => {
                    us.checked_add(PG_EPOCH_US).map(RawValue::Timestamp).ok_or_else(|| "timestamp out of range".into())
                }
            }
        }
        DataType::Int16 | DataType::Int32 | DataType::Int64 => match *bytes {
            [a, b] => Ok(RawValue::Int(i16::from_be_bytes([a, b]).into())),
            [a, b, c, d] => Ok(RawValue::Int(i32::from_be_bytes([a, b, c, d]).into())),
            [a, b, c, d, e, f, g, h] => Ok(RawValue::Int(i64::from_be_bytes([a, b, c, d, e, f, g, h]))),
            _ => Err(format!("a binary integer is 2, 4 or 8 bytes (int2, int4, int8), got {}", bytes.len())),
        },
        DataType::Boolean => match *bytes {
            [b] => Ok(RawValue::Bool(b != 0)),
            _ => Err(format!("a binary boolean is 1 byte, got {}", bytes.len())),
        },
        DataType::List(_) | DataType::LargeList(_) => binary_text_array(bytes).map(RawValue::List),
        other => Err(format!("binary COPY into a column of type {other} is not supported")),
    }
}

/// A one-dimensional `text[]` in the array binary format: dimensions, a
/// has-nulls flag, the element type, each dimension's size and lower bound,
/// then length-prefixed elements.
fn binary_text_array(bytes: &[u8]) -> Result<Vec<RawValue>, String> {
    const CUT: &str = "the binary array is cut short";
    let mut rest = Bytes(bytes);
    let int = |rest: &mut Bytes| rest.i32().ok_or(CUT);
    let dims = int(&mut rest)?;
    let flags = int(&mut rest)?;
    let element_type = int(&mut rest)?;
    if !(0..=1).contains(&flags) {
        return Err(format!("invalid flags {flags} in a binary array"));
    }
    let len = match dims {
        0 => 0,
        1 => {
            if !TEXT_OIDS.contains(&element_type) {
                return Err(format!("an array of type oid {element_type}; send text[]"));
            }
            let len = int(&mut rest)?;
            let _lower_bound = int(&mut rest)?;
            usize::try_from(len).map_err(|_| format!("invalid array size {len}"))?
        }
        n => return Err(format!("a {n}-dimensional array; only one-dimensional arrays are accepted")),
    };
    // Sized by the bytes at hand, not by a length the data claims.
    let mut items = Vec::with_capacity(len.min(rest.0.len() / 4));
    for _ in 0..len {
        let size = int(&mut rest)?;
        if size == -1 {
            items.push(RawValue::Null);
            continue;
        }
        let size = usize::try_from(size).map_err(|_| format!("invalid array element size {size}"))?;
        let element = rest.take(size).ok_or(CUT)?;
        items.push(RawValue::Text(utf8_text(element.to_vec())?));
    }
    if !rest.0.is_empty() {
        return Err(format!("{} bytes after the end of the binary array", rest.0.len()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(format: CopyFormat) -> CopyOptions {
        CopyOptions { format, ..Default::default() }
    }
    fn names(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|c| c.to_string()).collect()
    }
    fn t(s: &str) -> RawValue {
        RawValue::Text(s.into())
    }
    /// Decodes `data` pushed in the given chunks.
    fn decode_chunks<'a>(
        options: &CopyOptions,
        columns: &[&str],
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<InputRow>, CopyError> {
        let mut decoder = CopyDecoder::new(options, &names(columns))?;
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk, &mut out)?;
        }
        decoder.finish(&mut out)?;
        Ok(out)
    }
    fn decode(options: &CopyOptions, columns: &[&str], data: &[u8]) -> Result<Vec<InputRow>, CopyError> {
        decode_chunks(options, columns, [data])
    }
    fn values(rows: &[InputRow], column: &str) -> Vec<RawValue> {
        rows.iter()
            .map(|r| r.fields.as_ref().map_or_else(|e| t(&format!("rejected: {e}")), |f| f[column].clone()))
            .collect()
    }
    fn comparable(rows: &[InputRow]) -> Vec<(u64, String, std::result::Result<RawRow, String>)> {
        rows.iter().map(|r| (r.line, r.raw.clone(), r.fields.clone())).collect()
    }
    /// The rows of `data` are the same however it is split into chunks: in
    /// two at every offset, and byte by byte.
    fn assert_split_anywhere(options: &CopyOptions, columns: &[&str], data: &[u8]) {
        let whole = decode(options, columns, data).map(|r| comparable(&r));
        for at in 0..=data.len() {
            let (a, b) = data.split_at(at);
            let split = decode_chunks(options, columns, [a, b]).map(|r| comparable(&r));
            assert_eq!(split, whole, "split at {at}");
        }
        let bytewise = decode_chunks(options, columns, data.chunks(1)).map(|r| comparable(&r));
        assert_eq!(bytewise, whole, "byte by byte");
    }

    #[test]
    fn text_every_escape() {
        let data = b"\\b\n\\f\n\\n\n\\r\n\\t\n\\v\n\\\\\n\\101\n\\x41\n\\q\n\\\\n\n\\x4g\n\\1011\n\\xg\n\\303\\251\n\\x7e\\X\n";
        let rows = decode(&options(CopyFormat::Text), &["event_id"], data).unwrap();
        let want =
            ["\u{8}", "\u{c}", "\n", "\r", "\t", "\u{b}", "\\", "A", "A", "q", "\\n", "\u{4}g", "A1", "xg", "é", "~X"];
        assert_eq!(values(&rows, "event_id"), want.map(t));
        // `\\n` is an escaped backslash and an `n`: two characters.
        assert_eq!(values(&rows, "event_id")[10], RawValue::Text(['\\', 'n'].iter().collect()));
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), (1..=16).collect::<Vec<_>>());
        assert_eq!(rows[8].raw, "\\x41");
    }

    #[test]
    fn text_null_is_the_raw_field() {
        let rows = decode(&options(CopyFormat::Text), &["event_id", "team", "source"], b"\\N\ta\\Nb\t\\\\N\n").unwrap();
        assert_eq!(
            rows[0].fields.as_ref().unwrap(),
            &RawRow::from([
                ("event_id".into(), RawValue::Null),
                ("team".into(), t("aNb")),
                ("source".into(), t("\\N")),
            ])
        );
        // A custom delimiter and NULL string; `\N` is then an escaped N, an
        // escaped delimiter is data, an empty field is empty text.
        let custom =
            CopyOptions { delimiter: Some("|".into()), null: Some("NULL".into()), ..options(CopyFormat::Text) };
        let rows = decode(&custom, &["event_id", "team", "source", "service"], b"a\\|b|NULL|\\N|\n").unwrap();
        assert_eq!(values(&rows, "event_id"), [t("a|b")]);
        assert_eq!(values(&rows, "team"), [RawValue::Null]);
        assert_eq!(values(&rows, "source"), [t("N")]);
        assert_eq!(values(&rows, "service"), [t("")]);
        let empty_null = CopyOptions { null: Some(String::new()), ..options(CopyFormat::Text) };
        let rows = decode(&empty_null, &["event_id", "team"], b"a\t\n").unwrap();
        assert_eq!(values(&rows, "team"), [RawValue::Null]);
    }

    #[test]
    fn text_end_marker_crlf_and_line_breaks() {
        let text = options(CopyFormat::Text);
        let rows = decode(&text, &["event_id"], b"a\n\\.\nignored\n").unwrap();
        assert_eq!(values(&rows, "event_id"), [t("a")]);
        let rows = decode(&text, &["event_id"], b"a\r\n\\.\r\nignored").unwrap();
        assert_eq!(values(&rows, "event_id"), [t("a")]);
        let rows = decode(&text, &["event_id"], b"a\n\\.").unwrap();
        assert_eq!(rows.len(), 1);
        let err = decode(&text, &["event_id"], b"a\nb\\.\n").unwrap_err();
        assert_eq!(err.kind, CopyErrorKind::BadFormat);
        assert!(err.message.contains("end-of-copy marker") && err.message.contains("line 2"), "{err}");
        // CRLF rows; a last row without a line break; a backslash makes a
        // line break data; a bare carriage return rejects its row.
        let rows = decode(&text, &["event_id", "team"], b"a\tb\r\nc\\\r\td\r\ne\\\nf\tg\nh\ri\tj\nk\tl").unwrap();
        assert_eq!(values(&rows, "event_id")[..3], [t("a"), t("c\r"), t("e\nf")]);
        assert_eq!(values(&rows, "team")[..3], [t("b"), t("d"), t("g")]);
        assert_eq!(rows[3].fields.as_ref().unwrap_err(), "literal carriage return found in data (write it as \\r)");
        assert_eq!(values(&rows, "team")[4], t("l"));
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 3, 5, 6]);
        assert_eq!(rows[2].raw, "e\\\nf\tg");
        let rows = decode(&text, &["event_id"], b"a\\").unwrap();
        assert_eq!(rows[0].fields.as_ref().unwrap_err(), "the data ends with a lone backslash");
    }

    #[test]
    fn text_bad_rows_are_rejected_alone() {
        let data = b"a\nb\tc\td\n\xff\tx\n\\0\tx\n\\377\tx\nok\tx\n";
        let rows = decode(&options(CopyFormat::Text), &["event_id", "team"], data).unwrap();
        let reasons: Vec<_> = rows.iter().map(|r| r.fields.as_ref().err().cloned().unwrap_or_default()).collect();
        assert_eq!(reasons[0], "row has 1 fields, expected 2: missing data for column \"team\"");
        assert_eq!(reasons[1], "row has 3 fields, expected 2: extra data after the last expected column");
        assert_eq!(reasons[2], "column event_id: invalid byte sequence for encoding UTF8 (byte 0xff)");
        assert!(reasons[3].contains("NUL"), "{}", reasons[3]);
        assert_eq!(reasons[4], "column event_id: invalid byte sequence for encoding UTF8 (byte 0xff)");
        assert_eq!(values(&rows[5..], "event_id"), [t("ok")]);
        assert_eq!(rows[2].raw, "\u{fffd}\tx");
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn text_change_ids_array_literal() {
        let rows =
            decode(&options(CopyFormat::Text), &["change_ids"], b"{a,\"c d\",NULL}\n{}\na;b\n{\\\\\"x\n{a\n").unwrap();
        assert_eq!(
            values(&rows, "change_ids")[..3],
            [RawValue::List(vec![t("a"), t("c d"), RawValue::Null]), RawValue::List(vec![]), t("a;b")]
        );
        // `{\\"x` is the array literal `{\"x` once COPY's escapes are decoded.
        assert!(
            rows[3].fields.as_ref().unwrap_err().starts_with("column change_ids: malformed array literal '{\\\"x'")
        );
        assert!(rows[4].fields.as_ref().unwrap_err().contains("no closing '}'"));
    }

    #[test]
    fn text_splits_anywhere() {
        let data = b"a\\tb\t\\101\\x4\t\\N\r\n\\\\N\t\\\n\t{x,\"y z\"}\n\xc3\xa9\t\\303\\251\t\\.\\\n\\.\r\nafter\n";
        let rows = decode(&options(CopyFormat::Text), &["event_id", "team", "change_ids"], &data[..]).unwrap_err();
        assert!(rows.message.contains("end-of-copy marker"));
        let data = b"a\\tb\t\\101\\x4\t\\N\r\n\\\\N\t\\\n\t{x,\"y z\"}\n\xc3\xa9\t\\303\\251\tz\n\\.\r\nafter\n";
        let rows = decode(&options(CopyFormat::Text), &["event_id", "team", "change_ids"], data).unwrap();
        assert_eq!(values(&rows, "event_id"), [t("a\tb"), t("\\N"), t("é")]);
        assert_eq!(values(&rows, "team"), [t("A\u{4}"), t("\n"), t("é")]);
        assert_eq!(values(&rows, "change_ids")[1], RawValue::List(vec![t("x"), t("y z")]));
        assert_split_anywhere(&options(CopyFormat::Text), &["event_id", "team", "change_ids"], data);
        let header = CopyOptions { header: CopyHeader::Skip, ..options(CopyFormat::Text) };
        assert_split_anywhere(&header, &["event_id", "team", "change_ids"], data);
    }

    #[test]
    fn csv_nulls_and_quotes() {
        let csv = options(CopyFormat::Csv);
        let columns = ["event_id", "team", "source", "service", "commit_sha"];
        let rows = decode(&csv, &columns, b"\\N,\\\\N,\"\\N\",,\"\"\n").unwrap();
        let row = rows[0].fields.as_ref().unwrap();
        assert_eq!(columns.map(|c| row[c].clone()), [t("\\N"), t("\\\\N"), t("\\N"), RawValue::Null, t("")]);
        let null = CopyOptions { null: Some("\\N".into()), ..options(CopyFormat::Csv) };
        let rows = decode(&null, &columns, b"\\N,\\\\N,\"\\N\",,\"\"\n").unwrap();
        let row = rows[0].fields.as_ref().unwrap();
        assert_eq!(columns.map(|c| row[c].clone()), [RawValue::Null, t("\\\\N"), t("\\N"), t(""), t("")]);
        // Doubled quotes; quotes mid-field; spaces kept; a carriage return inside quotes is data.
        let rows = decode(&csv, &["event_id", "team"], b"\"a\"\"b\",x\"y,z\"w\r\n \" c \" ,\"d\re\"\n").unwrap();
        assert_eq!(values(&rows, "event_id"), [t("a\"b"), t("  c  ")]);
        assert_eq!(values(&rows, "team"), [t("xy,zw"), t("d\re")]);
        let rows = decode(&csv, &["event_id", "team"], b"a,b\rc\n").unwrap();
        assert_eq!(rows[0].fields.as_ref().unwrap_err(), "unquoted carriage return found in data (quote the field)");
        // ESCAPE other than QUOTE: it escapes a quote or itself, inside quotes only.
        let escape = CopyOptions { escape: Some("\\".into()), ..options(CopyFormat::Csv) };
        let rows = decode(&escape, &["event_id", "team"], b"\"a\\\"b\\\\c\",\"d\\x\"\n\"e\\\"\nf\",a\\b\n").unwrap();
        assert_eq!(values(&rows, "event_id"), [t("a\"b\\c"), t("e\"\nf")]);
        assert_eq!(values(&rows, "team"), [t("d\\x"), t("a\\b")]);
        assert_eq!(rows[1].line, 2);
    }

    #[test]
    fn csv_multi_line_fields_with_a_custom_delimiter() {
        let pipe = CopyOptions { delimiter: Some("|".into()), ..options(CopyFormat::Csv) };
        let data = b"a|\"x\ny|z\"|b\nc|\"\"\"\r\n\"|d\n\\.\n";
        let rows = decode(&pipe, &["event_id", "team", "source"], data).unwrap();
        assert_eq!(values(&rows, "event_id"), [t("a"), t("c")]);
        assert_eq!(values(&rows, "team"), [t("x\ny|z"), t("\"\r\n")]);
        assert_eq!(values(&rows, "source"), [t("b"), t("d")]);
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(rows[0].raw, "a|\"x\ny|z\"|b");
        assert_split_anywhere(&pipe, &["event_id", "team", "source"], data);
        // A quoted `\.` is data; an unterminated quote is an error at the end.
        let rows = decode(&pipe, &["event_id"], b"\"\\.\"\n").unwrap();
        assert_eq!(values(&rows, "event_id"), [t("\\.")]);
        let err = decode(&pipe, &["event_id"], b"a\n\"b\nc\n").unwrap_err();
        assert_eq!(err.kind, CopyErrorKind::BadFormat);
        assert_eq!(err.message, "unterminated CSV quoted field in the row starting at line 2");
    }

    #[test]
    fn csv_header_skip_and_match_and_force() {
        let columns = ["event_id", "team"];
        let skip = CopyOptions { header: CopyHeader::Skip, ..options(CopyFormat::Csv) };
        let rows = decode(&skip, &columns, b"anything,at all,really\na,b\nc,\n").unwrap();
        assert_eq!(values(&rows, "team"), [t("b"), RawValue::Null]);
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3]);
        let check = CopyOptions { header: CopyHeader::Match, ..options(CopyFormat::Csv) };
        assert_eq!(decode(&check, &columns, b"event_id,\"team\"\na,b\n").unwrap().len(), 1);
        let err = decode(&check, &columns, b"event_id,tema\na,b\n").unwrap_err();
        assert_eq!(err.message, "column name mismatch in header line field 2: got \"tema\", expected \"team\"");
        let err = decode(&check, &columns, b"event_id\n").unwrap_err();
        assert_eq!(err.message, "wrong number of fields in header line: got 1, expected 2");
        let err = decode(&check, &columns, b"event_id,\n").unwrap_err();
        assert!(err.message.contains("got null value"), "{err}");
        assert_eq!(err.kind, CopyErrorKind::BadFormat);

        let not_null =
            CopyOptions { force_not_null: Some(CopyColumns::Named(vec!["team".into()])), ..options(CopyFormat::Csv) };
        let rows = decode(&not_null, &columns, b",\n").unwrap();
        assert_eq!(
            rows[0].fields.as_ref().unwrap(),
            &RawRow::from([("event_id".into(), RawValue::Null), ("team".into(), t(""))])
        );
        let null = CopyOptions { force_null: Some(CopyColumns::All), ..options(CopyFormat::Csv) };
        let rows = decode(&null, &columns, b"\"\",\"x\"\n").unwrap();
        assert_eq!(values(&rows, "event_id"), [RawValue::Null]);
        assert_eq!(values(&rows, "team"), [t("x")]);
    }

    #[test]
    fn options_are_checked() {
        use CopyErrorKind::*;
        let kind = |o: CopyOptions, columns: &[&str]| CopyDecoder::new(&o, &names(columns)).err().map(|e| e.kind);
        let binary = || options(CopyFormat::Binary);
        let text = || options(CopyFormat::Text);
        let csv = || options(CopyFormat::Csv);
        assert_eq!(kind(CopyOptions { delimiter: Some(",".into()), ..binary() }, &[]), Some(ConflictingOptions));
        assert_eq!(kind(CopyOptions { header: CopyHeader::Skip, ..binary() }, &[]), Some(ConflictingOptions));
        assert_eq!(kind(CopyOptions { quote: Some("'".into()), ..text() }, &[]), Some(Unsupported));
        assert_eq!(kind(CopyOptions { force_null: Some(CopyColumns::All), ..binary() }, &[]), Some(Unsupported));
        assert_eq!(kind(CopyOptions { delimiter: Some(",,".into()), ..csv() }, &[]), Some(Unsupported));
        assert_eq!(kind(CopyOptions { delimiter: Some("é".into()), ..csv() }, &[]), Some(Unsupported));
        assert_eq!(kind(CopyOptions { delimiter: Some("\n".into()), ..csv() }, &[]), Some(InvalidOption));
        assert_eq!(kind(CopyOptions { delimiter: Some("n".into()), ..text() }, &[]), Some(InvalidOption));
        assert_eq!(kind(CopyOptions { delimiter: Some("n".into()), ..csv() }, &[]), None);
        assert_eq!(kind(CopyOptions { delimiter: Some("\"".into()), ..csv() }, &[]), Some(InvalidOption));
        assert_eq!(kind(CopyOptions { null: Some("a,b".into()), ..csv() }, &[]), Some(InvalidOption));
        assert_eq!(kind(CopyOptions { encoding: Some("LATIN1".into()), ..csv() }, &[]), Some(Unsupported));
        assert_eq!(kind(CopyOptions { encoding: Some("utf-8".into()), ..csv() }, &[]), None);
        let force = CopyOptions { force_null: Some(CopyColumns::Named(vec!["team".into()])), ..csv() };
        assert_eq!(kind(force, &["event_id"]), Some(InvalidColumnReference));
        assert_eq!(kind(text(), &["event_id", "nope"]), Some(UndefinedColumn));
        assert_eq!(kind(text(), &["team", "team"]), Some(DuplicateColumn));
        assert_eq!(kind(text(), &["ingested_at"]), None);
    }

    /// Binary COPY data: header (with a 3-byte extension), tuples, trailer.
    fn binary(tuples: &[Vec<Option<Vec<u8>>>], trailer: bool) -> Vec<u8> {
        let mut b = BINARY_SIGNATURE.to_vec();
        b.extend(0i32.to_be_bytes());
        b.extend(3i32.to_be_bytes());
        b.extend([7, 7, 7]);
        for tuple in tuples {
            b.extend((tuple.len() as i16).to_be_bytes());
            for field in tuple {
                match field {
                    None => b.extend((-1i32).to_be_bytes()),
                    Some(v) => {
                        b.extend((v.len() as i32).to_be_bytes());
                        b.extend(v);
                    }
                }
            }
        }
        if trailer {
            b.extend((-1i16).to_be_bytes());
        }
        b
    }
    fn text_array(items: &[Option<&str>]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [1, i32::from(items.contains(&None)), 25, items.len() as i32, 1] {
            b.extend(v.to_be_bytes());
        }
        for item in items {
            match item {
                None => b.extend((-1i32).to_be_bytes()),
                Some(s) => {
                    b.extend((s.len() as i32).to_be_bytes());
                    b.extend(s.as_bytes());
                }
            }
        }
        b
    }
    fn s(v: &str) -> Option<Vec<u8>> {
        Some(v.as_bytes().to_vec())
    }
    const BINARY_COLUMNS: [&str; 8] = [
        "event_id",
        "event_type",
        "occurred_at",
        "service",
        "commit_sha",
        "change_ids",
        "attributes",
        "schema_version",
    ];
    /// 2026-03-02T09:00:00Z.
    const INSTANT_US: i64 = 1_772_442_000_000_000;

    fn binary_sample() -> Vec<u8> {
        let pg_time = (INSTANT_US - PG_EPOCH_US).to_be_bytes().to_vec();
        binary(
            &[
                vec![
                    s("b\t1\n\\é"),
                    s("commit"),
                    Some(pg_time.clone()),
                    s("svc"),
                    s("abc"),
                    Some(text_array(&[Some("a"), None, Some("c d")])),
                    Some([&[1u8][..], b"{\"k\": 1}"].concat()),
                    Some(1i16.to_be_bytes().to_vec()),
                ],
                vec![
                    s("b2"),
                    s("commit"),
                    Some(pg_time),
                    s("svc"),
                    s("abc"),
                    Some([0i32, 0, 25].iter().flat_map(|v| v.to_be_bytes()).collect()),
                    s("{\"k\": 2}"),
                    Some(1i64.to_be_bytes().to_vec()),
                ],
                vec![s("b3"), None, None, None, None, None, None, Some(1i32.to_be_bytes().to_vec())],
            ],
            true,
        )
    }

    #[test]
    fn binary_every_type() {
        let rows = decode(&options(CopyFormat::Binary), &BINARY_COLUMNS, &binary_sample()).unwrap();
        assert_eq!(rows.len(), 3);
        let first = rows[0].fields.as_ref().unwrap();
        assert_eq!(first["event_id"], t("b\t1\n\\é"));
        assert_eq!(first["occurred_at"], RawValue::Timestamp(INSTANT_US));
        assert_eq!(first["change_ids"], RawValue::List(vec![t("a"), RawValue::Null, t("c d")]));
        assert_eq!(first["attributes"], t("{\"k\": 1}"));
        assert_eq!(first["schema_version"], RawValue::Int(1));
        assert_eq!(rows[0].raw, raw_row_json(first));
        assert!(rows[0].raw.contains("\"occurred_at\":\"2026-03-02T09:00:00Z\""), "{}", rows[0].raw);
        let second = rows[1].fields.as_ref().unwrap();
        let event = crate::event::Event::from_raw(second).unwrap();
        assert_eq!((event.occurred_at, event.change_ids), (INSTANT_US, Some(vec![])));
        assert_eq!(second["change_ids"], RawValue::List(vec![]));
        assert_eq!(second["attributes"], t("{\"k\": 2}"));
        assert_eq!(second["schema_version"], RawValue::Int(1));
        let third = rows[2].fields.as_ref().unwrap();
        assert_eq!(third["event_type"], RawValue::Null);
        assert_eq!(third["schema_version"], RawValue::Int(1));
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 3]);
        assert_split_anywhere(&options(CopyFormat::Binary), &BINARY_COLUMNS, &binary_sample());
        // Without the trailer, data that ends between tuples is complete.
        let mut no_trailer = binary_sample();
        no_trailer.truncate(no_trailer.len() - 2);
        assert_eq!(decode(&options(CopyFormat::Binary), &BINARY_COLUMNS, &no_trailer).unwrap().len(), 3);
        // Booleans, for a schema that has them.
        let flag =
            Column { name: "f".into(), ty: DataType::Boolean, json: false, force_null: false, force_not_null: false };
        assert_eq!(binary_value(&flag, Some(&[1])), Ok(RawValue::Bool(true)));
        assert_eq!(binary_value(&flag, Some(&[0])), Ok(RawValue::Bool(false)));
        assert!(binary_value(&flag, Some(&[0, 1])).is_err());
    }

    #[test]
    fn binary_bad_values_reject_their_row() {
        let columns = ["event_id", "occurred_at", "change_ids"];
        let data = binary(
            &[
                vec![s("short time"), Some(vec![0, 0, 0, 1]), None],
                vec![s("two fields"), None],
                vec![s("cut array"), None, Some(text_array(&[Some("abc")])[..25].to_vec())],
                vec![s("int array"), None, Some([1i32, 0, 23, 0, 1].iter().flat_map(|v| v.to_be_bytes()).collect())],
                vec![Some(vec![0xff]), Some(i64::MAX.to_be_bytes().to_vec()), None],
                vec![s("fine"), Some(0i64.to_be_bytes().to_vec()), None],
            ],
            true,
        );
        let rows = decode(&options(CopyFormat::Binary), &columns, &data).unwrap();
        let reasons: Vec<_> = rows.iter().map(|r| r.fields.as_ref().err().cloned().unwrap_or_default()).collect();
        assert_eq!(reasons[0], "column occurred_at: a binary timestamptz is 8 bytes (µs since 2000-01-01), got 4");
        assert_eq!(rows[0].raw, r#"{"change_ids":null,"event_id":"short time","occurred_at":"\\x00000001"}"#);
        assert_eq!(reasons[1], "row has 2 fields, expected 3: missing data for column \"change_ids\"");
        assert_eq!(reasons[2], "column change_ids: the binary array is cut short");
        assert_eq!(reasons[3], "column change_ids: an array of type oid 23; send text[]");
        assert_eq!(reasons[4], "column event_id: invalid byte sequence for encoding UTF8 (byte 0xff)");
        assert_eq!(reasons[5], "");
        assert_eq!(values(&rows[5..], "occurred_at"), [RawValue::Timestamp(PG_EPOCH_US)]);
    }

    #[test]
    fn malformed_binary_is_an_error_never_a_panic() {
        let binary_options = options(CopyFormat::Binary);
        let err = |data: &[u8]| decode(&binary_options, &["event_id"], data).unwrap_err();
        // A wrong signature is seen in its first bytes, before the rest arrives.
        let mut decoder = CopyDecoder::new(&binary_options, &names(&["event_id"])).unwrap();
        assert!(decoder.push(b"event_id\t", &mut Vec::new()).is_err());
        assert_eq!(err(b"").message, "COPY file signature not recognized (the data ends before it)");
        let header = binary(&[], false);
        let with_oids = [&header[..11], &(1i32 << 16).to_be_bytes(), &header[15..]].concat();
        assert_eq!(err(&with_oids).message, "invalid COPY file header (WITH OIDS)");
        assert_eq!(err(&header[..15]).message, "invalid COPY file header (the data ends inside it)");
        assert_eq!(err(&header[..20]).message, "invalid COPY file header (wrong length)");
        let truncated = [&header[..], &1i16.to_be_bytes(), &10i32.to_be_bytes(), b"abc"].concat();
        assert_eq!(err(&truncated).message, "unexpected EOF in COPY data: tuple 1 is cut short");
        let negative = [&header[..], &1i16.to_be_bytes(), &(-2i32).to_be_bytes()].concat();
        assert_eq!(err(&negative).message, "invalid field size -2 in binary COPY data");
        let bad_count = [&header[..], &(-3i16).to_be_bytes()].concat();
        assert_eq!(err(&bad_count).message, "invalid field count -3 in binary COPY tuple");
        let after = [&binary(&[vec![s("a")]], true)[..], b"x"].concat();
        assert_eq!(err(&after).message, "received copy data after EOF marker");
        assert_eq!(err(&after).kind, CopyErrorKind::BadFormat);
        // Every prefix, and every byte corrupted: rows or an error, no panic.
        let sample = binary_sample();
        for end in 0..sample.len() {
            let _ = decode(&binary_options, &BINARY_COLUMNS, &sample[..end]);
        }
        for at in 0..sample.len() {
            for flip in [0xff, 0x80, 0x01] {
                let mut corrupt = sample.clone();
                corrupt[at] ^= flip;
                let _ = decode(&binary_options, &BINARY_COLUMNS, &corrupt);
            }
        }
    }
}
