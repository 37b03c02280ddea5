//! A second shape of metrics data: a fleet of services instrumented with
//! Prometheus client libraries, as their `/metrics` pages look to a
//! scraper. Where [`crate::NodeWorkload`] is mostly gauges and slow
//! counters of one machine, this is what application dashboards read:
//!
//! - `http_requests_total{handler,method,code}`: counters moved by
//!   Poisson-drawn request counts, busy handlers and rare error codes, with
//!   traffic rising and falling through the day;
//! - `http_request_duration_seconds` as a classic histogram (the client
//!   libraries' 11 default buckets and `+Inf`, `_sum`, `_count`): bucket
//!   counts cumulative, `_sum` the floating-point total of every measured
//!   latency, full precision, as the libraries add them up;
//! - the process collector (`process_cpu_seconds_total` in clock ticks,
//!   resident and virtual memory in pages, open file descriptors, the start
//!   time) and the Go runtime's (`go_goroutines`, heap bytes and objects
//!   as they grow and fall at each collection, `go_gc_duration_seconds` as
//!   a summary of nanosecond pauses);
//! - `up`, which Prometheus adds to every target.
//!
//! Every series of the fleet is scraped at the same instants, 15 s apart, a
//! scrape a few milliseconds late one time in fifty.

use sextant_model::Labels;

use crate::Rng;

/// The client libraries' default histogram buckets, `+Inf` last.
const BUCKETS: [f64; 12] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];
const HANDLERS: [&str; 5] = ["/", "/api/orders", "/api/cart", "/api/users", "/healthz"];
const METHODS: [&str; 2] = ["GET", "POST"];
/// Response codes and their share of a handler's requests.
const CODES: [(&str, f64); 3] = [("200", 0.97), ("404", 0.025), ("500", 0.005)];
const SERVICES: [&str; 8] = [
    "checkout", "cart", "users", "orders", "payments", "search", "catalog", "gateway",
];
const QUANTILES: [&str; 5] = ["0", "0.25", "0.5", "0.75", "1"];
const DAY_MS: f64 = 86_400_000.0;
/// The spread of a handler's log-normal latency.
const LATENCY_SIGMA: f64 = 0.6;

/// Every series' labels and samples for `targets` service instances over
/// `scrapes` scrapes from `start_ms`: the same `(labels, samples)` pairs
/// whichever store they go to.
pub fn app_fleet_history(
    targets: usize,
    scrapes: usize,
    start_ms: i64,
    seed: u64,
) -> (Vec<Labels>, Vec<Vec<(i64, f64)>>) {
    let mut rng = Rng(seed | 1);
    let mut instances: Vec<Instance> = (0..targets).map(|i| Instance::new(i, &mut rng)).collect();
    let labels: Vec<Labels> = instances.iter().flat_map(Instance::labels).collect();
    let mut series: Vec<Vec<(i64, f64)>> = vec![Vec::with_capacity(scrapes); labels.len()];
    let mut values = Vec::with_capacity(labels.len());
    let mut next_ms = start_ms;
    for _ in 0..scrapes {
        let late = if rng.next_u64().is_multiple_of(50) {
            1 + (rng.next_u64() % 40) as i64
        } else {
            0
        };
        let t = next_ms + late;
        values.clear();
        for instance in &mut instances {
            instance.scrape(t, &mut rng, &mut values);
        }
        for (s, v) in series.iter_mut().zip(&values) {
            s.push((t, *v));
        }
        next_ms += 15_000;
    }
    (labels, series)
}

