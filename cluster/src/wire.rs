//! The binary forms series take between nodes: in the partitioned log (a
//! write on its way to its partition's owner) and in answers to another
//! node's query. Varint lengths and counts, strings as UTF-8, timestamps and
//! values as 8 little-endian bytes (values may be NaN: staleness markers,
//! which JSON cannot carry). Every read is bounds-checked, so a damaged
//! record is an error naming what was wrong, never a panic.

use std::sync::Arc;

use bytes::Bytes;

use sextant_model::{Exemplar, HistogramSample, Labels, Sample};
use sextant_storage::{PairBatch, PairSeries, SeriesHistograms, SeriesSamples};

/// The first byte of every encoded batch.
const VERSION: u8 = 1;

/// Appends to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer whose buffer starts with the format version.
    pub fn new() -> Self {
        Self { buf: vec![VERSION] }
    }

    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Bytes with their length before them.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    pub fn series(&mut self, series: &SeriesSamples) {
        self.labels(&series.labels);
        self.varint(series.samples.len() as u64);
        for sample in &series.samples {
            self.buf
                .extend_from_slice(&sample.timestamp_ms.to_le_bytes());
            self.buf
                .extend_from_slice(&sample.value.to_bits().to_le_bytes());
        }
    }

    pub fn labels(&mut self, labels: &Labels) {
        self.varint(labels.len() as u64);
        for label in labels.iter() {
            self.str(&label.name);
            self.str(&label.value);
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() <= 1
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads what a [`Writer`] wrote.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the version byte.
    pub fn new(buf: &'a [u8]) -> Result<Self, String> {
        match buf.first() {
            Some(&VERSION) => Ok(Self { buf, pos: 1 }),
            Some(v) => Err(format!("unknown record version {v}")),
            None => Err("empty record".into()),
        }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| format!("record cut short at byte {}", self.pos))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(format!("varint too long at byte {}", self.pos))
    }

    /// A count of items at least `min_size` bytes each: refused when the
    /// rest of the record cannot hold that many (so no huge allocation).
    pub fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.varint()?;
        let left = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_size.max(1) as u64) > left {
            return Err(format!("count {n} at byte {} exceeds the record", self.pos));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| format!("record cut short at byte {}", self.pos))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Bytes a [`Writer::bytes`] wrote.
    pub fn bytes_prefixed(&mut self) -> Result<&'a [u8], String> {
        let n = self.count(1)?;
        self.bytes(n)
    }

    pub fn str(&mut self) -> Result<&'a str, String> {
        let n = self.count(1)?;
        let at = self.pos;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| format!("invalid UTF-8 at byte {at}"))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub fn labels(&mut self) -> Result<Labels, String> {
        let n = self.count(2)?;
        let mut pairs: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?;
            let value = self.str()?;
            pairs.push((name.into(), value.into()));
        }
        Ok(Labels::from_pairs(pairs))
    }

    pub fn series(&mut self) -> Result<SeriesSamples, String> {
        let labels = self.labels()?;
        let n = self.count(16)?;
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let timestamp_ms = self.u64()? as i64;
            let value = f64::from_bits(self.u64()?);
            samples.push(Sample {
                timestamp_ms,
                value,
            });
        }
        Ok(SeriesSamples { labels, samples })
    }
}

/// Items as one record: a count, then each with its length.
pub fn encode_items<'a>(items: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut w = Writer::new();
    w.varint(items.len() as u64);
    for item in items {
        w.bytes(item);
    }
    w.finish()
}

/// The items of a record [`encode_items`] wrote.
pub fn decode_items(record: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut r = Reader::new(record)?;
    let n = r.count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.bytes_prefixed()?);
    }
    if !r.at_end() {
        return Err(format!(
            "{} bytes after the last item",
            record.len() - r.pos
        ));
    }
    Ok(out)
}

/// The first byte of a message holding several records: the writes of
/// several requests to one partition, appended together by the log.
const BATCH: u8 = 3;

/// Records as one message: [`BATCH`], a count, then each with its length.
pub fn encode_batch(records: &[Bytes]) -> Vec<u8> {
    let size: usize = records.iter().map(|r| r.len() + 5).sum();
    let mut w = Writer {
        buf: Vec::with_capacity(size + 6),
    };
    w.buf.push(BATCH);
    w.varint(records.len() as u64);
    for record in records {
        w.bytes(record);
    }
    w.finish()
}

