//! Access tokens on the HTTP API and OTLP: once `auth.tokens` is set, every
//! request but the health probes and the UI's static files carries a token
//! (`Authorization: Bearer <token>`, or HTTP basic auth with the token as the
//! password, which is what Grafana, Prometheus remote write, Fluent Bit and
//! browsers can send; gRPC metadata for OTLP) whose scopes cover what it asks:
//! ingest (writes of telemetry, and alerts other rulers send), query
//! (reads), admin (reloads, silences, rule changes). Tokens are compared in
//! constant time and never logged.
//! With no tokens, everything is open, and binding beyond loopback says so
//! loudly at start.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::{Scope, TokenConfig};
use crate::runtime::Runtime;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Health probes and the UI's static files: no token.
    Open,
    Scope(Scope),
}

/// The scope `method path` needs on the main HTTP listener.
pub fn need(method: &Method, path: &str) -> Need {
    let write = *method == Method::POST || *method == Method::PUT || *method == Method::DELETE;
    if path == "/-/healthy" || path == "/-/ready" || path == "/ui" || path.starts_with("/ui/") {
        return Need::Open;
    }
    // `GET /`: the UI's page for a browser, the Elasticsearch handshake for
    // a shipper; neither holds data.
    if path == "/" {
        return Need::Open;
    }
    let ingest = path == "/api/v1/write"
        || path == "/api/v1/import/prometheus"
        || path == "/loki/api/v1/push"
        || (path == "/api/v1/logs" && write)
        || path.ends_with("/_bulk")
        || path.starts_with("/_")
        // What Prometheus, vmalert and Loki's ruler send to an Alertmanager.
        || (path == "/api/v2/alerts" && write);
    if ingest {
        return Need::Scope(Scope::Ingest);
    }
    let ruler = crate::ruler_api::PREFIXES
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    let silences = path.starts_with("/api/v1/silences")
        || path == "/api/v2/silences"
        || path.starts_with("/api/v2/silence/");
    let admin = path == "/-/reload" || (write && silences) || (write && ruler);
    if admin {
        return Need::Scope(Scope::Admin);
    }
    // PromQL's POST form is a read.
    Need::Scope(Scope::Query)
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401 / UNAUTHENTICATED: no token, or not one Sextant knows.
    Unauthenticated(String),
    /// 403 / PERMISSION_DENIED: a known token without the scope.
    Forbidden(String),
}

/// The token a request presents: a bearer token, or basic auth's password.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_owned());
    }
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    decoded
        .split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Who a request is, once its token passed: the token's name and tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub tenant: Option<Arc<str>>,
}

/// Checks `headers` against `tokens` for `scope`; who it is when it passes.
pub fn check(tokens: &[TokenConfig], headers: &HeaderMap, scope: Scope) -> Result<Grant, Refusal> {
    let Some(token) = presented(headers) else {
        return Err(Refusal::Unauthenticated(format!(
            "this Sextant needs a token with the {} scope: send Authorization: Bearer <token> (or basic auth with the token as the password)",
            scope_name(scope)
        )));
    };
    let Some(known) = tokens.iter().find(|t| t.secret.matches(&token)) else {
        return Err(Refusal::Unauthenticated(
            "the token is not one this Sextant knows".into(),
        ));
    };
    if !known.scopes.contains(&scope) {
        return Err(Refusal::Forbidden(format!(
            "token {:?} lacks the {} scope this request needs",
            known.name,
            scope_name(scope)
        )));
    }
    Ok(Grant {
        name: known.name.clone(),
        tenant: known.tenant.as_deref().map(Arc::from),
    })
}

