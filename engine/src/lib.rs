//! leadline's engine: the canonical event and its validation, the
//! append-only log, the projections, the read model and the SQL catalog over
//! them. Data flows one way through its modules (see ARCHITECTURE.md):
//!
//! ```text
//! input → event → log → project → metrics → readmodel → catalog
//!                  ╰──────────── appender (the write path) ──────╯
//! ```
//!
//! The public API is small: an [`Appender`] writes a data directory, a
//! [`Catalog`] serves it to SQL sessions ([`ReadSession`]), [`EventLog`]
//! reads its commits, [`check`] verifies it, and [`event`] and [`input`]
//! define what a row is.

mod appender;
mod catalog;
mod check;
mod error;
pub mod event;
pub mod input;
mod log;
mod metrics;
mod parallel;
mod project;
mod readmodel;
mod status;

pub use appender::{Appender, Progress};
pub use catalog::{Catalog, LeadlineOptions, MemoryLimits, ReadSession, ViewInfo, session_config};
pub use check::{CheckProgress, CheckReport, Damage, DamageArea, check};
pub use error::{Error, RelationProblem, Result, ValueProblem};
pub use event::{Event, EventType, RawRow, RawValue, Rejection, RejectionKind};
pub use log::{AUTO_COMPACT_FILES, AppendReport, EventLog, InputReport, Snapshot};
pub use status::DataStatus;
