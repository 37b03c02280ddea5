//! Immutable blocks: every sample of a time range, in compressed chunks, with
//! an inverted label index.
//!
//! A block is three files:
//! - `chunks`: chunk after chunk, each `[length: uvarint][chunk bytes][CRC-32: u32 LE]`;
//! - `index`: timestamp columns (each distinct run of float chunk timestamps
//!   once: the series of one scrape target share them), a symbol table (every
//!   label name and value once), the series in label order (labels as symbol
//!   numbers, then their chunks' time ranges and offsets), and postings (for
//!   each label pair, the series that carry it), zstd-compressed after its
//!   magic, followed by a CRC-32 of all of it. Float chunks are [`chunk::PACKED`], their timestamps a column
//!   where the column budget allows. Blocks written before columns (index
//!   magic `SXIDX1`, no column section, XOR and decimal chunks) still read;
//! - `meta.json`: id, time range `[min_time, max_time)`, counts, compaction level
//!   and the blocks it was compacted from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use sextant_model::{HistogramSample, Label, Labels, Matcher, Sample};

use super::bits::{ByteReader, put_str, put_uvarint, put_varint};
use super::chunk;
use super::head::{
    decode_histogram_chunk, encode_histogram_chunks, is_histogram_chunk, postings_candidates,
};

/// Samples per chunk in a block: larger than the head's, since a block is
/// written once and read whole, and each chunk carries a fixed overhead.
const BLOCK_CHUNK_SAMPLES: usize = 960;
use crate::block_store::BlockStore;

/// The index of a block without timestamp columns.
const INDEX_MAGIC_V1: &[u8] = b"SXIDX1\n";
/// The index of a block with timestamp columns, compressed.
const INDEX_MAGIC: &[u8] = b"SXIDX2\n";
/// zstd's level for indexes: most of the gain of the highest levels, at
/// tens of MB/s for the largest blocks' indexes.
const INDEX_ZSTD_LEVEL: i32 = 9;
/// An index is at most this many times its compressed size when read, and
/// never more than [`MAX_INDEX_BYTES`], whatever its bytes say.
const INDEX_MAX_RATIO: usize = 256;
const MAX_INDEX_BYTES: usize = 1 << 30;
/// Timestamps a block writer keeps in columns at most: they are decoded
/// into memory when the index is read. Chunks beyond it carry their own.
const WRITE_COLUMN_SAMPLES: usize = 1 << 18;
/// Bytes a chunk record may have when read, whatever the block says.
const MAX_CHUNK_RECORD: u64 = 64 << 20;
/// Timestamps a block's columns may hold when read, whatever the index says.
const READ_COLUMN_SAMPLES: usize = 1 << 20;

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub id: String,
    /// First millisecond covered.
    pub min_time: i64,
    /// First millisecond not covered.
    pub max_time: i64,
    pub num_series: u64,
    pub num_samples: u64,
    pub num_chunks: u64,
    /// 1 for a block cut from the head; one more than its sources when compacted.
    pub level: u32,
    /// Blocks this one replaces.
    pub parents: Vec<String>,
}

impl BlockMeta {
    /// Parses a block's `meta.json`.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

#[derive(Debug, Clone, Copy)]
struct ChunkMeta {
    min_t: i64,
    max_t: i64,
    offset: u64,
    /// Where the next chunk in the file starts (`u64::MAX` for the last):
    /// chunks are written in file order, so this bounds the chunk's bytes.
    end: u64,
}

/// Writes a block into a staging directory. Series must come in label order.
pub(crate) struct BlockWriter {
    staging: PathBuf,
    chunks: BufWriter<File>,
    offset: u64,
    series: Vec<(Labels, Vec<ChunkMeta>)>,
    num_samples: u64,
    num_chunks: u64,
    /// Timestamp columns by their timestamps, numbered in order of first use.
    columns: HashMap<Vec<i64>, u64>,
    column_samples: usize,
}

impl BlockWriter {
    pub fn new(staging: PathBuf) -> io::Result<Self> {
        let chunks = BufWriter::with_capacity(1 << 20, File::create(staging.join("chunks"))?);
        Ok(Self {
            staging,
            chunks,
            offset: 0,
            series: Vec::new(),
            num_samples: 0,
            num_chunks: 0,
            columns: HashMap::new(),
            column_samples: 0,
        })
    }

