//! Compressed sample chunks: delta-of-delta timestamps and XOR'd floats, as in
//! Facebook's Gorilla paper (and Prometheus's XOR chunks).
//!
//! A chunk is `[encoding: u8][sample count: u16 big-endian][bit stream]`. In
//! both encodings the first timestamp is written whole and each later one as
//! the change in its delta, in the smallest of five buckets (one bit when
//! scrapes are regular). Values are written either
//! - [`XOR`]: as their XOR with the previous value, reusing the previous window
//!   of meaningful bits when it fits (Gorilla); or
//! - [`DECIMAL`]: when every value of the chunk is a decimal with at most 15
//!   fractional digits (`12345.67`, `1048576`), as integers scaled by a common
//!   power of ten, each written as its delta (or delta-of-delta, whichever is
//!   smaller for the chunk) in variable-width buckets. Counters and gauges as
//!   exporters print them shrink to a few bits a sample; decoding divides by
//!   the same power of ten, which gives back the identical `f64` bits (checked
//!   for every sample when encoding; any doubt falls back to XOR).
//!
//! The head appends to an [`OpenChunk`] as samples arrive (scaled-decimal
//! while every value allows, XOR otherwise) and re-encodes it with
//! [`encode_best`] when it is sealed; blocks are written with [`encode_best`].

use sextant_model::Sample;

use super::bits::{BitBuffer, BitReader, BitWriter};

/// Samples per head chunk before it is sealed: Prometheus's figure, where the
/// compression ratio flattens out.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Encoding byte of a Gorilla XOR chunk.
pub const XOR: u8 = 1;
/// Encoding byte of a scaled-decimal chunk.
pub const DECIMAL: u8 = 2;
/// Encoding byte of a packed chunk: timestamps apart from values, either in
/// the chunk or shared with other chunks of a block (a timestamp column in
/// its index); values XOR'd or as Rice-coded scaled decimals.
pub const PACKED: u8 = 5;

/// Builds a chunk one sample at a time. Timestamps must strictly increase.
#[derive(Debug, Clone, Default)]
pub struct ChunkEncoder {
    bits: BitWriter,
    count: u16,
    last_t: i64,
    last_delta: i64,
    last_value: u64,
    leading: u8,
    trailing: u8,
}

impl ChunkEncoder {
    /// Appends a sample whose timestamp is later than the last one's.
    pub fn append(&mut self, t: i64, v: f64) {
        let bits = v.to_bits();
        match self.count {
            0 => {
                self.bits.write(t as u64, 64);
                self.bits.write(bits, 64);
                // No meaningful-bit window yet: force the first XOR to write its own.
                self.leading = u8::MAX;
            }
            _ => {
                debug_assert!(t > self.last_t, "chunk timestamps must increase");
                let delta = t.wrapping_sub(self.last_t);
                self.write_dod(delta.wrapping_sub(self.last_delta));
                self.last_delta = delta;
                self.write_xor(bits);
            }
        }
        self.last_t = t;
        self.last_value = bits;
        self.count += 1;
    }

    fn write_dod(&mut self, dod: i64) {
        write_bucketed(&mut self.bits, dod, TIME_WIDTHS);
    }

    fn write_xor(&mut self, bits: u64) {
        write_xor(
            &mut self.bits,
            bits ^ self.last_value,
            &mut self.leading,
            &mut self.trailing,
        );
    }

    /// Samples appended.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// First timestamp (meaningless when empty).
    pub fn min_time(&self) -> i64 {
        // The chunk starts with it: a field would cost every open chunk 8 bytes.
        self.bits
            .bytes()
            .first_chunk::<8>()
            .map_or(0, |b| i64::from_be_bytes(*b))
    }

    /// Last timestamp (meaningless when empty).
    pub fn max_time(&self) -> i64 {
        self.last_t
    }

    /// The last sample appended.
    pub fn last(&self) -> Option<Sample> {
        (self.count > 0).then(|| Sample {
            timestamp_ms: self.last_t,
            value: f64::from_bits(self.last_value),
        })
    }

    /// The encoded chunk so far.
    /// Decodes the samples so far without copying the chunk.
    pub fn decode_into(&self, out: &mut Vec<Sample>) -> Result<(), CorruptChunk> {
        if self.count == 0 {
            return Ok(());
        }
        out.reserve(usize::from(self.count));
        decode_xor(self.bits.bytes(), self.count, out)
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.bits.len());
        out.push(XOR);
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(self.bits.bytes());
        out
    }
}

/// Writes one value's XOR with the previous, reusing the previous window of
/// meaningful bits (`leading`, `trailing`; `u8::MAX` leading: none yet) when
/// it fits.
pub(super) fn write_xor(
    bits: &mut BitWriter,
    xor: u64,
    leading_window: &mut u8,
    trailing_window: &mut u8,
) {
    if xor == 0 {
        bits.bit(false);
        return;
    }
    bits.bit(true);
    let leading = (xor.leading_zeros() as u8).min(31);
    let trailing = xor.trailing_zeros() as u8;
    if *leading_window != u8::MAX && leading >= *leading_window && trailing >= *trailing_window {
        bits.bit(false);
        let width = 64 - *leading_window - *trailing_window;
        bits.write(xor >> *trailing_window, width);
    } else {
        *leading_window = leading;
        *trailing_window = trailing;
        let width = 64 - leading - trailing;
        bits.bit(true);
        bits.write(u64::from(leading), 5);
        // 64 meaningful bits do not fit in 6 bits; 0 stands for 64.
        bits.write(u64::from(width % 64), 6);
        bits.write(xor >> trailing, width);
    }
}

/// Reads what [`write_xor`] wrote: the next value after `value`.
#[inline]
fn read_xor(
    bits: &mut BitReader<'_>,
    value: u64,
    leading: &mut u8,
    trailing: &mut u8,
) -> Result<u64, CorruptChunk> {
    let truncated = || CorruptChunk("truncated");
    if !bits.bit().ok_or_else(truncated)? {
        return Ok(value);
    }
    if bits.bit().ok_or_else(truncated)? {
        *leading = bits.read(5).ok_or_else(truncated)? as u8;
        let width = match bits.read(6).ok_or_else(truncated)? as u8 {
            0 => 64,
            w => w,
        };
        if u32::from(*leading) + u32::from(width) > 64 {
            return Err(CorruptChunk("value window out of range"));
        }
        *trailing = 64 - *leading - width;
    }
    let width = 64 - *leading - *trailing;
    let xor = bits.read(width).ok_or_else(truncated)?;
    Ok(value ^ (xor << *trailing))
}

/// The chunk a head series appends to: [`DECIMAL`] (first-order deltas)
/// while every value is a decimal (the scale widened, and the chunk
/// re-encoded, when a value needs more digits), [`XOR`] from the first
/// value that is not (a stale marker, say). Exporters' counters and gauges
/// take about two thirds of the bytes they take as XOR, and a head holds
/// one open chunk per series.
#[derive(Debug, Clone, Default)]
pub struct OpenChunk {
    bits: BitWriter,
    count: u16,
    /// The decimal scale's digits plus one; 0 for XOR.
    decimal: u8,
    leading: u8,
    trailing: u8,
    last_t: i64,
    last_delta: i64,
    /// XOR: the last value's bits; decimal: the last scaled value.
    last_value: u64,
}

impl OpenChunk {
    /// Appends a sample whose timestamp is later than the last one's.
    pub fn append(&mut self, t: i64, v: f64) {
        if self.count == 0 {
            self.start(t, v, decimal_digits(v));
            return;
        }
        debug_assert!(t > self.last_t, "chunk timestamps must increase");
        let value = match self.decimal {
            0 => None,
            d => Some(scaled(v, usize::from(d - 1))),
        };
        match value {
            Some(None) => self.recode(t, v),
            Some(Some(m)) => {
                self.write_time(t);
                let delta = m.wrapping_sub(self.last_value as i64);
                write_bucketed(&mut self.bits, delta, VALUE_WIDTHS);
                self.last_value = m as u64;
                self.count += 1;
            }
            None => {
                self.write_time(t);
                let bits = v.to_bits();
                write_xor(
                    &mut self.bits,
                    bits ^ self.last_value,
                    &mut self.leading,
                    &mut self.trailing,
                );
                self.last_value = bits;
                self.count += 1;
            }
        }
    }

    /// The first sample of an empty chunk: scaled by `digits` (which must
    /// represent `v`), or XOR.
    fn start(&mut self, t: i64, v: f64, digits: Option<usize>) {
        match digits.and_then(|d| Some((d, scaled(v, d)?))) {
            Some((d, m)) => {
                self.bits.write(d as u64, 4);
                // First-order deltas: the second-order flag off.
                self.bits.bit(false);
                self.bits.write(t as u64, 64);
                self.bits.write(m as u64, 64);
                self.decimal = d as u8 + 1;
                self.last_value = m as u64;
            }
            None => {
                self.bits.write(t as u64, 64);
                self.bits.write(v.to_bits(), 64);
                // No meaningful-bit window yet: force the first XOR to write its own.
                self.leading = u8::MAX;
                self.decimal = 0;
                self.last_value = v.to_bits();
            }
        }
        self.last_t = t;
        self.last_delta = 0;
        self.count = 1;
    }

    fn write_time(&mut self, t: i64) {
        write_time_change(&mut self.bits, t, &mut self.last_t, &mut self.last_delta);
    }

    /// Appends a value the decimal scale cannot hold: every sample again,
    /// on the scale that holds them all, or as XOR when none does.
    fn recode(&mut self, t: i64, v: f64) {
        let mut samples = Vec::with_capacity(self.len() + 1);
        self.decode_into(&mut samples)
            .expect("an open chunk decodes");
        samples.push(Sample {
            timestamp_ms: t,
            value: v,
        });
        // Only a scale every value passes, so the appends below never recode.
        let digits = samples
            .iter()
            .map(|s| decimal_digits(s.value))
            .try_fold(0, |max, d| d.map(|d| max.max(d)))
            .filter(|&d| samples.iter().all(|s| scaled(s.value, d).is_some()));
        *self = Self::default();
        self.start(samples[0].timestamp_ms, samples[0].value, digits);
        for s in &samples[1..] {
            self.append(s.timestamp_ms, s.value);
        }
    }

    /// Samples appended.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// First timestamp (meaningless when empty).
    pub fn min_time(&self) -> i64 {
        // The chunk holds it (after the scale, when decimal): a field would
        // cost every open chunk 8 bytes.
        let mut bits = BitReader::new(self.bits.bytes());
        if self.decimal > 0 {
            bits.read(5);
        }
        bits.read(64).unwrap_or(0) as i64
    }

    /// Last timestamp (meaningless when empty).
    pub fn max_time(&self) -> i64 {
        self.last_t
    }

    /// Decodes the samples so far without copying the chunk.
    pub fn decode_into(&self, out: &mut Vec<Sample>) -> Result<(), CorruptChunk> {
        if self.count == 0 {
            return Ok(());
        }
        out.reserve(usize::from(self.count));
        match self.decimal {
            0 => decode_xor(self.bits.bytes(), self.count, out),
            _ => decode_decimal(self.bits.bytes(), self.count, out),
        }
    }

