//! The remote write 2.0 reader never panics and reads exactly what `prost`
//! reads from the same bytes: the series it keeps are the prost series that
//! pass the spec's rules (checked here again, from prost's structs), in
//! order, with their symbols resolved, and each other one is named.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sextant_ingest::remote_write::v2::{parse, proto};
use sextant_model::Labels;

/// The series' labels, if the spec's rules let it be kept.
fn kept(series: &proto::TimeSeries, symbols: &[String]) -> Option<Labels> {
    let refs = &series.labels_refs;
    if refs.len() % 2 != 0 || refs.iter().any(|&r| r as usize >= symbols.len()) {
        return None;
    }
    let mut pairs: Vec<(&str, &str)> = refs
        .chunks(2)
        .map(|p| {
            (
                symbols[p[0] as usize].as_str(),
                symbols[p[1] as usize].as_str(),
            )
        })
        .collect();
    pairs.sort();
    if pairs.windows(2).any(|w| w[0].0 == w[1].0)
        || !pairs.iter().any(|(n, v)| *n == "__name__" && !v.is_empty())
    {
        return None;
    }
    if let Some(m) = &series.metadata {
        if m.help_ref as usize >= symbols.len() || m.unit_ref as usize >= symbols.len() {
            return None;
        }
    }
    if series.samples.is_empty() && series.histograms.is_empty() {
        return None;
    }
    Some(Labels::from_pairs(pairs))
}

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = parse(data) else {
        return;
    };
    let expected = proto::Request::decode(data).expect("prost reads what parse reads");
    if let Some(first) = expected.symbols.first() {
        assert!(first.is_empty(), "symbols[0] must be empty");
    }
    let want: Vec<(&proto::TimeSeries, Labels)> = expected
        .timeseries
        .iter()
        .filter_map(|s| kept(s, &expected.symbols).map(|labels| (s, labels)))
        .collect();
    let got = batch.series.to_series();
    assert_eq!(got.len(), want.len());
    assert_eq!(
        batch.problems.len() - batch.exemplars_refused - batch.histograms_refused,
        expected.timeseries.len() - want.len()
    );
    let (mut exemplars, mut histograms) = (0, 0);
    for (g, (w, labels)) in got.iter().zip(&want) {
        assert_eq!(&g.labels, labels);
        assert_eq!(g.samples.len(), w.samples.len());
        for (g, w) in g.samples.iter().zip(&w.samples) {
            assert_eq!(
                (g.timestamp_ms, g.value.to_bits()),
                (w.timestamp, w.value.to_bits())
            );
        }
        exemplars += w.exemplars.len();
        histograms += w.histograms.len();
    }
    assert_eq!(batch.exemplars.len() + batch.exemplars_refused, exemplars);
    assert_eq!(
        batch.histograms.len() + batch.histograms_refused,
        histograms
    );
    for (series, _) in &batch.histograms {
        assert!(*series < got.len());
    }
    for (series, _) in &batch.exemplars {
        assert!(*series < got.len());
    }
});