    /// Adds a series, its float samples and its native histogram samples
    /// (each sorted, unique timestamps): the float chunks, then the
    /// histogram chunks; readers tell them apart by their encoding byte.
    pub fn add_series(
        &mut self,
        labels: Labels,
        samples: &[Sample],
        histograms: &[HistogramSample],
    ) -> io::Result<()> {
        if samples.is_empty() && histograms.is_empty() {
            return Ok(());
        }
        debug_assert!(self.series.last().is_none_or(|(last, _)| *last < labels));
        let mut metas = Vec::with_capacity(samples.len().div_ceil(BLOCK_CHUNK_SAMPLES));
        for part in samples.chunks(BLOCK_CHUNK_SAMPLES) {
            let data = match self.column(part) {
                Some(id) => chunk::encode_packed(part, Some(id)),
                None => chunk::encode_best(part),
            };
            let meta = self.write_chunk(
                &data,
                part[0].timestamp_ms,
                part[part.len() - 1].timestamp_ms,
            )?;
            metas.push(meta);
        }
        for c in encode_histogram_chunks(histograms, BLOCK_CHUNK_SAMPLES) {
            let meta = self.write_chunk(&c.data, c.min_t, c.max_t)?;
            metas.push(meta);
        }
        self.num_samples += (samples.len() + histograms.len()) as u64;
        self.series.push((labels, metas));
        Ok(())
    }

    /// The number of the timestamp column of `samples`, added if new and
    /// within the budget.
    fn column(&mut self, samples: &[Sample]) -> Option<u64> {
        let times: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
        if let Some(&id) = self.columns.get(&times) {
            return Some(id);
        }
        if self.column_samples + times.len() > WRITE_COLUMN_SAMPLES {
            return None;
        }
        let id = self.columns.len() as u64;
        self.column_samples += times.len();
        self.columns.insert(times, id);
        Some(id)
    }

    fn write_chunk(&mut self, data: &[u8], min_t: i64, max_t: i64) -> io::Result<ChunkMeta> {
        let mut header = Vec::with_capacity(10);
        put_uvarint(&mut header, data.len() as u64);
        self.chunks.write_all(&header)?;
        self.chunks.write_all(data)?;
        self.chunks
            .write_all(&crc32fast::hash(data).to_le_bytes())?;
        let end = self.offset + (header.len() + data.len() + 4) as u64;
        let meta = ChunkMeta {
            min_t,
            max_t,
            offset: self.offset,
            end,
        };
        self.offset = end;
        self.num_chunks += 1;
        Ok(meta)
    }

    /// Writes the index and meta; returns the staging directory, ready to publish.
    pub fn finish(
        mut self,
        id: &str,
        min_time: i64,
        max_time: i64,
        level: u32,
        parents: Vec<String>,
    ) -> io::Result<(PathBuf, BlockMeta)> {
        self.chunks.flush()?;
        let symbols: BTreeSet<&str> = self
            .series
            .iter()
            .flat_map(|(labels, _)| labels.iter().flat_map(|l| [&*l.name, &*l.value]))
            .collect();
        let symbol_ids: HashMap<&str, u64> = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u64))
            .collect();
        let mut out = Vec::with_capacity(1 << 16);
        let mut columns: Vec<(&Vec<i64>, u64)> = self
            .columns
            .iter()
            .map(|(times, &id)| (times, id))
            .collect();
        columns.sort_unstable_by_key(|&(_, id)| id);
        put_uvarint(&mut out, columns.len() as u64);
        for (times, _) in columns {
            put_uvarint(&mut out, times.len() as u64);
            let stream = chunk::encode_times(times.iter().copied());
            put_uvarint(&mut out, stream.len() as u64);
            out.extend_from_slice(&stream);
        }
        put_uvarint(&mut out, symbols.len() as u64);
        for s in &symbols {
            put_str(&mut out, s);
        }
        put_uvarint(&mut out, self.series.len() as u64);
        let mut postings: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
        // Chunk times as changes from the previous chunk's (the same in
        // most series), and chunk lengths, not offsets: the chunks follow
        // each other in the file in this order.
        let (mut last_min_t, mut last_span) = (0i64, 0i64);
        for (index, (labels, metas)) in self.series.iter().enumerate() {
            put_uvarint(&mut out, labels.len() as u64);
            for l in labels {
                let pair = (symbol_ids[&*l.name], symbol_ids[&*l.value]);
                put_uvarint(&mut out, pair.0);
                put_uvarint(&mut out, pair.1);
                postings.entry(pair).or_default().push(index as u64);
            }
            put_uvarint(&mut out, metas.len() as u64);
            for m in metas {
                let span = m.max_t.wrapping_sub(m.min_t);
                put_varint(&mut out, m.min_t.wrapping_sub(last_min_t));
                put_varint(&mut out, span.wrapping_sub(last_span));
                put_uvarint(&mut out, m.end - m.offset);
                (last_min_t, last_span) = (m.min_t, span);
            }
        }
        put_uvarint(&mut out, postings.len() as u64);
        for ((name, value), ids) in &postings {
            put_uvarint(&mut out, *name);
            put_uvarint(&mut out, *value);
            put_uvarint(&mut out, ids.len() as u64);
            let mut prev = 0;
            for id in ids {
                put_uvarint(&mut out, id - prev);
                prev = *id;
            }
        }
        let mut index = Vec::with_capacity(out.len() / 4 + 64);
        index.extend_from_slice(INDEX_MAGIC);
        zstd::stream::copy_encode(&out[..], &mut index, INDEX_ZSTD_LEVEL)?;
        let crc = crc32fast::hash(&index);
        index.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(self.staging.join("index"), &index)?;
        let meta = BlockMeta {
            id: id.to_owned(),
            min_time,
            max_time,
            num_series: self.series.len() as u64,
            num_samples: self.num_samples,
            num_chunks: self.num_chunks,
            level,
            parents,
        };
        std::fs::write(
            self.staging.join("meta.json"),
            serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?,
        )?;
        Ok((self.staging, meta))
    }
}

