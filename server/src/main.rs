//! `leadline`: ingest delivery events, query DORA metrics, serve them over
//! the PostgreSQL wire protocol.

mod allocator;
mod config;
mod http;
mod output;
mod pg;
mod telemetry;
mod writer;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use leadline_engine::{Appender, Catalog, DataStatus, EventLog, MemoryLimits, Progress, session_config};
use output::OutputFormat;

#[global_allocator]
static GLOBAL: allocator::Allocator = allocator::Allocator;

#[derive(Parser)]
#[command(name = "leadline", version, about = "An event-sourced database for DORA software-delivery metrics")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DataArg {
    /// Data directory (created by the first ingest).
    #[arg(long, env = "LEADLINE_DATA", default_value = "leadline-data")]
    data: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Append events from NDJSON (.ndjson/.jsonl, `-` for stdin), CSV or Parquet files.
    ///
    /// Each file is validated row by row and appended atomically: good rows are
    /// stored, duplicates (same event_id and content) are skipped, bad rows and
    /// conflicts (same event_id, other content) are kept in `rejected_events`.
    /// Exit status: 0 all rows accepted, 2 some rows rejected, 1 an error (that
    /// file appended nothing).
    Ingest {
        #[command(flatten)]
        data: DataArg,
        /// Input files.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Run one SQL statement in-process and print the result.
    Query {
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Read the log as it was at this ingestion time (RFC 3339), like `SET leadline.as_of`.
        #[arg(long)]
        as_of: Option<String>,
        /// Attribution window for inferred incident causes (e.g. '24 hours', 'unbounded').
        #[arg(long)]
        attribution_window: Option<String>,
        /// The SQL statement.
        sql: String,
    },
    /// Write a synthetic, deterministic delivery history as NDJSON.
    Generate {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 5)]
        services: u32,
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Stop after about this many events.
        #[arg(long)]
        events: Option<u64>,
        /// First day of the history (UTC).
        #[arg(long, default_value = "2026-01-05")]
        start: chrono::NaiveDate,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Merge small data files into one per partition and delete files removed over an hour ago.
    Compact {
        #[command(flatten)]
        data: DataArg,
    },
    /// Bring the read model (the persisted projections and metric rows under
    /// <data>/model, published as Delta tables under <data>/tables) up to
    /// date with the log, or fold it all again with
    /// --from-scratch. Appends do this themselves; run it after an append
    /// whose read-model update failed, or to rebuild a damaged model.
    Rebuild {
        #[command(flatten)]
        data: DataArg,
        /// Fold the whole log again instead of only what is new.
        #[arg(long)]
        from_scratch: bool,
        /// Also write the event-id index again from the log (the repair of a
        /// damaged index that `leadline check` reports).
        #[arg(long)]
        index: bool,
    },
    /// Verify a data directory: every commit and data file against what was
    /// written, the event-id index against the log, the read model against a
    /// fold of the log, and the saved views.
    ///
    /// Prints every damaged file with what it affects, then notes: what a
    /// writer that died left behind (the next writer tidies it) and a read
    /// model behind the log. Writes nothing and takes no lock.
    ///
    /// Exit status: 0 no damage; 10 the log is damaged (a commit or data
    /// file: restore it from a backup); 11 the event-id index is damaged
    /// (`leadline rebuild --index`); 12 the read model is damaged (`leadline
    /// rebuild --from-scratch`); 13 a saved view's file is damaged (drop or
    /// replace the view); 1 the check could not run. With damage in several
    /// places, the lowest of these codes.
    Check {
        #[command(flatten)]
        data: DataArg,
    },
    /// Serve the data directory over the PostgreSQL wire protocol (database `leadline`).
    Serve {
        #[command(flatten)]
        data: DataArg,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Load the embedded sample history into a data directory (first run) and serve it.
    Demo {
        /// Data directory of the demo (default: ~/.local/share/leadline/demo).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a data directory's state: log version, events, size, read-model lag, last append, quarantine.
    Status {
        #[command(flatten)]
        data: DataArg,
        /// Print it as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Render the DORA report (HTML with charts, Markdown, CSV or JSON), or a saved query's.
    ///
    /// Per service and rolled up: deployment frequency, lead time, change
    /// failure rate, time to restore and failed deployment recovery time,
    /// and rework rate, with their DORA tiers, their trend over the buckets
    /// and the change against the previous period of the same length. The
    /// HTML is one self-contained file (no script, nothing fetched).
    #[command(after_help = REPORT_EXIT_CODES)]
    Report(Box<ReportArgs>),
    /// Print a SCRAM-SHA-256 verifier for a password (read from stdin) for the config file.
    Passwd {
        /// The user name (only echoed into the config line).
        user: String,
    },
}

const REPORT_EXIT_CODES: &str = "Exit status (for cron):
  0  the report was written
  1  an error: bad input (an unknown service, team or environment, a bad --chart, a SQL error), I/O
  2  bad command-line usage
  3  the report was written, but the data is empty (no events, nothing of the selection in the
     period, or a --sql query without rows) or stale (the newest event is older than --stale-after)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Md,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportGrain {
    Week,
    Month,
}

#[derive(clap::Args, Clone)]
struct ReportArgs {
    #[command(flatten)]
    data: DataArg,
    /// Bucket of the trend charts; the periods are whole buckets.
    #[arg(long, value_enum, default_value_t = ReportGrain::Week)]
    grain: ReportGrain,
    #[arg(long, default_value = "production")]
    environment: String,
    /// Only these services (repeat the flag or list several).
    #[arg(long = "service", value_name = "SERVICE", num_args = 1..)]
    services: Vec<String>,
    /// Only the services whose events name one of these teams.
    #[arg(long = "team", value_name = "TEAM", num_args = 1..)]
    teams: Vec<String>,
    /// First day of the period (a date or RFC 3339; default: 6 weeks or 3 months back from --to).
    #[arg(long)]
    from: Option<String>,
    /// Last day of the period, inclusive (default: the newest event's). The previous period
    /// is the same number of buckets before --from.
    #[arg(long)]
    to: Option<String>,
    /// Output format (default: from --out's extension, else html).
    #[arg(long, value_enum)]
    format: Option<ReportFormat>,
    /// Write here (atomically) instead of to stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Render this saved query (a file of one SQL statement) instead of the DORA report.
    #[arg(long, value_name = "FILE")]
    sql: Option<PathBuf>,
    /// Chart the saved query's result: x=COL,y=COL[,series=COL].
    #[arg(long, requires = "sql", value_name = "x=COL,y=COL[,series=COL]")]
    chart: Option<String>,
    /// Call the data stale (exit 3) when its newest event is older than this (e.g. 7d, 36h, 2w).
    #[arg(long, value_name = "AGE")]
    stale_after: Option<String>,
    /// Read the log as it was at this ingestion time (RFC 3339), like `SET leadline.as_of`.
    #[arg(long)]
    as_of: Option<String>,
}

#[derive(clap::Args, Clone)]
struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5433")]
    listen: String,
    /// Also serve HTTP on this address: webhooks, POST /v1/events, /healthz, /readyz, /metrics
    /// (overrides the config file's http.listen).
    #[arg(long)]
    http: Option<String>,
    /// Server config file (JSON): users with SCRAM verifiers, TLS PEM files, limits.
    #[arg(long, env = "LEADLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Maximum concurrent connections (overrides the config file).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Default statement timeout in milliseconds, 0 = none (overrides the config file).
    #[arg(long)]
    statement_timeout_ms: Option<u64>,
    /// Memory one query may use, in MiB (overrides the config file).
    #[arg(long)]
    query_memory_mb: Option<usize>,
    /// Memory all queries and caches may use together, in MiB (overrides the config file).
    #[arg(long)]
    memory_mb: Option<usize>,
    /// Input one COPY or one transaction block may hold until it is
    /// appended, in MiB (overrides the config file).
    #[arg(long)]
    write_buffer_mb: Option<usize>,
}

const SAMPLE: &str = include_str!("../../data/sample.ndjson");

fn serve(dir: &std::path::Path, args: ServerArgs, banner: bool) -> anyhow::Result<ExitCode> {
    let mut cfg = match &args.config {
        Some(p) => config::ServerConfig::load(p)?,
        None => config::ServerConfig::default(),
    };
    if let Some(n) = args.max_connections {
        cfg.limits.max_connections = n.max(1);
    }
    if let Some(t) = args.statement_timeout_ms {
        cfg.limits.statement_timeout_ms = t;
    }
    if let Some(m) = args.query_memory_mb {
        cfg.limits.query_memory_mb = m.max(1);
    }
    if let Some(m) = args.memory_mb {
        cfg.limits.memory_mb = m.max(1);
    }
    if let Some(h) = args.http {
        cfg.http.listen = Some(h);
    }
    if let Some(m) = args.write_buffer_mb {
        cfg.limits.write_buffer_mb = m.max(1);
    }
    cfg.limits.check()?;
    if !dir.is_dir() {
        // An empty log is a valid one: create the tables.
        drop(Appender::open(dir, "leadline serve")?);
    }
    let writer = writer::SharedWriter::new(dir.to_path_buf());
    let starting = writer.clone();
    let stale_model =
        DataStatus::read(dir).is_ok_and(|s| s.log_version.is_some() && s.read_model_version != s.log_version);
    let state = pg::ServerState::new(dir.to_path_buf(), cfg.clone(), writer.clone())?;
    let http_state = match cfg.http.listen.is_some() {
        true => {
            let pg = state.clone();
            let connections = Box::new(move || pg.connection_count());
            Some(http::HttpState::new(writer, dir.to_path_buf(), state.catalog(), cfg.clone(), connections)?)
        }
        false => None,
    };
    let auth = state.auth_enabled();
    runtime()?.block_on(async move {
        // A directory whose read model is missing, of an earlier release or
        // behind the log is brought up to date in the background, as the
        // first append would; queries fold the log in memory until then.
        // (Only then does the server take the writer's lock at start: a
        // damaged model is left to the next append, which says so.)
        if stale_model {
            tokio::spawn(async move {
                if let Err(e) = starting.catch_up().await {
                    tracing::warn!(error = %e, "bringing the read model up to date at start failed; the next append retries");
                }
            });
        }
        let http_front = match (&cfg.http.listen, http_state) {
            (Some(listen), Some(s)) => Some((http::bind(listen).await?, s)),
            _ => None,
        };
        let http_addr = http_front.as_ref().map(|((_, addr), _)| *addr);
        let http_server = async move {
            match http_front {
                Some(((listener, _), s)) => http::serve(s, listener).await,
                None => std::future::pending().await,
            }
        };
        let server = pg::serve(state, &args.listen, |addr| {
            let user = if auth { "USER" } else { "leadline" };
            let host = addr.ip();
            let port = addr.port();
            if banner {
                println!("leadline is serving {} on {addr}", dir.display());
                println!("connect with:  psql \"postgresql://{user}@{host}:{port}/leadline\"");
                println!("try:           SELECT * FROM dora_metrics('week') LIMIT 5;   (Ctrl-C stops the server)");
            } else {
                println!("listening on {addr}");
            }
            if let Some(h) = http_addr {
                println!("http on http://{h} (webhooks, POST /v1/events, /healthz, /readyz, /metrics)");
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
        });
        tokio::select! {
            r = server => r,
            r = http_server => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn demo_dir(data: Option<PathBuf>) -> PathBuf {
    data.unwrap_or_else(|| {
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("leadline/demo")
    })
}

fn demo(data: Option<PathBuf>, args: ServerArgs) -> anyhow::Result<ExitCode> {
    let dir = demo_dir(data);
    let empty = !dir.join("events").join("_delta_log").is_dir()
        || EventLog::open(&dir).and_then(|l| l.snapshot()).map(|s| s.version.is_none()).unwrap_or(true);
    if empty {
        std::fs::create_dir_all(&dir)?;
        let mut appender = Appender::open(&dir, "leadline demo")?;
        let rows = leadline_engine::input::ndjson_rows(std::io::Cursor::new(SAMPLE.as_bytes()));
        let r = appender.append("sample.ndjson", rows, &mut |_| {})?;
        println!("loaded the sample history into {}: {} events", dir.display(), r.appended);
    }
    serve(&dir, args, true)
}

/// Logs go to stderr, filtered by `LEADLINE_LOG`; as JSON lines (with the
/// connection's span: its id and peer) when the server's config says
/// `"log": {"format": "json"}` or `LEADLINE_LOG_FORMAT=json`.
fn init_logs(cli: &Cli) {
    let from_config = match &cli.command {
        Command::Serve { server, .. } | Command::Demo { server, .. } => {
            server.config.as_ref().and_then(|p| config::ServerConfig::load(p).ok()).map(|c| c.log.format)
        }
        _ => None,
    };
    let json = match std::env::var("LEADLINE_LOG_FORMAT") {
        Ok(f) => f.eq_ignore_ascii_case("json"),
        Err(_) => from_config == Some(config::LogFormat::Json),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("LEADLINE_LOG"))
        .with_writer(std::io::stderr);
    if json {
        logs.json().with_current_span(true).with_span_list(false).init();
    } else {
        logs.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A query's error as the user should read it: leadline's own error (a
/// damaged file, a full disk) once, not inside DataFusion's wrapping.
fn plain(e: datafusion::error::DataFusionError) -> anyhow::Error {
    if let datafusion::error::DataFusionError::External(inner) = e.find_root()
        && let Some(engine) = inner.downcast_ref::<leadline_engine::Error>()
    {
        return anyhow::anyhow!("{engine}");
    }
    e.into()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // DataFusion's planner recurses deeply; give worker threads room.
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(8 << 20).build()?)
}

fn progress_bar(label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {human_pos} rows ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(label.to_string());
    bar
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Ingest { data, files } => ingest(&data.data, &files),
        Command::Query { data, format, as_of, attribution_window, sql } => {
            let catalog = Catalog::open(&data.data, MemoryLimits::default())?;
            let mut config = session_config();
            if let Some(t) = as_of {
                config.options_mut().set("leadline.as_of", &t)?;
            }
            if let Some(w) = attribution_window {
                config.options_mut().set("leadline.attribution_window", &w)?;
            }
            runtime()?.block_on(async {
                let session = catalog.session(config)?;
                let batches = async { session.context().sql(&sql).await?.collect().await }.await.map_err(plain)?;
                output::write(format, &batches, &mut std::io::stdout().lock())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate { seed, services, days, events, start, output } => {
            let cfg = leadline_gen::GenerateConfig { seed, services, days, events, start };
            cfg.validate()?; // before an output file is created
            let bar = progress_bar("generating");
            let mut progress = |n: u64| bar.set_position(n);
            let n = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)?;
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
                    let n = leadline_gen::generate(&cfg, &mut w, &mut progress)?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
                None => {
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                    let n = leadline_gen::generate(&cfg, &mut w, &mut progress)?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
            };
            bar.finish_and_clear();
            eprintln!("generated {n} events");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { data, server } => serve(&data.data, server, true),
        Command::Demo { data, server } => demo(data, server),
        Command::Passwd { user } => {
            let mut password = String::new();
            if std::io::stdin().is_terminal() {
                eprint!("password for {user}: ");
            }
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                anyhow::bail!("empty password");
            }
            println!("{{\"name\": \"{user}\", \"scram\": \"{}\"}}", config::make_verifier(password));
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { data, json } => status(&data.data, json),
        Command::Report(args) => report(*args),
        Command::Compact { data } => {
            let mut appender = Appender::open(&data.data, "leadline compact")?;
            let (before, after) = appender.compact()?;
            println!("compacted: {before} files -> {after} files");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { data } => check(&data.data),
        Command::Rebuild { data, from_scratch, index } => {
            let mut appender = Appender::open(&data.data, "leadline rebuild")?;
            if index {
                let bar = progress_bar("rebuilding the event-id index");
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                let ids = appender.rebuild_index();
                bar.finish_and_clear();
                println!("rebuilt the event-id index from the log: {} ids", ids?);
            }
            let bar = progress_bar("rebuilding the read model");
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            let version = appender.catch_up(from_scratch);
            bar.finish_and_clear();
            match version? {
                Some(v) => println!("the read model reflects log version {v}"),
                None => println!("the log is empty: nothing to fold"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status(dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let s = DataStatus::read(dir)?;
    let on_disk = dir_size(dir);
    let time = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default()
    };
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["read_model_lag"] = s.read_model_lag().into();
        v["disk_bytes"] = on_disk.into();
        v["last_append"] = s.last_append.map(time).into();
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
    let version = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
    println!("data directory:  {}", dir.display());
    println!("log version:     {} ({} appends)", version(s.log_version), s.appends);
    println!("events:          {}", s.events);
    println!("quarantine:      {} rows (SELECT * FROM rejected_events)", s.rejected);
    println!("size:            {} in {} data files, {} on disk", mib(s.data_bytes), s.data_files, mib(on_disk));
    println!("last append:     {}", s.last_append.map_or("never".to_string(), time));
    let lag = match s.read_model_lag() {
        0 => "up to date".to_string(),
        n => format!("{n} commits behind (queries fold the log until the next append or `leadline rebuild`)"),
    };
    println!("read model:      version {}, {lag}", version(s.read_model_version));
    Ok(ExitCode::SUCCESS)
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// `leadline check`: the report, and an exit status per damaged area.
fn check(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use leadline_engine::{CheckProgress, DamageArea};
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    let report = leadline_engine::check(dir, &mut |p| match p {
        CheckProgress::Step { name, total } => {
            let template =
                if total > 0 { "{msg} [{bar:30}] {percent}% ({elapsed})" } else { "{spinner} {msg} ({elapsed})" };
            bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar.set_message(name);
            bar.set_length(total);
            bar.set_position(0);
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        CheckProgress::Advance(n) => bar.inc(n),
    });
    bar.finish_and_clear();
    let report = report?;
    for d in &report.damage {
        println!("DAMAGED ({}) {}: {}", d.area.name(), d.path.display(), d.problem);
        if !d.affects.is_empty() {
            println!("    affects {}", d.affects);
        }
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    let model = match report.model_version {
        Some(v) => format!("the read model at version {v}"),
        None => "no read model".into(),
    };
    println!(
        "checked {}: {} commits, {} data files ({} bytes), {} events, {} index records, {model}, {} views: {}",
        dir.display(),
        report.commits,
        report.files,
        report.bytes,
        report.events,
        report.index_records,
        report.views,
        match report.damage.len() {
            0 => "no damage found".to_string(),
            n => format!("{n} damaged"),
        }
    );
    Ok(match report.damage.iter().map(|d| d.area).min() {
        None => ExitCode::SUCCESS,
        Some(DamageArea::Log) => ExitCode::from(10),
        Some(DamageArea::Index) => ExitCode::from(11),
        Some(DamageArea::ReadModel) => ExitCode::from(12),
        Some(DamageArea::Views) => ExitCode::from(13),
    })
}

fn ingest(dir: &std::path::Path, files: &[String]) -> anyhow::Result<ExitCode> {
    let mut appender = Appender::open(dir, "leadline ingest")?;
    let (mut any_rejected, mut any_error) = (false, false);
    for file in files {
        let bar = progress_bar(&format!("ingesting {file}"));
        // Until the log's commit (see `allocator`).
        let mut sooner = Some(allocator::SoonerPurge::start());
        let result = leadline_engine::input::open(file).and_then(|rows| {
            appender.append(file, rows, &mut |p| match p {
                Progress::Rows(n) => bar.set_position(n),
                Progress::ReadModel => {
                    sooner = None;
                    // No rows move now: keep the spinner and clock alive.
                    bar.set_message(format!("{file}: updating the read model;"));
                    bar.enable_steady_tick(std::time::Duration::from_millis(200));
                }
            })
        });
        bar.finish_and_clear();
        match result {
            Ok(r) => {
                println!(
                    "{file}: appended {}, duplicates {}, conflicts {}, rejected {}",
                    r.appended, r.duplicates, r.conflicts, r.rejected
                );
                for rej in &r.first_rejections {
                    eprintln!("  {file}:{}: {} ({})", rej.line, rej.reason, rej.kind.as_str());
                }
                let total = r.rejected + r.conflicts;
                if total > r.first_rejections.len() as u64 {
                    eprintln!(
                        "  … and {} more: SELECT * FROM rejected_events",
                        total - r.first_rejections.len() as u64
                    );
                }
                any_rejected |= total > 0;
            }
            Err(e) => {
                eprintln!("error: {file}: {e} (nothing from it was appended)");
                any_error = true;
            }
        }
    }
    Ok(if any_error {
        ExitCode::from(1)
    } else if any_rejected {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `7d`, `36h`, `2w`, `90m` (or a bare number of days).
fn parse_age(text: &str) -> anyhow::Result<chrono::TimeDelta> {
    let t = text.trim();
    let (n, unit) = t.find(|c: char| !c.is_ascii_digit()).map_or((t, "d"), |i| t.split_at(i));
    let n: i64 =
        n.parse().map_err(|_| anyhow::anyhow!("--stale-after '{text}': expected a number and d, h, w or m"))?;
    Ok(match unit.trim() {
        "d" | "day" | "days" => chrono::TimeDelta::days(n),
        "h" | "hour" | "hours" => chrono::TimeDelta::hours(n),
        "w" | "week" | "weeks" => chrono::TimeDelta::weeks(n),
        "m" | "min" | "minutes" => chrono::TimeDelta::minutes(n),
        _ => anyhow::bail!("--stale-after '{text}': expected a number and d, h, w or m"),
    })
}

fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    use leadline_report::{Format, Freshness, Status};
    let format = match (args.format, args.out.as_ref().and_then(|p| p.extension()).and_then(|e| e.to_str())) {
        (Some(f), _) => f,
        (None, Some("md" | "markdown")) => ReportFormat::Md,
        (None, Some("csv")) => ReportFormat::Csv,
        (None, Some("json")) => ReportFormat::Json,
        (None, _) => ReportFormat::Html,
    };
    let format = match format {
        ReportFormat::Html => Format::Html,
        ReportFormat::Md => Format::Markdown,
        ReportFormat::Csv => Format::Csv,
        ReportFormat::Json => Format::Json,
    };
    let freshness =
        Freshness { now: chrono::Utc::now(), max_age: args.stale_after.as_deref().map(parse_age).transpose()? };
    // Check what can be checked before reading anything.
    let chart = args.chart.as_deref().map(str::parse::<leadline_report::ChartSpec>).transpose()?;
    let saved = match &args.sql {
        Some(path) => Some((
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--sql {}: {e}", path.display()))?,
        )),
        None => None,
    };
    let (from, to) = (
        args.from.as_deref().map(|t| leadline_report::parse_time("--from", t)).transpose()?,
        args.to.as_deref().map(|t| leadline_report::parse_time("--to", t)).transpose()?,
    );
    let catalog = Catalog::open(&args.data.data, MemoryLimits::default())?;
    let mut config = session_config();
    if let Some(t) = &args.as_of {
        config.options_mut().set("leadline.as_of", t)?;
    }
    let bar = progress_bar("report");
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let rendered = runtime()?.block_on(async {
        let session = catalog.session(config)?;
        let mut progress = |step: &str| bar.set_message(step.to_string());
        anyhow::Ok(match saved {
            Some((name, sql)) => {
                progress("running the saved query");
                leadline_report::saved(&session, &name, &sql, chart.as_ref(), format, freshness, args.as_of.as_deref())
                    .await?
            }
            None => {
                let request = leadline_report::Request {
                    grain: match args.grain {
                        ReportGrain::Week => leadline_report::Grain::Week,
                        ReportGrain::Month => leadline_report::Grain::Month,
                    },
                    environment: args.environment.clone(),
                    services: args.services.clone(),
                    teams: args.teams.clone(),
                    from,
                    to,
                    as_of: args.as_of.clone(),
                    freshness,
                };
                leadline_report::dora(&session, &request, format, &mut progress).await?
            }
        })
    });
    bar.finish_and_clear();
    let rendered = rendered?;
    match &args.out {
        Some(path) => {
            // Atomically: a reader (a web server, a mail job) never sees half a report.
            let mut tmp = path.clone().into_os_string();
            tmp.push(".tmp");
            std::fs::write(&tmp, &rendered.body)?;
            std::fs::rename(&tmp, path)?;
        }
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), &rendered.body)?,
    }
    Ok(match rendered.status {
        Status::Ok => {
            // Quiet under cron (which mails whatever a job prints).
            if let Some(path) = args.out.as_ref().filter(|_| std::io::stderr().is_terminal()) {
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Status::Empty(why) => {
            eprintln!("leadline report: no data: {why}");
            ExitCode::from(3)
        }
        Status::Stale(why) => {
            eprintln!("leadline report: stale data: {why}");
            ExitCode::from(3)
        }
    })
}
