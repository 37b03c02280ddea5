//! The web UI's routes: `/ui/...` serves the embedded build (hashed assets
//! cached for good, every other path the page that routes on the client),
//! and `GET /` negotiates between a browser (the UI) and a log shipper (the
//! Elasticsearch root document it checks before `_bulk`).

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the UI may load: its own scripts, styles and APIs, nothing framed
/// elsewhere. Inline `style` attributes are how the charts and the waterfall
/// position their bars.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn accepts(headers: &HeaderMap, name: header::HeaderName, what: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|part| part.trim().starts_with(what)))
}

fn serve(asset: &'static sextant_ui::Asset, headers: &HeaderMap) -> Response {
    let gzip = accepts(headers, header::ACCEPT_ENCODING, "gzip");
    let mut response = if gzip {
        asset.gzip.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type()),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if asset.immutable() {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `GET /`: the UI for a browser, the Elasticsearch root document otherwise.
pub async fn root(headers: HeaderMap) -> Response {
    if accepts(&headers, header::ACCEPT, "text/html") {
        serve(sextant_ui::index(), &headers)
    } else {
        crate::es_api::info().await
    }
}

/// `GET /ui` and `/ui/`: the page.
pub async fn page(headers: HeaderMap) -> Response {
    serve(sextant_ui::index(), &headers)
}

/// `GET /ui/{path}`: a built file, or the page for any client-side route.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match sextant_ui::asset(&path) {
        Some(asset) => serve(asset, &headers),
        // A missing hashed file is an old page asking for what a newer
        // build replaced: a 404 tells it to reload, the page would not.
        None if path.starts_with("assets/") => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": format!("no UI asset {path:?}") })),
        )
            .into_response(),
        None => serve(sextant_ui::index(), &headers),
    }
}
