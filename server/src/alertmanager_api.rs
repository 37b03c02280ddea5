//! Alertmanager's HTTP API v2, as Alertmanager 0.25 answers it, over
//! Sextant's own dispatcher: `/api/v2/status`, `/api/v2/receivers`,
//! `/api/v2/alerts` (GET with Alertmanager's filters; POST, where
//! Prometheus, vmalert and Loki's ruler send their alerts, which then go
//! through the same routes, groups, inhibition, silences, outbox and
//! webhooks as Sextant's own), `/api/v2/alerts/groups`, `/api/v2/silences`
//! and `/api/v2/silence/{id}`. `amtool` and Grafana's Alertmanager data
//! source speak it.
//!
//! Errors are Alertmanager's: a JSON string saying what is wrong, 400 for
//! bad input, 404 for an unknown silence.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sextant_alerting::external::PostedAlert;
use sextant_alerting::notify::{Silence, SilenceMatcher, rfc3339};
use sextant_alerting::ruler::{ApiAlert, Ruler, SilenceError};
use sextant_alerting::state::LabelMap;
use sextant_model::{MatchOp, Matcher};

use crate::http::{ApiError, AppState, QueryParams};

/// The Alertmanager release whose API this follows.
const ALERTMANAGER_COMPATIBLE_VERSION: &str = "0.25.0";

/// How a request fails: Alertmanager's answers (a JSON string), or
/// Sextant's own when alerting has not started.
#[derive(Debug)]
pub enum AmError {
    /// 400.
    Bad(String),
    /// 404.
    NotFound(String),
    /// Sextant's answer (503 while the stores open, 500).
    Api(ApiError),
}

impl axum::response::IntoResponse for AmError {
    fn into_response(self) -> Response {
        match self {
            Self::Bad(m) => refuse(StatusCode::BAD_REQUEST, m),
            Self::NotFound(m) => refuse(StatusCode::NOT_FOUND, m),
            Self::Api(e) => e.into_response(),
        }
    }
}

/// An answer in Alertmanager's error shape: a JSON string. A message
/// quoting a huge input keeps its start and its end (the reason).
fn refuse(status: StatusCode, message: String) -> Response {
    const KEPT: usize = 500;
    let mut message = message;
    if message.len() > 3 * KEPT {
        let mut head = KEPT;
        while !message.is_char_boundary(head) {
            head -= 1;
        }
        let mut tail = message.len() - KEPT;
        while !message.is_char_boundary(tail) {
            tail += 1;
        }
        message = format!("{} … {}", &message[..head], &message[tail..]);
    }
    (status, axum::Json(Value::String(message))).into_response()
}

fn ruler(state: &AppState) -> Result<&Arc<Ruler>, AmError> {
    state.runtime.ruler().ok_or_else(|| {
        AmError::Api(ApiError::Unavailable(
            "alerting starts once the stores are open".into(),
        ))
    })
}

/// `GET /api/v2/status`.
pub async fn status(State(state): State<AppState>) -> Result<Response, AmError> {
    let config = ruler(&state)?.alerting_config();
    let cluster = match state.cluster.get() {
        Some(stores) => {
            let status = stores.metrics.cluster().status();
            let peers: Vec<Value> = status
                .members
                .iter()
                .map(|(name, address)| json!({ "name": name, "address": address }))
                .collect();
            json!({ "name": status.node_id, "status": "ready", "peers": peers })
        }
        None => json!({ "status": "disabled", "peers": [] }),
    };
    Ok(axum::Json(json!({
        "cluster": cluster,
        "config": { "original": config.alertmanager_yaml() },
        "uptime": rfc3339(state.metrics.start_unix_ms()),
        "versionInfo": {
            "version": ALERTMANAGER_COMPATIBLE_VERSION,
            "revision": crate::REVISION,
            "branch": "main",
            "buildUser": "sextant",
            "buildDate": "",
            "goVersion": "n/a (Rust)",
            "sextantVersion": crate::VERSION,
        },
    }))
    .into_response())
}

