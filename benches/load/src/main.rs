//! `leadline-load`: N PostgreSQL connections replaying a workload mix
//! against `leadline serve` (or any server with leadline's tables) for a
//! bounded time; see `--help` and benches/README.md.

mod stats;
mod workload;

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use stats::{OpenLoop, Recorder, Report, Verification};
use workload::{Dataset, Kind, Mix};

const ABOUT: &str = "Drives a leadline server with N concurrent PostgreSQL connections (tokio-postgres) for a \
bounded time, closed loop or at a fixed rate (--rate), replaying a weighted mix of dashboard panel queries, ad hoc DORA aggregates, single-row INSERTs and \
cancelled long queries; reports each kind's count, q/s, latency percentiles and errors by SQLSTATE, and checks \
that every acknowledged INSERT is in `events` exactly once.";

const LONG_ABOUT: &str = "Drives a leadline server with N concurrent PostgreSQL connections (tokio-postgres) for a \
bounded time, replaying a weighted mix of requests; reports each kind's count, q/s, latency percentiles and errors by \
SQLSTATE, and checks that every acknowledged INSERT is in `events` exactly once.

CLOSED LOOP: each connection sends its next request as soon as the previous one is answered (no think time, no \
target rate), so the offered load adapts to the server: q/s is what N busy clients got, and the latencies do not \
include time a request would have waited to be sent had the clients kept a fixed schedule (coordinated omission). \
All connections are opened before the clock starts; requests still running at the end of --duration are waited \
for (up to --request-timeout) and counted, and q/s divides by the whole measured time.

OPEN LOOP (--rate Q): Q requests per second in all, on a fixed schedule (request i is due at i/Q s), whatever the \
server does: the next free connection takes the next request and sends it when it is due, or at once if it is \
already late (all connections were busy). Latencies are measured from the time each request was due, not from when \
it was sent, so the wait for a free connection counts (no coordinated omission); `lag` is that wait alone. The \
backlog (requests due but not yet sent) is sampled every 100 ms; requests still unsent when --duration ends are \
not sent. The offered rate was SUSTAINED when the backlog did not grow: at the end it is no larger than the \
largest seen in the first half of the run, or than the number of connections. The report gives the offered and \
achieved rates (answered / measured time) and the backlog.

