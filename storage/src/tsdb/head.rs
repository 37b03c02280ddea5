//! The head: the newest samples, in memory, per series in compressed chunks.
//!
//! Each series keeps sealed chunks of [`SAMPLES_PER_CHUNK`] samples, one open
//! chunk it appends to, and a small sorted map of samples that arrived out of
//! order (within the window) or that overwrite an earlier timestamp; on read
//! those win over chunk samples at the same timestamp ("last write wins").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use sextant_model::histogram::{CounterResetHint, Span};
use sextant_model::{HistogramSample, HistogramValue, Label, Labels, Matcher, Sample};

use super::chunk::{self, OpenChunk, SAMPLES_PER_CHUNK};
use super::head_chunks::{ChunkBytes, ChunkFiles};
use super::histogram_chunk::{
    AppendOutcome, CutReason, FloatHistogramChunkEncoder, HistogramChunkEncoder,
};

/// A sealed chunk of one series.
#[derive(Debug, Clone)]
pub(crate) struct SealedChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub data: Box<[u8]>,
}

/// A sealed chunk (float or histogram) of a head series: its bytes in
/// memory until the head writes them to its chunk files
/// ([`HeadInner::write_sealed`]).
#[derive(Debug, Clone)]
pub(crate) struct StoredChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub data: ChunkBytes,
}

impl From<SealedChunk> for StoredChunk {
    fn from(c: SealedChunk) -> Self {
        Self {
            min_t: c.min_t,
            max_t: c.max_t,
            data: ChunkBytes::Mem(c.data),
        }
    }
}

/// A series' samples in the head. Its labels are not here: the head keeps
/// them as symbol ids beside it ([`HeadSeries`]), and series split out of
/// the head carry theirs ([`SplitSeries`]).
///
/// Every head series has one, so it is kept small: the open chunk and the
/// newest time inline, everything most series lack for most of their life
/// (sealed chunks, late samples, histograms) behind one optional box.
#[derive(Debug, Default)]
pub(crate) struct MemSeries {
    open: OpenChunk,
    /// The newest timestamp held (of floats and histograms), or `i64::MIN`
    /// (only when empty).
    max_t: i64,
    rest: Option<Box<SeriesRest>>,
}

/// The parts of a series that are absent until needed.
#[derive(Debug, Default)]
struct SeriesRest {
    /// Oldest first; grown one at a time, so without slack.
    sealed: Vec<StoredChunk>,
    /// Out-of-order samples and overwrites; they win over chunk samples.
    extra: BTreeMap<i64, f64>,
    /// Native histogram samples, for a series that has had any.
    hist: Option<Box<HistPart>>,
}

impl SeriesRest {
    fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.extra.is_empty() && self.hist.is_none()
    }
}

/// A series split out of the head ([`HeadInner::split_before`]), with its labels.
#[derive(Debug)]
pub(crate) struct SplitSeries {
    pub labels: Labels,
    pub data: MemSeries,
}

/// A series in the head: where its labels are in the head's `label_ids`
/// (symbol ids into [`Symbols`]: name, value, name, value, ... in label
/// order), and its samples.
#[derive(Debug)]
struct HeadSeries {
    labels_at: u32,
    /// Symbol ids: twice the labels.
    labels_len: u16,
    data: MemSeries,
}

/// A series' native histogram samples: sealed chunks (encoding byte
/// [`super::histogram_chunk::HISTOGRAM`] or `FLOAT_HISTOGRAM` first), the
/// open one, and late samples and overwrites that win on read, as for floats.
#[derive(Debug, Default)]
pub(crate) struct HistPart {
    sealed: Vec<StoredChunk>,
    open: OpenHistogramChunk,
    extra: BTreeMap<i64, HistogramValue>,
}

/// The chunk a series appends histograms to: integer and float histograms
/// go into chunks of their own kind, so a change of kind cuts.
#[derive(Debug, Default)]
pub(crate) enum OpenHistogramChunk {
    #[default]
    Empty,
    Int(HistogramChunkEncoder),
    Float(FloatHistogramChunkEncoder),
}

impl OpenHistogramChunk {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Int(e) => e.len(),
            Self::Float(e) => e.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn min_time(&self) -> i64 {
        match self {
            Self::Empty => i64::MAX,
            Self::Int(e) => e.min_time(),
            Self::Float(e) => e.min_time(),
        }
    }

    fn max_time(&self) -> i64 {
        match self {
            Self::Empty => i64::MIN,
            Self::Int(e) => e.max_time(),
            Self::Float(e) => e.max_time(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Empty => Vec::new(),
            Self::Int(e) => e.bytes(),
            Self::Float(e) => e.bytes(),
        }
    }

    fn seal(&self) -> Option<SealedChunk> {
        (!self.is_empty()).then(|| SealedChunk {
            min_t: self.min_time(),
            max_t: self.max_time(),
            data: self.bytes().into_boxed_slice(),
        })
    }

    /// Appends in order. `Ok(false)` (and nothing written) when the sample
    /// needs a new chunk, with the hint that chunk's first sample gets.
    fn append(&mut self, t: i64, v: &HistogramValue) -> Result<Option<CutReason>, ()> {
        let outcome = match (&mut *self, v) {
            (Self::Int(e), HistogramValue::Int(h)) => e.append(t, h),
            (Self::Float(e), HistogramValue::Float(h)) => e.append(t, h),
            (Self::Empty, HistogramValue::Int(h)) => {
                let mut e = HistogramChunkEncoder::default();
                let outcome = e.append(t, h);
                *self = Self::Int(e);
                outcome
            }
            (Self::Empty, HistogramValue::Float(h)) => {
                let mut e = FloatHistogramChunkEncoder::default();
                let outcome = e.append(t, h);
                *self = Self::Float(e);
                outcome
            }
            _ => return Ok(Some(CutReason::LayoutChanged)),
        };
        match outcome {
            Ok(AppendOutcome::Appended) => Ok(None),
            Ok(AppendOutcome::NewChunkNeeded { reason }) => Ok(Some(reason)),
            Err(_) => Err(()),
        }
    }
}

/// Decodes a histogram chunk by its encoding byte into `out`.
pub(crate) fn decode_histogram_chunk(
    data: &[u8],
    out: &mut Vec<HistogramSample>,
) -> Result<(), chunk::CorruptChunk> {
    use super::histogram_chunk::{
        FLOAT_HISTOGRAM, HISTOGRAM, decode_float_histograms, decode_histograms,
    };
    match data.first() {
        Some(&HISTOGRAM) => {
            out.extend(
                decode_histograms(data)?
                    .into_iter()
                    .map(|(t, h)| HistogramSample {
                        timestamp_ms: t,
                        value: HistogramValue::Int(h),
                    }),
            );
        }
        Some(&FLOAT_HISTOGRAM) => {
            out.extend(
                decode_float_histograms(data)?
                    .into_iter()
                    .map(|(t, h)| HistogramSample {
                        timestamp_ms: t,
                        value: HistogramValue::Float(h),
                    }),
            );
        }
        _ => return Err(chunk::CorruptChunk("not a histogram chunk")),
    }
    Ok(())
}

/// Whether a chunk's encoding byte is a histogram encoding.
pub(crate) fn is_histogram_chunk(data: &[u8]) -> bool {
    matches!(
        data.first(),
        Some(&super::histogram_chunk::HISTOGRAM | &super::histogram_chunk::FLOAT_HISTOGRAM)
    )
}

/// Native histogram samples a chunk holds at most: as for floats.
const HISTOGRAMS_PER_CHUNK: usize = SAMPLES_PER_CHUNK;

/// The most labels a head series holds: its count of label ids (two a
/// label) is kept in 16 bits. `max_labels_per_series` of 0 means this.
pub(crate) const MAX_HEAD_LABELS: usize = u16::MAX as usize / 2;

impl HistPart {
    fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty() && self.extra.is_empty()
    }