/// The first byte of a message compressed whole with Snappy (raw format):
/// a batch or a single record. Records repeat their timestamps and label
/// numbers, and JetStream's cost (copies to replicas, writes to disk) goes
/// by bytes.
const SNAPPY: u8 = 4;
/// The most a compressed message may expand to (a message is at most 1 MiB
/// and records compress a few times).
const MAX_EXPANDED: usize = 64 << 20;

/// A message compressed whole: [`SNAPPY`], then the raw Snappy bytes.
pub fn compress(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0; 1 + snap::raw::max_compress_len(message.len())];
    out[0] = SNAPPY;
    match snap::raw::Encoder::new().compress(message, &mut out[1..]) {
        Ok(n) if n + 1 < message.len() => {
            out.truncate(1 + n);
            out
        }
        // What does not get smaller goes as it is (never larger than NATS
        // takes).
        _ => message.to_vec(),
    }
}

/// The records of a message: those of a batch (compressed or not), or
/// the message itself. A batch within a batch is refused (the log never
/// writes one), as is a message that would expand past [`MAX_EXPANDED`].
pub fn split_batch(message: &Bytes) -> Result<Vec<Bytes>, String> {
    if message.first() == Some(&SNAPPY) {
        let packed = &message[1..];
        let len =
            snap::raw::decompress_len(packed).map_err(|e| format!("a compressed message: {e}"))?;
        if len > MAX_EXPANDED {
            return Err(format!(
                "a compressed message would expand to {len} bytes, over {MAX_EXPANDED}"
            ));
        }
        let plain = snap::raw::Decoder::new()
            .decompress_vec(packed)
            .map_err(|e| format!("a compressed message: {e}"))?;
        if plain.first() == Some(&SNAPPY) {
            return Err("a compressed message within a compressed message".into());
        }
        return split_batch(&Bytes::from(plain));
    }
    if message.first() != Some(&BATCH) {
        return Ok(vec![message.clone()]);
    }
    let mut r = Reader {
        buf: message,
        pos: 1,
    };
    let n = r.count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let record = r.bytes_prefixed()?;
        if record.first() == Some(&BATCH) {
            return Err("a batch within a batch".into());
        }
        out.push(message.slice_ref(record));
    }
    if !r.at_end() {
        return Err(format!(
            "{} bytes after the last record of a batch",
            message.len() - r.pos
        ));
    }
    Ok(out)
}

/// Splits encoded items into records of at most `max` bytes each.
pub fn pack_items(items: Vec<Vec<u8>>, max: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut size = 0;
    for item in items {
        if size + item.len() + 10 > max && !current.is_empty() {
            out.push(encode_items(current.iter().map(Vec::as_slice)).into());
            current.clear();
            size = 0;
        }
        size += item.len() + 10;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(encode_items(current.iter().map(Vec::as_slice)).into());
    }
    out
}

/// The version of a record whose label names and values are a table of
/// strings at its start, each series naming them by number: a label
/// repeated across the record's series (`job`, `instance`, `__name__`)
/// is sent once.
const SYMBOLS: u8 = 2;

/// Series as one record with a symbol table.
pub fn encode_series_refs(batch: &[PairSeries<'_, '_>]) -> Vec<u8> {
    // foldhash: quick on short strings, and seeded per process, so label
    // values chosen to collide cannot make the table slow.
    let mut symbols: std::collections::HashMap<&str, u64, foldhash::fast::RandomState> =
        std::collections::HashMap::with_capacity_and_hasher(256, Default::default());
    let mut order: Vec<&str> = Vec::new();
    let samples: usize = batch.iter().map(|s| s.samples.len()).sum();
    let mut body = Writer {
        buf: Vec::with_capacity(batch.len() * 20 + samples * 16),
    };
    body.varint(batch.len() as u64);
    for series in batch {
        body.varint(series.labels.len() as u64);
        for (name, value) in series.labels {
            for text in [*name, *value] {
                let id = *symbols.entry(text).or_insert_with(|| {
                    order.push(text);
                    order.len() as u64 - 1
                });
                body.varint(id);
            }
        }
        body.varint(series.samples.len() as u64);
        for sample in series.samples {
            body.buf
                .extend_from_slice(&sample.timestamp_ms.to_le_bytes());
            body.buf
                .extend_from_slice(&sample.value.to_bits().to_le_bytes());
        }
    }
    let table: usize = order.iter().map(|t| t.len() + 2).sum();
    let mut w = Writer {
        buf: Vec::with_capacity(1 + 5 + table + body.buf.len()),
    };
    w.buf.push(SYMBOLS);
    w.varint(order.len() as u64);
    for text in order {
        w.str(text);
    }
    w.buf.extend_from_slice(&body.buf);
    w.finish()
}