/// `GET /api/v2/receivers`.
pub async fn receivers(State(state): State<AppState>) -> Result<Response, AmError> {
    let names: Vec<Value> = ruler(&state)?
        .receiver_names()
        .into_iter()
        .map(|name| json!({ "name": name }))
        .collect();
    Ok(axum::Json(names).into_response())
}

/// The matchers of one `filter=` value: `name="value"` as `amtool` sends
/// it, several of them comma-separated, optionally in braces.
fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(trimmed);
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pieces.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&inner[start..]);
    pieces
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.parse::<Matcher>()
                .map_err(|e| format!("bad matcher format: {e}"))
        })
        .collect()
}

/// Every `filter=` of a request, parsed.
fn filters(params: &QueryParams) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for text in params.all("filter") {
        out.extend(parse_matchers(text)?);
    }
    Ok(out)
}

/// Alertmanager's filter semantics: `=` and `=~` need the label present.
fn matches_filter(matchers: &[Matcher], labels: &LabelMap) -> bool {
    matchers.iter().all(|m| match labels.get(&m.name) {
        Some(value) => m.matches(value),
        None => matches!(m.op, MatchOp::NotEqual | MatchOp::NotRegex) && m.matches(""),
    })
}

/// A boolean parameter as Go's `strconv.ParseBool` reads it; `default` when absent.
fn flag(params: &QueryParams, name: &str, default: bool) -> Result<bool, String> {
    match params.get(name) {
        None => Ok(default),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(format!(
            "invalid value {other:?} for parameter {name}: want true or false"
        )),
    }
}

/// What `GET /api/v2/alerts` and `/api/v2/alerts/groups` show.
struct AlertFilter {
    matchers: Vec<Matcher>,
    receiver: Option<Matcher>,
    active: bool,
    silenced: bool,
    inhibited: bool,
}

impl AlertFilter {
    fn of(uri: &Uri) -> Result<Self, String> {
        let params = QueryParams::of(uri);
        let receiver = params
            .get("receiver")
            .map(|re| {
                Matcher::new("receiver", MatchOp::Regex, re)
                    .map_err(|e| format!("failed to parse receiver param: {e}"))
            })
            .transpose()?;
        // Sextant routes an alert as it arrives: none is ever unprocessed,
        // but the parameter is checked as Alertmanager checks it.
        flag(&params, "unprocessed", true)?;
        Ok(Self {
            matchers: filters(&params)?,
            receiver,
            active: flag(&params, "active", true)?,
            silenced: flag(&params, "silenced", true)?,
            inhibited: flag(&params, "inhibited", true)?,
        })
    }

    fn receiver_matches(&self, name: &str) -> bool {
        self.receiver.as_ref().is_none_or(|m| m.matches(name))
    }

    /// Whether one of an alert's receivers matches (all do without `receiver=`).
    fn any_receiver_matches(&self, receivers: &[String]) -> bool {
        self.receiver.is_none() || receivers.iter().any(|r| self.receiver_matches(r))
    }

    /// Whether the alert is shown, its receivers aside.
    fn keeps(&self, alert: &ApiAlert) -> bool {
        let suppressed = !alert.silenced_by.is_empty() || !alert.inhibited_by.is_empty();
        (self.active || suppressed)
            && (self.silenced || alert.silenced_by.is_empty())
            && (self.inhibited || alert.inhibited_by.is_empty())
            && matches_filter(&self.matchers, &alert.labels)
    }
}

fn alert_json(alert: &ApiAlert) -> Value {
    let suppressed = !alert.silenced_by.is_empty() || !alert.inhibited_by.is_empty();
    let receivers: Vec<Value> = alert
        .receivers
        .iter()
        .map(|name| json!({ "name": name }))
        .collect();
    let mut v = json!({
        "annotations": alert.annotations,
        "endsAt": rfc3339(alert.ends_at_ms),
        "fingerprint": alert.fingerprint,
        "receivers": receivers,
        "startsAt": rfc3339(alert.starts_at_ms),
        "status": {
            "inhibitedBy": alert.inhibited_by,
            "silencedBy": alert.silenced_by,
            "state": if suppressed { "suppressed" } else { "active" },
        },
        "updatedAt": rfc3339(alert.updated_at_ms),
        "labels": alert.labels,
    });
    if !alert.generator_url.is_empty() {
        v["generatorURL"] = json!(alert.generator_url);
    }
    v
}

