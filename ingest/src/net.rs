//! Socket plumbing shared by the listeners: byte-counting TCP streams, a
//! datagram loop and a bounded line reader, each ending on the shutdown signal.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sextant_model::telemetry::ListenerStats;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::udp;

/// A TCP stream that adds what it reads to its listener's byte counter and
/// keeps the open-connections gauge right for as long as it lives.
#[derive(Debug)]
pub struct CountingStream {
    inner: TcpStream,
    stats: Arc<ListenerStats>,
}

impl CountingStream {
    /// Wraps an accepted stream, counting the connection.
    pub fn new(inner: TcpStream, stats: Arc<ListenerStats>) -> Self {
        stats.connections.inc();
        stats.open_connections.inc();
        Self { inner, stats }
    }
}

impl Drop for CountingStream {
    fn drop(&mut self) {
        self.stats.open_connections.dec();
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.stats.received_bytes.add(read as u64);
        poll
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for CountingStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A TCP listener for axum whose connections are [`CountingStream`]s.
#[derive(Debug)]
pub struct CountingListener {
    listener: TcpListener,
    stats: Arc<ListenerStats>,
}

impl CountingListener {
    /// Wraps a bound listener.
    pub fn new(listener: TcpListener, stats: Arc<ListenerStats>) -> Self {
        Self { listener, stats }
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = CountingStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (CountingStream::new(stream, self.stats.clone()), addr);
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    self.stats.errors.inc();
                    warn!(listener = self.stats.listener, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// Logs a warning at most once per interval, saying how many were suppressed.
#[derive(Debug)]
pub struct RateLimitedWarning {
    start: Instant,
    interval: Duration,
    /// Milliseconds since `start` of the last logged warning, plus one (0 = never).
    last_logged: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimitedWarning {
    /// At most one warning per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            start: Instant::now(),
            interval,
            last_logged: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Calls `log` with the number suppressed since the last call that logged,
    /// unless one logged less than an interval ago.
    pub fn warn(&self, log: impl FnOnce(u64)) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last_logged.load(Ordering::Relaxed);
        let interval = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        if due
            && self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log(self.suppressed.swap(0, Ordering::Relaxed));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Why a gzip body could not be undone.
#[derive(Debug)]
pub enum GunzipError {
    /// Not gzip, or cut short.
    Invalid(io::Error),
    /// It unpacks to more than the limit (bytes).
    TooLarge(usize),
}

impl std::fmt::Display for GunzipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(err) => write!(f, "body is not valid gzip: {err}"),
            Self::TooLarge(limit) => write!(f, "decompressed body is larger than {limit} bytes"),
        }
    }
}

/// Undoes gzip, reading at most `limit` bytes of output, so a small bomb
/// cannot make the server hold a large body.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(GunzipError::Invalid)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge(limit));
    }
    Ok(out)
}

/// Receives datagrams until shutdown, counting each and handing it to
/// `handle`: batches of up to [`udp::BATCH`] per system call on Linux, and
/// a receive buffer enlarged to [`udp::RECEIVE_BUFFER`].
pub async fn serve_datagrams(
    socket: UdpSocket,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
    mut handle: impl FnMut(&[u8], SocketAddr),
) {
    match udp::enlarge_receive_buffer(&socket, udp::RECEIVE_BUFFER) {
        Ok(granted) => debug!(
            listener = stats.listener,
            bytes = granted,
            "UDP receive buffer"
        ),
        Err(err) => {
            warn!(listener = stats.listener, error = %err, "cannot enlarge the UDP receive buffer");
        }
    }
    let unknown: SocketAddr = ([0, 0, 0, 0], 0).into();
    let mut batch = udp::BatchReceiver::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            ready = socket.readable() => {
                if let Err(err) = ready {
                    stats.errors.inc();
                    debug!(listener = stats.listener, error = %err, "UDP socket not readable");
                    continue;
                }
            }
        }
        // Drain what is waiting, a batch per call, then wait for readiness again.
        loop {
            let received = socket.try_io(tokio::io::Interest::READABLE, || {
                batch.receive(std::os::fd::AsRawFd::as_raw_fd(&socket))
            });
            match received {
                Ok(count) => {
                    for i in 0..count {
                        let (payload, peer, truncated) = batch.datagram(i);
                        stats.received_bytes.add(payload.len() as u64);
                        stats.requests.inc();
                        if truncated {
                            stats.errors.inc();
                        }
                        handle(payload, peer.unwrap_or(unknown));
                    }
                    if count < udp::BATCH {
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => {
                    stats.errors.inc();
                    debug!(listener = stats.listener, error = %err, "recv failed");
                    break;
                }
            }
        }
    }
}

/// Limits for a newline-delimited TCP protocol.
#[derive(Debug, Clone, Copy)]
pub struct LineLimits {
    /// Longest accepted line in bytes; longer lines are counted as errors and skipped.
    pub max_line: usize,
    /// Most connections open at once; more are closed on accept and counted as errors.
    pub max_connections: usize,
    /// Counts a line skipped for its length, besides the listener's errors.
    pub too_long: Option<&'static sextant_model::telemetry::Counter>,
}

/// Accepts connections until shutdown and hands every complete line
/// (without its `\n` or `\r\n`) to `handle`. Lines longer than `max_line`
/// are skipped whole and counted as errors, so memory per connection is bounded.
pub async fn serve_lines<H>(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
    limits: LineLimits,
    handle: H,
) where
    H: Fn(&[u8], SocketAddr) + Clone + Send + Sync + 'static,
{
    serve_lines_tls(listener, stats, shutdown, limits, None, handle).await;
}

/// [`serve_lines`], with each connection's TLS handshake first when
/// `tls` is set (on the connection's own task, with a timeout).
pub async fn serve_lines_tls<H>(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
    limits: LineLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handle: H,
) where
    H: Fn(&[u8], SocketAddr) + Clone + Send + Sync + 'static,
{
    let reader_stats = stats.clone();
    let serve = move |stream: Connection, peer: SocketAddr| {
        let (stats, handle) = (reader_stats.clone(), handle.clone());
        async move { read_lines(stream, peer, &stats, limits, &handle).await }
    };
    serve_connections(
        listener,
        stats,
        shutdown,
        limits.max_connections,
        tls,
        |_| true,
        serve,
    )
    .await;
}

async fn read_lines(
    mut stream: impl AsyncRead + Unpin,
    peer: SocketAddr,
    stats: &ListenerStats,
    limits: LineLimits,
    handle: &impl Fn(&[u8], SocketAddr),
) {
    let max_line = limits.max_line;
    let too_long = || {
        stats.errors.inc();
        if let Some(counter) = limits.too_long {
            counter.inc();
        }
        debug!(listener = stats.listener, %peer, max_line, "line too long; skipped");
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // Set while the rest of an over-long line is being skipped.
    let mut skipping = false;
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) => {
                stats.errors.inc();
                debug!(listener = stats.listener, %peer, error = %err, "read failed");
                return;
            }
        };
        let mut data = &chunk[..read];
        while let Some(newline) = data.iter().position(|&b| b == b'\n') {
            let (head, tail) = data.split_at(newline);
            data = &tail[1..];
            if skipping {
                skipping = false;
                continue;
            }
            pending.extend_from_slice(head);
            if pending.len() > max_line {
                too_long();
            } else {
                deliver(&pending, peer, stats, handle);
            }
            pending.clear();
        }
        if !skipping {
            pending.extend_from_slice(data);
            if pending.len() > max_line {
                too_long();
                pending = Vec::new();
                skipping = true;
            }
        }
    }
    // A last line without a trailing newline still counts.
    if !skipping && !pending.is_empty() {
        deliver(&pending, peer, stats, handle);
    }
}

