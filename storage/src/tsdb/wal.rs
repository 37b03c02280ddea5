//! The write-ahead log: what the head holds, on disk before it is acknowledged.
//!
//! The log is a directory of numbered segments (`00000001`, ...), each a run of
//! records framed as `[payload length: u32 LE][CRC-32 of payload: u32 LE][payload]`.
//! A record is written with one `write` call before the head applies it, so a
//! process crash (even `kill -9`) loses nothing that was acknowledged; `fsync`
//! follows the configured policy, grouped across concurrent writers.
//!
//! On replay a torn or corrupt record ends the log: the segment is truncated
//! there and any later segments are removed, so the next start sees a clean
//! log. A checkpoint (`checkpoint.NNNNNNNN/`, same format) replaces the segments
//! up to NNNNNNNN with just the series and samples the head still needs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{debug, warn};

use super::bits::{ByteReader, put_str, put_uvarint, put_varint};
use super::stats::TsdbStats;
use sextant_model::{HistogramSample, HistogramValue};

/// When the log is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before every acknowledgement (grouped across concurrent writers).
    Always,
    /// Every `wal_fsync_interval`; a machine crash may lose that much, a process crash nothing.
    #[default]
    Interval,
    /// Left to the operating system.
    Never,
}

/// A segment rolls over at this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The largest record accepted on replay; anything larger is corruption.
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;

const RECORD_SERIES: u8 = 1;
const RECORD_SAMPLES: u8 = 2;
const RECORD_HISTOGRAMS: u8 = 3;

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series: id and label pairs.
    Series(Vec<(u64, Vec<(String, String)>)>),
    /// Samples: series id, timestamp (ms), value.
    Samples(Vec<(u64, i64, f64)>),
    /// Native histogram samples: series id and sample.
    Histograms(Vec<(u64, HistogramSample)>),
}

/// One histogram sample as the WAL keeps it: a chunk of that one sample
/// (timestamp, counter reset hint, layout and counts), `None` when the
/// histogram cannot be encoded (spans that do not match its buckets).
pub fn histogram_bytes(t: i64, value: &HistogramValue) -> Option<Vec<u8>> {
    use super::histogram_chunk::{
        AppendOutcome, FloatHistogramChunkEncoder, HistogramChunkEncoder,
    };
    match value {
        HistogramValue::Int(h) => {
            let mut e = HistogramChunkEncoder::default();
            (e.append(t, h) == Ok(AppendOutcome::Appended)).then(|| e.bytes())
        }
        HistogramValue::Float(h) => {
            let mut e = FloatHistogramChunkEncoder::default();
            (e.append(t, h) == Ok(AppendOutcome::Appended)).then(|| e.bytes())
        }
    }
}

/// The histogram sample [`histogram_bytes`] encoded; `None` when the bytes
/// are not one such sample.
pub fn histogram_from_bytes(bytes: &[u8]) -> Option<HistogramSample> {
    let mut one = Vec::with_capacity(1);
    super::head::decode_histogram_chunk(bytes, &mut one).ok()?;
    if one.len() != 1 {
        return None;
    }
    one.pop()
}

