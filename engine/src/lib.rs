//! leadline's engine: the canonical event and its validation, the append-only
//! log, the projections and the SQL catalog over them.

pub mod catalog;
pub mod error;
pub mod event;
pub mod input;
pub mod log;
pub mod model;
pub mod project;

pub use error::{Error, Result};
