//! One scrape: fetch a target over HTTP, parse what it returned (text,
//! OpenMetrics, or the protobuf exposition with native histograms), attach
//! the target's labels, apply `metric_relabel_configs`, write the samples
//! and histograms, the `up`/`scrape_*` series and staleness markers for
//! series that went away.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::header;
use sextant_model::histogram::{Histogram, HistogramSample, HistogramValue, is_exponential_schema};
use sextant_model::{Exemplar, Labels, Sample, stale_nan};
use sextant_storage::{MetricMetadata, MetricsWriter, RefSample, SeriesHistograms, SeriesSamples};

use super::config::{Credentials, Scheme, ScrapeConfig};
use super::relabel::{LabelMap, relabel};
use super::target::{Job, Target};
use crate::prom_proto::{self, SampleValue};
use crate::prom_text::{Entry, Format, LineError, Parser, parse_exemplar};

/// The largest scrape body read when the job sets no `body_size_limit`.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// A fetched exposition.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub format: BodyFormat,
}

/// The exposition format a target answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Prometheus text or OpenMetrics.
    Text(Format),
    /// The protobuf exposition ([`crate::prom_proto`]).
    Protobuf,
}

impl BodyFormat {
    /// The format a `Content-Type` header announces (text 0.0.4 when unsure).
    pub fn from_content_type(content_type: &str) -> Self {
        if prom_proto::is_protobuf(content_type) {
            Self::Protobuf
        } else {
            Self::Text(Format::from_content_type(content_type))
        }
    }
}

/// GETs the target's metrics page: one HTTP/1.1 request over a fresh
/// connection, gzip undone, at most `limit` bytes. Errors read like Prometheus's.
pub async fn fetch(
    target: &Target,
    job: &Job,
    tls: Option<&Result<Arc<rustls::ClientConfig>, String>>,
    limit: usize,
) -> Result<Fetched, String> {
    let config = &job.config;
    let url = target.url();
    let mut request = hyper::Request::get(target.path_and_query.as_str())
        .header(header::HOST, target.address.as_str())
        .header(header::ACCEPT, config.accept_header())
        .header(
            header::USER_AGENT,
            concat!("Sextant/", env!("CARGO_PKG_VERSION")),
        )
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        );
    if config.enable_compression {
        request = request.header(header::ACCEPT_ENCODING, "gzip");
    }
    if let Some(value) = authorization(job)? {
        request = request.header(header::AUTHORIZATION, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let stream = tokio::net::TcpStream::connect(target.address.as_str())
        .await
        .map_err(|e| format!("Get \"{url}\": dial tcp {}: {e}", target.address))?;
    let _ = stream.set_nodelay(true);
    let response = match target.scheme {
        Scheme::Http => send(stream, request, &url).await?,
        Scheme::Https => {
            let tls_config = match tls {
                Some(Ok(tls_config)) => tls_config.clone(),
                Some(Err(err)) => return Err(err.clone()),
                None => return Err("no TLS configuration for an https target".to_owned()),
            };
            let name = super::tls::server_name(config.tls_config.as_ref(), &target.address)?;
            let stream = tokio_rustls::TlsConnector::from(tls_config)
                .connect(name, stream)
                .await
                .map_err(|e| format!("Get \"{url}\": tls: {e}"))?;
            send(stream, request, &url).await?
        }
    };
    let status = response.status();
    if !status.is_success() {
        return Err(format!("server returned HTTP status {status}"));
    }
    let text = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let format = BodyFormat::from_content_type(&text(header::CONTENT_TYPE));
    let gzip = text(header::CONTENT_ENCODING).eq_ignore_ascii_case("gzip");
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("body size limit exceeded ({limit} bytes)")
            } else {
                format!("reading the body: {e}")
            }
        })?
        .to_bytes();
    let body = if gzip {
        crate::net::gunzip(&body, limit).map_err(|e| match e {
            crate::net::GunzipError::Invalid(e) => format!("decompressing the gzip body: {e}"),
            crate::net::GunzipError::TooLarge(_) => {
                format!("body size limit exceeded ({limit} bytes)")
            }
        })?
    } else {
        body.to_vec()
    };
    Ok(Fetched { body, format })
}

/// One HTTP/1.1 exchange over `io` (plain TCP or TLS).
async fn send<IO>(
    io: IO,
    request: hyper::Request<Empty<Bytes>>,
    url: &str,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))
}

/// The `Authorization` header a job asks for, reading files at scrape time.
fn authorization(job: &Job) -> Result<Option<String>, String> {
    authorization_header(&job.config.credentials(), &job.base_dir)
}