/// The entropy of the values [`app_fleet_history`] makes with the same
/// arguments, in bytes a sample averaged over its series: about the least a
/// store that keeps each series on its own can hold them in losslessly
/// (timestamps and the index left out). Worked out from the draws that move
/// each series, not from the samples:
///
/// - a counter moved by Poisson-drawn requests (each code of each method,
///   each cumulative bucket, since thinning a Poisson count by the share of
///   latencies under a bound leaves one, `_count`, CPU ticks) carries the
///   entropy of its draw;
/// - a `_sum` at least that of its increment given how many requests it
///   adds up, in nanoseconds: a log-normal's for one, a normal's of the
///   same variance for more (a lower bound; the count is not known to it);
/// - memory, goroutines and descriptors that of their uniform steps, the
///   garbage collector's series that of a collection and its pause;
/// - constant series nothing.
pub fn app_fleet_entropy_bytes_per_sample(
    targets: usize,
    scrapes: usize,
    start_ms: i64,
    seed: u64,
) -> f64 {
    let bits = app_fleet_entropy_bits(targets, scrapes, start_ms, seed);
    bits.iter().sum::<f64>() / 8.0 / (bits.len() * scrapes.max(1)) as f64
}

/// Each series' entropy over all its samples, bits, in the order of
/// [`app_fleet_history`]'s series (see
/// [`app_fleet_entropy_bytes_per_sample`]).
pub fn app_fleet_entropy_bits(
    targets: usize,
    scrapes: usize,
    start_ms: i64,
    seed: u64,
) -> Vec<f64> {
    let mut rng = Rng(seed | 1);
    let instances: Vec<Instance> = (0..targets).map(|i| Instance::new(i, &mut rng)).collect();
    let per_instance = instances.first().map_or(0, |i| i.labels().len());
    let either = |p: f64| {
        if p <= 0.0 || p >= 1.0 {
            0.0
        } else {
            -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
        }
    };
    // A pause is drawn over 200 µs; the inner quantiles over 0.4 of the
    // spread between the outer ones, at most that.
    let pause_bits = 200_000f64.log2();
    let quantile_bits = (0.4 * 200_000f64).log2();
    let mut bits = vec![0.0; targets * per_instance];
    for scrape in 0..scrapes {
        let t = start_ms as f64 + scrape as f64 * 15_000.0;
        let traffic = 1.0 + 0.4 * (t / DAY_MS * std::f64::consts::TAU).sin();
        // About 3.9 MB of garbage between collections, 0.2 MB a scrape.
        let collected = (traffic / 19.5).min(1.0);
        for (instance, out) in instances.iter().zip(bits.chunks_mut(per_instance.max(1))) {
            let mut each = Vec::with_capacity(per_instance);
            for h in &instance.handlers {
                let rate = h.per_scrape * traffic;
                for share in [0.8, 0.2] {
                    for (_, code_share) in CODES {
                        each.push(poisson_entropy(rate * share * code_share));
                    }
                }
                for bound in BUCKETS {
                    let under = if bound.is_infinite() {
                        1.0
                    } else {
                        normal_cdf((bound / h.median).ln() / LATENCY_SIGMA)
                    };
                    each.push(poisson_entropy(rate * under));
                }
                each.push(latency_sum_entropy(rate, h.median));
                each.push(poisson_entropy(rate));
            }
            each.extend([
                poisson_entropy(instance.cpu_per_scrape * traffic),
                either(0.5) + 0.5 * 101f64.log2(),
                either(0.05) + 0.05 * 2049f64.log2(),
                either(0.3) + 0.3 * 7f64.log2(),
                0.0,
                0.0,
                11f64.log2(),
                (200_000.0 * traffic).log2(),
                (200_000.0 * traffic / 96.0).log2(),
            ]);
            // The outer quantiles move seldom once set: left at nothing.
            each.extend([
                0.0,
                collected * quantile_bits,
                collected * quantile_bits,
                collected * quantile_bits,
                0.0,
            ]);
            each.extend([
                either(collected) + collected * pause_bits,
                either(collected),
                0.0,
            ]);
            debug_assert_eq!(each.len(), per_instance);
            for (total, b) in out.iter_mut().zip(each) {
                *total += b;
            }
        }
    }
    bits
}