    /// The encoded chunk so far.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.bits.len());
        out.push(if self.decimal == 0 { XOR } else { DECIMAL });
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(self.bits.bytes());
        out
    }
}

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt chunk: {0}")]
pub struct CorruptChunk(pub &'static str);

/// Decodes every sample of a chunk.
pub fn decode(chunk: &[u8]) -> Result<Vec<Sample>, CorruptChunk> {
    let mut out = Vec::new();
    decode_into(chunk, &mut out)?;
    Ok(out)
}

/// Decodes every sample of a chunk, appending to `out`. A packed chunk
/// whose timestamps are a block's column is refused: see [`decode_in_block`].
pub fn decode_into(chunk: &[u8], out: &mut Vec<Sample>) -> Result<(), CorruptChunk> {
    decode_in_block(chunk, &[], out)
}

/// Decodes every sample of a chunk of a block whose timestamp columns are
/// `columns`, appending to `out`.
pub fn decode_in_block(
    chunk: &[u8],
    columns: &[Vec<i64>],
    out: &mut Vec<Sample>,
) -> Result<(), CorruptChunk> {
    let (&encoding, rest) = chunk.split_first().ok_or(CorruptChunk("empty"))?;
    let header: [u8; 2] = rest
        .get(..2)
        .and_then(|h| h.try_into().ok())
        .ok_or(CorruptChunk("no header"))?;
    let count = u16::from_be_bytes(header);
    if count == 0 {
        return Ok(());
    }
    out.reserve(usize::from(count));
    match encoding {
        XOR => decode_xor(&rest[2..], count, out),
        DECIMAL => decode_decimal(&rest[2..], count, out),
        PACKED => decode_packed(&rest[2..], count, columns, out),
        _ => Err(CorruptChunk("unknown encoding")),
    }
}

fn decode_xor(stream: &[u8], count: u16, out: &mut Vec<Sample>) -> Result<(), CorruptChunk> {
    let truncated = CorruptChunk("truncated");
    let mut bits = BitReader::new(stream);
    let mut t = bits.read(64).ok_or(truncated.clone())? as i64;
    let mut value = bits.read(64).ok_or(truncated.clone())?;
    out.push(Sample {
        timestamp_ms: t,
        value: f64::from_bits(value),
    });
    let mut delta = 0i64;
    let mut leading = 0u8;
    let mut trailing = 0u8;
    for _ in 1..count {
        let dod = read_bucketed(&mut bits, TIME_WIDTHS).ok_or(truncated.clone())?;
        delta = delta.wrapping_add(dod);
        t = t.wrapping_add(delta);
        value = read_xor(&mut bits, value, &mut leading, &mut trailing)?;
        out.push(Sample {
            timestamp_ms: t,
            value: f64::from_bits(value),
        });
    }
    Ok(())
}

/// Powers of ten exactly representable as `f64`.
pub(super) const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
/// Scaled values must stay within the integers an `f64` holds exactly.
const MAX_SCALED: f64 = 9_007_199_254_740_992.0;

/// The scaled integer of `v` at `digits` fractional digits, if it decodes back
/// to exactly `v`.
pub(super) fn scaled(v: f64, digits: usize) -> Option<i64> {
    let m = (v * POW10[digits]).round();
    if !m.is_finite() || m.abs() >= MAX_SCALED {
        return None;
    }
    // Check what decoding will compute: the integer, converted back, divided.
    let m = m as i64;
    ((m as f64) / POW10[digits])
        .to_bits()
        .eq(&v.to_bits())
        .then_some(m)
}

/// The fewest fractional digits that represent `v` exactly, if any up to 15.
pub(super) fn decimal_digits(v: f64) -> Option<usize> {
    (0..POW10.len()).find(|&d| scaled(v, d).is_some())
}

/// Encodes samples (strictly increasing timestamps) in whichever encoding is
/// smallest. The others are sized, not written.
pub fn encode_best(samples: &[Sample]) -> Vec<u8> {
    let packed = encode_packed(samples, None);
    let mut best = (packed.len(), None);
    if samples.is_empty() {
        return packed;
    }
    // Gorilla XOR: the header, the first timestamp and value whole, then
    // each timestamp's delta-of-delta and value's XOR.
    let times: u64 = timestamp_changes(samples)
        .map(|dod| bucketed_bits(dod, TIME_WIDTHS))
        .sum();
    let gorilla = 3 + (128 + times + xor_value_bits(samples)).div_ceil(8) as usize;
    if gorilla < best.0 {
        best = (gorilla, Some(None));
    }
    let digits = samples
        .iter()
        .map(|s| decimal_digits(s.value))
        .try_fold(0, |max, d| d.map(|d| max.max(d)));
    let scaled: Option<Vec<i64>> =
        digits.and_then(|digits| samples.iter().map(|s| scaled(s.value, digits)).collect());
    if let (Some(digits), Some(scaled)) = (digits, &scaled) {
        for second_order in [false, true] {
            let values: u64 = value_changes(scaled, second_order)
                .map(|r| bucketed_bits(r, VALUE_WIDTHS))
                .sum();
            let size = 3 + (5 + 128 + times + values).div_ceil(8) as usize;
            if size < best.0 {
                best = (size, Some(Some((digits, second_order))));
            }
        }
    }
    let chunk = match best.1 {
        None => packed,
        Some(None) => {
            let mut xor = ChunkEncoder::default();
            for s in samples {
                xor.append(s.timestamp_ms, s.value);
            }
            xor.bytes()
        }
        Some(Some((digits, second_order))) => encode_decimal(
            samples,
            scaled.as_deref().expect("decimal values"),
            digits,
            second_order,
        ),
    };
    debug_assert_eq!(chunk.len(), best.0, "the size counted is the size written");
    chunk
}

/// Each timestamp's delta-of-delta after the first, as chunks write them.
fn timestamp_changes(samples: &[Sample]) -> impl Iterator<Item = i64> + '_ {
    let (mut last_t, mut last_delta) = (samples[0].timestamp_ms, 0i64);
    samples[1..].iter().map(move |s| {
        let delta = s.timestamp_ms.wrapping_sub(last_t);
        let dod = delta.wrapping_sub(last_delta);
        (last_t, last_delta) = (s.timestamp_ms, delta);
        dod
    })
}

/// Each scaled value's change (or change of its change) after the first,
/// as [`DECIMAL`] chunks write them.
fn value_changes(scaled: &[i64], second_order: bool) -> impl Iterator<Item = i64> + '_ {
    let (mut last, mut last_delta) = (scaled[0], 0i64);
    scaled[1..].iter().map(move |&m| {
        let delta = m.wrapping_sub(last);
        let residual = if second_order {
            delta.wrapping_sub(last_delta)
        } else {
            delta
        };
        (last, last_delta) = (m, delta);
        residual
    })
}

/// Bits [`write_xor`] takes for the values after the first.
fn xor_value_bits(samples: &[Sample]) -> u64 {
    let mut last = samples[0].value.to_bits();
    let (mut leading_window, mut trailing_window) = (u8::MAX, 0u8);
    let mut total = 0;
    for s in &samples[1..] {
        let value = s.value.to_bits();
        let xor = value ^ last;
        last = value;
        if xor == 0 {
            total += 1;
            continue;
        }
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if leading_window != u8::MAX && leading >= leading_window && trailing >= trailing_window {
            total += 2 + u64::from(64 - leading_window - trailing_window);
        } else {
            (leading_window, trailing_window) = (leading, trailing);
            total += 2 + 5 + 6 + u64::from(64 - leading - trailing);
        }
    }
    total
}

fn encode_decimal(
    samples: &[Sample],
    scaled: &[i64],
    digits: usize,
    second_order: bool,
) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.write(digits as u64, 4);
    bits.bit(second_order);
    let (mut last_t, mut last_delta_t) = (0i64, 0i64);
    let (mut last_m, mut last_delta_m) = (0i64, 0i64);
    for (i, (s, &m)) in samples.iter().zip(scaled).enumerate() {
        if i == 0 {
            bits.write(s.timestamp_ms as u64, 64);
            bits.write(m as u64, 64);
        } else {
            let delta_t = s.timestamp_ms.wrapping_sub(last_t);
            write_bucketed(&mut bits, delta_t.wrapping_sub(last_delta_t), TIME_WIDTHS);
            last_delta_t = delta_t;
            let delta_m = m.wrapping_sub(last_m);
            let residual = if second_order {
                delta_m.wrapping_sub(last_delta_m)
            } else {
                delta_m
            };
            write_bucketed(&mut bits, residual, VALUE_WIDTHS);
            last_delta_m = delta_m;
        }
        last_t = s.timestamp_ms;
        last_m = m;
    }
    let mut out = Vec::with_capacity(3 + bits.len());
    out.push(DECIMAL);
    out.extend_from_slice(&(samples.len() as u16).to_be_bytes());
    out.extend_from_slice(bits.bytes());
    out
}

/// Bucket widths of timestamp delta-of-deltas: `0` is one bit, then `10`,
/// `110`, `1110` prefix 14, 17, 20 bits, and `1111` 64.
pub(super) const TIME_WIDTHS: &[u8] = &[14, 17, 20];

/// Writes timestamp `t` as the change of its change from the one before
/// (`last_t`, and `last_delta` between the two before; both moved on).
pub(super) fn write_time_change(
    bits: &mut BitWriter,
    t: i64,
    last_t: &mut i64,
    last_delta: &mut i64,
) {
    let delta = t.wrapping_sub(*last_t);
    write_bucketed(bits, delta.wrapping_sub(*last_delta), TIME_WIDTHS);
    *last_delta = delta;
    *last_t = t;
}
/// Bucket widths of scaled-value residuals: `0`, then `10`..`11110` prefix 7,
/// 14, 24, 40 bits, and `11111` 64.
const VALUE_WIDTHS: &[u8] = &[7, 14, 24, 40];

/// Bits [`write_bucketed`] takes for `x`.
fn bucketed_bits(x: i64, widths: &[u8]) -> u64 {
    if x == 0 {
        return 1;
    }
    for (k, &width) in widths.iter().enumerate() {
        let limit = 1i64 << (width - 1);
        if (-limit..limit).contains(&x) {
            return k as u64 + 2 + u64::from(width);
        }
    }
    widths.len() as u64 + 1 + 64
}

/// Writes a signed integer in the smallest bucket of `widths` that holds it:
/// zero as a single `0`; bucket `k` as `k+1` ones, a zero and `widths[k]`
/// two's-complement bits; anything larger as `widths.len()+1` ones and 64 bits.
pub(super) fn write_bucketed(bits: &mut BitWriter, x: i64, widths: &[u8]) {
    if x == 0 {
        bits.bit(false);
        return;
    }
    for (k, &width) in widths.iter().enumerate() {
        let limit = 1i64 << (width - 1);
        if (-limit..limit).contains(&x) {
            let ones = k as u8 + 1;
            bits.write(((1u64 << ones) - 1) << 1, ones + 1);
            bits.write(x as u64, width);
            return;
        }
    }
    let ones = widths.len() as u8 + 1;
    bits.write((1u64 << ones) - 1, ones);
    bits.write(x as u64, 64);
}

/// Reads what [`write_bucketed`] wrote with the same `widths`.
pub(super) fn read_bucketed(bits: &mut BitReader<'_>, widths: &[u8]) -> Option<i64> {
    // The bucket's unary prefix from one window: up to a zero, or one
    // more one than there are widths (64 bits follow).
    let limit = u8::try_from(widths.len() + 1).expect("a few widths");
    let ones = usize::from(bits.ones(limit)?);
    let width = match ones {
        0 => return Some(0),
        k if k <= widths.len() => widths[k - 1],
        _ => 64,
    };
    let raw = bits.read(width)?;
    // Sign-extend from `width` bits.
    let shift = 64 - u32::from(width);
    Some(((raw << shift) as i64) >> shift)
}

fn decode_decimal(stream: &[u8], count: u16, out: &mut Vec<Sample>) -> Result<(), CorruptChunk> {
    let truncated = CorruptChunk("truncated");
    let mut bits = BitReader::new(stream);
    let digits = bits.read(4).ok_or(truncated.clone())? as usize;
    let scale = *POW10
        .get(digits)
        .ok_or(CorruptChunk("decimal scale out of range"))?;
    let second_order = bits.bit().ok_or(truncated.clone())?;
    let mut t = bits.read(64).ok_or(truncated.clone())? as i64;
    let mut m = bits.read(64).ok_or(truncated.clone())? as i64;
    out.push(Sample {
        timestamp_ms: t,
        value: m as f64 / scale,
    });
    let (mut delta_t, mut delta_m) = (0i64, 0i64);
    let from = out.len();
    // Through a register topped up after each code, as packed chunks are
    // read; reads past the end give zeros, and the check after the loop
    // refuses the chunk then.
    let mut buffer = bits.buffered();
    for _ in 1..count {
        let dod = next_bucketed(&mut buffer, TIME_WIDTHS).ok_or(truncated.clone())?;
        delta_t = delta_t.wrapping_add(dod);
        t = t.wrapping_add(delta_t);
        let residual = next_bucketed(&mut buffer, VALUE_WIDTHS).ok_or(truncated.clone())?;
        delta_m = if second_order {
            delta_m.wrapping_add(residual)
        } else {
            residual
        };
        m = m.wrapping_add(delta_m);
        out.push(Sample {
            timestamp_ms: t,
            value: m as f64,
        });
    }
    if buffer.reader().overran() {
        return Err(truncated);
    }
    // Scaled apart from decoding; whole numbers (no digits) need none.
    if scale != 1.0 {
        for s in &mut out[from..] {
            s.value /= scale;
        }
    }
    Ok(())
}