/// The `Authorization` header `credentials` ask for, reading the files they
/// name (relative to `base_dir`) now, so a rotated secret is used at once.
pub fn authorization_header(
    credentials: &Credentials<'_>,
    base_dir: &Path,
) -> Result<Option<String>, String> {
    let read = |path: &str| {
        let path = base_dir.join(path);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("reading {}: {e}", path.display()))
    };
    if let Some(auth) = credentials.basic_auth {
        let password = match (&auth.password, &auth.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(file)) => read(file)?,
            (None, None) => String::new(),
        };
        let raw = format!("{}:{password}", auth.username);
        return Ok(Some(format!("Basic {}", base64(raw.as_bytes()))));
    }
    if let Some(token) = credentials.bearer_token {
        return Ok(Some(format!("Bearer {token}")));
    }
    if let Some(file) = credentials.bearer_token_file {
        return Ok(Some(format!("Bearer {}", read(file)?)));
    }
    if let Some(auth) = credentials.authorization {
        let credentials = match (&auth.credentials, &auth.credentials_file) {
            (Some(c), _) => c.clone(),
            (None, Some(file)) => read(file)?,
            (None, None) => return Ok(None),
        };
        return Ok(Some(format!("{} {credentials}", auth.kind)));
    }
    Ok(None)
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What a scrape needs to know about its target and job, beyond the body.
#[derive(Debug, Clone)]
pub struct ScrapeContext {
    pub target: Arc<Target>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub track_timestamps_staleness: bool,
    pub metric_relabel: Arc<[super::config::RelabelConfig]>,
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    /// How the protobuf exposition's histograms are read.
    pub histograms: prom_proto::Options,
    /// `native_histogram_bucket_limit`; 0 for none.
    pub bucket_limit: usize,
    /// The highest schema kept (from `native_histogram_min_bucket_factor`).
    pub max_schema: i32,
}

/// The highest schema whose bucket growth factor is at least `factor`
/// (Prometheus's `pickSchema`): 8 for a factor up to 1.
pub fn pick_schema(factor: f64) -> i32 {
    let factor = if factor <= 1.0 { 1.00271 } else { factor };
    let floor = (-factor.log2().log2()).floor();
    if floor.is_nan() {
        return 8;
    }
    floor.clamp(-4.0, 8.0) as i32
}

impl ScrapeContext {
    /// The context for `target` of `config`.
    pub fn new(target: Arc<Target>, config: &ScrapeConfig) -> Self {
        let limit = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Self {
            target,
            honor_labels: config.honor_labels,
            honor_timestamps: config.honor_timestamps,
            track_timestamps_staleness: config.track_timestamps_staleness,
            metric_relabel: config.metric_relabel_configs.clone().into(),
            sample_limit: limit(config.sample_limit),
            label_limit: limit(config.label_limit),
            label_name_length_limit: limit(config.label_name_length_limit),
            label_value_length_limit: limit(config.label_value_length_limit),
            histograms: config.histogram_options(),
            bucket_limit: limit(config.native_histogram_bucket_limit),
            max_schema: pick_schema(config.native_histogram_min_bucket_factor),
        }
    }
}

/// A scraped series as last seen.
#[derive(Debug)]
struct CachedSeries {
    /// `None` when `metric_relabel_configs` dropped it.
    labels: Option<Labels>,
    /// What the store calls it (0 until the first append).
    series_ref: u64,
    /// The scrape that last saw it.
    seen: u64,
    /// It came with its own timestamp (no staleness marker unless tracked).
    explicit_timestamp: bool,
    /// Its last sample was a native histogram (its staleness marker is one).
    histogram: bool,
}

type FastMap<K, V> = HashMap<K, V, xxhash_rust::xxh64::Xxh64Builder>;

/// A target's memory between scrapes: series by the text they were written
/// as, so a repeated series costs one hash lookup and is appended by the
/// store's reference; what metadata was written.
#[derive(Debug, Default)]
pub struct ScrapeCache {
    index: FastMap<String, usize>,
    slots: Vec<CachedSeries>,
    iteration: u64,
    metadata: HashMap<String, MetricMetadata>,
}

impl ScrapeCache {
    /// Series from the last successful scrape that will get a staleness marker if they vanish.
    pub fn live_series(&self) -> usize {
        self.slots.iter().filter(|s| s.labels.is_some()).count()
    }

    /// Appends `samples` (slot, sample) and remembers the references the store gave.
    fn append(
        &mut self,
        samples: &[(usize, Sample)],
        writer: &dyn MetricsWriter,
    ) -> Result<u64, String> {
        let mut batch: Vec<RefSample<'_>> = samples
            .iter()
            .filter_map(|&(slot, sample)| {
                let cached = &self.slots[slot];
                Some(RefSample {
                    labels: cached.labels.as_ref()?,
                    series_ref: cached.series_ref,
                    sample,
                })
            })
            .collect();
        let result = writer.append_refs(&mut batch);
        let refs: Vec<u64> = batch.iter().map(|s| s.series_ref).collect();
        drop(batch);
        for (&(slot, _), series_ref) in samples.iter().zip(refs) {
            self.slots[slot].series_ref = series_ref;
        }
        result
            .map(|report| report.rejected_total())
            .map_err(|e| format!("storing: {e}"))
    }