/// Encodes a histograms record: the count, then each sample as series id
/// and its one-sample chunk ([`histogram_bytes`]), length first.
pub fn encode_histograms(out: &mut Vec<u8>, samples: &[(u64, &[u8])]) {
    out.push(RECORD_HISTOGRAMS);
    put_uvarint(out, samples.len() as u64);
    for &(id, bytes) in samples {
        put_uvarint(out, id);
        put_uvarint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

fn decode_histograms(body: &[u8]) -> Option<Vec<(u64, HistogramSample)>> {
    let mut reader = ByteReader::new(body);
    let count = reader.len()?;
    // Each sample takes at least 6 bytes: a count beyond that is corruption.
    if count > reader.remaining() / 6 {
        return None;
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let id = reader.uvarint()?;
        let len = reader.len()?;
        samples.push((id, histogram_from_bytes(reader.take(len)?)?));
    }
    (reader.remaining() == 0).then_some(samples)
}

/// Encodes a series record.
pub fn encode_series<'a, I, L>(out: &mut Vec<u8>, series: I)
where
    I: IntoIterator<Item = (u64, L)>,
    L: IntoIterator<Item = (&'a str, &'a str)>,
{
    out.push(RECORD_SERIES);
    for (id, labels) in series {
        put_uvarint(out, id);
        let labels: Vec<(&str, &str)> = labels.into_iter().collect();
        put_uvarint(out, labels.len() as u64);
        for (name, value) in labels {
            put_str(out, name);
            put_str(out, value);
        }
    }
}

/// Encodes a samples record: the first timestamp, the count, then each sample
/// as series id, timestamp relative to the first (most fit in 1-3 bytes), value bits.
pub fn encode_samples(out: &mut Vec<u8>, samples: &[(u64, i64, f64)]) {
    // About what a scrape's samples take (a short id and time, the value
    // whole), reserved at once rather than doubled up to.
    out.reserve(16 + 12 * samples.len());
    out.push(RECORD_SAMPLES);
    let base = samples.first().map_or(0, |s| s.1);
    put_varint(out, base);
    put_uvarint(out, samples.len() as u64);
    for &(id, t, v) in samples {
        put_uvarint(out, id);
        put_varint(out, t.wrapping_sub(base));
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// Decodes one record's payload.
pub fn decode(payload: &[u8]) -> Option<Record> {
    let (&kind, body) = payload.split_first()?;
    match kind {
        RECORD_SERIES => {
            let mut reader = ByteReader::new(body);
            let mut series = Vec::new();
            while reader.remaining() > 0 {
                let id = reader.uvarint()?;
                let count = reader.len()?;
                let mut labels = Vec::with_capacity(count.min(64));
                for _ in 0..count {
                    labels.push((reader.str()?.to_owned(), reader.str()?.to_owned()));
                }
                series.push((id, labels));
            }
            Some(Record::Series(series))
        }
        RECORD_SAMPLES => {
            let mut reader = ByteReader::new(body);
            let base = reader.varint()?;
            let count = reader.len()?;
            // Each sample takes at least 10 bytes: a count beyond that is corruption.
            if count > reader.remaining() / 10 {
                return None;
            }
            let mut samples = Vec::with_capacity(count);
            for _ in 0..count {
                let id = reader.uvarint()?;
                let t = base.wrapping_add(reader.varint()?);
                samples.push((id, t, f64::from_bits(reader.u64_le()?)));
            }
            (reader.remaining() == 0).then_some(Record::Samples(samples))
        }
        RECORD_HISTOGRAMS => decode_histograms(body).map(Record::Histograms),
        _ => None,
    }
}

fn segment_name(index: u64) -> String {
    format!("{index:08}")
}

fn checkpoint_name(index: u64) -> String {
    format!("checkpoint.{index:08}")
}

/// Segment indexes in `dir`, ascending.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(index) = name.to_str().and_then(|n| n.parse::<u64>().ok()) {
            out.push(index);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The newest complete checkpoint in `dir`, as (index, path).
fn latest_checkpoint(dir: &Path) -> io::Result<Option<(u64, PathBuf)>> {
    let mut best = None;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("checkpoint."))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| index > *b) {
            best = Some((index, entry.path()));
        }
    }
    Ok(best)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads every record of one segment file. Returns the records and, when the
/// file ends in a torn or corrupt record, the offset where the good part ends.
fn read_segment(path: &Path) -> io::Result<(Vec<Vec<u8>>, Option<u64>)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let Some(header) = bytes.get(offset..offset + 8) else {
            return Ok((records, Some(offset as u64)));
        };
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD_BYTES {
            return Ok((records, Some(offset as u64)));
        }
        let start = offset + 8;
        let Some(payload) = bytes.get(start..start + len as usize) else {
            return Ok((records, Some(offset as u64)));
        };
        if crc32fast::hash(payload) != crc {
            return Ok((records, Some(offset as u64)));
        }
        records.push(payload.to_vec());
        offset = start + len as usize;
    }
    Ok((records, None))
}

/// What [`verify`] found in a WAL directory, read without changing it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalCheck {
    /// Segments read (checkpoint segments included).
    pub segments: u64,
    /// Records that framed and decoded.
    pub records: u64,
    /// A torn or corrupt record at the end of the newest segment: a write a
    /// crash cut short, never acknowledged; replay cuts it off.
    pub torn_tail: Option<String>,
    /// Damage replay cannot explain by a crash: records that frame but do
    /// not decode, a corrupt checkpoint, a torn record before the last segment.
    pub problems: Vec<String>,
}