#[derive(Debug)]
struct BlockSeries {
    labels: Labels,
    chunks: Vec<ChunkMeta>,
}

/// An open block: its index in memory, its chunks read on demand.
#[derive(Debug)]
pub(crate) struct Block {
    pub meta: BlockMeta,
    store: Arc<dyn BlockStore>,
    /// Read at open for a block on local disk; for a block only in object
    /// storage at its first query, so that a cold start answers at once.
    index: OnceLock<Arc<BlockIndex>>,
    /// The chunks file, held open from the start: a query that still holds
    /// this block reads it even after compaction has deleted the block.
    chunks: Arc<dyn crate::block_store::BlockFile>,
    pub bytes: u64,
    /// Read from object storage rather than local disk.
    remote: bool,
}

/// A block's series and postings.
#[derive(Debug)]
struct BlockIndex {
    /// Timestamp columns that packed chunks refer to.
    columns: Vec<Vec<i64>>,
    series: Vec<BlockSeries>,
    postings: HashMap<(Arc<str>, Arc<str>), Vec<u32>>,
}

fn corrupt(id: &str, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("block {id}: corrupt {what}"),
    )
}

impl Block {
    /// Opens block `id` from `store`; a local block's index is read and
    /// checked now, a remote one's when first needed.
    pub fn open(store: Arc<dyn BlockStore>, id: &str) -> io::Result<Self> {
        let meta: BlockMeta = serde_json::from_slice(&store.read(id, "meta.json")?)
            .map_err(|_| corrupt(id, "meta.json"))?;
        let bytes = store.size(id)?;
        let chunks = store.open_file(id, "chunks")?;
        let remote = store.local_dir(id).is_err();
        let block = Self {
            meta,
            store,
            index: OnceLock::new(),
            chunks,
            bytes,
            remote,
        };
        if !remote {
            block.index()?;
        }
        Ok(block)
    }

    /// The series and postings, read on first use.
    fn index(&self) -> io::Result<&BlockIndex> {
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let id = &self.meta.id;
        let raw = self.store.read(id, "index")?;
        let (body, crc) = raw
            .split_at_checked(raw.len().saturating_sub(4))
            .ok_or_else(|| corrupt(id, "index"))?;
        if crc.len() != 4 || crc32fast::hash(body).to_le_bytes() != crc {
            return Err(corrupt(id, "index (checksum)"));
        }
        if !body.starts_with(INDEX_MAGIC) && !body.starts_with(INDEX_MAGIC_V1) {
            return Err(corrupt(
                id,
                "index (magic: not a block index this version reads)",
            ));
        }
        let index = parse_index(body).ok_or_else(|| corrupt(id, "index (structure)"))?;
        // Two first readers may both have read it: either copy will do.
        let _ = self.index.set(Arc::new(index));
        Ok(self.index.get().expect("just set"))
    }

    /// The block opened again from its store (whose local copy is gone),
    /// keeping the index already read.
    pub fn reopen(&self) -> io::Result<Self> {
        let index = OnceLock::new();
        if let Some(read) = self.index.get() {
            let _ = index.set(read.clone());
        }
        Ok(Self {
            meta: self.meta.clone(),
            chunks: self.store.open_file(&self.meta.id, "chunks")?,
            remote: self.store.local_dir(&self.meta.id).is_err(),
            store: self.store.clone(),
            index,
            bytes: self.bytes,
        })
    }

