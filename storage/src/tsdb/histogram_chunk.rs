//! Compressed chunks of native histogram samples: one encoding for integer
//! histograms ([`HISTOGRAM`]) and one for float histograms
//! ([`FLOAT_HISTOGRAM`]). Pure code: bytes in, histograms out, no I/O.
//!
//! Prometheus's histogram chunks (`tsdb/chunkenc/histogram.go`) are the
//! model: the bucket *layout* (schema, zero threshold, spans, custom bounds)
//! is written once per chunk, each sample writes its timestamp as a
//! delta-of-delta and its sum as a Gorilla XOR, and a sample whose layout
//! differs, or whose counts went down in a counter histogram, needs a new
//! chunk ([`AppendOutcome::NewChunkNeeded`]; the head cuts). What differs is
//! how the counts are written, which is where Prometheus spends most bits:
//!
//! - Prometheus writes, per bucket, the delta-of-delta over time of the
//!   bucket's *delta to its neighbour*, so the noise of two buckets adds up.
//!   We predict each bucket's (and the zero bucket's) increase from the
//!   increase of the total count, split by the share the bucket took of the
//!   chunk's growth so far (of the whole histogram for the second sample):
//!   the residual is then only the bucket's own noise, about a quarter of
//!   the variance Prometheus codes.
//! - Residuals are Rice-coded (zigzag, unary quotient, `k` low bits) with a
//!   `k` that follows a running mean of each field's own residuals, instead
//!   of fixed varbit classes with 2 to 8 prefix bits.
//! - A sample whose total count did not move costs one bit for all its
//!   buckets when none of them moved (idle series).
//! - Float histograms whose counts are all integers (most of them: they were
//!   scraped as integers) are written as integers the same way, one bit a
//!   sample saying so; other values are XOR'd per field as Prometheus does.
//!
//! A chunk is `[encoding: u8][sample count: u16 big-endian][flags: u8][bit
//! stream]`. The top two bits of the flags hold the first sample's counter
//! reset hint as Prometheus's header does (`00` unknown, `01` not a reset,
//! `10` reset, `11` gauge); the rest are zero. The stream starts with the
//! layout, then the samples: the first timestamp whole, later ones as
//! delta-of-deltas in the classes of [`super::chunk`]; the sum XOR'd against
//! the previous sum; unless the sum is Prometheus's stale marker, the counts.
//!
//! # Bytes per sample
//!
//! The test `bytes_per_sample_against_prometheus` encodes 120 samples scraped
//! every 15 s of three shapes, here and with a faithful copy of Prometheus's
//! histogram chunk encoders (the integer one is Prometheus 2.42's format, the
//! float one came later; chunk bytes plus the
//! encoding byte its segment files keep beside each chunk):
//!
//! | series (120 samples, 15 s apart) | buckets | ours B/sample | Prometheus B/sample | ratio |
//! |---|---|---|---|---|
//! | latency: ~1500 observations a scrape, log-normal, schema 3 | 45 | 28.5 | 41.2 | 0.69 |
//! | sparse: ~3 observations a scrape, both signs, schema 1 | 55 | 15.1 | 19.3 | 0.78 |
//! | NHCB: 11 bounds, ~300 observations a scrape | 12 | 13.5 | 17.4 | 0.77 |
//! | the latency one as float histograms | 45 | 28.6 | 69.2 | 0.41 |
//! | its per-second rate (fractional, gauge) | 45 | 238.8 | 238.7 | 1.00 |
//!
//! Most of what is left is the sum (40-odd bits of a float that changes in
//! every bit a sample) and, for fractional floats, the XOR'd counts.
//!
//! # Recoding
//!
//! Prometheus appends a sample whose spans add buckets by recoding the chunk
//! with the new, empty buckets inserted into every earlier sample. Here an
//! encoder answers any change of spans with `LayoutChanged`, and the head
//! (`head::HistPart::recode`) does the recoding: it decodes the chunk and
//! encodes it again on the union of both layouts.

use sextant_model::histogram::{
    CounterResetHint, FloatHistogram, Histogram, Span, is_custom_buckets_schema,
};
use sextant_model::{is_stale_nan, stale_nan};

use super::bits::{BitReader, BitWriter};
use super::chunk::{
    CorruptChunk, POW10, TIME_WIDTHS, decimal_digits, read_bucketed, scaled, write_time_change,
    write_xor,
};

/// Encoding byte of an integer histogram chunk (after [`super::chunk::DECIMAL`]).
pub const HISTOGRAM: u8 = 3;
/// Encoding byte of a float histogram chunk.
pub const FLOAT_HISTOGRAM: u8 = 4;

/// The most buckets (both sides, and custom bounds) a chunk's layout may
/// have. Prometheus limits scraped histograms to 160 buckets by default and
/// OpenTelemetry to 160 per side; this leaves room for schema 8 over a wide
/// range while keeping what a hostile chunk can make a decoder allocate small.
pub const MAX_CHUNK_BUCKETS: usize = 1 << 16;

/// The most values (samples times the counts, spans and bounds of the
/// layout) one chunk may hold: a decoder never materialises more than this,
/// whatever the chunk says; an encoder asks for a new chunk before reaching
/// it (a chunk of 160-bucket samples holds over 6,000 of them).
pub const MAX_CHUNK_VALUES: usize = 1 << 20;

/// Bytes before the bit stream: encoding, sample count, flags.
const HEADER_LEN: usize = 4;

/// What happened to an appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The sample is in the chunk.
    Appended,
    /// The sample does not belong in this chunk; nothing was written. Start
    /// a new chunk with it. Prometheus passes the reason on as the new
    /// chunk's hint: [`CutReason::CounterReset`] as
    /// [`CounterResetHint::CounterReset`], the others as
    /// [`CounterResetHint::Unknown`] (unless the sample says more).
    NewChunkNeeded { reason: CutReason },
}

/// Why a sample needs a new chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// The chunk holds as many samples (or counts) as it may.
    Full,
    /// Schema, zero threshold, spans or custom bounds differ from the chunk's.
    LayoutChanged,
    /// A count went down (or a populated bucket vanished), or the sample's
    /// hint says the counter was reset.
    CounterReset,
    /// A gauge histogram after counter histograms, or the other way round.
    GaugeChanged,
    /// A sample after a stale marker: Prometheus starts a new chunk then too,
    /// since the series may have restarted.
    AfterStale,
}

/// Why a histogram cannot be appended at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramChunkError {
    #[error("histogram sample at {t} is not after the chunk's last one at {last}")]
    OutOfOrder { t: i64, last: i64 },
    #[error("{side} spans cover {needed} buckets but the histogram has {have}")]
    SpansBucketsMismatch {
        side: &'static str,
        needed: u64,
        have: usize,
    },
    #[error("histogram has more than {MAX_CHUNK_BUCKETS} buckets, spans or custom bounds")]
    TooManyBuckets,
}

// ---------------------------------------------------------------------------
// Small codes.

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Unsigned integers for the layout: groups of four bits, each after a bit
/// saying whether another group follows (span offsets and lengths are small).
fn write_uvar(bits: &mut BitWriter, mut v: u64) {
    loop {
        let group = v & 0xf;
        v >>= 4;
        bits.bit(v != 0);
        bits.write(group, 4);
        if v == 0 {
            return;
        }
    }
}

fn read_uvar(bits: &mut BitReader<'_>) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(4) {
        let more = bits.bit()?;
        v |= bits.read(4)? << shift;
        if !more {
            return Some(v);
        }
    }
    None
}

fn write_svar(bits: &mut BitWriter, v: i64) {
    write_uvar(bits, zigzag(v));
}

fn read_svar(bits: &mut BitReader<'_>) -> Option<i64> {
    read_uvar(bits).map(unzigzag)
}

/// Quotients of a Rice code from this on are escaped (the value's bit length
/// in six bits, then the value), so an outlier costs at most ~80 bits and a
/// decoder never reads a long run of ones.
const RICE_ESCAPE: u8 = 8;

/// An adaptive Rice code for one field's residuals: `k` follows a running
/// mean of the zigzagged residuals, the way LOCO-I/FLAC pick theirs.
#[derive(Debug, Clone, Copy)]
struct Rice {
    /// Sixteen times the running mean; `u64::MAX` until first used.
    mean16: u64,
}

impl Default for Rice {
    fn default() -> Self {
        Self { mean16: u64::MAX }
    }
}

impl Rice {
    /// The parameter for the next residual; `expected` (the size of the
    /// predicted change) seeds a field's first one: counts are roughly
    /// Poisson, so their noise is about the square root of the change.
    fn k(&mut self, expected: i64) -> u8 {
        if self.mean16 == u64::MAX {
            self.mean16 = 16 * (1 + expected.unsigned_abs().isqrt() * 3 / 2);
        }
        match self.mean16 >> 4 {
            0 => 0,
            mean => (63 - mean.leading_zeros() as u8).min(60),
        }
    }

    fn update(&mut self, z: u64) {
        self.mean16 = (self.mean16 - (self.mean16 >> 2)).saturating_add(z.saturating_mul(4));
    }

    fn write(&mut self, bits: &mut BitWriter, residual: i64, expected: i64) {
        let z = zigzag(residual);
        let k = self.k(expected);
        let q = z >> k;
        if q < u64::from(RICE_ESCAPE) {
            let q = q as u8;
            // q ones and a zero.
            bits.write(((1u64 << q) - 1) << 1, q + 1);
            bits.write(z & ((1u64 << k) - 1), k);
        } else {
            bits.write((1u64 << RICE_ESCAPE) - 1, RICE_ESCAPE);
            // z > 0 here: its bit length is 1..=64 and its top bit implied.
            let len = 64 - z.leading_zeros() as u8;
            bits.write(u64::from(len - 1), 6);
            bits.write(z, len - 1);
        }
        self.update(z);
    }

    fn read(&mut self, bits: &mut BitReader<'_>, expected: i64) -> Option<i64> {
        let k = self.k(expected);
        let mut q = 0u8;
        while q < RICE_ESCAPE && bits.bit()? {
            q += 1;
        }
        let z = if q < RICE_ESCAPE {
            (u64::from(q) << k) | bits.read(k)?
        } else {
            let len = bits.read(6)? as u8 + 1;
            (1u64 << (len - 1)) | bits.read(len - 1)?
        };
        self.update(z);
        Some(unzigzag(z))
    }
}

