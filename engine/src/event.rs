//! The canonical event (SPEC §1): its Arrow schema, the validated [`Event`],
//! and the one function that turns an untyped input row into an `Event` or a
//! reason a person can act on. Every input path (NDJSON, CSV, Parquet,
//! INSERT, COPY) goes through [`Event::from_raw`].

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDateTime};

/// Newest `schema_version` this build understands; older ones are upcast on read.
pub const CURRENT_SCHEMA_VERSION: i16 = 1;
/// Longest accepted `event_id`, in bytes (SPEC §1).
pub const MAX_EVENT_ID_BYTES: usize = 256;
/// Longest accepted value of every other text field (`service`, ids, names)
/// and of each id in `change_ids`, in bytes: far more than any real id or
/// name, small enough that one row cannot bloat the log or a query.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest accepted `attributes` (its JSON text), in bytes.
pub const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;
/// Most bytes all the ids of one `change_ids` list may take together
/// (about 6,000 commit SHAs).
pub const MAX_CHANGE_IDS_BYTES: usize = 256 * 1024;
/// How much of a rejected row's input `rejected_events.raw` keeps, in bytes;
/// a longer row (one rejected for its size) is cut there and marked.
pub const MAX_REJECTED_RAW_BYTES: usize = 1024 * 1024;
/// The instants `occurred_at` may take, µs UTC: 0000-01-01T00:00:00Z to
/// 9999-12-31T23:59:59.999999Z, what RFC 3339 can write. Any difference of
/// two of them fits an `i64` of µs many times over.
pub const OCCURRED_AT_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200_000_000..=253_402_300_799_999_999;
/// Timezone of every timestamp column.
pub const UTC: &str = "UTC";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Commit,
    DeploymentStarted,
    DeploymentSucceeded,
    DeploymentFailed,
    DeploymentRolledBack,
    IncidentOpened,
    IncidentResolved,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::Commit,
        EventType::DeploymentStarted,
        EventType::DeploymentSucceeded,
        EventType::DeploymentFailed,
        EventType::DeploymentRolledBack,
        EventType::IncidentOpened,
        EventType::IncidentResolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Commit => "commit",
            EventType::DeploymentStarted => "deployment_started",
            EventType::DeploymentSucceeded => "deployment_succeeded",
            EventType::DeploymentFailed => "deployment_failed",
            EventType::DeploymentRolledBack => "deployment_rolled_back",
            EventType::IncidentOpened => "incident_opened",
            EventType::IncidentResolved => "incident_resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_deployment(self) -> bool {
        matches!(
            self,
            EventType::DeploymentStarted
                | EventType::DeploymentSucceeded
                | EventType::DeploymentFailed
                | EventType::DeploymentRolledBack
        )
    }

    pub fn is_incident(self) -> bool {
        matches!(self, EventType::IncidentOpened | EventType::IncidentResolved)
    }
}

/// One validated event. Timestamps are microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    pub event_type: EventType,
    pub occurred_at: i64,
    pub service: String,
    pub environment: Option<String>,
    pub commit_sha: Option<String>,
    pub deployment_id: Option<String>,
    pub incident_id: Option<String>,
    pub change_ids: Option<Vec<String>>,
    pub team: Option<String>,
    pub source: Option<String>,
    pub attributes: Option<String>,
    pub schema_version: i16,
}

/// A value of an input row before validation. Every input format maps onto it,
/// so that one set of rules judges them all.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A timestamp that already carries its instant (Parquet input), µs UTC.
    /// Readers whose unit is coarser convert with checked arithmetic and
    /// reject the row when the instant does not fit.
    Timestamp(i64),
    List(Vec<RawValue>),
    /// A nested JSON object (NDJSON `attributes` given as an object).
    Json(serde_json::Value),
}

/// An input row: field name → value, iterated in name order. The fields of
/// [`INPUT_FIELDS`] sit in slots of their own (a row costs no allocation
/// per field name); any other name, which validation rejects, in a map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRow {
    known: [Option<RawValue>; INPUT_FIELDS.len()],
    other: BTreeMap<String, RawValue>,
}

