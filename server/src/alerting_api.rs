//! Alerting wired to the stores, and its HTTP API: `/api/v1/rules` and
//! `/api/v1/alerts` in Prometheus's shapes, `/api/v1/alerts/history`, and
//! silences in Alertmanager's v2 shape under `/api/v1/silences`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse as _, Response};
use serde_json::json;
use sextant_alerting::notify::Silence;
use sextant_alerting::ruler::{LoadedGroup, LogCounter, SampleSink, StateStore};
use sextant_model::{Labels, Sample};
use sextant_storage::logs::LogQuery;
use sextant_storage::{LogReader, MetricsWriter, SeriesSamples, StateDir};

use crate::api::success;
use crate::config::LoadedConfig;
use crate::http::{ApiError, AppState, QueryParams};

/// Log rules count through the log store, and Loki's rules run their
/// LogQL over it.
pub(crate) struct LogStoreCounter(
    pub Arc<dyn LogReader>,
    pub sextant_query::logql::eval::Options,
);

impl LogCounter for LogStoreCounter {
    fn count(&self, query: &str, start_ms: i64, end_ms: i64) -> Result<u64, String> {
        let (hits, partial) = sextant_storage::partial::noting(|| {
            self.0.search_logs(&LogQuery {
                text: query.to_owned(),
                start_us: start_ms * 1000,
                end_us: end_ms * 1000 + 1,
                limit: 0,
                ascending: false,
                after: None,
            })
        });
        let hits = hits.map_err(|e| e.to_string())?;
        // A count short of a partition would resolve an alert for want of
        // data: the evaluation fails instead.
        if !partial.is_empty() {
            return Err(partial.join("; "));
        }
        Ok(hits.total as u64)
    }

    fn logql(
        &self,
        expr: &str,
        t_ms: i64,
    ) -> Result<Vec<(sextant_alerting::state::LabelMap, f64)>, String> {
        use sextant_query::logql::eval::{Engine, Range, Value};
        let parsed = sextant_query::logql::parse::parse(expr).map_err(|e| e.to_string())?;
        let engine = Engine::new(self.0.clone(), self.1.clone());
        let t_ns = t_ms.saturating_mul(1_000_000);
        let range = Range {
            start_ns: t_ns,
            end_ns: t_ns,
            step_ns: 0,
            limit: 0,
            forward: false,
        };
        let (value, partial) = sextant_storage::partial::noting(|| engine.eval(&parsed, range));
        let value = value.map_err(|e| e.to_string())?;
        if !partial.is_empty() {
            return Err(partial.join("; "));
        }
        match value {
            Value::Vector(_, samples) => Ok(samples.into_iter().collect()),
            Value::Scalar(_, v) => Ok(vec![(Default::default(), v)]),
            _ => Err("a LogQL rule must give a vector".to_owned()),
        }
    }
}

/// Recording rules write into the metrics store.
pub(crate) struct MetricsSink(pub Arc<dyn MetricsWriter>);

impl SampleSink for MetricsSink {
    fn write(&self, samples: Vec<(Labels, i64, f64)>) -> Result<(), String> {
        let batch: Vec<SeriesSamples> = samples
            .into_iter()
            .map(|(labels, timestamp_ms, value)| SeriesSamples {
                labels,
                samples: vec![Sample {
                    timestamp_ms,
                    value,
                }],
            })
            .collect();
        self.0.append(&batch).map(|_| ()).map_err(|e| e.to_string())
    }

    fn write_histograms(
        &self,
        samples: Vec<(Labels, i64, sextant_model::histogram::FloatHistogram)>,
    ) -> Result<(), String> {
        let batch: Vec<sextant_storage::SeriesHistograms> = samples
            .into_iter()
            .map(
                |(labels, timestamp_ms, h)| sextant_storage::SeriesHistograms {
                    labels,
                    samples: vec![sextant_model::histogram::HistogramSample {
                        timestamp_ms,
                        value: sextant_model::histogram::HistogramValue::Float(h),
                    }],
                },
            )
            .collect();
        self.0
            .append_histograms(&batch)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Alert state lives in `<data>/alerting/`.
pub(crate) struct DataDirState(pub StateDir);

impl StateStore for DataDirState {
    fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0.put(name, bytes)
    }

    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.0.get(name)
    }

    fn delete(&self, name: &str) -> std::io::Result<()> {
        self.0.delete(name)
    }

    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        self.0.list(prefix)
    }
}

/// Alert state in cluster mode: in a JetStream object store every node
/// reads, so that the node taking the ruler over continues from it.
pub(crate) struct ClusterState(pub sextant_cluster::SharedBlobs);

impl StateStore for ClusterState {
    fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0.put(name, bytes)
    }

    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.0.get(name)
    }

    fn delete(&self, name: &str) -> std::io::Result<()> {
        self.0.delete(name)
    }

    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        self.0.list(prefix)
    }
}

/// The rule groups of every rule file a config names.
pub fn groups_of(config: Option<&LoadedConfig>) -> Vec<LoadedGroup> {
    config
        .map(|c| {
            c.rule_files
                .iter()
                .flat_map(|(file, rules)| {
                    rules.groups.iter().map(move |group| LoadedGroup {
                        file: file.clone(),
                        group: group.clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ruler(state: &AppState) -> Result<&Arc<sextant_alerting::ruler::Ruler>, ApiError> {
    state
        .runtime
        .ruler()
        .ok_or_else(|| ApiError::Unavailable("alerting starts once the stores are open".into()))
}

pub async fn rules(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let params = QueryParams::of(&uri);
    let kind = params.get("type");
    if let Some(kind) = kind
        && kind != "alert"
        && kind != "record"
    {
        return Err(ApiError::BadData(format!(
            "invalid parameter \"type\": {kind:?} is not alert or record"
        )));
    }
    Ok(success(ruler(&state)?.rules_json(kind)))
}

pub async fn alerts(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(success(ruler(&state)?.alerts_json()))
}

pub async fn history(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let params = QueryParams::of(&uri);
    Ok(success(ruler(&state)?.history_json(params.get("rule"))))
}

pub async fn silences(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(axum::Json(ruler(&state)?.silences_json()).into_response())
}

pub async fn add_silence(
    State(state): State<AppState>,
    body: String,
) -> Result<Response, ApiError> {
    let silence: Silence = serde_json::from_str(&body)
        .map_err(|e| ApiError::BadIngest(format!("invalid silence: {e}")))?;
    let id = ruler(&state)?
        .add_silence(silence)
        .map_err(|e| ApiError::BadIngest(format!("invalid silence: {e}")))?;
    Ok(axum::Json(json!({ "silenceID": id })).into_response())
}

pub async fn expire_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if ruler(&state)?.expire_silence(&id) {
        Ok(axum::Json(json!({})).into_response())
    } else {
        Err(ApiError::NotFound(format!("silence {id} not found")))
    }
}
