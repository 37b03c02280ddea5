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
//! The head appends to an XOR chunk as samples arrive and re-encodes it with
//! [`encode_best`] when it is sealed; blocks are written with [`encode_best`].

use sextant_model::Sample;

use super::bits::{BitReader, BitWriter};

/// Samples per head chunk before it is sealed: Prometheus's figure, where the
/// compression ratio flattens out.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Encoding byte of a Gorilla XOR chunk.
pub const XOR: u8 = 1;
/// Encoding byte of a scaled-decimal chunk.
pub const DECIMAL: u8 = 2;

/// Builds a chunk one sample at a time. Timestamps must strictly increase.
#[derive(Debug, Clone, Default)]
pub struct ChunkEncoder {
    bits: BitWriter,
    count: u16,
    first_t: i64,
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
                self.first_t = t;
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
        let xor = bits ^ self.last_value;
        if xor == 0 {
            self.bits.bit(false);
            return;
        }
        self.bits.bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
            self.bits.bit(false);
            let width = 64 - self.leading - self.trailing;
            self.bits.write(xor >> self.trailing, width);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            let width = 64 - leading - trailing;
            self.bits.bit(true);
            self.bits.write(u64::from(leading), 5);
            // 64 meaningful bits do not fit in 6 bits; 0 stands for 64.
            self.bits.write(u64::from(width % 64), 6);
            self.bits.write(xor >> trailing, width);
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
        self.first_t
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

/// Decodes every sample of a chunk, appending to `out`.
pub fn decode_into(chunk: &[u8], out: &mut Vec<Sample>) -> Result<(), CorruptChunk> {
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
        if bits.bit().ok_or(truncated.clone())? {
            if bits.bit().ok_or(truncated.clone())? {
                leading = bits.read(5).ok_or(truncated.clone())? as u8;
                let width = match bits.read(6).ok_or(truncated.clone())? as u8 {
                    0 => 64,
                    w => w,
                };
                if u32::from(leading) + u32::from(width) > 64 {
                    return Err(CorruptChunk("value window out of range"));
                }
                trailing = 64 - leading - width;
            }
            let width = 64 - leading - trailing;
            let xor = bits.read(width).ok_or(truncated.clone())?;
            value ^= xor << trailing;
        }
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

/// Encodes samples (strictly increasing timestamps) in whichever encoding is smallest.
pub fn encode_best(samples: &[Sample]) -> Vec<u8> {
    let mut xor = ChunkEncoder::default();
    for s in samples {
        xor.append(s.timestamp_ms, s.value);
    }
    let xor = xor.bytes();
    let digits = samples
        .iter()
        .map(|s| decimal_digits(s.value))
        .try_fold(0, |max, d| d.map(|d| max.max(d)));
    let Some(digits) = digits else { return xor };
    let Some(scaled): Option<Vec<i64>> = samples.iter().map(|s| scaled(s.value, digits)).collect()
    else {
        return xor;
    };
    [false, true]
        .into_iter()
        .map(|second_order| encode_decimal(samples, &scaled, digits, second_order))
        .chain(std::iter::once(xor))
        .min_by_key(Vec::len)
        .expect("three candidates")
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
/// Bucket widths of scaled-value residuals: `0`, then `10`..`11110` prefix 7,
/// 14, 24, 40 bits, and `11111` 64.
const VALUE_WIDTHS: &[u8] = &[7, 14, 24, 40];

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
    let mut ones = 0usize;
    while ones <= widths.len() && bits.bit()? {
        ones += 1;
    }
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
    for _ in 1..count {
        delta_t =
            delta_t.wrapping_add(read_bucketed(&mut bits, TIME_WIDTHS).ok_or(truncated.clone())?);
        t = t.wrapping_add(delta_t);
        let residual = read_bucketed(&mut bits, VALUE_WIDTHS).ok_or(truncated.clone())?;
        delta_m = if second_order {
            delta_m.wrapping_add(residual)
        } else {
            residual
        };
        m = m.wrapping_add(delta_m);
        out.push(Sample {
            timestamp_ms: t,
            value: m as f64 / scale,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encode(samples: &[Sample]) -> Vec<u8> {
        let mut encoder = ChunkEncoder::default();
        for s in samples {
            encoder.append(s.timestamp_ms, s.value);
        }
        encoder.bytes()
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
            let best = encode_best(&samples);
            let decoded = decode(&best).unwrap();
            prop_assert!(same(&decoded, &samples), "{:?} != {:?}", decoded, samples);
        }

        #[test]
        fn corrupt_chunks_error_instead_of_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
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
        let best = encode_best(&samples);
        assert_eq!(best[0], DECIMAL);
        assert!(best.len() < xor.len(), "{} vs {}", best.len(), xor.len());
        assert!(same(&decode(&best).unwrap(), &samples));
        // Negative zero, NaN and values with too many digits stay XOR, exactly.
        for odd in [-0.0, f64::NAN, 0.1 + 0.2, 1e300] {
            let mut with_odd = samples.clone();
            with_odd[7].value = odd;
            let chunk = encode_best(&with_odd);
            assert_eq!(chunk[0], XOR, "{odd}");
            assert!(same(&decode(&chunk).unwrap(), &with_odd));
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
