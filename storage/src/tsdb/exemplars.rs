//! Exemplars, as Prometheus keeps them: a fixed number in memory (the
//! oldest dropped first, whatever their series), each series' in time
//! order, and a log on disk they are read back from at start.
//!
//! **Memory.** One queue of every exemplar in arrival order, and per series
//! the exemplars it holds, oldest first. When the store is full, the
//! oldest exemplar goes: it is the first of the series the queue's front
//! names. So at most `capacity` exemplars are held, each once.
//!
//! **Rules** (Prometheus's `CircularExemplarStorage`): an exemplar equal
//! to its series' newest (labels, value and time) is a duplicate, taken and
//! not kept again; one older than its series' newest is out of order and
//! refused; one whose labels are longer than 128 characters together is
//! refused ([`Exemplar::invalid`]).
//!
//! **Disk.** Each exemplar kept is appended to `exemplars.log` (a record:
//! length, CRC-32 of the body, body) before the append returns, so one
//! acknowledged survives a kill; at start the log is read back (a torn or
//! damaged tail ends the reading) into the same bounded memory. Once the
//! log holds three times the capacity, it is rewritten with what memory
//! holds, so it stays within about four times the capacity.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sextant_model::{Exemplar, Labels, Matcher};

/// Prometheus's default `storage.exemplars.max_exemplars`.
pub const DEFAULT_MAX_EXEMPLARS: usize = 100_000;

/// The longest record read back: anything longer is damage.
const MAX_RECORD: usize = 1 << 20;

/// What one append did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExemplarReport {
    /// Kept (duplicates of a series' newest count as taken, not kept).
    pub kept: usize,
    /// Equal to their series' newest.
    pub duplicate: usize,
    /// Older than their series' newest.
    pub out_of_order: usize,
    /// Labels too long.
    pub invalid: usize,
    /// The first refusal, worded for the client.
    pub first_error: Option<String>,
}

struct Inner {
    capacity: usize,
    /// Every exemplar's series, in arrival order.
    order: VecDeque<Arc<Labels>>,
    by_series: HashMap<Arc<Labels>, VecDeque<Exemplar>>,
    log: Option<Log>,
}

struct Log {
    path: PathBuf,
    file: BufWriter<File>,
    records: usize,
}

/// The exemplars of one metrics engine.
pub struct ExemplarStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ExemplarStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().expect("exemplars lock");
        f.debug_struct("ExemplarStore")
            .field("capacity", &inner.capacity)
            .field("held", &inner.order.len())
            .finish()
    }
}