    /// Fetches, all at once, the chunks of the series `indexes` (from
    /// [`Block::select_series`]) that overlap `[mint, maxt]`: a block read
    /// from object storage then costs one round trip, not one per chunk.
    pub fn prefetch(&self, indexes: &[usize], mint: i64, maxt: i64) -> io::Result<()> {
        // The last chunk's end is unknown: a chunk is far smaller than this.
        const LAST_CHUNK: u64 = 64 * 1024;
        let index = self.index()?;
        let ranges: Vec<(u64, u64)> = indexes
            .iter()
            .filter_map(|&i| index.series.get(i))
            .flat_map(|s| s.chunks.iter())
            .filter(|c| c.max_t >= mint && c.min_t <= maxt)
            .map(|c| (c.offset, c.end.min(c.offset + LAST_CHUNK)))
            .collect();
        self.chunks.prefetch(&ranges)
    }

    /// Whether the block is read from object storage.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// Whether the block holds any time in `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && self.meta.max_time > mint
    }

    fn select_indexes(index: &BlockIndex, matchers: &[Matcher]) -> Vec<usize> {
        let candidates = postings_candidates(matchers, |name, value| {
            index
                .postings
                .get(&(Arc::from(name), Arc::from(value)))
                .map(Vec::as_slice)
                .unwrap_or_default()
        });
        match candidates {
            Some(ids) => ids
                .into_iter()
                .map(|i| i as usize)
                .filter(|&i| index.series[i].labels.matches(matchers))
                .collect(),
            None => (0..index.series.len())
                .filter(|&i| index.series[i].labels.matches(matchers))
                .collect(),
        }
    }

    /// Labels of every series matching `matchers` that has samples in `[mint, maxt]`.
    pub fn series_labels(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> io::Result<Vec<&Labels>> {
        Ok(self
            .select_series(matchers, mint, maxt)?
            .into_iter()
            .map(|(_, labels)| labels)
            .collect())
    }

    /// The series matching `matchers` with chunks in `[mint, maxt]`: their
    /// indexes (for [`Block::samples`]) and labels.
    pub fn select_series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> io::Result<Vec<(usize, &Labels)>> {
        let index = self.index()?;
        Ok(Self::select_indexes(index, matchers)
            .into_iter()
            .map(|i| (i, &index.series[i]))
            .filter(|(_, s)| s.chunks.iter().any(|c| c.max_t >= mint && c.min_t <= maxt))
            .map(|(i, s)| (i, &s.labels))
            .collect())
    }

    /// The float and native histogram samples in `[mint, maxt]` of series
    /// `index`, decoding only the chunks that overlap the range.
    #[cfg(test)]
    pub fn data(
        &self,
        index: usize,
        mint: i64,
        maxt: i64,
    ) -> io::Result<(Vec<Sample>, Vec<HistogramSample>)> {
        let mut samples = Vec::new();
        let mut histograms = Vec::new();
        self.data_into(index, mint, maxt, &mut samples, &mut histograms)?;
        Ok((samples, histograms))
    }

    /// As [`Block::data`], appending to `samples` and `histograms`. The
    /// overlapping chunks that lie one after another in the file (a
    /// series' chunks do) are read at once.
    pub fn data_into(
        &self,
        index: usize,
        mint: i64,
        maxt: i64,
        samples: &mut Vec<Sample>,
        histograms: &mut Vec<HistogramSample>,
    ) -> io::Result<()> {
        let (floats_from, histograms_from) = (samples.len(), histograms.len());
        let block_index = self.index()?;
        let chunks = &block_index
            .series
            .get(index)
            .ok_or_else(|| corrupt(&self.meta.id, "series reference"))?
            .chunks;
        let wanted = |c: &ChunkMeta| c.max_t >= mint && c.min_t <= maxt;
        // A chunk's first and last timestamps are in its meta: when the
        // range takes in every chunk read whole, no sample needs a look.
        let mut inside = true;
        let mut i = 0;
        while i < chunks.len() {
            if !wanted(&chunks[i]) {
                i += 1;
                continue;
            }
            // The run of wanted chunks that follow each other in the file.
            let start = chunks[i].offset;
            let mut end = i + 1;
            while end < chunks.len()
                && wanted(&chunks[end])
                && chunks[end - 1].end == chunks[end].offset
                && chunks[end].end != u64::MAX
                && chunks[end].end.saturating_sub(start) <= MAX_CHUNK_RECORD
            {
                end += 1;
            }
            inside &= chunks[i..end]
                .iter()
                .all(|c| c.min_t >= mint && c.max_t <= maxt);
            if end == i + 1 {
                self.read_chunk(block_index, &chunks[i], samples, histograms)?;
            } else {
                let len = chunks[end - 1]
                    .end
                    .checked_sub(start)
                    .ok_or_else(|| corrupt(&self.meta.id, "chunk length"))?;
                let raw = self.chunks.read_borrowed(start, len as usize)?;
                for c in &chunks[i..end] {
                    let record = c
                        .offset
                        .checked_sub(start)
                        .zip(c.end.checked_sub(start))
                        .and_then(|(from, to)| raw.get(from as usize..to as usize))
                        .ok_or_else(|| corrupt(&self.meta.id, "chunk length"))?;
                    self.decode_record(block_index, record, samples, histograms)?;
                }
            }
            i = end;
        }
        if inside {
            return Ok(());
        }
        retain_from(samples, floats_from, |s| {
            s.timestamp_ms >= mint && s.timestamp_ms <= maxt
        });
        retain_from(histograms, histograms_from, |s| {
            s.timestamp_ms >= mint && s.timestamp_ms <= maxt
        });
        Ok(())
    }

    /// Every series with all its float and histogram samples, in label
    /// order (for compaction).
    #[allow(clippy::type_complexity)]
    pub fn all_series(
        &self,
    ) -> Box<dyn Iterator<Item = io::Result<(Labels, Vec<Sample>, Vec<HistogramSample>)>> + Send + '_>
    {
        let index = match self.index() {
            Ok(index) => index,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        Box::new(index.series.iter().map(|s| {
            let mut samples = Vec::new();
            let mut histograms = Vec::new();
            for c in &s.chunks {
                self.read_chunk(index, c, &mut samples, &mut histograms)?;
            }
            Ok((s.labels.clone(), samples, histograms))
        }))
    }

    fn read_chunk(
        &self,
        index: &BlockIndex,
        c: &ChunkMeta,
        out: &mut Vec<Sample>,
        histograms: &mut Vec<HistogramSample>,
    ) -> io::Result<()> {
        let id = &self.meta.id;
        let too_long = || corrupt(id, "chunk length");
        let read = |offset: u64, len: u64| {
            if len > MAX_CHUNK_RECORD {
                return Err(too_long());
            }
            self.chunks.read_at(offset, len as usize)
        };
        let raw = match c.end.checked_sub(c.offset) {
            // The record's end is known: one read, borrowed where it can be.
            Some(len) if c.end != u64::MAX => {
                if len > MAX_CHUNK_RECORD {
                    return Err(too_long());
                }
                let raw = self.chunks.read_borrowed(c.offset, len as usize)?;
                return self.decode_record(index, &raw, out, histograms);
            }
            _ => {
                // The length prefix is at most 10 bytes, and every chunk record is longer
                // than that (3-byte header, 16-byte first sample, 4-byte CRC).
                let mut raw = read(c.offset, 10)?;
                let mut r = ByteReader::new(&raw);
                let len = r.uvarint().ok_or_else(too_long)?;
                let prefix = raw.len() - r.remaining();
                let record = len.checked_add(4 + prefix as u64).ok_or_else(too_long)?;
                if record > 10 {
                    raw.extend(read(c.offset + 10, record - 10)?);
                }
                raw
            }
        };
        self.decode_record(index, &raw, out, histograms)
    }

    /// Decodes one chunk record (`[length][chunk][CRC-32]`).
    fn decode_record(
        &self,
        index: &BlockIndex,
        raw: &[u8],
        out: &mut Vec<Sample>,
        histograms: &mut Vec<HistogramSample>,
    ) -> io::Result<()> {
        let id = &self.meta.id;
        let too_long = || corrupt(id, "chunk length");
        let mut r = ByteReader::new(raw);
        let len = r.len().ok_or_else(too_long)?;
        let data = r.take(len).ok_or_else(too_long)?;
        let crc = r.take(4).ok_or_else(too_long)?;
        if crc32fast::hash(data).to_le_bytes() != crc {
            return Err(corrupt(id, "chunk (checksum)"));
        }
        if is_histogram_chunk(data) {
            return decode_histogram_chunk(data, histograms)
                .map_err(|e| corrupt(id, &e.to_string()));
        }
        chunk::decode_in_block(data, &index.columns, out).map_err(|e| corrupt(id, &e.to_string()))
    }
}

/// Keeps, of `items[from..]`, those `keep` accepts, in order. Samples in
/// time order lose a run at the start and one at the end at most, moved
/// in bulk.
fn retain_from<T>(items: &mut Vec<T>, from: usize, keep: impl Fn(&T) -> bool) {
    let region = &items[from..];
    let start = region.iter().position(&keep).unwrap_or(region.len());
    let end = region.iter().rposition(&keep).map_or(start, |i| i + 1);
    // Without a stop at the first miss, the compiler can take several
    // samples a step.
    if region[start..end]
        .iter()
        .fold(true, |inside, item| inside & keep(item))
    {
        items.truncate(from + end);
        items.drain(from..from + start);
        return;
    }
    let mut kept = from;
    for i in from..items.len() {
        if keep(&items[i]) {
            items.swap(kept, i);
            kept += 1;
        }
    }
    items.truncate(kept);
}

/// Whether `body` reads as a block index (an `index` file without its
/// trailing checksum): for the fuzz target, which checks
/// that no bytes make reading panic or allocate beyond its limits.
pub fn parse_block_index(body: &[u8]) -> bool {
    parse_index(body).is_some()
}

/// Reads an index body (after its checksum was checked): with timestamp
/// columns or, for blocks written before them, without.
fn parse_index(body: &[u8]) -> Option<BlockIndex> {
    let decompressed;
    let (columns, mut r, v1) = if let Some(compressed) = body.strip_prefix(INDEX_MAGIC) {
        decompressed = decompress(compressed)?;
        let mut r = ByteReader::new(&decompressed);
        let columns = parse_columns(&mut r)?;
        (columns, r, false)
    } else {
        let r = ByteReader::new(body.strip_prefix(INDEX_MAGIC_V1)?);
        (Vec::new(), r, true)
    };
    let count = r.len()?;
    let mut symbols: Vec<Arc<str>> = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        symbols.push(Arc::from(r.str()?));
    }
    let symbol = |i: u64| symbols.get(usize::try_from(i).ok()?).cloned();
    let count = r.len()?;
    let mut series = Vec::with_capacity(count.min(1 << 20));
    let (mut last_min_t, mut last_span, mut next_offset) = (0i64, 0i64, 0u64);
    for _ in 0..count {
        let n = r.len()?;
        let mut labels = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            labels.push(Label {
                name: symbol(r.uvarint()?)?,
                value: symbol(r.uvarint()?)?,
            });
        }
        let n = r.len()?;
        let mut chunks = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            chunks.push(if v1 {
                let min_t = r.varint()?;
                ChunkMeta {
                    min_t,
                    max_t: min_t.wrapping_add(r.uvarint()? as i64),
                    offset: r.uvarint()?,
                    end: u64::MAX,
                }
            } else {
                let min_t = last_min_t.wrapping_add(r.varint()?);
                let span = last_span.wrapping_add(r.varint()?);
                (last_min_t, last_span) = (min_t, span);
                let offset = next_offset;
                next_offset = offset.checked_add(r.uvarint()?)?;
                ChunkMeta {
                    min_t,
                    max_t: min_t.wrapping_add(span),
                    offset,
                    end: next_offset,
                }
            });
        }
        // Labels are sorted, unique and never empty-valued, as written.
        if !labels.windows(2).all(|w| w[0].name < w[1].name)
            || labels.iter().any(|l| l.value.is_empty())
        {
            return None;
        }
        series.push(BlockSeries {
            labels: Labels::from_sorted(labels),
            chunks,
        });
    }
    let count = r.len()?;
    let mut postings = HashMap::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let name = symbol(r.uvarint()?)?;
        let value = symbol(r.uvarint()?)?;
        let n = r.len()?;
        let mut ids = Vec::with_capacity(n.min(1 << 20));
        let mut prev = 0u64;
        for _ in 0..n {
            prev = prev.checked_add(r.uvarint()?)?;
            if prev >= series.len() as u64 {
                return None;
            }
            ids.push(u32::try_from(prev).ok()?);
        }
        postings.insert((name, value), ids);
    }
    if r.remaining() != 0 {
        return None;
    }
    if v1 {
        // Each chunk ends where the next in the file begins.
        set_chunk_ends(&mut series);
    }
    Some(BlockIndex {
        columns,
        series,
        postings,
    })
}

