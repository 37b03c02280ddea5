//! The command line, as CONTRACTS.md gives it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sextant: metrics, logs, traces, alerts and their UI in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "sextant",
    version = crate::LONG_VERSION,
    about = "Sextant: metrics, logs, traces, alerts and their UI in one binary.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: every listener, the stores, the UI.
    Serve(Box<ServeArgs>),
    /// Validate a config file and the rule files it names; exit 1 with file:line and reason on error.
    CheckConfig {
        /// The YAML config file to check.
        file: PathBuf,
    },
    /// Check every store under a data directory (WAL, blocks, indexes) without
    /// changing it; exit 1 naming each damaged file. The server must be stopped.
    CheckData {
        /// The data directory.
        dir: PathBuf,
        /// The server's config file: with a `storage.object_store` section,
        /// the bucket's blocks and splits are checked too.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `sextant serve`'s flags. Each may also come from `SEXTANT_<FLAG>` or the
/// config file's `server` section; a flag beats env, env beats the file, the
/// file beats the default. None has a clap default, so an absent flag is `None`.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// YAML config file.
    #[arg(long, env = "SEXTANT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where data is stored [default: ./data].
    #[arg(long, env = "SEXTANT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Host every listener binds unless its address names one [default: 127.0.0.1].
    #[arg(long, env = "SEXTANT_BIND", value_name = "HOST")]
    pub bind: Option<String>,
    /// HTTP API and UI: PORT, :PORT or HOST:PORT; 0 picks a free port [default: 7070].
    #[arg(long, env = "SEXTANT_HTTP", value_name = "ADDR")]
    pub http: Option<String>,
    /// OTLP over gRPC [default: 4317].
    #[arg(long, env = "SEXTANT_OTLP_GRPC", value_name = "ADDR")]
    pub otlp_grpc: Option<String>,
    /// OTLP over HTTP [default: 4318].
    #[arg(long, env = "SEXTANT_OTLP_HTTP", value_name = "ADDR")]
    pub otlp_http: Option<String>,
    /// StatsD, UDP and TCP on the same port [default: 8125].
    #[arg(long, env = "SEXTANT_STATSD", value_name = "ADDR")]
    pub statsd: Option<String>,
    /// logstash JSON lines, TCP and UDP on the same port [default: 5959].
    #[arg(long, env = "SEXTANT_LOGSTASH", value_name = "ADDR")]
    pub logstash: Option<String>,
    /// syslog (RFC 5424 and RFC 3164), TCP and UDP on the same port [default: 5514].
    #[arg(long, env = "SEXTANT_SYSLOG", value_name = "ADDR")]
    pub syslog: Option<String>,
    /// Fluentd forward protocol (msgpack over TCP; UDP heartbeats on the same port) [default: 24224].
    #[arg(long, env = "SEXTANT_FORWARD", value_name = "ADDR")]
    pub forward: Option<String>,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives [default: info].
    #[arg(long, env = "SEXTANT_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "SEXTANT_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}