/// The entropy of a Poisson draw of mean `mean`, bits.
fn poisson_entropy(mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 50.0 {
        return 0.5 * (std::f64::consts::TAU * std::f64::consts::E * mean).log2();
    }
    let mut p = (-mean).exp();
    let mut bits = 0.0;
    let last = (mean + 12.0 * mean.sqrt() + 25.0) as u32;
    for k in 0..=last {
        if k > 0 {
            p *= mean / f64::from(k);
        }
        if p > 0.0 {
            bits -= p * p.log2();
        }
    }
    bits
}

/// A lower bound on the entropy of what `mean` requests a scrape add to a
/// `_sum`, in nanoseconds: the entropy given the number of requests.
fn latency_sum_entropy(mean: f64, median: f64) -> f64 {
    let s2 = LATENCY_SIGMA * LATENCY_SIGMA;
    let ns = median * 1e9;
    let variance = ns * ns * s2.exp() * (s2.exp() - 1.0);
    let normal = |n: f64| 0.5 * (std::f64::consts::TAU * std::f64::consts::E * n * variance).log2();
    if mean > 50.0 {
        return normal(mean);
    }
    let one = (ns.ln() + 0.5 * (std::f64::consts::TAU * std::f64::consts::E * s2).ln())
        / std::f64::consts::LN_2;
    let mut p = (-mean).exp();
    let mut bits = 0.0;
    let last = (mean + 12.0 * mean.sqrt() + 25.0) as u32;
    for n in 1..=last {
        p *= mean / f64::from(n);
        bits += p * if n == 1 { one } else { normal(f64::from(n)) };
    }
    bits
}

/// The standard normal's distribution function (Abramowitz and Stegun
/// 7.1.26, within 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// One handler's request mix and latency.
#[derive(Debug)]
struct Handler {
    /// Requests a scrape interval at the day's mean traffic.
    per_scrape: f64,
    /// The median latency, seconds.
    median: f64,
    /// `http_requests_total` by method and code.
    requests: Vec<f64>,
    /// Cumulative bucket counts.
    buckets: [u64; 12],
    sum: f64,
    count: u64,
}

/// One service instance's state between scrapes.
#[derive(Debug)]
struct Instance {
    service: &'static str,
    address: String,
    handlers: Vec<Handler>,
    cpu_ticks: u64,
    /// CPU ticks a scrape interval.
    cpu_per_scrape: f64,
    resident_pages: i64,
    virtual_pages: i64,
    open_fds: i64,
    start_time: f64,
    goroutines: i64,
    heap_bytes: i64,
    heap_objects: i64,
    gc_quantiles_ns: [u64; 5],
    gc_sum: f64,
    gc_count: u64,
}

impl Instance {
    fn new(i: usize, rng: &mut Rng) -> Self {
        let service = SERVICES[i % SERVICES.len()];
        let handlers = HANDLERS
            .iter()
            .map(|_| Handler {
                per_scrape: 10f64.powf(rng.unit() * 3.0),
                median: 0.005 + 0.3 * rng.unit() * rng.unit(),
                requests: vec![0.0; METHODS.len() * CODES.len()],
                buckets: [0; 12],
                sum: 0.0,
                count: 0,
            })
            .collect();
        Self {
            service,
            address: format!(
                "10.0.{}.{}:8080",
                i / SERVICES.len(),
                10 + i % SERVICES.len()
            ),
            handlers,
            cpu_ticks: rng.next_u64() % 500_000,
            cpu_per_scrape: 15.0 * 100.0 * (0.02 + 0.5 * rng.unit()),
            resident_pages: 10_000 + (rng.next_u64() % 40_000) as i64,
            virtual_pages: 300_000 + (rng.next_u64() % 100_000) as i64,
            open_fds: 10 + (rng.next_u64() % 90) as i64,
            start_time: 1_699_900_000.0 + (rng.next_u64() % 100_000) as f64 + 0.37,
            goroutines: 20 + (rng.next_u64() % 200) as i64,
            heap_bytes: 4_000_000,
            heap_objects: 30_000,
            gc_quantiles_ns: [0; 5],
            gc_sum: 0.0,
            gc_count: 0,
        }
    }