/// Whether a token limited to a tenant may use `path`: the paths whose
/// answers the tenant's view of the stores filters. Rules, alerts,
/// silences, targets, `/metrics` and reloads span every tenant.
pub fn tenant_may_use(path: &str) -> bool {
    const EXACT: [&str; 21] = [
        "/",
        "/api/v1/write",
        "/api/v1/import/prometheus",
        "/api/v1/logs",
        "/loki/api/v1/push",
        "/api/v1/query",
        "/api/v1/query_range",
        "/api/v1/format_query",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/export",
        "/api/v1/metadata",
        "/api/v1/status/buildinfo",
        "/jaeger/api/services",
        "/jaeger/api/operations",
        "/jaeger/api/traces",
        "/jaeger/api/dependencies",
        "/api/v1/query_exemplars",
        "/api/echo",
        "/api/search",
        "/api/status/buildinfo",
    ];
    const PREFIXES: [&str; 10] = [
        "/api/v1/label/",
        "/api/v1/logs/",
        "/api/v1/correlate/",
        "/jaeger/api/services/",
        "/jaeger/api/traces/",
        "/api/traces/",
        "/api/v2/traces/",
        "/api/search/",
        "/api/v2/search/",
        "/_",
    ];
    // Loki's query API reads the tenant's stores; its ruler paths do not.
    let loki = (path.starts_with("/loki/api/v1/") || path.starts_with("/loki/loki/api/v1/"))
        && !path.contains("/rules");
    EXACT.contains(&path)
        || PREFIXES.iter().any(|p| path.starts_with(p))
        || path.ends_with("/_bulk")
        || loki
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Ingest => "ingest",
        Scope::Query => "query",
        Scope::Admin => "admin",
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Refusal::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
            Refusal::Forbidden(m) => (StatusCode::FORBIDDEN, m),
        };
        let mut response = (
            status,
            axum::Json(serde_json::json!({ "status": "error", "errorType": "unauthorized", "error": message })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            // A browser asks for the token (as the password) and sends it from then on.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sextant\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// The HTTP listener's gate.
pub async fn gate(State(runtime): State<Arc<Runtime>>, request: Request, next: Next) -> Response {
    let tokens = runtime.tokens();
    if tokens.is_empty() {
        return next.run(request).await;
    }
    match need(request.method(), request.uri().path()) {
        Need::Open => next.run(request).await,
        Need::Scope(scope) => match check(&tokens, request.headers(), scope) {
            Ok(Grant {
                tenant: Some(tenant),
                name,
            }) => {
                if !tenant_may_use(request.uri().path()) {
                    return Refusal::Forbidden(format!(
                        "token {name:?} is limited to tenant {tenant:?}, and {} answers for every tenant",
                        request.uri().path()
                    ))
                    .into_response();
                }
                sextant_ingest::tenant::TENANT
                    .scope(Some(tenant), next.run(request))
                    .await
            }
            Ok(_) => next.run(request).await,
            Err(refusal) => refusal.into_response(),
        },
    }
}

/// OTLP's exports need the ingest scope, over HTTP and gRPC alike.
#[derive(Debug)]
pub struct OtlpAuth(pub Arc<Runtime>);

impl sextant_ingest::otlp::ExportAuth for OtlpAuth {
    fn check(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<str>>, sextant_ingest::otlp::AuthRefusal> {
        let tokens = self.0.tokens();
        if tokens.is_empty() {
            return Ok(None);
        }
        check(&tokens, headers, Scope::Ingest)
            .map(|grant| grant.tenant)
            .map_err(|r| match r {
                Refusal::Unauthenticated(m) => {
                    sextant_ingest::otlp::AuthRefusal::Unauthenticated(m)
                }
                Refusal::Forbidden(m) => sextant_ingest::otlp::AuthRefusal::Forbidden(m),
            })
    }
}

/// Standard base64 (with or without padding); `None` when it is not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_needs_the_scope_its_users_would_expect() {
        let get = Method::GET;
        let post = Method::POST;
        for (method, path, want) in [
            (&get, "/-/ready", Need::Open),
            (&get, "/ui/logs", Need::Open),
            (&get, "/", Need::Open),
            (&post, "/api/v1/write", Need::Scope(Scope::Ingest)),
            (&post, "/api/v1/logs", Need::Scope(Scope::Ingest)),
            (
                &post,
                "/fluentd-2026.11.28/_bulk",
                Need::Scope(Scope::Ingest),
            ),
            (&post, "/loki/api/v1/push", Need::Scope(Scope::Ingest)),
            (&get, "/api/v1/query", Need::Scope(Scope::Query)),
            (&post, "/api/v1/query_range", Need::Scope(Scope::Query)),
            (&get, "/api/v1/logs/search", Need::Scope(Scope::Query)),
            (&get, "/jaeger/api/services", Need::Scope(Scope::Query)),
            (&get, "/metrics", Need::Scope(Scope::Query)),
            (&get, "/api/v1/rules", Need::Scope(Scope::Query)),
            (&post, "/api/v1/rules/payments", Need::Scope(Scope::Admin)),
            (
                &Method::DELETE,
                "/config/v1/rules/payments/queue",
                Need::Scope(Scope::Admin),
            ),
            (&post, "/api/v1/silences", Need::Scope(Scope::Admin)),
            (&get, "/api/v1/silences", Need::Scope(Scope::Query)),
            (&post, "/api/v2/alerts", Need::Scope(Scope::Ingest)),
            (&get, "/api/v2/alerts", Need::Scope(Scope::Query)),
            (&get, "/api/v2/alerts/groups", Need::Scope(Scope::Query)),
            (&get, "/api/v2/status", Need::Scope(Scope::Query)),
            (&post, "/api/v2/silences", Need::Scope(Scope::Admin)),
            (&get, "/api/v2/silences", Need::Scope(Scope::Query)),
            (
                &Method::DELETE,
                "/api/v2/silence/0a1b",
                Need::Scope(Scope::Admin),
            ),
            (&get, "/api/v2/silence/0a1b", Need::Scope(Scope::Query)),
            (&post, "/-/reload", Need::Scope(Scope::Admin)),
        ] {
            assert_eq!(need(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn basic_auth_carries_the_token_as_its_password() {
        let mut headers = HeaderMap::new();
        // printf 'grafana:s3cret' | base64
        headers.insert(
            header::AUTHORIZATION,
            "Basic Z3JhZmFuYTpzM2NyZXQ=".parse().unwrap(),
        );
        assert_eq!(presented(&headers).as_deref(), Some("s3cret"));
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(presented(&headers), None);
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
    }
}
