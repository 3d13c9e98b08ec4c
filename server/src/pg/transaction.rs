//! Transaction blocks, as PostgreSQL has them. Inside `BEGIN … COMMIT` the
//! rows of each INSERT and COPY (validated when they arrive) are held here
//! until COMMIT appends them all as one commit; ROLLBACK, or the connection
//! closing, drops them. After an error the block is failed: every statement
//! but COMMIT, ROLLBACK and ROLLBACK TO gets 25P02. A multi-statement simple
//! query runs as one implicit block (its writes are one commit, or none if a
//! statement fails). Savepoints mark how many statements' rows the block held.
//!
//! Pure session state: `query` acts on what it answers.

use leadline_engine::input::InputRow;
use pgwire::messages::response::TransactionStatus;

use super::errors::PgError;
use super::statement::{Kind, TxCommand, classify, split_statements};

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// The statements of one multi-statement simple query.
    Implicit,
    Block,
    /// A block after an error, until ROLLBACK.
    Failed,
}

/// The rows of one INSERT or COPY, held until COMMIT.
#[derive(Debug)]
pub struct Held {
    /// What the rows' `rejected_events.source` will say (`INSERT by …`).
    pub source: String,
    pub rows: Vec<InputRow>,
}

#[derive(Debug)]
struct Savepoint {
    name: String,
    /// How many statements' rows, and bytes, the block held when it was set.
    held: usize,
    bytes: usize,
}

/// A session's transaction.
#[derive(Debug)]
pub struct Transaction {
    state: State,
    held: Vec<Held>,
    /// Input bytes of the held rows, bounded by `limit`.
    bytes: usize,
    limit: usize,
    savepoints: Vec<Savepoint>,
    /// The block's statements read the view pinned at its first statement.
    pinned: bool,
    /// The NOTICE that reads do not see the block's own rows was sent.
    unseen_noticed: bool,
}

/// What a transaction statement did.
#[derive(Debug)]
pub enum Outcome {
    /// A block started (BEGIN).
    Begun,
    /// The block ended: append these rows (COMMIT).
    Commit(Vec<Held>),
    /// The block ended, writing nothing (ROLLBACK, COMMIT of a failed block).
    RolledBack,
    /// The block goes on (SAVEPOINT, RELEASE, ROLLBACK TO).
    Continued,
}

/// A transaction statement's outcome, its command tag and a warning
/// (SQLSTATE, message) as PostgreSQL gives for, e.g., COMMIT outside a block.
#[derive(Debug)]
pub struct Step {
    pub outcome: Outcome,
    pub tag: &'static str,
    pub warning: Option<(&'static str, &'static str)>,
}

fn aborted() -> PgError {
    PgError::new("25P02", "current transaction is aborted, commands ignored until end of transaction block")
}

const NO_TRANSACTION: (&str, &str) = ("25P01", "there is no transaction in progress");

impl Transaction {
    /// `limit`: input bytes a block (or one COPY outside of one) may hold.
    pub fn new(limit: usize) -> Self {
        Transaction {
            state: State::Idle,
            held: Vec::new(),
            bytes: 0,
            limit,
            savepoints: Vec::new(),
            pinned: false,
            unseen_noticed: false,
        }
    }

    /// The ReadyForQuery status: an implicit block ends with its query.
    pub fn status(&self) -> TransactionStatus {
        match self.state {
            State::Idle | State::Implicit => TransactionStatus::Idle,
            State::Block => TransactionStatus::Transaction,
            State::Failed => TransactionStatus::Error,
        }
    }

    /// The status a simple query starts from, for pgwire to move on from as
    /// the query's responses say. Responses cannot take a failed block back
    /// to a live one, which ROLLBACK TO a savepoint does: a failed block
    /// whose query starts with that (the only statement it may run then but
    /// COMMIT/ROLLBACK) starts from T, and the error, if the savepoint is
    /// missing, moves it back to E.
    pub fn status_before(&self, query: &str) -> TransactionStatus {
        if self.state == State::Failed
            && let Some(first) = split_statements(query).first()
            && let Kind::Transaction(TxCommand::RollbackTo(name)) = classify(first)
            && self.savepoint(&name).is_some()
        {
            return TransactionStatus::Transaction;
        }
        self.status()
    }