    /// This instance's series, in the order [`Instance::scrape`] gives values.
    fn labels(&self) -> Vec<Labels> {
        let base = |name: &str, extra: &[(&str, &str)]| {
            Labels::from_pairs(
                [
                    ("__name__", name.to_owned()),
                    ("job", self.service.to_owned()),
                    ("instance", self.address.clone()),
                ]
                .into_iter()
                .chain(extra.iter().map(|(n, v)| (*n, (*v).to_owned()))),
            )
        };
        let mut out = Vec::new();
        for handler in HANDLERS {
            for method in METHODS {
                for (code, _) in CODES {
                    out.push(base(
                        "http_requests_total",
                        &[("handler", handler), ("method", method), ("code", code)],
                    ));
                }
            }
            for le in BUCKETS {
                let le = if le.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    format!("{le}")
                };
                out.push(base(
                    "http_request_duration_seconds_bucket",
                    &[("handler", handler), ("le", &le)],
                ));
            }
            out.push(base(
                "http_request_duration_seconds_sum",
                &[("handler", handler)],
            ));
            out.push(base(
                "http_request_duration_seconds_count",
                &[("handler", handler)],
            ));
        }
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "go_goroutines",
            "go_memstats_heap_alloc_bytes",
            "go_memstats_heap_objects",
        ] {
            out.push(base(name, &[]));
        }
        for q in QUANTILES {
            out.push(base("go_gc_duration_seconds", &[("quantile", q)]));
        }
        out.push(base("go_gc_duration_seconds_sum", &[]));
        out.push(base("go_gc_duration_seconds_count", &[]));
        out.push(base("up", &[]));
        out
    }

    /// Moves the instance on by one scrape interval ending at `t` and
    /// pushes every series' value.
    fn scrape(&mut self, t: i64, rng: &mut Rng, out: &mut Vec<f64>) {
        let day = (t as f64 / DAY_MS * std::f64::consts::TAU).sin();
        let traffic = 1.0 + 0.4 * day;
        for h in &mut self.handlers {
            let mut served = 0u64;
            for (m, _) in METHODS.iter().enumerate() {
                let share = if m == 0 { 0.8 } else { 0.2 };
                for (c, (_, code_share)) in CODES.iter().enumerate() {
                    let n = poisson(h.per_scrape * traffic * share * code_share, rng);
                    h.requests[m * CODES.len() + c] += n as f64;
                    served += n;
                }
            }
            for _ in 0..served {
                // Log-normal latency, measured by a monotonic clock in ns.
                let latency = (h.median * (LATENCY_SIGMA * gauss(rng)).exp() * 1e9).round() / 1e9;
                h.sum += latency;
                h.count += 1;
                let first = BUCKETS.iter().position(|b| latency <= *b).unwrap_or(11);
                for b in &mut h.buckets[first..] {
                    *b += 1;
                }
            }
            out.extend_from_slice(&h.requests);
            out.extend(h.buckets.iter().map(|b| *b as f64));
            out.push(h.sum);
            out.push(h.count as f64);
        }
        self.cpu_ticks += poisson(self.cpu_per_scrape * traffic, rng);
        if rng.unit() < 0.5 {
            self.resident_pages += (rng.next_u64() % 101) as i64 - 50;
        }
        if rng.unit() < 0.05 {
            self.virtual_pages += (rng.next_u64() % 2049) as i64 - 1024;
        }
        if rng.unit() < 0.3 {
            self.open_fds = (self.open_fds + (rng.next_u64() % 7) as i64 - 3).max(8);
        }
        self.goroutines = (self.goroutines + (rng.next_u64() % 11) as i64 - 5).max(8);
        // The heap grows with the traffic and falls back at a collection.
        let garbage = (200_000.0 * traffic * (0.5 + rng.unit())) as i64;
        self.heap_bytes += garbage;
        self.heap_objects += garbage / 96;
        if self.heap_bytes > 8_000_000 {
            self.heap_bytes = 4_000_000 + (rng.next_u64() % 200_000) as i64;
            self.heap_objects = self.heap_bytes / 100;
            let pause = 30_000 + rng.next_u64() % 200_000;
            self.gc_count += 1;
            self.gc_sum += pause as f64 / 1e9;
            let mut q = self.gc_quantiles_ns;
            q[0] = if q[0] == 0 { pause } else { q[0].min(pause) };
            q[4] = q[4].max(pause);
            for (k, f) in [(1, 0.25), (2, 0.5), (3, 0.75)] {
                q[k] = (q[0] as f64 + (q[4] - q[0]) as f64 * f * (0.8 + 0.4 * rng.unit())) as u64;
            }
            self.gc_quantiles_ns = q;
        }
        out.extend_from_slice(&[
            self.cpu_ticks as f64 / 100.0,
            (self.resident_pages * 4096) as f64,
            (self.virtual_pages * 4096) as f64,
            self.open_fds as f64,
            1_048_576.0,
            self.start_time,
            self.goroutines as f64,
            self.heap_bytes as f64,
            self.heap_objects as f64,
        ]);
        out.extend(self.gc_quantiles_ns.iter().map(|ns| *ns as f64 / 1e9));
        out.push(self.gc_sum);
        out.push(self.gc_count as f64);
        out.push(1.0);
    }
}