/// [`read_bucketed`] from a register: the unary prefix and the value at
/// once when the register holds both (it always does but for the 64-bit
/// escape). Past the stream's end the register reads zeros, which the
/// caller's check of [`BitReader::overran`] afterwards finds; `None` when
/// a code the register does not hold runs past it.
#[inline(always)]
fn next_bucketed(bits: &mut BitBuffer<'_>, widths: &[u8]) -> Option<i64> {
    let window = bits.bits();
    let ones = (!window).leading_zeros() as usize;
    if ones == 0 {
        bits.consume(1);
        bits.refill();
        return Some(0);
    }
    if let Some(&width) = widths.get(ones - 1) {
        let width = u32::from(width);
        let used = ones as u32 + 1 + width;
        if used <= bits.available() {
            bits.consume(used);
            bits.refill();
            // The `width` bits after the prefix and its zero, sign-extended.
            let raw = (window << (ones + 1)) >> (64 - width);
            let shift = 64 - width;
            return Some(((raw << shift) as i64) >> shift);
        }
    }
    let (x, after) = read_apart(bits.clone(), |b| read_bucketed(b, widths).map(|x| x as u64));
    *bits = after;
    x.map(|x| x as i64)
}

/// How a packed chunk's timestamps are kept: in the chunk, or as a column of
/// the block (shared by every chunk with the same timestamps, as the series
/// of one scrape target have).
const TIMES_INLINE: u8 = 0;
const TIMES_SHARED: u8 = 1;
/// Set in the timestamp layout byte when the chunk's integer-coded values
/// are the values' IEEE 754 bit patterns rather than scaled decimals: for
/// floats that are no short decimal but move by small steps (a histogram's
/// `_sum` of measured durations, a clock read in nanoseconds), where the
/// change in the pattern is a number of units in the last place.
const VALUES_AS_BITS: u8 = 0x80;
/// Set in the timestamp layout byte when the values are near decimals: a
/// float total of measurements taken on a decimal grid (the `_sum` of
/// latencies a client library measured in nanoseconds) sits within a few
/// units in the last place of one, by the rounding of its additions. The
/// values follow as two integer-coded streams: the nearest decimals
/// (length-prefixed), then the differences of the values' bit patterns
/// from those decimals' (as with [`VALUES_AS_BITS`]), which drift by a
/// few units a sample.
const VALUES_NEAR_DECIMAL: u8 = 0x40;
/// Set in the timestamp layout byte when the integer-coded residuals that
/// drop zeros have a 4-bit field after their Rice parameter: [`RUN_FLAGS`]
/// for a flag bit each residual (as chunks without this flag have), or the
/// Rice parameter of runs: before each residual that is not zero, the
/// number of zeros since the last one, Rice-coded; zeros that end the
/// chunk are one last such count. A counter that moves at one scrape in
/// twenty (requests that fail, a histogram's lowest bucket) then costs
/// well under a bit a sample. Runs are taken where they save a quarter of
/// the flags' bits; where they save less, flags decode faster.
const ZERO_RUNS: u8 = 0x20;
/// In the 4-bit field [`ZERO_RUNS`] adds: zeros flagged, not in runs.
const RUN_FLAGS: u8 = 15;

/// Unary quotients of a Rice code stop here; the value follows whole.
const RICE_ESCAPE: u8 = 24;

/// In the 6-bit Rice parameter of a packed decimal chunk, says that two
/// fields follow (each bucketed), then the parameter: a factor of every
/// residual (1: none), and for a fixed width, the largest code (0: none),
/// which makes the width a truncated binary code (codes below `2^k` less
/// the number of codes take `k - 1` bits). No residual needs 63 bits
/// (scaled values stay under 2^53), so chunks written without these never
/// hold it.
const EXTENDED: u8 = 63;

/// Encodes samples (strictly increasing timestamps, at most `u16::MAX`) as a
/// [`PACKED`] chunk, its timestamps inline or (`column`) those of the
/// block's timestamp column with that number.
///
/// Values are the smaller of XOR'd floats and integers, either scaled
/// decimals when every value is a decimal (see [`DECIMAL`]) or else the
/// values' bit patterns ([`VALUES_AS_BITS`]): constant; or residuals of
/// order 0 (the value), 1 (its change) or 2 (the change of its change),
/// each a flag bit for "zero" (where that pays) and otherwise its distance
/// from the chunk's median residual, zigzagged and Rice-coded with the
/// parameter that makes the chunk smallest, or written in a fixed width
/// where that is smaller (residuals spread evenly; in truncated binary where
/// that is smaller still). Counters and gauges that hold
/// still for some scrapes and move by similar amounts at others cost a few
/// bits a sample; a constant costs nothing past its first value. Residuals
/// with a common factor (memory and disk sizes move by whole pages) are
/// written divided by it.
pub fn encode_packed(samples: &[Sample], column: Option<u64>) -> Vec<u8> {
    debug_assert!(samples.len() <= usize::from(u16::MAX));
    let mut out = Vec::with_capacity(16 + samples.len());
    out.push(PACKED);
    out.extend_from_slice(&(samples.len() as u16).to_be_bytes());
    if samples.is_empty() {
        return out;
    }
    // XOR'd values are sized first and written only if they are smallest.
    let xor = (1 + 64 + xor_value_bits(samples)).div_ceil(8) as usize;
    // Near decimals are the bit patterns less what the decimals say: where
    // there are any, the patterns are not tried.
    let (values, flag) = match decimal_values(samples) {
        Some(decimal) if decimal.len() < xor => (Values::Bits(decimal), ZERO_RUNS),
        Some(_) => (Values::Bits(xor_values(samples)), 0),
        None => match near_decimal_values(samples).filter(|n| n.len() < xor) {
            Some(near) => (Values::Bytes(near), VALUES_NEAR_DECIMAL | ZERO_RUNS),
            None => {
                let patterns = bit_pattern_values(samples);
                if patterns.len() < xor {
                    (Values::Bits(patterns), VALUES_AS_BITS | ZERO_RUNS)
                } else {
                    (Values::Bits(xor_values(samples)), 0)
                }
            }
        },
    };
    let values = match &values {
        Values::Bits(bits) => bits.bytes(),
        Values::Bytes(bytes) => bytes.as_slice(),
    };
    // Integer-coded values start with a one (near decimals with their first
    // stream's length); XOR'd ones are as sized.
    debug_assert!(flag != 0 || values.len() == xor);
    match column {
        Some(id) => {
            out.push(TIMES_SHARED | flag);
            super::bits::put_uvarint(&mut out, id);
        }
        None => {
            out.push(TIMES_INLINE | flag);
            let times = encode_times(samples.iter().map(|s| s.timestamp_ms));
            super::bits::put_uvarint(&mut out, times.len() as u64);
            out.extend_from_slice(&times);
        }
    }
    out.extend_from_slice(values);
    out
}

/// A packed chunk's value stream as it was written.
enum Values {
    Bits(BitWriter),
    Bytes(Vec<u8>),
}

/// Timestamps as a bit stream: the first whole, then delta-of-deltas.
pub(crate) fn encode_times(times: impl IntoIterator<Item = i64>) -> Vec<u8> {
    let mut bits = BitWriter::default();
    let (mut last_t, mut last_delta) = (0i64, 0i64);
    for (i, t) in times.into_iter().enumerate() {
        if i == 0 {
            bits.write(t as u64, 64);
        } else {
            let delta = t.wrapping_sub(last_t);
            write_bucketed(&mut bits, delta.wrapping_sub(last_delta), TIME_WIDTHS);
            last_delta = delta;
        }
        last_t = t;
    }
    bits.bytes().to_vec()
}

/// Reads `count` timestamps that [`encode_times`] wrote, appending them to
/// `out` (which the caller has made room for).
pub(crate) fn decode_times(
    stream: &[u8],
    count: usize,
    out: &mut Vec<i64>,
) -> Result<(), CorruptChunk> {
    let truncated = || CorruptChunk("truncated timestamps");
    if count == 0 {
        return Ok(());
    }
    let mut bits = BitReader::new(stream);
    let mut t = bits.read(64).ok_or_else(truncated)? as i64;
    out.push(t);
    let mut delta = 0i64;
    for _ in 1..count {
        delta = delta.wrapping_add(read_bucketed(&mut bits, TIME_WIDTHS).ok_or_else(truncated)?);
        t = t.wrapping_add(delta);
        out.push(t);
    }
    Ok(())
}

fn xor_values(samples: &[Sample]) -> BitWriter {
    let mut bits = BitWriter::default();
    bits.bit(false);
    let mut last = samples[0].value.to_bits();
    bits.write(last, 64);
    let (mut leading, mut trailing) = (u8::MAX, 0u8);
    for s in &samples[1..] {
        let value = s.value.to_bits();
        write_xor(&mut bits, value ^ last, &mut leading, &mut trailing);
        last = value;
    }
    bits
}

/// Residual modes of packed decimal values.
const CONSTANT: u8 = 3;

/// A Rice-coded residual stream's parameters.
#[derive(Debug, Clone, Copy)]
struct RiceParams {
    order: u8,
    /// Zeros are dropped: flagged or their runs counted (see
    /// [`ZERO_RUNS`]).
    zero_flag: bool,
    /// The Rice parameter of the runs' lengths, or [`RUN_FLAGS`].
    run_k: u8,
    base: i64,
    /// Every residual in `k` bits, no unary part: residuals spread evenly
    /// (fresh measurements) cost about half a bit less a sample so.
    fixed: bool,
    k: u8,
    /// What every residual was divided by (1: none).
    factor: i64,
    /// The largest code of a truncated binary fixed width (0: a plain one).
    largest: u64,
    /// Bits of the residuals, their zeros' runs and the extension fields.
    bits: u64,
}

/// Bits of the extension fields (see [`EXTENDED`]), if they are needed.
fn extension_bits(factor: i64, largest: u64) -> u64 {
    if factor == 1 && largest == 0 {
        return 0;
    }
    6 + bucketed_bits(factor, VALUE_WIDTHS) + bucketed_bits(largest as i64, VALUE_WIDTHS)
}

/// Below this, a truncated binary code of width `k` with `largest` the
/// largest code writes `k - 1` bits (0: every code takes `k`).
fn truncation(k: u8, largest: u64) -> u64 {
    if k == 0 {
        return 0;
    }
    (1u64 << k) - 1 - largest
}

fn write_truncated(bits: &mut BitWriter, u: u64, k: u8, short_below: u64) {
    if u < short_below {
        bits.write(u, k - 1);
    } else {
        bits.write(u + short_below, k);
    }
}

