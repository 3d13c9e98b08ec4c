//! `leadline`: ingest delivery events, query DORA metrics, serve them over
//! the PostgreSQL wire protocol.

mod generate;
mod output;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use leadline_engine::catalog::{Catalog, session};
use leadline_engine::log::{EventLog, Writer};
use output::OutputFormat;

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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("LEADLINE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
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
            let log = Arc::new(EventLog::open(&data.data)?);
            let catalog = Catalog::new(log)?;
            let mut config = leadline_engine::catalog::session_config();
            if let Some(t) = as_of {
                config.options_mut().set("leadline.as_of", &t)?;
            }
            if let Some(w) = attribution_window {
                config.options_mut().set("leadline.attribution_window", &w)?;
            }
            runtime()?.block_on(async {
                let ctx = session(catalog, config)?;
                let batches = ctx.sql(&sql).await?.collect().await?;
                output::write(format, &batches, &mut std::io::stdout().lock())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate { seed, services, days, events, start, output } => {
            let cfg = generate::GenerateConfig { seed, services, days, events, start };
            let bar = progress_bar("generating");
            let mut progress = |n: u64| bar.set_position(n);
            let n = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)?;
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
                    let n = generate::generate(&cfg, &mut w, &mut progress)?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
                None => {
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                    let n = generate::generate(&cfg, &mut w, &mut progress)?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
            };
            bar.finish_and_clear();
            eprintln!("generated {n} events");
            Ok(ExitCode::SUCCESS)
        }
        Command::Compact { data } => {
            let mut writer = Writer::open(&data.data, "leadline compact")?;
            let (before, after) = writer.compact()?;
            println!("compacted: {before} files -> {after} files");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn ingest(dir: &std::path::Path, files: &[String]) -> anyhow::Result<ExitCode> {
    let mut writer = Writer::open(dir, "leadline ingest")?;
    let (mut any_rejected, mut any_error) = (false, false);
    for file in files {
        let bar = progress_bar(&format!("ingesting {file}"));
        let result = leadline_engine::ingest::open(file)
            .and_then(|rows| writer.append(file, rows, &mut |n| bar.set_position(n)));
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
                    eprintln!("  … and {} more: SELECT * FROM rejected_events", total - r.first_rejections.len() as u64);
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