    /// Appends native histogram samples (slot, sample); how many the store refused.
    fn append_histograms(
        &self,
        samples: Vec<(usize, HistogramSample)>,
        writer: &dyn MetricsWriter,
    ) -> Result<u64, String> {
        let batch: Vec<SeriesHistograms> = samples
            .into_iter()
            .filter_map(|(slot, sample)| {
                Some(SeriesHistograms {
                    labels: self.slots[slot].labels.clone()?,
                    samples: vec![sample],
                })
            })
            .collect();
        writer
            .append_histograms(&batch)
            .map(|report| report.rejected_total())
            .map_err(|e| format!("storing: {e}"))
    }

    /// Forgets series not seen by the current scrape.
    fn keep_current(&mut self) {
        let iteration = self.iteration;
        if self.slots.iter().all(|s| s.seen == iteration) {
            return;
        }
        let mut renumber = vec![usize::MAX; self.slots.len()];
        let mut kept = Vec::with_capacity(self.slots.len());
        for (old, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if slot.seen == iteration {
                renumber[old] = kept.len();
                kept.push(slot);
            }
        }
        self.slots = kept;
        self.index.retain(|_, slot| {
            *slot = renumber[*slot];
            *slot != usize::MAX
        });
    }
}

/// What one scrape produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScrapeOutcome {
    /// Samples in the body.
    pub scraped: u64,
    /// Samples left after metric relabelling.
    pub post_relabel: u64,
    /// Series not in the previous scrape.
    pub added: u64,
    /// Staleness markers written for series that vanished.
    pub stale: u64,
    /// Lines that did not parse (the rest was kept).
    pub bad_lines: Vec<LineError>,
    /// Samples the store refused.
    pub refused: u64,
    /// OpenMetrics exemplars the store took.
    pub exemplars: u64,
    /// Exemplars that did not parse or the store refused (their samples
    /// were kept), and why the first was.
    pub exemplars_refused: u64,
    pub exemplar_error: Option<String>,
}

/// Parses a fetched body in its format and writes it; see [`ingest`].
pub fn ingest_body(
    body: &[u8],
    format: BodyFormat,
    context: &ScrapeContext,
    cache: &mut ScrapeCache,
    writer: &dyn MetricsWriter,
    now_ms: i64,
) -> Result<ScrapeOutcome, String> {
    match format {
        BodyFormat::Text(format) => {
            let text = String::from_utf8_lossy(body);
            ingest(&text, format, context, cache, writer, now_ms)
        }
        BodyFormat::Protobuf => ingest_protobuf(body, context, cache, writer, now_ms),
    }
}

/// One scrape's samples on their way to the store.
struct Pass<'a> {
    context: &'a ScrapeContext,
    iteration: u64,
    first_new: usize,
    now_ms: i64,
    outcome: ScrapeOutcome,
    samples: Vec<(usize, Sample)>,
    histograms: Vec<(usize, HistogramSample)>,
    exemplars: Vec<(Labels, Exemplar)>,
}

impl<'a> Pass<'a> {
    fn new(context: &'a ScrapeContext, cache: &ScrapeCache, now_ms: i64) -> Self {
        Self {
            context,
            iteration: cache.iteration + 1,
            first_new: cache.slots.len(),
            now_ms,
            outcome: ScrapeOutcome::default(),
            samples: Vec::with_capacity(cache.slots.len()),
            histograms: Vec::new(),
            exemplars: Vec::new(),
        }
    }

    /// The timestamp a sample is written at, and whether it is its own.
    fn time(&self, own: Option<i64>) -> (i64, bool) {
        match own {
            Some(t) if self.context.honor_timestamps => (t, true),
            _ => (self.now_ms, false),
        }
    }