/// A block written before chunk lengths were in its index: each chunk's
/// end is where the next in the file begins.
fn set_chunk_ends(series: &mut [BlockSeries]) {
    let mut offsets: Vec<u64> = series
        .iter()
        .flat_map(|s| s.chunks.iter().map(|c| c.offset))
        .collect();
    offsets.sort_unstable();
    for chunk in series.iter_mut().flat_map(|s| s.chunks.iter_mut()) {
        let next = offsets.partition_point(|&o| o <= chunk.offset);
        chunk.end = offsets.get(next).copied().unwrap_or(u64::MAX);
    }
}

/// A zstd frame's contents, within [`INDEX_MAX_RATIO`] and [`MAX_INDEX_BYTES`]:
/// the output grows only as the frame produces it.
fn decompress(compressed: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let limit = compressed
        .len()
        .saturating_mul(INDEX_MAX_RATIO)
        .clamp(1 << 20, MAX_INDEX_BYTES);
    let mut decoder = zstd::stream::read::Decoder::with_buffer(compressed).ok()?;
    // The window the frame asks for is allocated up front: at most 8 MiB
    // (level 9 asks for 4 MiB at most).
    decoder.window_log_max(23).ok()?;
    let mut out = Vec::new();
    decoder.take(limit as u64 + 1).read_to_end(&mut out).ok()?;
    (out.len() <= limit).then_some(out)
}