/// Gorilla XOR of one float field against its previous value, reusing the
/// previous window of meaningful bits when it fits (as [`super::chunk`]).
#[derive(Debug, Clone, Copy)]
struct XorField {
    last: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorField {
    fn default() -> Self {
        // No window yet: the first XOR writes its own.
        Self {
            last: 0,
            leading: u8::MAX,
            trailing: 0,
        }
    }
}

impl XorField {
    /// The first value, whole: XOR'ing it with zero would set a window as
    /// wide as the value that every later XOR would then reuse.
    fn write_first(&mut self, bits: &mut BitWriter, value: u64) {
        bits.write(value, 64);
        *self = Self {
            last: value,
            ..Self::default()
        };
    }

    fn read_first(&mut self, bits: &mut BitReader<'_>) -> Result<u64, CorruptChunk> {
        *self = Self {
            last: bits.read(64).ok_or(TRUNCATED)?,
            ..Self::default()
        };
        Ok(self.last)
    }

    fn write(&mut self, bits: &mut BitWriter, value: u64) {
        let xor = value ^ self.last;
        self.last = value;
        write_xor(bits, xor, &mut self.leading, &mut self.trailing);
    }

    fn read(&mut self, bits: &mut BitReader<'_>) -> Result<u64, CorruptChunk> {
        if bits.bit().ok_or(TRUNCATED)? {
            if bits.bit().ok_or(TRUNCATED)? {
                let leading = bits.read(5).ok_or(TRUNCATED)? as u8;
                let width = match bits.read(6).ok_or(TRUNCATED)? as u8 {
                    0 => 64,
                    w => w,
                };
                if leading + width > 64 {
                    return Err(CorruptChunk("value window out of range"));
                }
                self.leading = leading;
                self.trailing = 64 - leading - width;
            } else if self.leading == u8::MAX {
                return Err(CorruptChunk("value window reused before one was set"));
            }
            let xor = bits
                .read(64 - self.leading - self.trailing)
                .ok_or(TRUNCATED)?;
            self.last ^= xor << self.trailing;
        }
        Ok(self.last)
    }
}

const TRUNCATED: CorruptChunk = CorruptChunk("truncated");

// ---------------------------------------------------------------------------
// The layout.

/// What every sample of a chunk shares.
#[derive(Debug, Clone, Default, PartialEq)]
struct Layout {
    schema: i32,
    zero_threshold: f64,
    positive_spans: Vec<Span>,
    negative_spans: Vec<Span>,
    /// Only for the custom-buckets schema.
    custom_values: Vec<f64>,
}

/// Buckets the spans cover.
fn span_buckets(spans: &[Span]) -> u64 {
    spans.iter().map(|s| u64::from(s.length)).sum()
}

fn check_side(
    spans: &[Span],
    buckets: usize,
    side: &'static str,
) -> Result<(), HistogramChunkError> {
    if spans.len() > MAX_CHUNK_BUCKETS || buckets > MAX_CHUNK_BUCKETS {
        return Err(HistogramChunkError::TooManyBuckets);
    }
    let needed = span_buckets(spans);
    if needed != buckets as u64 {
        return Err(HistogramChunkError::SpansBucketsMismatch {
            side,
            needed,
            have: buckets,
        });
    }
    Ok(())
}

impl Layout {
    fn new(
        schema: i32,
        zero_threshold: f64,
        positive_spans: &[Span],
        negative_spans: &[Span],
        custom_values: &[f64],
    ) -> Self {
        Self {
            schema,
            zero_threshold,
            positive_spans: positive_spans.to_vec(),
            negative_spans: negative_spans.to_vec(),
            custom_values: if is_custom_buckets_schema(schema) {
                custom_values.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Whether bucket `i` means the same in both (schema, zero bucket, bounds).
    fn same_buckets(&self, schema: i32, zero_threshold: f64, custom_values: &[f64]) -> bool {
        self.schema == schema
            && self.zero_threshold.to_bits() == zero_threshold.to_bits()
            && (!is_custom_buckets_schema(schema)
                || (self.custom_values.len() == custom_values.len()
                    && self
                        .custom_values
                        .iter()
                        .zip(custom_values)
                        .all(|(a, b)| a.to_bits() == b.to_bits())))
    }

    fn n_positive(&self) -> usize {
        span_buckets(&self.positive_spans) as usize
    }

    /// Count fields of a sample: total, zero bucket, then every bucket.
    fn n_fields(&self) -> usize {
        2 + self.n_positive() + span_buckets(&self.negative_spans) as usize
    }

    /// What decoding one sample materialises: counts, spans, bounds.
    fn weight(&self) -> usize {
        self.n_fields()
            + self.positive_spans.len()
            + self.negative_spans.len()
            + self.custom_values.len()
    }

    fn write(&self, bits: &mut BitWriter) {
        write_svar(bits, i64::from(self.schema));
        write_zero_threshold(bits, self.zero_threshold);
        for spans in [&self.positive_spans, &self.negative_spans] {
            write_uvar(bits, spans.len() as u64);
            for span in spans {
                write_svar(bits, i64::from(span.offset));
                write_uvar(bits, u64::from(span.length));
            }
        }
        if is_custom_buckets_schema(self.schema) {
            write_custom_values(bits, &self.custom_values);
        }
    }

    fn read(bits: &mut BitReader<'_>) -> Result<Self, CorruptChunk> {
        let schema = i32::try_from(read_svar(bits).ok_or(TRUNCATED)?)
            .map_err(|_| CorruptChunk("schema out of range"))?;
        let zero_threshold = read_zero_threshold(bits)?;
        let mut sides = [Vec::new(), Vec::new()];
        let mut buckets = 0u64;
        for spans in &mut sides {
            let n = read_uvar(bits).ok_or(TRUNCATED)?;
            if n > MAX_CHUNK_BUCKETS as u64 {
                return Err(CorruptChunk("too many spans"));
            }
            for _ in 0..n {
                let offset = i32::try_from(read_svar(bits).ok_or(TRUNCATED)?)
                    .map_err(|_| CorruptChunk("span offset out of range"))?;
                let length = u32::try_from(read_uvar(bits).ok_or(TRUNCATED)?)
                    .map_err(|_| CorruptChunk("span length out of range"))?;
                buckets += u64::from(length);
                if buckets > MAX_CHUNK_BUCKETS as u64 {
                    return Err(CorruptChunk("too many buckets"));
                }
                spans.push(Span { offset, length });
            }
        }
        let [positive_spans, negative_spans] = sides;
        let custom_values = if is_custom_buckets_schema(schema) {
            read_custom_values(bits)?
        } else {
            Vec::new()
        };
        Ok(Self {
            schema,
            zero_threshold,
            positive_spans,
            negative_spans,
            custom_values,
        })
    }
}

/// Zero thresholds are nearly always 0 or a power of two (Prometheus's
/// default is 2^-128): those take one byte as in Prometheus (0, or the
/// exponent of `0.5 * 2^e` plus 243), anything else 255 and the 64 bits.
fn write_zero_threshold(bits: &mut BitWriter, threshold: f64) {
    let raw = threshold.to_bits();
    let biased = (raw >> 52) as i64; // sign bit included: negative never matches
    let exp = biased - 1022; // threshold = 0.5 * 2^exp when the mantissa is 0
    if raw == 0 {
        bits.write(0, 8);
    } else if raw & ((1 << 52) - 1) == 0 && (-242..=11).contains(&exp) {
        bits.write((exp + 243) as u64, 8);
    } else {
        bits.write(255, 8);
        bits.write(raw, 64);
    }
}

fn read_zero_threshold(bits: &mut BitReader<'_>) -> Result<f64, CorruptChunk> {
    Ok(match bits.read(8).ok_or(TRUNCATED)? {
        0 => 0.0,
        255 => f64::from_bits(bits.read(64).ok_or(TRUNCATED)?),
        b => f64::from_bits(((b as i64 - 243 + 1022) as u64) << 52),
    })
}

/// Custom bounds are decimals as users write them (`0.005`, `2.5`, `10`):
/// scaled by a common power of ten, the first whole, the rest as deltas;
/// otherwise the 64 bits of each.
fn write_custom_values(bits: &mut BitWriter, values: &[f64]) {
    write_uvar(bits, values.len() as u64);
    let digits = values
        .iter()
        .map(|&v| decimal_digits(v))
        .try_fold(0, |max, d| d.map(|d| max.max(d)));
    let scaled: Option<Vec<i64>> =
        digits.and_then(|digits| values.iter().map(|&v| scaled(v, digits)).collect());
    match (digits, scaled) {
        (Some(digits), Some(scaled)) => {
            bits.bit(true);
            bits.write(digits as u64, 4);
            let mut last = 0i64;
            for m in scaled {
                write_svar(bits, m.wrapping_sub(last));
                last = m;
            }
        }
        _ => {
            bits.bit(false);
            for v in values {
                bits.write(v.to_bits(), 64);
            }
        }
    }
}

fn read_custom_values(bits: &mut BitReader<'_>) -> Result<Vec<f64>, CorruptChunk> {
    let n = read_uvar(bits).ok_or(TRUNCATED)?;
    if n > MAX_CHUNK_BUCKETS as u64 {
        return Err(CorruptChunk("too many custom bounds"));
    }
    let mut values = Vec::new();
    if bits.bit().ok_or(TRUNCATED)? {
        let digits = bits.read(4).ok_or(TRUNCATED)? as usize;
        let scale = *POW10
            .get(digits)
            .ok_or(CorruptChunk("decimal scale out of range"))?;
        let mut m = 0i64;
        for _ in 0..n {
            m = m.wrapping_add(read_svar(bits).ok_or(TRUNCATED)?);
            values.push(m as f64 / scale);
        }
    } else {
        for _ in 0..n {
            values.push(f64::from_bits(bits.read(64).ok_or(TRUNCATED)?));
        }
    }
    Ok(values)
}

// ---------------------------------------------------------------------------
// Integer counts.

/// The state of the integer count coder: fields are the total count, the
/// zero bucket's count and every bucket's absolute count, in layout order.
#[derive(Debug, Clone, Default)]
struct IntCounts {
    /// The previous sample's fields.
    last: Vec<i64>,
    /// The fields of the first sample coded since the last (re)start.
    base: Vec<i64>,
    /// The previous change of the total count.
    count_delta: i64,
    rice: Vec<Rice>,
}

impl IntCounts {
    /// Writes the first sample: the two counts whole, each bucket as the
    /// difference to the previous one (neighbours are similar).
    fn write_first(&mut self, bits: &mut BitWriter, fields: &[i64]) {
        let mut previous = 0i64;
        for (i, &v) in fields.iter().enumerate() {
            if i < 2 {
                write_svar(bits, v);
            } else {
                write_svar(bits, v.wrapping_sub(previous));
                previous = v;
            }
        }
        self.start(fields);
    }

    fn read_first(&mut self, bits: &mut BitReader<'_>, n: usize) -> Option<()> {
        let mut fields = Vec::with_capacity(n);
        let mut previous = 0i64;
        for i in 0..n {
            let v = read_svar(bits)?;
            if i < 2 {
                fields.push(v);
            } else {
                previous = previous.wrapping_add(v);
                fields.push(previous);
            }
        }
        self.start(&fields);
        Some(())
    }

    fn start(&mut self, fields: &[i64]) {
        self.last.clear();
        self.last.extend_from_slice(fields);
        self.base.clear();
        self.base.extend_from_slice(fields);
        self.count_delta = 0;
        self.rice.clear();
        self.rice.resize(fields.len(), Rice::default());
    }

    /// The expected change of field `i` when the total count changes by
    /// `count_change`: its share of the chunk's growth so far, or of the
    /// whole histogram before anything grew. Integer arithmetic, so encoder
    /// and decoder agree on every platform.
    fn predict(&self, i: usize, count_change: i64) -> i64 {
        let growth = self.last[0].wrapping_sub(self.base[0]);
        let (part, whole) = if growth > 0 {
            (self.last[i].wrapping_sub(self.base[i]), growth)
        } else if self.last[0] > 0 {
            (self.last[i], self.last[0])
        } else {
            return 0;
        };
        let (part, whole) = (i128::from(part), i128::from(whole));
        // Rounded to the nearest; wrapping (hostile chunks) is deterministic too.
        let product = i128::from(count_change).wrapping_mul(part);
        (product.wrapping_mul(2).wrapping_add(whole) / (2 * whole)) as i64
    }

    fn write_next(&mut self, bits: &mut BitWriter, fields: &[i64]) {
        let count_change = fields[0].wrapping_sub(self.last[0]);
        self.rice[0].write(bits, count_change.wrapping_sub(self.count_delta), 0);
        self.count_delta = count_change;
        if count_change == 0 {
            let unchanged = fields[1..] == self.last[1..];
            bits.bit(!unchanged);
            if unchanged {
                return;
            }
        }
        for (i, &field) in fields.iter().enumerate().skip(1) {
            let expected = self.predict(i, count_change);
            let change = field.wrapping_sub(self.last[i]);
            self.rice[i].write(bits, change.wrapping_sub(expected), expected);
        }
        self.last.copy_from_slice(fields);
    }

    fn read_next(&mut self, bits: &mut BitReader<'_>) -> Option<()> {
        let count_change = self.rice[0].read(bits, 0)?.wrapping_add(self.count_delta);
        self.count_delta = count_change;
        if count_change == 0 && !bits.bit()? {
            return Some(());
        }
        // `predict` reads the previous fields: collect the changes first.
        let mut changes = Vec::with_capacity(self.last.len());
        changes.push(count_change);
        for i in 1..self.last.len() {
            let expected = self.predict(i, count_change);
            changes.push(self.rice[i].read(bits, expected)?.wrapping_add(expected));
        }
        for (v, c) in self.last.iter_mut().zip(changes) {
            *v = v.wrapping_add(c);
        }
        Some(())
    }
}

/// `(bucket index, count)` of one side, in order (spans already checked).
fn indexed<T: Copy>(spans: &[Span], counts: &[T]) -> Vec<(i64, T)> {
    let mut out = Vec::with_capacity(counts.len());
    let mut index = 0i64;
    let mut counts = counts.iter();
    for (n, span) in spans.iter().enumerate() {
        index = if n == 0 {
            i64::from(span.offset)
        } else {
            index + i64::from(span.offset)
        };
        for _ in 0..span.length {
            match counts.next() {
                Some(&c) => out.push((index, c)),
                None => return out,
            }
            index += 1;
        }
    }
    out
}

/// Whether some bucket of `old` lost observations in `new` (a populated
/// bucket that vanished counts): Prometheus's counter reset rule for
/// layouts that differ only in spans.
fn buckets_decreased<T: Copy + PartialOrd + Default>(old: &[(i64, T)], new: &[(i64, T)]) -> bool {
    let mut new = new.iter().peekable();
    for &(index, count) in old {
        while new.next_if(|(i, _)| *i < index).is_some() {}
        match new.peek() {
            Some(&&(i, c)) if i == index => {
                if c < count {
                    return true;
                }
            }
            _ => {
                if count != T::default() {
                    return true;
                }
            }
        }
    }
    false
}

fn hint_bits(hint: CounterResetHint) -> u8 {
    match hint {
        CounterResetHint::Unknown => 0b00,
        CounterResetHint::NotCounterReset => 0b01,
        CounterResetHint::CounterReset => 0b10,
        CounterResetHint::Gauge => 0b11,
    }
}

fn hint_from_bits(bits: u8) -> CounterResetHint {
    match bits & 0b11 {
        0b00 => CounterResetHint::Unknown,
        0b01 => CounterResetHint::NotCounterReset,
        0b10 => CounterResetHint::CounterReset,
        _ => CounterResetHint::Gauge,
    }
}

/// The hint a decoded sample carries: the chunk's for the first, then
/// "gauge" in gauge chunks and "not a reset" in counter chunks (a reset
/// always starts a chunk), as Prometheus's iterators say.
fn sample_hint(chunk_hint: CounterResetHint, position: usize) -> CounterResetHint {
    match (chunk_hint, position) {
        (_, 0) => chunk_hint,
        (CounterResetHint::Gauge, _) => CounterResetHint::Gauge,
        _ => CounterResetHint::NotCounterReset,
    }
}

// ---------------------------------------------------------------------------
// What both encoders share.

/// The parts of a chunk encoder that do not depend on the count type.
#[derive(Debug, Clone, Default)]
struct ChunkState {
    bits: BitWriter,
    count: u16,
    hint: CounterResetHint,
    layout: Layout,
    first_t: i64,
    last_t: i64,
    last_delta: i64,
    sum: XorField,
    last_stale: bool,
}

impl ChunkState {
    /// Checks common to both kinds before a sample; `Ok(Some(reason))` when
    /// it needs a new chunk.
    fn admit(
        &self,
        t: i64,
        hint: CounterResetHint,
        stale: bool,
    ) -> Result<Option<CutReason>, HistogramChunkError> {
        if self.count == 0 {
            return Ok(None);
        }
        if t <= self.last_t {
            return Err(HistogramChunkError::OutOfOrder {
                t,
                last: self.last_t,
            });
        }
        if self.count == u16::MAX
            || (usize::from(self.count) + 1) * self.layout.weight() > MAX_CHUNK_VALUES
        {
            return Ok(Some(CutReason::Full));
        }
        if stale {
            return Ok(None);
        }
        let gauge_chunk = self.hint == CounterResetHint::Gauge;
        if gauge_chunk != (hint == CounterResetHint::Gauge) {
            return Ok(Some(CutReason::GaugeChanged));
        }
        if self.last_stale {
            return Ok(Some(CutReason::AfterStale));
        }
        if hint == CounterResetHint::CounterReset {
            return Ok(Some(CutReason::CounterReset));
        }
        Ok(None)
    }

    /// Writes the layout (for the first sample), timestamp and sum.
    fn write_common(
        &mut self,
        t: i64,
        hint: CounterResetHint,
        sum: f64,
        layout: impl FnOnce() -> Layout,
    ) {
        if self.count == 0 {
            self.layout = layout();
            self.hint = hint;
            self.layout.write(&mut self.bits);
            self.bits.write(t as u64, 64);
            self.first_t = t;
        } else {
            write_time_change(&mut self.bits, t, &mut self.last_t, &mut self.last_delta);
        }
        self.last_t = t;
        if self.count == 0 {
            self.sum.write_first(&mut self.bits, sum.to_bits());
        } else {
            self.sum.write(&mut self.bits, sum.to_bits());
        }
        self.last_stale = is_stale_nan(sum);
    }

    fn bytes(&self, encoding: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.bits.len());
        out.push(encoding);
        out.extend_from_slice(&self.count.to_be_bytes());
        out.push(hint_bits(self.hint) << 6);
        out.extend_from_slice(self.bits.bytes());
        out
    }
}

/// Header, layout and timestamps of a chunk being decoded.
struct ChunkReader<'a> {
    bits: BitReader<'a>,
    count: usize,
    hint: CounterResetHint,
    layout: Layout,
    t: i64,
    delta: i64,
    sum: XorField,
    read: usize,
    stale_seen: bool,
}

impl<'a> ChunkReader<'a> {
    /// `None` for a chunk without samples.
    fn new(chunk: &'a [u8], encoding: u8) -> Result<Option<Self>, CorruptChunk> {
        let header = chunk.get(..HEADER_LEN).ok_or(CorruptChunk("no header"))?;
        if header[0] != encoding {
            return Err(CorruptChunk("not a histogram chunk of this kind"));
        }
        let count = usize::from(u16::from_be_bytes([header[1], header[2]]));
        if header[3] & 0b0011_1111 != 0 {
            return Err(CorruptChunk("unknown flags"));
        }
        if count == 0 {
            return Ok(None);
        }
        let mut bits = BitReader::new(&chunk[HEADER_LEN..]);
        let layout = Layout::read(&mut bits)?;
        if count.saturating_mul(layout.weight()) > MAX_CHUNK_VALUES {
            return Err(CorruptChunk("more counts than a chunk may hold"));
        }
        Ok(Some(Self {
            bits,
            count,
            hint: hint_from_bits(header[3] >> 6),
            layout,
            t: 0,
            delta: 0,
            sum: XorField::default(),
            read: 0,
            stale_seen: false,
        }))
    }