fn deliver(
    line: &[u8],
    peer: SocketAddr,
    stats: &ListenerStats,
    handle: &impl Fn(&[u8], SocketAddr),
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return;
    }
    stats.requests.inc();
    handle(line, peer);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn lines_are_split_bounded_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ListenerStats::new("test", "tcp"));
        let shutdown = CancellationToken::new();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = seen.clone();
        let server = tokio::spawn(serve_lines(
            listener,
            stats.clone(),
            shutdown.clone(),
            LineLimits {
                max_line: 16,
                max_connections: 4,
                too_long: None,
            },
            move |line, _| {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(line).into());
            },
        ));

        let mut client = TcpStream::connect(addr).await.unwrap();
        let long = "x".repeat(100);
        client
            .write_all(format!("one\r\ntwo\n\n{long}\nthree\nfour").as_bytes())
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        // Wait for the server to see the close.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        for _ in 0..100 {
            if seen.lock().unwrap().len() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*seen.lock().unwrap(), ["one", "two", "three", "four"]);
        assert_eq!(stats.requests.get(), 4);
        assert_eq!(stats.errors.get(), 1);
        assert_eq!(stats.connections.get(), 1);
        assert_eq!(stats.received_bytes.get(), 121);
        shutdown.cancel();
        server.await.unwrap();
    }

    #[test]
    fn rate_limited_warning_counts_what_it_suppresses() {
        let warning = RateLimitedWarning::new(Duration::from_secs(3600));
        let logged = Mutex::new(Vec::new());
        for _ in 0..5 {
            warning.warn(|suppressed| logged.lock().unwrap().push(suppressed));
        }
        assert_eq!(*logged.lock().unwrap(), [0]);
        assert_eq!(warning.suppressed.load(Ordering::Relaxed), 4);
    }
}

