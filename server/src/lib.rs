//! The `sextant` binary's library: the composition root. It parses the command
//! line and the config file, wires storage, ingest, query, alerting and the UI
//! together, serves them, and shuts them down. It is the only crate that depends
//! on all the others, and the only one that knows about CLI flags.

use std::process::ExitCode;

use clap::Parser as _;

pub mod alerting_api;
pub mod alertmanager_api;
pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster_api;
pub mod config;
pub mod es_api;
pub mod http;
pub mod logging;
pub mod logs_api;
pub mod loki_api;
pub mod query_api;
pub mod ruler_api;
pub mod runtime;
pub mod self_metrics;
pub mod serve;
pub mod settings;
pub mod tempo_api;
pub mod tenant;
pub mod traces_api;
pub mod ui;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this build came from, or "unknown".
pub const REVISION: &str = env!("SEXTANT_REVISION");
/// What `--version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SEXTANT_REVISION"),
    ")"
);

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match cli.command {
        cli::Command::Serve(args) => serve_command(*args),
        cli::Command::CheckConfig { file } => check_config(&file),
        cli::Command::CheckData { dir, config } => check_data(&dir, config.as_deref()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("sextant: error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn serve_command(args: cli::ServeArgs) -> anyhow::Result<()> {
    let loaded = args.config.as_deref().map(config::load).transpose()?;
    let settings = settings::resolve(args, loaded)?;
    logging::init(&settings.log_level, settings.log_format)?;
    // Every runtime thread may parse or evaluate a query (handlers, the
    // blocking pool, rule evaluation): each gets the stack the depth budget
    // needs, fixed from here on.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sextant")
        .thread_stack_size(sextant_model::depth::stack_size())
        .build()?;
    sextant_model::depth::freeze();
    let result = runtime.block_on(serve::run(settings));
    // Tasks still parked on sockets must not hold the exit past the contract's 10 s.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// Reads back every store of a stopped server's data directory; a crash's
/// torn WAL tail is reported as a note, damage as an error.
fn check_data(dir: &std::path::Path, config: Option<&std::path::Path>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        anyhow::bail!("{}: no such data directory", dir.display());
    }
    let remote = match config.map(config::load).transpose()? {
        Some(loaded) => loaded
            .file
            .storage
            .object_store
            .as_ref()
            .map(|c| sextant_storage::remote::RemoteStore::connect(c, &dir.join("cache")))
            .transpose()?,
        None => None,
    };
    // Holding the lock keeps a server from writing while the check reads.
    let _lock = sextant_storage::DataDir::open(dir)?;
    let mut report = sextant_storage::check_data_dir(dir);
    if let Some(remote) = &remote {
        remote.check_data(&mut report);
    }
    let mut text = String::new();
    for line in &report.checked {
        text += &format!("ok       {line}\n");
    }
    for line in &report.notes {
        text += &format!("repaired at start: {line}\n");
    }
    for line in &report.problems {
        text += &format!("DAMAGED  {line}\n");
    }
    #[allow(clippy::print_stdout)]
    {
        print!("{text}");
    }
    if report.is_clean() {
        #[allow(clippy::print_stdout)]
        {
            println!("{}: OK", dir.display());
        }
        Ok(())
    } else {
        anyhow::bail!(
            "{}: {} problems found",
            dir.display(),
            report.problems.len()
        )
    }
}

/// Validates a config file and everything it names, like `promtool check config`.
fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let loaded = config::load(path)?;
    // The server section must also resolve to listen addresses.
    let settings = settings::resolve(cli::ServeArgs::default(), Some(loaded))?;
    let loaded = settings.config.as_ref().expect("resolve keeps the config");
    let file = &loaded.file;
    let mut report = format!("{}: OK\n", path.display());
    let jobs: Vec<&str> = file
        .scrape_configs
        .iter()
        .map(|j| j.job_name.as_str())
        .collect();
    report += &format!("  scrape jobs: {} {jobs:?}\n", jobs.len());
    report += &format!("  rule files: {}\n", loaded.rule_files.len());
    for (rule_path, rules) in &loaded.rule_files {
        let count: usize = rules.groups.iter().map(|g| g.rules.len()).sum();
        report += &format!(
            "    {}: {} groups, {count} rules\n",
            rule_path.display(),
            rules.groups.len()
        );
    }
    report += &format!(
        "  receivers: {}\n  alertmanagers: {}\n  auth tokens: {}\n",
        file.alerting.receivers.len(),
        file.alerting.alertmanagers.len(),
        file.auth.tokens.len()
    );
    #[allow(clippy::print_stdout)]
    {
        print!("{report}");
    }
    Ok(())
}