/// The series of a record, borrowing their label strings from it.
pub fn decode_series_raw(record: &[u8]) -> Result<PairBatch<'_>, String> {
    match record.first() {
        Some(&SYMBOLS) => {}
        Some(v) => return Err(format!("unknown record version {v}")),
        None => return Err("empty record".into()),
    }
    let mut r = Reader {
        buf: record,
        pos: 1,
    };
    let n = r.count(1)?;
    let mut symbols = Vec::with_capacity(n);
    for _ in 0..n {
        symbols.push(r.str()?);
    }
    let symbol = |id: u64| {
        symbols
            .get(id as usize)
            .copied()
            .ok_or_else(|| format!("symbol {id} of {}", symbols.len()))
    };
    let n = r.count(2)?;
    let mut out = PairBatch::with_capacity(n, n * 8, n);
    for _ in 0..n {
        let labels_n = r.count(2)?;
        for _ in 0..labels_n {
            out.push_label(symbol(r.varint()?)?, symbol(r.varint()?)?);
        }
        let samples_n = r.count(16)?;
        for _ in 0..samples_n {
            let timestamp_ms = r.u64()? as i64;
            let value = f64::from_bits(r.u64()?);
            out.push_sample(Sample {
                timestamp_ms,
                value,
            });
        }
        // Written canonical; made so again should the record not be.
        out.end_series();
    }
    if !r.at_end() {
        return Err(format!(
            "{} bytes after the last series",
            record.len() - r.pos
        ));
    }
    Ok(out)
}

/// A batch of series as one record.
pub fn encode_series(batch: &[SeriesSamples]) -> Vec<u8> {
    let mut w = Writer::new();
    w.varint(batch.len() as u64);
    for series in batch {
        w.series(series);
    }
    w.finish()
}

/// The series of a record [`encode_series`] wrote.
pub fn decode_series(record: &[u8]) -> Result<Vec<SeriesSamples>, String> {
    let mut r = Reader::new(record)?;
    let n = r.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.series()?);
    }
    if !r.at_end() {
        return Err(format!(
            "{} bytes after the last series",
            record.len() - r.pos
        ));
    }
    Ok(out)
}

/// The first byte of a record of native histogram samples.
const HISTOGRAMS: u8 = 5;

/// Whether a record holds native histogram samples ([`encode_histograms`]).
pub fn is_histograms(record: &[u8]) -> bool {
    record.first() == Some(&HISTOGRAMS)
}

/// Native histogram samples as one record: [`HISTOGRAMS`], a count of
/// series, each its labels and its samples, each sample the one-sample
/// chunk storage's `histogram_bytes` makes (time, hint, layout, counts).
pub fn encode_histograms(batch: &[(&Labels, &[Vec<u8>])]) -> Vec<u8> {
    let mut w = Writer {
        buf: vec![HISTOGRAMS],
    };
    w.varint(batch.len() as u64);
    for (labels, samples) in batch {
        w.labels(labels);
        w.varint(samples.len() as u64);
        for sample in *samples {
            w.bytes(sample);
        }
    }
    w.finish()
}

/// The series of a record [`encode_histograms`] wrote.
pub fn decode_histograms(record: &[u8]) -> Result<Vec<SeriesHistograms>, String> {
    if !is_histograms(record) {
        return Err("not a histograms record".into());
    }
    let mut r = Reader {
        buf: record,
        pos: 1,
    };
    let n = r.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let labels = r.labels()?;
        let samples = r.histograms()?;
        out.push(SeriesHistograms { labels, samples });
    }
    if !r.at_end() {
        return Err(format!(
            "{} bytes after the last series",
            record.len() - r.pos
        ));
    }
    Ok(out)
}

/// The first byte of a record of exemplars.
const EXEMPLARS: u8 = 6;

/// Whether a record holds exemplars ([`encode_exemplars`]).
pub fn is_exemplars(record: &[u8]) -> bool {
    record.first() == Some(&EXEMPLARS)
}

/// Exemplars as one record: [`EXEMPLARS`], a count, then each as its
/// series' labels and the exemplar.
pub fn encode_exemplars(batch: &[&(Labels, Exemplar)]) -> Vec<u8> {
    let mut w = Writer {
        buf: vec![EXEMPLARS],
    };
    w.varint(batch.len() as u64);
    for (labels, exemplar) in batch {
        w.labels(labels);
        w.exemplar(exemplar);
    }
    w.finish()
}