KINDS (--mix weights): trend: the filtered dora_metrics panel alone (the weekly trend of one service or team, one \
environment, a 7/30/90 day range). panel: one panel of a DORA dashboard for one service or team, one environment and a 7/30/90 \
day range, picked at random among what `deployments` holds: the weekly dora_metrics trend (filtered), the stat \
panels (DORA aggregates over the range), the recent deployments table, the incidents table. adhoc: DORA aggregates \
with GROUP BY over deployments, changes and incidents. insert: one INSERT of one valid new event (a commit or a \
successful deployment, late by up to a week) with a unique event_id (--id-prefix), acknowledged when the server \
answers INSERT 0 1. cancel: a long query (--long-query) cancelled with a CancelRequest after --cancel-after-ms; the \
expected answer is SQLSTATE 57014. A cancel that reaches the server before the query has started is \
ignored, as in PostgreSQL: the driver sends it again every 2 s until the query answers, and counts the resent ones \
(`resent`). Each cancel is waited for until the server has acted on it (it then closes the cancel's connection), so \
none is still in flight to cancel the connection's next query. session: a new connection that sends one trend panel and closes, as a client that does not pool \
connections does (psql, a scheduled report): its latency includes the connection's start-up and session.

Latencies cover every request of a kind, whatever its outcome. Errors are counted by SQLSTATE, or `closed` (the \
connection broke), `timeout` (no answer within --request-timeout; the connection is then dropped and opened again), \
`client` (any other client-side failure), `rows` (an INSERT that answered OK but stored no row). Expected: 57014 for \
cancel, and any SQLSTATE given with --allow.

PROTOCOL (--protocol): simple sends each statement as a Query message; extended sends it as psycopg or JDBC do \
for a statement without parameters: Parse, Bind, Describe, Execute and Sync of the unnamed statement in one round \
trip (tokio-postgres' query_typed; results in binary). The cancel kind always uses the simple protocol. Connecting is reported as its own line (`connect`); a connection that \
cannot be opened (53300 when the server's max_connections is reached) takes no further part.

Exit status: 0 when there was no unexpected error and every acknowledged insert is in `events` exactly once, 1 \
otherwise, 2 when the run could not start.";

#[derive(Parser, Debug)]
#[command(name = "leadline-load", about = ABOUT, long_about = LONG_ABOUT)]
struct Args {
    /// The server, as a PostgreSQL URL (or key=value string).
    #[arg(long, default_value = "postgresql://leadline@127.0.0.1:5432/leadline")]
    url: String,
    /// Concurrent connections: closed-loop clients, or with --rate the pool that sends the scheduled requests.
    #[arg(short, long, default_value_t = 10)]
    connections: usize,
    /// Open loop: send this many requests per second in all, on a fixed schedule (see OPEN LOOP); without it
    /// each connection sends its next request as soon as the last is answered.
    #[arg(long, value_name = "Q")]
    rate: Option<f64>,
    /// How requests are sent: `simple` (Query messages) or `extended` (Parse/Bind/Describe/Execute/Sync of the
    /// unnamed statement, in one round trip).
    #[arg(long, value_enum, default_value_t = Protocol::Simple)]
    protocol: Protocol,
    /// How long to send requests, in seconds.
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    /// The workload: KIND=WEIGHT pairs (kinds trend, panel, adhoc, insert, cancel, session); each request picks a kind with
    /// probability weight / total.
    #[arg(long, default_value = "panel=70,adhoc=10,insert=15,cancel=5")]
    mix: Mix,
    /// Seed of the random choices (each connection derives its own from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The cancel kind's long query.
    #[arg(long, default_value = "SELECT count(*) FROM generate_series(1, 1000000000000) WHERE value % 7 = 3")]
    long_query: String,
    /// How long after sending the long query the cancel request is sent, in ms.
    #[arg(long, default_value_t = 100)]
    cancel_after_ms: u64,
    /// A request with no answer after this many seconds counts as a `timeout` error (the client never hangs).
    #[arg(long, default_value_t = 120.0)]
    request_timeout: f64,
    /// Prefix of the inserted events' ids (default: `load-<unix ms>-<pid>`, unique per run); the check after
    /// the run looks for the acknowledged ids among `events` whose id starts with it.
    #[arg(long)]
    id_prefix: Option<String>,
    /// A SQLSTATE counted as expected for any kind (repeatable), e.g. `--allow 53300` when testing the
    /// connection limit.
    #[arg(long = "allow", value_name = "SQLSTATE")]
    allow: Vec<String>,
    /// The server's process id: report its peak RSS (VmHWM) and RSS from /proc/PID/status after the run
    /// (the server must run on this machine).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Skip the check of the acknowledged inserts after the run.
    #[arg(long)]
    no_verify: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Simple,
    Extended,
}

/// The open loop's fixed schedule: request `i` is due `i / rate` seconds
/// after `start`; the next free connection claims the next request.
struct Schedule {
    start: Instant,
    end: Instant,
    rate: f64,
    /// Requests due before `end`.
    total: u64,
    /// The next request to claim.
    next: AtomicU64,
    /// Requests sent so far.
    sent: AtomicU64,
}

impl Schedule {
    fn new(start: Instant, duration: Duration, rate: f64) -> Self {
        let total = (duration.as_secs_f64() * rate).ceil() as u64;
        Schedule { start, end: start + duration, rate, total, next: AtomicU64::new(0), sent: AtomicU64::new(0) }
    }

    fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// Requests due but not sent yet at `now`.
    fn backlog(&self, now: Instant) -> u64 {
        let due =
            ((now.saturating_duration_since(self.start).as_secs_f64() * self.rate).floor() as u64 + 1).min(self.total);
        due.saturating_sub(self.sent.load(Ordering::SeqCst))
    }
}

/// How long a cancelled query may go on before the cancel is sent again.
const CANCEL_RESEND: Duration = Duration::from_secs(2);

/// What one connection does for the run.
struct Worker {
    id: usize,
    config: Arc<tokio_postgres::Config>,
    dataset: Arc<Dataset>,
    mix: Mix,
    long_query: Arc<str>,
    protocol: Protocol,
    cancel_after: Duration,
    request_timeout: Duration,
    id_prefix: Arc<str>,
    rng: StdRng,
    recorder: Recorder,
    /// Ids of the inserts the server acknowledged.
    acknowledged: Vec<String>,
    inserts: u64,
}

/// How a request ended, when not with the answer it wanted.
struct Failure {
    code: String,
    message: String,
    /// The connection cannot be used any more.
    broken: bool,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        let (code, message) = match e.as_db_error() {
            Some(db) => (db.code().code().to_string(), db.message().to_string()),
            None if e.is_closed() => ("closed".to_string(), e.to_string()),
            None => ("client".to_string(), e.to_string()),
        };
        Failure { broken: e.is_closed() || e.as_db_error().is_none(), code, message }
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server hangs up; its errors
        // reach the client's requests.
        let _ = connection.await;
    });
    Ok(client)
}