    fn min_time(&self) -> Option<i64> {
        let chunk_min = self
            .sealed
            .first()
            .map(|c| c.min_t)
            .or_else(|| (!self.open.is_empty()).then(|| self.open.min_time()));
        let extra_min = self.extra.keys().next().copied();
        match (chunk_min, extra_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The newest timestamp in its chunks and late samples.
    fn max_time(&self) -> i64 {
        let sealed = self.sealed.last().map_or(i64::MIN, |c| c.max_t);
        let extra = self.extra.keys().next_back().copied().unwrap_or(i64::MIN);
        sealed.max(self.open.max_time()).max(extra)
    }

    fn chunk_count(&self) -> usize {
        self.sealed.len() + usize::from(!self.open.is_empty())
    }

    /// Appends after everything held, cutting at `per_chunk` samples;
    /// returns whether a chunk was sealed.
    fn append_in_order(&mut self, t: i64, v: &HistogramValue, per_chunk: usize) -> bool {
        let mut sealed = false;
        if self.open.len() >= per_chunk {
            self.cut();
            sealed = true;
        }
        match self.open.append(t, v) {
            Ok(None) => return sealed,
            Ok(Some(CutReason::LayoutChanged)) if self.recode(t, v) => return sealed,
            Ok(Some(reason)) => {
                sealed |= !self.open.is_empty();
                self.cut();
                // The new chunk's first sample says why, as Prometheus's head does.
                let mut v = v.clone();
                if reason == CutReason::CounterReset
                    && v.counter_reset_hint() == CounterResetHint::Unknown
                {
                    set_hint(&mut v, CounterResetHint::CounterReset);
                }
                if self.open.append(t, &v) == Ok(None) {
                    return sealed;
                }
            }
            Err(()) => {}
        }
        // Validated samples always fit an empty chunk; keep anything else
        // beside the chunks rather than lose it.
        self.extra.insert(t, v.clone());
        sealed
    }

    /// Where `v` differs from the open chunk only by buckets the other
    /// lacks (a new bucket got its first observation, or an empty one
    /// went unsent), rewrites the chunk with every sample on the union of
    /// both layouts, `v` appended: Prometheus's recoding, which spares a
    /// cut (a layout and a first sample) per new bucket. False, and the
    /// chunk unchanged, when the layouts differ otherwise or `v` still
    /// needs a new chunk (a counter reset).
    fn recode(&mut self, t: i64, v: &HistogramValue) -> bool {
        let mut old = Vec::with_capacity(self.open.len());
        if decode_histogram_chunk(&self.open.bytes(), &mut old).is_err() {
            return false;
        }
        let Some(first) = old.iter().find(|s| !s.value.is_stale()) else {
            return false;
        };
        let Some(layout) = union_layout(&first.value, v) else {
            return false;
        };
        let mut rebuilt = OpenHistogramChunk::Empty;
        for s in old
            .iter()
            .map(|s| (s.timestamp_ms, &s.value))
            .chain([(t, v)])
        {
            let expanded = if s.1.is_stale() {
                Some(s.1.clone())
            } else {
                expand(s.1, &layout)
            };
            match expanded.map(|e| rebuilt.append(s.0, &e)) {
                Some(Ok(None)) => {}
                _ => return false,
            }
        }
        self.open = rebuilt;
        true
    }

    fn cut(&mut self) {
        if let Some(chunk) = self.open.seal() {
            self.sealed.push(chunk.into());
        }
        self.open = OpenHistogramChunk::Empty;
    }

    /// Samples with `mint <= t <= maxt`, sorted, overwrites applied; an
    /// error when a sealed chunk cannot be read back from its file.
    fn samples(&self, mint: i64, maxt: i64) -> std::io::Result<Vec<HistogramSample>> {
        let mut out = Vec::new();
        for c in self
            .sealed
            .iter()
            .filter(|c| c.max_t >= mint && c.min_t <= maxt)
        {
            decode_histogram_chunk(&c.data.read()?, &mut out).map_err(read_back_error)?;
        }
        if !self.open.is_empty() && self.open.max_time() >= mint && self.open.min_time() <= maxt {
            decode_histogram_chunk(&self.open.bytes(), &mut out).expect("head chunk decodes");
        }
        out.retain(|s| s.timestamp_ms >= mint && s.timestamp_ms <= maxt);
        let extra: Vec<HistogramSample> = self
            .extra
            .range(mint..=maxt)
            .map(|(&t, v)| HistogramSample {
                timestamp_ms: t,
                value: v.clone(),
            })
            .collect();
        Ok(merge_last_wins_by(out, extra, |s| s.timestamp_ms))
    }

    /// Moves everything before `t` into a part of its own, returned with
    /// the number of chunks that left this one.
    fn split_before(&mut self, t: i64) -> (HistPart, usize) {
        let before = self.chunk_count();
        let mut gone = HistPart::default();
        let mut early: Vec<HistogramSample> = Vec::new();
        let mut keep: Vec<HistogramSample> = Vec::new();
        let mut sealed = Vec::new();
        for c in self.sealed.drain(..) {
            if c.min_t >= t {
                sealed.push(c);
            } else if c.max_t < t {
                gone.sealed.push(c);
            } else {
                let read = c.data.read().map_err(|e| e.to_string()).and_then(|bytes| {
                    let mut samples = Vec::new();
                    decode_histogram_chunk(&bytes, &mut samples)
                        .map(|()| samples)
                        .map_err(|e| e.0.to_owned())
                });
                match read {
                    Ok(samples) => keep.extend(samples),
                    Err(err) => {
                        // As for float chunks: it stays whole.
                        tracing::warn!(%err, "a head chunk could not be read back to split it");
                        sealed.push(c);
                    }
                }
            }
        }
        let mut open_rest = Vec::new();
        if !self.open.is_empty() && self.open.min_time() < t {
            decode_histogram_chunk(&self.open.bytes(), &mut open_rest).expect("head chunk decodes");
            self.open = OpenHistogramChunk::Empty;
        }
        let (mut straddling, mut open_rest): (Vec<_>, Vec<_>) = (keep, open_rest);
        early.extend(straddling.extract_if(.., |s| s.timestamp_ms < t));
        early.extend(open_rest.extract_if(.., |s| s.timestamp_ms < t));
        // The early samples of straddling chunks follow the chunks that left whole.
        for s in early {
            gone.append_in_order(s.timestamp_ms, &s.value, HISTOGRAMS_PER_CHUNK);
        }
        gone.cut();
        // Re-encode the straddling remainder ahead of the chunks that stay whole.
        let mut rebuilt = HistPart::default();
        for s in straddling {
            rebuilt.append_in_order(s.timestamp_ms, &s.value, HISTOGRAMS_PER_CHUNK);
        }
        rebuilt.cut();
        let mut chunks = rebuilt.sealed;
        chunks.extend(sealed);
        self.sealed = chunks;
        let open = std::mem::take(&mut self.open);
        if open.is_empty() {
            for s in open_rest {
                self.append_in_order(s.timestamp_ms, &s.value, HISTOGRAMS_PER_CHUNK);
            }
        } else {
            self.open = open;
        }
        self.extra.extend(rebuilt.extra);
        let later = self.extra.split_off(&t);
        gone.extra.extend(std::mem::replace(&mut self.extra, later));
        (gone, before.saturating_sub(self.chunk_count()))
    }

    fn has_samples_in(&self, mint: i64, maxt: i64) -> bool {
        self.sealed
            .iter()
            .any(|c| c.max_t >= mint && c.min_t <= maxt)
            || (!self.open.is_empty()
                && self.open.max_time() >= mint
                && self.open.min_time() <= maxt)
            || self.extra.range(mint..=maxt).next().is_some()
    }
}

/// Encodes histogram samples (sorted, unique timestamps) into chunks of at
/// most `per_chunk` samples, cut where the encoding needs (layout changes,
/// counter resets, integer and float kinds): what a block writes.
pub(crate) fn encode_histogram_chunks(
    samples: &[HistogramSample],
    per_chunk: usize,
) -> Vec<SealedChunk> {
    let mut part = HistPart::default();
    for s in samples {
        part.append_in_order(s.timestamp_ms, &s.value, per_chunk);
    }
    part.cut();
    let mut chunks: Vec<SealedChunk> = part
        .sealed
        .into_iter()
        .filter_map(|c| match c.data {
            ChunkBytes::Mem(data) => Some(SealedChunk {
                min_t: c.min_t,
                max_t: c.max_t,
                data,
            }),
            // This part has no chunk files.
            ChunkBytes::File { .. } => None,
        })
        .collect();
    // A sample no chunk could take (never, once validated) gets its own.
    for (t, v) in std::mem::take(&mut part.extra) {
        if let Some(bytes) = super::wal::histogram_bytes(t, &v) {
            chunks.push(SealedChunk {
                min_t: t,
                max_t: t,
                data: bytes.into_boxed_slice(),
            });
        }
    }
    chunks
}

/// Absolute bucket indexes the spans cover, in order.
fn span_indexes(spans: &[Span]) -> Option<Vec<i32>> {
    let mut out = Vec::new();
    let mut next = 0i32;
    for (i, s) in spans.iter().enumerate() {
        let start = if i == 0 {
            s.offset
        } else {
            next.checked_add(s.offset)?
        };
        let end = start.checked_add(i32::try_from(s.length).ok()?)?;
        out.extend(start..end);
        next = end;
    }
    Some(out)
}

/// Spans covering exactly these sorted, unique indexes.
fn spans_of(indexes: &[i32]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut end = 0i32;
    for &i in indexes {
        if !spans.is_empty() && i == end {
            spans.last_mut().expect("a span").length += 1;
        } else {
            let offset = if spans.is_empty() { i } else { i - end };
            spans.push(Span { offset, length: 1 });
        }
        end = i + 1;
    }
    spans
}

/// The bucket layout two histograms of one schema share when merged.
struct UnionLayout {
    positive: Vec<i32>,
    negative: Vec<i32>,
}

/// The union of two samples' buckets, if they differ only in which
/// buckets they list (same kind, schema, zero threshold, custom bounds).
fn union_layout(a: &HistogramValue, b: &HistogramValue) -> Option<UnionLayout> {
    fn parts(v: &HistogramValue) -> (i32, f64, &[f64], &[Span], &[Span]) {
        match v {
            HistogramValue::Int(h) => (
                h.schema,
                h.zero_threshold,
                &h.custom_values,
                &h.positive_spans,
                &h.negative_spans,
            ),
            HistogramValue::Float(h) => (
                h.schema,
                h.zero_threshold,
                &h.custom_values,
                &h.positive_spans,
                &h.negative_spans,
            ),
        }
    }
    if std::mem::discriminant(a) != std::mem::discriminant(b) {
        return None;
    }
    let (sa, za, ca, pa, na) = parts(a);
    let (sb, zb, cb, pb, nb) = parts(b);
    if sa != sb || za.to_bits() != zb.to_bits() || ca != cb {
        return None;
    }
    let union = |x: &[Span], y: &[Span]| -> Option<Vec<i32>> {
        let mut all = span_indexes(x)?;
        all.extend(span_indexes(y)?);
        all.sort_unstable();
        all.dedup();
        Some(all)
    };
    let layout = UnionLayout {
        positive: union(pa, pb)?,
        negative: union(na, nb)?,
    };
    (layout.positive.len() + layout.negative.len() <= super::histogram_chunk::MAX_CHUNK_BUCKETS)
        .then_some(layout)
}

/// A sample on a wider layout: its buckets where they were, zeros in the
/// new ones. `None` if it has a bucket the layout lacks.
fn expand(v: &HistogramValue, layout: &UnionLayout) -> Option<HistogramValue> {
    /// Absolute counts on `to`, from `from`'s indexes and counts.
    fn side<C: Copy + Default>(from: &[Span], counts: &[C], to: &[i32]) -> Option<Vec<C>> {
        let indexes = span_indexes(from)?;
        if indexes.len() != counts.len() {
            return None;
        }
        let mut out = vec![C::default(); to.len()];
        let mut at = 0;
        for (index, count) in indexes.iter().zip(counts) {
            while at < to.len() && to[at] < *index {
                at += 1;
            }
            if to.get(at) != Some(index) {
                return None;
            }
            out[at] = *count;
        }
        Some(out)
    }
    fn absolute(deltas: &[i64]) -> Vec<i64> {
        let mut current = 0i64;
        deltas
            .iter()
            .map(|d| {
                current = current.wrapping_add(*d);
                current
            })
            .collect()
    }
    fn deltas(counts: &[i64]) -> Vec<i64> {
        let mut previous = 0i64;
        counts
            .iter()
            .map(|c| {
                let d = c.wrapping_sub(previous);
                previous = *c;
                d
            })
            .collect()
    }
    let positive_spans = spans_of(&layout.positive);
    let negative_spans = spans_of(&layout.negative);
    Some(match v {
        HistogramValue::Int(h) => HistogramValue::Int(sextant_model::Histogram {
            positive_buckets: deltas(&side(
                &h.positive_spans,
                &absolute(&h.positive_buckets),
                &layout.positive,
            )?),
            negative_buckets: deltas(&side(
                &h.negative_spans,
                &absolute(&h.negative_buckets),
                &layout.negative,
            )?),
            positive_spans,
            negative_spans,
            ..h.clone()
        }),
        HistogramValue::Float(h) => HistogramValue::Float(sextant_model::FloatHistogram {
            positive_buckets: side(&h.positive_spans, &h.positive_buckets, &layout.positive)?,
            negative_buckets: side(&h.negative_spans, &h.negative_buckets, &layout.negative)?,
            positive_spans,
            negative_spans,
            ..h.clone()
        }),
    })
}

fn set_hint(v: &mut HistogramValue, hint: CounterResetHint) {
    match v {
        HistogramValue::Int(h) => h.counter_reset_hint = hint,
        HistogramValue::Float(h) => h.counter_reset_hint = hint,
    }
}

impl MemSeries {
    fn new() -> Self {
        Self {
            open: OpenChunk::default(),
            max_t: i64::MIN,
            rest: None,
        }
    }

    fn sealed(&self) -> &[StoredChunk] {
        self.rest.as_deref().map_or(&[], |r| &r.sealed)
    }

    fn extra(&self) -> Option<&BTreeMap<i64, f64>> {
        self.rest.as_deref().map(|r| &r.extra)
    }

    fn hist(&self) -> Option<&HistPart> {
        self.rest.as_deref().and_then(|r| r.hist.as_deref())
    }

    fn rest_mut(&mut self) -> &mut SeriesRest {
        self.rest.get_or_insert_with(Box::default)
    }

    /// Drops the optional parts once nothing is left in them.
    fn tidy(&mut self) {
        if let Some(rest) = &mut self.rest {
            if rest.hist.as_ref().is_some_and(|h| h.is_empty()) {
                rest.hist = None;
            }
            if rest.is_empty() {
                self.rest = None;
            }
        }
    }

    pub(crate) fn min_time(&self) -> Option<i64> {
        let floats = self.float_min_time();
        match (floats, self.hist().and_then(HistPart::min_time)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The newest timestamp held, out-of-order samples included, and
    /// histograms whatever `max_t` says (a part split off the head sets
    /// it from its float chunks).
    pub(crate) fn newest(&self) -> i64 {
        let Some(rest) = self.rest.as_deref() else {
            return self.max_t;
        };
        let hist = rest.hist.as_ref().map_or(i64::MIN, |h| h.max_time());
        self.max_t
            .max(rest.extra.keys().next_back().copied().unwrap_or(i64::MIN))
            .max(hist)
    }

    fn float_min_time(&self) -> Option<i64> {
        let chunk_min = self
            .sealed()
            .first()
            .map(|c| c.min_t)
            .or_else(|| (!self.open.is_empty()).then(|| self.open.min_time()));
        let extra_min = self.extra().and_then(|e| e.keys().next().copied());
        match (chunk_min, extra_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether any sample may lie in `[mint, maxt]` (cheap: chunk bounds only).
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_time().is_some_and(|min| min <= maxt) && self.newest() >= mint
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty()
            && self.rest.as_deref().is_none_or(|r| {
                r.sealed.is_empty()
                    && r.extra.is_empty()
                    && r.hist.as_ref().is_none_or(|h| h.is_empty())
            })
    }

    /// Whether the series has ever held native histograms (still in the head).
    pub fn has_histograms(&self) -> bool {
        self.hist().is_some_and(|h| !h.is_empty())
    }

    /// Stores a histogram sample: in order onto the open histogram chunk,
    /// otherwise as a late sample or overwrite. Returns whether a chunk was sealed.
    fn apply_histogram(&mut self, t: i64, v: &HistogramValue) -> bool {
        let in_order = self.is_empty() || t > self.max_t;
        if in_order {
            self.max_t = t;
        }
        let hist = self.rest_mut().hist.get_or_insert_with(Box::default);
        if in_order {
            hist.append_in_order(t, v, HISTOGRAMS_PER_CHUNK)
        } else {
            hist.extra.insert(t, v.clone());
            false
        }
    }

    /// Histogram samples with `mint <= t <= maxt`, sorted, overwrites
    /// applied; an error when a sealed chunk cannot be read back.
    pub fn histograms(&self, mint: i64, maxt: i64) -> std::io::Result<Vec<HistogramSample>> {
        self.hist()
            .map(|h| h.samples(mint, maxt))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Appends in order; returns whether a chunk was sealed.
    fn append_in_order(&mut self, t: i64, v: f64) -> bool {
        let mut sealed = false;
        if self.open.len() >= SAMPLES_PER_CHUNK {
            let full = std::mem::take(&mut self.open);
            push_exact(&mut self.rest_mut().sealed, seal(&full).into());
            sealed = true;
        }
        self.open.append(t, v);
        self.max_t = t;
        sealed
    }

    /// Stores a sample: in order onto the open chunk, otherwise as an
    /// out-of-order sample or overwrite. Returns whether a chunk was sealed.
    fn apply(&mut self, t: i64, v: f64) -> bool {
        if self.is_empty() || t > self.max_t {
            self.append_in_order(t, v)
        } else {
            self.rest_mut().extra.insert(t, v);
            false
        }
    }

    /// Samples with `mint <= t <= maxt`, sorted, overwrites applied; an
    /// error when a sealed chunk cannot be read back from its file.
    pub fn samples(&self, mint: i64, maxt: i64) -> std::io::Result<Vec<Sample>> {
        let mut out = Vec::new();
        self.samples_into(mint, maxt, &mut out)?;
        Ok(out)
    }

    /// As [`MemSeries::samples`], appended to `out` (whose samples stay
    /// as they are): a reader of many series decodes into one buffer,
    /// without a vector of its own for each series and a copy from it.
    pub fn samples_into(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) -> std::io::Result<()> {
        let from = out.len();
        for c in self
            .sealed()
            .iter()
            .filter(|c| c.max_t >= mint && c.min_t <= maxt)
        {
            chunk::decode_into(&c.data.read()?, out).map_err(read_back_error)?;
        }
        if !self.open.is_empty() && self.open.max_time() >= mint && self.open.min_time() <= maxt {
            self.open.decode_into(out).expect("head chunk decodes");
        }
        let keep = |s: &Sample| s.timestamp_ms >= mint && s.timestamp_ms <= maxt;
        // Kept in order, moved only from the first sample left out.
        if let Some(gone) = out[from..].iter().position(|s| !keep(s)) {
            let mut kept = from + gone;
            for i in kept + 1..out.len() {
                if keep(&out[i]) {
                    out[kept] = out[i];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
        let extra: Vec<Sample> = self
            .extra()
            .into_iter()
            .flat_map(|e| e.range(mint..=maxt))
            .map(|(&t, &v)| Sample {
                timestamp_ms: t,
                value: v,
            })
            .collect();
        if !extra.is_empty() {
            let chunks = out.split_off(from);
            out.extend(merge_last_wins(chunks, extra));
        }
        Ok(())
    }

    /// Moves everything before `t` into a series of its own, returned with
    /// the number of chunks that left this one.
    pub(crate) fn split_before(&mut self, t: i64) -> (MemSeries, usize) {
        let float_chunks = |s: &Self| s.sealed().len() + usize::from(!s.open.is_empty());
        let before = float_chunks(self);
        let mut gone = MemSeries::new();
        let mut early: Vec<Sample> = Vec::new();
        let mut keep: Vec<Sample> = Vec::new();
        let mut sealed = Vec::new();
        let mut gone_sealed = Vec::new();
        let rest = self.rest.take().map(|r| *r).unwrap_or_default();
        for c in rest.sealed {
            if c.min_t >= t {
                sealed.push(c);
            } else if c.max_t < t {
                gone_sealed.push(c);
            } else {
                let read = c
                    .data
                    .read()
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| chunk::decode(&bytes).map_err(|e| e.0.to_owned()));
                match read {
                    Ok(samples) => {
                        let (lower, upper): (Vec<Sample>, Vec<Sample>) =
                            samples.into_iter().partition(|s| s.timestamp_ms < t);
                        early.extend(lower);
                        keep.extend(upper);
                    }
                    Err(err) => {
                        // It stays whole, readable as before; a later cut
                        // that passes all of it takes it out.
                        tracing::warn!(%err, "a head chunk could not be read back to split it");
                        sealed.push(c);
                    }
                }
            }
        }
        if !self.open.is_empty() && self.open.min_time() < t {
            let samples = chunk::decode(&self.open.bytes()).expect("head chunk decodes");
            self.open = OpenChunk::default();
            for s in samples {
                if s.timestamp_ms < t {
                    early.push(s);
                } else {
                    self.open.append(s.timestamp_ms, s.value);
                }
            }
        }
        // The early samples of straddling chunks follow the chunks that left whole.
        gone_sealed.extend(encode_run(early).into_iter().map(StoredChunk::from));
        gone.max_t = gone_sealed.last().map_or(i64::MIN, |c| c.max_t);
        // Re-encode the straddling remainder ahead of the chunks that stay whole.
        let mut rebuilt: Vec<StoredChunk> = encode_run(keep)
            .into_iter()
            .map(StoredChunk::from)
            .collect();
        rebuilt.extend(sealed);
        let mut extra = rest.extra;
        let later = extra.split_off(&t);
        let mut hist = rest.hist;
        let (gone_hist, hist_removed) = match &mut hist {
            Some(h) => {
                let (early, removed) = h.split_before(t);
                ((!early.is_empty()).then(|| Box::new(early)), removed)
            }
            None => (None, 0),
        };
        gone_sealed.shrink_to_fit();
        // Histograms count as the head counts them: a series of only
        // histograms is otherwise newest at no time, and reads pass it by.
        if let Some(h) = &gone_hist {
            gone.max_t = gone.max_t.max(h.max_time());
        }
        gone.rest = Some(Box::new(SeriesRest {
            sealed: gone_sealed,
            extra,
            hist: gone_hist,
        }));
        gone.tidy();
        rebuilt.shrink_to_fit();
        self.rest = Some(Box::new(SeriesRest {
            sealed: rebuilt,
            extra: later,
            hist,
        }));
        self.tidy();
        (
            gone,
            before.saturating_sub(float_chunks(self)) + hist_removed,
        )
    }

    /// Whether a sealed chunk's bytes are in memory (not yet written out).
    fn holds_chunks_in_memory(&self) -> bool {
        let hists = self.hist().map_or(&[][..], |h| &h.sealed);
        self.sealed()
            .iter()
            .chain(hists)
            .any(|c| c.data.in_memory().is_some())
    }

    fn chunk_count(&self) -> usize {
        self.sealed().len()
            + usize::from(!self.open.is_empty())
            + self.hist().map_or(0, HistPart::chunk_count)
    }

    /// Whether any sample lies in `[mint, maxt]` (by chunk ranges: cheap, may
    /// say yes for a chunk that straddles the range without a sample in it).
    pub fn has_samples_in(&self, mint: i64, maxt: i64) -> bool {
        self.sealed()
            .iter()
            .any(|c| c.max_t >= mint && c.min_t <= maxt)
            || (!self.open.is_empty()
                && self.open.max_time() >= mint
                && self.open.min_time() <= maxt)
            || self
                .extra()
                .is_some_and(|e| e.range(mint..=maxt).next().is_some())
            || self.hist().is_some_and(|h| h.has_samples_in(mint, maxt))
    }
}

/// A chunk read back from its file that does not decode.
fn read_back_error(e: chunk::CorruptChunk) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a head chunk read back from its file: {}", e.0),
    )
}

/// Pushes without the slack of a `Vec`'s doubling: a series seals a chunk
/// every [`SAMPLES_PER_CHUNK`] samples, so the copy is rare and short.
fn push_exact<T>(list: &mut Vec<T>, item: T) {
    list.reserve_exact(1);
    list.push(item);
}

/// Seals a full open chunk, re-encoded in its smallest encoding.
fn seal(open: &OpenChunk) -> SealedChunk {
    let mut samples = Vec::with_capacity(open.len());
    open.decode_into(&mut samples).expect("head chunk decodes");
    seal_samples(&samples)
}

/// Sorted samples (at least one) as a sealed chunk in its smallest encoding.
fn seal_samples(samples: &[Sample]) -> SealedChunk {
    SealedChunk {
        min_t: samples[0].timestamp_ms,
        max_t: samples[samples.len() - 1].timestamp_ms,
        data: chunk::encode_best(samples).into_boxed_slice(),
    }
}

/// Sorted samples as sealed chunks of at most [`SAMPLES_PER_CHUNK`].
fn encode_run(samples: Vec<Sample>) -> Vec<SealedChunk> {
    samples
        .chunks(SAMPLES_PER_CHUNK)
        .map(seal_samples)
        .collect()
}

/// Merges two sorted runs; on equal timestamps the second run's sample wins.
pub(crate) fn merge_last_wins(first: Vec<Sample>, second: Vec<Sample>) -> Vec<Sample> {
    merge_last_wins_by(first, second, |s| s.timestamp_ms)
}

/// Merges two runs sorted by `time`; on equal times the second run's item wins.
pub(crate) fn merge_last_wins_by<T>(
    first: Vec<T>,
    second: Vec<T>,
    time: impl Fn(&T) -> i64,
) -> Vec<T> {
    if second.is_empty() {
        return first;
    }
    if first.is_empty() {
        return second;
    }
    // Runs that do not overlap in time (a series' blocks and head, read in
    // time order) are joined without comparing item by item.
    let (first_start, first_end) = (time(&first[0]), time(&first[first.len() - 1]));
    let (second_start, second_end) = (time(&second[0]), time(&second[second.len() - 1]));
    if first_end < second_start {
        let mut out = first;
        out.extend(second);
        return out;
    }
    if second_end < first_start {
        let mut out = second;
        out.extend(first);
        return out;
    }
    let mut out = Vec::with_capacity(first.len() + second.len());
    let (mut a, mut b) = (first.into_iter().peekable(), second.into_iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                if time(x) < time(y) {
                    out.push(a.next().expect("peeked"));
                } else {
                    if time(x) == time(y) {
                        a.next();
                    }
                    out.push(b.next().expect("peeked"));
                }
            }
            (Some(_), None) => out.extend(a.by_ref()),
            (None, Some(_)) => out.extend(b.by_ref()),
            (None, None) => return out,
        }
    }
}

/// Series rebuilt from the WAL by one replay thread, before indexing.
#[derive(Debug, Default)]
pub(crate) struct ReplayShard {
    series: IdMap<SplitSeries>,
}

impl ReplayShard {
    /// Adds a series (the first record for an id wins, as in the head).
    pub fn insert(&mut self, id: u64, labels: Labels) {
        self.series.entry(id).or_insert_with(|| SplitSeries {
            labels,
            data: MemSeries::new(),
        });
    }

    /// Stores a replayed sample; samples of unknown series are dropped.
    pub fn apply(&mut self, id: u64, t: i64, v: f64) {
        if let Some(series) = self.series.get_mut(&id) {
            series.data.apply(t, v);
        }
    }

    /// Stores a replayed histogram sample; those of unknown series are dropped.
    pub fn apply_histogram(&mut self, id: u64, t: i64, v: &HistogramValue) {
        if let Some(series) = self.series.get_mut(&id) {
            series.data.apply_histogram(t, v);
        }
    }
}

/// Why a sample was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Older than the out-of-order window allows for its series.
    TooOld,
    /// Older than the newest persisted block's end, where that time is
    /// closed (cluster mode, or beyond the out-of-order window).
    OutOfBounds,
    /// Older than the retention period keeps.
    PastRetention,
    /// The store holds as many series as it may.
    SeriesLimit,
    /// The metric name holds as many series as it may.
    MetricSeriesLimit,
    /// The series has no labels, an empty metric name, or a bad label name.
    InvalidSeries,
    /// The series has more labels than `max_labels_per_series`.
    TooManyLabels,
    /// A label name is longer than `max_label_name_length`.
    LabelNameTooLong,
    /// A label value is longer than `max_label_value_length`.
    LabelValueTooLong,
    /// A native histogram with more buckets than `max_native_histogram_buckets`.
    TooManyBuckets,
    /// A native histogram that fails Prometheus's validation.
    InvalidHistogram,
    /// A native histogram sent to a writer that cannot store them.
    HistogramsUnsupported,
}

impl RejectReason {
    /// A short description for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::TooOld => "older than the out-of-order window for its series",
            Self::OutOfBounds => "older than the newest persisted block",
            Self::PastRetention => "older than the retention period keeps",
            Self::SeriesLimit => "the store's series limit is reached",
            Self::MetricSeriesLimit => "the metric's series limit is reached",
            Self::InvalidSeries => "the series has no metric name or an invalid label name",
            Self::TooManyLabels => {
                "the series has more labels than storage.metrics.max_labels_per_series allows"
            }
            Self::LabelNameTooLong => {
                "a label name is longer than storage.metrics.max_label_name_length allows"
            }
            Self::LabelValueTooLong => {
                "a label value is longer than storage.metrics.max_label_value_length allows"
            }
            Self::TooManyBuckets => {
                "a native histogram has more buckets than storage.metrics.max_native_histogram_buckets allows"
            }
            Self::InvalidHistogram => "the native histogram is not valid",
            Self::HistogramsUnsupported => "this store does not keep native histograms",
        }
    }
}

/// Limits and windows the head enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub ooo_window_ms: i64,
    /// Samples before this are past retention.
    pub oldest_ms: i64,
    /// Whether samples before the head's start are taken (backfill).
    pub backfill: bool,
    pub max_series: usize,
    pub max_series_per_metric: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
}