    /// Counts a scraped sample and finds (or makes) its series' cache
    /// slot; `None` when relabelling dropped it. An `Err` fails the scrape.
    fn slot(
        &mut self,
        cache: &mut ScrapeCache,
        key: &str,
        name: &str,
        labels: &[(&str, std::borrow::Cow<'_, str>)],
        explicit: bool,
        histogram: bool,
    ) -> Result<Option<usize>, String> {
        self.outcome.scraped += 1;
        let slot = match cache.index.get(key) {
            Some(&slot) => slot,
            None => {
                let labels = series_labels(name, labels, self.context)?;
                if labels.is_some() {
                    self.outcome.added += 1;
                }
                cache.slots.push(CachedSeries {
                    labels,
                    series_ref: 0,
                    seen: 0,
                    explicit_timestamp: explicit,
                    histogram,
                });
                cache.index.insert(key.to_owned(), cache.slots.len() - 1);
                cache.slots.len() - 1
            }
        };
        let cached = &mut cache.slots[slot];
        // A series written twice in one body: the later line wins, as in the store.
        cached.seen = self.iteration;
        cached.explicit_timestamp = explicit;
        cached.histogram = histogram;
        if cached.labels.is_none() {
            return Ok(None);
        }
        self.outcome.post_relabel += 1;
        if self.context.sample_limit > 0
            && self.outcome.post_relabel as usize > self.context.sample_limit
        {
            return Err(format!(
                "sample_limit exceeded: more than {} samples after relabelling",
                self.context.sample_limit
            ));
        }
        Ok(Some(slot))
    }

    /// Brings a native histogram within the job's bucket limit and
    /// resolution, as Prometheus's scrape appenders do.
    fn limit(&self, mut value: HistogramValue) -> Result<HistogramValue, String> {
        let max_schema = self.context.max_schema;
        if is_exponential_schema(value.schema()) && value.schema() > max_schema {
            reduce(&mut value, max_schema)?;
        }
        let limit = self.context.bucket_limit;
        if limit == 0 {
            return Ok(value);
        }
        let buckets = |v: &HistogramValue| v.bucket_count() - custom_bounds(v);
        while buckets(&value) > limit {
            if !is_exponential_schema(value.schema())
                || value.schema() <= sextant_model::histogram::EXPONENTIAL_SCHEMA_MIN
            {
                return Err(format!(
                    "native_histogram_bucket_limit exceeded: a histogram with {} buckets, more than {limit}",
                    buckets(&value)
                ));
            }
            let lower = value.schema() - 1;
            reduce(&mut value, lower)?;
        }
        Ok(value)
    }

    /// Writes the samples, histograms, exemplars, staleness markers for
    /// series that went away, and changed metadata.
    fn finish(
        mut self,
        cache: &mut ScrapeCache,
        writer: &dyn MetricsWriter,
        metadata: HashMap<&str, MetricMetadata>,
    ) -> Result<ScrapeOutcome, String> {
        let now_ms = self.now_ms;
        cache.iteration = self.iteration;
        for (slot, cached) in cache.slots.iter().enumerate() {
            if cached.seen == self.iteration - 1
                && (!cached.explicit_timestamp || self.context.track_timestamps_staleness)
                && cached.labels.is_some()
            {
                if cached.histogram {
                    self.histograms.push((slot, stale_histogram(now_ms)));
                } else {
                    self.samples.push((
                        slot,
                        Sample {
                            timestamp_ms: now_ms,
                            value: stale_nan(),
                        },
                    ));
                }
                self.outcome.stale += 1;
            }
        }
        let mut outcome = self.outcome;
        outcome.refused = cache.append(&self.samples, writer)?;
        if !self.histograms.is_empty() {
            outcome.refused += cache.append_histograms(self.histograms, writer)?;
        }
        if !self.exemplars.is_empty() {
            let taken = writer
                .append_exemplars(&self.exemplars)
                .map_err(|e| format!("storing exemplars: {e}"))?;
            outcome.exemplars = taken as u64;
            outcome.exemplars_refused +=
                (self.exemplars.len() - taken.min(self.exemplars.len())) as u64;
        }
        cache.keep_current();
        for (family, meta) in metadata {
            if cache.metadata.get(family) != Some(&meta) {
                writer
                    .set_metadata(family, meta.clone())
                    .map_err(|e| format!("storing metadata: {e}"))?;
                cache.metadata.insert(family.to_owned(), meta);
            }
        }
        Ok(outcome)
    }

    /// Forgets the series a failed scrape added.
    fn abandon(self, cache: &mut ScrapeCache) {
        let first_new = self.first_new;
        cache.slots.truncate(first_new);
        cache.index.retain(|_, slot| *slot < first_new);
    }
}

/// Custom bucket bounds counted in [`HistogramValue::bucket_count`].
fn custom_bounds(value: &HistogramValue) -> usize {
    match value {
        HistogramValue::Int(h) => h.custom_values.len(),
        HistogramValue::Float(h) => h.custom_values.len(),
    }
}

fn reduce(value: &mut HistogramValue, schema: i32) -> Result<(), String> {
    match value {
        HistogramValue::Int(h) => h.reduce_resolution(schema),
        HistogramValue::Float(h) => h.reduce_resolution(schema),
    }
    .map_err(|e| format!("reducing a native histogram's resolution: {e}"))
}

/// Prometheus's staleness marker for a native histogram series.
fn stale_histogram(timestamp_ms: i64) -> HistogramSample {
    HistogramSample {
        timestamp_ms,
        value: HistogramValue::Int(Histogram {
            sum: stale_nan(),
            ..Histogram::default()
        }),
    }
}

/// Parses `body`, writes its samples at `now_ms` (or their own timestamps)
/// and staleness markers for series of the last scrape that are gone.
/// An error fails the scrape as a whole (nothing written), as a sample
/// limit or label limit does in Prometheus.
pub fn ingest(
    body: &str,
    format: Format,
    context: &ScrapeContext,
    cache: &mut ScrapeCache,
    writer: &dyn MetricsWriter,
    now_ms: i64,
) -> Result<ScrapeOutcome, String> {
    let mut pass = Pass::new(context, cache, now_ms);
    let mut metadata: HashMap<&str, MetricMetadata> = HashMap::new();
    let mut parser = Parser::new(body, format);
    let result = loop {
        let Some(entry) = parser.next() else {
            break Ok(());
        };
        let sample = match entry {
            Err(error) => {
                pass.outcome.bad_lines.push(error);
                continue;
            }
            Ok(Entry::Type { family, kind }) => {
                metadata.entry(family).or_default().kind = kind.to_owned();
                continue;
            }
            Ok(Entry::Help { family, text }) => {
                metadata.entry(family).or_default().help = text.into_owned();
                continue;
            }
            Ok(Entry::Unit { family, unit }) => {
                metadata.entry(family).or_default().unit = unit.to_owned();
                continue;
            }
            Ok(Entry::Sample(sample)) => sample,
        };
        let (timestamp_ms, explicit) = pass.time(sample.timestamp_ms);
        let slot = match pass.slot(
            cache,
            sample.series,
            sample.name,
            parser.labels(),
            explicit,
            false,
        ) {
            Ok(Some(slot)) => slot,
            Ok(None) => continue,
            Err(err) => break Err(err),
        };
        pass.samples.push((
            slot,
            Sample {
                timestamp_ms,
                value: sample.value,
            },
        ));
        if let (Some(text), Some(labels)) = (sample.exemplar, cache.slots[slot].labels.as_ref()) {
            match parse_exemplar(text) {
                Ok((exemplar_labels, value, t)) => pass.exemplars.push((
                    labels.clone(),
                    Exemplar {
                        labels: exemplar_labels,
                        value,
                        timestamp_ms: t.unwrap_or(now_ms),
                    },
                )),
                Err(e) => {
                    pass.outcome.exemplars_refused += 1;
                    pass.outcome
                        .exemplar_error
                        .get_or_insert_with(|| format!("line {}: {e}", parser.line()));
                }
            }
        }
    };
    if let Err(err) = result {
        // Nothing of a failed scrape is kept: forget the series it added.
        pass.abandon(cache);
        return Err(err);
    }
    if parser.missing_eof() && pass.outcome.scraped > 0 {
        pass.outcome.bad_lines.push(LineError {
            line: parser.line(),
            message: "OpenMetrics body does not end with # EOF".to_owned(),
        });
    }
    pass.finish(cache, writer, metadata)
}

/// As [`ingest`], for a protobuf exposition: its native histograms go to
/// the store as native histograms (within the job's bucket limit), its
/// families' metadata as the text formats' does. What the decoder skipped
/// is reported as bad lines, each naming its metric family.
pub fn ingest_protobuf(
    body: &[u8],
    context: &ScrapeContext,
    cache: &mut ScrapeCache,
    writer: &dyn MetricsWriter,
    now_ms: i64,
) -> Result<ScrapeOutcome, String> {
    let exposition = prom_proto::parse(body, context.histograms);
    let mut pass = Pass::new(context, cache, now_ms);
    pass.outcome.bad_lines = exposition
        .errors
        .into_iter()
        .map(|message| LineError { line: 0, message })
        .collect();
    let result = (|| {
        for sample in exposition.samples {
            let (timestamp_ms, explicit) = pass.time(sample.timestamp_ms);
            let labels: Vec<(&str, std::borrow::Cow<'_, str>)> = sample
                .labels
                .iter()
                .map(|(n, v)| (n.as_str(), std::borrow::Cow::Borrowed(v.as_str())))
                .collect();
            let histogram = matches!(sample.value, SampleValue::Histogram(_));
            let key = sample.key();
            let Some(slot) = pass.slot(cache, &key, &sample.name, &labels, explicit, histogram)?
            else {
                continue;
            };
            match sample.value {
                SampleValue::Float(value) => pass.samples.push((
                    slot,
                    Sample {
                        timestamp_ms,
                        value,
                    },
                )),
                SampleValue::Histogram(value) => {
                    let value = pass.limit(value)?;
                    pass.histograms.push((
                        slot,
                        HistogramSample {
                            timestamp_ms,
                            value,
                        },
                    ));
                }
            }
            if let Some(labels) = cache.slots[slot].labels.as_ref() {
                for e in sample.exemplars {
                    pass.exemplars.push((
                        labels.clone(),
                        Exemplar {
                            labels: e.labels,
                            value: e.value,
                            timestamp_ms: e.timestamp_ms.unwrap_or(now_ms),
                        },
                    ));
                }
            }
        }
        Ok(())
    })();
    if let Err(err) = result {
        pass.abandon(cache);
        return Err(err);
    }
    let metadata: HashMap<&str, MetricMetadata> = exposition
        .families
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                MetricMetadata {
                    kind: f.kind.to_owned(),
                    help: f.help.clone(),
                    unit: f.unit.clone(),
                },
            )
        })
        .collect();
    pass.finish(cache, writer, metadata)
}