/// The exemplars of a record [`encode_exemplars`] wrote.
pub fn decode_exemplars(record: &[u8]) -> Result<Vec<(Labels, Exemplar)>, String> {
    if !is_exemplars(record) {
        return Err("not an exemplars record".into());
    }
    let mut r = Reader {
        buf: record,
        pos: 1,
    };
    let n = r.count(18)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let labels = r.labels()?;
        out.push((labels, r.exemplar()?));
    }
    if !r.at_end() {
        return Err(format!(
            "{} bytes after the last exemplar",
            record.len() - r.pos
        ));
    }
    Ok(out)
}

impl Writer {
    /// One exemplar: its labels, value and time.
    pub fn exemplar(&mut self, exemplar: &Exemplar) {
        self.labels(&exemplar.labels);
        self.buf
            .extend_from_slice(&exemplar.value.to_bits().to_le_bytes());
        self.buf
            .extend_from_slice(&exemplar.timestamp_ms.to_le_bytes());
    }

    /// Histogram samples: a count, then each as a one-sample chunk.
    pub fn histograms(&mut self, samples: &[HistogramSample]) {
        let encoded: Vec<Vec<u8>> = samples
            .iter()
            .filter_map(|s| sextant_storage::tsdb::histogram_bytes(s.timestamp_ms, &s.value))
            .collect();
        self.varint(encoded.len() as u64);
        for bytes in &encoded {
            self.bytes(bytes);
        }
    }
}