impl ExemplarStore {
    /// A store of at most `capacity` exemplars (0 keeps none), logged in
    /// `path` when given and read back from it now.
    pub fn open(path: Option<&Path>, capacity: usize) -> io::Result<Self> {
        let mut inner = Inner {
            capacity,
            order: VecDeque::new(),
            by_series: HashMap::new(),
            log: None,
        };
        if let Some(path) = path {
            if capacity == 0 {
                // Keeping none: what an earlier run kept is gone.
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            } else {
                for (series, exemplar) in read_log(path)? {
                    inner.insert(Arc::new(series), exemplar);
                }
                inner.rewrite_log(path)?;
            }
        }
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    /// Adds exemplars of their series; see the module's rules.
    pub fn append(&self, batch: &[(Labels, Exemplar)]) -> io::Result<ExemplarReport> {
        let mut report = ExemplarReport::default();
        let mut inner = self.inner.lock().expect("exemplars lock");
        if inner.capacity == 0 {
            return Ok(report);
        }
        let refuse = |report: &mut ExemplarReport, message: String| {
            if report.first_error.is_none() {
                report.first_error = Some(message);
            }
        };
        for (series, exemplar) in batch {
            if let Some(why) = exemplar.invalid() {
                report.invalid += 1;
                refuse(&mut report, format!("{series}: {why}"));
                continue;
            }
            if let Some(newest) = inner.by_series.get(series).and_then(|e| e.back()) {
                if newest.timestamp_ms == exemplar.timestamp_ms
                    && newest.labels == exemplar.labels
                    && newest.value.to_bits() == exemplar.value.to_bits()
                {
                    report.duplicate += 1;
                    continue;
                }
                if exemplar.timestamp_ms < newest.timestamp_ms {
                    report.out_of_order += 1;
                    refuse(
                        &mut report,
                        format!(
                            "{series}: exemplar at {} ms is older than the series' newest at {} ms (out of order)",
                            exemplar.timestamp_ms, newest.timestamp_ms
                        ),
                    );
                    continue;
                }
            }
            if let Some(log) = inner.log.as_mut() {
                write_record(&mut log.file, series, exemplar)?;
                log.records += 1;
            }
            let key = inner
                .by_series
                .get_key_value(series)
                .map_or_else(|| Arc::new(series.clone()), |(k, _)| k.clone());
            inner.insert(key, exemplar.clone());
            report.kept += 1;
        }
        let capacity = inner.capacity;
        let mut rewrite = None;
        if let Some(log) = inner.log.as_mut() {
            log.file.flush()?;
            if log.records > capacity.saturating_mul(3) {
                rewrite = Some(log.path.clone());
            }
        }
        if let Some(path) = rewrite {
            inner.rewrite_log(&path)?;
        }
        Ok(report)
    }

    /// The exemplars in `[start_ms, end_ms]` of every series that matches
    /// all matchers of any one set, by series labels; each series'
    /// exemplars oldest first.
    pub fn select(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        let inner = self.inner.lock().expect("exemplars lock");
        let mut out: Vec<(Labels, Vec<Exemplar>)> = inner
            .by_series
            .iter()
            .filter(|(series, _)| {
                matcher_sets.iter().any(|set| {
                    set.iter()
                        .all(|m| m.matches(series.get(&m.name).unwrap_or("")))
                })
            })
            .filter_map(|(series, exemplars)| {
                let within: Vec<Exemplar> = exemplars
                    .iter()
                    .filter(|e| (start_ms..=end_ms).contains(&e.timestamp_ms))
                    .cloned()
                    .collect();
                (!within.is_empty()).then(|| (Labels::clone(series), within))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// How many exemplars are held.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("exemplars lock").order.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn insert(&mut self, series: Arc<Labels>, exemplar: Exemplar) {
        if self.capacity == 0 {
            return;
        }
        while self.order.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(held) = self.by_series.get_mut(&oldest) {
                held.pop_front();
                if held.is_empty() {
                    self.by_series.remove(&oldest);
                }
            }
        }
        self.order.push_back(series.clone());
        self.by_series
            .entry(series)
            .or_default()
            .push_back(exemplar);
    }

    /// Writes what memory holds to a new log, in arrival order, and
    /// appends to that from now on.
    fn rewrite_log(&mut self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("log.tmp");
        let mut file = BufWriter::new(File::create(&tmp)?);
        // Each series' exemplars come out of its queue in the order the
        // arrival queue names that series.
        let mut next: HashMap<&Arc<Labels>, usize> = HashMap::new();
        for series in &self.order {
            let at = next.entry(series).or_insert(0);
            if let Some(exemplar) = self.by_series.get(series).and_then(|e| e.get(*at)) {
                write_record(&mut file, series, exemplar)?;
            }
            *at += 1;
        }
        file.flush()?;
        file.get_ref().sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        self.log = Some(Log {
            path: path.to_owned(),
            file: BufWriter::new(file),
            records: self.order.len(),
        });
        Ok(())
    }
}

// ---- the log's records ------------------------------------------------

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.extend_from_slice(&(labels.len() as u32).to_le_bytes());
    for label in labels.iter() {
        put_str(out, &label.name);
        put_str(out, &label.value);
    }
}

fn write_record(out: &mut impl Write, series: &Labels, exemplar: &Exemplar) -> io::Result<()> {
    let mut body = Vec::with_capacity(128);
    put_labels(&mut body, series);
    put_labels(&mut body, &exemplar.labels);
    body.extend_from_slice(&exemplar.value.to_bits().to_le_bytes());
    body.extend_from_slice(&exemplar.timestamp_ms.to_le_bytes());
    out.write_all(&(body.len() as u32).to_le_bytes())?;
    out.write_all(&crc32fast::hash(&body).to_le_bytes())?;
    out.write_all(&body)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    fn labels(&mut self) -> Option<Labels> {
        let n = self.u32()? as usize;
        // Each label takes at least 8 bytes: a count past that is damage.
        if n > self.0.len() / 8 {
            return None;
        }
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            pairs.push((self.str()?, self.str()?));
        }
        Some(Labels::from_pairs(pairs))
    }
}

fn decode(body: &[u8]) -> Option<(Labels, Exemplar)> {
    let mut r = Reader(body);
    let series = r.labels()?;
    let labels = r.labels()?;
    let value = f64::from_bits(r.u64()?);
    let timestamp_ms = r.u64()? as i64;
    r.0.is_empty().then_some((
        series,
        Exemplar {
            labels,
            value,
            timestamp_ms,
        },
    ))
}