/// After a failed scrape or when a target goes away: every series of the
/// last scrape gets a staleness marker and the cache starts over.
pub fn mark_all_stale(
    cache: &mut ScrapeCache,
    context: &ScrapeContext,
    writer: &dyn MetricsWriter,
    now_ms: i64,
) -> Result<u64, String> {
    let going: Vec<(usize, bool)> = cache
        .slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.seen == cache.iteration && s.labels.is_some())
        .filter(|(_, s)| !s.explicit_timestamp || context.track_timestamps_staleness)
        .map(|(slot, s)| (slot, s.histogram))
        .collect();
    let stale: Vec<(usize, Sample)> = going
        .iter()
        .filter(|(_, histogram)| !histogram)
        .map(|&(slot, _)| {
            (
                slot,
                Sample {
                    timestamp_ms: now_ms,
                    value: stale_nan(),
                },
            )
        })
        .collect();
    let stale_histograms: Vec<(usize, HistogramSample)> = going
        .iter()
        .filter(|(_, histogram)| *histogram)
        .map(|&(slot, _)| (slot, stale_histogram(now_ms)))
        .collect();
    let mut result = cache.append(&stale, writer);
    if result.is_ok() && !stale_histograms.is_empty() {
        result = cache.append_histograms(stale_histograms, writer);
    }
    cache.slots.clear();
    cache.index.clear();
    cache.iteration += 1;
    result.map(|_| going.len() as u64)
}

