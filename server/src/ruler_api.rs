//! The ruler API as Mimir, Cortex and Loki define it, so that Grafana's
//! data source-managed rule editor, `mimirtool` and scripts can create,
//! replace and delete rule groups without a restart:
//!
//! - `GET {prefix}` lists every namespace with its groups (YAML);
//! - `GET {prefix}/{namespace}` and `GET {prefix}/{namespace}/{group}`;
//! - `POST {prefix}/{namespace}` with one group as YAML creates or replaces it;
//! - `DELETE {prefix}/{namespace}/{group}` and `DELETE {prefix}/{namespace}`;
//! - `GET /api/v1/rules/changes`: who changed what, when.
//!
//! for the prefixes `/api/v1/rules` (listing with `Accept: application/yaml`,
//! as Prometheus's own JSON answers there otherwise), `/config/v1/rules` and
//! `/prometheus/config/v1/rules`. Groups are validated exactly as rule
//! files are, kept one namespace per file under `<data>/alerting/`, written
//! atomically, and evaluated at once beside the file-loaded ones, which the
//! API may read but not change (409).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sextant_alerting::ruler::{LoadedGroup, StateStore};
use sextant_alerting::rules::{RuleGroup, parse_rule_file};
use sextant_model::SourceError;

use crate::http::AppState;

/// Where the ruler API answers: Cortex's and Loki's paths, Mimir's (with
/// and without its `/prometheus` prefix), and the `/rules` paths Grafana's
/// ruler proxy builds from a data source URL.
pub const PREFIXES: [&str; 7] = [
    "/api/v1/rules",
    "/loki/api/v1/rules",
    "/config/v1/rules",
    "/prometheus/config/v1/rules",
    "/rules",
    "/prometheus/rules",
    "/api/prom/rules",
];

/// Changes kept for `/api/v1/rules/changes`.
const CHANGES: usize = 1000;
const CHANGES_DOC: &str = "ruler-changes.json";
/// Namespace files: `ruler/ns-<escaped name>.yml`.
const LEVEL: &str = "ruler/";
const PREFIX: &str = "ruler/ns-";

/// A namespace's name as a document name: `a-z A-Z 0-9 _ -` kept, every
/// other byte as `.XX` (hex), so that any name maps to one file and back.
fn escape(namespace: &str) -> String {
    let mut out = String::from(PREFIX);
    for byte in namespace.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!(".{byte:02x}"));
        }
    }
    out.push_str(".yml");
    out
}