    /// Reads the next timestamp and sum; whether the sample is a stale marker.
    fn next_common(&mut self) -> Result<bool, CorruptChunk> {
        if self.read == 0 {
            self.t = self.bits.read(64).ok_or(TRUNCATED)? as i64;
        } else {
            let dod = read_bucketed(&mut self.bits, TIME_WIDTHS).ok_or(TRUNCATED)?;
            self.delta = self.delta.wrapping_add(dod);
            self.t = self.t.wrapping_add(self.delta);
        }
        let sum = if self.read == 0 {
            self.sum.read_first(&mut self.bits)?
        } else {
            self.sum.read(&mut self.bits)?
        };
        let stale = is_stale_nan(f64::from_bits(sum));
        if !stale && self.stale_seen {
            return Err(CorruptChunk("sample after a stale marker"));
        }
        self.stale_seen |= stale;
        Ok(stale)
    }

    fn hint(&self) -> CounterResetHint {
        sample_hint(self.hint, self.read)
    }
}

// ---------------------------------------------------------------------------
// Integer histograms.

/// Builds an integer histogram chunk one sample at a time.
#[derive(Debug, Clone, Default)]
pub struct HistogramChunkEncoder {
    state: ChunkState,
    counts: IntCounts,
    /// Scratch: the sample's fields.
    fields: Vec<i64>,
}

/// The count fields of an integer histogram (absolute bucket counts).
fn int_fields(h: &Histogram, out: &mut Vec<i64>) {
    out.clear();
    out.push(h.count as i64);
    out.push(h.zero_count as i64);
    for side in [&h.positive_buckets, &h.negative_buckets] {
        let mut absolute = 0i64;
        for &delta in side {
            absolute = absolute.wrapping_add(delta);
            out.push(absolute);
        }
    }
}

fn check_histogram(
    positive: (&[Span], usize),
    negative: (&[Span], usize),
    custom_values: usize,
) -> Result<(), HistogramChunkError> {
    check_side(positive.0, positive.1, "positive")?;
    check_side(negative.0, negative.1, "negative")?;
    if positive.1 + negative.1 > MAX_CHUNK_BUCKETS || custom_values > MAX_CHUNK_BUCKETS {
        return Err(HistogramChunkError::TooManyBuckets);
    }
    Ok(())
}

impl HistogramChunkEncoder {
    /// Appends a histogram sample later than the last one, or says why it
    /// needs a new chunk (and writes nothing). A sample whose sum is the
    /// stale marker keeps only its timestamp and sum.
    pub fn append(&mut self, t: i64, h: &Histogram) -> Result<AppendOutcome, HistogramChunkError> {
        check_histogram(
            (&h.positive_spans, h.positive_buckets.len()),
            (&h.negative_spans, h.negative_buckets.len()),
            h.custom_values.len(),
        )?;
        let stale = is_stale_nan(h.sum);
        if let Some(reason) = self.state.admit(t, h.counter_reset_hint, stale)? {
            return Ok(AppendOutcome::NewChunkNeeded { reason });
        }
        if !stale {
            int_fields(h, &mut self.fields);
        }
        if self.state.count > 0
            && !stale
            && let Some(reason) = self.cut_reason(h)
        {
            return Ok(AppendOutcome::NewChunkNeeded { reason });
        }
        let first = self.state.count == 0;
        self.state.write_common(t, h.counter_reset_hint, h.sum, || {
            if stale {
                Layout::default()
            } else {
                Layout::new(
                    h.schema,
                    h.zero_threshold,
                    &h.positive_spans,
                    &h.negative_spans,
                    &h.custom_values,
                )
            }
        });
        if !stale {
            if first {
                self.counts.write_first(&mut self.state.bits, &self.fields);
            } else {
                self.counts.write_next(&mut self.state.bits, &self.fields);
            }
        }
        self.state.count += 1;
        Ok(AppendOutcome::Appended)
    }