impl Worker {
    async fn connect(&mut self) -> Option<Client> {
        let t = Instant::now();
        match tokio::time::timeout(self.request_timeout, connect(&self.config)).await {
            Ok(Ok(client)) => {
                self.recorder.op("connect").ok(t.elapsed());
                Some(client)
            }
            Ok(Err(e)) => {
                let f = Failure::from(e);
                self.recorder.op("connect").error(t.elapsed(), &f.code, f.message);
                None
            }
            Err(_) => {
                self.recorder.op("connect").error(t.elapsed(), "timeout", "no answer to the startup".into());
                None
            }
        }
    }

    /// Closed loop: sends requests one after the other until `deadline`.
    async fn run(mut self, mut client: Client, deadline: Instant) -> Self {
        while Instant::now() < deadline {
            let t = Instant::now();
            match self.send(client, t).await {
                Some(c) => client = c,
                None => break,
            }
        }
        self
    }

    /// Open loop: claims the next request of `schedule`, sends it when it is
    /// due (at once if late), until the schedule ends.
    async fn run_open(mut self, mut client: Client, schedule: &Schedule) -> Self {
        loop {
            let i = schedule.next.fetch_add(1, Ordering::SeqCst);
            if i >= schedule.total {
                break;
            }
            let due = schedule.due(i);
            tokio::time::sleep_until(due.into()).await;
            let now = Instant::now();
            if now >= schedule.end {
                break;
            }
            schedule.sent.fetch_add(1, Ordering::SeqCst);
            self.recorder.op("lag").ok(now - due);
            match self.send(client, due).await {
                Some(c) => client = c,
                None => break,
            }
        }
        self
    }

    /// Sends one request of a kind from the mix and records it, its latency
    /// measured from `since`; reconnects once after a broken connection, and
    /// gives `None` when that fails.
    async fn send(&mut self, mut client: Client, since: Instant) -> Option<Client> {
        let kind = self.mix.pick(&mut self.rng);
        let outcome = tokio::time::timeout(self.request_timeout, self.request(&client, kind)).await;
        let took = since.elapsed();
        let failure = match outcome {
            Ok(Ok(())) => {
                self.recorder.op(kind.name()).ok(took);
                None
            }
            Ok(Err(f)) => Some(f),
            Err(_) => Some(Failure {
                code: "timeout".into(),
                message: format!("no answer within {:?}", self.request_timeout),
                broken: true,
            }),
        };
        if let Some(f) = failure {
            self.recorder.op(kind.name()).error(took, &f.code, f.message);
            if f.broken || client.is_closed() {
                client = self.connect().await?;
            }
        }
        Some(client)
    }