/// The label strings of the head's series, each once, by a `u32` id: a
/// series keeps ids, not strings (8 bytes a label rather than 32).
#[derive(Debug, Default)]
struct Symbols {
    strings: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
    /// Ids of strings no series uses any more, for reuse.
    free: Vec<u32>,
}

impl Symbols {
    fn id(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    fn intern(&mut self, s: &Arc<str>) -> u32 {
        if let Some(id) = self.id(s) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = s.clone();
                id
            }
            None => {
                self.strings.push(s.clone());
                u32::try_from(self.strings.len() - 1).expect("under 2^32 label strings")
            }
        };
        self.ids.insert(s.clone(), id);
        id
    }

    fn get(&self, id: u32) -> &Arc<str> {
        &self.strings[id as usize]
    }

    /// Frees every string `used` says no series holds.
    fn retain(&mut self, used: impl Fn(u32) -> bool) {
        let empty: Arc<str> = Arc::from("");
        let strings = &mut self.strings;
        let free = &mut self.free;
        self.ids.retain(|_, &mut id| {
            let keep = used(id);
            if !keep {
                strings[id as usize] = empty.clone();
                free.push(id);
            }
            keep
        });
    }
}

/// A postings key: a label's name and value symbols in one `u64`.
fn pair_key(name: u32, value: u32) -> u64 {
    (u64::from(name) << 32) | u64::from(value)
}