/// Reads the checkpoint and the segments after it as replay would, without
/// repairing anything.
pub(crate) fn verify(dir: &Path) -> io::Result<WalCheck> {
    let mut check = WalCheck::default();
    let count = |records: &[Vec<u8>], path: &Path, check: &mut WalCheck| {
        for (i, record) in records.iter().enumerate() {
            if decode(record).is_some() {
                check.records += 1;
            } else {
                check
                    .problems
                    .push(format!("{}: record {i} does not decode", path.display()));
            }
        }
    };
    let after = match latest_checkpoint(dir)? {
        Some((index, path)) => {
            for segment in segments(&path)? {
                let file = path.join(segment_name(segment));
                let (records, torn) = read_segment(&file)?;
                check.segments += 1;
                count(&records, &file, &mut check);
                if let Some(offset) = torn {
                    check.problems.push(format!(
                        "{}: checkpoint segment corrupt at byte {offset}",
                        file.display()
                    ));
                }
            }
            Some(index)
        }
        None => None,
    };
    let live: Vec<u64> = segments(dir)?
        .into_iter()
        .filter(|s| after.is_none_or(|a| *s > a))
        .collect();
    for (i, &segment) in live.iter().enumerate() {
        let file = dir.join(segment_name(segment));
        let (records, torn) = read_segment(&file)?;
        check.segments += 1;
        count(&records, &file, &mut check);
        if let Some(offset) = torn {
            let size = fs::metadata(&file)?.len();
            let what = format!(
                "{}: {} bytes after byte {offset} are a torn record",
                file.display(),
                size - offset
            );
            if i + 1 == live.len() {
                check.torn_tail = Some(what);
            } else {
                check.problems.push(format!(
                    "{what}, and {} segments follow it",
                    live.len() - i - 1
                ));
            }
        }
    }
    Ok(check)
}

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records handed to the callback.
    pub records: u64,
    /// Records that framed correctly but did not decode (skipped).
    pub undecodable: u64,
    /// Whether a torn or corrupt tail was cut off.
    pub repaired: bool,
}

/// Replays the checkpoint and the segments after it, in order, repairing a
/// torn tail. `apply` sees every decodable record, on the calling thread,
/// while another thread reads and decodes ahead.
pub fn replay(dir: &Path, mut apply: impl FnMut(Record)) -> io::Result<ReplayReport> {
    fs::create_dir_all(dir)?;
    std::thread::scope(|scope| {
        let (records, received) = std::sync::mpsc::sync_channel::<Record>(256);
        let reader = scope.spawn(move || read_all(dir, &records));
        for record in received {
            apply(record);
        }
        reader.join().expect("the WAL reader does not panic")
    })
}

fn read_all(dir: &Path, out: &std::sync::mpsc::SyncSender<Record>) -> io::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let feed = |payload: &[u8], report: &mut ReplayReport| match decode(payload) {
        Some(record) => {
            report.records += 1;
            // The receiver only stops early when the caller is gone.
            let _ = out.send(record);
        }
        None => report.undecodable += 1,
    };
    let after = match latest_checkpoint(dir)? {
        Some((index, path)) => {
            for segment in segments(&path)? {
                let (records, torn) = read_segment(&path.join(segment_name(segment)))?;
                if torn.is_some() {
                    // Checkpoints are fsynced before they are renamed into place.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("WAL checkpoint {} is corrupt", path.display()),
                    ));
                }
                records.iter().for_each(|r| feed(r, &mut report));
            }
            Some(index)
        }
        None => None,
    };
    let all = segments(dir)?;
    let live: Vec<u64> = all
        .into_iter()
        .filter(|s| after.is_none_or(|a| *s > a))
        .collect();
    for (i, &segment) in live.iter().enumerate() {
        let path = dir.join(segment_name(segment));
        let (records, torn) = read_segment(&path)?;
        records.iter().for_each(|r| feed(r, &mut report));
        if let Some(good) = torn {
            warn!(
                segment = %path.display(),
                offset = good,
                later_segments = live.len() - i - 1,
                "WAL ends in a torn or corrupt record; truncating there"
            );
            OpenOptions::new().write(true).open(&path)?.set_len(good)?;
            for &later in &live[i + 1..] {
                fs::remove_file(dir.join(segment_name(later)))?;
            }
            report.repaired = true;
            break;
        }
    }
    Ok(report)
}

struct Writer {
    index: u64,
    file: Arc<File>,
    size: u64,
    /// Records written so far (the group-commit sequence).
    seq: u64,
}