impl Reader<'_> {
    /// What [`Writer::exemplar`] wrote.
    pub fn exemplar(&mut self) -> Result<Exemplar, String> {
        let labels = self.labels()?;
        let value = f64::from_bits(self.u64()?);
        let timestamp_ms = self.u64()? as i64;
        Ok(Exemplar {
            labels,
            value,
            timestamp_ms,
        })
    }

    /// What [`Writer::histograms`] wrote.
    pub fn histograms(&mut self) -> Result<Vec<HistogramSample>, String> {
        let n = self.count(8)?;
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let at = self.pos;
            let bytes = self.bytes_prefixed()?;
            samples.push(
                sextant_storage::tsdb::histogram_from_bytes(bytes)
                    .ok_or_else(|| format!("a histogram sample at byte {at} does not decode"))?,
            );
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_records_round_trip_and_refuse_damage() {
        use sextant_model::histogram::Span;
        use sextant_model::{Histogram, HistogramValue};
        let h = Histogram {
            schema: 3,
            count: 5,
            sum: 2.5,
            positive_spans: vec![Span {
                offset: -3,
                length: 2,
            }],
            positive_buckets: vec![2, 1],
            ..Histogram::default()
        };
        let samples: Vec<HistogramSample> = [(1_000, h.clone()), (2_000, h)]
            .into_iter()
            .map(|(timestamp_ms, h)| HistogramSample {
                timestamp_ms,
                value: HistogramValue::Int(h),
            })
            .collect();
        let labels = Labels::from_pairs([("__name__", "latency"), ("job", "api")]);
        let encoded: Vec<Vec<u8>> = samples
            .iter()
            .map(|s| sextant_storage::tsdb::histogram_bytes(s.timestamp_ms, &s.value).unwrap())
            .collect();
        let record = encode_histograms(&[(&labels, &encoded)]);
        assert!(is_histograms(&record));
        // Not mistaken for a batch or a compressed message.
        assert_eq!(
            split_batch(&Bytes::from(record.clone())).unwrap(),
            [Bytes::from(record.clone())]
        );
        let decoded = decode_histograms(&record).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].labels, labels);
        assert_eq!(decoded[0].samples, samples);
        for cut in 1..record.len() {
            assert!(decode_histograms(&record[..cut]).is_err(), "cut at {cut}");
        }
        let exemplar = (
            labels,
            Exemplar {
                labels: Labels::from_pairs([("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]),
                value: 0.25,
                timestamp_ms: 1_500,
            },
        );
        let record = encode_exemplars(&[&exemplar, &exemplar]);
        assert!(is_exemplars(&record) && !is_histograms(&record));
        assert_eq!(
            decode_exemplars(&record).unwrap(),
            [exemplar.clone(), exemplar]
        );
        for cut in 1..record.len() {
            assert!(decode_exemplars(&record[..cut]).is_err(), "cut at {cut}");
        }
        // In an answer beside floats.
        let mut w = Writer::new();
        w.histograms(&samples);
        let answer = w.finish();
        let mut r = Reader::new(&answer).unwrap();
        assert_eq!(r.histograms().unwrap(), samples);
        assert!(r.at_end());
    }

    #[test]
    fn batches_split_into_their_records_and_refuse_damage() {
        let records = [
            Bytes::from_static(b"\x02first"),
            Bytes::new(),
            Bytes::from_static(b"\x01second"),
        ];
        let message = Bytes::from(encode_batch(&records));
        assert_eq!(split_batch(&message).unwrap(), records);
        let plain = Bytes::from_static(b"\x02just one");
        assert_eq!(split_batch(&plain).unwrap(), std::slice::from_ref(&plain));
        let cut = message.slice(..message.len() - 2);
        assert!(
            split_batch(&cut)
                .unwrap_err()
                .contains("exceeds the record")
        );
        let nested = Bytes::from(encode_batch(std::slice::from_ref(&message)));
        assert!(split_batch(&nested).unwrap_err().contains("within a batch"));
        let mut trailing = message.to_vec();
        trailing.push(0);
        assert!(split_batch(&trailing.into()).unwrap_err().contains("after"));
        let huge = Bytes::from_static(b"\x03\xff\xff\xff\xff\x0f");
        assert!(split_batch(&huge).unwrap_err().contains("exceeds"));
        // Compressed whole, a batch or a record comes back the same; what
        // does not get smaller goes as it is.
        let records = [
            Bytes::from([b"\x02".as_slice(), &[7; 3000]].concat()),
            Bytes::from([b"\x01".as_slice(), &[9; 2000]].concat()),
        ];
        let message = encode_batch(&records);
        let packed = Bytes::from(compress(&message));
        assert_eq!(packed[0], SNAPPY);
        assert!(packed.len() < message.len() / 10, "{}", packed.len());
        assert_eq!(split_batch(&packed).unwrap(), records);
        let record = Bytes::from(compress(&records[0]));
        assert_eq!(split_batch(&record).unwrap(), [records[0].clone()]);
        assert_eq!(compress(&plain), plain.to_vec());
        let mut twice = vec![SNAPPY];
        twice.extend(snap::raw::Encoder::new().compress_vec(&packed).unwrap());
        assert!(split_batch(&twice.into()).unwrap_err().contains("within"));
        let bomb = Bytes::from_static(b"\x04\xff\xff\xff\xff\x0f");
        assert!(split_batch(&bomb).unwrap_err().contains("expand"));
        let broken = Bytes::from(packed[..packed.len() - 3].to_vec());
        assert!(split_batch(&broken).is_err());
    }

    #[test]
    fn series_round_trip_with_nan_and_refuse_damage() {
        let batch = vec![
            SeriesSamples {
                labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
                samples: vec![
                    Sample {
                        timestamp_ms: -5,
                        value: f64::from_bits(0x7ff0_0000_0000_0002),
                    },
                    Sample {
                        timestamp_ms: 1_700_000_000_000,
                        value: 1.5,
                    },
                ],
            },
            SeriesSamples {
                labels: Labels::from_pairs([("__name__", "x")]),
                samples: vec![],
            },
        ];
        let record = encode_series(&batch);
        let back = decode_series(&record).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].labels, batch[0].labels);
        assert_eq!(
            back[0].samples[0].value.to_bits(),
            batch[0].samples[0].value.to_bits()
        );
        assert_eq!(back[0].samples[1], batch[0].samples[1]);
        for cut in 0..record.len() {
            assert!(decode_series(&record[..cut]).is_err(), "cut at {cut}");
        }
        // A count far beyond the record is refused before allocating.
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode_series(&huge).unwrap_err().contains("exceeds"));
        assert!(decode_series(&[9]).unwrap_err().contains("version"));

        let pairs = PairBatch::of_series(&batch);
        let refs: Vec<PairSeries<'_, '_>> = pairs.iter().collect();
        let record = encode_series_refs(&refs);
        let raw = decode_series_raw(&record).unwrap();
        assert_eq!(raw.len(), 2);
        let raw: Vec<PairSeries<'_, '_>> = raw.iter().collect();
        assert_eq!(raw[0].labels, [("__name__", "up"), ("job", "a")]);
        assert_eq!(raw[0].samples[1], batch[0].samples[1]);
        assert!(raw[1].samples.is_empty());
        for cut in 1..record.len() {
            assert!(decode_series_raw(&record[..cut]).is_err(), "cut at {cut}");
        }
    }
}