/// A listener's TLS: a certificate chain and its key, PEM files, re-read
/// when they change (a renewed certificate needs no restart).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// CA certificates (PEM) that sign clients' certificates. When set, the
    /// ingest-only listeners (OTLP gRPC and HTTP, logstash TCP) require a
    /// client certificate it signed (mutual TLS); the HTTP API, which
    /// browsers and Grafana use, keeps server-only TLS.
    #[serde(default)]
    pub client_ca_file: Option<std::path::PathBuf>,
}

/// How long a TLS handshake may take before the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files' modification times are looked at.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// The certificate served now, swapped when its files change.
#[derive(Debug)]
struct ReloadingCert {
    files: TlsFiles,
    state: std::sync::Mutex<CertState>,
}

#[derive(Debug)]
struct CertState {
    key: Arc<rustls::sign::CertifiedKey>,
    stamp: Option<(std::time::SystemTime, std::time::SystemTime)>,
    checked: Instant,
}

fn modified(files: &TlsFiles) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let time = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((time(&files.cert_file)?, time(&files.key_file)?))
}

fn load_certified_key(files: &TlsFiles) -> Result<rustls::sign::CertifiedKey, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(Iterator::collect)
        .map_err(|e| format!("tls cert_file {}: {e}", files.cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls cert_file {}: no certificate in it",
            files.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| format!("tls key_file {}: {e}", files.key_file.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls key_file {}: {e}", files.key_file.display()))?;
    Ok(rustls::sign::CertifiedKey::new(chain, signing))
}

impl ReloadingCert {
    fn current(&self) -> Arc<rustls::sign::CertifiedKey> {
        let mut state = self.state.lock().expect("tls lock");
        if state.checked.elapsed() >= RELOAD_CHECK {
            state.checked = Instant::now();
            let stamp = modified(&self.files);
            if stamp.is_some() && stamp != state.stamp {
                // A half-written pair fails to load: keep serving the old one.
                match load_certified_key(&self.files) {
                    Ok(key) => {
                        state.key = Arc::new(key);
                        state.stamp = stamp;
                        tracing::info!(cert_file = %self.files.cert_file.display(), "TLS certificate reloaded");
                    }
                    Err(err) => {
                        warn!(error = %err, "TLS certificate not reloaded; serving the previous one");
                    }
                }
            }
        }
        state.key.clone()
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current())
    }
}

/// A TLS acceptor serving `files` (HTTP/1.1 and HTTP/2 by ALPN); an error
/// names the file that could not be used.
pub fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, String> {
    acceptor(files, false)
}

/// The acceptor for ingest-only listeners: as [`tls_acceptor`], and when
/// `client_ca_file` is set, a client certificate signed by it is required.
pub fn ingest_tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, String> {
    acceptor(files, files.client_ca_file.is_some())
}

fn client_verifier(
    path: &std::path::Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| format!("tls client_ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls client_ca_file {}: no certificate in it",
            path.display()
        ));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("tls client_ca_file {}: {e}", path.display()))?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("tls client_ca_file {}: {e}", path.display()))
}