/// The head's state; the engine guards it with one lock.
#[derive(Debug, Default)]
pub(crate) struct HeadInner {
    series: IdMap<HeadSeries>,
    /// Series by a hash of their labels: the labels themselves live once, in
    /// the series. Two label sets with one hash (rare) put the later in `collided`.
    by_hash: IdMap<u64>,
    collided: HashMap<Labels, u64>,
    /// Every head series' label symbol ids, one run a series
    /// ([`HeadSeries::labels_at`]): one allocation, not one a series.
    label_ids: Vec<u32>,
    /// Ids in `label_ids` of series gone since it was last compacted.
    dead_label_ids: usize,
    /// Series ids by label pair ([`pair_key`]).
    postings: IdMap<Vec<u64>>,
    /// Series per metric name symbol.
    per_metric: HashMap<u32, usize>,
    symbols: Symbols,
    next_id: u64,
    /// Samples before this are refused: the newest block ends here.
    pub min_valid_time: i64,
    /// Each series' rank in label order, built on first use after series
    /// came or went, so queries list series in label order without sorting.
    label_order: std::sync::Mutex<Option<Arc<IdMap<u32>>>>,
    /// Where sealed chunks go, out of the heap; without it they stay in
    /// memory.
    chunk_files: Option<ChunkFiles>,
    /// Series that sealed a chunk not yet written to `chunk_files`.
    unwritten: Vec<u64>,
    /// When a failed chunk write was last logged (at most once a minute).
    write_warned: Option<std::time::Instant>,
}

