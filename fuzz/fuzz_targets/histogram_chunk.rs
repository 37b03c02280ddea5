//! Histogram chunk decoding never panics on corrupt bytes, and histograms
//! built from the fuzz input come back exactly from their chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_model::histogram::{CounterResetHint, FloatHistogram, Histogram, Span};
use sextant_storage::tsdb::histogram_chunk::{
    AppendOutcome, FloatHistogramChunkEncoder, HistogramChunkEncoder, decode_float_histograms,
    decode_histograms,
};

/// Reads little pieces of the input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, _| (v << 8) | u64::from(self.byte()))
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_histograms(data);
    let _ = decode_float_histograms(data);

    // A small layout, then samples whose counts come from the input.
    let mut input = Input(data);
    let schema = match input.byte() % 15 {
        14 => -53,
        s => i32::from(s) - 4,
    };
    let custom = schema == -53;
    let spans = |input: &mut Input<'_>, n: u8| -> Vec<Span> {
        (0..n % 4)
            .map(|_| Span {
                offset: i32::from(input.byte() % 4),
                length: u32::from(input.byte() % 4),
            })
            .collect()
    };
    let n = input.byte();
    let positive_spans = spans(&mut input, n);
    let n = input.byte();
    let negative_spans = if custom {
        Vec::new()
    } else {
        spans(&mut input, n)
    };
    let n_pos: u32 = positive_spans.iter().map(|s| s.length).sum();
    let n_neg: u32 = negative_spans.iter().map(|s| s.length).sum();
    let hint = match input.byte() % 4 {
        0 => CounterResetHint::Unknown,
        1 => CounterResetHint::NotCounterReset,
        2 => CounterResetHint::CounterReset,
        _ => CounterResetHint::Gauge,
    };
    let mut ints = HistogramChunkEncoder::default();
    let mut floats = FloatHistogramChunkEncoder::default();
    let (mut int_samples, mut float_samples) = (Vec::new(), Vec::new());
    let mut t = input.u64() as i64 >> 2;
    while !input.0.is_empty() {
        t = t.wrapping_add(i64::from(input.byte()) + 1);
        let small = input.byte() % 2 == 0;
        let mut value = || {
            if small {
                u64::from(input.byte())
            } else {
                input.u64()
            }
        };
        let count = value();
        let zero_count = if custom { 0 } else { value() };
        let sum = f64::from_bits(value());
        let positive: Vec<u64> = (0..n_pos).map(|_| value()).collect();
        let negative: Vec<u64> = (0..n_neg).map(|_| value()).collect();
        let deltas = |v: &[u64]| -> Vec<i64> {
            let mut previous = 0u64;
            v.iter()
                .map(|&c| {
                    let d = c.wrapping_sub(previous) as i64;
                    previous = c;
                    d
                })
                .collect()
        };
        let h = Histogram {
            counter_reset_hint: hint,
            schema,
            zero_threshold: if custom { 0.0 } else { 0.001 },
            zero_count,
            count,
            sum,
            positive_spans: positive_spans.clone(),
            negative_spans: negative_spans.clone(),
            positive_buckets: deltas(&positive),
            negative_buckets: deltas(&negative),
            custom_values: if custom {
                vec![0.5, 1.0, 2.5]
            } else {
                Vec::new()
            },
        };
        let f = FloatHistogram {
            counter_reset_hint: hint,
            schema,
            zero_threshold: h.zero_threshold,
            zero_count: if small {
                zero_count as f64
            } else {
                f64::from_bits(zero_count)
            },
            count: if small {
                count as f64
            } else {
                f64::from_bits(count)
            },
            sum,
            positive_spans: positive_spans.clone(),
            negative_spans: negative_spans.clone(),
            positive_buckets: positive.iter().map(|&c| c as f64).collect(),
            negative_buckets: negative.iter().map(|&c| f64::from_bits(c)).collect(),
            custom_values: h.custom_values.clone(),
        };
        if ints.append(t, &h) == Ok(AppendOutcome::Appended) {
            int_samples.push((t, h));
        }
        if floats.append(t, &f) == Ok(AppendOutcome::Appended) {
            float_samples.push((t, f));
        }
    }
    let decoded = decode_histograms(&ints.bytes()).expect("own chunk decodes");
    assert_eq!(decoded.len(), int_samples.len());
    for ((t, h), (dt, d)) in int_samples.iter().zip(&decoded) {
        assert_eq!(t, dt);
        assert!(
            h.equals(d) || h.sum.to_bits() == sextant_model::STALE_NAN_BITS,
            "{h:?} != {d:?}"
        );
    }
    let decoded = decode_float_histograms(&floats.bytes()).expect("own chunk decodes");
    assert_eq!(decoded.len(), float_samples.len());
    for ((t, h), (dt, d)) in float_samples.iter().zip(&decoded) {
        assert_eq!(t, dt);
        assert!(
            h.equals(d) || h.sum.to_bits() == sextant_model::STALE_NAN_BITS,
            "{h:?} != {d:?}"
        );
    }
});