/// `GET /api/v2/alerts`.
pub async fn alerts(State(state): State<AppState>, uri: Uri) -> Result<Response, AmError> {
    let filter = AlertFilter::of(&uri).map_err(AmError::Bad)?;
    let list: Vec<Value> = ruler(&state)?
        .api_alerts()
        .iter()
        .filter(|a| filter.keeps(a) && filter.any_receiver_matches(&a.receivers))
        .map(alert_json)
        .collect();
    Ok(axum::Json(list).into_response())
}

/// `GET /api/v2/alerts/groups`.
pub async fn groups(State(state): State<AppState>, uri: Uri) -> Result<Response, AmError> {
    let filter = AlertFilter::of(&uri).map_err(AmError::Bad)?;
    let list: Vec<Value> = ruler(&state)?
        .api_groups()
        .into_iter()
        .filter(|g| filter.receiver_matches(&g.receiver))
        .filter_map(|g| {
            let alerts: Vec<Value> = g
                .alerts
                .iter()
                .filter(|a| filter.keeps(a))
                .map(alert_json)
                .collect();
            (!alerts.is_empty()).then(|| {
                json!({
                    "alerts": alerts,
                    "labels": g.labels,
                    "receiver": { "name": g.receiver },
                })
            })
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

/// `POST /api/v2/alerts`: a JSON array of alerts. The valid ones are
/// taken even when others are refused (400 naming them), as Alertmanager does.
pub async fn post_alerts(State(state): State<AppState>, body: Bytes) -> Result<Response, AmError> {
    let ruler = ruler(&state)?.clone();
    let alerts: Vec<PostedAlert> = serde_json::from_slice(&body).map_err(|e| {
        AmError::Bad(format!(
            "invalid alerts: want a JSON array of {{labels, annotations, startsAt, endsAt, generatorURL}}: {e}"
        ))
    })?;
    tokio::task::spawn_blocking(move || ruler.post_alerts(alerts))
        .await
        .map_err(|e| AmError::Api(ApiError::Internal(format!("taking the alerts failed: {e}"))))?
        .map_err(AmError::Bad)?;
    Ok(StatusCode::OK.into_response())
}

/// A silence in Alertmanager's `gettableSilence` shape.
fn silence_json(silence: &Silence, now_ms: i64) -> Value {
    // Times as Alertmanager writes them: UTC, milliseconds.
    let time = |text: &str| {
        sextant_model::time::parse_rfc3339_micros(text)
            .map_or_else(|| text.to_owned(), |us| rfc3339(us.div_euclid(1000)))
    };
    let matchers: Vec<Value> = silence
        .matchers
        .iter()
        .map(|m| {
            json!({
                "isEqual": m.is_equal,
                "isRegex": m.is_regex,
                "name": m.name,
                "value": m.value,
            })
        })
        .collect();
    let updated = if silence.updated_at.is_empty() {
        &silence.starts_at
    } else {
        &silence.updated_at
    };
    json!({
        "id": silence.id,
        "status": { "state": silence.state(now_ms) },
        "updatedAt": time(updated),
        "comment": silence.comment,
        "createdBy": silence.created_by,
        "endsAt": time(&silence.ends_at),
        "matchers": matchers,
        "startsAt": time(&silence.starts_at),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Alertmanager's filter over a silence: its matchers read as labels.
fn silence_matches(silence: &Silence, matchers: &[Matcher]) -> bool {
    let labels: LabelMap = silence
        .matchers
        .iter()
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    matches_filter(matchers, &labels)
}

/// `GET /api/v2/silences`: active ones first (the next to end first), then
/// pending (the next to start first), then expired (the latest first).
pub async fn silences(State(state): State<AppState>, uri: Uri) -> Result<Response, AmError> {
    let matchers = filters(&QueryParams::of(&uri)).map_err(AmError::Bad)?;
    let now = now_ms();
    let mut list: Vec<Silence> = ruler(&state)?
        .silence_list()
        .into_iter()
        .filter(|s| silence_matches(s, &matchers))
        .collect();
    let rank = |s: &Silence| -> (u8, i64) {
        let (starts, ends) = (s.starts_at_ms().unwrap_or(0), s.ends_at_ms().unwrap_or(0));
        match s.state(now) {
            "active" => (0, ends),
            "pending" => (1, starts),
            _ => (2, -ends),
        }
    };
    list.sort_by_key(rank);
    let list: Vec<Value> = list.iter().map(|s| silence_json(s, now)).collect();
    Ok(axum::Json(list).into_response())
}

/// Alertmanager's `postableSilence`: `id` to update one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Option<Vec<SilenceMatcher>>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    created_by: Option<String>,
    comment: Option<String>,
}

impl PostableSilence {
    fn into_silence(self) -> Result<Silence, String> {
        let required =
            |field: Option<String>, name: &str| field.ok_or_else(|| format!("{name} is required"));
        Ok(Silence {
            id: self.id.unwrap_or_default(),
            matchers: self.matchers.ok_or("matchers is required")?,
            starts_at: required(self.starts_at, "startsAt")?,
            ends_at: required(self.ends_at, "endsAt")?,
            created_by: required(self.created_by, "createdBy")?,
            comment: required(self.comment, "comment")?,
            updated_at: String::new(),
        })
    }
}

/// `POST /api/v2/silences`: creates a silence, or with `id` updates one.
pub async fn post_silence(State(state): State<AppState>, body: Bytes) -> Result<Response, AmError> {
    let ruler = ruler(&state)?;
    let silence = serde_json::from_slice::<PostableSilence>(&body)
        .map_err(|e| e.to_string())
        .and_then(PostableSilence::into_silence)
        .map_err(|e| AmError::Bad(format!("invalid silence: {e}")))?;
    match ruler.set_silence(silence) {
        Ok(id) => Ok(axum::Json(json!({ "silenceID": id })).into_response()),
        Err(SilenceError::NotFound(m)) => Err(AmError::NotFound(m)),
        Err(SilenceError::Invalid(m)) => Err(AmError::Bad(format!("invalid silence: {m}"))),
    }
}

fn not_found(id: &str) -> AmError {
    AmError::NotFound(format!("silence {id} not found"))
}

/// `GET /api/v2/silence/{id}`.
pub async fn silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AmError> {
    let silence = ruler(&state)?
        .silence_list()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(silence_json(&silence, now_ms())).into_response())
}

/// `DELETE /api/v2/silence/{id}`: expires it now.
pub async fn delete_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AmError> {
    if ruler(&state)?.expire_silence(&id) {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(not_found(&id))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_as_amtool_and_alertmanager_write_them() {
        let m = parse_matchers("alertname=\"Disk\"").unwrap();
        assert_eq!(
            (m[0].name.as_str(), m[0].value.as_str()),
            ("alertname", "Disk")
        );
        let m = parse_matchers("{severity=~\"page|crit\", team!=\"a,b\"}").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].value, "a,b");
        assert!(parse_matchers("").unwrap().is_empty());
        for bad in ["alertname", "alertname=\"Disk", "a=~\"(\"", "1x=y"] {
            let err = parse_matchers(bad).unwrap_err();
            assert!(err.starts_with("bad matcher format"), "{bad}: {err}");
        }
        let labels = LabelMap::from([("a".to_owned(), "1".to_owned())]);
        let parse = |t: &str| parse_matchers(t).unwrap();
        assert!(matches_filter(&parse("a=1"), &labels));
        assert!(
            !matches_filter(&parse("b=~\".*\""), &labels),
            "= and =~ need the label"
        );
        assert!(matches_filter(&parse("b!=x"), &labels));
    }
}
