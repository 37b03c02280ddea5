//! The time-series engine: write-ahead log, in-memory head of compressed
//! chunks, immutable blocks with a label index, compaction and retention.
//!
//! Writes go WAL first, then head; reads merge blocks and head, with later
//! data winning at equal timestamps. The head is cut into a block once it
//! spans one and a half block ranges; blocks in one aligned larger range are
//! compacted together; whole blocks past retention are deleted.

mod bits;
mod block;
pub mod chunk;
mod db;
pub mod exemplars;
mod head;
mod head_chunks;
pub mod histogram_chunk;
mod stats;

mod wal;

pub use crate::block_store::{BlockStore, LocalBlockStore};
pub(crate) use block::Block;
pub use block::{BlockMeta, parse_block_index};
pub use db::{
    AppendReport, MetricMetadata, RefSample, RefSeries, SeriesHistograms, SeriesSamples, Tsdb,
    TsdbConfig,
};
pub use head::RejectReason;
pub use stats::TsdbStats;
pub(crate) use wal::verify as verify_wal;
pub use wal::{FsyncPolicy, WalCheck, histogram_bytes, histogram_from_bytes};