/// The slot of an input field's name.
pub fn input_field_slot(name: &str) -> Option<usize> {
    INPUT_FIELDS.iter().position(|f| *f == name)
}

impl RawRow {
    pub fn new() -> RawRow {
        RawRow::default()
    }

    /// Sets field `name`, returning its previous value.
    pub fn insert(&mut self, name: String, value: RawValue) -> Option<RawValue> {
        match input_field_slot(&name) {
            Some(i) => self.known[i].replace(value),
            None => self.other.insert(name, value),
        }
    }

    /// Sets the input field of slot `i` (see [`input_field_slot`]).
    pub fn insert_slot(&mut self, i: usize, value: RawValue) {
        self.known[i] = Some(value);
    }

    pub fn get(&self, name: &str) -> Option<&RawValue> {
        match input_field_slot(name) {
            Some(i) => self.known[i].as_ref(),
            None => self.other.get(name),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<RawValue> {
        match input_field_slot(name) {
            Some(i) => self.known[i].take(),
            None => self.other.remove(name),
        }
    }

    /// The first name (in name order) that is not an input field.
    pub fn unknown_field(&self) -> Option<&str> {
        self.other.keys().next().map(String::as_str)
    }

    /// The fields, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        let mut all: Vec<(&str, &RawValue)> = INPUT_FIELDS
            .iter()
            .zip(&self.known)
            .filter_map(|(k, v)| Some((*k, v.as_ref()?)))
            .chain(self.other.iter().map(|(k, v)| (k.as_str(), v)))
            .collect();
        all.sort_unstable_by_key(|&(k, _)| k);
        all.into_iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.known.iter().filter(|v| v.is_some()).count() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FromIterator<(String, RawValue)> for RawRow {
    fn from_iter<I: IntoIterator<Item = (String, RawValue)>>(iter: I) -> RawRow {
        let mut row = RawRow::new();
        for (k, v) in iter {
            row.insert(k, v);
        }
        row
    }
}

impl<const N: usize> From<[(String, RawValue); N]> for RawRow {
    fn from(pairs: [(String, RawValue); N]) -> RawRow {
        pairs.into_iter().collect()
    }
}

impl std::ops::Index<&str> for RawRow {
    type Output = RawValue;
    fn index(&self, name: &str) -> &RawValue {
        self.get(name).unwrap_or_else(|| panic!("no field '{name}'"))
    }
}

/// The names an input row may carry. `ingested_at` is accepted and ignored:
/// it is always assigned by the engine (exports can be re-ingested).
pub const INPUT_FIELDS: [&str; 14] = [
    "event_id",
    "event_type",
    "occurred_at",
    "service",
    "environment",
    "commit_sha",
    "deployment_id",
    "incident_id",
    "change_ids",
    "team",
    "source",
    "attributes",
    "schema_version",
    "ingested_at",
];

/// The fields a writer supplies: every input field but `ingested_at`, in the
/// events table's column order.
pub const WRITABLE_FIELDS: &[&str] = INPUT_FIELDS.split_at(INPUT_FIELDS.len() - 1).0;

/// An input row as one line of JSON: how a row that is not itself JSON text
/// (Parquet, INSERT, COPY) is shown in `rejected_events.raw`.
pub fn raw_row_json(row: &RawRow) -> String {
    fn one(v: &RawValue) -> serde_json::Value {
        match v {
            RawValue::Null => serde_json::Value::Null,
            RawValue::Text(s) => s.clone().into(),
            RawValue::Int(i) => (*i).into(),
            RawValue::Float(f) => (*f).into(),
            RawValue::Bool(b) => (*b).into(),
            RawValue::Timestamp(us) => chrono::DateTime::from_timestamp_micros(*us)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                .unwrap_or_default()
                .into(),
            RawValue::List(items) => items.iter().map(one).collect::<Vec<_>>().into(),
            RawValue::Json(v) => v.clone(),
        }
    }
    serde_json::Value::Object(row.iter().map(|(k, v)| (k.to_string(), one(v))).collect()).to_string()
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// Element field of `change_ids`; named `element` as the Parquet LIST spec and
/// Delta readers expect.
pub fn change_ids_item() -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Utf8, true))
}

/// Arrow schema of the `events` table (column order is the SQL column order).
pub fn events_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new("occurred_at", ts_type(), false),
            Field::new("service", DataType::Utf8, false),
            Field::new("environment", DataType::Utf8, true),
            Field::new("commit_sha", DataType::Utf8, true),
            Field::new("deployment_id", DataType::Utf8, true),
            Field::new("incident_id", DataType::Utf8, true),
            Field::new("change_ids", DataType::List(change_ids_item()), true),
            Field::new("team", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, true),
            Field::new("attributes", DataType::Utf8, true),
            Field::new("schema_version", DataType::Int16, false),
            Field::new("ingested_at", ts_type(), false),
        ]))
    });
    SCHEMA.clone()
}