    /// Refuses every statement of a failed block but those that end it.
    pub fn check(&self, kind: &Kind) -> Result<(), PgError> {
        let ends_block = matches!(
            kind,
            Kind::Empty | Kind::Transaction(TxCommand::Commit | TxCommand::Rollback | TxCommand::RollbackTo(_))
        );
        if self.state == State::Failed && !ends_block { Err(aborted()) } else { Ok(()) }
    }

    /// A statement failed: a block is failed (rows after its last savepoint
    /// can never be committed, so they go now); an implicit block is over.
    pub fn fail(&mut self) {
        match self.state {
            State::Block => {
                self.state = State::Failed;
                let (held, bytes) = self.savepoints.last().map_or((0, 0), |s| (s.held, s.bytes));
                self.held.truncate(held);
                self.bytes = bytes;
            }
            State::Implicit => self.end(State::Idle),
            State::Idle | State::Failed => {}
        }
    }

    /// A COMMIT whose append failed: the block is failed (and empty), as
    /// the error the client gets makes its status.
    pub fn commit_failed(&mut self) {
        self.end(State::Failed);
    }

    /// In a block, explicit or implicit: writes are held rather than
    /// appended at once, and reads share one view.
    pub fn in_block(&self) -> bool {
        matches!(self.state, State::Implicit | State::Block)
    }

    /// Bytes one more COPY may hold: what the block has left, or the whole
    /// limit for a COPY of its own.
    pub fn room(&self) -> usize {
        if self.in_block() { self.limit.saturating_sub(self.bytes) } else { self.limit }
    }

    /// The error for writes over [`room`](Self::room).
    pub fn over_limit(&self) -> PgError {
        let mib = self.limit >> 20;
        if self.in_block() {
            PgError::with_hint(
                "54000",
                format!("this transaction holds over {mib} MiB of rows to write at COMMIT"),
                "COMMIT in smaller transactions, or raise limits.write_buffer_mb in the server config",
            )
        } else {
            PgError::with_hint(
                "54000",
                format!("COPY input over {mib} MiB"),
                "split it into several COPY commands, or raise limits.write_buffer_mb in the server config",
            )
        }
    }

    /// Holds one statement's rows (`bytes` of input) until COMMIT.
    pub fn hold(&mut self, held: Held, bytes: usize) -> Result<(), PgError> {
        if bytes > self.room() {
            return Err(self.over_limit());
        }
        self.bytes += bytes;
        self.held.push(held);
        Ok(())
    }

    /// Starts the implicit block of a multi-statement query's next statement,
    /// unless one is open.
    pub fn begin_implicit(&mut self) {
        if self.state == State::Idle {
            self.state = State::Implicit;
        }
    }

