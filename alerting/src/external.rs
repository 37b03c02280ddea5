//! Alerts other rulers send: Prometheus, vmalert and Loki's ruler POST
//! them to Alertmanager's `/api/v2/alerts` as a JSON array of `{labels,
//! annotations, startsAt, endsAt, generatorURL}`, again every minute while
//! they fire, and resolve one by sending it with `endsAt` in the past. An
//! alert sent without `endsAt` resolves `resolve_timeout` after it was last
//! sent, as in Alertmanager.
//!
//! The store here keeps them by fingerprint, merges a re-sent alert into
//! the one it continues, and hands the dispatcher what it must know: each
//! alert as it arrives, and each one whose `endsAt` passed, once, resolved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::notify::{NotifyAlert, Status};
use crate::state::{LabelMap, RESOLVED_RETENTION_MS, fingerprint};

/// Alertmanager's `resolve_timeout` default.
pub const DEFAULT_RESOLVE_TIMEOUT_MS: i64 = 5 * 60_000;

/// The most alerts kept at once: beyond, new ones are refused (re-sent
/// ones are still taken).
pub const MAX_ALERTS: usize = 100_000;

/// Go's zero time (`0001-01-01T00:00:00Z`), which clients send for "unset".
const GO_ZERO_MS: i64 = -62_135_596_800_000;

/// One alert of a POST body, in Alertmanager's `postableAlert` shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostedAlert {
    pub labels: Option<LabelMap>,
    #[serde(default)]
    pub annotations: Option<LabelMap>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
}

/// An alert another ruler sent, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalAlert {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    /// When it was last sent.
    pub updated_at_ms: i64,
    pub generator_url: String,
    /// Whether `ends_at_ms` came from `resolve_timeout`, not the sender.
    pub timeout: bool,
    /// Whether the dispatcher has been told it resolved.
    #[serde(default)]
    pub resolved_told: bool,
}

impl ExternalAlert {
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }

    /// Whether it has resolved at `now_ms`.
    pub fn resolved(&self, now_ms: i64) -> bool {
        self.ends_at_ms <= now_ms
    }

    fn to_notify(&self, now_ms: i64) -> NotifyAlert {
        let resolved = self.resolved(now_ms);
        NotifyAlert {
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            status: if resolved {
                Status::Resolved
            } else {
                Status::Firing
            },
            value: 0.0,
            starts_at_ms: self.starts_at_ms,
            ends_at_ms: resolved.then_some(self.ends_at_ms),
            generator_url: self.generator_url.clone(),
        }
    }

    /// Alertmanager's merge of a newer copy into this one: the earlier
    /// start, the newer copy's end (a sender's own `endsAt` wins over a
    /// timeout), annotations and link.
    fn merge(&self, newer: Self) -> Self {
        let mut merged = newer;
        merged.starts_at_ms = merged.starts_at_ms.min(self.starts_at_ms);
        // A copy that only timed out does not cut short an end the sender set.
        if merged.timeout && !self.timeout && self.ends_at_ms > merged.ends_at_ms {
            merged.ends_at_ms = self.ends_at_ms;
            merged.timeout = false;
        }
        merged.resolved_told = self.resolved_told && merged.ends_at_ms == self.ends_at_ms;
        merged
    }
}

/// An RFC 3339 time of a posted alert; `None` when absent or Go's zero time.
fn time_of(field: &str, text: Option<&str>) -> Result<Option<i64>, String> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let micros = sextant_model::time::parse_rfc3339_micros(text)
        .ok_or_else(|| format!("{field} {text:?} is not an RFC 3339 time"))?;
    let ms = micros.div_euclid(1000);
    Ok((ms > GO_ZERO_MS).then_some(ms))
}

fn check_names(what: &str, map: &LabelMap) -> Result<(), String> {
    match map
        .keys()
        .find(|name| !sextant_model::is_valid_label_name(name))
    {
        Some(name) => Err(format!("invalid {what}: invalid name {name:?}")),
        None => Ok(()),
    }
}

