//! Resolving what `sextant serve` runs with: flag > env > file > default.
//!
//! clap has already folded flags and `SEXTANT_*` env into [`ServeArgs`] (flag
//! first); this module lays them over the config file's `server` section and
//! the defaults.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::cli::{LogFormat, ServeArgs};
use crate::config::{ConfigFile, ListenAddr, LoadedConfig, ServerSection};

/// One listener's resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    /// 0 picks a free port at bind time.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Every listener's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    pub http: Endpoint,
    pub otlp_grpc: Endpoint,
    pub otlp_http: Endpoint,
    pub statsd: Endpoint,
    pub logstash: Endpoint,
    pub syslog: Endpoint,
    pub forward: Endpoint,
}

/// What `sextant serve` runs with.
#[derive(Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listeners: Listeners,
    pub log_level: String,
    pub log_format: LogFormat,
    /// The loaded config file, if one was given.
    pub config: Option<LoadedConfig>,
}

impl Settings {
    /// The config file's contents, or the defaults when there is none.
    pub fn file(&self) -> Option<&ConfigFile> {
        self.config.as_ref().map(|c| &c.file)
    }
}

/// Lays flags/env over the file over the defaults.
pub fn resolve(args: ServeArgs, config: Option<LoadedConfig>) -> anyhow::Result<Settings> {
    let empty = ServerSection::default();
    let file = config.as_ref().map_or(&empty, |c| &c.file.server);

    let data_dir = match (args.data_dir, &file.data_dir, &config) {
        (Some(dir), _, _) => dir,
        (None, Some(dir), Some(config)) => config.resolve(dir),
        _ => PathBuf::from("./data"),
    };
    let bind = args
        .bind
        .or_else(|| file.bind.clone())
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    if bind.is_empty() {
        anyhow::bail!("--bind must name a host, e.g. 127.0.0.1 or 0.0.0.0");
    }
    let endpoint = |flag: Option<String>,
                    from_file: &Option<ListenAddr>,
                    name: &str,
                    default_port: u16|
     -> anyhow::Result<Endpoint> {
        let addr = match flag {
            Some(text) => text
                .parse::<ListenAddr>()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("--{}", name.replace('_', "-")))?,
            None => from_file.clone().unwrap_or(ListenAddr {
                host: None,
                port: default_port,
            }),
        };
        Ok(Endpoint {
            host: addr.host.unwrap_or_else(|| bind.clone()),
            port: addr.port,
        })
    };
    let listeners = Listeners {
        http: endpoint(args.http, &file.http, "http", 7070)?,
        otlp_grpc: endpoint(args.otlp_grpc, &file.otlp_grpc, "otlp_grpc", 4317)?,
        otlp_http: endpoint(args.otlp_http, &file.otlp_http, "otlp_http", 4318)?,
        statsd: endpoint(args.statsd, &file.statsd, "statsd", 8125)?,
        logstash: endpoint(args.logstash, &file.logstash, "logstash", 5959)?,
        syslog: endpoint(args.syslog, &file.syslog, "syslog", 5514)?,
        forward: endpoint(args.forward, &file.forward, "forward", 24224)?,
    };
    let log_level = args
        .log_level
        .or_else(|| file.log_level.clone())
        .unwrap_or_else(|| "info".to_owned());
    let log_format = args
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Text);
    Ok(Settings {
        data_dir,
        listeners,
        log_level,
        log_format,
        config,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;

    fn loaded(text: &str) -> LoadedConfig {
        LoadedConfig {
            path: PathBuf::from("/etc/sextant/sextant.yaml"),
            file: config::parse(Path::new("sextant.yaml"), text).unwrap(),
            rule_files: Vec::new(),
            statsd_mapping: None,
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = resolve(ServeArgs::default(), None).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        let l = &s.listeners;
        assert_eq!(l.http.to_string(), "127.0.0.1:7070");
        assert_eq!(l.otlp_grpc.to_string(), "127.0.0.1:4317");
        assert_eq!(l.otlp_http.to_string(), "127.0.0.1:4318");
        assert_eq!(l.statsd.to_string(), "127.0.0.1:8125");
        assert_eq!(l.logstash.to_string(), "127.0.0.1:5959");
        assert_eq!(l.syslog.to_string(), "127.0.0.1:5514");
        assert_eq!(l.forward.to_string(), "127.0.0.1:24224");
        assert_eq!(s.log_level, "info");
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn the_file_beats_defaults_and_flags_beat_the_file() {
        let file = || {
            Some(loaded(
                "server:\n  data_dir: data\n  bind: 0.0.0.0\n  http: 9000\n  statsd: '10.0.0.1:9125'\n  log_format: json\n",
            ))
        };
        let s = resolve(ServeArgs::default(), file()).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/etc/sextant/data"));
        assert_eq!(s.listeners.http.to_string(), "0.0.0.0:9000");
        assert_eq!(s.listeners.statsd.to_string(), "10.0.0.1:9125");
        assert_eq!(s.listeners.logstash.to_string(), "0.0.0.0:5959");
        assert_eq!(s.listeners.syslog.to_string(), "0.0.0.0:5514");
        assert_eq!(s.log_format, LogFormat::Json);

        let args = ServeArgs {
            data_dir: Some("/srv/data".into()),
            bind: Some("::1".into()),
            http: Some("0".into()),
            statsd: Some(":8126".into()),
            syslog: Some("6514".into()),
            log_format: Some(LogFormat::Text),
            ..ServeArgs::default()
        };
        let s = resolve(args, file()).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/srv/data"));
        assert_eq!(s.listeners.http.to_string(), "[::1]:0");
        assert_eq!(s.listeners.statsd.to_string(), "[::1]:8126");
        assert_eq!(s.listeners.otlp_http.to_string(), "[::1]:4318");
        assert_eq!(s.listeners.syslog.to_string(), "[::1]:6514");
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn a_bad_flag_names_itself() {
        let args = ServeArgs {
            otlp_grpc: Some("nope:x".into()),
            ..ServeArgs::default()
        };
        let err = format!("{:#}", resolve(args, None).unwrap_err());
        assert!(
            err.starts_with("--otlp-grpc: invalid listen address \"nope:x\""),
            "{err}"
        );
    }
}
