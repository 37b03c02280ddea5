//! Sextant's alerting: loading Prometheus rule files (and Sextant's log rules),
//! the evaluation loop, the pending/firing/resolved state machine, silences, and
//! the notifier that delivers webhooks in Alertmanager's and Grafana's formats
//! from a durable outbox, and the forwarder that sends the ruler's alerts to
//! Alertmanagers as Prometheus does.
//!
//! This room evaluates through `query` and never reads storage directly; it knows
//! nothing of HTTP routing or CLI flags.

mod config;
mod error;
pub mod external;
pub mod forward;
pub mod notify;
pub mod ruler;
pub mod rules;
pub mod state;
pub mod template;

pub use config::{AlertingConfig, BasicAuth, InhibitRule, Receiver, Route, Webhook, WebhookFormat};
pub use error::{Error, Result};
pub use sextant_model::{MatchOp, Matcher};