/// Arrow schema of the quarantine, `rejected_events`.
pub fn rejected_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("line", DataType::Int64, false),
            Field::new("event_id", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("raw", DataType::Utf8, false),
            Field::new("rejected_at", ts_type(), false),
        ]))
    });
    SCHEMA.clone()
}

/// Why a row was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The row breaks a rule of SPEC §1.
    Invalid,
    /// Its `event_id` is stored already with different content.
    Conflict,
}

impl RejectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::Invalid => "invalid",
            RejectionKind::Conflict => "conflict",
        }
    }
}

/// A rejected input row, kept verbatim with where it came from (up to
/// [`MAX_REJECTED_RAW_BYTES`]: see [`Rejection::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub source: String,
    /// 1-based line (NDJSON, CSV: physical line of the record) or row number.
    pub line: u64,
    pub event_id: Option<String>,
    pub kind: RejectionKind,
    pub reason: String,
    pub raw: String,
}

impl Rejection {
    /// A rejection whose `raw` text and `event_id` are bounded: a row
    /// rejected for its size is kept up to [`MAX_REJECTED_RAW_BYTES`], marked
    /// with its full length, so that the quarantine never stores what the
    /// log refused.
    pub fn new(
        source: &str,
        line: u64,
        event_id: Option<String>,
        kind: RejectionKind,
        reason: String,
        raw: String,
    ) -> Rejection {
        let raw = if raw.len() > MAX_REJECTED_RAW_BYTES {
            format!("{} [cut: the row is {} bytes]", truncated(&raw, MAX_REJECTED_RAW_BYTES), raw.len())
        } else {
            raw
        };
        let event_id = event_id.map(|id| match truncated(&id, MAX_EVENT_ID_BYTES) {
            std::borrow::Cow::Borrowed(_) => id,
            cut => cut.into_owned(),
        });
        Rejection { source: source.to_string(), line, event_id, kind, reason, raw }
    }
}

impl Event {
    /// Validates one input row against SPEC §1. The error is a sentence that
    /// names the field and the offending value.
    pub fn from_raw(row: &RawRow) -> Result<Event, String> {
        Self::from_raw_owned(row.clone())
    }

