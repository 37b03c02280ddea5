//! The StatsD line protocol with the DogStatsD extensions, as statsd_exporter
//! reads it: `name:value|type[|@rate][|#tag:value,...]`, several
//! `value|type` parts after one name (`name:1|c:2|c`), packed timer values
//! (`name:1:2:3|ms`), gauge deltas (`+n`, `-n`). A pure function: no I/O.

/// One StatsD measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The metric name as sent (escaped later, after mapping).
    pub name: String,
    /// DogStatsD tags that carry a value, in the order sent.
    pub tags: Vec<(String, String)>,
    pub kind: EventKind,
}

/// What a measurement says.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `c`: add `value / rate` to a counter.
    Counter(f64),
    /// `g`: set a gauge, or move it by `delta` when signed (`+n`, `-n`).
    Gauge { value: f64, relative: bool },
    /// `ms` (in seconds after conversion), `h`, `d`: one observation that
    /// stands for `weight` observations (`1 / rate`).
    Observation { value: f64, weight: f64 },
    /// `s`: a member of a set (distinct members are counted per flush).
    Set(String),
}

/// Parses one line into its events, or says what is wrong with it.
pub fn parse_line(line: &str) -> Result<Vec<Event>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (name, rest) = line
        .split_once(':')
        .ok_or_else(|| format!("no ':' after the metric name in {line:?}"))?;
    if name.is_empty() {
        return Err(format!("empty metric name in {line:?}"));
    }
    if rest.is_empty() {
        return Err(format!("no value for {name:?}"));
    }
    let (first, suffix) = rest.split_once('|').unwrap_or((rest, ""));
    let parts: Vec<String> = if first.contains(':') {
        // DogStatsD packed values: `name:1:2:3|ms|@0.5` is three observations.
        let kind = suffix.split('|').next().unwrap_or_default();
        if !matches!(kind, "ms" | "h" | "d") {
            return Err(format!(
                "{name:?}: several values in one part are only allowed for timers, histograms and distributions, not {kind:?}"
            ));
        }
        first.split(':').map(|v| format!("{v}|{suffix}")).collect()
    } else if rest.contains("|#") {
        // DogStatsD tags hold ':' themselves: one part per line, as statsd_exporter reads it.
        vec![rest.to_owned()]
    } else {
        rest.split(':').map(str::to_owned).collect()
    };
    parts.iter().map(|part| parse_part(name, part)).collect()
}

fn parse_part(name: &str, part: &str) -> Result<Event, String> {
    let mut sections = part.split('|');
    let value = sections.next().unwrap_or_default();
    let kind = sections.next().ok_or_else(|| {
        format!("{name:?}: no type after the value {value:?} (expected |c, |g, |ms, |h, |d or |s)")
    })?;
    let mut rate = 1.0;
    let mut tags = Vec::new();
    for section in sections {
        if let Some(r) = section.strip_prefix('@') {
            rate = r
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0 && *r <= 1.0)
                .ok_or_else(|| {
                    format!("{name:?}: invalid sample rate {r:?} (expected 0 < rate <= 1)")
                })?;
        } else if let Some(list) = section.strip_prefix('#') {
            for tag in list.split(',').filter(|t| !t.is_empty()) {
                // Tags without a value (DogStatsD flags) carry no label; statsd_exporter drops them too.
                if let Some((k, v)) = tag.split_once(':')
                    && !k.is_empty()
                    && !v.is_empty()
                {
                    tags.push((k.to_owned(), v.to_owned()));
                }
            }
        } else if section.starts_with(['c', 'T']) {
            // DogStatsD container ids and client timestamps: accepted, not used.
        } else {
            return Err(format!("{name:?}: unknown section {section:?}"));
        }
    }
    let number = |what: &str| -> Result<f64, String> {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{name:?}: {what} value {value:?} is not a number"))
    };
    let kind = match kind {
        "c" => EventKind::Counter(number("counter")? / rate),
        "g" => EventKind::Gauge {
            value: number("gauge")?,
            relative: value.starts_with(['+', '-']),
        },
        "ms" => EventKind::Observation {
            value: number("timer")? / 1000.0,
            weight: 1.0 / rate,
        },
        "h" | "d" => EventKind::Observation {
            value: number("histogram")?,
            weight: 1.0 / rate,
        },
        "s" => EventKind::Set(value.to_owned()),
        other => {
            return Err(format!(
                "{name:?}: unknown type {other:?} (expected c, g, ms, h, d or s)"
            ));
        }
    };
    Ok(Event {
        name: name.to_owned(),
        tags,
        kind,
    })
}

/// A Prometheus metric or label name from a StatsD one: every character
/// outside `[a-zA-Z0-9_]` becomes `_`, and a leading digit gets a `_` before it.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<EventKind> {
        parse_line(line)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    #[test]
    fn the_line_protocol_and_its_extensions() {
        assert_eq!(
            kinds("simplebank-demo.market.place_order_stock_exchange:72.8|ms"),
            [EventKind::Observation {
                value: 0.0728,
                weight: 1.0
            }]
        );
        assert_eq!(kinds("hits:2|c|@0.1"), [EventKind::Counter(20.0)]);
        assert_eq!(
            kinds("queue:-3|g"),
            [EventKind::Gauge {
                value: -3.0,
                relative: true
            }]
        );
        assert_eq!(
            kinds("queue:3|g"),
            [EventKind::Gauge {
                value: 3.0,
                relative: false
            }]
        );
        assert_eq!(kinds("users:alice|s"), [EventKind::Set("alice".into())]);
        assert_eq!(
            kinds("lat:1:2:3|h|@0.5"),
            [1.0, 2.0, 3.0].map(|value| EventKind::Observation { value, weight: 2.0 })
        );
        assert_eq!(
            kinds("multi:1|c:5|g"),
            [
                EventKind::Counter(1.0),
                EventKind::Gauge {
                    value: 5.0,
                    relative: false
                }
            ]
        );
        let event = &parse_line("req:1|c|#env:prod,canary,region:eu|c:abc").unwrap()[0];
        assert_eq!(
            event.tags,
            [
                ("env".to_owned(), "prod".to_owned()),
                ("region".to_owned(), "eu".to_owned())
            ]
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (line, says) in [
            ("nocolon", "no ':'"),
            (":1|c", "empty metric name"),
            ("x:", "no value"),
            ("x:1", "no type"),
            ("x:abc|c", "not a number"),
            ("x:1|q", "unknown type \"q\""),
            ("x:1|c|@2", "invalid sample rate"),
            ("x:1:2|c", "only allowed for timers"),
            ("x:1|c|zz", "unknown section"),
            ("x:NaN|g", "not a number"),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn names_are_escaped_as_statsd_exporter_does() {
        assert_eq!(
            escape_name("simplebank-demo.market.place_order"),
            "simplebank_demo_market_place_order"
        );
        assert_eq!(escape_name("5xx.count"), "_5xx_count");
    }
}