    fn cut_reason(&self, h: &Histogram) -> Option<CutReason> {
        let layout = &self.state.layout;
        let gauge = self.state.hint == CounterResetHint::Gauge;
        let last = &self.counts.last;
        if !gauge && h.count < last[0] as u64 {
            return Some(CutReason::CounterReset);
        }
        if !layout.same_buckets(h.schema, h.zero_threshold, &h.custom_values) {
            // Other custom bounds are a reset for Prometheus, another schema
            // or zero bucket is not known to be one.
            let custom = is_custom_buckets_schema(h.schema) && layout.schema == h.schema;
            return Some(if custom && !gauge {
                CutReason::CounterReset
            } else {
                CutReason::LayoutChanged
            });
        }
        if !gauge && h.zero_count < last[1] as u64 {
            return Some(CutReason::CounterReset);
        }
        let n_positive = layout.n_positive();
        let spans_same =
            layout.positive_spans == h.positive_spans && layout.negative_spans == h.negative_spans;
        if gauge {
            return (!spans_same).then_some(CutReason::LayoutChanged);
        }
        let sides = [
            (
                &layout.positive_spans,
                &last[2..2 + n_positive],
                &h.positive_spans,
                &self.fields[2..2 + h.positive_buckets.len()],
            ),
            (
                &layout.negative_spans,
                &last[2 + n_positive..],
                &h.negative_spans,
                &self.fields[2 + h.positive_buckets.len()..],
            ),
        ];
        for (old_spans, old, new_spans, new) in sides {
            let decreased = if spans_same {
                old.iter().zip(new).any(|(o, n)| n < o)
            } else {
                buckets_decreased(&indexed(old_spans, old), &indexed(new_spans, new))
            };
            if decreased {
                return Some(CutReason::CounterReset);
            }
        }
        (!spans_same).then_some(CutReason::LayoutChanged)
    }

    /// Samples appended.
    pub fn len(&self) -> usize {
        usize::from(self.state.count)
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.state.count == 0
    }

    /// First timestamp (meaningless when empty).
    pub fn min_time(&self) -> i64 {
        self.state.first_t
    }

    /// Last timestamp (meaningless when empty).
    pub fn max_time(&self) -> i64 {
        self.state.last_t
    }