fn acceptor(files: &TlsFiles, mutual: bool) -> Result<tokio_rustls::TlsAcceptor, String> {
    let key = load_certified_key(files)?;
    let resolver = ReloadingCert {
        files: files.clone(),
        state: std::sync::Mutex::new(CertState {
            key: Arc::new(key),
            stamp: modified(files),
            checked: Instant::now(),
        }),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (&files.client_ca_file, mutual) {
        (Some(ca), true) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A TLS listener for `axum::serve`: connections are accepted at once and
/// their handshakes run on their own tasks (with a timeout), so a slow or
/// silent client never holds up the others.
#[derive(Debug)]
pub struct TlsListener {
    ready:
        tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<CountingStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` until the listener is dropped.
    pub fn new(
        listener: TcpListener,
        stats: Arc<ListenerStats>,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (send, ready) = tokio::sync::mpsc::channel(64);
        let mut plain = CountingListener::new(listener, stats.clone());
        tokio::spawn(async move {
            loop {
                let (stream, peer) = axum::serve::Listener::accept(&mut plain).await;
                if send.is_closed() {
                    return;
                }
                let (acceptor, ready, stats) = (acceptor.clone(), send.clone(), stats.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        Ok(Err(err)) => {
                            stats.errors.inc();
                            debug!(listener = stats.listener, %peer, error = %err, "TLS handshake failed");
                        }
                        Err(_) => {
                            stats.errors.inc();
                            debug!(listener = stats.listener, %peer, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl TlsListener {
    /// The accepted connections as a stream, for tonic's server.
    pub fn into_incoming(
        self,
    ) -> impl tokio_stream::Stream<Item = io::Result<TlsConnection>> + Send + 'static {
        tokio_stream::wrappers::ReceiverStream::new(self.ready)
            .map(|(stream, _)| Ok(TlsConnection(stream)))
    }
}

/// A TLS connection tonic can serve.
#[derive(Debug)]
pub struct TlsConnection(tokio_rustls::server::TlsStream<CountingStream>);

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<CountingStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A byte stream both ways, plain or TLS.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// A connection's byte stream, plain or TLS.
pub type Connection = Box<dyn Duplex>;

/// Accepts connections until shutdown and runs `serve` on each (on its own
/// task, after the TLS handshake when `tls` is set), for stream protocols
/// with their own framing. A peer `admit` refuses is closed at once and
/// counted as dropped; beyond `max_connections` open, new ones are closed
/// and counted as errors. Each connection ends with the shutdown signal.
pub async fn serve_connections<F, Fut>(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
    max_connections: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
    admit: impl Fn(SocketAddr) -> bool,
    serve: F,
) where
    F: Fn(Connection, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                stats.errors.inc();
                warn!(listener = stats.listener, error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !admit(peer) {
            stats.dropped.inc();
            continue;
        }
        // Protocols that answer (forward's acks) answer at once.
        let _ = stream.set_nodelay(true);
        let stream = CountingStream::new(stream, stats.clone());
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.errors.inc();
            warn!(listener = stats.listener, %peer, "too many connections; closing");
            continue;
        };
        let (stats, shutdown, serve, tls) =
            (stats.clone(), shutdown.clone(), serve.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let connection: Connection = match tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => Box::new(stream),
                        Ok(Err(err)) => {
                            stats.errors.inc();
                            debug!(listener = stats.listener, %peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            stats.errors.inc();
                            debug!(listener = stats.listener, %peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = serve(connection, peer) => {}
            }
        });
    }
}
