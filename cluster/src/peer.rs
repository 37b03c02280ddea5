//! How a node asks the others: which node owns which partition, HTTP/1.1
//! calls to their `/internal/v1/...` endpoints, and waiting for async work
//! from the blocking threads storage's traits are called on.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::Cluster;

/// How long a node waits for another's answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `fut` on `runtime` and waits for it from this thread. Storage's
/// traits are synchronous and some callers call them from a runtime worker
/// (a listener's task): there the worker's other tasks are handed to
/// another thread while this one waits (`block_in_place`), or the future,
/// queued on this very worker, would never run.
pub(crate) fn wait<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> sextant_storage::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let on_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let received = if on_worker {
        tokio::task::block_in_place(|| rx.recv())
    } else {
        rx.recv()
    };
    received.map_err(|_| sextant_storage::Error::Unavailable("Sextant is stopping".into()))
}

/// Where each partition of a read goes.
#[derive(Debug, Default)]
pub(crate) struct Route {
    /// Partitions this node answers for.
    pub(crate) local: Vec<u32>,
    /// Other nodes' addresses and the partitions each answers for.
    pub(crate) remote: Vec<(String, Vec<u32>)>,
    /// Partitions nobody owns just now.
    pub(crate) missing: BTreeSet<u32>,
}

/// Routes `partitions` by the owners this node last saw (and the ones it
/// took since).
pub(crate) fn route(
    cluster: &Cluster,
    own: &[u32],
    partitions: impl IntoIterator<Item = u32>,
) -> Route {
    let status = cluster.status();
    let me = cluster.node_id();
    let mut route = Route::default();
    let mut by_node: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for partition in partitions {
        if own.contains(&partition) {
            route.local.push(partition);
            continue;
        }
        match status.owners.get(&partition).map(String::as_str) {
            Some(owner) if owner != me => by_node.entry(owner).or_default().push(partition),
            _ => {
                route.missing.insert(partition);
            }
        }
    }
    for (node, partitions) in by_node {
        match status.members.get(node) {
            Some(address) => route.remote.push((address.clone(), partitions)),
            None => route.missing.extend(partitions),
        }
    }
    route
}