impl PostedAlert {
    /// The alert as kept at `now_ms`, as Alertmanager takes it: empty labels
    /// dropped, an absent start is now (or the end), an absent end is
    /// `resolve_timeout` from now. The error says what is wrong.
    pub fn accept(self, now_ms: i64, resolve_timeout_ms: i64) -> Result<ExternalAlert, String> {
        let mut labels = self.labels.ok_or("labels are required")?;
        labels.retain(|_, v| !v.is_empty());
        if labels.is_empty() {
            return Err("at least one label pair required".to_owned());
        }
        check_names("label set", &labels)?;
        let annotations = self.annotations.unwrap_or_default();
        check_names("annotations", &annotations)?;
        let starts = time_of("startsAt", self.starts_at.as_deref())?;
        let ends = time_of("endsAt", self.ends_at.as_deref())?;
        let starts_at_ms = starts.or(ends).unwrap_or(now_ms);
        let (ends_at_ms, timeout) = match ends {
            Some(ends) => (ends, false),
            None => (now_ms.saturating_add(resolve_timeout_ms), true),
        };
        if ends_at_ms < starts_at_ms {
            return Err("start time must be before end time".to_owned());
        }
        Ok(ExternalAlert {
            labels,
            annotations,
            starts_at_ms,
            ends_at_ms,
            updated_at_ms: now_ms,
            generator_url: self.generator_url.unwrap_or_default(),
            timeout,
            resolved_told: false,
        })
    }
}

/// The alerts other rulers sent, by fingerprint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExternalAlerts {
    pub alerts: BTreeMap<String, ExternalAlert>,
}

impl ExternalAlerts {
    /// Takes accepted alerts at `now_ms`; returns what the dispatcher must
    /// receive, and how many new alerts were refused for [`MAX_ALERTS`].
    pub fn put(&mut self, alerts: Vec<ExternalAlert>, now_ms: i64) -> (Vec<NotifyAlert>, usize) {
        let mut notify = Vec::with_capacity(alerts.len());
        let mut refused = 0;
        for alert in alerts {
            let fp = alert.fingerprint();
            let alert = match self.alerts.get(&fp) {
                // As Alertmanager: a copy whose time range touches the
                // kept one continues it; another starts afresh.
                Some(old)
                    if alert.ends_at_ms >= old.starts_at_ms
                        && alert.starts_at_ms <= old.ends_at_ms =>
                {
                    old.merge(alert)
                }
                Some(_) => alert,
                None if self.alerts.len() >= MAX_ALERTS => {
                    refused += 1;
                    continue;
                }
                None => alert,
            };
            let mut alert = alert;
            if alert.resolved_told {
                // Nothing new for the dispatcher.
                self.alerts.insert(fp, alert);
                continue;
            }
            notify.push(alert.to_notify(now_ms));
            alert.resolved_told = alert.resolved(now_ms);
            self.alerts.insert(fp, alert);
        }
        (notify, refused)
    }

    /// The alerts whose end passed since the last call, resolved, for the
    /// dispatcher; alerts resolved longer than Prometheus re-sends them are
    /// forgotten. Whether anything changed.
    pub fn expire(&mut self, now_ms: i64) -> (Vec<NotifyAlert>, bool) {
        let before = self.alerts.len();
        self.alerts
            .retain(|_, a| a.ends_at_ms.saturating_add(RESOLVED_RETENTION_MS) > now_ms);
        let mut resolved = Vec::new();
        for alert in self.alerts.values_mut() {
            if !alert.resolved_told && alert.resolved(now_ms) {
                resolved.push(alert.to_notify(now_ms));
                alert.resolved_told = true;
            }
        }
        let changed = before != self.alerts.len() || !resolved.is_empty();
        (resolved, changed)
    }

    /// When the next alert resolves, if any is still firing.
    pub fn next_end_ms(&self) -> Option<i64> {
        self.alerts
            .values()
            .filter(|a| !a.resolved_told)
            .map(|a| a.ends_at_ms)
            .min()
    }