/// A scraped series' final labels: the target's labels attached (the
/// scraped one renamed `exported_*` on a clash unless `honor_labels`), then
/// metric relabelling. `None` when relabelling dropped it.
fn series_labels(
    name: &str,
    scraped: &[(&str, std::borrow::Cow<'_, str>)],
    context: &ScrapeContext,
) -> Result<Option<Labels>, String> {
    let mut map: LabelMap = scraped
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| ((*n).to_owned(), v.clone().into_owned()))
        .collect();
    map.insert("__name__".to_owned(), name.to_owned());
    for label in context.target.labels.iter() {
        let (target_name, target_value) = (&*label.name, &*label.value);
        if context.honor_labels {
            map.entry(target_name.to_owned())
                .or_insert_with(|| target_value.to_owned());
            continue;
        }
        if let Some(existing) = map.remove(target_name) {
            let mut renamed = format!("exported_{target_name}");
            while map.contains_key(&renamed) {
                renamed = format!("exported_{renamed}");
            }
            map.insert(renamed, existing);
        }
        map.insert(target_name.to_owned(), target_value.to_owned());
    }
    if !relabel(&mut map, &context.metric_relabel) {
        return Ok(None);
    }
    map.retain(|_, v| !v.is_empty());
    if !map.contains_key("__name__") {
        return Ok(None);
    }
    if context.label_limit > 0 && map.len() - 1 > context.label_limit {
        return Err(format!(
            "label_limit exceeded: {name} has {} labels, more than {}",
            map.len() - 1,
            context.label_limit
        ));
    }
    for (label, value) in &map {
        if context.label_name_length_limit > 0 && label.len() > context.label_name_length_limit {
            return Err(format!(
                "label_name_length_limit exceeded: {name} has label {label:?} longer than {}",
                context.label_name_length_limit
            ));
        }
        if context.label_value_length_limit > 0 && value.len() > context.label_value_length_limit {
            return Err(format!(
                "label_value_length_limit exceeded: {name} label {label} is longer than {}",
                context.label_value_length_limit
            ));
        }
    }
    Ok(Some(Labels::from_pairs(map)))
}

/// The series Prometheus writes about each scrape of a target.
pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// The report series' values for one scrape, in [`REPORT_SERIES`] order.
pub fn report_batch(target: &Labels, values: [f64; 5], timestamp_ms: i64) -> Vec<SeriesSamples> {
    REPORT_SERIES
        .iter()
        .zip(values)
        .map(|(name, value)| SeriesSamples {
            labels: target.with("__name__", name),
            samples: vec![Sample {
                timestamp_ms,
                value,
            }],
        })
        .collect()
}

/// How long a scrape took, in seconds, as `scrape_duration_seconds` reports it.
pub fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_storage::{RetentionConfig, Tsdb, TsdbConfig, TsdbStats};

    fn tsdb(dir: &Path) -> Tsdb {
        Tsdb::open(
            dir,
            TsdbConfig::default(),
            RetentionConfig::default().metrics,
            Arc::new(TsdbStats::default()),
        )
        .unwrap()
    }

    fn context(config: &str) -> ScrapeContext {
        let config: ScrapeConfig = serde_norway::from_str(config).unwrap();
        let target = Target {
            discovered: LabelMap::new(),
            labels: Labels::from_pairs([("job", "app"), ("instance", "h:1")]),
            address: "h:1".into(),
            path_and_query: "/metrics".into(),
            scheme: Scheme::Http,
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
        };
        ScrapeContext::new(Arc::new(target), &config)
    }

    fn stored(db: &Tsdb) -> Vec<(String, Vec<(i64, f64)>)> {
        let all = [
            sextant_model::Matcher::new("__name__", sextant_model::MatchOp::Regex, ".+").unwrap(),
        ];
        db.select(&all, 0, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| {
                let points = s
                    .samples
                    .iter()
                    .map(|p| (p.timestamp_ms, p.value))
                    .collect();
                (s.labels.to_string(), points)
            })
            .collect()
    }

    #[test]
    fn target_labels_win_and_vanished_series_go_stale() {
        let dir = tempfile::tempdir().unwrap();
        let db = tsdb(dir.path());
        let ctx = context("job_name: app");
        let mut cache = ScrapeCache::default();
        let first = "# TYPE req counter\nreq{job=\"inner\",path=\"/a\"} 1\nreq{path=\"/b\"} 2\n";
        let outcome = ingest(first, Format::Prometheus, &ctx, &mut cache, &db, 1000).unwrap();
        assert_eq!((outcome.scraped, outcome.added, outcome.stale), (2, 2, 0));
        let second = "req{job=\"inner\",path=\"/a\"} 3\n";
        let outcome = ingest(second, Format::Prometheus, &ctx, &mut cache, &db, 2000).unwrap();
        assert_eq!((outcome.scraped, outcome.added, outcome.stale), (1, 0, 1));
        let series = stored(&db);
        assert_eq!(series.len(), 2);
        assert_eq!(
            series[0].0,
            "req{exported_job=\"inner\", instance=\"h:1\", job=\"app\", path=\"/a\"}"
        );
        assert_eq!(series[0].1, [(1000, 1.0), (2000, 3.0)]);
        assert_eq!(
            series[1].0,
            "req{instance=\"h:1\", job=\"app\", path=\"/b\"}"
        );
        assert_eq!(series[1].1[0], (1000, 2.0));
        assert!(sextant_model::is_stale_nan(series[1].1[1].1));
        assert_eq!(db.metadata()["req"].kind, "counter");
    }

    #[test]
    fn honor_labels_relabelling_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let db = tsdb(dir.path());
        let ctx = context(
            r#"
job_name: app
honor_labels: true
honor_timestamps: false
metric_relabel_configs:
  - source_labels: [__name__]
    regex: 'go_.*'
    action: drop
"#,
        );
        let mut cache = ScrapeCache::default();
        let body = "req{job=\"inner\"} 1 5\ngo_threads 7\nbad line\n";
        let outcome = ingest(body, Format::Prometheus, &ctx, &mut cache, &db, 9000).unwrap();
        assert_eq!((outcome.scraped, outcome.post_relabel), (2, 1));
        assert_eq!(outcome.bad_lines.len(), 1);
        assert_eq!(
            stored(&db),
            [(
                "req{instance=\"h:1\", job=\"inner\"}".to_owned(),
                vec![(9000, 1.0)]
            )]
        );
        let limited = context("job_name: app\nsample_limit: 1");
        let err = ingest(
            "a 1\nb 2\n",
            Format::Prometheus,
            &limited,
            &mut ScrapeCache::default(),
            &db,
            1,
        )
        .unwrap_err();
        assert!(err.contains("sample_limit exceeded"), "{err}");
    }

    #[test]
    fn a_failed_scrape_marks_everything_stale() {
        let dir = tempfile::tempdir().unwrap();
        let db = tsdb(dir.path());
        let ctx = context("job_name: app");
        let mut cache = ScrapeCache::default();
        ingest(
            "a 1\nb 2 77\n",
            Format::Prometheus,
            &ctx,
            &mut cache,
            &db,
            1000,
        )
        .unwrap();
        // `b` carried its own timestamp: Prometheus leaves it alone.
        assert_eq!(mark_all_stale(&mut cache, &ctx, &db, 2000).unwrap(), 1);
        assert_eq!(cache.live_series(), 0);
    }

    /// The histogram samples of every series named `name`, by labels.
    fn stored_histograms(db: &Tsdb, name: &str) -> Vec<(String, Vec<HistogramSample>)> {
        let m = [
            sextant_model::Matcher::new("__name__", sextant_model::MatchOp::Equal, name).unwrap(),
        ];
        db.select_lazy(&m, 0, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| (s.labels.to_string(), s.data().unwrap().1))
            .collect()
    }

    fn native_family(schema: i32, deltas: Vec<i64>) -> prom_proto::proto::MetricFamily {
        use prom_proto::proto::*;
        let count = deltas
            .iter()
            .scan(0i64, |c, d| {
                *c += d;
                Some(*c as u64)
            })
            .sum();
        MetricFamily {
            name: "latency_seconds".into(),
            help: "Latency.".into(),
            r#type: 4,
            metric: vec![Metric {
                label: vec![LabelPair {
                    name: "path".into(),
                    value: "/a".into(),
                }],
                histogram: Some(Histogram {
                    sample_count: count,
                    sample_sum: 1.25,
                    schema,
                    zero_threshold: 1e-128,
                    positive_span: vec![BucketSpan {
                        offset: 0,
                        length: deltas.len() as u32,
                    }],
                    positive_delta: deltas,
                    bucket: vec![Bucket {
                        cumulative_count: count,
                        upper_bound: 1.0,
                        ..Bucket::default()
                    }],
                    ..Histogram::default()
                }),
                ..Metric::default()
            }],
            unit: String::new(),
        }
    }

    #[test]
    fn protobuf_expositions_store_native_histograms() {
        let dir = tempfile::tempdir().unwrap();
        let db = tsdb(dir.path());
        let ctx = context(
            "job_name: app\nscrape_native_histograms: true\nnative_histogram_bucket_limit: 2",
        );
        let mut cache = ScrapeCache::default();
        // Four buckets at schema 3, over the limit of 2: halved twice.
        let body = prom_proto::proto::encode(&[native_family(3, vec![1, 1, 0, 0])]);
        let outcome =
            ingest_body(&body, BodyFormat::Protobuf, &ctx, &mut cache, &db, 1000).unwrap();
        assert!(outcome.bad_lines.is_empty(), "{:?}", outcome.bad_lines);
        assert_eq!((outcome.scraped, outcome.refused), (1, 0));
        let stored = stored_histograms(&db, "latency_seconds");
        assert_eq!(
            stored[0].0,
            "latency_seconds{instance=\"h:1\", job=\"app\", path=\"/a\"}"
        );
        let HistogramValue::Int(h) = &stored[0].1[0].value else {
            panic!("{:?}", stored[0].1)
        };
        assert_eq!((h.schema, h.count), (1, 7));
        assert!(h.positive_buckets().count() <= 2);
        assert_eq!(db.metadata()["latency_seconds"].kind, "histogram");
        // The classic series are not kept beside the native histogram.
        assert!(stored_histograms(&db, "latency_seconds_count").is_empty());
        // Gone from the next scrape: a histogram staleness marker.
        let outcome = ingest_body(&[], BodyFormat::Protobuf, &ctx, &mut cache, &db, 2000).unwrap();
        assert_eq!(outcome.stale, 1);
        let stored = stored_histograms(&db, "latency_seconds");
        assert!(stored[0].1[1].value.is_stale(), "{:?}", stored[0].1);

        // Without scrape_native_histograms the same body is a classic histogram.
        let classic = context("job_name: app");
        let mut cache = ScrapeCache::default();
        ingest_body(&body, BodyFormat::Protobuf, &classic, &mut cache, &db, 3000).unwrap();
        assert_eq!(stored_histograms(&db, "latency_seconds_bucket").len(), 2);

        // A histogram that cannot get under the limit fails the scrape, as in Prometheus.
        let one = context(
            "job_name: app\nscrape_native_histograms: true\nnative_histogram_bucket_limit: 1",
        );
        let wide = prom_proto::proto::encode(&[native_family(-4, vec![1, -1, 1])]);
        let err = ingest_body(
            &wide,
            BodyFormat::Protobuf,
            &one,
            &mut ScrapeCache::default(),
            &db,
            4000,
        )
        .unwrap_err();
        assert!(
            err.contains("native_histogram_bucket_limit exceeded"),
            "{err}"
        );
    }

    #[test]
    fn accept_headers_follow_scrape_protocols() {
        let config = |yaml: &str| -> ScrapeConfig { serde_norway::from_str(yaml).unwrap() };
        assert_eq!(
            config("job_name: a").accept_header(),
            "application/openmetrics-text;version=1.0.0;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
        assert!(
            config("job_name: a\nscrape_native_histograms: true")
                .accept_header()
                .starts_with("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text")
        );
        assert_eq!(
            config("job_name: a\nscrape_protocols: [PrometheusText0.0.4]").accept_header(),
            "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
        );
        let err = serde_norway::from_str::<ScrapeConfig>("job_name: a\nscrape_protocols: [Proto]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `Proto`"), "{err}");
        assert_eq!(pick_schema(0.0), 8);
        assert_eq!(pick_schema(1.1), 2);
        assert_eq!(pick_schema(2.0), 0);
        assert_eq!(pick_schema(1e9), -4);
    }

    #[test]
    fn base64_matches_the_rfc() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }
}