/// As [`route`], waiting up to `patience` for partitions without an owner
/// to get one (a handover takes a round or two): a read during a move is
/// slower, not refused.
pub(crate) fn route_patiently(
    cluster: &Cluster,
    own: impl Fn() -> Vec<u32>,
    partitions: &[u32],
    patience: Duration,
) -> Route {
    let deadline = std::time::Instant::now() + patience;
    loop {
        let route = route(cluster, &own(), partitions.iter().copied());
        if route.missing.is_empty() || std::time::Instant::now() >= deadline {
            return route;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A read of `partitions` through their owners, whatever it asks: `local`
/// answers those this node owns, the other owners are sent
/// `request(their partitions)` at `path`, and every answer is merged into
/// the local one. `missing` takes the partitions an answer says its node
/// did not answer for. A partition nobody answered for is left out and the
/// read notes it as partial, naming the partitions of `kind`; a read a
/// node refuses as bad fails it as bad.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fan_out<Q, A>(
    cluster: &Cluster,
    runtime: &tokio::runtime::Handle,
    http: &PeerClient,
    owned: impl Fn() -> Vec<u32>,
    partitions: &[u32],
    (kind, path): (&str, &'static str),
    request: impl Fn(Vec<u32>) -> Q,
    local: impl FnOnce(&Q) -> Result<A, String>,
    missing: impl Fn(&mut A) -> Vec<u32>,
    mut merge: impl FnMut(&mut A, A),
) -> sextant_storage::Result<A>
where
    Q: serde::Serialize + Send + Sync + 'static,
    A: serde::de::DeserializeOwned + Send + 'static,
{
    let route = route_patiently(cluster, owned, partitions, crate::owner::READ_PATIENCE);
    let mut unanswered = route.missing;
    let mut merged = local(&request(route.local)).map_err(sextant_storage::Error::BadQuery)?;
    let calls = route.remote.into_iter().map(|(address, partitions)| {
        let http = http.clone();
        let read = request(partitions.clone());
        async move {
            let answer: Result<A, String> = http.call(&address, path, &read).await;
            (partitions, answer)
        }
    });
    let answers = wait(runtime, futures_util::future::join_all(calls))?;
    for (partitions, answer) in answers {
        match answer {
            Ok(answer) => merge(&mut merged, answer),
            Err(e) if refused_as_bad(&e) => return Err(sextant_storage::Error::BadQuery(e)),
            Err(e) => {
                tracing::warn!(kind, error = %e, "a node did not answer a read");
                unanswered.extend(partitions);
            }
        }
    }
    unanswered.extend(missing(&mut merged));
    if !unanswered.is_empty() {
        sextant_storage::partial::note(partial(kind, &unanswered));
    }
    Ok(merged)
}

/// Whether a node refused a read as bad (400): the query is at fault, not
/// the node, and the error goes back to the caller as it is.
pub(crate) fn refused_as_bad(error: &str) -> bool {
    error.contains(" answered 400")
}

/// What a read some partitions did not answer says about itself
/// ([`sextant_storage::partial`]): the answer goes back without them.
pub(crate) fn partial(kind: &str, missing: &BTreeSet<u32>) -> String {
    let list: Vec<String> = missing.iter().map(u32::to_string).collect();
    format!(
        "partial answer: {kind} partitions {} had no owner answering just now (a node joined \
         or left; they are taken over within 15 s)",
        list.join(", ")
    )
}

/// Calls other nodes over HTTP/1.1, with the cluster's token if it has one.
#[derive(Debug, Clone)]
pub(crate) struct PeerClient {
    authorization: Option<String>,
}

impl PeerClient {
    pub(crate) fn of(cluster: &Cluster) -> Self {
        Self {
            authorization: cluster.token().map(|t| format!("Bearer {t}")),
        }
    }

    /// POSTs `body` to `path` on `address`; the answer's body, or why not.
    pub(crate) async fn post(
        &self,
        address: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        tokio::time::timeout(TIMEOUT, self.post_once(address, path, body))
            .await
            .map_err(|_| format!("{address} did not answer within {TIMEOUT:?}"))?
    }

    /// POSTs `request` as JSON and reads a JSON answer.
    pub(crate) async fn call<A: serde::de::DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        request: &impl serde::Serialize,
    ) -> Result<A, String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let answer = self.post(address, path, body).await?;
        serde_json::from_slice(&answer).map_err(|e| format!("{address}'s answer: {e}"))
    }

    async fn post_once(&self, address: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
        let (status, _, bytes) = request_once(
            address,
            "POST",
            path,
            Some("application/json"),
            self.authorization.as_deref(),
            body,
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "{address} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ));
        }
        Ok(bytes)
    }
}

/// Sends a request as another node's client would, marked as forwarded
/// (the answering node does not forward it again): its status, content
/// type and body.
pub async fn forward(
    address: &str,
    method: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Option<String>, Vec<u8>), String> {
    tokio::time::timeout(
        TIMEOUT,
        request_once(
            address,
            method,
            path_and_query,
            content_type,
            authorization,
            body,
        ),
    )
    .await
    .map_err(|_| format!("{address} did not answer within {TIMEOUT:?}"))?
}

/// The header a forwarded request carries.
pub const FORWARDED: &str = "x-sextant-forwarded";

async fn request_once(
    address: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Option<String>, Vec<u8>), String> {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect to {address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{address}: {e}"))?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header(hyper::header::HOST, address)
        .header(FORWARDED, "1");
    if let Some(content_type) = content_type {
        request = request.header(hyper::header::CONTENT_TYPE, content_type);
    }
    if let Some(authorization) = authorization {
        request = request.header(hyper::header::AUTHORIZATION, authorization);
    }
    let request = request
        .body(http_body_util::Full::new(Bytes::from(body)))
        .map_err(|e| format!("{address}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{address}: {e}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{address}: {e}"))?
        .to_bytes();
    Ok((status, content_type, bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refusal_is_told_from_a_node_that_did_not_answer() {
        let status = 400;
        assert!(super::refused_as_bad(&format!(
            "127.0.0.1:7070 answered {status}: invalid regex"
        )));
        assert!(!super::refused_as_bad(
            "127.0.0.1:7070 answered 503: partitions 1 have no owner"
        ));
        assert!(!super::refused_as_bad("connect to 127.0.0.1:7070: refused"));
    }
}
