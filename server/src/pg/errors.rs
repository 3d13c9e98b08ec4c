//! The server's one error type, and how every error becomes a SQLSTATE.

use datafusion::error::DataFusionError;
use leadline_engine::input::copy::{CopyError, CopyErrorKind};
use pgwire::error::{ErrorInfo, PgWireError};

/// An error of one statement; only `Fatal` ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// An error with an explicit SQLSTATE.
    #[error("{message}")]
    Sql { code: &'static str, message: String, hint: Option<String> },
    /// Ends the session (auth failures, limits at connect).
    #[error("{message}")]
    Fatal { code: &'static str, message: String },
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Engine(#[from] leadline_engine::Error),
}

impl PgError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        PgError::Sql { code, message: message.into(), hint: None }
    }
    pub fn with_hint(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        PgError::Sql { code, message: message.into(), hint: Some(hint.into()) }
    }
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        PgError::Fatal { code, message: message.into() }
    }
    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new("42601", message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new("0A000", message)
    }
    pub fn cancelled() -> Self {
        Self::new("57014", "canceling statement due to user request")
    }
    pub fn timed_out() -> Self {
        Self::new("57014", "canceling statement due to statement timeout")
    }
    pub fn read_only(what: &str) -> Self {
        Self::with_hint(
            "42501",
            format!("permission denied: {what} needs a user that may write, this user is read-only"),
            "connect as a user without \"read_only\": true in the server config",
        )
    }

    /// SQLSTATE and message.
    pub fn parts(&self) -> (&'static str, String, Option<String>) {
        match self {
            PgError::Sql { code, message, hint } => (code, message.clone(), hint.clone()),
            PgError::Fatal { code, message } => (code, message.clone(), None),
            PgError::DataFusion(e) => datafusion_parts(e),
            PgError::Engine(e) => engine_parts(e),
        }
    }

    /// The SQLSTATE a DataFusion error is sent with.
    pub fn sqlstate_of(e: &DataFusionError) -> &'static str {
        datafusion_parts(e).0
    }

    pub fn info(&self) -> ErrorInfo {
        let (code, message, hint) = self.parts();
        let severity = if matches!(self, PgError::Fatal { .. }) { "FATAL" } else { "ERROR" };
        let mut info = ErrorInfo::new(severity.to_owned(), code.to_owned(), message);
        info.hint = hint;
        info
    }
}

impl From<PgError> for PgWireError {
    fn from(e: PgError) -> Self {
        PgWireError::UserError(Box::new(e.info()))
    }
}

impl From<CopyError> for PgError {
    fn from(e: CopyError) -> Self {
        let code = match e.kind {
            CopyErrorKind::BadFormat => "22P04",
            CopyErrorKind::InvalidOption => "22023",
            CopyErrorKind::ConflictingOptions => "42601",
            CopyErrorKind::Unsupported => "0A000",
            CopyErrorKind::UndefinedColumn => "42703",
            CopyErrorKind::DuplicateColumn => "42701",
            CopyErrorKind::InvalidColumnReference => "42P10",
        };
        PgError::new(code, e.message)
    }
}