impl HeadInner {
    /// An empty head that accepts samples from `min_valid_time` on.
    pub fn new(min_valid_time: i64) -> Self {
        Self {
            next_id: 1,
            min_valid_time,
            ..Self::default()
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn chunk_count(&self) -> usize {
        self.series.values().map(|s| s.data.chunk_count()).sum()
    }

    /// Sealed chunks (floats and histograms) held in memory, and those in
    /// the chunk files.
    #[cfg(test)]
    pub fn sealed_chunks_by_place(&self) -> (usize, usize) {
        let sealed = self.series.values().flat_map(|s| {
            let hists = s.data.hist().map_or(&[][..], |h| &h.sealed);
            s.data.sealed().iter().chain(hists)
        });
        let in_memory = sealed
            .clone()
            .filter(|c| c.data.in_memory().is_some())
            .count();
        (in_memory, sealed.count() - in_memory)
    }

    /// A series' labels as string pairs, in label order.
    fn pairs<'a>(&'a self, ids: &'a [u32]) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> {
        ids.chunks_exact(2)
            .map(|p| (&**self.symbols.get(p[0]), &**self.symbols.get(p[1])))
    }

    /// A series' label symbol ids.
    fn label_ids_of(&self, s: &HeadSeries) -> &[u32] {
        &self.label_ids[s.labels_at as usize..][..usize::from(s.labels_len)]
    }

    fn build_labels(&self, ids: &[u32]) -> Labels {
        Labels::from_sorted(
            ids.chunks_exact(2)
                .map(|p| Label {
                    name: self.symbols.get(p[0]).clone(),
                    value: self.symbols.get(p[1]).clone(),
                })
                .collect(),
        )
    }

    /// The labels of series `id`, built from the head's symbols.
    pub fn labels(&self, id: u64) -> Option<Labels> {
        self.series
            .get(&id)
            .map(|s| self.build_labels(self.label_ids_of(s)))
    }

    /// The labels of series `id` as string pairs, in label order.
    pub fn label_pairs(&self, id: u64) -> impl Iterator<Item = (&str, &str)> {
        self.series
            .get(&id)
            .into_iter()
            .flat_map(|s| self.pairs(self.label_ids_of(s)))
    }

    /// Whether a series' label ids spell these pairs.
    fn same_pairs<'a>(
        &self,
        ids: &[u32],
        mut pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        ids.len() == 2 * pairs.len() && self.pairs(ids).all(|p| pairs.next() == Some(p))
    }

    /// Whether a series' labels satisfy every matcher (an absent label is "").
    fn matches(&self, ids: &[u32], matchers: &[Matcher]) -> bool {
        matchers.iter().all(|m| {
            let value = self
                .pairs(ids)
                .find(|(name, _)| *name == m.name)
                .map_or("", |(_, v)| v);
            m.matches(value)
        })
    }

    /// Two series' labels in label order (as `Labels` compare).
    fn cmp_labels(&self, a: &[u32], b: &[u32]) -> std::cmp::Ordering {
        if a == b {
            return std::cmp::Ordering::Equal;
        }
        self.pairs(a).cmp(self.pairs(b))
    }

    /// The id of the series with exactly these labels, if present.
    pub fn lookup(&self, labels: &Labels) -> Option<u64> {
        let id = *self.by_hash.get(&hash_labels(labels))?;
        let pairs = labels.iter().map(|l| (&*l.name, &*l.value));
        if self
            .series
            .get(&id)
            .is_some_and(|s| self.same_pairs(self.label_ids_of(s), pairs))
        {
            Some(id)
        } else {
            self.collided.get(labels).copied()
        }
    }

    /// [`HeadInner::lookup`] by label pairs sorted by name, building no labels.
    #[cfg(test)]
    pub fn lookup_pairs(&self, pairs: &[(&str, &str)]) -> Option<u64> {
        self.lookup_hashed(&[pairs], &[hash_pairs(pairs)])[0]
    }

    /// [`HeadInner::lookup`] of many series by label pairs sorted by name
    /// and their [`hash_pairs`], building no labels. Each step goes over the
    /// whole batch (the hash index, then the series, then their labels):
    /// the lookups of one step do not wait on each other, so their reads
    /// from memory overlap instead of missing the cache one after another.
    pub fn lookup_hashed(&self, items: &[&[(&str, &str)]], hashes: &[u64]) -> Vec<Option<u64>> {
        let ids: Vec<Option<u64>> = hashes
            .iter()
            .map(|h| self.by_hash.get(h).copied())
            .collect();
        let found: Vec<Option<&HeadSeries>> = ids
            .iter()
            .map(|id| id.and_then(|id| self.series.get(&id)))
            .collect();
        items
            .iter()
            .zip(ids.into_iter().zip(found))
            .map(|(pairs, found)| match found {
                (Some(id), Some(s))
                    if self.same_pairs(self.label_ids_of(s), pairs.iter().copied()) =>
                {
                    Some(id)
                }
                _ if self.collided.is_empty() => None,
                _ => self
                    .collided
                    .get(&Labels::from_pairs(pairs.iter().copied()))
                    .copied(),
            })
            .collect()
    }