    /// [`from_raw`](Self::from_raw) that moves the row's strings into the
    /// event instead of copying them (the same rules and messages).
    pub fn from_raw_owned(mut row: RawRow) -> Result<Event, String> {
        let row = &mut row;
        if let Some(unknown) = row.unknown_field() {
            let unknown = truncated(unknown, 64);
            return Err(format!("unknown field '{unknown}' (expected some of: {})", WRITABLE_FIELDS.join(", ")));
        }
        let event_id = required_text(row, "event_id")?;
        let type_text = required_text(row, "event_type")?;
        let event_type = EventType::parse(&type_text).ok_or_else(|| {
            format!("event_type '{type_text}' is not one of {}", EventType::ALL.map(EventType::as_str).join(", "))
        })?;
        let occurred_at = match row.get("occurred_at") {
            None | Some(RawValue::Null) => return Err("occurred_at is missing".into()),
            Some(RawValue::Timestamp(us)) => *us,
            Some(RawValue::Text(s)) => {
                check_size("occurred_at", s.len())?;
                parse_timestamp("occurred_at", s)?
            }
            Some(other) => return Err(format!("occurred_at must be an RFC 3339 timestamp, got {}", describe(other))),
        };
        if !OCCURRED_AT_RANGE.contains(&occurred_at) {
            return Err(format!(
                "occurred_at {} is outside the years 0000-9999 that leadline stores",
                describe_micros(occurred_at)
            ));
        }
        let service = required_text(row, "service")?;
        let environment = optional_text(row, "environment")?;
        let commit_sha = optional_text(row, "commit_sha")?;
        let deployment_id = optional_text(row, "deployment_id")?;
        let incident_id = optional_text(row, "incident_id")?;
        let change_ids = change_ids(row)?;
        let team = optional_text(row, "team")?;
        let source = optional_text(row, "source")?;
        let attributes = attributes(row)?;
        let schema_version = schema_version(row)?;

        let kind = event_type.as_str();
        if event_type == EventType::Commit {
            if commit_sha.is_none() {
                return Err("commit_sha is required for commit events".into());
            }
            if let Some(env) = &environment {
                return Err(format!("environment must be empty for commit events, got '{env}'"));
            }
        } else {
            if environment.is_none() {
                return Err(format!("environment is required for {kind} events"));
            }
            if event_type.is_deployment() && deployment_id.is_none() {
                return Err(format!("deployment_id is required for {kind} events"));
            }
            if event_type.is_incident() && incident_id.is_none() {
                return Err(format!("incident_id is required for {kind} events"));
            }
        }
        Ok(Event {
            event_id,
            event_type,
            occurred_at,
            service,
            environment,
            commit_sha,
            deployment_id,
            incident_id,
            change_ids,
            team,
            source,
            attributes,
            schema_version,
        })
    }

    /// Hash of everything that makes up the event's content (not when it was
    /// ingested). Two deliveries with the same id and hash are duplicates; the
    /// same id with another hash is a conflict.
    pub fn content_hash(&self) -> u64 {
        use xxhash_rust::xxh3::Xxh3;
        let mut h = Xxh3::new();
        let mut field = |b: Option<&[u8]>| match b {
            // Tag each field so that ("ab", "") and ("a", "b") differ.
            None => h.update(&[0]),
            Some(b) => {
                h.update(&[1]);
                h.update(&(b.len() as u64).to_le_bytes());
                h.update(b);
            }
        };
        field(Some(self.event_id.as_bytes()));
        field(Some(self.event_type.as_str().as_bytes()));
        field(Some(&self.occurred_at.to_le_bytes()));
        field(Some(self.service.as_bytes()));
        for text in [&self.environment, &self.commit_sha, &self.deployment_id, &self.incident_id] {
            field(text.as_deref().map(str::as_bytes));
        }
        match &self.change_ids {
            None => field(None),
            Some(ids) => {
                field(Some(&(ids.len() as u64).to_le_bytes()));
                for id in ids {
                    field(Some(id.as_bytes()));
                }
            }
        }
        for text in [&self.team, &self.source, &self.attributes] {
            field(text.as_deref().map(str::as_bytes));
        }
        field(Some(&self.schema_version.to_le_bytes()));
        h.digest()
    }

    /// Days since the epoch of `occurred_at` (UTC): the table's partition.
    pub fn event_date(&self) -> i32 {
        self.occurred_at.div_euclid(86_400_000_000) as i32
    }
}