/// A standard normal draw (Box-Muller).
fn gauss(rng: &mut Rng) -> f64 {
    let u = rng.unit().max(f64::MIN_POSITIVE);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.unit()).cos()
}

/// A Poisson draw with mean `mean`: counted for small means, normal beyond.
fn poisson(mean: f64, rng: &mut Rng) -> u64 {
    if mean < 30.0 {
        let limit = (-mean).exp();
        let mut p = rng.unit();
        let mut n = 0;
        while p > limit {
            p *= rng.unit();
            n += 1;
        }
        n
    } else {
        (mean + mean.sqrt() * gauss(rng)).round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_pieces_match_their_closed_forms() {
        // A Poisson draw of mean 1: -sum p log2 p, p = e^-1 / k!.
        assert!((poisson_entropy(1.0) - 1.882_4).abs() < 1e-3);
        assert_eq!(poisson_entropy(0.0), 0.0);
        // Summed and approximated agree where they meet.
        let summed = poisson_entropy(49.999);
        let approximated = poisson_entropy(50.001);
        assert!(
            (summed - approximated).abs() < 0.01,
            "{summed} {approximated}"
        );
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.96) - 0.025).abs() < 1e-4);
        // One request of a 10 ms log-normal latency: ln(1e7 ns) + the
        // normal's entropy of its logarithm, in bits; more requests more.
        let sigma2: f64 = LATENCY_SIGMA * LATENCY_SIGMA;
        let one = (1e7f64.ln() + 0.5 * (std::f64::consts::TAU * std::f64::consts::E * sigma2).ln())
            / std::f64::consts::LN_2;
        let tiny = latency_sum_entropy(1e-6, 0.01);
        assert!((tiny / 1e-6 - one).abs() < 1e-3, "{tiny} {one}");
        assert!(latency_sum_entropy(100.0, 0.01) > latency_sum_entropy(10.0, 0.01));
    }

    #[test]
    fn the_fleet_is_no_simpler_than_its_entropy_says() {
        let (labels, series) = app_fleet_history(2, 50, 0, 7);
        assert_eq!(labels.len(), series.len());
        let entropy = app_fleet_entropy_bytes_per_sample(2, 50, 0, 7);
        // Counters and sums move every scrape: well above nothing, well
        // below a raw float.
        assert!(entropy > 0.3 && entropy < 4.0, "{entropy}");
    }
}
