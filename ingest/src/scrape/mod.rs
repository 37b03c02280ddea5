//! Prometheus scraping: `scrape_configs` in Prometheus's own format, targets
//! from static and file_sd configs through `relabel_configs`, one loop per
//! target spread over its interval, the text and OpenMetrics formats parsed
//! by [`crate::prom_text`], `up` and the `scrape_*` series, staleness
//! markers, and reloads that keep unchanged targets running.

mod config;
pub mod manager;
pub mod relabel;
pub mod scraper;
pub mod target;
pub mod tls;

pub use config::*;
pub use manager::{ActiveTarget, DroppedTarget, Health, ScrapeManager, ScrapeStats};