/// 128-bit hash of an event id: the key of the idempotency index. 128 bits make
/// an accidental collision among 50M ids vanishingly unlikely (~1e-23).
pub fn event_id_hash(event_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

fn describe(v: &RawValue) -> String {
    match v {
        RawValue::Null => "null".into(),
        RawValue::Text(s) => format!("'{s}'"),
        RawValue::Int(i) => format!("the number {i}"),
        RawValue::Float(f) => format!("the number {f}"),
        RawValue::Bool(b) => format!("the boolean {b}"),
        RawValue::Timestamp(_) => "a timestamp".into(),
        RawValue::List(_) => "a list".into(),
        RawValue::Json(_) => "a JSON object".into(),
    }
}

/// `s` cut to at most `max` bytes (at a character boundary), with `…` when cut.
fn truncated(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let end = (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &s[..end]).into()
}

/// An instant for a message: RFC 3339 when chrono can write it, else µs.
fn describe_micros(us: i64) -> String {
    match DateTime::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => format!("{us} µs after 1970-01-01"),
    }
}

/// The size limit of a text field, in bytes: the one place they are set.
fn max_bytes(name: &str) -> usize {
    match name {
        "event_id" => MAX_EVENT_ID_BYTES,
        "attributes" => MAX_ATTRIBUTES_BYTES,
        "change_ids" => MAX_CHANGE_IDS_BYTES,
        _ => MAX_TEXT_BYTES,
    }
}

/// Refuses a value of field `name` over its size limit, before anything
/// quotes it in a message.
fn check_size(name: &str, len: usize) -> Result<(), String> {
    let max = max_bytes(name);
    if len > max {
        return Err(format!("{name} is {len} bytes long; at most {max} are allowed"));
    }
    Ok(())
}

/// Takes field `name` out of the row (each field is read once).
fn optional_text(row: &mut RawRow, name: &str) -> Result<Option<String>, String> {
    match row.remove(name) {
        None | Some(RawValue::Null) => Ok(None),
        // An empty string means "absent" in every format (CSV cannot tell them apart).
        Some(RawValue::Text(s)) if s.is_empty() => Ok(None),
        Some(RawValue::Text(s)) => {
            check_size(name, s.len())?;
            Ok(Some(s))
        }
        Some(other) => Err(format!("{name} must be text, got {}", describe(&other))),
    }
}

fn required_text(row: &mut RawRow, name: &str) -> Result<String, String> {
    optional_text(row, name)?.ok_or_else(|| format!("{name} is missing or empty"))
}