/// The records of a log, up to the first torn or damaged one.
fn read_log(path: &Path) -> io::Result<Vec<(Labels, Exemplar)>> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    let mut r = Reader(&bytes);
    while let (Some(len), Some(crc)) = (r.u32(), r.u32()) {
        let len = len as usize;
        if len > MAX_RECORD {
            break;
        }
        let Some(body) = r.take(len) else { break };
        if crc32fast::hash(body) != crc {
            break;
        }
        let Some(record) = decode(body) else { break };
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::MatchOp;

    fn series(n: u32) -> Labels {
        Labels::from_pairs([
            (
                "__name__",
                "http_request_duration_seconds_bucket".to_owned(),
            ),
            ("le", n.to_string()),
        ])
    }

    fn exemplar(trace: &str, value: f64, t: i64) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs([("trace_id", trace)]),
            value,
            timestamp_ms: t,
        }
    }

    fn all(store: &ExemplarStore) -> Vec<(String, Vec<i64>)> {
        let every = vec![vec![
            Matcher::new("__name__", MatchOp::Regex, ".+").unwrap(),
        ]];
        store
            .select(&every, i64::MIN, i64::MAX)
            .into_iter()
            .map(|(s, e)| {
                (
                    s.get("le").unwrap().to_owned(),
                    e.iter().map(|e| e.timestamp_ms).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn duplicates_are_taken_once_and_late_ones_refused() {
        let store = ExemplarStore::open(None, 10).unwrap();
        let report = store
            .append(&[
                (series(1), exemplar("a", 0.5, 10)),
                (series(1), exemplar("a", 0.5, 10)),
                (series(1), exemplar("b", 0.7, 5)),
                (series(1), exemplar("c", 0.9, 20)),
                (series(2), exemplar(&"x".repeat(200), 1.0, 30)),
            ])
            .unwrap();
        assert_eq!(
            (
                report.kept,
                report.duplicate,
                report.out_of_order,
                report.invalid
            ),
            (2, 1, 1, 1)
        );
        assert!(report.first_error.unwrap().contains("out of order"));
        assert_eq!(all(&store), [("1".to_owned(), vec![10, 20])]);
    }

    #[test]
    fn the_oldest_go_first_whatever_their_series() {
        let store = ExemplarStore::open(None, 3).unwrap();
        for (s, t) in [(1, 1), (2, 2), (1, 3), (3, 4), (2, 5)] {
            store.append(&[(series(s), exemplar("t", 1.0, t))]).unwrap();
        }
        assert_eq!(store.len(), 3);
        assert_eq!(
            all(&store),
            [
                ("1".to_owned(), vec![3]),
                ("2".to_owned(), vec![5]),
                ("3".to_owned(), vec![4])
            ]
        );
    }

    #[test]
    fn selection_is_by_matchers_and_time() {
        let store = ExemplarStore::open(None, 10).unwrap();
        store
            .append(&[
                (series(1), exemplar("a", 1.0, 10)),
                (series(1), exemplar("b", 1.0, 20)),
                (series(2), exemplar("c", 1.0, 15)),
            ])
            .unwrap();
        let le1 = vec![vec![Matcher::new("le", MatchOp::Equal, "1").unwrap()]];
        let found = store.select(&le1, 15, 30);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, [exemplar("b", 1.0, 20)]);
        let either = vec![
            vec![Matcher::new("le", MatchOp::Equal, "1").unwrap()],
            vec![Matcher::new("le", MatchOp::Equal, "2").unwrap()],
        ];
        assert_eq!(store.select(&either, 0, 100).len(), 2);
        assert!(store.select(&le1, 30, 40).is_empty());
    }

    #[test]
    fn the_log_brings_them_back_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exemplars.log");
        {
            let store = ExemplarStore::open(Some(&path), 4).unwrap();
            for t in 0..40 {
                store
                    .append(&[(series((t % 2) as u32), exemplar("t", 1.0, t))])
                    .unwrap();
            }
        }
        // 40 appended, 4 held; the log was rewritten on the way.
        let records = read_log(&path).unwrap().len();
        assert!(records <= 4 * 4, "{records} records");
        let store = ExemplarStore::open(Some(&path), 4).unwrap();
        assert_eq!(
            all(&store),
            [
                ("0".to_owned(), vec![36, 38]),
                ("1".to_owned(), vec![37, 39])
            ]
        );
        // A torn tail is where reading stops.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
        std::fs::write(&path, bytes).unwrap();
        let store = ExemplarStore::open(Some(&path), 4).unwrap();
        assert_eq!(store.len(), 4);
        // A smaller capacity keeps the newest.
        drop(store);
        let store = ExemplarStore::open(Some(&path), 2).unwrap();
        assert_eq!(
            all(&store),
            [("0".to_owned(), vec![38]), ("1".to_owned(), vec![39])]
        );
    }

    #[test]
    fn damaged_bytes_read_as_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exemplars.log");
        // A record claiming 2^31 labels must not allocate for them.
        let mut body = Vec::new();
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        std::fs::write(&path, bytes).unwrap();
        assert!(read_log(&path).unwrap().is_empty());
    }
}
