//! Compressed sample chunks: delta-of-delta timestamps and XOR'd floats, as in
//! Facebook's Gorilla paper (and Prometheus's XOR chunks).
//!
//! A chunk is `[sample count: u16 big-endian][bit stream]`. The first sample is
//! written whole (64-bit timestamp, 64-bit value); each later timestamp as the
//! change in its delta, in the smallest of five buckets; each later value as
//! its XOR with the previous, reusing the previous window of meaningful bits
//! when it fits.

use sextant_model::Sample;

use super::bits::{BitReader, BitWriter};

/// Samples per chunk before it is sealed: Prometheus's figure, where the
/// compression ratio flattens out.
pub const SAMPLES_PER_CHUNK: usize = 120;

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
        // (prefix, prefix length, value bits)
        const BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];
        if dod == 0 {
            self.bits.bit(false);
            return;
        }
        for (prefix, prefix_len, width) in BUCKETS {
            let limit = 1i64 << (width - 1);
            if (-limit..limit).contains(&dod) {
                self.bits.write(prefix, prefix_len);
                self.bits.write(dod as u64, width);
                return;
            }
        }
        self.bits.write(0b1111, 4);
        self.bits.write(dod as u64, 64);
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
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.bits.len());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(self.bits.bytes());
        out
    }

    /// Bytes the encoded chunk takes.
    pub fn encoded_len(&self) -> usize {
        2 + self.bits.len()
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
    let truncated = CorruptChunk("truncated");
    let header: [u8; 2] = chunk
        .get(..2)
        .and_then(|h| h.try_into().ok())
        .ok_or(CorruptChunk("no header"))?;
    let count = u16::from_be_bytes(header);
    if count == 0 {
        return Ok(());
    }
    out.reserve(usize::from(count));
    let mut bits = BitReader::new(&chunk[2..]);
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
        let dod = read_dod(&mut bits).ok_or(truncated.clone())?;
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

fn read_dod(bits: &mut BitReader<'_>) -> Option<i64> {
    let mut ones = 0u8;
    while ones < 4 && bits.bit()? {
        ones += 1;
    }
    let width = match ones {
        0 => return Some(0),
        1 => 14,
        2 => 17,
        3 => 20,
        _ => 64,
    };
    let raw = bits.read(width)?;
    // Sign-extend from `width` bits.
    let shift = 64 - u32::from(width);
    Some(((raw << shift) as i64) >> shift)
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