fn change_ids(row: &mut RawRow) -> Result<Option<Vec<String>>, String> {
    let ids = match row.remove("change_ids") {
        None | Some(RawValue::Null) => return Ok(None),
        // CSV (and a convenience in JSON): `;`-separated.
        Some(RawValue::Text(s)) => s.split(';').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        Some(RawValue::List(items)) => items
            .into_iter()
            .map(|item| match item {
                RawValue::Text(s) if !s.is_empty() => Ok(s),
                other => Err(format!("change_ids must hold non-empty text ids, got {}", describe(&other))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("change_ids must be a list of text, got {}", describe(&other))),
    };
    if let Some(long) = ids.iter().find(|id| id.len() > MAX_TEXT_BYTES) {
        return Err(format!("a change id is {} bytes long; at most {MAX_TEXT_BYTES} are allowed", long.len()));
    }
    check_size("change_ids", ids.iter().map(String::len).sum())?;
    Ok(Some(ids))
}

fn attributes(row: &mut RawRow) -> Result<Option<String>, String> {
    match row.remove("attributes") {
        None | Some(RawValue::Null) => Ok(None),
        Some(RawValue::Json(v @ serde_json::Value::Object(_))) => {
            let text = v.to_string();
            check_size("attributes", text.len())?;
            Ok(Some(text))
        }
        Some(RawValue::Text(s)) if s.is_empty() => Ok(None),
        Some(RawValue::Text(s)) if s.len() > MAX_ATTRIBUTES_BYTES => check_size("attributes", s.len()).map(|_| None),
        Some(RawValue::Text(s)) => match serde_json::from_str::<serde_json::Value>(&s) {
            Ok(serde_json::Value::Object(_)) => Ok(Some(s)),
            Ok(_) => Err(format!("attributes must be a JSON object, got '{}'", truncated(&s, 200))),
            Err(e) => Err(format!("attributes is not valid JSON ({e}): '{}'", truncated(&s, 200))),
        },
        Some(other) => Err(format!("attributes must be a JSON object, got {}", describe(&other))),
    }
}

fn schema_version(row: &RawRow) -> Result<i16, String> {
    let v = match row.get("schema_version") {
        None | Some(RawValue::Null) => return Ok(1),
        Some(RawValue::Text(s)) if s.is_empty() => return Ok(1),
        Some(RawValue::Int(i)) => *i,
        Some(RawValue::Text(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("schema_version must be a whole number, got '{}'", truncated(s, 64)))?,
        Some(other) => return Err(format!("schema_version must be a whole number, got {}", describe(other))),
    };
    if v < 1 {
        return Err(format!("schema_version {v} is not valid (versions start at 1)"));
    }
    if v > CURRENT_SCHEMA_VERSION as i64 {
        return Err(format!(
            "schema_version {v} is newer than this leadline understands (up to {CURRENT_SCHEMA_VERSION}); upgrade leadline"
        ));
    }
    Ok(v as i16)
}

/// Parses an RFC 3339 timestamp that carries `Z` or an offset (PostgreSQL's
/// `2026-03-02 09:00:00+00` form too) into µs UTC. Sub-microsecond digits are
/// truncated. A timestamp without offset is rejected: no local-time guessing.
pub fn parse_timestamp(name: &str, s: &str) -> Result<i64, String> {
    let t = s.trim();
    let parsed = DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%#z"));
    match parsed {
        Ok(dt) => Ok(dt.timestamp_micros()),
        Err(_) => {
            let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"));
            if naive.is_ok() {
                Err(format!(
                    "{name} has no UTC offset: '{s}' (write it as RFC 3339 with Z or an offset, e.g. 2026-03-02T09:00:00Z)"
                ))
            } else {
                Err(format!("{name} is not an RFC 3339 timestamp: '{s}'"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, RawValue)]) -> RawRow {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }
    fn t(s: &str) -> RawValue {
        RawValue::Text(s.into())
    }
    fn deploy() -> RawRow {
        row(&[
            ("event_id", t("d1")),
            ("event_type", t("deployment_succeeded")),
            ("occurred_at", t("2026-03-08T23:30:00-01:00")),
            ("service", t("checkout")),
            ("environment", t("production")),
            ("deployment_id", t("D1")),
        ])
    }

    #[test]
    fn offset_is_applied() {
        let e = Event::from_raw(&deploy()).unwrap();
        assert_eq!(e.occurred_at, DateTime::parse_from_rfc3339("2026-03-09T00:30:00Z").unwrap().timestamp_micros());
        assert_eq!(e.schema_version, 1);
    }

    #[test]
    fn timestamp_without_offset_is_rejected_with_reason() {
        let mut r = deploy();
        r.insert("occurred_at".into(), t("2026-03-02 09:00:00"));
        let err = Event::from_raw(&r).unwrap_err();
        assert!(err.starts_with("occurred_at has no UTC offset: '2026-03-02 09:00:00'"), "{err}");
        r.insert("occurred_at".into(), t("yesterday"));
        assert!(Event::from_raw(&r).unwrap_err().contains("not an RFC 3339"));
        r.insert("occurred_at".into(), t("2026-03-02 09:00:00+00"));
        assert!(Event::from_raw(&r).is_ok());
    }

    #[test]
    fn required_fields_per_type() {
        let mut r = deploy();
        r.remove("deployment_id");
        assert_eq!(Event::from_raw(&r).unwrap_err(), "deployment_id is required for deployment_succeeded events");
        let mut r = deploy();
        r.insert("environment".into(), t(""));
        assert!(Event::from_raw(&r).unwrap_err().contains("environment is required"));
        let commit = row(&[
            ("event_id", t("c")),
            ("event_type", t("commit")),
            ("occurred_at", t("2026-03-02T09:00:00Z")),
            ("service", t("s")),
        ]);
        assert!(Event::from_raw(&commit).unwrap_err().contains("commit_sha is required"));
        let mut with_env = commit.clone();
        with_env.insert("commit_sha".into(), t("a1"));
        assert!(Event::from_raw(&with_env).is_ok());
        with_env.insert("environment".into(), t("production"));
        assert!(Event::from_raw(&with_env).unwrap_err().contains("must be empty for commit"));
        let mut inc = deploy();
        inc.insert("event_type".into(), t("incident_opened"));
        assert!(Event::from_raw(&inc).unwrap_err().contains("incident_id is required"));
    }

    #[test]
    fn bad_values_are_named() {
        let mut r = deploy();
        r.insert("event_type".into(), t("deploy"));
        assert!(Event::from_raw(&r).unwrap_err().starts_with("event_type 'deploy' is not one of commit,"));
        let mut r = deploy();
        r.insert("event_id".into(), t(&"x".repeat(257)));
        assert!(Event::from_raw(&r).unwrap_err().contains("257 bytes"));
        let mut r = deploy();
        r.insert("attributes".into(), t("{not json"));
        assert!(Event::from_raw(&r).unwrap_err().contains("attributes is not valid JSON"));
        r.insert("attributes".into(), t("[1]"));
        assert!(Event::from_raw(&r).unwrap_err().contains("must be a JSON object"));
        r.insert("attributes".into(), t("{\"pr\": 1}"));
        assert_eq!(Event::from_raw(&r).unwrap().attributes.as_deref(), Some("{\"pr\": 1}"));
        let mut r = deploy();
        r.insert("schema_version".into(), RawValue::Int(2));
        assert!(Event::from_raw(&r).unwrap_err().contains("newer than this leadline"));
        let mut r = deploy();
        r.insert("service".into(), RawValue::Int(3));
        assert_eq!(Event::from_raw(&r).unwrap_err(), "service must be text, got the number 3");
        let mut r = deploy();
        r.insert("sevice".into(), t("x"));
        assert!(Event::from_raw(&r).unwrap_err().starts_with("unknown field 'sevice'"));
    }

    /// Regression (issue 11): a 256 MiB `commit_sha` was appended as is;
    /// every text field now has a limit, checked before a message quotes it.
    #[test]
    fn text_fields_over_their_limit_are_rejected_with_the_limit() {
        for (field, max) in [
            ("event_id", MAX_EVENT_ID_BYTES),
            ("service", MAX_TEXT_BYTES),
            ("environment", MAX_TEXT_BYTES),
            ("deployment_id", MAX_TEXT_BYTES),
            ("commit_sha", MAX_TEXT_BYTES),
            ("incident_id", MAX_TEXT_BYTES),
            ("team", MAX_TEXT_BYTES),
            ("source", MAX_TEXT_BYTES),
            ("event_type", MAX_TEXT_BYTES),
            ("occurred_at", MAX_TEXT_BYTES),
        ] {
            let mut r = deploy();
            r.insert(field.into(), t(&"x".repeat(max)));
            let at_limit = Event::from_raw(&r);
            assert!(at_limit.as_ref().map_or_else(|e| !e.contains("bytes long"), |_| true), "{field}: {at_limit:?}");
            r.insert(field.into(), t(&"x".repeat(max + 1)));
            let err = Event::from_raw(&r).unwrap_err();
            assert_eq!(err, format!("{field} is {} bytes long; at most {max} are allowed", max + 1));
        }
        let mut r = deploy();
        let big = format!("{{\"k\": \"{}\"}}", "x".repeat(MAX_ATTRIBUTES_BYTES));
        r.insert("attributes".into(), t(&big));
        let want = format!("attributes is {} bytes long; at most 65536 are allowed", big.len());
        assert_eq!(Event::from_raw(&r).unwrap_err(), want);
        r.insert("attributes".into(), RawValue::Json(serde_json::from_str(&big).unwrap()));
        assert!(Event::from_raw(&r).unwrap_err().starts_with("attributes is"));
        let mut r = deploy();
        r.insert("change_ids".into(), RawValue::List(vec![t(&"c".repeat(MAX_TEXT_BYTES + 1))]));
        assert!(Event::from_raw(&r).unwrap_err().starts_with("a change id is 4097 bytes long"));
        let many = (0..7000).map(|i| format!("{i:040}")).collect::<Vec<_>>().join(";");
        r.insert("change_ids".into(), t(&many));
        assert!(Event::from_raw(&r).unwrap_err().starts_with("change_ids is 280000 bytes long; at most 262144"));
        let mut r = deploy();
        r.insert("x".repeat(100_000), t("y"));
        assert!(Event::from_raw(&r).unwrap_err().len() < 500);
    }

    #[test]
    fn occurred_at_must_lie_in_the_years_rfc_3339_writes() {
        let mut r = deploy();
        for (value, ok) in [
            (RawValue::Timestamp(*OCCURRED_AT_RANGE.start()), true),
            (RawValue::Timestamp(*OCCURRED_AT_RANGE.end()), true),
            (RawValue::Timestamp(OCCURRED_AT_RANGE.start() - 1), false),
            (RawValue::Timestamp(OCCURRED_AT_RANGE.end() + 1), false),
            (RawValue::Timestamp(i64::MIN), false),
            (RawValue::Timestamp(i64::MAX), false),
            (t("0000-01-01T00:00:00Z"), true),
            (t("0000-01-01T00:00:00+01:00"), false),
            (t("9999-12-31T23:59:59.999999-01:00"), false),
        ] {
            r.insert("occurred_at".into(), value.clone());
            let got = Event::from_raw(&r);
            assert_eq!(got.is_ok(), ok, "{value:?}: {got:?}");
            if let Err(e) = got {
                assert!(e.contains("outside the years 0000-9999"), "{e}");
            }
        }
    }

    #[test]
    fn rejections_keep_a_bounded_raw_text_and_id() {
        let huge = "x".repeat(MAX_REJECTED_RAW_BYTES * 3);
        let r = Rejection::new("f", 1, Some(huge.clone()), RejectionKind::Invalid, "too long".into(), huge.clone());
        assert!(r.raw.len() < MAX_REJECTED_RAW_BYTES + 100);
        assert!(r.raw.ends_with(&format!("[cut: the row is {} bytes]", huge.len())), "{}", &r.raw[r.raw.len() - 60..]);
        assert!(r.event_id.unwrap().len() <= MAX_EVENT_ID_BYTES + "…".len());
        let small = Rejection::new("f", 1, Some("id".into()), RejectionKind::Invalid, "r".into(), "{}".into());
        assert_eq!((small.raw.as_str(), small.event_id.as_deref()), ("{}", Some("id")));
        // A cut never splits a character.
        let wide = "é".repeat(MAX_REJECTED_RAW_BYTES);
        assert!(Rejection::new("f", 1, None, RejectionKind::Invalid, "r".into(), wide).raw.starts_with('é'));
    }

    #[test]
    fn change_ids_from_list_or_semicolons_hash_alike() {
        let mut a = deploy();
        a.insert("change_ids".into(), RawValue::List(vec![t("a3"), t("a4")]));
        let mut b = deploy();
        b.insert("change_ids".into(), t("a3;a4"));
        let (ea, eb) = (Event::from_raw(&a).unwrap(), Event::from_raw(&b).unwrap());
        assert_eq!(ea.change_ids, Some(vec!["a3".to_string(), "a4".to_string()]));
        assert_eq!(ea.content_hash(), eb.content_hash());
    }

    #[test]
    fn content_hash_sees_every_field_and_same_instant() {
        let base = Event::from_raw(&deploy()).unwrap();
        let mut same_instant = deploy();
        same_instant.insert("occurred_at".into(), t("2026-03-09T00:30:00Z"));
        assert_eq!(Event::from_raw(&same_instant).unwrap().content_hash(), base.content_hash());
        let mut other = deploy();
        other.insert("team".into(), t("payments"));
        assert_ne!(Event::from_raw(&other).unwrap().content_hash(), base.content_hash());
    }
}