fn read_truncated(bits: &mut BitReader<'_>, k: u8, short_below: u64) -> Option<u64> {
    let x = bits.read(k - 1)?;
    if x < short_below {
        return Some(x);
    }
    Some(((x << 1) | bits.read(1)?) - short_below)
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bits of `u` Rice-coded with parameter `k`.
fn rice_bits(u: u64, k: u8) -> u64 {
    let q = u >> k;
    if q >= u64::from(RICE_ESCAPE) {
        u64::from(RICE_ESCAPE) + 64
    } else {
        q + 1 + u64::from(k)
    }
}

fn write_rice(bits: &mut BitWriter, u: u64, k: u8) {
    let q = u >> k;
    if q >= u64::from(RICE_ESCAPE) {
        bits.write((1u64 << RICE_ESCAPE) - 1, RICE_ESCAPE);
        bits.write(u, 64);
    } else {
        let q = q as u8;
        bits.write(((1u64 << q) - 1) << 1, q + 1);
        bits.write(u & ((1u64 << k) - 1), k);
    }
}

#[inline]
fn read_rice(bits: &mut BitReader<'_>, k: u8) -> Option<u64> {
    let q = bits.ones(RICE_ESCAPE)?;
    if q == RICE_ESCAPE {
        return bits.read(64);
    }
    Some((u64::from(q) << k) | bits.read(k)?)
}

/// The cheapest Rice or fixed-width coding of `residuals` (already divided
/// by `factor`) with or without a zero flag.
fn best_rice(order: u8, residuals: &[i64], factor: i64) -> RiceParams {
    let mut best: Option<RiceParams> = None;
    let zeros = residuals.iter().filter(|&&r| r == 0).count();
    let mut coded: Vec<i64> = Vec::with_capacity(residuals.len());
    for zero_flag in [false, true] {
        // Without zeros to drop, the flag only costs.
        if zero_flag && zeros == 0 {
            break;
        }
        // With under an eighth zeros, dropping them costs at least a bit
        // for each of the other seven eighths (a flag, or a run of none);
        // it cannot pay unless the zeros cost more than that as codes.
        if zero_flag && zeros * 8 < residuals.len() {
            let b = best.expect("the codes without dropping zeros were tried");
            let zero_code = zigzag(b.base.wrapping_neg());
            let zero_bits = match (b.fixed, b.largest) {
                (false, _) => rice_bits(zero_code, b.k),
                (true, 0) => u64::from(b.k),
                (true, largest) => u64::from(b.k) - u64::from(zero_code < truncation(b.k, largest)),
            };
            if (zeros as u64) * zero_bits * 8 <= residuals.len() as u64 * 7 {
                break;
            }
        }
        coded.clear();
        coded.extend(residuals.iter().copied().filter(|&r| !zero_flag || r != 0));
        let (flag_bits, run_k) = if zero_flag {
            let (runs, run_k) = zero_run_bits(residuals, zeros);
            let flags = 4 + residuals.len() as u64;
            if runs * 4 < flags * 3 {
                (runs, run_k)
            } else {
                (flags, RUN_FLAGS)
            }
        } else {
            (0, 0)
        };
        let base = if coded.is_empty() {
            0
        } else {
            let middle = coded.len() / 2;
            *coded.select_nth_unstable(middle).1
        };
        // Every sum below is of the codes in any order.
        let code = |r: i64| zigzag(r.wrapping_sub(base));
        let (mut largest, mut sum, mut lengths) = (0u64, 0f64, 0u64);
        for &r in &coded {
            let u = code(r);
            largest = largest.max(u);
            sum += u as f64;
            lengths += u64::from(64 - u.leading_zeros());
        }
        let widest = 64 - largest.leading_zeros() as u8;
        let mut consider = |fixed: bool, k: u8, largest: u64, bits: u64| {
            if best.is_none_or(|b| bits < b.bits) {
                best = Some(RiceParams {
                    order,
                    zero_flag,
                    run_k,
                    base,
                    fixed,
                    k,
                    factor,
                    largest,
                    bits,
                });
            }
        };
        // Widths from 63 on do not fit the 6-bit field beside its escape;
        // the Rice code's escape takes them.
        if widest < EXTENDED {
            let plain = coded.len() as u64 * u64::from(widest);
            consider(
                true,
                widest,
                0,
                flag_bits + plain + extension_bits(factor, 0),
            );
            let short_below = truncation(widest, largest);
            if short_below > 0 {
                let short = coded.iter().filter(|&&r| code(r) < short_below).count() as u64;
                let bits = flag_bits + plain - short + extension_bits(factor, largest);
                consider(true, widest, largest, bits);
            }
        }
        // The Rice parameters around the one the mean suggests, summed in
        // one pass; and where a few outliers (a stale marker among bit
        // patterns, a reset) pull the mean far above most codes, those
        // around the codes' typical length as well.
        let mean = sum / coded.len().max(1) as f64;
        let k0 = (mean + 1.0).log2().floor() as i32;
        let typical = (lengths / coded.len().max(1) as u64) as i32;
        let windows = [Some(k0), (typical + 2 < k0 - 2).then_some(typical)];
        for k0 in windows.into_iter().flatten() {
            let first = (k0 - 2).max(0) as u8;
            let last = (k0 + 1).min(62) as u8;
            let mut totals = [0u64; 4];
            for &r in &coded {
                let u = code(r);
                for (j, total) in totals.iter_mut().enumerate() {
                    // Past `last` (at most 62) the sums go unread.
                    *total += rice_bits(u, (first + j as u8).min(last));
                }
            }
            for k in first..=last {
                let bits = flag_bits + totals[usize::from(k - first)] + extension_bits(factor, 0);
                consider(false, k, 0, bits);
            }
        }
    }
    best.expect("some parameter was tried")
}

/// Calls `f` with the length of each run of zeros in `residuals` that a
/// residual other than zero ends (0 when there are none before it), and
/// with that of the zeros that end them, if any (see [`ZERO_RUNS`]).
fn for_each_zero_run(residuals: &[i64], mut f: impl FnMut(u64)) {
    let mut run = 0u64;
    for &r in residuals {
        if r == 0 {
            run += 1;
        } else {
            f(run);
            run = 0;
        }
    }
    if run > 0 {
        f(run);
    }
}

/// Bits of the zeros' runs in `residuals` with the best Rice parameter
/// for them (the mean's, or one either side), its 4-bit field included;
/// and that parameter.
fn zero_run_bits(residuals: &[i64], zeros: usize) -> (u64, u8) {
    // A run before each residual that is not zero, and one at the end if
    // the residuals end with zeros.
    let ending = usize::from(residuals.last() == Some(&0));
    let runs = residuals.len() - zeros + ending;
    let mean = zeros as f64 / runs.max(1) as f64;
    let k0 = ((mean + 1.0).log2().floor() as u8).min(MAX_RUN_K);
    let first = k0.saturating_sub(1);
    let last = (k0 + 1).min(MAX_RUN_K);
    let mut sums = [0u64; 3];
    for_each_zero_run(residuals, |run| {
        for (j, sum) in sums.iter_mut().enumerate() {
            *sum += rice_bits(run, (first + j as u8).min(last));
        }
    });
    (first..=last)
        .map(|k| (4 + sums[usize::from(k - first)], k))
        .min()
        .expect("a parameter was tried")
}

/// The largest Rice parameter of the zeros' runs (a 4-bit field, its
/// largest value [`RUN_FLAGS`]).
const MAX_RUN_K: u8 = RUN_FLAGS - 1;

/// [`best_rice`], or the same over the residuals divided by their greatest
/// common divisor where that is smaller, the factor's cost counted.
fn best_factored(order: u8, residuals: &[i64]) -> RiceParams {
    let plain = best_rice(order, residuals, 1);
    // Most chunks share no factor: stop at the first 1.
    let mut divisor = 0u64;
    for &r in residuals {
        divisor = gcd(divisor, r.unsigned_abs());
        if divisor == 1 {
            return plain;
        }
    }
    // All zeros (0), or residuals as large as scaled values get: the plain
    // coding serves as well.
    if !(2..1 << 53).contains(&divisor) {
        return plain;
    }
    let factor = divisor as i64;
    let divided: Vec<i64> = residuals.iter().map(|&r| r / factor).collect();
    let factored = best_rice(order, &divided, factor);
    if factored.bits < plain.bits {
        factored
    } else {
        plain
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The values as Rice-coded scaled decimals, if every value is one.
fn decimal_values(samples: &[Sample]) -> Option<BitWriter> {
    let digits = samples
        .iter()
        .map(|s| decimal_digits(s.value))
        .try_fold(0, |max, d| d.map(|d| max.max(d)))?;
    let scaled: Vec<i64> = samples
        .iter()
        .map(|s| scaled(s.value, digits))
        .collect::<Option<_>>()?;
    Some(integer_values(digits, &scaled))
}

/// The values' bit patterns as Rice-coded integers (see [`VALUES_AS_BITS`]).
fn bit_pattern_values(samples: &[Sample]) -> BitWriter {
    let patterns: Vec<i64> = samples.iter().map(|s| s.value.to_bits() as i64).collect();
    integer_values(0, &patterns)
}

/// Near decimals are scaled values under this: where a unit is at least 64
/// units in the last place, so that being near a decimal says something.
const NEAR_SCALED: f64 = (1u64 << 47) as f64;

/// The values as near decimals (see [`VALUES_NEAR_DECIMAL`]), at the
/// fewest fractional digits (1 to 12) that puts all but an eighth of them
/// within a sixteenth of a unit of where the first sits between two
/// decimals (where the rounding of a long-running total has carried it);
/// `None` when there are none such. The others (a computed ratio among
/// decimals, a stale marker) keep the last decimal and differ from it by
/// whatever their bit patterns do.
fn near_decimal_values(samples: &[Sample]) -> Option<Vec<u8>> {
    let first = samples.first()?.value;
    let offset = |digits: usize| {
        let x = first * POW10[digits];
        let offset = x - x.round();
        if offset.is_finite() { offset } else { 0.0 }
    };
    let nearest = |digits: usize, offset: f64, v: f64| {
        let x = v * POW10[digits] - offset;
        if !x.is_finite() || x.abs() >= NEAR_SCALED {
            return None;
        }
        // Rounded to the nearest integer (ties to even) by adding and
        // taking away 1.5 * 2^52, exact below 2^51: no call to `round`.
        let m = (x + 6_755_399_441_055_744.0) - 6_755_399_441_055_744.0;
        ((x - m).abs() <= 1.0 / 16.0).then_some(m as i64)
    };
    let off_grid = |digits: usize, offset: f64, samples: &[Sample], allowed: usize| {
        let mut off = 0;
        samples.iter().all(|s| {
            off += usize::from(nearest(digits, offset, s.value).is_none());
            off <= allowed
        })
    };
    let allowed = samples.len() / 8;
    // The first eight, with one off the grid allowed, turn most scales
    // down before all the samples are looked at.
    let head = &samples[..samples.len().min(8)];
    let digits = (1..=12).find(|&digits| {
        let offset = offset(digits);
        off_grid(digits, offset, head, 1) && off_grid(digits, offset, samples, allowed)
    })?;
    let offset = offset(digits);
    let mut last = 0;
    let nearest: Vec<i64> = samples
        .iter()
        .map(|s| {
            last = nearest(digits, offset, s.value).unwrap_or(last);
            last
        })
        .collect();
    // What decoding computes: the integer, converted back, divided.
    let differences: Vec<i64> = samples
        .iter()
        .zip(&nearest)
        .map(|(s, &m)| {
            let decimal = (m as f64 / POW10[digits]).to_bits();
            s.value.to_bits().wrapping_sub(decimal) as i64
        })
        .collect();
    let decimals = integer_values(digits, &nearest);
    let differences = integer_values(0, &differences);
    let mut out = Vec::with_capacity(2 + decimals.len() + differences.len());
    super::bits::put_uvarint(&mut out, decimals.len() as u64);
    out.extend_from_slice(decimals.bytes());
    out.extend_from_slice(differences.bytes());
    Some(out)
}

/// The largest of `xs` less the smallest (0 for none).
fn spread(xs: &[i64]) -> i128 {
    let (min, max) = xs
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if xs.is_empty() {
        0
    } else {
        i128::from(max) - i128::from(min)
    }
}

/// Integer values (decimals scaled by `10^digits`, or bit patterns with
/// `digits` 0) in the cheapest of the residual codings [`encode_packed`]
/// describes.
fn integer_values(digits: usize, scaled: &[i64]) -> BitWriter {
    let mut bits = BitWriter::default();
    bits.bit(true);
    bits.write(digits as u64, 4);
    if scaled.iter().all(|&m| m == scaled[0]) {
        bits.write(u64::from(CONSTANT), 2);
        write_bucketed(&mut bits, scaled[0], VALUE_WIDTHS);
        return bits;
    }
    // Orders are tried where their residuals' spread does not rule them
    // out: the values themselves where they spread at most twice as far
    // as their changes (fresh measurements; not counters or random
    // walks), the change of change where it spreads no further than the
    // change (changes that trend; not noise, whose change of change
    // spreads twice as far).
    let mut residuals: Vec<i64> = scaled[1..].to_vec();
    let values = spread(&residuals);
    for (i, w) in scaled.windows(2).enumerate() {
        residuals[i] = w[1].wrapping_sub(w[0]);
    }
    let changes = spread(&residuals);
    let zeroth = (values <= 2 * changes).then(|| best_factored(0, &scaled[1..]));
    let mut best = best_factored(1, &residuals);
    let mut previous_delta = 0i64;
    for r in residuals.iter_mut() {
        let delta = *r;
        *r = delta.wrapping_sub(previous_delta);
        previous_delta = delta;
    }
    let second = (spread(&residuals) <= changes).then(|| best_factored(2, &residuals));
    for candidate in [zeroth, second].into_iter().flatten() {
        if candidate.bits < best.bits {
            best = candidate;
        }
    }
    bits.write(u64::from(best.order), 2);
    bits.bit(best.zero_flag);
    bits.bit(best.fixed);
    if best.factor != 1 || best.largest != 0 {
        bits.write(u64::from(EXTENDED), 6);
        write_bucketed(&mut bits, best.factor, VALUE_WIDTHS);
        write_bucketed(&mut bits, best.largest as i64, VALUE_WIDTHS);
    }
    bits.write(u64::from(best.k), 6);
    if best.zero_flag {
        bits.write(u64::from(best.run_k), 4);
    }
    let short_below = if best.largest != 0 {
        truncation(best.k, best.largest)
    } else {
        0
    };
    write_bucketed(&mut bits, best.base, VALUE_WIDTHS);
    write_bucketed(&mut bits, scaled[0], VALUE_WIDTHS);
    let (mut last, mut last_delta, mut run) = (scaled[0], 0i64, 0u64);
    for &m in &scaled[1..] {
        let delta = m.wrapping_sub(last);
        let residual = match best.order {
            0 => m,
            1 => delta,
            _ => delta.wrapping_sub(last_delta),
        };
        (last, last_delta) = (m, delta);
        if best.zero_flag && best.run_k == RUN_FLAGS {
            bits.bit(residual != 0);
            if residual == 0 {
                continue;
            }
        } else if best.zero_flag {
            if residual == 0 {
                run += 1;
                continue;
            }
            write_rice(&mut bits, run, best.run_k);
            run = 0;
        }
        // Exact: the factor divides every residual.
        let u = zigzag((residual / best.factor).wrapping_sub(best.base));
        if short_below > 0 {
            write_truncated(&mut bits, u, best.k, short_below);
        } else if best.fixed {
            bits.write(u, best.k);
        } else {
            write_rice(&mut bits, u, best.k);
        }
    }
    if run > 0 {
        write_rice(&mut bits, run, best.run_k);
    }
    bits
}

fn decode_packed(
    stream: &[u8],
    count: u16,
    columns: &[Vec<i64>],
    out: &mut Vec<Sample>,
) -> Result<(), CorruptChunk> {
    let truncated = || CorruptChunk("truncated");
    let count = usize::from(count);
    let mut r = super::bits::ByteReader::new(stream);
    let start = out.len();
    let layout = r.take(1).ok_or_else(truncated)?[0];
    let (as_bits, near) = (
        layout & VALUES_AS_BITS != 0,
        layout & VALUES_NEAR_DECIMAL != 0,
    );
    if as_bits && near {
        return Err(CorruptChunk(
            "values flagged as bit patterns and near decimals",
        ));
    }
    let runs = layout & ZERO_RUNS != 0;
    match layout & !(VALUES_AS_BITS | VALUES_NEAR_DECIMAL | ZERO_RUNS) {
        TIMES_INLINE => {
            let len = r.len().ok_or_else(truncated)?;
            let times = r.take(len).ok_or_else(truncated)?;
            let mut bits = BitReader::new(times);
            let mut t = bits.read(64).ok_or_else(truncated)? as i64;
            out.push(Sample {
                timestamp_ms: t,
                value: 0.0,
            });
            let mut delta = 0i64;
            let mut buffer = bits.buffered();
            for _ in 1..count {
                let dod = next_bucketed(&mut buffer, TIME_WIDTHS).ok_or_else(truncated)?;
                delta = delta.wrapping_add(dod);
                t = t.wrapping_add(delta);
                out.push(Sample {
                    timestamp_ms: t,
                    value: 0.0,
                });
            }
            if buffer.reader().overran() {
                return Err(truncated());
            }
        }
        TIMES_SHARED => {
            let id = r.len().ok_or_else(truncated)?;
            let column = columns
                .get(id)
                .ok_or(CorruptChunk("timestamp column missing"))?;
            if column.len() != count {
                return Err(CorruptChunk("timestamp column of another length"));
            }
            out.extend(column.iter().map(|&t| Sample {
                timestamp_ms: t,
                value: 0.0,
            }));
        }
        _ => return Err(CorruptChunk("unknown timestamp layout")),
    }
    let result = if near {
        decode_near_decimals(&mut r, &mut out[start..], runs)
    } else {
        decode_packed_values(
            r.take(r.remaining()).unwrap_or_default(),
            &mut out[start..],
            as_bits,
            runs,
        )
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Fills in the values of `samples` from a packed chunk's near decimals
/// (see [`VALUES_NEAR_DECIMAL`]): the decimals, then each moved by its
/// difference in bit pattern.
fn decode_near_decimals(
    r: &mut super::bits::ByteReader<'_>,
    samples: &mut [Sample],
    runs: bool,
) -> Result<(), CorruptChunk> {
    let truncated = || CorruptChunk("truncated");
    let len = r.len().ok_or_else(truncated)?;
    let decimals = r.take(len).ok_or_else(truncated)?;
    decode_packed_values(decimals, samples, false, runs)?;
    let zero = Sample {
        timestamp_ms: 0,
        value: 0.0,
    };
    let mut differences = vec![zero; samples.len()];
    decode_packed_values(
        r.take(r.remaining()).unwrap_or_default(),
        &mut differences,
        true,
        runs,
    )?;
    for (s, d) in samples.iter_mut().zip(&differences) {
        s.value = f64::from_bits(s.value.to_bits().wrapping_add(d.value.to_bits()));
    }
    Ok(())
}

/// Fills in the values of `samples` (at least one) from a packed chunk's
/// value stream, its integers bit patterns if `as_bits`, the zeros its
/// residuals drop in runs if `runs` (see [`ZERO_RUNS`]).
fn decode_packed_values(
    stream: &[u8],
    samples: &mut [Sample],
    as_bits: bool,
    runs: bool,
) -> Result<(), CorruptChunk> {
    let truncated = || CorruptChunk("truncated");
    let mut bits = BitReader::new(stream);
    let (first, rest) = samples.split_first_mut().ok_or_else(truncated)?;
    let integers = bits.bit().ok_or_else(truncated)?;
    if as_bits && !integers {
        return Err(CorruptChunk("bit patterns flagged on XOR'd values"));
    }
    if !integers {
        let mut value = bits.read(64).ok_or_else(truncated)?;
        first.value = f64::from_bits(value);
        let (mut leading, mut trailing) = (0u8, 0u8);
        for s in rest {
            value = read_xor(&mut bits, value, &mut leading, &mut trailing)?;
            s.value = f64::from_bits(value);
        }
        return Ok(());
    }
    let digits = bits.read(4).ok_or_else(truncated)? as usize;
    if as_bits && digits != 0 {
        return Err(CorruptChunk("bit patterns with a decimal scale"));
    }
    let scale = *POW10
        .get(digits)
        .ok_or(CorruptChunk("decimal scale out of range"))?;
    let value_of = |m: i64| {
        if as_bits {
            f64::from_bits(m as u64)
        } else {
            m as f64 / scale
        }
    };
    let order = bits.read(2).ok_or_else(truncated)? as u8;
    if order == CONSTANT {
        let value = value_of(read_bucketed(&mut bits, VALUE_WIDTHS).ok_or_else(truncated)?);
        first.value = value;
        for s in rest {
            s.value = value;
        }
        return Ok(());
    }
    let zero_flag = bits.bit().ok_or_else(truncated)?;
    let fixed = bits.bit().ok_or_else(truncated)?;
    let mut k = bits.read(6).ok_or_else(truncated)? as u8;
    let (mut factor, mut short_below) = (1, 0);
    if k == EXTENDED {
        factor = read_bucketed(&mut bits, VALUE_WIDTHS).ok_or_else(truncated)?;
        if factor < 1 {
            return Err(CorruptChunk("residual factor below 1"));
        }
        let largest = read_bucketed(&mut bits, VALUE_WIDTHS).ok_or_else(truncated)?;
        k = bits.read(6).ok_or_else(truncated)? as u8;
        if k == EXTENDED {
            return Err(CorruptChunk("residual coding extended twice"));
        }
        if largest != 0 {
            // The width is the largest code's, for a fixed width only.
            if !fixed || largest < 0 || 64 - largest.leading_zeros() != u32::from(k) {
                return Err(CorruptChunk("largest residual code does not fit its width"));
            }
            short_below = truncation(k, largest as u64);
        }
    }
    let (zeros, run_k) = match (zero_flag, runs) {
        (false, _) => (NO_ZEROS_DROPPED, 0),
        (true, false) => (ZERO_FLAGS, 0),
        (true, true) => match bits.read(4).ok_or_else(truncated)? as u8 {
            RUN_FLAGS => (ZERO_FLAGS, 0),
            run_k => (ZERO_RUN_LENGTHS, run_k),
        },
    };
    let base = read_bucketed(&mut bits, VALUE_WIDTHS).ok_or_else(truncated)?;
    let m = read_bucketed(&mut bits, VALUE_WIDTHS).ok_or_else(truncated)?;
    first.value = value_of(m);
    let code = ResidualCode {
        zeros,
        run_k,
        fixed,
        k,
        base,
        factor,
        short_below,
    };
    // One loop per order, so that the sum the order asks for is not a
    // branch per sample.
    match order {
        0 => fill_coded::<0>(&mut bits, code, m, scale, as_bits, rest)?,
        1 => fill_coded::<1>(&mut bits, code, m, scale, as_bits, rest)?,
        _ => fill_coded::<2>(&mut bits, code, m, scale, as_bits, rest)?,
    }
    // Reads past the end gave zeros; the chunk was cut short if any did.
    if bits.overran() {
        return Err(truncated());
    }
    Ok(())
}

/// How the residuals of a packed decimal chunk are coded.
#[derive(Debug, Clone, Copy)]
struct ResidualCode {
    /// How zeros are dropped: one of [`NO_ZEROS_DROPPED`], [`ZERO_FLAGS`],
    /// [`ZERO_RUN_LENGTHS`].
    zeros: u8,
    /// The Rice parameter of the zeros' runs.
    run_k: u8,
    fixed: bool,
    k: u8,
    base: i64,
    /// What each residual is multiplied by (1: no factor).
    factor: i64,
    /// Fixed-width codes below this take a bit less (0: none do).
    short_below: u64,
}

/// How a packed decimal chunk's residuals are read, a constant of the
/// decoding loop: Rice-coded, in a fixed width, or in a truncated binary
/// fixed width.
const RICE: u8 = 0;
const FIXED_WIDTH: u8 = 1;
const TRUNCATED_WIDTH: u8 = 2;

/// Whether and how a packed chunk's residuals drop zeros, a constant of
/// the decoding loop: not at all, a flag bit a residual, or runs counted.
const NO_ZEROS_DROPPED: u8 = 0;
const ZERO_FLAGS: u8 = 1;
const ZERO_RUN_LENGTHS: u8 = 2;

/// [`fill_decimal`] with the loop for `code`'s zeros, width and factor,
/// and for integers that are bit patterns (`as_bits`).
fn fill_coded<const ORDER: u8>(
    bits: &mut BitReader<'_>,
    code: ResidualCode,
    m: i64,
    scale: f64,
    as_bits: bool,
    samples: &mut [Sample],
) -> Result<(), CorruptChunk> {
    let s = samples;
    match code.zeros {
        NO_ZEROS_DROPPED => {
            fill_factored::<ORDER, NO_ZEROS_DROPPED>(bits, code, m, scale, as_bits, s)
        }
        ZERO_FLAGS => fill_factored::<ORDER, ZERO_FLAGS>(bits, code, m, scale, as_bits, s),
        _ => fill_factored::<ORDER, ZERO_RUN_LENGTHS>(bits, code, m, scale, as_bits, s),
    }
}

/// [`fill_coded`] for `code`'s factor and `as_bits`.
fn fill_factored<const ORDER: u8, const ZEROS: u8>(
    bits: &mut BitReader<'_>,
    code: ResidualCode,
    m: i64,
    scale: f64,
    as_bits: bool,
    samples: &mut [Sample],
) -> Result<(), CorruptChunk> {
    let s = samples;
    match (code.factor != 1, as_bits) {
        (false, false) => fill_width::<ORDER, ZEROS, false, false>(bits, code, m, scale, s),
        (true, false) => fill_width::<ORDER, ZEROS, true, false>(bits, code, m, scale, s),
        (false, true) => fill_width::<ORDER, ZEROS, false, true>(bits, code, m, scale, s),
        (true, true) => fill_width::<ORDER, ZEROS, true, true>(bits, code, m, scale, s),
    }
}

/// [`fill_factored`] for `code`'s width.
fn fill_width<const ORDER: u8, const ZEROS: u8, const FACTORED: bool, const BITS: bool>(
    bits: &mut BitReader<'_>,
    code: ResidualCode,
    m: i64,
    scale: f64,
    samples: &mut [Sample],
) -> Result<(), CorruptChunk> {
    let s = samples;
    if !code.fixed {
        fill_decimal::<ORDER, ZEROS, RICE, FACTORED, BITS>(bits, code, m, scale, s)
    } else if code.short_below == 0 {
        fill_decimal::<ORDER, ZEROS, FIXED_WIDTH, FACTORED, BITS>(bits, code, m, scale, s)
    } else {
        fill_decimal::<ORDER, ZEROS, TRUNCATED_WIDTH, FACTORED, BITS>(bits, code, m, scale, s)
    }
}

/// Fills in `samples`' values from residuals of order `ORDER` after the
/// scaled value `m`, coded as `code` says; `ZEROS`, `WIDTH` (one of
/// [`RICE`], [`FIXED_WIDTH`], [`TRUNCATED_WIDTH`]) and `FACTORED` (a factor
/// other than 1) are its coding, as constants so that the loop does not
/// ask at every sample (nor multiplies by 1); with `BITS` the integers are
/// the values' bit patterns (see [`VALUES_AS_BITS`]). The caller checks
/// [`BitReader::overran`] afterwards.
#[inline]
fn fill_decimal<
    const ORDER: u8,
    const ZEROS: u8,
    const WIDTH: u8,
    const FACTORED: bool,
    const BITS: bool,
>(
    bits: &mut BitReader<'_>,
    code: ResidualCode,
    mut m: i64,
    scale: f64,
    samples: &mut [Sample],
) -> Result<(), CorruptChunk> {
    // Through a register topped up after each residual: the next
    // residual's bits do not wait on a load from this one's end.
    let mut buffer = bits.buffered();
    let mut delta = 0i64;
    let value = |m: i64| {
        if BITS {
            f64::from_bits(m as u64)
        } else {
            m as f64
        }
    };
    if ZEROS == ZERO_RUN_LENGTHS {
        // A run of zeros, then a residual that is not, until the end.
        let mut at = 0;
        while at < samples.len() {
            let run = next_rice(&mut buffer, code.run_k)?;
            buffer.refill();
            let zeros = usize::try_from(run)
                .ok()
                .and_then(|run| samples.get_mut(at..at.checked_add(run)?))
                .ok_or(CorruptChunk("a run of zeros past the chunk's end"))?;
            at += zeros.len();
            match ORDER {
                0 => {
                    for s in zeros.iter_mut() {
                        s.value = value(0);
                    }
                }
                1 => {
                    let held = value(m);
                    for s in zeros.iter_mut() {
                        s.value = held;
                    }
                }
                _ => {
                    for s in zeros.iter_mut() {
                        m = m.wrapping_add(delta);
                        s.value = value(m);
                    }
                }
            }
            let Some(s) = samples.get_mut(at) else {
                break;
            };
            at += 1;
            let residual = next_residual::<ZEROS, WIDTH>(&mut buffer, code)?;
            s.value = value(apply::<ORDER, FACTORED>(
                residual,
                code.factor,
                &mut m,
                &mut delta,
            ));
        }
    } else {
        for s in samples.iter_mut() {
            let residual = next_residual::<ZEROS, WIDTH>(&mut buffer, code)?;
            s.value = value(apply::<ORDER, FACTORED>(
                residual,
                code.factor,
                &mut m,
                &mut delta,
            ));
        }
    }
    *bits = buffer.reader();
    // Scaled apart from decoding, where the divisions do not wait on it
    // nor it on them; whole numbers (no digits) need none.
    if !BITS && scale != 1.0 {
        for s in samples.iter_mut() {
            s.value /= scale;
        }
    }
    Ok(())
}

/// `residual` (times `factor` if `FACTORED`) applied to the integer `m`
/// and its change `delta` as order `ORDER` says; the new `m`.
#[inline(always)]
fn apply<const ORDER: u8, const FACTORED: bool>(
    mut residual: i64,
    factor: i64,
    m: &mut i64,
    delta: &mut i64,
) -> i64 {
    if FACTORED {
        residual = residual.wrapping_mul(factor);
    }
    match ORDER {
        0 => *m = residual,
        1 => *m = m.wrapping_add(residual),
        _ => {
            *delta = delta.wrapping_add(residual);
            *m = m.wrapping_add(*delta);
        }
    }
    *m
}

/// The next residual of a packed decimal chunk, as the encoder wrote it:
/// usually the flag, the unary quotient and the remainder all from the
/// register; codes longer than what it holds, and escapes, take the
/// checked reads.
#[inline(always)]
fn next_residual<const ZEROS: u8, const WIDTH: u8>(
    bits: &mut BitBuffer<'_>,
    code: ResidualCode,
) -> Result<i64, CorruptChunk> {
    let truncated = || CorruptChunk("truncated");
    if ZEROS == ZERO_FLAGS {
        let zero = bits.bits() >> 63 == 0;
        bits.consume(1);
        if zero {
            bits.refill();
            return Ok(0);
        }
    }
    // At least 55 bits are counted here (56 less the flag).
    let window = bits.bits();
    let k = u32::from(code.k);
    let u = if WIDTH == TRUNCATED_WIDTH {
        // `k` is at least 1. The top `k - 1` bits are the code when they
        // are below `short_below`; else the top `k` bits less it are.
        if k <= bits.available() {
            let long = (window >> 1) >> (63 - k);
            let short = long >> 1;
            let is_short = short < code.short_below;
            bits.consume(k - u32::from(is_short));
            if is_short {
                short
            } else {
                long - code.short_below
            }
        } else {
            let (u, after) = read_apart(bits.clone(), |b| {
                read_truncated(b, code.k, code.short_below)
            });
            *bits = after;
            u.ok_or_else(truncated)?
        }
    } else if WIDTH == FIXED_WIDTH {
        if k <= bits.available() {
            bits.consume(k);
            // The top `k` bits; none when `k` is 0.
            (window >> 1) >> (63 - k)
        } else {
            let (u, after) = read_apart(bits.clone(), |b| b.read(code.k));
            *bits = after;
            u.ok_or_else(truncated)?
        }
    } else {
        next_rice(bits, code.k)?
    };
    bits.refill();
    Ok(code.base.wrapping_add(unzigzag(u)))
}

/// The next Rice code with parameter `k` from the register, or through
/// the checked reads when it is longer than what the register holds.
#[inline(always)]
fn next_rice(bits: &mut BitBuffer<'_>, k: u8) -> Result<u64, CorruptChunk> {
    let window = bits.bits();
    let q = (!window).leading_zeros();
    let k32 = u32::from(k);
    if q < u32::from(RICE_ESCAPE) && q + 1 + k32 <= bits.available() {
        bits.consume(q + 1 + k32);
        Ok((u64::from(q) << k32) | (((window << (q + 1)) >> 1) >> (63 - k32)))
    } else {
        let (u, after) = read_apart(bits.clone(), |b| read_rice(b, k));
        *bits = after;
        u.ok_or(CorruptChunk("truncated"))
    }
}

/// A residual too long for the register, read through a [`BitReader`] at
/// the buffer's position, after which the buffer goes on from the
/// reader's. Taken and handed back by value: the decoding loop's buffer
/// is never lent out, so it can stay in registers.
#[cold]
#[inline(never)]
fn read_apart<'a>(
    bits: BitBuffer<'a>,
    read: impl FnOnce(&mut BitReader<'_>) -> Option<u64>,
) -> (Option<u64>, BitBuffer<'a>) {
    let mut reader = bits.reader();
    let u = read(&mut reader);
    (u, reader.buffered())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use sextant_model::STALE_NAN_BITS;

    fn encode(samples: &[Sample]) -> Vec<u8> {
        let mut encoder = ChunkEncoder::default();
        for s in samples {
            encoder.append(s.timestamp_ms, s.value);
        }
        encoder.bytes()
    }

    /// `chunk` decodes to `samples`, and every prefix of it is refused.
    fn reads_back_and_refuses_every_cut(chunk: &[u8], samples: &[Sample]) {
        assert!(same(&decode(chunk).unwrap(), samples));
        for cut in 0..chunk.len() {
            assert!(
                decode(&chunk[..cut]).is_err(),
                "cut at {cut} of {}",
                chunk.len()
            );
        }
    }

    /// The bytes of a head chunk that took `samples` one by one.
    fn open_chunk_bytes(samples: &[Sample]) -> Vec<u8> {
        let mut open = OpenChunk::default();
        for s in samples {
            open.append(s.timestamp_ms, s.value);
        }
        open.bytes()
    }

    fn same(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.timestamp_ms == y.timestamp_ms && x.value.to_bits() == y.value.to_bits()
            })
    }

    fn samples_strategy() -> impl Strategy<Value = Vec<Sample>> {
        let step = prop_oneof![
            Just(15_000i64),
            14_990i64..15_010,
            1i64..5,
            1i64..10_000_000,
            1i64..i64::MAX / 512,
        ];
        let value = prop_oneof![
            any::<f64>(),
            (-1000i64..1000).prop_map(|v| v as f64),
            Just(f64::NAN),
            Just(sextant_model::stale_nan()),
            Just(f64::INFINITY),
            (0.0f64..1.0),
        ];
        (
            -(1i64 << 50)..(1i64 << 50),
            proptest::collection::vec((step, value), 0..=SAMPLES_PER_CHUNK),
        )
            .prop_map(|(start, steps)| {
                let mut t = start;
                steps
                    .into_iter()
                    .map(|(step, value)| {
                        t = t.saturating_add(step);
                        Sample {
                            timestamp_ms: t,
                            value,
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .prop_filter("strictly increasing", |s| {
                s.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms)
            })
    }

    proptest! {
        #[test]
        fn chunks_round_trip_bit_exactly(samples in samples_strategy()) {
            let decoded = decode(&encode(&samples)).unwrap();
            prop_assert!(same(&decoded, &samples), "{:?} != {:?}", decoded, samples);
            let decoded = decode(&encode_best(&samples)).unwrap();
            prop_assert!(same(&decoded, &samples), "best: {:?} != {:?}", decoded, samples);
            let decoded = decode(&encode_packed(&samples, None)).unwrap();
            prop_assert!(same(&decoded, &samples), "packed: {:?} != {:?}", decoded, samples);
            let column: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
            let mut decoded = Vec::new();
            decode_in_block(&encode_packed(&samples, Some(1)), &[Vec::new(), column], &mut decoded).unwrap();
            prop_assert!(same(&decoded, &samples), "shared: {:?} != {:?}", decoded, samples);
        }

        #[test]
        fn open_chunks_round_trip_bit_exactly(samples in samples_strategy()) {
            let mut open = OpenChunk::default();
            for (i, s) in samples.iter().enumerate() {
                open.append(s.timestamp_ms, s.value);
                let mut decoded = Vec::new();
                open.decode_into(&mut decoded).unwrap();
                prop_assert!(same(&decoded, &samples[..=i]), "{:?} != {:?}", decoded, &samples[..=i]);
                prop_assert_eq!(open.min_time(), samples[0].timestamp_ms);
                prop_assert_eq!(open.max_time(), s.timestamp_ms);
            }
            let decoded = decode(&open.bytes()).unwrap();
            prop_assert!(same(&decoded, &samples), "bytes: {:?} != {:?}", decoded, samples);
        }

        #[test]
        fn decimal_chunks_round_trip_bit_exactly(
            start in 0i64..(1i64 << 45),
            digits in 0usize..6,
            values in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 1..=SAMPLES_PER_CHUNK),
        ) {
            // Values as an exporter prints them: decimals with a few digits.
            let samples: Vec<Sample> = values
                .iter()
                .enumerate()
                .map(|(i, m)| Sample {
                    timestamp_ms: start + i as i64 * 15_000,
                    value: format!("{}", *m as f64 / POW10[digits]).parse().unwrap(),
                })
                .collect();
            let bytes = open_chunk_bytes(&samples);
            prop_assert_eq!(bytes[0], DECIMAL);
            let decoded = decode(&bytes).unwrap();
            prop_assert!(same(&decoded, &samples), "open: {:?} != {:?}", decoded, samples);
            let best = encode_best(&samples);
            let decoded = decode(&best).unwrap();
            prop_assert!(same(&decoded, &samples), "{:?} != {:?}", decoded, samples);
            let decoded = decode(&encode_packed(&samples, None)).unwrap();
            prop_assert!(same(&decoded, &samples), "packed: {:?} != {:?}", decoded, samples);
        }

        #[test]
        fn packed_counters_and_gauges_round_trip_bit_exactly(
            start in 0i64..(1i64 << 45),
            digits in 0usize..10,
            first in -1_000_000_000i64..1_000_000_000,
            moves in proptest::collection::vec((0u8..4, 0i64..5_000), 1..=960),
            unit in prop_oneof![Just(1i64), Just(4096), 2i64..1000],
        ) {
            // Still, then a step of similar size, as a counter or a gauge
            // moves; now and then a fresh value or a reset. Steps in whole
            // `unit`s (pages) have a common factor.
            let moves: Vec<(u8, i64)> = moves.iter().map(|&(kind, step)| (kind, step * unit)).collect();
            let mut m = first;
            let samples: Vec<Sample> = moves
                .iter()
                .enumerate()
                .map(|(i, &(kind, step))| {
                    m = match kind {
                        0 => m,
                        1 => m + step,
                        2 => m - step / 2,
                        _ => step,
                    };
                    Sample {
                        timestamp_ms: start + i as i64 * 15_000,
                        value: format!("{}", m as f64 / POW10[digits]).parse().unwrap(),
                    }
                })
                .collect();
            let decoded = decode(&encode_packed(&samples, None)).unwrap();
            prop_assert!(same(&decoded, &samples), "{:?} != {:?}", decoded, samples);
        }

        #[test]
        fn floats_moving_by_small_steps_round_trip_as_bit_patterns(
            first in prop_oneof![any::<f64>(), -1e6f64..1e6, 1.6e9f64..1.8e9],
            steps in proptest::collection::vec(
                prop_oneof![
                    8 => 0.0f64..20.0,
                    1 => -20.0f64..20.0,
                    1 => any::<f64>(),
                    1 => Just(f64::NAN),
                ],
                1..=960,
            ),
        ) {
            // Sums of measured durations and clocks: no short decimal, but
            // small steps in the last places; sometimes a jump, a sign
            // change or a NaN.
            let mut v = first;
            let samples: Vec<Sample> = steps
                .iter()
                .enumerate()
                .map(|(i, step)| {
                    v = if step.is_nan() || step.abs() > 20.0 { *step } else { v + step };
                    Sample { timestamp_ms: i as i64 * 15_000, value: v }
                })
                .collect();
            let decoded = decode(&encode_packed(&samples, None)).unwrap();
            prop_assert!(same(&decoded, &samples), "{:?} != {:?}", decoded, samples);
            let column: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
            let mut decoded = Vec::new();
            decode_in_block(&encode_packed(&samples, Some(0)), &[column], &mut decoded).unwrap();
            prop_assert!(same(&decoded, &samples), "shared: {:?} != {:?}", decoded, samples);
        }

        #[test]
        fn sparse_counters_round_trip_bit_exactly(
            start in 0i64..1_000_000,
            moves in proptest::collection::vec((0usize..2_000, 1i64..1_000), 0..12),
            len in 1usize..=2_000,
            digits in 0usize..4,
        ) {
            // A counter that moves at a few scrapes only (failed requests, a
            // lowest bucket): runs of zeros short and long, at the start,
            // between moves and at the end, some past a Rice code's escape.
            let mut at: Vec<(usize, i64)> = moves;
            at.sort_unstable();
            let mut value = start;
            let mut next = at.iter().peekable();
            let samples: Vec<Sample> = (0..len)
                .map(|i| {
                    while let Some(&&(when, by)) = next.peek() {
                        if when > i {
                            break;
                        }
                        value += by;
                        next.next();
                    }
                    Sample { timestamp_ms: i as i64 * 15_000, value: value as f64 / POW10[digits] }
                })
                .collect();
            inline_round_trip_refusing_cuts(&samples)?;
        }

        #[test]
        fn near_decimals_round_trip_bit_exactly(
            digits in 1usize..=12,
            first in prop_oneof![Just(0.0f64), -1e6f64..1e6],
            steps in proptest::collection::vec(
                prop_oneof![
                    8 => (0u64..20, 0i64..100_000_000),
                    1 => (Just(1u64), any::<i64>()),
                    1 => (Just(0u64), Just(0i64)),
                ],
                1..=960,
            ),
            odd in proptest::collection::vec((0usize..960, any::<f64>()), 0..4),
        ) {
            // Totals of measurements on a grid of `digits` fractional
            // digits, a float sum of up to 20 of them a sample; now and
            // then a value off the grid, or any float at all.
            let mut v = first;
            let mut samples: Vec<Sample> = steps
                .iter()
                .enumerate()
                .map(|(i, &(adds, units))| {
                    for _ in 0..adds {
                        v += units as f64 / POW10[digits];
                    }
                    Sample { timestamp_ms: i as i64 * 15_000, value: v }
                })
                .collect();
            for (at, value) in odd {
                if let Some(s) = samples.get_mut(at) {
                    s.value = value;
                }
            }
            let decoded = decode(&encode_packed(&samples, None)).unwrap();
            prop_assert!(same(&decoded, &samples), "{:?} != {:?}", decoded, samples);
            let column: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
            let mut decoded = Vec::new();
            decode_in_block(&encode_packed(&samples, Some(0)), &[column], &mut decoded).unwrap();
            prop_assert!(same(&decoded, &samples), "shared: {:?} != {:?}", decoded, samples);
        }

        #[test]
        fn evenly_spread_measurements_round_trip_bit_exactly(
            digits in 0usize..10,
            low in 0i64..1_000_000,
            width in 1i64..5_000_000,
            draws in proptest::collection::vec(any::<u64>(), 1..=960),
            zeros in any::<bool>(),
        ) {
            // Fresh measurements spread evenly over `width` units (truncated
            // binary widths), some of them repeats of the last when `zeros`.
            let mut last = low;
            let samples: Vec<Sample> = draws
                .iter()
                .enumerate()
                .map(|(i, &draw)| {
                    if !zeros || draw % 3 != 0 {
                        last = low + (draw >> 8) as i64 % width;
                    }
                    Sample {
                        timestamp_ms: i as i64 * 15_000,
                        value: format!("{}", last as f64 / POW10[digits]).parse().unwrap(),
                    }
                })
                .collect();
            inline_round_trip_refusing_cuts(&samples)?;
        }

        #[test]
        fn corrupt_chunks_error_instead_of_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
            let mut packed = vec![PACKED];
            packed.extend_from_slice(&bytes);
            let mut out = Vec::new();
            let _ = decode_in_block(&packed, &[vec![1, 2, 3], vec![4]], &mut out);
        }
    }

    #[test]
    fn a_full_chunk_of_scrapes_round_trips() {
        // A counter scraped every 15 s with a little jitter: node_exporter's shape.
        let samples: Vec<Sample> = (0..SAMPLES_PER_CHUNK as i64)
            .map(|i| Sample {
                timestamp_ms: 1_700_000_000_000 + i * 15_000 + (i % 3),
                value: (1000 + i * 7) as f64,
            })
            .collect();
        let bytes = encode(&samples);
        assert!(same(&decode(&bytes).unwrap(), &samples));
    }

    #[test]
    fn exporter_counters_pick_the_decimal_encoding_and_shrink() {
        // CPU seconds with two decimals, growing about 15 s per 15 s scrape.
        let samples: Vec<Sample> = (0..SAMPLES_PER_CHUNK as i64)
            .map(|i| Sample {
                timestamp_ms: 1_700_000_000_000 + i * 15_000,
                value: format!("{}.{:02}", 12_345 + i * 15, (i * 37) % 100)
                    .parse()
                    .unwrap(),
            })
            .collect();
        let xor = encode(&samples);
        let digits = 2;
        let scaled: Vec<i64> = samples
            .iter()
            .map(|s| scaled(s.value, digits).unwrap())
            .collect();
        let decimal = encode_decimal(&samples, &scaled, digits, false);
        let best = encode_best(&samples);
        assert_eq!(best[0], PACKED);
        assert!(
            decimal.len() < xor.len(),
            "{} vs {}",
            decimal.len(),
            xor.len()
        );
        assert!(
            best.len() < decimal.len(),
            "{} vs {}",
            best.len(),
            decimal.len()
        );
        assert!(same(&decode(&best).unwrap(), &samples));
        assert!(same(&decode(&decimal).unwrap(), &samples));
        // Negative zero, NaN and values with too many digits stay XOR, exactly.
        for odd in [-0.0, f64::NAN, 0.1 + 0.2, 1e300] {
            let mut with_odd = samples.clone();
            with_odd[7].value = odd;
            let chunk = encode_best(&with_odd);
            assert_ne!(chunk[0], DECIMAL, "{odd}");
            assert!(same(&decode(&chunk).unwrap(), &with_odd));
        }
    }

    #[test]
    fn a_constant_costs_nothing_past_its_first_value_and_a_column_its_timestamps() {
        let samples: Vec<Sample> = (0..960)
            .map(|i| Sample {
                timestamp_ms: 1_700_000_000_000 + i * 15_000 + if i % 50 == 7 { 13 } else { 0 },
                value: 8_246_337_208.0,
            })
            .collect();
        let shared = encode_packed(&samples, Some(0));
        // Encoding, count, layout, column, then the value kind, digits,
        // mode and the value itself (a 40-bit bucket).
        assert_eq!(shared.len(), 3 + 1 + 1 + 7);
        let column: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
        let mut decoded = Vec::new();
        decode_in_block(&shared, std::slice::from_ref(&column), &mut decoded).unwrap();
        assert!(same(&decoded, &samples));
        // Without its block's column, or with one of another length, the
        // chunk is refused, and nothing is left half-decoded.
        assert_eq!(
            decode(&shared),
            Err(CorruptChunk("timestamp column missing"))
        );
        let mut out = Vec::new();
        assert_eq!(
            decode_in_block(&shared, &[column[1..].to_vec()], &mut out),
            Err(CorruptChunk("timestamp column of another length"))
        );
        let inline = encode_packed(&samples, None);
        assert!(same(&decode(&inline).unwrap(), &samples));
        assert!(inline.len() > shared.len() + 960 / 8, "{}", inline.len());
    }

    #[test]
    fn sums_of_durations_and_clocks_are_kept_in_fewer_bytes_than_xor() {
        // A histogram's `_sum` adds up measured durations, here by a clock
        // on no grid (Python's `perf_counter`): no decimal past the first
        // few, nor near one, and the XOR of two sums keeps most of the
        // mantissa. Its bit pattern moves by about the same number of units
        // in the last place each scrape.
        let mut draw = xorshift(0x9e37_79b9_7f4a_7c15u64);
        // A clock read at each scrape (`node_time_seconds`), in nanoseconds
        // but too large for them to be many units in the last place.
        let clock: Vec<Sample> = (0..480)
            .map(|i| Sample {
                timestamp_ms: i * 15_000,
                value: 1.7e9 + i as f64 * 15.0 + (draw() % 2_000_000) as f64 / 1e9,
            })
            .collect();
        let mut sum = 0.0f64;
        let sums: Vec<Sample> = (0..480)
            .map(|i| {
                for _ in 0..20 {
                    sum += 0.03 + (draw() >> 11) as f64 / (1u64 << 53) as f64 * 0.04;
                }
                Sample {
                    timestamp_ms: i * 15_000,
                    value: sum,
                }
            })
            .collect();
        // The clock's jitter is under a sixteenth of its tenths: near
        // decimals of one digit, moving by 150 a scrape, smaller still.
        for (samples, flag) in [(&sums, VALUES_AS_BITS), (&clock, VALUES_NEAR_DECIMAL)] {
            assert!(decimal_values(samples).is_none());
            let (chunk, _) = in_block_reads_back_and_refuses_every_cut(samples);
            assert_eq!(chunk[3], TIMES_SHARED | flag | ZERO_RUNS);
            let xor = xor_values(samples).len();
            assert!(
                chunk.len() * 100 < xor * 85,
                "{} bytes as bit patterns, {xor} XOR'd",
                chunk.len()
            );
            assert!(chunk.len() <= bit_pattern_values(samples).len() + 5);
            let inline = encode_packed(samples, None);
            assert_eq!(inline[3], TIMES_INLINE | flag | ZERO_RUNS);
            reads_back_and_refuses_every_cut(&inline, samples);
        }
        assert_eq!(near_decimal_values(&clock).map(|n| n[1] >> 3 & 15), Some(1));
        // Flagged bit patterns must be integer-coded; XOR'd values with the
        // flag are refused.
        let mut flagged = encode_packed(&sums[..3], Some(0));
        let xor = xor_values(&sums[..3]);
        flagged.truncate(5);
        flagged[3] = TIMES_SHARED | VALUES_AS_BITS;
        flagged.extend_from_slice(xor.bytes());
        let column: Vec<i64> = sums[..3].iter().map(|s| s.timestamp_ms).collect();
        assert_eq!(
            three_in_block(&flagged, &column),
            Err(CorruptChunk("bit patterns flagged on XOR'd values"))
        );
    }

    #[test]
    fn totals_of_nanosecond_measurements_are_kept_as_near_decimals() {
        // A Go or Java client's `_sum`: latencies measured in whole
        // nanoseconds, added up in a float, so each total is within a few
        // units in the last place of a 9-digit decimal, not on one.
        let mut draw = xorshift(0x2545_f491_4f6c_dd1du64);
        let mut sum = 1234.5f64;
        let sums: Vec<Sample> = (0..480)
            .map(|i| {
                for _ in 0..(draw() % 40) {
                    sum += (1_000_000 + draw() % 90_000_000) as f64 / 1e9;
                }
                Sample {
                    timestamp_ms: i * 15_000,
                    value: sum,
                }
            })
            .collect();
        assert!(decimal_values(&sums).is_none());
        let (sums_chunk, column) = in_block_reads_back_and_refuses_every_cut(&sums);
        assert_eq!(
            sums_chunk[3],
            TIMES_SHARED | VALUES_NEAR_DECIMAL | ZERO_RUNS
        );
        let patterns = bit_pattern_values(&sums).len();
        assert!(
            sums_chunk.len() * 100 < patterns * 85,
            "{} bytes as near decimals, {patterns} as bit patterns",
            sums_chunk.len()
        );
        let inline = encode_packed(&sums, None);
        assert_eq!(inline[3], TIMES_INLINE | VALUES_NEAR_DECIMAL | ZERO_RUNS);
        reads_back_and_refuses_every_cut(&inline, &sums);
        // Decimals but for a few computed values (an average, a ratio):
        // near decimals whose differences are mostly zeros.
        let mut gauge: Vec<Sample> = (0..120)
            .map(|i| Sample {
                timestamp_ms: i * 15_000,
                value: (100 + i * 7 % 13) as f64 / 10.0,
            })
            .collect();
        gauge[40].value = 2.0 / 3.0;
        gauge[90].value = 10.0f64.sqrt();
        let (chunk, _) = in_block_reads_back_and_refuses_every_cut(&gauge);
        assert_eq!(chunk[3], TIMES_SHARED | VALUES_NEAR_DECIMAL | ZERO_RUNS);
        assert!(
            chunk.len() < xor_values(&gauge).len() / 2,
            "{} bytes",
            chunk.len()
        );
        // Both value flags at once are refused.
        let mut both = sums_chunk;
        both[3] |= VALUES_AS_BITS;
        assert_eq!(
            decode_in_block(&both, &[column], &mut Vec::new()),
            Err(CorruptChunk(
                "values flagged as bit patterns and near decimals"
            ))
        );
        // A stale marker among them keeps the last decimal; values too
        // large for a unit to be many units in the last place are none.
        let mut stale = sums[..16].to_vec();
        stale[5].value = f64::from_bits(STALE_NAN_BITS);
        stale[11].value = f64::INFINITY;
        assert!(near_decimal_values(&stale).is_some());
        reads_back_and_refuses_every_cut(&encode_packed(&stale, None), &stale);
        let huge = [Sample {
            timestamp_ms: 0,
            value: 1e17 + 16.0,
        }];
        assert!(near_decimal_values(&huge).is_none());
    }

    #[test]
    fn packed_bytes_read_as_written_down() {
        // The format, byte for byte (these are also fuzz seeds): 5, 3
        // samples, the block's column 0; values: decimal, 0 digits, order 1,
        // no zero flag, Rice (not fixed width) k = 0, base 1 and first value 5
        // (each bucket `10` + 7 bits), then two residuals of `0` (base + 0).
        let rice = [0x05, 0x00, 0x03, 0x01, 0x00, 0x82, 0x01, 0x01, 0x82, 0x80];
        let column = vec![1000, 16_000, 31_000];
        let mut out = Vec::new();
        decode_in_block(&rice, std::slice::from_ref(&column), &mut out).unwrap();
        let expected: Vec<Sample> = [(1000, 5.0), (16_000, 6.0), (31_000, 7.0)]
            .map(|(timestamp_ms, value)| Sample {
                timestamp_ms,
                value,
            })
            .to_vec();
        assert!(same(&out, &expected), "{out:?}");
        // With the layout byte's top bit, the same integers are bit patterns.
        let mut as_bits = rice;
        as_bits[3] |= 0x80;
        out.clear();
        decode_in_block(&as_bits, std::slice::from_ref(&column), &mut out).unwrap();
        let patterns: Vec<u64> = out.iter().map(|s| s.value.to_bits()).collect();
        assert_eq!(patterns, [5, 6, 7]);
        // The encoder finds that a fixed width of 0 bits says the same (and
        // flags zero runs, which these residuals do not use).
        let shared = [0x05, 0x00, 0x03, 0x21, 0x00, 0x82, 0x81, 0x01, 0x82, 0x80];
        assert_eq!(encode_packed(&expected, Some(0)), shared);
        // 5, 5, 5, 6, 6 with zeros in runs: the same header with the zero
        // flag, a fixed width of 0 bits and the runs' k = 0 (`0000`) after
        // it; base 1, first value 5; then a run of two zeros (`110`), the
        // residual (no bits), the run of one that ends the chunk (`10`).
        let runs = [
            0x05, 0x00, 0x05, 0x21, 0x00, 0x83, 0x80, 0x10, 0x18, 0x2e, 0x80,
        ];
        let five = vec![0, 15_000, 30_000, 45_000, 60_000];
        out.clear();
        decode_in_block(&runs, std::slice::from_ref(&five), &mut out).unwrap();
        let values: Vec<f64> = out.iter().map(|s| s.value).collect();
        assert_eq!(values, [5.0, 5.0, 5.0, 6.0, 6.0]);
        // A last run of two, one more than the chunk holds, is refused.
        let mut past = runs;
        past[10] = 0xc0;
        assert_eq!(
            decode_in_block(&past, std::slice::from_ref(&five), &mut Vec::new()),
            Err(CorruptChunk("a run of zeros past the chunk's end"))
        );
        // Chunks written before zero runs flag each residual instead, and
        // read as they did: the same values, flags `0010` after the first.
        let flags = [0x05, 0x00, 0x05, 0x01, 0x00, 0x83, 0x81, 0x01, 0x82, 0x90];
        out.clear();
        decode_in_block(&flags, std::slice::from_ref(&five), &mut out).unwrap();
        let values: Vec<f64> = out.iter().map(|s| s.value).collect();
        assert_eq!(values, [5.0, 5.0, 5.0, 6.0, 6.0]);
        // The timestamps inline: their byte length, then the first whole and
        // the delta-of-deltas (15 000 in the 17-bit bucket, then 0).
        let mut inline = vec![0x05, 0x00, 0x03, 0x20];
        let times = encode_times(column.iter().copied());
        inline.push(times.len() as u8);
        inline.extend_from_slice(&times);
        inline.extend_from_slice(&shared[5..]);
        assert!(same(&decode(&inline).unwrap(), &expected));
        assert_eq!(encode_packed(&expected, None), inline);
    }

    /// `samples` packed against their block's timestamp column read back,
    /// and every cut of the chunk past its header is refused; the chunk
    /// and the column.
    fn in_block_reads_back_and_refuses_every_cut(samples: &[Sample]) -> (Vec<u8>, Vec<i64>) {
        let chunk = encode_packed(samples, Some(0));
        let column: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
        let mut decoded = Vec::new();
        decode_in_block(&chunk, std::slice::from_ref(&column), &mut decoded).unwrap();
        assert!(same(&decoded, samples));
        for cut in 5..chunk.len() {
            let mut out = Vec::new();
            assert!(
                decode_in_block(&chunk[..cut], std::slice::from_ref(&column), &mut out).is_err()
            );
        }
        (chunk, column)
    }

    /// `samples` packed with their timestamps inline read back bit-exactly,
    /// and the chunk cut in half or by its last byte is refused.
    fn inline_round_trip_refusing_cuts(samples: &[Sample]) -> Result<(), TestCaseError> {
        let chunk = encode_packed(samples, None);
        let decoded = decode(&chunk).unwrap();
        prop_assert!(same(&decoded, samples), "{:?} != {:?}", decoded, samples);
        for cut in [chunk.len() / 2, chunk.len() - 1] {
            prop_assert!(decode(&chunk[..cut]).is_err());
        }
        Ok(())
    }

    /// A xorshift generator of random draws from `seed`.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Decodes a chunk of three samples against the first three of `column`.
    fn three_in_block(chunk: &[u8], column: &[i64]) -> Result<(), CorruptChunk> {
        decode_in_block(chunk, &[column[..3].to_vec()], &mut Vec::new())
    }

    #[test]
    fn sizes_moving_by_whole_pages_are_written_in_pages() {
        // Free memory as node_exporter reports it: bytes, up or down by a
        // few 4 KiB pages a scrape.
        let mut rng = 7u64;
        let mut bytes = 21_935_472_640i64;
        let samples: Vec<Sample> = (0..SAMPLES_PER_CHUNK as i64)
            .map(|i| {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                bytes += ((rng >> 33) % 64) as i64 * 4096 - 32 * 4096;
                Sample {
                    timestamp_ms: 1_700_000_000_000 + i * 15_000,
                    value: bytes as f64,
                }
            })
            .collect();
        let (chunk, column) = in_block_reads_back_and_refuses_every_cut(&samples);
        // Six or seven bits a sample for the pages; in bytes it would be
        // eighteen or nineteen.
        assert!(chunk.len() < 120, "{} bytes", chunk.len());
        // A factor of 0 is corrupt: packed, column 0, decimal with 0
        // digits, order 1, no flags, the escape, then a factor of 0 (a `0`
        // bit).
        let zero = [0x05, 0x00, 0x03, 0x01, 0x00, 0x82, 0x7e];
        assert_eq!(
            three_in_block(&zero, &column),
            Err(CorruptChunk("residual factor below 1"))
        );
    }

    #[test]
    fn fresh_measurements_take_truncated_binary_widths() {
        // Collector durations in nanoseconds, spread evenly over 40,000
        // values, a block's chunk of them: 16 bits in a plain fixed width,
        // about 15.7 Rice-coded, 15.5 in truncated binary (codes below
        // 2^16 less the number of codes take 15 bits).
        let mut rng = 11u64;
        let samples: Vec<Sample> = (0..480)
            .map(|i| {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let ns = 60_000 + ((rng >> 33) % 40_001) as i64;
                Sample {
                    timestamp_ms: 1_700_000_000_000 + i * 15_000,
                    value: format!("{}", ns as f64 / 1e9).parse().unwrap(),
                }
            })
            .collect();
        let (_, column) = in_block_reads_back_and_refuses_every_cut(&samples);
        let scaled: Vec<i64> = samples
            .iter()
            .map(|s| scaled(s.value, 9).unwrap())
            .collect();
        let coding = best_factored(0, &scaled[1..]);
        assert!(coding.fixed && coding.largest > 0, "{coding:?}");
        assert!(coding.bits < 479 * 16 - 150, "{coding:?}");
        // A largest code that is not of the width is refused.
        let mut wrong = BitWriter::default();
        wrong.bit(true);
        wrong.write(9, 4);
        wrong.write(0, 2);
        wrong.bit(false);
        wrong.bit(true);
        wrong.write(u64::from(EXTENDED), 6);
        write_bucketed(&mut wrong, 1, VALUE_WIDTHS);
        write_bucketed(&mut wrong, 40_000, VALUE_WIDTHS);
        wrong.write(17, 6);
        let mut bytes = vec![PACKED, 0, 3, TIMES_SHARED, 0];
        bytes.extend_from_slice(wrong.bytes());
        assert_eq!(
            three_in_block(&bytes, &column),
            Err(CorruptChunk("largest residual code does not fit its width"))
        );
    }

    #[test]
    fn a_packed_chunk_cut_short_anywhere_is_refused() {
        // Rice-coded and fixed-width residuals with a zero flag, whole and
        // with digits: the decoder reads ahead without a check per field.
        for digits in [0, 2] {
            for jumpy in [false, true] {
                let samples: Vec<Sample> = (0..300i64)
                    .map(|i| {
                        let m = if jumpy {
                            (i * 7_919) % 1_000
                        } else {
                            i * 3 + i % 5 * (i % 2)
                        };
                        Sample {
                            timestamp_ms: 1_700_000_000_000 + i * 15_000,
                            value: format!("{}", m as f64 / POW10[digits]).parse().unwrap(),
                        }
                    })
                    .collect();
                reads_back_and_refuses_every_cut(&encode_packed(&samples, None), &samples);
            }
        }
    }

    #[test]
    fn bucketed_codes_of_every_width_read_back_and_cut_short_anywhere_are_refused() {
        // Timestamp and value changes in every bucket and past the last
        // (the 64-bit escape), in an open chunk (decimal) and in a packed
        // one with its timestamps inline.
        let mut t = 1_700_000_000_000i64;
        let mut m = 0i64;
        let samples: Vec<Sample> = (0..200i64)
            .map(|i| {
                t += match i % 7 {
                    0 => 15_000,
                    1 => 15_003,
                    2 => 15_000 + 9_000,
                    3 => 15_000 + 100_000,
                    4 => 15_000 + 600_000,
                    5 => 1 << 33,
                    _ => 14_998,
                };
                m += match i % 6 {
                    0 => 0,
                    1 => 50,
                    2 => -5_000,
                    3 => 3_000_000,
                    4 => -(1 << 35),
                    _ => 1 << 45,
                };
                Sample {
                    timestamp_ms: t,
                    value: format!("{}", m as f64 / 100.0).parse().unwrap(),
                }
            })
            .collect();
        let opened = open_chunk_bytes(&samples);
        assert_eq!(opened[0], DECIMAL);
        let packed = encode_packed(&samples, None);
        for chunk in [opened, packed] {
            reads_back_and_refuses_every_cut(&chunk, &samples);
        }
    }

    #[test]
    fn truncation_is_reported() {
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample {
                timestamp_ms: i * 1000,
                value: i as f64 * 1.5,
            })
            .collect();
        let bytes = encode(&samples);
        assert_eq!(
            decode(&bytes[..bytes.len() - 3]),
            Err(CorruptChunk("truncated"))
        );
    }
}