    fn index_labels(&mut self, labels: &Labels, id: u64) {
        match self.by_hash.entry(hash_labels(labels)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(labels.clone(), id);
            }
        }
    }

    /// Takes a series just removed from `series` out of the hash index,
    /// the per-metric counts, the label ids and, if `postings`, the
    /// postings (its symbols stay until the next sweep).
    fn unindex(&mut self, id: u64, series: &HeadSeries, postings: bool) {
        *self.label_order.get_mut().expect("label order lock") = None;
        let ids = self.label_ids_of(series).to_vec();
        self.dead_label_ids += ids.len();
        let ids = &ids[..];
        let hash = hash_pairs_iter(self.pairs(ids));
        if self.by_hash.get(&hash) == Some(&id) {
            self.by_hash.remove(&hash);
            // Promote a collided series with the same hash into the slot.
            let promoted = self
                .collided
                .iter()
                .find(|(l, _)| hash_labels(l) == hash)
                .map(|(l, id)| (l.clone(), *id));
            if let Some((l, other)) = promoted {
                self.collided.remove(&l);
                self.by_hash.insert(hash, other);
            }
        } else if !self.collided.is_empty() {
            let labels = self.build_labels(ids);
            self.collided.remove(&labels);
        }
        for p in ids.chunks_exact(2).filter(|_| postings) {
            let key = pair_key(p[0], p[1]);
            if let Some(list) = self.postings.get_mut(&key) {
                list.retain(|x| *x != id);
                if list.is_empty() {
                    self.postings.remove(&key);
                }
            }
        }
        if let Some(name) = self.metric_name_symbol(ids)
            && let Some(count) = self.per_metric.get_mut(&name)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_metric.remove(&name);
            }
        }
    }

    fn metric_name_symbol(&self, ids: &[u32]) -> Option<u32> {
        ids.chunks_exact(2)
            .find(|p| &**self.symbols.get(p[0]) == sextant_model::METRIC_NAME)
            .map(|p| p[1])
    }

    pub fn get_or_create(
        &mut self,
        labels: &Labels,
        limits: &HeadLimits,
        created: &mut Vec<u64>,
    ) -> Result<u64, RejectReason> {
        if let Some(id) = self.lookup(labels) {
            return Ok(id);
        }
        let valid = labels.metric_name().is_some_and(|n| !n.is_empty())
            && labels.iter().all(|l| !l.name.is_empty());
        if !valid {
            return Err(RejectReason::InvalidSeries);
        }
        let max_labels = match limits.max_labels_per_series {
            0 => MAX_HEAD_LABELS,
            n => n.min(MAX_HEAD_LABELS),
        };
        if labels.len() > max_labels {
            return Err(RejectReason::TooManyLabels);
        }
        let over = |limit: usize, len: usize| limit > 0 && len > limit;
        if labels
            .iter()
            .any(|l| over(limits.max_label_name_length, l.name.len()))
        {
            return Err(RejectReason::LabelNameTooLong);
        }
        if labels
            .iter()
            .any(|l| over(limits.max_label_value_length, l.value.len()))
        {
            return Err(RejectReason::LabelValueTooLong);
        }
        if limits.max_series > 0 && self.series.len() >= limits.max_series {
            return Err(RejectReason::SeriesLimit);
        }
        let name = labels.metric_name().unwrap_or_default();
        if limits.max_series_per_metric > 0
            && self
                .symbols
                .id(name)
                .and_then(|s| self.per_metric.get(&s))
                .copied()
                .unwrap_or(0)
                >= limits.max_series_per_metric
        {
            return Err(RejectReason::MetricSeriesLimit);
        }
        let id = self.next_id;
        self.insert_series(id, labels);
        created.push(id);
        Ok(id)
    }

    /// Inserts a series under a known id (creation and WAL replay).
    pub fn insert_series(&mut self, id: u64, labels: &Labels) {
        if self.series.contains_key(&id) {
            return;
        }
        self.insert_with(id, labels, MemSeries::new());
    }

    /// Interns a series' labels, indexes it and adds it. A series with
    /// more labels than the head can hold is left out (creation refuses
    /// it first; only a WAL written under no limit could hold one).
    fn insert_with(&mut self, id: u64, labels: &Labels, data: MemSeries) {
        if labels.len() > MAX_HEAD_LABELS {
            return;
        }
        *self.label_order.get_mut().expect("label order lock") = None;
        let mut ids = Vec::with_capacity(2 * labels.len());
        for l in labels {
            ids.push(self.symbols.intern(&l.name));
            ids.push(self.symbols.intern(&l.value));
        }
        for p in ids.chunks_exact(2) {
            add_posting(self.postings.entry(pair_key(p[0], p[1])).or_default(), id);
        }
        if let Some(name) = self.metric_name_symbol(&ids) {
            *self.per_metric.entry(name).or_default() += 1;
        }
        self.index_labels(labels, id);
        self.next_id = self.next_id.max(id + 1);
        let labels_at = u32::try_from(self.label_ids.len()).expect("under 2^32 label ids");
        let labels_len = u16::try_from(ids.len()).expect("under 2^15 labels a series");
        // A quarter more at a time, not double: it holds every series' labels.
        if self.label_ids.capacity() - self.label_ids.len() < ids.len() {
            self.label_ids
                .reserve_exact((self.label_ids.len() / 4).max(ids.len()).max(64));
        }
        self.label_ids.extend_from_slice(&ids);
        self.series.insert(
            id,
            HeadSeries {
                labels_at,
                labels_len,
                data,
            },
        );
    }

    /// Rewrites `label_ids` without the runs of series that left, once
    /// they are over half of it.
    fn compact_label_ids(&mut self) {
        if self.dead_label_ids * 2 <= self.label_ids.len() {
            return;
        }
        let mut kept = Vec::with_capacity(self.label_ids.len() - self.dead_label_ids);
        for s in self.series.values_mut() {
            let at = s.labels_at as usize;
            let run = &self.label_ids[at..at + usize::from(s.labels_len)];
            s.labels_at = u32::try_from(kept.len()).expect("under 2^32 label ids");
            kept.extend_from_slice(run);
        }
        self.label_ids = kept;
        self.dead_label_ids = 0;
    }

    /// Whether `t` is newer than everything series `id` holds, and not
    /// before the head's start.
    pub fn is_newest(&self, id: u64, t: i64) -> bool {
        t >= self.min_valid_time
            && self
                .series
                .get(&id)
                .is_some_and(|s| s.data.is_empty() || t > s.data.max_t)
    }

    /// Checks one sample against the series' window without storing it.
    pub fn check(&self, id: u64, t: i64, limits: &HeadLimits) -> Result<(), RejectReason> {
        if t < limits.oldest_ms {
            return Err(RejectReason::PastRetention);
        }
        if t < self.min_valid_time
            && (!limits.backfill || t < self.min_valid_time.saturating_sub(limits.ooo_window_ms))
        {
            return Err(RejectReason::OutOfBounds);
        }
        let series = &self
            .series
            .get(&id)
            .ok_or(RejectReason::InvalidSeries)?
            .data;
        if series.is_empty()
            || t > series.max_t
            || t >= series.max_t.saturating_sub(limits.ooo_window_ms)
        {
            Ok(())
        } else {
            Err(RejectReason::TooOld)
        }
    }

    /// Stores a sample already checked (or replayed). Returns sealed-chunk
    /// count (0 or 1); the chunk is written out by [`HeadInner::write_sealed`].
    pub fn apply(&mut self, id: u64, t: i64, v: f64) -> usize {
        let sealed = self
            .series
            .get_mut(&id)
            .is_some_and(|series| series.data.apply(t, v));
        if sealed && self.chunk_files.is_some() {
            self.unwritten.push(id);
        }
        usize::from(sealed)
    }

    /// From now on, sealed chunks go to `files`; those held now are
    /// written there at once.
    pub fn use_chunk_files(&mut self, files: ChunkFiles) {
        self.chunk_files = Some(files);
        self.unwritten = self.series.keys().copied().collect();
        self.write_sealed();
    }

    /// Writes the sealed chunks still in memory of the series that sealed
    /// one since the last call, in one write, and keeps only where they
    /// went. When the write fails (logged at most once a minute) they stay
    /// in memory, readable as before.
    pub fn write_sealed(&mut self) {
        if let Err(err) = self.try_write_sealed() {
            let now = std::time::Instant::now();
            if self
                .write_warned
                .is_none_or(|at| now.duration_since(at).as_secs() >= 60)
            {
                self.write_warned = Some(now);
                tracing::warn!(%err, "sealed head chunks stay in memory: writing them out failed");
            }
        }
    }

    fn try_write_sealed(&mut self) -> std::io::Result<()> {
        let Self {
            chunk_files,
            series,
            unwritten,
            ..
        } = self;
        let mut ids = std::mem::take(unwritten);
        let Some(files) = chunk_files.as_mut() else {
            return Ok(());
        };
        ids.sort_unstable();
        ids.dedup();
        // Where each chunk is: series, histogram or float, index.
        let mut places = Vec::new();
        let mut bytes: Vec<&[u8]> = Vec::new();
        for id in ids {
            let Some(s) = series.get(&id) else { continue };
            let floats = s
                .data
                .sealed()
                .iter()
                .enumerate()
                .map(|(i, c)| (false, i, c));
            let hists = s.data.hist().map_or(&[][..], |h| &h.sealed);
            let hists = hists.iter().enumerate().map(|(i, c)| (true, i, c));
            for (hist, i, c) in floats.chain(hists) {
                if let Some(b) = c.data.in_memory() {
                    places.push((id, hist, i));
                    bytes.push(b);
                }
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let written = files.write(&bytes)?;
        drop(bytes);
        for ((id, hist, i), data) in places.into_iter().zip(written) {
            let Some(rest) = series.get_mut(&id).and_then(|s| s.data.rest.as_deref_mut()) else {
                continue;
            };
            let chunk = if hist {
                rest.hist.as_deref_mut().and_then(|h| h.sealed.get_mut(i))
            } else {
                rest.sealed.get_mut(i)
            };
            if let Some(chunk) = chunk {
                chunk.data = data;
            }
        }
        Ok(())
    }

    /// Stores a histogram sample already checked (or replayed). Returns
    /// sealed-chunk count (0 or 1).
    pub fn apply_histogram(&mut self, id: u64, t: i64, v: &HistogramValue) -> usize {
        let sealed = self
            .series
            .get_mut(&id)
            .is_some_and(|series| series.data.apply_histogram(t, v));
        if sealed && self.chunk_files.is_some() {
            self.unwritten.push(id);
        }
        usize::from(sealed)
    }

    /// Builds a head from series replayed elsewhere (in parallel shards):
    /// interns their labels and indexes them.
    pub fn from_replayed(min_valid_time: i64, shards: Vec<ReplayShard>) -> Self {
        let mut head = Self::new(min_valid_time);
        for shard in shards {
            for (id, series) in shard.series {
                if series.data.is_empty() {
                    continue;
                }
                head.insert_with(id, &series.labels, series.data);
            }
        }
        head
    }

    /// Ids of series matching every matcher, in their labels' order.
    pub fn select_ids_in_label_order(&self, matchers: &[Matcher]) -> Vec<u64> {
        let ids = self.select_ids(matchers);
        let cached = self.label_order.lock().expect("label order lock").clone();
        // The rank of every series pays off for a large selection; a small
        // one (a rule's, a dashboard panel's) is sorted by its own labels, so
        // series that come and go between queries cost no full re-sort.
        let order = match cached {
            Some(order) => order,
            None if ids.len() >= 1024 && ids.len() * 4 >= self.series.len() => self.label_order(),
            None => {
                let mut by_labels: Vec<(&[u32], u64)> = ids
                    .iter()
                    .map(|id| (self.label_ids_of(&self.series[id]), *id))
                    .collect();
                by_labels.sort_unstable_by(|a, b| self.cmp_labels(a.0, b.0));
                return by_labels.into_iter().map(|(_, id)| id).collect();
            }
        };
        let mut ranked: Vec<(u32, u64)> = ids
            .into_iter()
            .map(|id| (order.get(&id).copied().unwrap_or(u32::MAX), id))
            .collect();
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, id)| id).collect()
    }

    fn label_order(&self) -> Arc<IdMap<u32>> {
        let mut cached = self.label_order.lock().expect("label order lock");
        if let Some(order) = cached.as_ref() {
            return order.clone();
        }
        let mut all: Vec<(&[u32], u64)> = self
            .series
            .iter()
            .map(|(&id, s)| (self.label_ids_of(s), id))
            .collect();
        all.sort_unstable_by(|a, b| self.cmp_labels(a.0, b.0));
        let order: Arc<IdMap<u32>> = Arc::new(
            all.iter()
                .enumerate()
                .map(|(rank, &(_, id))| (id, rank as u32))
                .collect(),
        );
        *cached = Some(order.clone());
        order
    }

    /// Ids of series matching every matcher, ascending.
    pub fn select_ids(&self, matchers: &[Matcher]) -> Vec<u64> {
        let candidates = postings_candidates(matchers, |name, value| {
            let key = self
                .symbols
                .id(name)
                .zip(self.symbols.id(value))
                .map(|(n, v)| pair_key(n, v));
            key.and_then(|k| self.postings.get(&k))
                .map(Vec::as_slice)
                .unwrap_or_default()
        });
        let mut ids = candidates.unwrap_or_else(|| self.series.keys().copied().collect());
        ids.retain(|id| self.matches(self.label_ids_of(&self.series[id]), matchers));
        ids.sort_unstable();
        ids
    }

    /// A series by id.
    pub fn series(&self, id: u64) -> Option<&MemSeries> {
        self.series.get(&id).map(|s| &s.data)
    }

    /// Removes series whose creation could not be logged, and the strings
    /// only they held.
    pub fn forget(&mut self, ids: &[u64]) {
        let mut removed = false;
        for id in ids {
            if let Some(series) = self.series.remove(id) {
                self.unindex(*id, &series, true);
                removed = true;
            }
        }
        if removed {
            self.free_unused_symbols();
        }
        self.compact_label_ids();
    }

    /// The id the next new series will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Every live series id (for WAL checkpoints).
    pub fn ids(&self) -> HashSet<u64> {
        self.series.keys().copied().collect()
    }

    /// Oldest and newest sample times, if any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mut range: Option<(i64, i64)> = None;
        for s in self.series.values() {
            let Some(min) = s.data.min_time() else {
                continue;
            };
            let max = s.data.newest();
            range = Some(match range {
                None => (min, max),
                Some((a, b)) => (a.min(min), b.max(max)),
            });
        }
        range
    }

    /// Drops data before `t` and series left empty. Returns (series removed, chunks removed).
    #[cfg(test)]
    pub fn truncate_before(&mut self, t: i64) -> (usize, usize) {
        let split = self.split_before(t);
        (split.series_removed, split.chunks_removed)
    }

    /// Moves every sample before `t` out of the head (the in-order range
    /// it starts now moves up to `t`, if it was lower) and drops the series
    /// left empty: what left, by series in label order, to be written as blocks.
    pub fn split_before(&mut self, t: i64) -> HeadSplit {
        self.min_valid_time = self.min_valid_time.max(t);
        let mut chunks = 0;
        let mut removed = Vec::new();
        let mut series_out = Vec::new();
        for (&id, series) in &mut self.series {
            if series.data.min_time().is_none_or(|min| min >= t) {
                continue;
            }
            let (gone, n) = series.data.split_before(t);
            chunks += n;
            if self.chunk_files.is_some() && series.data.holds_chunks_in_memory() {
                // The re-encoded rest of a chunk the bound went through.
                self.unwritten.push(id);
            }
            if !gone.is_empty() {
                series_out.push((id, gone));
            }
            if series.data.is_empty() {
                removed.push(id);
            }
        }
        // Labels for what left, built before its series go.
        let mut series_out: Vec<SplitSeries> = series_out
            .into_iter()
            .map(|(id, data)| SplitSeries {
                labels: self.labels(id).expect("a head series"),
                data,
            })
            .collect();
        series_out.sort_by(|a, b| a.labels.cmp(&b.labels));
        let split = HeadSplit {
            series: series_out,
            series_removed: removed.len(),
            chunks_removed: chunks,
        };
        self.write_sealed();
        if removed.is_empty() {
            return split;
        }
        for id in &removed {
            if let Some(series) = self.series.remove(id) {
                self.unindex(*id, &series, false);
            }
        }
        let gone: HashSet<u64> = removed.iter().copied().collect();
        self.postings.retain(|_, ids| {
            ids.retain(|id| !gone.contains(id));
            if ids.capacity() > 2 * ids.len() {
                ids.shrink_to_fit();
            }
            !ids.is_empty()
        });
        self.free_unused_symbols();
        self.compact_label_ids();
        split
    }

    /// Frees the strings no series holds any more: every live series'
    /// strings are in some postings key.
    fn free_unused_symbols(&mut self) {
        let mut used = vec![false; self.symbols.strings.len()];
        for &key in self.postings.keys() {
            used[(key >> 32) as usize] = true;
            used[(key & u64::from(u32::MAX)) as usize] = true;
        }
        self.symbols.retain(|id| used[id as usize]);
    }
}