    /// The encoded chunk so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.state.bytes(HISTOGRAM)
    }
}

/// Decodes every sample of an integer histogram chunk.
pub fn decode_histograms(chunk: &[u8]) -> Result<Vec<(i64, Histogram)>, CorruptChunk> {
    let Some(mut reader) = ChunkReader::new(chunk, HISTOGRAM)? else {
        return Ok(Vec::new());
    };
    let n_fields = reader.layout.n_fields();
    let n_positive = reader.layout.n_positive();
    let mut counts = IntCounts::default();
    let mut out = Vec::with_capacity(reader.count);
    for _ in 0..reader.count {
        let first_values = counts.last.is_empty();
        if reader.next_common()? {
            out.push((
                reader.t,
                Histogram {
                    sum: stale_nan(),
                    ..Histogram::default()
                },
            ));
        } else {
            if first_values {
                counts.read_first(&mut reader.bits, n_fields)
            } else {
                counts.read_next(&mut reader.bits)
            }
            .ok_or(TRUNCATED)?;
            let layout = &reader.layout;
            let fields = &counts.last;
            out.push((
                reader.t,
                Histogram {
                    counter_reset_hint: reader.hint(),
                    schema: layout.schema,
                    zero_threshold: layout.zero_threshold,
                    zero_count: fields[1] as u64,
                    count: fields[0] as u64,
                    sum: f64::from_bits(reader.sum.last),
                    positive_spans: layout.positive_spans.clone(),
                    negative_spans: layout.negative_spans.clone(),
                    positive_buckets: to_deltas(&fields[2..2 + n_positive]),
                    negative_buckets: to_deltas(&fields[2 + n_positive..]),
                    custom_values: layout.custom_values.clone(),
                },
            ));
        }
        reader.read += 1;
    }
    Ok(out)
}

/// Absolute counts back to the delta encoding of [`Histogram`].
fn to_deltas(absolute: &[i64]) -> Vec<i64> {
    let mut previous = 0i64;
    absolute
        .iter()
        .map(|&v| {
            let delta = v.wrapping_sub(previous);
            previous = v;
            delta
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Float histograms.

/// Builds a float histogram chunk one sample at a time.
#[derive(Debug, Clone, Default)]
pub struct FloatHistogramChunkEncoder {
    state: ChunkState,
    counts: IntCounts,
    /// Whether the previous sample was written as integers (so `counts`
    /// holds it and the next integral one can be written as changes).
    last_integral: bool,
    /// Per field, for samples that are not integral.
    xor: Vec<XorField>,
    /// The previous sample's fields.
    last: Vec<f64>,
    /// Scratch.
    fields: Vec<f64>,
    int_fields: Vec<i64>,
}

/// The integer `v` holds exactly (not -0.0, not beyond `i64`).
fn exact_int(v: f64) -> Option<i64> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if !(-LIMIT..LIMIT).contains(&v) || v.fract() != 0.0 {
        return None;
    }
    let i = v as i64;
    ((i as f64).to_bits() == v.to_bits()).then_some(i)
}

impl FloatHistogramChunkEncoder {
    /// Appends a histogram sample later than the last one, or says why it
    /// needs a new chunk (and writes nothing). A sample whose sum is the
    /// stale marker keeps only its timestamp and sum.
    pub fn append(
        &mut self,
        t: i64,
        h: &FloatHistogram,
    ) -> Result<AppendOutcome, HistogramChunkError> {
        check_histogram(
            (&h.positive_spans, h.positive_buckets.len()),
            (&h.negative_spans, h.negative_buckets.len()),
            h.custom_values.len(),
        )?;
        let stale = is_stale_nan(h.sum);
        if let Some(reason) = self.state.admit(t, h.counter_reset_hint, stale)? {
            return Ok(AppendOutcome::NewChunkNeeded { reason });
        }
        if !stale {
            self.fields.clear();
            self.fields.push(h.count);
            self.fields.push(h.zero_count);
            self.fields.extend_from_slice(&h.positive_buckets);
            self.fields.extend_from_slice(&h.negative_buckets);
        }
        if self.state.count > 0
            && !stale
            && let Some(reason) = self.cut_reason(h)
        {
            return Ok(AppendOutcome::NewChunkNeeded { reason });
        }
        let first = self.state.count == 0;
        self.state.write_common(t, h.counter_reset_hint, h.sum, || {
            if stale {
                Layout::default()
            } else {
                Layout::new(
                    h.schema,
                    h.zero_threshold,
                    &h.positive_spans,
                    &h.negative_spans,
                    &h.custom_values,
                )
            }
        });
        if !stale {
            if first {
                self.xor = vec![XorField::default(); self.fields.len()];
            }
            self.write_counts(first);
            self.last.clone_from(&self.fields);
        }
        self.state.count += 1;
        Ok(AppendOutcome::Appended)
    }

    fn write_counts(&mut self, first: bool) {
        let bits = &mut self.state.bits;
        self.int_fields.clear();
        let integral = self
            .fields
            .iter()
            .try_for_each(|&v| exact_int(v).map(|i| self.int_fields.push(i)))
            .is_some();
        bits.bit(integral);
        if integral {
            if self.last_integral {
                self.counts.write_next(bits, &self.int_fields);
            } else {
                self.counts.write_first(bits, &self.int_fields);
            }
            for (x, v) in self.xor.iter_mut().zip(&self.fields) {
                x.last = v.to_bits();
            }
        } else if first {
            for (x, v) in self.xor.iter_mut().zip(&self.fields) {
                x.write_first(bits, v.to_bits());
            }
        } else {
            for (x, v) in self.xor.iter_mut().zip(&self.fields) {
                x.write(bits, v.to_bits());
            }
        }
        self.last_integral = integral;
    }

    fn cut_reason(&self, h: &FloatHistogram) -> Option<CutReason> {
        let layout = &self.state.layout;
        let gauge = self.state.hint == CounterResetHint::Gauge;
        let last = &self.last;
        if !gauge && h.count < last[0] {
            return Some(CutReason::CounterReset);
        }
        if !layout.same_buckets(h.schema, h.zero_threshold, &h.custom_values) {
            let custom = is_custom_buckets_schema(h.schema) && layout.schema == h.schema;
            return Some(if custom && !gauge {
                CutReason::CounterReset
            } else {
                CutReason::LayoutChanged
            });
        }
        if !gauge && h.zero_count < last[1] {
            return Some(CutReason::CounterReset);
        }
        let n_positive = layout.n_positive();
        let spans_same =
            layout.positive_spans == h.positive_spans && layout.negative_spans == h.negative_spans;
        if gauge {
            return (!spans_same).then_some(CutReason::LayoutChanged);
        }
        let sides = [
            (
                &layout.positive_spans,
                &last[2..2 + n_positive],
                &h.positive_spans,
                &h.positive_buckets[..],
            ),
            (
                &layout.negative_spans,
                &last[2 + n_positive..],
                &h.negative_spans,
                &h.negative_buckets[..],
            ),
        ];
        for (old_spans, old, new_spans, new) in sides {
            let decreased = if spans_same {
                old.iter().zip(new).any(|(o, n)| n < o)
            } else {
                buckets_decreased(&indexed(old_spans, old), &indexed(new_spans, new))
            };
            if decreased {
                return Some(CutReason::CounterReset);
            }
        }
        (!spans_same).then_some(CutReason::LayoutChanged)
    }

    /// Samples appended.
    pub fn len(&self) -> usize {
        usize::from(self.state.count)
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.state.count == 0
    }

    /// First timestamp (meaningless when empty).
    pub fn min_time(&self) -> i64 {
        self.state.first_t
    }

    /// Last timestamp (meaningless when empty).
    pub fn max_time(&self) -> i64 {
        self.state.last_t
    }

    /// The encoded chunk so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.state.bytes(FLOAT_HISTOGRAM)
    }
}

/// Decodes every sample of a float histogram chunk.
pub fn decode_float_histograms(chunk: &[u8]) -> Result<Vec<(i64, FloatHistogram)>, CorruptChunk> {
    let Some(mut reader) = ChunkReader::new(chunk, FLOAT_HISTOGRAM)? else {
        return Ok(Vec::new());
    };
    let n_fields = reader.layout.n_fields();
    let n_positive = reader.layout.n_positive();
    let mut counts = IntCounts::default();
    let mut xor = vec![XorField::default(); n_fields];
    let mut last_integral = false;
    let mut out = Vec::with_capacity(reader.count);
    for _ in 0..reader.count {
        if reader.next_common()? {
            out.push((
                reader.t,
                FloatHistogram {
                    sum: stale_nan(),
                    ..FloatHistogram::default()
                },
            ));
            reader.read += 1;
            continue;
        }
        let integral = reader.bits.bit().ok_or(TRUNCATED)?;
        if integral {
            if last_integral {
                counts.read_next(&mut reader.bits)
            } else {
                counts.read_first(&mut reader.bits, n_fields)
            }
            .ok_or(TRUNCATED)?;
            for (x, &v) in xor.iter_mut().zip(&counts.last) {
                x.last = (v as f64).to_bits();
            }
        } else if reader.read == 0 {
            for x in &mut xor {
                x.read_first(&mut reader.bits)?;
            }
        } else {
            for x in &mut xor {
                x.read(&mut reader.bits)?;
            }
        }
        last_integral = integral;
        let value = |i: usize| f64::from_bits(xor[i].last);
        let layout = &reader.layout;
        out.push((
            reader.t,
            FloatHistogram {
                counter_reset_hint: reader.hint(),
                schema: layout.schema,
                zero_threshold: layout.zero_threshold,
                zero_count: value(1),
                count: value(0),
                sum: f64::from_bits(reader.sum.last),
                positive_spans: layout.positive_spans.clone(),
                negative_spans: layout.negative_spans.clone(),
                positive_buckets: (2..2 + n_positive).map(value).collect(),
                negative_buckets: (2 + n_positive..n_fields).map(value).collect(),
                custom_values: layout.custom_values.clone(),
            },
        ));
        reader.read += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;

    use super::*;
    use crate::tsdb::chunk::SAMPLES_PER_CHUNK;

    /// splitmix64: reproducible data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn uniform(&mut self) -> f64 {
            ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }

        fn poisson(&mut self, lambda: f64) -> u64 {
            if lambda > 50.0 {
                return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64;
            }
            let (limit, mut p, mut k) = ((-lambda).exp(), 1.0, 0);
            loop {
                p *= self.uniform();
                if p <= limit {
                    return k;
                }
                k += 1;
            }
        }
    }

    /// Spans and delta-encoded counts of `(index, count)` in index order.
    fn spans_and_deltas(buckets: &[(i32, u64)]) -> (Vec<Span>, Vec<i64>) {
        let mut spans: Vec<Span> = Vec::new();
        let mut deltas = Vec::new();
        let (mut next_index, mut previous) = (0i32, 0i64);
        for (n, &(index, count)) in buckets.iter().enumerate() {
            match spans.last_mut() {
                Some(span) if index == next_index => span.length += 1,
                _ => spans.push(Span {
                    offset: if n == 0 { index } else { index - next_index },
                    length: 1,
                }),
            }
            next_index = index + 1;
            deltas.push(count as i64 - previous);
            previous = count as i64;
        }
        (spans, deltas)
    }

    /// A cumulative histogram observed scrape by scrape. The bucket layout
    /// of every sample is the union of the buckets the chunk ever sees (as
    /// after Prometheus's recoding), so one chunk holds them all.
    fn series(
        seed: u64,
        warm_up: usize,
        schema: i32,
        zero_threshold: f64,
        custom_values: &[f64],
        mut observations: impl FnMut(&mut Rng, usize) -> Vec<f64>,
    ) -> Vec<(i64, Histogram)> {
        let mut rng = Rng(seed);
        let mut positive = BTreeMap::<i32, u64>::new();
        let mut negative = BTreeMap::<i32, u64>::new();
        let (mut count, mut zero, mut sum) = (0u64, 0u64, 0.0f64);
        let mut states = Vec::new();
        for scrape in 0..warm_up + SAMPLES_PER_CHUNK {
            for v in observations(&mut rng, scrape) {
                count += 1;
                sum += v;
                if !custom_values.is_empty() {
                    let i = custom_values.partition_point(|&b| b < v) as i32;
                    *positive.entry(i).or_default() += 1;
                } else if v.abs() <= zero_threshold {
                    zero += 1;
                } else {
                    let i = (v.abs().log2() * f64::from(1 << schema)).ceil() as i32;
                    let side = if v > 0.0 {
                        &mut positive
                    } else {
                        &mut negative
                    };
                    *side.entry(i).or_default() += 1;
                }
            }
            if scrape >= warm_up {
                states.push((count, zero, sum, positive.clone(), negative.clone()));
            }
        }
        let (.., last_positive, last_negative) = states.last().expect("samples").clone();
        let full = |side: &BTreeMap<i32, u64>, all: &BTreeMap<i32, u64>| {
            let buckets: Vec<(i32, u64)> = all
                .keys()
                .map(|i| (*i, side.get(i).copied().unwrap_or(0)))
                .collect();
            spans_and_deltas(&buckets)
        };
        states
            .into_iter()
            .enumerate()
            .map(|(n, (count, zero_count, sum, pos, neg))| {
                let (positive_spans, positive_buckets) = full(&pos, &last_positive);
                let (negative_spans, negative_buckets) = full(&neg, &last_negative);
                let h = Histogram {
                    schema,
                    zero_threshold,
                    zero_count,
                    count,
                    sum,
                    positive_spans,
                    negative_spans,
                    positive_buckets,
                    negative_buckets,
                    custom_values: custom_values.to_vec(),
                    ..Histogram::default()
                };
                h.validate().expect("generated histograms are valid");
                (1_700_000_000_000 + n as i64 * 15_000, h)
            })
            .collect()
    }

    /// A request latency: ~100 requests a second, log-normal around 50 ms,
    /// traffic swinging ±30%; schema 3, about 40 populated buckets.
    fn latency_series() -> Vec<(i64, Histogram)> {
        series(1, 240, 3, 2f64.powi(-128), &[], |rng, scrape| {
            let rate = 1500.0 * (1.0 + 0.3 * (scrape as f64 / 40.0).sin());
            (0..rng.poisson(rate))
                .map(|_| (0.05f64.ln() + 0.4 * rng.normal()).exp())
                .collect()
        })
    }

    /// A rarely hit one: three observations a scrape of both signs (clock
    /// offsets), schema 1, zero bucket, buckets in several spans.
    fn sparse_series() -> Vec<(i64, Histogram)> {
        series(2, 240, 1, 0.001, &[], |rng, _| {
            (0..rng.poisson(3.0))
                .map(|_| {
                    let v = rng.normal() * 0.5;
                    if rng.uniform() < 0.1 {
                        0.0
                    } else {
                        v * v.abs() * 4.0
                    }
                })
                .collect()
        })
    }

    /// NHCB: a classic histogram with the client libraries' default bounds,
    /// 20 requests a second.
    fn nhcb_series() -> Vec<(i64, Histogram)> {
        let bounds = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        series(3, 240, CUSTOM_BUCKETS_SCHEMA, 0.0, &bounds, |rng, _| {
            (0..rng.poisson(300.0))
                .map(|_| (0.2f64.ln() + rng.normal()).exp())
                .collect()
        })
    }

    /// Prometheus's histogram chunk encoders (`tsdb/chunkenc/histogram.go`,
    /// `float_histogram.go`, `histogram_meta.go`, `varbit.go`), bit for bit,
    /// to measure what Prometheus stores for the same samples.
    mod prometheus {
        use super::*;

        fn bit_range(x: i64, n: u8) -> bool {
            -((1i64 << (n - 1)) - 1) <= x && x <= 1i64 << (n - 1)
        }

        const CLASSES: [(u64, u8, u8); 7] = [
            (0b10, 2, 3),
            (0b110, 3, 6),
            (0b1110, 4, 9),
            (0b11110, 5, 12),
            (0b111110, 6, 18),
            (0b1111110, 7, 25),
            (0b11111110, 8, 56),
        ];

        pub fn put_varbit_int(b: &mut BitWriter, v: i64) {
            if v == 0 {
                return b.bit(false);
            }
            for (prefix, len, width) in CLASSES {
                if bit_range(v, width) {
                    b.write(prefix, len);
                    return b.write(v as u64, width);
                }
            }
            b.write(0xff, 8);
            b.write(v as u64, 64);
        }

        pub fn put_varbit_uint(b: &mut BitWriter, v: u64) {
            if v == 0 {
                return b.bit(false);
            }
            for (prefix, len, width) in CLASSES {
                if v.leading_zeros() >= 64 - u32::from(width) {
                    b.write(prefix, len);
                    return b.write(v, width);
                }
            }
            b.write(0xff, 8);
            b.write(v, 64);
        }

        fn put_custom_bound(b: &mut BitWriter, f: f64) {
            let tf = f * 1000.0;
            let whole = ((f * 1000.0).round().max(0.0) as u64) as f64 / 1000.0 == f;
            if !(0.0..=33_554_430.0).contains(&tf) || !whole {
                b.bit(false);
                return b.write(f.to_bits(), 64);
            }
            put_varbit_uint(b, tf.round() as u64 + 1);
        }

        fn put_layout(b: &mut BitWriter, l: &Layout) {
            // Same as ours: 0, an exponent byte, or 255 and the bits.
            write_zero_threshold(b, l.zero_threshold);
            put_varbit_int(b, i64::from(l.schema));
            for spans in [&l.positive_spans, &l.negative_spans] {
                put_varbit_uint(b, spans.len() as u64);
                for s in spans {
                    put_varbit_uint(b, u64::from(s.length));
                    put_varbit_int(b, i64::from(s.offset));
                }
            }
            if is_custom_buckets_schema(l.schema) {
                put_varbit_uint(b, l.custom_values.len() as u64);
                for &v in &l.custom_values {
                    put_custom_bound(b, v);
                }
            }
        }

        /// Chunk bytes (2 count, 1 flag, stream) plus the encoding byte.
        pub fn int_chunk_len(samples: &[(i64, Histogram)]) -> usize {
            let mut b = BitWriter::default();
            let (mut t0, mut t_delta, mut cnt, mut zcnt, mut cnt_delta, mut zcnt_delta) =
                (0i64, 0i64, 0u64, 0u64, 0i64, 0i64);
            let mut sum = XorField::default();
            let (mut buckets, mut deltas) = (Vec::new(), Vec::new());
            for (n, (t, h)) in samples.iter().enumerate() {
                let all: Vec<i64> = h
                    .positive_buckets
                    .iter()
                    .chain(&h.negative_buckets)
                    .copied()
                    .collect();
                if n == 0 {
                    let layout = Layout::new(
                        h.schema,
                        h.zero_threshold,
                        &h.positive_spans,
                        &h.negative_spans,
                        &h.custom_values,
                    );
                    put_layout(&mut b, &layout);
                    put_varbit_int(&mut b, *t);
                    put_varbit_uint(&mut b, h.count);
                    put_varbit_uint(&mut b, h.zero_count);
                    b.write(h.sum.to_bits(), 64);
                    sum.last = h.sum.to_bits();
                    for &v in &all {
                        put_varbit_int(&mut b, v);
                    }
                    deltas = vec![0i64; all.len()];
                } else {
                    let td = t - t0;
                    let cd = h.count as i64 - cnt as i64;
                    let zd = h.zero_count as i64 - zcnt as i64;
                    put_varbit_int(&mut b, td - t_delta);
                    put_varbit_int(&mut b, cd - cnt_delta);
                    put_varbit_int(&mut b, zd - zcnt_delta);
                    sum.write(&mut b, h.sum.to_bits());
                    for (i, &v) in all.iter().enumerate() {
                        let delta = v - buckets[i];
                        put_varbit_int(&mut b, delta - deltas[i]);
                        deltas[i] = delta;
                    }
                    (t_delta, cnt_delta, zcnt_delta) = (td, cd, zd);
                }
                (t0, cnt, zcnt) = (*t, h.count, h.zero_count);
                buckets = all;
            }
            1 + 3 + b.len()
        }

        /// As [`int_chunk_len`] for Prometheus's float histogram chunks.
        pub fn float_chunk_len(samples: &[(i64, FloatHistogram)]) -> usize {
            let mut b = BitWriter::default();
            let (mut t0, mut t_delta) = (0i64, 0i64);
            let mut fields: Vec<XorField> = Vec::new();
            for (n, (t, h)) in samples.iter().enumerate() {
                let values: Vec<f64> = [h.count, h.zero_count, h.sum]
                    .into_iter()
                    .chain(h.positive_buckets.iter().copied())
                    .chain(h.negative_buckets.iter().copied())
                    .collect();
                if n == 0 {
                    let layout = Layout::new(
                        h.schema,
                        h.zero_threshold,
                        &h.positive_spans,
                        &h.negative_spans,
                        &h.custom_values,
                    );
                    put_layout(&mut b, &layout);
                    put_varbit_int(&mut b, *t);
                    for v in &values {
                        b.write(v.to_bits(), 64);
                        fields.push(XorField {
                            last: v.to_bits(),
                            ..XorField::default()
                        });
                    }
                } else {
                    let td = t - t0;
                    put_varbit_int(&mut b, td - t_delta);
                    t_delta = td;
                    for (x, v) in fields.iter_mut().zip(&values) {
                        x.write(&mut b, v.to_bits());
                    }
                }
                t0 = *t;
            }
            1 + 3 + b.len()
        }
    }

    fn encode(samples: &[(i64, Histogram)]) -> Vec<u8> {
        let mut encoder = HistogramChunkEncoder::default();
        for (t, h) in samples {
            assert_eq!(encoder.append(*t, h), Ok(AppendOutcome::Appended), "at {t}");
        }
        encoder.bytes()
    }

    fn encode_float(samples: &[(i64, FloatHistogram)]) -> Vec<u8> {
        let mut encoder = FloatHistogramChunkEncoder::default();
        for (t, h) in samples {
            assert_eq!(encoder.append(*t, h), Ok(AppendOutcome::Appended), "at {t}");
        }
        encoder.bytes()
    }

    /// What a decoded sample must be: the same histogram (stale markers
    /// keep only their sum), the first hint as appended, later ones as
    /// Prometheus's iterators give them.
    fn check_decoded(samples: &[(i64, Histogram)], decoded: &[(i64, Histogram)]) {
        assert_eq!(decoded.len(), samples.len());
        let chunk_hint = samples.first().map(|(_, h)| h.counter_reset_hint);
        for (n, ((t, h), (dt, d))) in samples.iter().zip(decoded).enumerate() {
            assert_eq!(t, dt);
            if is_stale_nan(h.sum) {
                assert!(is_stale_nan(d.sum), "sample {n} not stale");
                continue;
            }
            assert!(h.equals(d), "sample {n}: {h:?} != {d:?}");
            let hint = sample_hint(chunk_hint.expect("samples"), n);
            assert_eq!(d.counter_reset_hint, hint, "sample {n}");
        }
    }

    fn check_decoded_float(samples: &[(i64, FloatHistogram)], decoded: &[(i64, FloatHistogram)]) {
        assert_eq!(decoded.len(), samples.len());
        let chunk_hint = samples.first().map(|(_, h)| h.counter_reset_hint);
        for (n, ((t, h), (dt, d))) in samples.iter().zip(decoded).enumerate() {
            assert_eq!(t, dt);
            if is_stale_nan(h.sum) {
                assert!(is_stale_nan(d.sum), "sample {n} not stale");
                continue;
            }
            assert!(h.equals(d), "sample {n}: {h:?} != {d:?}");
            let hint = sample_hint(chunk_hint.expect("samples"), n);
            assert_eq!(d.counter_reset_hint, hint, "sample {n}");
        }
    }

    fn round_trip(samples: &[(i64, Histogram)]) -> Vec<u8> {
        let bytes = encode(samples);
        check_decoded(samples, &decode_histograms(&bytes).unwrap());
        let floats: Vec<(i64, FloatHistogram)> =
            samples.iter().map(|(t, h)| (*t, h.to_float())).collect();
        let float_bytes = encode_float(&floats);
        check_decoded_float(&floats, &decode_float_histograms(&float_bytes).unwrap());
        bytes
    }

    #[test]
    #[allow(clippy::print_stdout)]
    fn bytes_per_sample_against_prometheus() {
        let shapes = [
            ("latency, schema 3", latency_series()),
            ("sparse, schema 1, both signs", sparse_series()),
            ("NHCB, 11 bounds", nhcb_series()),
        ];
        println!("| series | buckets | ours B/sample | Prometheus B/sample | ratio |");
        let (mut ours_total, mut theirs_total) = (0, 0);
        for (name, samples) in &shapes {
            let ours = round_trip(samples).len();
            let theirs = prometheus::int_chunk_len(samples);
            let per = |b: usize| b as f64 / samples.len() as f64;
            let h = &samples[0].1;
            println!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} |",
                h.positive_buckets.len() + h.negative_buckets.len(),
                per(ours),
                per(theirs),
                ours as f64 / theirs as f64
            );
            ours_total += ours;
            theirs_total += theirs;
            assert!(ours < theirs, "{name}: {ours} >= {theirs}");
        }
        // Float histograms: the latency series as floats (integral counts),
        // and its per-second rate (fractional), as recording rules store it.
        let latency = &shapes[0].1;
        let as_floats: Vec<(i64, FloatHistogram)> =
            latency.iter().map(|(t, h)| (*t, h.to_float())).collect();
        let rates: Vec<(i64, FloatHistogram)> = as_floats
            .windows(2)
            .map(|w| {
                let mut h = w[1].1.clone();
                let scale = |a: f64, b: f64| (a - b) / 15.0;
                h.count = scale(h.count, w[0].1.count);
                h.zero_count = scale(h.zero_count, w[0].1.zero_count);
                h.sum = scale(h.sum, w[0].1.sum);
                for (a, b) in h.positive_buckets.iter_mut().zip(&w[0].1.positive_buckets) {
                    *a = scale(*a, *b);
                }
                h.counter_reset_hint = CounterResetHint::Gauge;
                (w[1].0, h)
            })
            .collect();
        for (name, samples) in [
            ("latency as floats", &as_floats),
            ("latency rate, gauge", &rates),
        ] {
            let ours = encode_float(samples);
            check_decoded_float(samples, &decode_float_histograms(&ours).unwrap());
            let theirs = prometheus::float_chunk_len(samples);
            let per = |b: usize| b as f64 / samples.len() as f64;
            println!(
                "| {name} (float) | {} | {:.2} | {:.2} | {:.2} |",
                samples[0].1.positive_buckets.len(),
                per(ours.len()),
                per(theirs),
                ours.len() as f64 / theirs as f64
            );
            // Fractional counts are XOR'd as Prometheus does, plus a bit a sample.
            assert!(
                ours.len() * 100 <= theirs * 101,
                "{name}: {} > {theirs}",
                ours.len()
            );
        }
        println!(
            "integer histograms in total: {:.2}x Prometheus",
            ours_total as f64 / theirs_total as f64
        );
    }

    /// A histogram with the given absolute counts per side.
    fn histogram(schema: i32, positive: &[(i32, u64)], negative: &[(i32, u64)]) -> Histogram {
        let (positive_spans, positive_buckets) = spans_and_deltas(positive);
        let (negative_spans, negative_buckets) = spans_and_deltas(negative);
        let zero_count = if schema == CUSTOM_BUCKETS_SCHEMA {
            0
        } else {
            3
        };
        let count = positive.iter().chain(negative).map(|b| b.1).sum::<u64>() + zero_count;
        Histogram {
            schema,
            zero_threshold: if schema == CUSTOM_BUCKETS_SCHEMA {
                0.0
            } else {
                0.001
            },
            zero_count,
            count,
            sum: count as f64 * 0.37,
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            custom_values: if schema == CUSTOM_BUCKETS_SCHEMA {
                vec![0.1, 0.2, 0.5, 1.0, 1e300]
            } else {
                Vec::new()
            },
            ..Histogram::default()
        }
    }

    /// `n` samples of `h` growing like a counter, 15 s apart.
    fn growing(h: &Histogram, n: usize) -> Vec<(i64, Histogram)> {
        (0..n)
            .map(|i| {
                let mut h = h.clone();
                let grow = (i * i + i % 5) as u64;
                // Adding to the first delta adds to every bucket of the side.
                let buckets = (h.positive_buckets.len() + h.negative_buckets.len()) as u64;
                h.count += grow * (buckets + 1);
                h.zero_count += grow;
                if let Some(first) = h.positive_buckets.first_mut() {
                    *first += grow as i64;
                }
                if let Some(first) = h.negative_buckets.first_mut() {
                    *first += grow as i64;
                }
                h.sum += grow as f64 / 7.0;
                (1_000 + i as i64 * 15_000, h)
            })
            .collect()
    }

    #[test]
    fn every_schema_round_trips() {
        for schema in (-4..=8).chain([CUSTOM_BUCKETS_SCHEMA]) {
            let negative: &[(i32, u64)] = if schema == CUSTOM_BUCKETS_SCHEMA {
                &[]
            } else {
                &[(-3, 1), (-2, 4), (5, 9)]
            };
            let h = histogram(schema, &[(0, 2), (1, 7), (4, 1)], negative);
            h.validate().unwrap();
            round_trip(&growing(&h, SAMPLES_PER_CHUNK));
        }
    }

    #[test]
    fn odd_values_round_trip_exactly() {
        let base = histogram(3, &[(-10, 5), (-9, 0), (20, 1)], &[(2, 8)]);
        let empty = Histogram {
            schema: 0,
            ..Histogram::default()
        };
        round_trip(&growing(&empty, 10));
        let mut samples = growing(&base, 20);
        // NaN sums (of NaN observations), negative zero, infinities: bit for bit.
        samples[3].1.sum = f64::NAN;
        samples[4].1.sum = f64::from_bits(0x7ff8_dead_beef_0001);
        samples[5].1.sum = -0.0;
        samples[6].1.sum = f64::NEG_INFINITY;
        round_trip(&samples);
        // Huge counts, growing by huge steps, and an irregular clock.
        let mut huge = base.clone();
        huge.count = (1 << 62) + 17;
        huge.zero_count = 1 << 61;
        huge.positive_buckets[0] = 1 << 60;
        let mut samples = growing(&huge, 30);
        for (i, (t, h)) in samples.iter_mut().enumerate() {
            *t += (i as i64).pow(5) * 1_000_003;
            h.count += (i as u64) << 55;
            h.positive_buckets[0] += (i as i64) << 55;
        }
        round_trip(&samples);
        // Zero thresholds that are not powers of two, and negative timestamps.
        let mut odd = base;
        odd.zero_threshold = 0.3;
        let samples: Vec<_> = growing(&odd, 5)
            .into_iter()
            .map(|(t, h)| (t - 1_000_000_000, h))
            .collect();
        round_trip(&samples);
    }

    #[test]
    fn the_first_hint_is_kept_and_later_ones_read_as_prometheus_reads_them() {
        let h = histogram(2, &[(1, 3), (2, 4)], &[]);
        for hint in [
            CounterResetHint::Unknown,
            CounterResetHint::NotCounterReset,
            CounterResetHint::CounterReset,
            CounterResetHint::Gauge,
        ] {
            let mut samples = growing(&h, 5);
            for (_, s) in &mut samples {
                s.counter_reset_hint = if hint == CounterResetHint::Gauge {
                    hint
                } else {
                    CounterResetHint::Unknown
                };
            }
            samples[0].1.counter_reset_hint = hint;
            let decoded = decode_histograms(&round_trip(&samples)).unwrap();
            assert_eq!(decoded[0].1.counter_reset_hint, hint);
            let later = if hint == CounterResetHint::Gauge {
                hint
            } else {
                CounterResetHint::NotCounterReset
            };
            assert_eq!(decoded[4].1.counter_reset_hint, later);
        }
        // Gauge histograms go up and down within a chunk.
        let mut samples = growing(&h, 6);
        samples.reverse();
        for (i, (t, s)) in samples.iter_mut().enumerate() {
            *t = i as i64;
            s.counter_reset_hint = CounterResetHint::Gauge;
        }
        round_trip(&samples);
    }

    #[test]
    fn stale_markers_keep_their_bits_and_end_the_chunk_for_other_samples() {
        let h = histogram(0, &[(0, 1), (3, 2)], &[]);
        let stale = Histogram {
            sum: stale_nan(),
            ..Histogram::default()
        };
        let mut samples = growing(&h, 4);
        samples.push((100_000, stale.clone()));
        samples.push((115_000, stale.clone()));
        round_trip(&samples);
        let mut encoder = HistogramChunkEncoder::default();
        for (t, s) in &samples {
            encoder.append(*t, s).unwrap();
        }
        assert_eq!(
            encoder.append(130_000, &h),
            Ok(AppendOutcome::NewChunkNeeded {
                reason: CutReason::AfterStale
            })
        );
        // A chunk may start with a stale marker.
        round_trip(&[(5, stale.clone()), (6, stale)]);
    }

    fn outcome(first: &Histogram, next: &Histogram) -> AppendOutcome {
        let mut encoder = HistogramChunkEncoder::default();
        assert_eq!(encoder.append(1, first), Ok(AppendOutcome::Appended));
        let before = encoder.bytes();
        let outcome = encoder.append(2, next).unwrap();
        if outcome != AppendOutcome::Appended {
            assert_eq!(encoder.bytes(), before, "a refused sample writes nothing");
            assert_eq!(encoder.len(), 1);
        }
        let mut floats = FloatHistogramChunkEncoder::default();
        floats.append(1, &first.to_float()).unwrap();
        assert_eq!(
            floats.append(2, &next.to_float()),
            Ok(outcome),
            "float chunk"
        );
        outcome
    }

    fn cut(reason: CutReason) -> AppendOutcome {
        AppendOutcome::NewChunkNeeded { reason }
    }

    #[test]
    fn layout_changes_and_resets_need_a_new_chunk() {
        let h = histogram(3, &[(1, 5), (2, 0), (7, 3)], &[(0, 4)]);
        let grown = histogram(3, &[(1, 6), (2, 0), (7, 3)], &[(0, 4)]);
        assert_eq!(outcome(&h, &grown), AppendOutcome::Appended);
        // A bucket went down, the count went down, the zero bucket went down.
        assert_eq!(outcome(&grown, &h), cut(CutReason::CounterReset));
        let mut fewer = grown.clone();
        fewer.count -= 1;
        fewer.zero_count -= 1;
        assert_eq!(outcome(&h, &fewer), cut(CutReason::CounterReset));
        // A populated bucket vanished; an empty one may.
        let vanished = histogram(3, &[(1, 6), (2, 0)], &[(0, 4)]);
        assert_eq!(outcome(&h, &vanished), cut(CutReason::CounterReset));
        let empty_gone = histogram(3, &[(1, 6), (7, 3)], &[(0, 4)]);
        assert_eq!(outcome(&h, &empty_gone), cut(CutReason::LayoutChanged));
        // New buckets, another schema, another zero threshold.
        let more = histogram(3, &[(1, 5), (2, 0), (7, 3), (9, 1)], &[(0, 4)]);
        assert_eq!(outcome(&h, &more), cut(CutReason::LayoutChanged));
        let mut schema = grown.clone();
        schema.schema = 2;
        assert_eq!(outcome(&h, &schema), cut(CutReason::LayoutChanged));
        let mut threshold = grown.clone();
        threshold.zero_threshold = 0.01;
        assert_eq!(outcome(&h, &threshold), cut(CutReason::LayoutChanged));
        // Hints.
        let mut reset = grown.clone();
        reset.counter_reset_hint = CounterResetHint::CounterReset;
        assert_eq!(outcome(&h, &reset), cut(CutReason::CounterReset));
        let mut gauge = grown;
        gauge.counter_reset_hint = CounterResetHint::Gauge;
        assert_eq!(outcome(&h, &gauge), cut(CutReason::GaugeChanged));
        // Other custom bounds are a reset.
        let nhcb = histogram(CUSTOM_BUCKETS_SCHEMA, &[(0, 1), (1, 2)], &[]);
        let mut bounds = nhcb.clone();
        bounds.custom_values[0] = 0.05;
        assert_eq!(outcome(&nhcb, &bounds), cut(CutReason::CounterReset));
    }

    #[test]
    fn histograms_that_cannot_be_stored_are_errors() {
        let h = histogram(3, &[(1, 5)], &[]);
        let mut encoder = HistogramChunkEncoder::default();
        encoder.append(10, &h).unwrap();
        assert_eq!(
            encoder.append(10, &h),
            Err(HistogramChunkError::OutOfOrder { t: 10, last: 10 })
        );
        let mut bad = h;
        bad.positive_buckets.push(1);
        assert_eq!(
            encoder.append(20, &bad),
            Err(HistogramChunkError::SpansBucketsMismatch {
                side: "positive",
                needed: 1,
                have: 2
            })
        );
    }

    #[test]
    fn a_chunk_is_full_before_decoders_would_refuse_it() {
        let many: Vec<(i32, u64)> = (0..20_000).map(|i| (i, 1)).collect();
        let h = histogram(0, &many, &[]);
        let mut encoder = HistogramChunkEncoder::default();
        let mut t = 0;
        while encoder.append(t, &h) == Ok(AppendOutcome::Appended) {
            t += 1;
        }
        assert_eq!(encoder.append(t, &h), Ok(cut(CutReason::Full)));
        assert_eq!(
            decode_histograms(&encoder.bytes()).unwrap().len(),
            encoder.len()
        );
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        let bytes = encode(&latency_series());
        for len in [0, 3, 4, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_histograms(&bytes[..len]).is_err(), "{len}");
        }
        assert!(decode_float_histograms(&bytes).is_err(), "wrong encoding");
        // A layout claiming more buckets than a chunk may hold.
        let mut bits = BitWriter::default();
        write_svar(&mut bits, 0);
        write_zero_threshold(&mut bits, 0.0);
        write_uvar(&mut bits, 1);
        write_svar(&mut bits, 0);
        write_uvar(&mut bits, u64::from(u32::MAX));
        let mut chunk = vec![HISTOGRAM, 0, 1, 0];
        chunk.extend_from_slice(bits.bytes());
        assert_eq!(
            decode_histograms(&chunk),
            Err(CorruptChunk("too many buckets"))
        );
    }

    fn histogram_strategy() -> impl Strategy<Value = Vec<(i64, FloatHistogram)>> {
        let count = prop_oneof![
            (0u32..1000).prop_map(f64::from),
            (0u64..u64::MAX >> 8).prop_map(|v| v as f64),
            any::<f64>(),
            Just(-0.0),
        ];
        let layout = (
            prop_oneof![-4i32..=8, Just(CUSTOM_BUCKETS_SCHEMA)],
            proptest::collection::vec((0i32..4, 1u32..4), 0..4),
            proptest::collection::vec((0i32..4, 1u32..4), 0..3),
        );
        (layout, 1usize..40, any::<bool>()).prop_flat_map(move |((schema, pos, neg), n, gauge)| {
            let spans = |v: &[(i32, u32)]| -> Vec<Span> {
                v.iter()
                    .map(|&(offset, length)| Span { offset, length })
                    .collect()
            };
            let custom = schema == CUSTOM_BUCKETS_SCHEMA;
            let (pos, neg) = (spans(&pos), if custom { Vec::new() } else { spans(&neg) });
            let fields = 3 + span_buckets(&pos) as usize + span_buckets(&neg) as usize;
            proptest::collection::vec(
                (
                    proptest::collection::vec(count.clone(), fields),
                    1i64..100_000,
                ),
                n,
            )
            .prop_map(move |samples| {
                let mut t = 0;
                samples
                    .into_iter()
                    .map(|(values, step)| {
                        t += step;
                        let n_pos = span_buckets(&pos) as usize;
                        let h = FloatHistogram {
                            counter_reset_hint: if gauge {
                                CounterResetHint::Gauge
                            } else {
                                CounterResetHint::Unknown
                            },
                            schema,
                            zero_threshold: if custom { 0.0 } else { 0.25 },
                            zero_count: if custom { 0.0 } else { values[1] },
                            count: values[0],
                            sum: values[2],
                            positive_spans: pos.clone(),
                            negative_spans: neg.clone(),
                            positive_buckets: values[3..3 + n_pos].to_vec(),
                            negative_buckets: values[3 + n_pos..].to_vec(),
                            custom_values: if custom {
                                vec![1.0, 2.5, 100.0]
                            } else {
                                Vec::new()
                            },
                        };
                        (t, h)
                    })
                    .collect()
            })
        })
    }

    /// Appends until the chunk asks for a new one; returns what went in.
    fn fill<H: Clone>(
        samples: &[(i64, H)],
        mut append: impl FnMut(i64, &H) -> AppendOutcome,
    ) -> Vec<(i64, H)> {
        samples
            .iter()
            .take_while(|(t, h)| append(*t, h) == AppendOutcome::Appended)
            .cloned()
            .collect()
    }

    proptest! {
        #[test]
        fn float_chunks_round_trip(samples in histogram_strategy()) {
            let mut encoder = FloatHistogramChunkEncoder::default();
            let kept = fill(&samples, |t, h| encoder.append(t, h).unwrap());
            prop_assert!(!kept.is_empty());
            check_decoded_float(&kept, &decode_float_histograms(&encoder.bytes()).unwrap());
        }

        #[test]
        fn integer_chunks_round_trip(samples in histogram_strategy()) {
            // Integers from the same shapes: counts as u64, buckets as deltas.
            let ints: Vec<(i64, Histogram)> = samples
                .iter()
                .map(|(t, f)| {
                    let deltas = |v: &[f64]| {
                        let mut previous = 0i64;
                        v.iter()
                            .map(|&c| {
                                let c = c as i64;
                                let d = c.wrapping_sub(previous);
                                previous = c;
                                d
                            })
                            .collect()
                    };
                    let h = Histogram {
                        counter_reset_hint: f.counter_reset_hint,
                        schema: f.schema,
                        zero_threshold: f.zero_threshold,
                        zero_count: f.zero_count as u64,
                        count: f.count as u64,
                        sum: f.sum,
                        positive_spans: f.positive_spans.clone(),
                        negative_spans: f.negative_spans.clone(),
                        positive_buckets: deltas(&f.positive_buckets),
                        negative_buckets: deltas(&f.negative_buckets),
                        custom_values: f.custom_values.clone(),
                    };
                    (*t, h)
                })
                .collect();
            let mut encoder = HistogramChunkEncoder::default();
            let kept = fill(&ints, |t, h| encoder.append(t, h).unwrap());
            prop_assert!(!kept.is_empty());
            check_decoded(&kept, &decode_histograms(&encoder.bytes()).unwrap());
        }

        #[test]
        fn corrupt_chunks_error_instead_of_panicking(
            encoding in prop_oneof![Just(HISTOGRAM), Just(FLOAT_HISTOGRAM)],
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut chunk = vec![encoding];
            chunk.extend_from_slice(&bytes);
            let _ = decode_histograms(&chunk);
            let _ = decode_float_histograms(&chunk);
        }

        #[test]
        fn flipped_bits_error_instead_of_panicking(flip in 0usize..4000) {
            let mut bytes = encode(&sparse_series()[..30]);
            let n = bytes.len();
            bytes[(flip / 8) % n] ^= 1 << (flip % 8);
            let _ = decode_histograms(&bytes);
        }
    }
}