    /// Sends a CancelRequest and waits until the server has acted on it: it
    /// closes the request's connection once it has. Returning earlier (as
    /// `CancelToken::cancel_query` does) leaves a cancel in flight that can
    /// land on this connection's next query once the long one has answered.
    async fn cancel(&self, token: &tokio_postgres::CancelToken) -> Result<(), Failure> {
        let failed = |e: String| Failure {
            code: "client".into(),
            message: format!("sending the cancel request: {e}"),
            broken: false,
        };
        let (host, port) = match (self.config.get_hosts().first(), self.config.get_ports().first()) {
            (Some(tokio_postgres::config::Host::Tcp(h)), port) => (h.clone(), port.copied().unwrap_or(5432)),
            _ => return Err(failed("--url names no TCP host".into())),
        };
        let mut socket =
            tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| failed(e.to_string()))?;
        token.cancel_query_raw(&mut socket, NoTls).await.map_err(|e| failed(e.to_string()))?;
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut rest).await.map_err(|e| failed(e.to_string()))?;
        Ok(())
    }

    /// Sends `sql` in the chosen protocol; the rows it stored or returned.
    async fn statement(&self, client: &Client, sql: &str) -> Result<Option<u64>, Failure> {
        Ok(match self.protocol {
            Protocol::Simple => client.simple_query(sql).await?.iter().find_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            }),
            Protocol::Extended => Some(client.execute_typed(sql, &[]).await?),
        })
    }

    async fn request(&mut self, client: &Client, kind: Kind) -> Result<(), Failure> {
        match kind {
            Kind::Trend | Kind::Panel => {
                let sql = self.dataset.panel(&mut self.rng, kind == Kind::Trend);
                self.statement(client, &sql).await?;
            }
            Kind::Session => {
                let fresh = connect(&self.config).await?;
                let sql = self.dataset.panel(&mut self.rng, true);
                self.statement(&fresh, &sql).await?;
            }
            Kind::Adhoc => {
                let sql = self.dataset.adhoc(&mut self.rng);
                self.statement(client, &sql).await?;
            }
            Kind::Insert => {
                self.inserts += 1;
                let id = format!("{}-{}-{}", self.id_prefix, self.id, self.inserts);
                let sql = self.dataset.insert(&mut self.rng, &id);
                let stored = self.statement(client, &sql).await?;
                if stored != Some(1) {
                    return Err(Failure {
                        code: "rows".into(),
                        message: format!("INSERT answered {stored:?} rows, not 1"),
                        broken: false,
                    });
                }
                self.acknowledged.push(id);
            }
            Kind::Cancel => {
                let token = client.cancel_token();
                let query = client.simple_query(&self.long_query);
                tokio::pin!(query);
                tokio::select! {
                    done = &mut query => {
                        // Answered before the cancel was even sent.
                        done?;
                        return Ok(());
                    }
                    _ = tokio::time::sleep(self.cancel_after) => {}
                }
                // A cancel that reaches the server before the query has
                // started is ignored (as in PostgreSQL): send it again each
                // RESEND until the query answers, counted apart.
                let mut sent = 0u32;
                loop {
                    self.cancel(&token).await?;
                    if sent > 0 {
                        self.recorder.op("resent").ok(Duration::ZERO);
                    }
                    sent += 1;
                    tokio::select! {
                        done = &mut query => {
                            done?;
                            return Ok(());
                        }
                        _ = tokio::time::sleep(CANCEL_RESEND) => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// Samples the open loop's backlog every 100 ms until its schedule ends.
async fn sample_backlog(schedule: &Schedule) -> OpenLoop {
    let half = schedule.start + (schedule.end - schedule.start) / 2;
    let mut open = OpenLoop { rate: schedule.rate, scheduled: schedule.total, ..Default::default() };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= schedule.end {
            break;
        }
        let backlog = schedule.backlog(now);
        open.backlog_max = open.backlog_max.max(backlog);
        if now < half {
            open.backlog_first_half_max = open.backlog_first_half_max.max(backlog);
        }
    }
    tokio::time::sleep_until(schedule.end.into()).await;
    // Due by the end, and not sent: these are never sent.
    open.backlog_end = schedule.total.saturating_sub(schedule.sent.load(Ordering::SeqCst));
    open.backlog_max = open.backlog_max.max(open.backlog_end);
    open
}

/// Looks up every acknowledged id in `events`: each must be there exactly once.
async fn verify(config: &tokio_postgres::Config, prefix: &str, acknowledged: &[String]) -> Verification {
    let mut v = Verification { acknowledged: acknowledged.len() as u64, ..Default::default() };
    let sql = format!(
        "SELECT event_id, count(*) FROM events WHERE starts_with(event_id, {}) GROUP BY event_id",
        workload::quote(&format!("{prefix}-"))
    );
    let answer = match connect(config).await {
        Ok(client) => client.simple_query(&sql).await,
        Err(e) => Err(e),
    };
    let rows = match answer {
        Ok(rows) => rows,
        Err(e) => {
            v.failed = Some(e.to_string());
            return v;
        }
    };
    let mut found = std::collections::HashMap::new();
    for m in rows {
        if let SimpleQueryMessage::Row(r) = m
            && let (Some(id), Some(n)) = (r.get(0), r.get(1).and_then(|n| n.parse::<u64>().ok()))
        {
            found.insert(id.to_string(), n);
        }
    }
    for id in acknowledged {
        match found.remove(id) {
            Some(1) => v.verified += 1,
            Some(n) => v.duplicated.push((id.clone(), n)),
            None => v.missing.push(id.clone()),
        }
    }
    // What is left was inserted without an acknowledgement (or twice).
    for (id, n) in found {
        if n > 1 {
            v.duplicated.push((id, n));
        } else {
            v.unacknowledged_present += 1;
        }
    }
    v
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(passed) => {
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("leadline-load: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let positive = |s: f64| s.is_finite() && s > 0.0;
    if !positive(args.duration) || !positive(args.request_timeout) {
        return Err("--duration and --request-timeout must be positive numbers of seconds".into());
    }
    if args.rate.is_some_and(|q| !positive(q)) {
        return Err("--rate must be a positive number of requests per second".into());
    }
    let mut config = tokio_postgres::Config::from_str(&args.url).map_err(|e| format!("--url: {e}"))?;
    config.application_name("leadline-load");
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs_f64(args.request_timeout));
    }
    let config = Arc::new(config);
    let setup = connect(&config).await.map_err(|e| format!("connecting to {}: {e}", args.url))?;
    let dataset = Arc::new(Dataset::discover(&setup).await.map_err(|e| format!("reading the data's services: {e}"))?);
    drop(setup);
    let id_prefix: Arc<str> = args
        .id_prefix
        .clone()
        .unwrap_or_else(|| {
            let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            format!("load-{ms}-{}", std::process::id())
        })
        .into();
    let duration = Duration::from_secs_f64(args.duration);
    // Everyone connects, then the clock starts for all at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(args.connections + 1));
    // The open loop's schedule, made once everyone is connected.
    let (schedule_tx, schedule_rx) = tokio::sync::watch::channel(None::<Arc<Schedule>>);
    let mut tasks = Vec::new();
    for id in 0..args.connections {
        let mut worker = Worker {
            id,
            config: config.clone(),
            dataset: dataset.clone(),
            mix: args.mix.clone(),
            long_query: args.long_query.as_str().into(),
            protocol: args.protocol,
            cancel_after: Duration::from_millis(args.cancel_after_ms),
            request_timeout: Duration::from_secs_f64(args.request_timeout),
            id_prefix: id_prefix.clone(),
            rng: StdRng::seed_from_u64(args.seed.wrapping_mul(1_000_003).wrapping_add(id as u64)),
            recorder: Recorder::default(),
            acknowledged: Vec::new(),
            inserts: 0,
        };
        let barrier = barrier.clone();
        let open = args.rate.is_some();
        let mut schedule = schedule_rx.clone();
        tasks.push(tokio::spawn(async move {
            let client = worker.connect().await;
            barrier.wait().await;
            let connected = client.is_some();
            if let Some(client) = client {
                if open {
                    let s = schedule.wait_for(Option::is_some).await.ok().and_then(|s| s.clone());
                    if let Some(s) = s {
                        worker = worker.run_open(client, &s).await;
                    }
                } else {
                    worker = worker.run(client, Instant::now() + duration).await;
                }
            }
            (worker, connected)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut open_loop = None;
    if let Some(rate) = args.rate {
        let schedule = Arc::new(Schedule::new(start, duration, rate));
        let _ = schedule_tx.send(Some(schedule.clone()));
        open_loop = Some(sample_backlog(&schedule).await);
    }
    let mut recorder = Recorder::default();
    let mut acknowledged = Vec::new();
    let mut connected = 0;
    for task in tasks {
        let (worker, ok) = task.await.map_err(|e| format!("a connection's task failed: {e}"))?;
        connected += usize::from(ok);
        recorder.merge(worker.recorder);
        acknowledged.extend(worker.acknowledged);
    }
    let elapsed = start.elapsed();
    let memory = args.server_pid.map(stats::server_memory);
    let inserted = recorder.ops.get("insert").is_some_and(|s| s.count() > 0);
    let verification =
        if args.no_verify || !inserted { None } else { Some(verify(&config, &id_prefix, &acknowledged).await) };
    let allow = args.allow.clone();
    let expected = move |op: &str, code: &str| (op == "cancel" && code == "57014") || allow.iter().any(|a| a == code);
    let settings = json!({
        "url": args.url, "duration_s": args.duration, "mix": args.mix.0.iter().map(|(k, w)| (k.name(), w)).collect::<std::collections::BTreeMap<_, _>>(),
        "seed": args.seed, "cancel_after_ms": args.cancel_after_ms, "long_query": args.long_query,
        "request_timeout_s": args.request_timeout, "id_prefix": &*id_prefix, "allow": args.allow,
        "loop": if args.rate.is_some() { "open" } else { "closed" }, "rate": args.rate,
        "protocol": format!("{:?}", args.protocol).to_lowercase(), "services": dataset.targets.len(), "teams": dataset.teams.len(),
    });
    let order: Vec<&str> =
        std::iter::once("connect").chain(Kind::ALL.map(Kind::name)).chain(["resent", "lag"]).collect();
    let report = Report {
        settings,
        connections: args.connections,
        connected,
        elapsed,
        recorder: &recorder,
        order: &order,
        expected: &expected,
        verification: verification.as_ref(),
        memory,
        open_loop,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json()).unwrap_or_default());
    } else {
        print!("{}", report.table());
    }
    Ok(report.passed())
}
