//! Series whose labels are still name/value pairs borrowed from the bytes
//! they arrived in: a remote-write body, a cluster record. Three flat
//! arrays for the whole batch (pairs, samples, where each series ends), so
//! a batch of 2,000 series is three allocations, not tens of thousands of
//! label strings; a writer that only passes series on (cluster mode) never
//! builds [`Labels`].

use std::sync::Arc;

use sextant_model::{Label, Labels, Sample};

use crate::SeriesSamples;

/// A batch of series with borrowed labels, each series' labels canonical
/// as [`Labels`] keeps them: sorted by name, one value per name, no empty
/// values.
#[derive(Debug, Default, Clone)]
pub struct PairBatch<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    samples: Vec<Sample>,
    /// Per series: its pairs end, its samples end.
    ends: Vec<(usize, usize)>,
}

/// One series of a [`PairBatch`].
#[derive(Debug, Clone, Copy)]
pub struct PairSeries<'r, 'a> {
    /// Name and value of each label, sorted by name.
    pub labels: &'r [(&'a str, &'a str)],
    pub samples: &'r [Sample],
}

impl<'a> PairBatch<'a> {
    /// Room for `series` series, `pairs` labels and `samples` samples.
    pub fn with_capacity(series: usize, pairs: usize, samples: usize) -> Self {
        Self {
            pairs: Vec::with_capacity(pairs),
            samples: Vec::with_capacity(samples),
            ends: Vec::with_capacity(series),
        }
    }

    /// How many series.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Samples in all series.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Adds a label to the series being built (see [`PairBatch::end_series`]).
    pub fn push_label(&mut self, name: &'a str, value: &'a str) {
        self.pairs.push((name, value));
    }

    /// Adds a sample to the series being built.
    pub fn push_sample(&mut self, sample: Sample) {
        self.samples.push(sample);
    }

    /// Ends the series whose labels and samples were pushed since the last
    /// one ended, making its labels canonical as [`Labels::from_pairs`]
    /// does: sorted by name (a stable sort, so of a repeated name the last
    /// value wins), then empty values dropped.
    pub fn end_series(&mut self) {
        let start = self.ends.last().map_or(0, |e| e.0);
        let labels = &mut self.pairs[start..];
        if !labels.windows(2).all(|w| w[0].0 < w[1].0) {
            labels.sort_by(|a, b| a.0.cmp(b.0));
            let mut write = start;
            for read in start..self.pairs.len() {
                let pair = self.pairs[read];
                if write > start && self.pairs[write - 1].0 == pair.0 {
                    self.pairs[write - 1] = pair;
                } else {
                    self.pairs[write] = pair;
                    write += 1;
                }
            }
            self.pairs.truncate(write);
        }
        let mut write = start;
        for read in start..self.pairs.len() {
            if !self.pairs[read].1.is_empty() {
                self.pairs[write] = self.pairs[read];
                write += 1;
            }
        }
        self.pairs.truncate(write);
        self.ends.push((self.pairs.len(), self.samples.len()));
    }

    /// Drops the labels and samples pushed since the last series ended: a
    /// series found bad part-way through its message.
    pub fn discard_series(&mut self) {
        let (pairs, samples) = self.ends.last().copied().unwrap_or((0, 0));
        self.pairs.truncate(pairs);
        self.samples.truncate(samples);
    }

    /// Adds a series whose labels are canonical already.
    pub fn push_canonical(&mut self, labels: &[(&'a str, &'a str)], samples: &[Sample]) {
        self.pairs.extend_from_slice(labels);
        self.samples.extend_from_slice(samples);
        self.ends.push((self.pairs.len(), self.samples.len()));
    }

    /// Each series in order.
    pub fn iter(&self) -> impl Iterator<Item = PairSeries<'_, 'a>> {
        let mut start = (0, 0);
        self.ends.iter().map(move |&(pairs_end, samples_end)| {
            let series = PairSeries {
                labels: &self.pairs[start.0..pairs_end],
                samples: &self.samples[start.1..samples_end],
            };
            start = (pairs_end, samples_end);
            series
        })
    }

    /// The series of `batch`, their labels borrowed.
    pub fn of_series(batch: &'a [SeriesSamples]) -> Self {
        let mut out = Self::with_capacity(
            batch.len(),
            batch.iter().map(|s| s.labels.len()).sum(),
            batch.iter().map(|s| s.samples.len()).sum(),
        );
        for series in batch {
            let labels = series.labels.iter().map(|l| (&*l.name, &*l.value));
            out.pairs.extend(labels);
            out.samples.extend_from_slice(&series.samples);
            out.ends.push((out.pairs.len(), out.samples.len()));
        }
        out
    }

    /// The series with labels of their own.
    pub fn to_series(&self) -> Vec<SeriesSamples> {
        self.iter()
            .map(|s| SeriesSamples {
                labels: s.labels(),
                samples: s.samples.to_vec(),
            })
            .collect()
    }
}

impl PairSeries<'_, '_> {
    /// The labels, built.
    pub fn labels(&self) -> Labels {
        Labels::from_sorted(
            self.labels
                .iter()
                .map(|(name, value)| Label {
                    name: Arc::from(*name),
                    value: Arc::from(*value),
                })
                .collect(),
        )
    }

    /// Whether `labels` are these.
    pub fn is(&self, labels: &Labels) -> bool {
        labels.len() == self.labels.len()
            && labels
                .iter()
                .zip(self.labels)
                .all(|(l, (n, v))| &*l.name == *n && &*l.value == *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64) -> Sample {
        Sample {
            timestamp_ms: t,
            value: t as f64,
        }
    }

    #[test]
    fn labels_come_out_as_labels_from_pairs_makes_them() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("job", "node"), ("__name__", "up")],
            vec![("a", "1"), ("b", ""), ("c", "3")],
            vec![("b", "1"), ("a", "x"), ("b", "2"), ("a", "")],
            vec![("z", "1"), ("z", "2"), ("z", "3")],
            vec![("only", "")],
        ];
        let mut batch = PairBatch::default();
        for (i, pairs) in cases.iter().enumerate() {
            for (n, v) in pairs {
                batch.push_label(n, v);
            }
            batch.push_sample(sample(i as i64));
            batch.end_series();
        }
        let series: Vec<PairSeries<'_, '_>> = batch.iter().collect();
        assert_eq!(series.len(), cases.len());
        for ((pairs, got), i) in cases.iter().zip(&series).zip(0..) {
            let want = Labels::from_pairs(pairs.iter().copied());
            assert_eq!(got.labels(), want, "case {pairs:?}");
            assert!(got.is(&want));
            assert_eq!(got.samples, &[sample(i)]);
        }
        let owned = batch.to_series();
        let again = PairBatch::of_series(&owned);
        assert_eq!(again.to_series(), owned);
        assert_eq!(again.sample_count(), cases.len());
    }
}