/// The timestamp columns of an index, within [`READ_COLUMN_SAMPLES`].
fn parse_columns(r: &mut ByteReader<'_>) -> Option<Vec<Vec<i64>>> {
    let count = r.len()?;
    let mut columns = Vec::with_capacity(count.min(1 << 10));
    let mut total = 0usize;
    for _ in 0..count {
        let len = r.len()?;
        total = total.checked_add(len)?;
        if len > usize::from(u16::MAX) || total > READ_COLUMN_SAMPLES {
            return None;
        }
        let stream_len = r.len()?;
        let stream = r.take(stream_len)?;
        let mut times = Vec::with_capacity(len);
        chunk::decode_times(stream, len, &mut times).ok()?;
        columns.push(times);
    }
    Some(columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_store::LocalBlockStore;

    /// An index naming a label with an empty value is refused, not read
    /// as labels (found by the `block_index` fuzz target; kept as a seed).
    #[test]
    fn an_index_with_an_empty_label_value_is_refused() {
        let bytes = b"SXIDX1\n\x01\x00\x08\x01\x00\x00\x00\x00\x00\x86\xcbe__\x03cp\n\x08\x010\x08e_m_e_nmao";
        assert!(!parse_block_index(bytes));
    }

    #[test]
    fn a_reader_holding_a_block_reads_it_after_compaction_deleted_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlockStore> = Arc::new(LocalBlockStore::open(dir.path()).unwrap());
        let staging = store.staging_dir("b1").unwrap();
        let mut writer = BlockWriter::new(staging).unwrap();
        let samples: Vec<Sample> = (0..300)
            .map(|i| Sample {
                timestamp_ms: i * 1000,
                value: i as f64,
            })
            .collect();
        writer
            .add_series(Labels::from_pairs([("__name__", "up")]), &samples, &[])
            .unwrap();
        let (staged, _) = writer.finish("b1", 0, 300_000, 1, Vec::new()).unwrap();
        store.publish("b1", &staged).unwrap();
        let block = Block::open(store.clone(), "b1").unwrap();
        store.delete("b1").unwrap();
        assert!(!dir.path().join("b1").exists());
        assert_eq!(block.data(0, 0, 300_000).unwrap().0, samples);
    }

    fn same(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.timestamp_ms == y.timestamp_ms && x.value.to_bits() == y.value.to_bits()
            })
    }

    #[test]
    fn series_of_one_scrape_share_a_timestamp_column_and_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlockStore> = Arc::new(LocalBlockStore::open(dir.path()).unwrap());
        let mut writer = BlockWriter::new(store.staging_dir("b1").unwrap()).unwrap();
        // One target's scrapes, a few landing late; a second target's at
        // other times; a series longer than a chunk.
        let scrape = |i: i64| i * 15_000 + if i % 50 == 7 { 13 } else { 0 };
        let series: Vec<(Labels, Vec<Sample>)> = [
            ("a", 0.0, 0),
            ("b", 1.5, 0),
            ("c", f64::NAN, 0),
            ("d", 2.25, 7_000),
            ("e", 0.1 + 0.2, 0),
        ]
        .into_iter()
        .map(|(name, step, shift)| {
            let len = if name == "e" { 2_000 } else { 480 };
            let samples = (0..len)
                .map(|i| Sample {
                    timestamp_ms: scrape(i) + shift,
                    value: 1e6 + step * (i / 3) as f64,
                })
                .collect();
            (Labels::from_pairs([("__name__", name)]), samples)
        })
        .collect();
        for (labels, samples) in &series {
            writer.add_series(labels.clone(), samples, &[]).unwrap();
        }
        // a, b and c share one; d and the three chunks of e have their own.
        assert_eq!(writer.columns.len(), 5);
        let (staged, _) = writer.finish("b1", 0, 30_000_000, 1, Vec::new()).unwrap();
        store.publish("b1", &staged).unwrap();
        let block = Block::open(store.clone(), "b1").unwrap();
        for (i, (labels, samples)) in series.iter().enumerate() {
            let (read, _) = block.data(i, 0, 30_000_000).unwrap();
            assert!(same(&read, samples), "{labels}");
        }
        let all: Vec<_> = block.all_series().map(Result::unwrap).collect();
        assert_eq!(all.len(), series.len());
        assert!(crate::check::check_block(&store, "b1").is_ok());
    }

    #[test]
    fn a_range_keeps_exactly_its_samples_whether_it_covers_chunks_whole_or_cuts_them() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlockStore> = Arc::new(LocalBlockStore::open(dir.path()).unwrap());
        let mut writer = BlockWriter::new(store.staging_dir("b1").unwrap()).unwrap();
        // Three chunks and a part of a fourth.
        let len = 3 * BLOCK_CHUNK_SAMPLES as i64 + 7;
        let samples: Vec<Sample> = (0..len)
            .map(|i| Sample {
                timestamp_ms: 1_000 + i * 15_000,
                value: (i * i) as f64 * 0.5,
            })
            .collect();
        writer
            .add_series(Labels::from_pairs([("__name__", "up")]), &samples, &[])
            .unwrap();
        let (staged, _) = writer
            .finish("b1", 0, len * 15_000 + 1_000, 1, Vec::new())
            .unwrap();
        store.publish("b1", &staged).unwrap();
        let block = Block::open(store.clone(), "b1").unwrap();
        let chunks = &block.index().unwrap().series[0].chunks;
        assert_eq!(chunks.len(), 4);
        let (first, last) = (chunks[1].min_t, chunks[2].max_t);
        for (mint, maxt) in [
            (i64::MIN, i64::MAX),
            (first, last),
            (first, last - 1),
            (first + 1, last),
            (first - 1, last + 1),
            (first + 15_000, last - 15_000),
            (samples[0].timestamp_ms, samples[0].timestamp_ms),
            (last + 1, last + 14_999),
        ] {
            let expected: Vec<Sample> = samples
                .iter()
                .filter(|s| s.timestamp_ms >= mint && s.timestamp_ms <= maxt)
                .copied()
                .collect();
            let (read, _) = block.data(0, mint, maxt).unwrap();
            assert!(same(&read, &expected), "[{mint}, {maxt}]");
        }
    }

    #[test]
    fn an_index_that_decompresses_past_its_limit_is_refused() {
        // 64 MiB of zeros in a couple of KiB: past 256 times its size.
        let mut body = INDEX_MAGIC.to_vec();
        zstd::stream::copy_encode(&vec![0u8; 64 << 20][..], &mut body, 1).unwrap();
        assert!(body.len() < 64 << 10);
        assert!(!parse_block_index(&body));
        // Refused by the decompression itself; a frame within it comes back whole.
        assert_eq!(decompress(&body[INDEX_MAGIC.len()..]), None);
        let mut small = Vec::new();
        zstd::stream::copy_encode(&[7u8; 1000][..], &mut small, 1).unwrap();
        assert_eq!(decompress(&small), Some(vec![7u8; 1000]));
    }

    #[test]
    fn a_block_written_before_timestamp_columns_still_reads() {
        // Written by the format before packed chunks and timestamp columns
        // (index `SXIDX1`: chunk offsets, decimal and XOR chunks): a
        // counter with two decimals, a sine and a constant, 2 h of 15 s
        // scrapes, one in fifty 13 ms late.
        let dir = tempfile::tempdir().unwrap();
        let id = "000018ee24226aa9b67500000000";
        let testdata =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tsdb/testdata/v1-block");
        std::fs::create_dir(dir.path().join(id)).unwrap();
        for file in ["chunks", "index", "meta.json"] {
            std::fs::copy(testdata.join(file), dir.path().join(id).join(file)).unwrap();
        }
        let store: Arc<dyn BlockStore> = Arc::new(LocalBlockStore::open(dir.path()).unwrap());
        let block = Block::open(store.clone(), id).unwrap();
        let start = 1_700_000_000_000 - 1_700_000_000_000 % 7_200_000;
        let at = |i: i64| start + i * 15_000 + if i % 50 == 7 { 13 } else { 0 };
        let expected = |f: &dyn Fn(i64) -> f64| -> Vec<Sample> {
            (0..480)
                .map(|i| Sample {
                    timestamp_ms: at(i),
                    value: f(i),
                })
                .collect()
        };
        let series: Vec<(Labels, Vec<Sample>)> = block
            .all_series()
            .map(|s| {
                let (labels, samples, histograms) = s.unwrap();
                assert!(histograms.is_empty());
                (labels, samples)
            })
            .collect();
        let names: Vec<&str> = series
            .iter()
            .map(|(l, _)| l.metric_name().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "node_cpu_seconds_total",
                "node_load1",
                "node_memory_MemTotal_bytes"
            ]
        );
        let cpu = expected(&|i| {
            format!("{}.{:02}", 1000 + i * 15, (i * 37) % 100)
                .parse()
                .unwrap()
        });
        assert!(same(&series[0].1, &cpu));
        assert!(same(
            &series[1].1,
            &expected(&|i| (i as f64 * 0.37).sin() * 3.3)
        ));
        assert!(same(&series[2].1, &expected(&|_| 8_246_337_208.0)));
        assert!(same(
            &block.data(0, at(10), at(20)).unwrap().0,
            &cpu[10..=20]
        ));
        assert!(crate::check::check_block(&store, id).is_ok());
    }
}