/// The log, open for appending.
pub struct Wal {
    dir: PathBuf,
    policy: FsyncPolicy,
    writer: Mutex<Writer>,
    sync_lock: Mutex<()>,
    synced_seq: AtomicU64,
    stats: Arc<TsdbStats>,
    /// This WAL's part of the size gauge its node's engines share.
    size_share: sextant_model::telemetry::GaugeShare,
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.size_share.set(&self.stats.wal_size_bytes, 0);
    }
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens `dir` for appending in a fresh segment (call [`replay`] first).
    pub fn open(dir: &Path, policy: FsyncPolicy, stats: Arc<TsdbStats>) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let last = segments(dir)?.last().copied();
        let checkpoint = latest_checkpoint(dir)?.map(|(i, _)| i);
        let index = last.max(checkpoint).unwrap_or(0) + 1;
        let file = Self::create_segment(dir, index)?;
        let wal = Self {
            dir: dir.to_owned(),
            policy,
            writer: Mutex::new(Writer {
                index,
                file: Arc::new(file),
                size: 0,
                seq: 0,
            }),
            sync_lock: Mutex::new(()),
            synced_seq: AtomicU64::new(0),
            stats,
            size_share: Default::default(),
        };
        wal.update_size_stat();
        Ok(wal)
    }

    fn create_segment(dir: &Path, index: u64) -> io::Result<File> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(segment_name(index)))?;
        sync_dir(dir)?;
        Ok(file)
    }

    /// Writes records (each a payload from `encode_*`) with one `write` call and
    /// returns their group-commit sequence number. The bytes are in the kernel
    /// when this returns; call [`Wal::commit`] to honour the fsync policy.
    pub fn write(&self, payloads: &[&[u8]]) -> io::Result<u64> {
        let mut frame = Vec::with_capacity(payloads.iter().map(|p| p.len() + 8).sum());
        for payload in payloads {
            let len = u32::try_from(payload.len())
                .ok()
                .filter(|l| *l <= MAX_RECORD_BYTES)
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "WAL record too large")
                })?;
            frame.extend_from_slice(&len.to_le_bytes());
            frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            frame.extend_from_slice(payload);
        }
        let mut writer = self.writer.lock().expect("wal writer lock");
        if writer.size > 0 && writer.size + frame.len() as u64 > SEGMENT_BYTES {
            self.roll_locked(&mut writer)?;
        }
        if let Err(err) = (&*writer.file).write_all(&frame) {
            // A write cut short (a full disk) must not leave half a record
            // for the next one to follow: replay would stop at it.
            let _ = writer.file.set_len(writer.size);
            return Err(err);
        }
        writer.size += frame.len() as u64;
        writer.seq += 1;
        self.stats.wal_bytes_written.add(frame.len() as u64);
        Ok(writer.seq)
    }

    /// Makes the records up to `seq` as durable as the policy asks.
    pub fn commit(&self, seq: u64) -> io::Result<()> {
        match self.policy {
            FsyncPolicy::Always => self.sync_to(seq),
            FsyncPolicy::Interval | FsyncPolicy::Never => Ok(()),
        }
    }

    /// Fsyncs everything written so far (the interval flusher and shutdown call this).
    pub fn sync(&self) -> io::Result<()> {
        let seq = self.writer.lock().expect("wal writer lock").seq;
        self.sync_to(seq)
    }

    /// Group commit: one fsync covers every writer whose records were written
    /// before it started.
    fn sync_to(&self, seq: u64) -> io::Result<()> {
        if self.synced_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _one_at_a_time = self.sync_lock.lock().expect("wal sync lock");
        if self.synced_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let (file, target) = {
            let writer = self.writer.lock().expect("wal writer lock");
            (writer.file.clone(), writer.seq)
        };
        let started = Instant::now();
        file.sync_data()?;
        self.stats.record_fsync(started.elapsed());
        self.synced_seq.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    fn roll_locked(&self, writer: &mut Writer) -> io::Result<()> {
        if self.policy != FsyncPolicy::Never {
            let started = Instant::now();
            writer.file.sync_data()?;
            self.stats.record_fsync(started.elapsed());
        }
        writer.index += 1;
        writer.file = Arc::new(Self::create_segment(&self.dir, writer.index)?);
        writer.size = 0;
        // Everything in earlier segments is now synced (or the policy says never).
        self.synced_seq.fetch_max(writer.seq, Ordering::AcqRel);
        debug!(segment = writer.index, "WAL segment started");
        Ok(())
    }

    /// Starts a new segment and returns the index of the last one before it:
    /// everything up to that index may then be checkpointed.
    pub fn roll(&self) -> io::Result<u64> {
        let mut writer = self.writer.lock().expect("wal writer lock");
        self.roll_locked(&mut writer)?;
        Ok(writer.index - 1)
    }

    /// Replaces segments up to `last` (and older checkpoints) by a checkpoint
    /// holding only the series `keep_series` says to keep and samples at or
    /// after `min_time`. Crash-safe: the checkpoint is complete and fsynced
    /// before it is renamed into place, and only then are segments removed.
    pub fn checkpoint(
        &self,
        last: u64,
        min_time: i64,
        keep_series: impl Fn(u64) -> bool,
    ) -> io::Result<()> {
        let tmp = self.dir.join(format!("{}.tmp", checkpoint_name(last)));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(tmp.join(segment_name(0)))?;
        let mut sources: Vec<PathBuf> = Vec::new();
        let previous = latest_checkpoint(&self.dir)?;
        if let Some((_, path)) = &previous {
            for s in segments(path)? {
                sources.push(path.join(segment_name(s)));
            }
        }
        let first_live = previous.as_ref().map_or(0, |(i, _)| *i);
        for s in segments(&self.dir)? {
            if s > first_live && s <= last {
                sources.push(self.dir.join(segment_name(s)));
            }
        }
        let mut frame = Vec::new();
        for source in &sources {
            let (records, _) = read_segment(source)?;
            for payload in records {
                let mut kept = Vec::new();
                match decode(&payload) {
                    Some(Record::Series(series)) => {
                        let series: Vec<_> = series
                            .into_iter()
                            .filter(|(id, _)| keep_series(*id))
                            .collect();
                        if !series.is_empty() {
                            encode_series(
                                &mut kept,
                                series.iter().map(|(id, labels)| {
                                    (*id, labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                                }),
                            );
                        }
                    }
                    Some(Record::Samples(samples)) => {
                        let samples: Vec<_> = samples
                            .into_iter()
                            .filter(|(id, t, _)| *t >= min_time && keep_series(*id))
                            .collect();
                        if !samples.is_empty() {
                            encode_samples(&mut kept, &samples);
                        }
                    }
                    Some(Record::Histograms(samples)) => {
                        let samples: Vec<(u64, Vec<u8>)> = samples
                            .into_iter()
                            .filter(|(id, s)| s.timestamp_ms >= min_time && keep_series(*id))
                            .filter_map(|(id, s)| {
                                Some((id, histogram_bytes(s.timestamp_ms, &s.value)?))
                            })
                            .collect();
                        if !samples.is_empty() {
                            let refs: Vec<(u64, &[u8])> =
                                samples.iter().map(|(id, b)| (*id, &b[..])).collect();
                            encode_histograms(&mut kept, &refs);
                        }
                    }
                    None => {}
                }
                if kept.is_empty() {
                    continue;
                }
                frame.extend_from_slice(&(kept.len() as u32).to_le_bytes());
                frame.extend_from_slice(&crc32fast::hash(&kept).to_le_bytes());
                frame.extend_from_slice(&kept);
                if frame.len() > 4 * 1024 * 1024 {
                    out.write_all(&frame)?;
                    frame.clear();
                }
            }
        }
        out.write_all(&frame)?;
        out.sync_all()?;
        sync_dir(&tmp)?;
        let final_path = self.dir.join(checkpoint_name(last));
        fs::rename(&tmp, &final_path)?;
        sync_dir(&self.dir)?;
        // The checkpoint is durable: what it replaces can go.
        for s in segments(&self.dir)? {
            if s <= last {
                fs::remove_file(self.dir.join(segment_name(s)))?;
            }
        }
        if let Some((index, path)) = previous
            && index < last
        {
            fs::remove_dir_all(path)?;
        }
        sync_dir(&self.dir)?;
        self.update_size_stat();
        Ok(())
    }

    fn update_size_stat(&self) {
        self.size_share
            .set(&self.stats.wal_size_bytes, dir_size(&self.dir));
    }

    /// Refreshes the WAL size gauge.
    pub fn refresh_size(&self) {
        self.update_size_stat();
    }

    /// Runs until `stop` returns true, fsyncing every `interval` (for the
    /// interval policy) and refreshing the size gauge.
    pub fn run_flusher(&self, interval: Duration, stop: impl Fn() -> bool) {
        let tick = interval.min(Duration::from_millis(200));
        let mut last = Instant::now();
        while !stop() {
            std::thread::sleep(tick);
            if last.elapsed() >= interval {
                last = Instant::now();
                if self.policy == FsyncPolicy::Interval
                    && let Err(err) = self.sync()
                {
                    warn!(error = %err, "WAL fsync failed");
                }
                self.update_size_stat();
            }
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series_record(id: u64, name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_series(&mut out, [(id, [("__name__", name), ("job", "node")])]);
        out
    }

    fn samples_record(samples: &[(u64, i64, f64)]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_samples(&mut out, samples);
        out
    }

    fn replay_all(dir: &Path) -> (Vec<Record>, ReplayReport) {
        let mut records = Vec::new();
        let report = replay(dir, |r| records.push(r)).unwrap();
        (records, report)
    }

    #[test]
    fn records_round_trip() {
        let series = series_record(7, "up");
        assert_eq!(
            decode(&series),
            Some(Record::Series(vec![(
                7,
                vec![
                    ("__name__".into(), "up".into()),
                    ("job".into(), "node".into())
                ]
            )]))
        );
        let samples = [
            (7, 1_700_000_000_000, 1.5),
            (8, 1_699_999_999_000, f64::MIN),
        ];
        assert_eq!(
            decode(&samples_record(&samples)),
            Some(Record::Samples(samples.to_vec()))
        );
        assert_eq!(decode(&[9, 1, 2]), None);
        assert_eq!(decode(&samples_record(&samples)[..20]), None);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(TsdbStats::default());
        let wal = Wal::open(dir.path(), FsyncPolicy::Always, stats.clone()).unwrap();
        let a = series_record(1, "a");
        let b = samples_record(&[(1, 10, 1.0)]);
        let seq = wal.write(&[&a, &b]).unwrap();
        wal.commit(seq).unwrap();
        drop(wal);
        // A crash mid-write: half a record at the end.
        let segment = dir.path().join(segment_name(1));
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 2, 0]).unwrap();
        let (records, report) = replay_all(dir.path());
        assert_eq!(records.len(), 2);
        assert!(report.repaired);
        // Repaired for good: a second replay is clean and sees the same.
        let (again, report) = replay_all(dir.path());
        assert_eq!(again, records);
        assert!(!report.repaired);
        assert!(stats.fsyncs.get() >= 1);
    }

    #[test]
    fn a_corrupt_record_ends_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(TsdbStats::default());
        let wal = Wal::open(dir.path(), FsyncPolicy::Never, stats).unwrap();
        for i in 0..3 {
            wal.write(&[&samples_record(&[(1, i, i as f64)])]).unwrap();
        }
        drop(wal);
        let segment = dir.path().join(segment_name(1));
        let mut bytes = fs::read(&segment).unwrap();
        let record_len = bytes.len() / 3;
        bytes[record_len + 12] ^= 0xff; // inside the second record's payload
        fs::write(&segment, &bytes).unwrap();
        let (records, report) = replay_all(dir.path());
        assert_eq!(records, vec![Record::Samples(vec![(1, 0, 0.0)])]);
        assert!(report.repaired);
    }

    #[test]
    fn a_checkpoint_keeps_what_the_head_needs_and_replaces_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(TsdbStats::default());
        let wal = Wal::open(dir.path(), FsyncPolicy::Never, stats.clone()).unwrap();
        wal.write(&[&series_record(1, "old"), &series_record(2, "live")])
            .unwrap();
        wal.write(&[&samples_record(&[
            (1, 100, 1.0),
            (2, 100, 2.0),
            (2, 300, 3.0),
        ])])
        .unwrap();
        let last = wal.roll().unwrap();
        wal.write(&[&samples_record(&[(2, 400, 4.0)])]).unwrap();
        wal.checkpoint(last, 200, |id| id == 2).unwrap();
        assert!(!dir.path().join(segment_name(1)).exists());
        let (records, _) = replay_all(dir.path());
        assert_eq!(
            records,
            vec![
                Record::Series(vec![(
                    2,
                    vec![
                        ("__name__".into(), "live".into()),
                        ("job".into(), "node".into())
                    ]
                )]),
                Record::Samples(vec![(2, 300, 3.0)]),
                Record::Samples(vec![(2, 400, 4.0)]),
            ]
        );
        // A reopened WAL continues after the checkpoint's segments.
        drop(wal);
        let wal = Wal::open(dir.path(), FsyncPolicy::Never, stats).unwrap();
        wal.write(&[&samples_record(&[(2, 500, 5.0)])]).unwrap();
        let (records, _) = replay_all(dir.path());
        assert_eq!(records.len(), 4);
    }
}