/// Adds a new series' id to a postings list. Grows by a quarter, not
/// double: the lists hold every series' id once per label.
fn add_posting(list: &mut Vec<u64>, id: u64) {
    if list.len() == list.capacity() {
        list.reserve_exact((list.len() / 4).max(4));
    }
    list.push(id);
}

/// Samples moved out of the head by [`HeadInner::split_before`].
#[derive(Debug, Default)]
pub(crate) struct HeadSplit {
    /// The samples, by series in label order.
    pub series: Vec<SplitSeries>,
    pub series_removed: usize,
    pub chunks_removed: usize,
}

/// A map keyed by series ids or hashes: keys are already well spread (or
/// sequential), so one multiply mixes them; SipHash would cost more than the
/// work the map saves.
type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; this keeps the hasher total anyway (FNV-1a).
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = (key ^ (key >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
}

/// The hasher of label sets: foldhash, several times faster than SipHash
/// on short strings, seeded at random once a process so that a sender
/// cannot choose label sets that collide (those would only be slower:
/// `collided` holds them).
fn label_hasher() -> foldhash::fast::FoldHasher<'static> {
    use std::hash::BuildHasher as _;
    static STATE: std::sync::OnceLock<foldhash::fast::SeedableRandomState> =
        std::sync::OnceLock::new();
    STATE
        .get_or_init(foldhash::fast::SeedableRandomState::random)
        .build_hasher()
}

/// A hash of a label set (the same for equal labels within this process).
fn hash_labels(labels: &Labels) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = label_hasher();
    labels.hash(&mut hasher);
    hasher.finish()
}

/// [`hash_labels`] of the labels these pairs (sorted by name) make,
/// without making them: a `Vec`'s length, then each name and value.
pub(crate) fn hash_pairs(pairs: &[(&str, &str)]) -> u64 {
    hash_pairs_iter(pairs.iter().copied())
}

/// [`hash_pairs`] of pairs from an iterator.
fn hash_pairs_iter<'a>(pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = label_hasher();
    pairs.len().hash(&mut hasher);
    for (name, value) in pairs {
        name.hash(&mut hasher);
        value.hash(&mut hasher);
    }
    hasher.finish()
}

/// The series that the exact-value matchers (`=` and regexes of literals) allow,
/// from their postings, intersected; `None` when no matcher narrows the set.
/// Callers still check every matcher against the candidates' labels.
pub(crate) fn postings_candidates<'p, T: Copy + Ord + 'p>(
    matchers: &[Matcher],
    postings: impl Fn(&str, &str) -> &'p [T],
) -> Option<Vec<T>> {
    let mut candidates: Option<Vec<T>> = None;
    for m in matchers {
        let Some(values) = m.set_matches() else {
            continue;
        };
        // An empty value also matches series without the label: no postings list holds those.
        if values.iter().any(|v| v.is_empty()) {
            continue;
        }
        let mut ids: Vec<T> = values
            .iter()
            .flat_map(|v| postings(&m.name, v))
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        candidates = Some(match candidates {
            None => ids,
            Some(prev) => intersect(&prev, &ids),
        });
    }
    candidates
}