impl From<arrow::error::ArrowError> for PgError {
    fn from(e: arrow::error::ArrowError) -> Self {
        PgError::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for PgError {
    fn from(e: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        let m = e.to_string();
        PgError::syntax(m.strip_prefix("sql parser error: ").unwrap_or(&m).to_string())
    }
}

/// The SQLSTATE of an engine error.
fn engine_parts(e: &leadline_engine::Error) -> (&'static str, String, Option<String>) {
    use leadline_engine::{Error, RelationProblem, ValueProblem};
    if e.is_disk_full() {
        let hint =
            "free space on the data directory's disk: every acknowledged write is kept, and this one can be retried";
        return ("53100", e.to_string(), Some(hint.to_string()));
    }
    match e {
        Error::DataFusion(e) => datafusion_parts(e),
        Error::Damaged { .. } | Error::Corrupt(_) => {
            let hint = "`leadline check --data DIR` lists every damaged file of the data directory";
            ("XX001", e.to_string(), Some(hint.to_string()))
        }
        Error::Input(m) => ("22023", m.clone(), None),
        Error::Locked { .. } => ("55006", e.to_string(), None),
        Error::Io { .. } => ("58030", e.to_string(), None),
        Error::NoDataDirectory(_) => ("58P01", e.to_string(), None),
        Error::Limit(m) => ("54000", m.clone(), None),
        Error::Value { problem, message } => {
            let code = match problem {
                ValueProblem::InvalidDatetime => "22007",
                ValueProblem::DatetimeOverflow => "22008",
                ValueProblem::IntervalOverflow => "22015",
                ValueProblem::InvalidParameter => "22023",
            };
            (code, message.clone(), None)
        }
        Error::Relation { problem, message } => {
            let code = match problem {
                RelationProblem::Exists => "42P07",
                RelationProblem::Missing => "42P01",
                RelationProblem::NotAView => "42809",
                RelationProblem::Recursive => "42P17",
            };
            (code, message.clone(), None)
        }
        e => ("XX000", e.to_string(), None),
    }
}

/// Maps DataFusion's errors onto PostgreSQL's SQLSTATEs by kind and message;
/// the contexts around the root (`view "v" cannot be used`) lead the message.
fn datafusion_parts(e: &DataFusionError) -> (&'static str, String, Option<String>) {
    let mut contexts = Vec::new();
    let mut outer = e;
    while let DataFusionError::Context(context, inner) = outer {
        contexts.push(context.as_str());
        outer = inner;
    }
    let (code, message, hint) = root_parts(outer);
    if contexts.is_empty() {
        return (code, message, hint);
    }
    (code, format!("{}: {message}", contexts.join(": ")), hint)
}

fn root_parts(e: &DataFusionError) -> (&'static str, String, Option<String>) {
    let root = e.find_root();
    // An error a leadline function raised with its own SQLSTATE.
    if let DataFusionError::External(inner) = root
        && let Some(pg) = inner.downcast_ref::<PgError>()
    {
        return pg.parts();
    }
    if let DataFusionError::External(inner) = root
        && let Some(engine) = inner.downcast_ref::<leadline_engine::Error>()
    {
        return engine_parts(engine);
    }
    let full = root.to_string();
    let msg = strip_prefixes(&full);
    let lower = msg.to_ascii_lowercase();
    let code = match root {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::SchemaError(err, _) => match **err {
            datafusion::common::SchemaError::FieldNotFound { .. } => "42703",
            datafusion::common::SchemaError::AmbiguousReference { .. } => "42702",
            _ => "42P10",
        },
        DataFusionError::ArrowError(a, _) => match **a {
            arrow::error::ArrowError::DivideByZero => "22012",
            arrow::error::ArrowError::CastError(_) | arrow::error::ArrowError::ParseError(_) => {
                if lower.contains("timestamp") || lower.contains("date") { "22007" } else { "22P02" }
            }
            arrow::error::ArrowError::ArithmeticOverflow(_) => "22003",
            _ => "XX000",
        },
        DataFusionError::Plan(_) => {
            // `FROM nosuch(…)`: PostgreSQL's "function nosuch does not exist".
            if let Some(name) = lower.strip_prefix("table function '").and_then(|r| r.strip_suffix("' not found")) {
                return ("42883", format!("function {name} does not exist"), None);
            }
            if lower.contains("table") && lower.contains("not found") {
                return ("42P01", relation_message(msg), None);
            } else if lower.contains("invalid function") || lower.contains("function") && lower.contains("not found") {
                "42883"
            } else if lower.starts_with("unknown grain") {
                // `Grain`'s parse, wherever a grain is taken (dora_metrics,
                // deployment_frequency): a bad value, as PostgreSQL's date_trunc
                // answers a bad unit.
                "22023"
            } else if lower.contains("no field named") || lower.contains("schema error") {
                "42703"
            } else if lower.contains("cannot be cast") || lower.contains("coerc") || lower.contains("type") {
                "42804"
            } else if lower.contains("unsupported") || lower.contains("not supported") {
                "0A000"
            } else {
                "42601"
            }
        }
        DataFusionError::Execution(_) => {
            if lower.contains("divide by zero") || lower.contains("division by zero") {
                "22012"
            } else if lower.contains("cast") || lower.contains("parse") || lower.contains("invalid") {
                if lower.contains("timestamp") || lower.contains("date") { "22007" } else { "22P02" }
            } else {
                "XX000"
            }
        }
        _ => {
            if lower.contains("resources exhausted") || lower.contains("memory") {
                "53200"
            } else {
                "XX000"
            }
        }
    };
    let hint = match code {
        "53200" => Some("the query needs more memory than the server allows one query (--query-memory-mb, limits.query_memory_mb) or all queries together (--memory-mb, limits.memory_mb)".to_string()),
        "42883" => Some("leadline's functions are listed by SHOW FUNCTIONS in the docs; DORA aggregates: deployment_frequency, lead_time, change_failure_rate, rework_rate, time_to_restore, failed_deployment_recovery_time, dora_tier".to_string()),
        _ => None,
    };
    (code, msg.to_string(), hint)
}

fn strip_prefixes(s: &str) -> &str {
    let mut s = s;
    for p in [
        "Error during planning: ",
        "Execution error: ",
        "SQL error: ",
        "External error: ",
        "This feature is not implemented: ",
        "Arrow error: ",
        "Schema error: ",
        "Resources exhausted: ",
        "ParserError(\"",
    ] {
        if let Some(r) = s.strip_prefix(p) {
            s = r;
        }
    }
    s
}

/// `table 'datafusion.public.x' not found` → `relation "x" does not exist`.
fn relation_message(msg: &str) -> String {
    let name = msg.split('\'').nth(1).map(|n| n.rsplit('.').next().unwrap_or(n)).unwrap_or("?");
    format!("relation \"{name}\" does not exist")
}