    /// The alerts firing at `now_ms`.
    pub fn firing(&self, now_ms: i64) -> impl Iterator<Item = &ExternalAlert> {
        self.alerts.values().filter(move |a| !a.resolved(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(json: &str) -> PostedAlert {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn fingerprints_are_alertmanagers() {
        // As Alertmanager 0.25 answered for these label sets.
        let labels = |pairs: &[(&str, &str)]| -> LabelMap {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            fingerprint(&labels(&[
                ("alertname", "Disk"),
                ("instance", "a"),
                ("severity", "page")
            ])),
            "b67213edc156728d"
        );
        assert_eq!(
            fingerprint(&labels(&[("alertname", "Disk"), ("severity", "warning")])),
            "ca035b8d28b423fc"
        );
    }

    #[test]
    fn posted_alerts_are_checked_and_completed_as_alertmanager_does() {
        let now = 1_700_000_000_000;
        let a = posted(r#"{"labels":{"alertname":"A","empty":""}}"#)
            .accept(now, 300_000)
            .unwrap();
        assert_eq!(a.labels.len(), 1, "empty labels are dropped");
        assert_eq!((a.starts_at_ms, a.ends_at_ms), (now, now + 300_000));
        assert!(a.timeout);
        let b = posted(
            r#"{"labels":{"a":"1"},"endsAt":"2023-11-14T22:00:00Z","generatorURL":"http://p/g"}"#,
        )
        .accept(now, 300_000)
        .unwrap();
        assert_eq!(b.starts_at_ms, b.ends_at_ms, "no start: the end");
        assert!(b.resolved(now));
        let zero = posted(r#"{"labels":{"a":"1"},"endsAt":"0001-01-01T00:00:00Z"}"#)
            .accept(now, 1_000)
            .unwrap();
        assert_eq!(zero.ends_at_ms, now + 1_000, "Go's zero time is unset");
        for (json, reason) in [
            (r#"{"labels":{}}"#, "at least one label pair required"),
            (r#"{"labels":{"x":""}}"#, "at least one label pair required"),
            (r#"{"annotations":{}}"#, "labels are required"),
            (
                r#"{"labels":{"a b":"x"}}"#,
                "invalid label set: invalid name \"a b\"",
            ),
            (
                r#"{"labels":{"a":"x"},"annotations":{"1x":"y"}}"#,
                "invalid annotations",
            ),
            (
                r#"{"labels":{"a":"x"},"startsAt":"yesterday"}"#,
                "startsAt \"yesterday\" is not an RFC 3339 time",
            ),
            (
                r#"{"labels":{"a":"x"},"startsAt":"2025-01-01T00:00:00Z","endsAt":"2024-01-01T00:00:00Z"}"#,
                "start time must be before end time",
            ),
        ] {
            let err = posted(json).accept(now, 1).unwrap_err();
            assert!(err.contains(reason), "{json}: {err}");
        }
    }

    #[test]
    fn re_sent_alerts_merge_resolve_once_and_are_forgotten() {
        let mut store = ExternalAlerts::default();
        let now = 1_000_000;
        let send = |starts: i64, ends: Option<i64>, at: i64| ExternalAlert {
            labels: LabelMap::from([("alertname".to_owned(), "A".to_owned())]),
            annotations: LabelMap::new(),
            starts_at_ms: starts,
            ends_at_ms: ends.unwrap_or(at + 60_000),
            updated_at_ms: at,
            generator_url: String::new(),
            timeout: ends.is_none(),
            resolved_told: false,
        };
        let (told, refused) = store.put(vec![send(now, Some(now + 240_000), now)], now);
        assert_eq!((told.len(), refused), (1, 0));
        assert_eq!(told[0].status, Status::Firing);
        // Re-sent a minute later with a later start (a restarted sender): the first start stays.
        let later = now + 60_000;
        store.put(vec![send(later, Some(later + 240_000), later)], later);
        let kept = store.alerts.values().next().unwrap();
        assert_eq!(kept.starts_at_ms, now);
        assert_eq!(kept.ends_at_ms, later + 240_000);
        assert_eq!(store.next_end_ms(), Some(later + 240_000));
        // Nothing ends before its end; then it resolves once.
        assert!(store.expire(later + 1_000).0.is_empty());
        let (resolved, changed) = store.expire(later + 240_000);
        assert!(changed);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].status, Status::Resolved);
        assert_eq!(resolved[0].ends_at_ms, Some(later + 240_000));
        assert!(store.expire(later + 250_000).0.is_empty());
        assert_eq!(store.next_end_ms(), None);
        // The resolved copy the sender repeats tells nothing new.
        let (told, _) = store.put(
            vec![send(now, Some(later + 240_000), later + 300_000)],
            later + 300_000,
        );
        assert!(told.is_empty());
        // Forgotten once no sender repeats it.
        let (_, changed) = store.expire(later + 240_000 + RESOLVED_RETENTION_MS);
        assert!(changed);
        assert!(store.alerts.is_empty());
    }
}