    /// The end of a multi-statement query: its implicit block, if still
    /// open, commits these rows.
    pub fn end_implicit(&mut self) -> Option<Vec<Held>> {
        if self.state != State::Implicit {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        self.end(State::Idle);
        Some(held)
    }

    /// Whether the next statement needs a fresh view: always outside a
    /// block, once inside one (then [`pin`](Self::pin) keeps it).
    pub fn needs_view(&self) -> bool {
        self.state == State::Idle || !self.pinned
    }

    /// The view just taken stays the block's until it ends.
    pub fn pin(&mut self) {
        self.pinned = self.state != State::Idle;
    }

    /// True once per block when a read runs while the block holds rows,
    /// which that read does not see.
    pub fn notice_unseen(&mut self) -> bool {
        let holds = self.held.iter().any(|h| !h.rows.is_empty());
        let first = holds && !self.unseen_noticed;
        self.unseen_noticed |= holds;
        first
    }

    fn savepoint(&self, name: &str) -> Option<usize> {
        self.savepoints.iter().rposition(|s| s.name == name)
    }

    fn end(&mut self, state: State) {
        self.state = state;
        self.held.clear();
        self.bytes = 0;
        self.savepoints.clear();
        self.pinned = false;
        self.unseen_noticed = false;
    }

    /// Runs a transaction statement (a failed block only gets here with one
    /// that [`check`](Self::check) lets through). An error fails the block
    /// as any statement's does.
    pub fn run(&mut self, command: &TxCommand) -> Result<Step, PgError> {
        let step = |outcome, tag| Step { outcome, tag, warning: None };
        let only_in_block =
            |what: &str| PgError::new("25P01", format!("{what} can only be used in transaction blocks"));
        let missing = |name: &str| PgError::new("3B001", format!("savepoint \"{name}\" does not exist"));
        self.check(&Kind::Transaction(command.clone()))?;
        let state = self.state;
        Ok(match (command, state) {
            (TxCommand::Begin, State::Block) => Step {
                outcome: Outcome::Begun,
                tag: "BEGIN",
                warning: Some(("25001", "there is already a transaction in progress")),
            },
            (TxCommand::Begin, _) => {
                // An implicit block becomes a real one, keeping its rows.
                self.state = State::Block;
                step(Outcome::Begun, "BEGIN")
            }
            (TxCommand::Commit, State::Failed) => {
                self.end(State::Idle);
                step(Outcome::RolledBack, "ROLLBACK")
            }
            (TxCommand::Commit, _) => {
                let held = std::mem::take(&mut self.held);
                self.end(State::Idle);
                Step {
                    outcome: Outcome::Commit(held),
                    tag: "COMMIT",
                    warning: (state != State::Block).then_some(NO_TRANSACTION),
                }
            }
            (TxCommand::Rollback, _) => {
                self.end(State::Idle);
                Step {
                    outcome: Outcome::RolledBack,
                    tag: "ROLLBACK",
                    warning: matches!(state, State::Idle | State::Implicit).then_some(NO_TRANSACTION),
                }
            }
            (TxCommand::Savepoint(_), State::Idle | State::Implicit) => return Err(only_in_block("SAVEPOINT")),
            (TxCommand::Release(_), State::Idle | State::Implicit) => {
                return Err(only_in_block("RELEASE SAVEPOINT"));
            }
            (TxCommand::RollbackTo(_), State::Idle | State::Implicit) => {
                return Err(only_in_block("ROLLBACK TO SAVEPOINT"));
            }
            (TxCommand::Savepoint(name) | TxCommand::Release(name) | TxCommand::RollbackTo(name), _)
                if name.is_empty() =>
            {
                return Err(PgError::syntax("a savepoint needs a name"));
            }
            (TxCommand::Savepoint(name), _) => {
                self.savepoints.push(Savepoint { name: name.clone(), held: self.held.len(), bytes: self.bytes });
                step(Outcome::Continued, "SAVEPOINT")
            }
            (TxCommand::Release(name), _) => {
                // It and every savepoint set after it; the rows stay.
                let at = self.savepoint(name).ok_or_else(|| missing(name))?;
                self.savepoints.truncate(at);
                step(Outcome::Continued, "RELEASE")
            }
            (TxCommand::RollbackTo(name), _) => {
                // The rows held since, and later savepoints, go; it stays.
                let at = self.savepoint(name).ok_or_else(|| missing(name))?;
                let (held, bytes) = (self.savepoints[at].held, self.savepoints[at].bytes);
                self.savepoints.truncate(at + 1);
                self.held.truncate(held);
                self.bytes = bytes;
                self.state = State::Block;
                step(Outcome::Continued, "ROLLBACK")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Held {
        let row = |i| InputRow { line: i as u64 + 1, raw: "{}".into(), fields: Err("x".into()) };
        Held { source: format!("INSERT {n}"), rows: (0..n).map(row).collect() }
    }

    fn run(t: &mut Transaction, sql: &str) -> Result<Step, &'static str> {
        let Kind::Transaction(c) = classify(sql) else { panic!("{sql}") };
        t.run(&c).map_err(|e| {
            t.fail();
            e.parts().0
        })
    }

    fn committed(step: Step) -> Vec<usize> {
        match step.outcome {
            Outcome::Commit(held) => held.iter().map(|h| h.rows.len()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_block_holds_rows_until_commit_or_rollback() {
        let mut t = Transaction::new(1000);
        assert!(!t.in_block());
        assert_eq!(run(&mut t, "BEGIN").unwrap().tag, "BEGIN");
        assert_eq!(t.status(), TransactionStatus::Transaction);
        t.hold(rows(2), 10).unwrap();
        t.hold(rows(3), 10).unwrap();
        let step = run(&mut t, "COMMIT").unwrap();
        assert!(step.warning.is_none());
        assert_eq!(committed(step), [2, 3]);
        assert_eq!(t.status(), TransactionStatus::Idle);
        assert!(!t.in_block());

        run(&mut t, "BEGIN").unwrap();
        t.hold(rows(2), 10).unwrap();
        assert!(matches!(run(&mut t, "ROLLBACK").unwrap().outcome, Outcome::RolledBack));
        assert_eq!(committed(run(&mut t, "COMMIT").unwrap()), Vec::<usize>::new(), "nothing left");
    }

    #[test]
    fn statements_outside_a_block_warn_or_fail_as_in_postgresql() {
        let mut t = Transaction::new(1000);
        assert_eq!(run(&mut t, "COMMIT").unwrap().warning.map(|w| w.0), Some("25P01"));
        assert_eq!(run(&mut t, "ROLLBACK").unwrap().warning.map(|w| w.0), Some("25P01"));
        assert_eq!(run(&mut t, "SAVEPOINT a").err(), Some("25P01"));
        assert_eq!(run(&mut t, "RELEASE a").err(), Some("25P01"));
        assert_eq!(run(&mut t, "ROLLBACK TO a").err(), Some("25P01"));
        assert_eq!(t.status(), TransactionStatus::Idle);
        run(&mut t, "BEGIN").unwrap();
        assert_eq!(run(&mut t, "BEGIN").unwrap().warning.map(|w| w.0), Some("25001"));
        assert_eq!(t.status(), TransactionStatus::Transaction);
    }

    #[test]
    fn after_an_error_only_the_end_of_the_block_runs() {
        let mut t = Transaction::new(1000);
        run(&mut t, "BEGIN").unwrap();
        t.hold(rows(2), 10).unwrap();
        t.fail();
        assert_eq!(t.status(), TransactionStatus::Error);
        for refused in ["SELECT 1", "INSERT INTO events VALUES (1)", "SET a = 1", "SHOW a", "COPY events FROM STDIN"] {
            assert_eq!(t.check(&classify(refused)).err().map(|e| e.parts().0), Some("25P02"), "{refused}");
        }
        assert_eq!(run(&mut t, "SAVEPOINT a").err(), Some("25P02"));
        assert_eq!(run(&mut t, "BEGIN").err(), Some("25P02"));
        assert!(t.check(&classify("")).is_ok());
        assert!(t.check(&classify("ROLLBACK")).is_ok());
        let step = run(&mut t, "COMMIT").unwrap();
        assert_eq!(step.tag, "ROLLBACK", "COMMIT of a failed block rolls back");
        assert!(matches!(step.outcome, Outcome::RolledBack));
        assert_eq!(t.status(), TransactionStatus::Idle);
        // A failed COMMIT leaves a failed, empty block.
        run(&mut t, "BEGIN").unwrap();
        t.hold(rows(1), 10).unwrap();
        committed(run(&mut t, "COMMIT").unwrap());
        t.commit_failed();
        assert_eq!(t.status(), TransactionStatus::Error);
        assert!(matches!(run(&mut t, "ROLLBACK").unwrap().outcome, Outcome::RolledBack));
    }

    #[test]
    fn savepoints_mark_the_rows_held_so_far() {
        let mut t = Transaction::new(1000);
        run(&mut t, "BEGIN").unwrap();
        t.hold(rows(1), 10).unwrap();
        run(&mut t, "SAVEPOINT a").unwrap();
        t.hold(rows(2), 10).unwrap();
        run(&mut t, "SAVEPOINT \"B\"").unwrap();
        t.hold(rows(3), 10).unwrap();
        assert_eq!(run(&mut t, "ROLLBACK TO b").err(), Some("3B001"), "a quoted name keeps its case");
        assert_eq!(t.status(), TransactionStatus::Error);
        assert_eq!(t.status_before("ROLLBACK TO \"B\"; RELEASE \"B\""), TransactionStatus::Transaction);
        assert_eq!(t.status_before("ROLLBACK TO nope"), TransactionStatus::Error);
        assert_eq!(t.status_before("SELECT 1"), TransactionStatus::Error);
        // The error dropped the rows after B; going back to B recovers the block.
        assert_eq!(run(&mut t, "ROLLBACK TO \"B\"").unwrap().tag, "ROLLBACK");
        assert_eq!(t.status(), TransactionStatus::Transaction);
        t.hold(rows(4), 10).unwrap();
        run(&mut t, "ROLLBACK TO SAVEPOINT \"B\"").unwrap();
        t.hold(rows(5), 10).unwrap();
        run(&mut t, "RELEASE a").unwrap();
        assert_eq!(run(&mut t, "ROLLBACK TO a").err(), Some("3B001"), "released with the savepoints after it");
        run(&mut t, "ROLLBACK").unwrap();

        run(&mut t, "BEGIN").unwrap();
        t.hold(rows(1), 10).unwrap();
        run(&mut t, "SAVEPOINT a").unwrap();
        t.hold(rows(2), 10).unwrap();
        run(&mut t, "SAVEPOINT a").unwrap();
        t.hold(rows(3), 10).unwrap();
        run(&mut t, "ROLLBACK TO a").unwrap();
        run(&mut t, "RELEASE a").unwrap();
        run(&mut t, "ROLLBACK TO a").unwrap();
        assert_eq!(committed(run(&mut t, "COMMIT").unwrap()), [1], "the newest of two savepoints of a name goes first");
    }

    #[test]
    fn the_limit_bounds_the_rows_a_block_holds() {
        let mut t = Transaction::new(25);
        assert_eq!(t.room(), 25);
        run(&mut t, "BEGIN").unwrap();
        t.hold(rows(1), 10).unwrap();
        run(&mut t, "SAVEPOINT a").unwrap();
        t.hold(rows(1), 10).unwrap();
        assert_eq!(t.room(), 5);
        assert_eq!(t.hold(rows(1), 10).err().map(|e| e.parts().0), Some("54000"));
        run(&mut t, "ROLLBACK TO a").unwrap();
        assert_eq!(t.room(), 15, "rolled-back rows free their room");
        run(&mut t, "COMMIT").unwrap();
        assert_eq!(t.room(), 25);
    }

    #[test]
    fn a_multi_statement_query_is_an_implicit_block() {
        let mut t = Transaction::new(1000);
        t.begin_implicit();
        assert!(t.in_block());
        assert_eq!(t.status(), TransactionStatus::Idle);
        t.hold(rows(1), 10).unwrap();
        assert_eq!(run(&mut t, "SAVEPOINT a").err(), Some("25P01"));
        assert!(t.end_implicit().is_none(), "the error ended it");
        t.begin_implicit();
        t.hold(rows(2), 10).unwrap();
        assert_eq!(t.end_implicit().map(|h| h.len()), Some(1));
        // COMMIT ends it (with PostgreSQL's warning); the next statement starts another.
        t.begin_implicit();
        t.hold(rows(3), 10).unwrap();
        let step = run(&mut t, "COMMIT").unwrap();
        assert_eq!(step.warning.map(|w| w.0), Some("25P01"));
        assert_eq!(committed(step), [3]);
        // BEGIN turns it into a block that outlives the query, with its rows.
        t.begin_implicit();
        t.hold(rows(4), 10).unwrap();
        run(&mut t, "BEGIN").unwrap();
        assert!(t.end_implicit().is_none());
        assert_eq!(t.status(), TransactionStatus::Transaction);
        assert_eq!(committed(run(&mut t, "COMMIT").unwrap()), [4]);
    }

    #[test]
    fn a_block_pins_one_view_and_notices_its_unseen_rows_once() {
        let mut t = Transaction::new(1000);
        assert!(t.needs_view());
        t.pin();
        assert!(t.needs_view(), "outside a block every statement takes a new view");
        run(&mut t, "BEGIN").unwrap();
        assert!(t.needs_view());
        t.pin();
        assert!(!t.needs_view());
        assert!(!t.notice_unseen());
        t.hold(rows(1), 10).unwrap();
        assert!(t.notice_unseen());
        assert!(!t.notice_unseen());
        run(&mut t, "COMMIT").unwrap();
        assert!(t.needs_view());
    }
}