fn intersect<T: Copy + Ord>(a: &[T], b: &[T]) -> Vec<T> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use sextant_model::MatchOp;

    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        ooo_window_ms: 10_000,
        oldest_ms: i64::MIN,
        backfill: false,
        max_series: 3,
        max_series_per_metric: 2,
        max_labels_per_series: 3,
        max_label_name_length: 8,
        max_label_value_length: 16,
    };

    /// With no configured limit, a series with more labels than the head
    /// holds is refused by name, not a panic; the most it holds is kept.
    #[test]
    fn unlimited_labels_stop_at_what_the_head_holds() {
        let limits = HeadLimits {
            max_series: 0,
            max_series_per_metric: 0,
            max_labels_per_series: 0,
            max_label_name_length: 0,
            max_label_value_length: 0,
            ..LIMITS
        };
        let series = |n: usize| {
            Labels::from_pairs(
                std::iter::once(("__name__".to_owned(), "wide".to_owned()))
                    .chain((1..n).map(|i| (format!("l{i}"), "v".to_owned()))),
            )
        };
        let mut head = HeadInner::new(i64::MIN);
        let too_wide = series(MAX_HEAD_LABELS + 1);
        assert_eq!(
            head.get_or_create(&too_wide, &limits, &mut Vec::new()),
            Err(RejectReason::TooManyLabels)
        );
        let widest = series(MAX_HEAD_LABELS);
        let id = head
            .get_or_create(&widest, &limits, &mut Vec::new())
            .unwrap();
        assert_eq!(head.labels(id), Some(widest));
    }

    #[test]
    fn label_pairs_hash_and_look_up_as_their_labels_do() {
        let pairs = [("__name__", "up"), ("instance", "a:9100"), ("job", "node")];
        let labels = Labels::from_pairs(pairs);
        assert_eq!(hash_pairs(&pairs), hash_labels(&labels));
        let mut head = HeadInner::new(i64::MIN);
        assert_eq!(head.lookup_pairs(&pairs), None);
        let id = head
            .get_or_create(&labels, &LIMITS, &mut Vec::new())
            .unwrap();
        assert_eq!(head.lookup_pairs(&pairs), Some(id));
        assert_eq!(head.lookup_pairs(&pairs[..2]), None);
        assert_eq!(
            head.lookup_pairs(&[("__name__", "up"), ("instance", "a:9100"), ("job", "nodf")]),
            None
        );
    }

    #[test]
    fn merging_runs_keeps_time_order_and_the_second_run_wins_ties() {
        let run = |points: &[(i64, f64)]| -> Vec<Sample> {
            points
                .iter()
                .map(|&(timestamp_ms, value)| Sample {
                    timestamp_ms,
                    value,
                })
                .collect()
        };
        let pairs = |samples: Vec<Sample>| -> Vec<(i64, f64)> {
            samples.iter().map(|s| (s.timestamp_ms, s.value)).collect()
        };
        // Apart, either way round.
        let a = run(&[(1, 1.0), (2, 2.0)]);
        let b = run(&[(5, 5.0), (6, 6.0)]);
        let joined = [(1, 1.0), (2, 2.0), (5, 5.0), (6, 6.0)];
        assert_eq!(pairs(merge_last_wins(a.clone(), b.clone())), joined);
        assert_eq!(pairs(merge_last_wins(b, a)), joined);
        // Touching at one timestamp: the second run's sample wins.
        let a = run(&[(1, 1.0), (2, 2.0)]);
        let b = run(&[(2, 20.0), (3, 3.0)]);
        assert_eq!(
            pairs(merge_last_wins(a.clone(), b.clone())),
            [(1, 1.0), (2, 20.0), (3, 3.0)]
        );
        assert_eq!(pairs(merge_last_wins(b, a)), [(1, 1.0), (2, 2.0), (3, 3.0)]);
        // Interleaved.
        let a = run(&[(1, 1.0), (3, 3.0), (5, 5.0)]);
        let b = run(&[(2, 2.0), (3, 30.0), (6, 6.0)]);
        assert_eq!(
            pairs(merge_last_wins(a, b)),
            [(1, 1.0), (2, 2.0), (3, 30.0), (5, 5.0), (6, 6.0)]
        );
        assert!(merge_last_wins(Vec::new(), Vec::new()).is_empty());
    }

    #[test]
    fn new_series_over_the_label_limits_are_refused_by_reason() {
        let mut head = HeadInner::default();
        let mut created = Vec::new();
        let mut refused = |pairs: &[(&str, &str)]| {
            head.get_or_create(
                &Labels::from_pairs(pairs.iter().copied()),
                &LIMITS,
                &mut created,
            )
            .err()
        };
        assert_eq!(
            refused(&[("__name__", "up"), ("job", "a"), ("zone", "b")]),
            None
        );
        assert_eq!(
            refused(&[("__name__", "up"), ("a", "1"), ("b", "2"), ("c", "3")]),
            Some(RejectReason::TooManyLabels)
        );
        assert_eq!(
            refused(&[("__name__", "up"), ("very_long_name", "1")]),
            Some(RejectReason::LabelNameTooLong)
        );
        assert_eq!(
            refused(&[("__name__", "up"), ("job", "seventeen bytes!!")]),
            Some(RejectReason::LabelValueTooLong)
        );
        assert_eq!(created.len(), 1);
    }

    fn labels(name: &str, job: &str) -> Labels {
        Labels::from_pairs([("__name__", name), ("job", job)])
    }

    /// A series whose creation could not be logged leaves nothing behind:
    /// the strings only it held are freed (and reused), shared ones stay.
    #[test]
    fn forgotten_series_free_the_strings_only_they_held() {
        let mut head = HeadInner::new(i64::MIN);
        add(&mut head, &labels("up", "node"), 1, 1.0).unwrap();
        let interned = |head: &HeadInner| head.symbols.ids.len();
        assert_eq!(interned(&head), 4);
        let mut created = Vec::new();
        head.get_or_create(&labels("up", "api"), &LIMITS, &mut created)
            .unwrap();
        assert_eq!(interned(&head), 5);
        head.forget(&created);
        assert_eq!(
            interned(&head),
            4,
            "\"api\" is freed, the shared strings stay"
        );
        assert_eq!(head.symbols.free.len(), 1);
        assert_eq!(head.lookup(&labels("up", "api")), None);
        assert!(head.lookup(&labels("up", "node")).is_some());
        assert_eq!(
            head.labels(head.lookup(&labels("up", "node")).unwrap()),
            Some(labels("up", "node"))
        );
        add(&mut head, &labels("up", "db"), 2, 1.0).unwrap();
        assert!(head.symbols.free.is_empty(), "the freed id is reused");
    }

    fn add(head: &mut HeadInner, l: &Labels, t: i64, v: f64) -> Result<(), RejectReason> {
        let id = head.get_or_create(l, &LIMITS, &mut Vec::new())?;
        head.check(id, t, &LIMITS)?;
        head.apply(id, t, v);
        Ok(())
    }

    fn values(head: &HeadInner, l: &Labels) -> Vec<(i64, f64)> {
        let id = head.lookup(l).unwrap();
        head.series(id)
            .unwrap()
            .samples(i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .map(|s| (s.timestamp_ms, s.value))
            .collect()
    }

    /// `up` with 300 samples a second apart from 100 s, then one late
    /// sample within the out-of-order window (merged in place when read)
    /// and an overwrite of the one at 398 s (the last write wins).
    fn up_with_late_samples() -> (HeadInner, Labels) {
        let mut head = HeadInner::new(0);
        let up = labels("up", "node");
        for t in 0..300 {
            add(&mut head, &up, 100_000 + t * 1000, t as f64).unwrap();
        }
        add(&mut head, &up, 100_000 + 299 * 1000 - 500, -1.0).unwrap();
        add(&mut head, &up, 100_000 + 298 * 1000, 42.0).unwrap();
        (head, up)
    }

    #[test]
    fn in_order_out_of_order_and_overwrites() {
        let (mut head, up) = up_with_late_samples();
        // Beyond the window: refused.
        assert_eq!(add(&mut head, &up, 100_000, 0.0), Err(RejectReason::TooOld));
        let got = values(&head, &up);
        assert_eq!(got.len(), 301);
        assert_eq!(got[298], (398_000, 42.0));
        assert_eq!(got[299], (398_500, -1.0));
        assert_eq!(got[300], (399_000, 299.0));
        assert!(head.chunk_count() >= 3);
    }

    #[test]
    fn samples_appended_to_a_buffer_are_the_samples_of_the_range() {
        let (head, up) = up_with_late_samples();
        let series = head.series(head.lookup(&up).unwrap()).unwrap();
        let before = Sample {
            timestamp_ms: 7,
            value: 0.5,
        };
        for (mint, maxt) in [
            (i64::MIN, i64::MAX),
            (150_000, 250_000),
            (150_500, 398_500),
            (398_000, 398_000),
            (398_200, 398_700),
            (0, 99_999),
        ] {
            let alone = series.samples(mint, maxt).unwrap();
            let all = series.samples(i64::MIN, i64::MAX).unwrap();
            let expected: Vec<Sample> = all
                .into_iter()
                .filter(|s| s.timestamp_ms >= mint && s.timestamp_ms <= maxt)
                .collect();
            assert_eq!(alone, expected, "[{mint}, {maxt}]");
            let mut out = vec![before];
            series.samples_into(mint, maxt, &mut out).unwrap();
            assert_eq!(out[0], before);
            assert_eq!(out[1..], expected[..], "[{mint}, {maxt}]");
        }
    }

    #[test]
    fn limits_and_invalid_series_are_refused_with_their_reason() {
        let mut head = HeadInner::new(0);
        add(&mut head, &labels("a", "1"), 1, 1.0).unwrap();
        add(&mut head, &labels("a", "2"), 1, 1.0).unwrap();
        assert_eq!(
            add(&mut head, &labels("a", "3"), 1, 1.0),
            Err(RejectReason::MetricSeriesLimit)
        );
        add(&mut head, &labels("b", "1"), 1, 1.0).unwrap();
        assert_eq!(
            add(&mut head, &labels("c", "1"), 1, 1.0),
            Err(RejectReason::SeriesLimit)
        );
        assert_eq!(
            add(&mut head, &Labels::from_pairs([("job", "x")]), 1, 1.0),
            Err(RejectReason::InvalidSeries)
        );
    }

    #[test]
    fn selection_uses_postings_and_matchers() {
        let mut head = HeadInner::new(0);
        for (name, job) in [("up", "node"), ("up", "api"), ("down", "node")] {
            add(&mut head, &labels(name, job), 1, 1.0).unwrap();
        }
        let m = |n: &str, op, v: &str| Matcher::new(n, op, v).unwrap();
        let names = |ids: Vec<u64>| -> Vec<String> {
            ids.iter()
                .map(|id| head.labels(*id).unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names(head.select_ids(&[m("__name__", MatchOp::Equal, "up")])),
            ["up{job=\"node\"}", "up{job=\"api\"}"]
        );
        assert_eq!(
            names(head.select_ids(&[
                m("job", MatchOp::Regex, "node|x"),
                m("__name__", MatchOp::NotEqual, "up")
            ])),
            ["down{job=\"node\"}"]
        );
        assert_eq!(head.select_ids(&[m("job", MatchOp::Equal, "")]).len(), 0);
        assert_eq!(
            head.select_ids(&[m("missing", MatchOp::Equal, "")]).len(),
            3
        );
    }

    fn histogram_with(buckets: &[(i32, u64)]) -> HistogramValue {
        let indexes: Vec<i32> = buckets.iter().map(|b| b.0).collect();
        let mut previous = 0i64;
        HistogramValue::Int(sextant_model::Histogram {
            schema: 2,
            count: buckets.iter().map(|b| b.1).sum(),
            sum: 1.0,
            positive_spans: spans_of(&indexes),
            positive_buckets: buckets
                .iter()
                .map(|b| {
                    let d = b.1 as i64 - previous;
                    previous = b.1 as i64;
                    d
                })
                .collect(),
            ..Default::default()
        })
    }

    #[test]
    fn new_buckets_recode_the_open_histogram_chunk_instead_of_cutting() {
        let mut part = HistPart::default();
        let samples = [
            histogram_with(&[(0, 1), (1, 2)]),
            // A bucket above, one far below (a span of its own), one between.
            histogram_with(&[(0, 1), (1, 3), (2, 1)]),
            histogram_with(&[(-9, 1), (0, 2), (1, 3), (2, 1)]),
            histogram_with(&[(-9, 1), (-4, 1), (0, 2), (1, 3), (2, 2)]),
        ];
        for (t, v) in samples.iter().enumerate() {
            assert!(!part.append_in_order(t as i64, v, HISTOGRAMS_PER_CHUNK));
        }
        assert_eq!(part.chunk_count(), 1, "recoded, not cut");
        let got = part.samples(i64::MIN, i64::MAX).unwrap();
        assert_eq!(got.len(), 4);
        for (got, want) in got.iter().zip(&samples) {
            let (mut a, mut b) = (got.value.to_float(), want.to_float());
            a.compact(0).unwrap();
            b.compact(0).unwrap();
            a.counter_reset_hint = b.counter_reset_hint;
            assert_eq!(a, b);
        }
        // Every sample now has the union's five buckets.
        let HistogramValue::Int(first) = &got[0].value else {
            panic!("an integer histogram")
        };
        assert_eq!(first.positive_buckets.len(), 5);
        // A count going down is a reset: that still cuts.
        part.append_in_order(9, &histogram_with(&[(0, 1)]), HISTOGRAMS_PER_CHUNK);
        assert_eq!(part.chunk_count(), 2);
        // Another schema cannot be recoded into the chunk either.
        let mut other = histogram_with(&[(0, 5), (1, 5)]);
        if let HistogramValue::Int(h) = &mut other {
            h.schema = 1;
        }
        part.append_in_order(10, &other, HISTOGRAMS_PER_CHUNK);
        assert_eq!(part.chunk_count(), 3);
    }

    #[test]
    fn series_that_outlive_others_keep_their_labels_through_compaction_and_reuse() {
        let limits = HeadLimits {
            max_series: 0,
            max_series_per_metric: 0,
            ..LIMITS
        };
        let mut head = HeadInner::new(0);
        let put = |head: &mut HeadInner, l: &Labels, t: i64| {
            let id = head.get_or_create(l, &limits, &mut Vec::new()).unwrap();
            head.check(id, t, &limits).unwrap();
            head.apply(id, t, 1.0);
        };
        let old: Vec<Labels> = (0..50).map(|i| labels("old", &format!("o{i}"))).collect();
        let live = labels("live", "x");
        for l in &old {
            put(&mut head, l, 5);
        }
        put(&mut head, &live, 5);
        put(&mut head, &live, 3_000);
        // Most label ids now belong to series gone: they are compacted away,
        // and their strings freed for reuse.
        let (removed, _) = head.truncate_before(2_000);
        assert_eq!(removed, 50);
        assert_eq!(head.dead_label_ids, 0);
        assert_eq!(head.label_ids.len(), 4);
        let id = head.lookup(&live).unwrap();
        assert_eq!(head.labels(id), Some(live.clone()));
        // New series take freed symbol ids; every label set reads back whole.
        let new: Vec<Labels> = (0..5).map(|i| labels("new", &format!("n{i}"))).collect();
        for l in &new {
            put(&mut head, l, 4_000);
        }
        for l in new.iter().chain([&live]) {
            let id = head.lookup(l).unwrap();
            assert_eq!(head.labels(id).as_ref(), Some(l));
            let pairs: Vec<(&str, &str)> = l.iter().map(|l| (&*l.name, &*l.value)).collect();
            assert_eq!(head.lookup_pairs(&pairs), Some(id));
        }
        assert!(old.iter().all(|l| head.lookup(l).is_none()));
        let m = |v: &str| [Matcher::new("__name__", MatchOp::Equal, v).unwrap()];
        assert_eq!(head.select_ids(&m("new")).len(), 5);
        assert!(head.select_ids(&m("old")).is_empty());
    }

    #[test]
    fn truncation_keeps_later_samples_and_drops_empty_series() {
        let mut head = HeadInner::new(0);
        let old = labels("old", "x");
        let live = labels("live", "x");
        for t in 0..500 {
            add(&mut head, &live, t * 10, t as f64).unwrap();
        }
        add(&mut head, &old, 5, 1.0).unwrap();
        let (removed, _) = head.truncate_before(2_005);
        assert_eq!(removed, 1);
        assert_eq!(head.series_count(), 1);
        let got = values(&head, &live);
        assert_eq!(got.first(), Some(&(2_010, 201.0)));
        assert_eq!(got.len(), 299);
        assert_eq!(
            add(&mut head, &live, 2_000, 0.0),
            Err(RejectReason::OutOfBounds)
        );
        assert!(
            head.select_ids(&[Matcher::new("__name__", MatchOp::Equal, "old").unwrap()])
                .is_empty()
        );
    }
}
