//! Endpoints whose feature has not landed yet must say so honestly:
//! HTTP 501 with a JSON error, never 200; unknown paths are 404.

use sextant_tests::Sextant;

#[test]
fn unbuilt_http_api_paths_answer_501_with_a_json_error() {
    let server = Sextant::start();
    let reply = server.get("/api/v1/status/tsdb");
    assert_eq!(reply.status, 501);
    assert_eq!(
        reply.json()["error"],
        "GET /api/v1/status/tsdb is not implemented yet in this Sextant build"
    );
    let reply = server.get("/no/such/thing");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "no endpoint at GET /no/such/thing");
}