fn unescape(name: &str) -> Option<String> {
    let body = name.strip_prefix(PREFIX)?.strip_suffix(".yml")?;
    let mut bytes = Vec::new();
    let mut chars = body.bytes();
    while let Some(b) = chars.next() {
        if b == b'.' {
            let hex = [chars.next()?, chars.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// One group as it was posted: its YAML (to answer with) and its rules.
#[derive(Debug, Clone)]
struct StoredGroup {
    yaml: serde_norway::Value,
    group: RuleGroup,
}

/// The rule groups created through the API, by namespace.
pub struct RuleNamespaces {
    dir: Arc<dyn StateStore>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for RuleNamespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleNamespaces").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Inner {
    namespaces: BTreeMap<String, Vec<StoredGroup>>,
    changes: VecDeque<serde_json::Value>,
}

/// Why a change was refused.
#[derive(Debug)]
pub enum RulerError {
    /// 400: the body is not a valid rule group.
    Invalid(String),
    /// 404.
    NotFound(String),
    /// 409: a namespace that comes from a rule file.
    ReadOnly(String),
    /// 500: the change could not be stored.
    Storage(String),
    /// 503: the stores are still opening.
    Unavailable(String),
    /// 401: tokens are configured and none was presented, or an unknown one.
    Unauthorized(String),
    /// 403: a token without the admin scope.
    Forbidden(String),
}

/// Every namespace kept in `dir`. One that no longer validates (a rule
/// feature removed since) is skipped with a warning.
fn read_namespaces(dir: &dyn StateStore) -> std::io::Result<Inner> {
    let mut inner = Inner::default();
    for name in dir.list(LEVEL)? {
        let Some(namespace) = unescape(&name) else {
            continue;
        };
        let Some(bytes) = dir.get(&name)? else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        match parse_namespace(&namespace, &text) {
            Ok(groups) => {
                inner.namespaces.insert(namespace, groups);
            }
            Err(err) => {
                tracing::warn!(namespace = %namespace, error = %err, "a stored rule namespace no longer loads; skipped");
            }
        }
    }
    if let Some(bytes) = dir.get(CHANGES_DOC)?
        && let Ok(changes) = serde_json::from_slice::<VecDeque<serde_json::Value>>(&bytes)
    {
        inner.changes = changes;
    }
    Ok(inner)
}

impl RuleNamespaces {
    /// Loads every namespace kept in `dir` (the alerting state's store).
    pub fn open(dir: Arc<dyn StateStore>) -> std::io::Result<Self> {
        let inner = read_namespaces(&*dir)?;
        Ok(Self {
            dir,
            inner: Mutex::new(inner),
        })
    }

    /// Reads the namespaces again from the store (cluster mode: another
    /// node may have changed them while it evaluated the rules).
    pub fn reload(&self) -> std::io::Result<()> {
        let read = read_namespaces(&*self.dir)?;
        *self.inner.lock().expect("namespaces lock") = read;
        Ok(())
    }

    /// Every API group, for the ruler: the namespace stands where a rule file's path would.
    pub fn loaded_groups(&self) -> Vec<LoadedGroup> {
        let inner = self.inner.lock().expect("namespaces lock");
        inner
            .namespaces
            .iter()
            .flat_map(|(namespace, groups)| {
                groups.iter().map(move |g| LoadedGroup {
                    file: PathBuf::from(namespace),
                    group: g.group.clone(),
                })
            })
            .collect()
    }

    fn yaml_of(&self, namespace: &str) -> Option<Vec<serde_norway::Value>> {
        let inner = self.inner.lock().expect("namespaces lock");
        inner
            .namespaces
            .get(namespace)
            .map(|groups| groups.iter().map(|g| g.yaml.clone()).collect())
    }

    fn all_yaml(&self) -> BTreeMap<String, Vec<serde_norway::Value>> {
        let inner = self.inner.lock().expect("namespaces lock");
        inner
            .namespaces
            .iter()
            .map(|(ns, groups)| (ns.clone(), groups.iter().map(|g| g.yaml.clone()).collect()))
            .collect()
    }

    /// Creates or replaces the group `body` (one group, YAML) in `namespace`.
    pub fn put_group(&self, namespace: &str, body: &str, who: &str) -> Result<String, RulerError> {
        let source = PathBuf::from(namespace);
        check_flow_brackets(namespace, body)?;
        let group: RuleGroup = serde_norway::from_str(body)
            .map_err(|e| RulerError::Invalid(SourceError::from_yaml(&source, &e).to_string()))?;
        let yaml: serde_norway::Value = serde_norway::from_str(body)
            .map_err(|e| RulerError::Invalid(SourceError::from_yaml(&source, &e).to_string()))?;
        let name = group.name.clone();
        let mut inner = self.inner.lock().expect("namespaces lock");
        let mut groups = inner.namespaces.get(namespace).cloned().unwrap_or_default();
        let replaced = match groups.iter_mut().find(|g| g.group.name == name) {
            Some(existing) => {
                *existing = StoredGroup { yaml, group };
                true
            }
            None => {
                groups.push(StoredGroup { yaml, group });
                false
            }
        };
        self.store(namespace, &groups)?;
        inner.namespaces.insert(namespace.to_owned(), groups);
        let what = if replaced { "replaced" } else { "created" };
        self.record(&mut inner, who, what, namespace, Some(&name), Some(body));
        Ok(name)
    }

    /// Deletes one group; a namespace left empty goes with it.
    pub fn delete_group(&self, namespace: &str, group: &str, who: &str) -> Result<(), RulerError> {
        let mut inner = self.inner.lock().expect("namespaces lock");
        let Some(groups) = inner.namespaces.get(namespace) else {
            return Err(RulerError::NotFound(format!(
                "no rule groups found: no namespace {namespace:?}"
            )));
        };
        if !groups.iter().any(|g| g.group.name == group) {
            return Err(RulerError::NotFound(format!(
                "group does not exist: no group {group:?} in namespace {namespace:?}"
            )));
        }
        let left: Vec<StoredGroup> = groups
            .iter()
            .filter(|g| g.group.name != group)
            .cloned()
            .collect();
        if left.is_empty() {
            self.dir.delete(&escape(namespace)).map_err(|e| {
                RulerError::Storage(format!("deleting namespace {namespace:?}: {e}"))
            })?;
            inner.namespaces.remove(namespace);
        } else {
            self.store(namespace, &left)?;
            inner.namespaces.insert(namespace.to_owned(), left);
        }
        self.record(&mut inner, who, "deleted", namespace, Some(group), None);
        Ok(())
    }

    /// Deletes a namespace and its groups.
    pub fn delete_namespace(&self, namespace: &str, who: &str) -> Result<(), RulerError> {
        let mut inner = self.inner.lock().expect("namespaces lock");
        if !inner.namespaces.contains_key(namespace) {
            return Err(RulerError::NotFound(format!(
                "no rule groups found: no namespace {namespace:?}"
            )));
        }
        self.dir
            .delete(&escape(namespace))
            .map_err(|e| RulerError::Storage(format!("deleting namespace {namespace:?}: {e}")))?;
        inner.namespaces.remove(namespace);
        self.record(&mut inner, who, "deleted namespace", namespace, None, None);
        Ok(())
    }

    /// The namespace as a rule file (`groups:`), written atomically.
    fn store(&self, namespace: &str, groups: &[StoredGroup]) -> Result<(), RulerError> {
        let file = serde_norway::to_string(&BTreeMap::from([(
            "groups",
            groups.iter().map(|g| g.yaml.clone()).collect::<Vec<_>>(),
        )]))
        .map_err(|e| RulerError::Storage(format!("encoding namespace {namespace:?}: {e}")))?;
        self.dir
            .put(&escape(namespace), file.as_bytes())
            .map_err(|e| RulerError::Storage(format!("storing namespace {namespace:?}: {e}")))
    }

    fn record(
        &self,
        inner: &mut Inner,
        who: &str,
        what: &str,
        namespace: &str,
        group: Option<&str>,
        body: Option<&str>,
    ) {
        inner.changes.push_back(json!({
            "time": sextant_alerting::notify::rfc3339(now_ms()),
            "who": who,
            "what": what,
            "namespace": namespace,
            "group": group,
            "body": body,
        }));
        while inner.changes.len() > CHANGES {
            inner.changes.pop_front();
        }
        if let Ok(bytes) = serde_json::to_vec(&inner.changes)
            && let Err(err) = self.dir.put(CHANGES_DOC, &bytes)
        {
            tracing::warn!(error = %err, "storing the ruler change log failed");
        }
    }

    fn changes(&self) -> Vec<serde_json::Value> {
        self.inner
            .lock()
            .expect("namespaces lock")
            .changes
            .iter()
            .cloned()
            .collect()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Refuses a group with more `[` and `{` than ten times `query.max_depth`,
/// before the YAML parser sees it: libyaml takes time quadratic in the
/// nesting of flow collections (`rules: [[[[...]]]]` 100,000 deep took 46
/// seconds of CPU). Counting every bracket, quoted or not, bounds the
/// nesting whatever the quoting; a real group has a few hundred.
fn check_flow_brackets(namespace: &str, body: &str) -> Result<(), RulerError> {
    let brackets = body.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    let limit = sextant_model::depth::max_depth().saturating_mul(10);
    if brackets > limit {
        return Err(RulerError::Invalid(format!(
            "{namespace}: the group has {brackets} '[' and '{{', more than {limit} (ten times query.max_depth)"
        )));
    }
    Ok(())
}

/// A stored namespace's file: a rule file, validated as one.
fn parse_namespace(namespace: &str, text: &str) -> Result<Vec<StoredGroup>, String> {
    let file = parse_rule_file(std::path::Path::new(namespace), text).map_err(|e| e.to_string())?;
    let yaml: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let values = yaml
        .get("groups")
        .and_then(|g| g.as_sequence())
        .cloned()
        .unwrap_or_default();
    Ok(file
        .groups
        .into_iter()
        .zip(values)
        .map(|(group, yaml)| StoredGroup { yaml, group })
        .collect())
}

// ---- HTTP

/// Mimir's answer envelope.
fn envelope(status: StatusCode, error: Option<(&str, String)>) -> Response {
    let body = match error {
        None => json!({"status": "success", "data": null, "errorType": "", "error": ""}),
        Some((kind, message)) => {
            json!({"status": "error", "data": null, "errorType": kind, "error": message})
        }
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for RulerError {
    fn into_response(self) -> Response {
        match self {
            RulerError::Invalid(m) => envelope(StatusCode::BAD_REQUEST, Some(("bad_data", m))),
            RulerError::NotFound(m) => envelope(StatusCode::NOT_FOUND, Some(("not_found", m))),
            RulerError::ReadOnly(m) => envelope(StatusCode::CONFLICT, Some(("conflict", m))),
            RulerError::Storage(m) => {
                envelope(StatusCode::INTERNAL_SERVER_ERROR, Some(("internal", m)))
            }
            RulerError::Unavailable(m) => {
                envelope(StatusCode::SERVICE_UNAVAILABLE, Some(("unavailable", m)))
            }
            RulerError::Unauthorized(m) => {
                let mut response = envelope(StatusCode::UNAUTHORIZED, Some(("unauthorized", m)));
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"sextant\""),
                );
                response
            }
            RulerError::Forbidden(m) => envelope(StatusCode::FORBIDDEN, Some(("forbidden", m))),
        }
    }
}

fn yaml_response<T: serde::Serialize>(value: &T) -> Response {
    match serde_norway::to_string(value) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/yaml")], text).into_response(),
        Err(e) => RulerError::Storage(format!("encoding YAML: {e}")).into_response(),
    }
}

/// Who may change rules, and who they are. With no tokens configured, anyone
/// (named by the user Grafana forwards, `send_user_header`, or a proxy's
/// user header, else "anonymous"); with tokens, a token with the admin
/// scope (as `auth` checks it), named by the token's name.
fn authorize_admin(state: &AppState, headers: &HeaderMap) -> Result<String, RulerError> {
    let tokens = state.runtime.tokens();
    if tokens.is_empty() {
        return Ok(["x-grafana-user", "x-forwarded-user"]
            .iter()
            .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
            .map_or_else(|| "anonymous".to_owned(), str::to_owned));
    }
    crate::auth::check(&tokens, headers, crate::config::Scope::Admin)
        .map(|grant| grant.name)
        .map_err(|refusal| match refusal {
            crate::auth::Refusal::Unauthenticated(m) => RulerError::Unauthorized(m),
            crate::auth::Refusal::Forbidden(m) => RulerError::Forbidden(m),
        })
}

fn namespaces(state: &AppState) -> Result<&Arc<RuleNamespaces>, RulerError> {
    state
        .runtime
        .rule_namespaces()
        .ok_or_else(|| RulerError::Unavailable("the ruler starts once the stores are open".into()))
}

/// The groups of rule files, by file, as YAML: listed, never changed.
fn file_namespaces(state: &AppState) -> BTreeMap<String, Vec<serde_norway::Value>> {
    let mut out = BTreeMap::new();
    for path in state.runtime.rule_file_paths() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(yaml) = serde_norway::from_str::<serde_norway::Value>(&text) else {
            continue;
        };
        let groups = yaml
            .get("groups")
            .and_then(|g| g.as_sequence())
            .cloned()
            .unwrap_or_default();
        out.insert(path.display().to_string(), groups);
    }
    out
}

/// A namespace a rule file owns: its path as listed, its file name, or its stem.
fn owned_by_a_file(state: &AppState, namespace: &str) -> Option<PathBuf> {
    state.runtime.rule_file_paths().into_iter().find(|path| {
        path.display().to_string() == namespace
            || path
                .file_name()
                .is_some_and(|n| n.to_string_lossy() == namespace)
            || path
                .file_stem()
                .is_some_and(|n| n.to_string_lossy() == namespace)
    })
}

/// `GET {prefix}`: every namespace, file-loaded ones too.
pub async fn list(State(state): State<AppState>) -> Response {
    let api = match namespaces(&state) {
        Ok(n) => n.all_yaml(),
        Err(e) => return e.into_response(),
    };
    let mut all = file_namespaces(&state);
    all.extend(api);
    yaml_response(&all)
}

/// `GET /api/v1/rules`: the ruler's YAML listing when asked for YAML,
/// Prometheus's rules endpoint otherwise.
pub async fn list_or_prometheus(
    state: State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let wants_yaml = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("yaml"));
    if wants_yaml && uri.query().is_none() {
        return list(state).await;
    }
    match crate::alerting_api::rules(state, uri).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// `GET {prefix}/{namespace}`.
pub async fn get_namespace(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
) -> Response {
    let found = match namespaces(&state) {
        Ok(n) => n.yaml_of(&namespace),
        Err(e) => return e.into_response(),
    }
    .or_else(|| {
        owned_by_a_file(&state, &namespace)
            .and_then(|p| file_namespaces(&state).remove(&p.display().to_string()))
    });
    match found {
        Some(groups) => yaml_response(&BTreeMap::from([(namespace, groups)])),
        None => RulerError::NotFound(format!("no rule groups found: no namespace {namespace:?}"))
            .into_response(),
    }
}

/// `GET {prefix}/{namespace}/{group}`.
pub async fn get_group(
    State(state): State<AppState>,
    Path((namespace, group)): Path<(String, String)>,
) -> Response {
    let groups = match namespaces(&state) {
        Ok(n) => n.yaml_of(&namespace),
        Err(e) => return e.into_response(),
    }
    .or_else(|| {
        owned_by_a_file(&state, &namespace)
            .and_then(|p| file_namespaces(&state).remove(&p.display().to_string()))
    })
    .unwrap_or_default();
    match groups
        .into_iter()
        .find(|g| g.get("name").and_then(|n| n.as_str()) == Some(group.as_str()))
    {
        Some(found) => yaml_response(&found),
        None => RulerError::NotFound(format!(
            "group does not exist: no group {group:?} in namespace {namespace:?}"
        ))
        .into_response(),
    }
}

fn refuse_files(state: &AppState, namespace: &str) -> Result<(), RulerError> {
    match owned_by_a_file(state, namespace) {
        Some(path) => Err(RulerError::ReadOnly(format!(
            "namespace {namespace:?} comes from the rule file {}: it is read-only through the API; change the file and reload",
            path.display()
        ))),
        None => Ok(()),
    }
}

/// A change to `namespace`: refused for rule files' namespaces and callers
/// without the admin scope (once tokens are configured); otherwise `apply`
/// runs on a blocking thread (it writes to disk) with the caller's name,
/// and the ruler takes the new groups at once.
async fn change(
    state: &AppState,
    namespace: &str,
    headers: &HeaderMap,
    apply: impl FnOnce(&RuleNamespaces, &str) -> Result<(), RulerError> + Send + 'static,
) -> Result<Response, RulerError> {
    let store = namespaces(state)?.clone();
    refuse_files(state, namespace)?;
    let who = authorize_admin(state, headers)?;
    tokio::task::spawn_blocking(move || apply(&store, &who))
        .await
        .map_err(|e| RulerError::Storage(format!("the change failed: {e}")))??;
    state.runtime.apply_rule_groups();
    Ok(envelope(StatusCode::ACCEPTED, None))
}

/// `POST {prefix}/{namespace}`: one group as YAML, created or replaced.
pub async fn post_group(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let ns = namespace.clone();
    change(&state, &namespace, &headers, move |store, who| {
        store.put_group(&ns, &body, who).map(drop)
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE {prefix}/{namespace}/{group}`.
pub async fn delete_group(
    State(state): State<AppState>,
    Path((namespace, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let ns = namespace.clone();
    change(&state, &namespace, &headers, move |store, who| {
        store.delete_group(&ns, &group, who)
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE {prefix}/{namespace}`.
pub async fn delete_namespace(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ns = namespace.clone();
    change(&state, &namespace, &headers, move |store, who| {
        store.delete_namespace(&ns, who)
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/rules/changes`: every change through the API, oldest first.
pub async fn changes(State(state): State<AppState>) -> Response {
    match namespaces(&state) {
        Ok(n) => crate::api::success(serde_json::Value::Array(n.changes())),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with_tokens(yaml: &str) -> AppState {
        let metrics = Arc::new(crate::self_metrics::SelfMetrics::new(
            Vec::new(),
            Default::default(),
        ));
        let state = AppState::new(metrics, Arc::default());
        let auth: crate::config::AuthConfig = serde_norway::from_str(yaml).unwrap();
        state.runtime.set_tokens(auth.tokens);
        state
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    /// Auth is enforced server-wide by a later issue (the server refuses
    /// to start with `auth.tokens` until then); the ruler's own guard is
    /// checked here, on the state the handlers see.
    #[test]
    fn with_tokens_only_an_admin_scoped_bearer_token_changes_rules() {
        let open = state_with_tokens("tokens: []");
        assert_eq!(
            authorize_admin(&open, &headers(&[("x-grafana-user", "alice")])).unwrap(),
            "alice"
        );
        assert_eq!(authorize_admin(&open, &headers(&[])).unwrap(), "anonymous");

        let guarded = state_with_tokens(
            "tokens:\n  - {name: ops-admin, token: admin-secret, scopes: [admin, query]}\n",
        );
        assert!(matches!(
            authorize_admin(&guarded, &headers(&[("x-grafana-user", "alice")])),
            Err(RulerError::Unauthorized(_))
        ));
        assert!(matches!(
            authorize_admin(&guarded, &headers(&[("authorization", "Bearer wrong")])),
            Err(RulerError::Unauthorized(_))
        ));
        assert_eq!(
            authorize_admin(
                &guarded,
                &headers(&[
                    ("authorization", "Bearer admin-secret"),
                    ("x-grafana-user", "mallory")
                ])
            )
            .unwrap(),
            "ops-admin",
            "the token's name, not a header"
        );
        let response = authorize_admin(&guarded, &headers(&[]))
            .unwrap_err()
            .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn a_token_without_the_admin_scope_is_forbidden_even_by_its_hash() {
        let digest = ring::digest::digest(&ring::digest::SHA256, b"ingest-secret");
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let guarded = state_with_tokens(&format!(
            "tokens:\n  - {{name: services, token_sha256: {hex}, scopes: [ingest]}}\n"
        ));
        match authorize_admin(
            &guarded,
            &headers(&[("authorization", "Bearer ingest-secret")]),
        ) {
            Err(RulerError::Forbidden(m)) => {
                assert!(m.contains("\"services\" lacks the admin scope"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_namespace_name_maps_to_one_document_and_back() {
        for name in [
            "simplebank",
            "team/payments",
            "Grafana folder ü",
            "a.b",
            ".x",
        ] {
            let doc = escape(name);
            let file = doc.strip_prefix("ruler/").expect("one level down");
            assert!(
                file.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{doc}"
            );
            assert_eq!(unescape(&doc).as_deref(), Some(name));
        }
        assert_ne!(escape("a.b"), escape("a.2eb"));
    }
}
