//! Collectors over the `timestamp` and `seq` columns every split has.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

/// Where a document sorts: its time, then the sequence number it was
/// appended with (unique, so the order is total and pages never overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HitKey {
    pub timestamp_us: i64,
    pub seq: u64,
}

/// The first `limit` matches in time order (newest first unless
/// `ascending`), after `after` when paging on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopKeys {
    pub limit: usize,
    pub ascending: bool,
    pub after: Option<HitKey>,
}

impl TopKeys {
    /// Whether `key` comes after the page boundary in the order asked for.
    fn admits(&self, key: HitKey) -> bool {
        match self.after {
            None => true,
            Some(after) if self.ascending => key > after,
            Some(after) => key < after,
        }
    }
}

/// Keeps the best `limit` keys: for newest first the largest, so the heap's
/// top is the smallest kept; for oldest first the reverse.
pub(crate) struct SegmentTopKeys {
    top: TopKeys,
    segment: SegmentOrdinal,
    timestamps: Column<i64>,
    seqs: Column<u64>,
    newest: BinaryHeap<Reverse<(HitKey, DocId)>>,
    oldest: BinaryHeap<(HitKey, DocId)>,
}

impl Collector for TopKeys {
    type Fruit = Vec<(HitKey, DocAddress)>;
    type Child = SegmentTopKeys;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentTopKeys> {
        Ok(SegmentTopKeys {
            top: *self,
            segment,
            timestamps: reader.fast_fields().i64("timestamp")?,
            seqs: reader.fast_fields().u64("seq")?,
            newest: BinaryHeap::new(),
            oldest: BinaryHeap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<Vec<(HitKey, DocAddress)>>,
    ) -> tantivy::Result<Vec<(HitKey, DocAddress)>> {
        let mut all: Vec<(HitKey, DocAddress)> = fruits.into_iter().flatten().collect();
        sort_keys(&mut all, self.ascending);
        all.truncate(self.limit);
        Ok(all)
    }
}

/// Sorts hits into the order asked for.
pub(crate) fn sort_keys<T>(hits: &mut [(HitKey, T)], ascending: bool) {
    if ascending {
        hits.sort_by_key(|h| h.0);
    } else {
        hits.sort_by_key(|h| Reverse(h.0));
    }
}

impl SegmentCollector for SegmentTopKeys {
    type Fruit = Vec<(HitKey, DocAddress)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let (Some(timestamp_us), Some(seq)) = (self.timestamps.first(doc), self.seqs.first(doc))
        else {
            return;
        };
        let key = HitKey { timestamp_us, seq };
        if self.top.limit == 0 || !self.top.admits(key) {
            return;
        }
        if self.top.ascending {
            if self.oldest.len() < self.top.limit {
                self.oldest.push((key, doc));
            } else if self.oldest.peek().is_some_and(|worst| key < worst.0) {
                self.oldest.pop();
                self.oldest.push((key, doc));
            }
        } else if self.newest.len() < self.top.limit {
            self.newest.push(Reverse((key, doc)));
        } else if self.newest.peek().is_some_and(|worst| key > worst.0.0) {
            self.newest.pop();
            self.newest.push(Reverse((key, doc)));
        }
    }

    fn harvest(self) -> Vec<(HitKey, DocAddress)> {
        let segment = self.segment;
        let address = |(key, doc): (HitKey, DocId)| (key, DocAddress::new(segment, doc));
        if self.top.ascending {
            self.oldest.into_iter().map(address).collect()
        } else {
            self.newest.into_iter().map(|r| address(r.0)).collect()
        }
    }
}

/// Counts documents per time bucket from the timestamp column: buckets of
/// `step_us` starting at `origin_us` (documents before it are not counted).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimestampBuckets {
    pub step_us: i64,
    pub origin_us: i64,
}

pub(crate) struct SegmentBuckets {
    column: Column<i64>,
    step_us: i64,
    origin_us: i64,
    /// Counts by bucket number, grown as documents need.
    counts: Vec<u64>,
}

/// The most buckets one segment counts in an array; a wider range is
/// refused before the search by the callers' bucket limits.
const MAX_BUCKETS: usize = 1 << 22;

impl Collector for TimestampBuckets {
    type Fruit = BTreeMap<i64, u64>;
    type Child = SegmentBuckets;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentBuckets> {
        Ok(SegmentBuckets {
            column: reader.fast_fields().i64("timestamp")?,
            step_us: self.step_us,
            origin_us: self.origin_us,
            counts: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<BTreeMap<i64, u64>>) -> tantivy::Result<BTreeMap<i64, u64>> {
        let mut out = BTreeMap::new();
        for fruit in fruits {
            merge_counts(&mut out, fruit);
        }
        Ok(out)
    }
}

pub(crate) fn merge_counts(into: &mut BTreeMap<i64, u64>, from: BTreeMap<i64, u64>) {
    for (t, n) in from {
        *into.entry(t).or_default() += n;
    }
}

impl SegmentCollector for SegmentBuckets {
    type Fruit = BTreeMap<i64, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(t) = self.column.first(doc) {
            let Ok(bucket) = usize::try_from((t - self.origin_us).div_euclid(self.step_us)) else {
                return;
            };
            if bucket >= self.counts.len() {
                if bucket >= MAX_BUCKETS {
                    return;
                }
                self.counts.resize(bucket + 1, 0);
            }
            self.counts[bucket] += 1;
        }
    }

    fn harvest(self) -> BTreeMap<i64, u64> {
        let (origin, step) = (self.origin_us, self.step_us);
        self.counts
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .map(|(i, n)| (origin + i as i64 * step, n))
            .collect()
    }
}
