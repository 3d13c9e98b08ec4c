//! Fuzz targets of the wire front end (issue 11), against the real
//! `leadline serve` over TCP: start-up packets, simple and extended query
//! messages, COPY data, and SQL statements over the catalog. Whatever a
//! client sends, the server never panics (its log has no "bug:" line and no
//! answer is the panic guard's), never hangs a client (it answers or closes
//! within a timeout once the client stops sending), keeps answering other
//! clients, and its peak memory stays under a bound whatever a length field
//! claims. The harness (and `LEADLINE_FUZZ_SECS`) is engine/tests/fuzzing.

mod common;
#[path = "../../engine/tests/fuzzing/mod.rs"]
mod fuzzing;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fuzzing::{fuzz, mutated};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Peak resident memory the server may reach (it serves the sample history
/// in about 150 MB; a length field may claim 2 GiB).
const MEMORY_BOUND_KIB: u64 = 1 << 20;
/// How long a server may take to answer or hang up once the client is done.
const HANG: Duration = Duration::from_secs(20);

struct Server {
    child: Child,
    /// Kept open: the server prints more lines, and a closed pipe would end it.
    _stdout: BufReader<std::process::ChildStdout>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sample.ndjson");
        let out = common::run(&["ingest", "--data", data.to_str().unwrap(), sample.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let log = dir.path().join("serve.log");
        let mut child = Command::new(common::bin())
            .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(["--statement-timeout-ms", "3000", "--max-connections", "500"])
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).expect("the server's port");
        Server { child, _stdout: stdout, port, log, _dir: dir }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail = &log[log.len().saturating_sub(4000)..];
            panic!("cannot connect to the server ({e}); its log ends with:\n{tail}")
        });
        s.set_read_timeout(Some(HANG)).unwrap();
        s
    }

    /// Sends `bytes`, closes the sending side, and reads everything the
    /// server answers until it hangs up. A server that neither answers nor
    /// hangs up within `HANG` fails the case.
    fn exchange(&self, bytes: &[u8]) -> Result<Vec<u8>, TestCaseError> {
        let mut s = self.connect();
        // The server may hang up before reading everything: that is fine.
        let _ = s.write_all(bytes);
        let _ = s.shutdown(Shutdown::Write);
        let mut answer = Vec::new();
        match s.read_to_end(&mut answer) {
            Ok(_) => Ok(answer),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                Err(TestCaseError::fail(format!("the server hung: no answer and no hang-up within {HANG:?}")))
            }
            Err(_) => Ok(answer), // reset by the server
        }
    }

    /// The server is alive, answers a query and stays within its memory
    /// bound.
    fn healthy(&mut self) -> Result<(), TestCaseError> {
        prop_assert!(self.child.try_wait().unwrap().is_none(), "the server exited");
        let answer = self.exchange(&[startup(&[]), query("SELECT 41 + 1"), terminate()].concat())?;
        prop_assert!(messages(&answer).iter().any(|(k, body)| *k == b'D' && body.ends_with(b"42")), "no answer");
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let hwm: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        prop_assert!(hwm < MEMORY_BOUND_KIB, "peak memory {hwm} KiB");
        Ok(())
    }

    /// Runs a target: every case through `exchange`, a health check every
    /// 64 cases and at the end.
    fn fuzz(mut self, name: &str, strategy: impl Strategy<Value = Vec<u8>>) {
        let cases = std::cell::Cell::new(0u64);
        let me = std::cell::RefCell::new(&mut self);
        let logged = std::cell::Cell::new(0usize);
        fuzz(name, strategy, |bytes| {
            let answer = me.borrow().exchange(&bytes)?;
            // What the server logged since the last case: this case's doing.
            let log = std::fs::read(&me.borrow().log).unwrap_or_default();
            let new = String::from_utf8_lossy(&log[logged.get().min(log.len())..]).into_owned();
            logged.set(log.len());
            prop_assert!(!new.contains("bug:") && !new.contains("panicked"), "the server panicked:\n{new}");
            // The panic guard's answer: a bug, even if the server survived it.
            prop_assert!(!contains(&answer, b"leadline hit a bug"), "a panic: {}", String::from_utf8_lossy(&answer));
            cases.set(cases.get() + 1);
            if cases.get().is_multiple_of(64) { me.borrow_mut().healthy() } else { Ok(()) }
        });
        self.healthy().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(!log.contains("bug:") && !log.contains("panicked"), "the server panicked:\n{log}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The messages of an answer: (type, body).
fn messages(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 5 {
        let len = i32::from_be_bytes(b[1..5].try_into().unwrap()).max(4) as usize;
        let end = (1 + len).min(b.len());
        out.push((b[0], b[5..end].to_vec()));
        b = &b[end..];
    }
    out
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    [&[kind][..], &((body.len() + 4) as i32).to_be_bytes(), body].concat()
}

fn cstr(s: &str) -> Vec<u8> {
    [s.as_bytes(), b"\0"].concat()
}

fn startup(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in [("user", "leadline"), ("database", "leadline")].iter().chain(extra) {
        body.extend(cstr(k));
        body.extend(cstr(v));
    }
    body.push(0);
    [((body.len() + 4) as i32).to_be_bytes().to_vec(), body].concat()
}

fn query(sql: &str) -> Vec<u8> {
    message(b'Q', &cstr(sql))
}

fn terminate() -> Vec<u8> {
    message(b'X', &[])
}

fn parse(name: &str, sql: &str, types: &[i32]) -> Vec<u8> {
    let mut body = [cstr(name), cstr(sql)].concat();
    body.extend((types.len() as i16).to_be_bytes());
    types.iter().for_each(|t| body.extend(t.to_be_bytes()));
    message(b'P', &body)
}

/// Bind with text or binary parameters and results in `result_format`.
fn bind(stmt: &str, params: &[(i16, Option<&[u8]>)], result_format: i16) -> Vec<u8> {
    let mut body = [cstr(""), cstr(stmt)].concat();
    body.extend((params.len() as i16).to_be_bytes());
    params.iter().for_each(|(f, _)| body.extend(f.to_be_bytes()));
    body.extend((params.len() as i16).to_be_bytes());
    for (_, v) in params {
        match v {
            None => body.extend((-1i32).to_be_bytes()),
            Some(v) => {
                body.extend((v.len() as i32).to_be_bytes());
                body.extend(*v);
            }
        }
    }
    body.extend(1i16.to_be_bytes());
    body.extend(result_format.to_be_bytes());
    message(b'B', &body)
}

fn describe_portal() -> Vec<u8> {
    message(b'D', &[b'P', 0])
}

fn execute(max_rows: i32) -> Vec<u8> {
    message(b'E', &[cstr(""), max_rows.to_be_bytes().to_vec()].concat())
}

fn sync() -> Vec<u8> {
    message(b'S', &[])
}

/// SQL a client sends, to mutate.
const SQL: &[&str] = &[
    "SELECT * FROM dora_metrics('week') LIMIT 3",
    "SELECT service, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC",
    "SELECT lead_time(lead_time, 0.9) FROM changes WHERE environment = 'production'",
    "SET leadline.attribution_window = '6 hours'",
    "SET leadline.as_of = '2026-08-01T00:00:00Z'",
    "SHOW leadline.attribution_window",
    "SELECT relname FROM pg_catalog.pg_class WHERE relname LIKE 'ev%'",
    "SELECT CAST('2026-03-02' AS TIMESTAMP WITH TIME ZONE) + INTERVAL '1 day'",
    "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES ('fz-1', 'commit', '2026-03-02T09:00:00Z', 's', 'c')",
    "DECLARE c CURSOR FOR SELECT event_id FROM events; FETCH 2 FROM c; CLOSE c",
    "BEGIN; SELECT 1; COMMIT",
    "BEGIN; INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES ('fz-3', 'commit', '2026-03-02T09:00:00Z', 's', 'c'); SAVEPOINT a; SELECT nope; ROLLBACK TO a; RELEASE a; COMMIT",
    "START TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM events; ROLLBACK",
    "COPY (SELECT event_id, occurred_at FROM events LIMIT 3) TO STDOUT WITH (FORMAT csv, HEADER)",
];

fn simple_seeds() -> Vec<Vec<u8>> {
    SQL.iter().map(|sql| [query(sql), query("SELECT 1"), terminate()].concat()).collect()
}

fn extended_seeds() -> Vec<Vec<u8>> {
    let ts = (830_000_000_000_000i64).to_be_bytes();
    let one = 1i32.to_be_bytes();
    vec![
        [
            parse("", "SELECT event_id FROM events WHERE service = $1 LIMIT $2", &[25, 23]),
            bind("", &[(0, Some(b"svc-001")), (1, Some(&one))], 1),
            describe_portal(),
            execute(0),
            sync(),
        ]
        .concat(),
        [
            parse("s1", "SELECT count(*) FROM events WHERE occurred_at < $1", &[1184]),
            bind("s1", &[(1, Some(&ts))], 0),
            execute(1),
            execute(0),
            sync(),
        ]
        .concat(),
        [
            parse("", "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES ($1, 'commit', $2, 's', 'c')", &[]),
            bind("", &[(0, Some(b"fz-2")), (0, Some(b"2026-03-02T09:00:00Z"))], 0),
            execute(0),
            sync(),
        ]
        .concat(),
        [parse("", "SELECT $1::interval, $2::text[]", &[1186, 1009]), bind("", &[(0, Some(b"1 day")), (0, None)], 0), execute(0), sync()].concat(),
        // A transaction block over the extended protocol, as psycopg runs one.
        [
            parse("", "BEGIN", &[]),
            bind("", &[], 0),
            execute(0),
            parse("", "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES ($1, 'commit', '2026-03-02T09:00:00Z', 's', 'c')", &[]),
            bind("", &[(0, Some(b"fz-4"))], 0),
            execute(0),
            sync(),
            parse("", "COMMIT", &[]),
            bind("", &[], 0),
            execute(0),
            sync(),
        ]
        .concat(),
    ]
    .into_iter()
    .map(|m| [m, terminate()].concat())
    .collect()
}

fn copy_seeds() -> Vec<Vec<u8>> {
    let text = "fz-t1\tcommit\t2026-03-02T09:00:00Z\tsvc-fz\tabc\t\\N\t\\N\t{a,\"b c\"}\tteam\tsrc\t{\"k\": 1}\t1\n";
    let csv = "event_id,event_type,occurred_at,service,commit_sha\nfz-c1,commit,2026-03-02T09:00:00Z,svc-fz,\"a,b\"\n";
    let mut binary = b"PGCOPY\n\xff\r\n\0".to_vec();
    binary.extend([0u8; 8]);
    binary.extend(2i16.to_be_bytes());
    for v in [&b"fz-b1"[..], b"commit"] {
        binary.extend((v.len() as i32).to_be_bytes());
        binary.extend(v);
    }
    binary.extend((-1i16).to_be_bytes());
    let done = message(b'c', &[]);
    vec![
        [query("COPY events FROM STDIN"), message(b'd', text.as_bytes()), done.clone()].concat(),
        [query("COPY events (event_id, event_type, occurred_at, service, commit_sha) FROM STDIN WITH (FORMAT csv, HEADER MATCH)"), message(b'd', csv.as_bytes()), done.clone()].concat(),
        [query("COPY events (event_id, event_type) FROM STDIN (FORMAT binary)"), message(b'd', &binary), done.clone()].concat(),
        [query("COPY events FROM STDIN"), message(b'd', b"x\ty\n"), message(b'f', b"client gave up\0")].concat(),
        // A COPY held by a transaction block until COMMIT.
        [query("BEGIN"), query("COPY events FROM STDIN"), message(b'd', text.as_bytes()), done.clone(), query("COMMIT")].concat(),
    ]
    .into_iter()
    .map(|m| [m, query("SELECT 1"), terminate()].concat())
    .collect()
}

/// A connection's first bytes, mutated: start-up packets (and SSL, GSS and
/// cancel requests), then anything after a valid start-up.
#[test]
fn fuzz_wire_startup() {
    let seeds = vec![
        startup(&[]),
        startup(&[("application_name", "fz"), ("options", "-c statement_timeout=5"), ("replication", "database")]),
        [8i32.to_be_bytes(), 80_877_103i32.to_be_bytes()].concat(), // SSLRequest
        [[8i32.to_be_bytes(), 80_877_104i32.to_be_bytes()].concat(), startup(&[])].concat(), // GSSENCRequest
        [16i32.to_be_bytes(), 80_877_102i32.to_be_bytes(), 1i32.to_be_bytes(), 2i32.to_be_bytes()].concat(), // CancelRequest
        [startup(&[]), query("SELECT 1")].concat(),
    ];
    Server::start().fuzz("wire start-up", mutated(seeds));
}

#[test]
fn fuzz_wire_simple_query() {
    Server::start().fuzz("wire simple query", mutated(simple_seeds()).prop_map(|tail| [startup(&[]), tail].concat()));
}

#[test]
fn fuzz_wire_extended_query() {
    Server::start()
        .fuzz("wire extended query", mutated(extended_seeds()).prop_map(|tail| [startup(&[]), tail].concat()));
}

#[test]
fn fuzz_wire_copy_data() {
    Server::start().fuzz("wire COPY data", mutated(copy_seeds()).prop_map(|tail| [startup(&[]), tail].concat()));
}

/// SQL statements over the catalog: generated from the tables, table
/// functions, columns and functions leadline has, with odd literals.
fn sql_statement() -> impl Strategy<Value = String> {
    let relation = prop::sample::select(vec![
        "events",
        "rejected_events",
        "deployments",
        "changes",
        "incidents",
        "dora_quality",
        "dora_metrics('day')",
        "dora_metrics('week', '2026-01-01', '2026-03-01')",
        "dora_metrics('month', now() - interval '3650 days', now())",
        "pg_catalog.pg_class",
        "pg_catalog.pg_attribute",
        "pg_catalog.pg_type",
        "information_schema.columns",
        "pg_catalog.pg_proc",
        "pg_catalog.pg_settings",
    ]);
    let literal = prop::sample::select(vec![
        "NULL",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "1e308",
        "'NaN'::double precision",
        "''",
        "'x'",
        "'2026-03-02T09:00:00Z'",
        "'0001-01-01'",
        "'9999-12-31T23:59:59Z'",
        "interval '1 day'",
        "interval '9999999 hours'",
        "ARRAY['a','b']",
        "'{a,b}'::text[]",
        "'pg_catalog.pg_class'",
        "'svc-001'",
        "TRUE",
        "'week'",
        "'production'",
        "E'\\\\x00'",
        "$$dollar$$",
    ]);
    let column = prop::sample::select(vec![
        "*",
        "event_id",
        "service",
        "environment",
        "occurred_at",
        "ingested_at",
        "change_ids",
        "attributes",
        "lead_time",
        "restore_time",
        "recovery_time",
        "deployed_at",
        "bucket_start",
        "failed",
        "rework",
        "reason",
        "relname",
        "oid",
        "attname",
        "atttypid",
        "typname",
        "setting",
        "name",
        "column_name",
        "no_such_column",
    ]);
    let function = prop::sample::select(vec![
        "count",
        "min",
        "max",
        "lead_time",
        "time_to_restore",
        "change_failure_rate",
        "deployment_frequency",
        "failed_deployment_recovery_time",
        "date_trunc('week', {})",
        "dora_tier('lead_time', {})",
        "length",
        "upper",
        "abs",
        "to_timestamp",
        "CAST({} AS TEXT)",
        "CAST({} AS BIGINT)",
        "CAST({} AS INTERVAL)",
        "pg_get_expr({}, 0)",
        "format_type({}, NULL)",
        "array_length({}, 1)",
        "{} + interval '1 year'",
        "{} - {}",
        "{} * 1000000000",
        "{} / 0",
        "coalesce({}, {})",
        "{}::regclass",
        "quote_ident({})",
    ]);
    let expr = (
        function,
        column.clone(),
        prop_oneof![column.clone().prop_map(String::from), literal.clone().prop_map(String::from)],
    )
        .prop_map(|(f, c, other): (&str, &str, String)| {
            let c = if c == "*" { "1" } else { c };
            if f.contains("{}") { f.replacen("{}", c, 1).replacen("{}", &other, 1) } else { format!("{f}({c})") }
        });
    let clause = prop::sample::select(vec![
        "",
        " WHERE ",
        " GROUP BY 1",
        " ORDER BY 1 DESC",
        " LIMIT 5",
        " HAVING count(*) > 1",
    ]);
    (relation, column, expr, clause, literal, any::<bool>()).prop_map(|(rel, col, expr, clause, lit, agg)| {
        let select = if agg { expr } else { col.to_string() };
        let tail = if clause == " WHERE " { format!(" WHERE {select} = {lit}") } else { clause.to_string() };
        format!("SELECT {select} FROM {rel}{tail}")
    })
}

#[test]
fn fuzz_sql_over_the_catalog() {
    let statements = proptest::collection::vec(sql_statement(), 1..4).prop_map(|sqls| {
        let mut b = startup(&[]);
        for sql in sqls {
            b.extend(query(&sql));
        }
        b.extend(terminate());
        b
    });
    Server::start().fuzz("SQL over the catalog", statements);
}
