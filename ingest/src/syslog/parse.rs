//! The syslog message parser: RFC 5424 and RFC 3164 (BSD syslog) text in,
//! a [`Message`] out. Pure: no I/O, no clock (the caller passes "now" for
//! RFC 3164's missing year), no allocation beyond the output, no recursion.
//!
//! What is accepted, and why:
//! - Every message starts with `<PRI>` (1 to 3 digits, 0 to 191): both RFCs
//!   require it, and without it nothing tells syslog from noise.
//! - `<PRI>` followed by a version digit and a space is RFC 5424, read
//!   strictly by its ABNF (field lengths, printable US-ASCII header fields,
//!   version 1 only); structured data becomes `SD-ID.PARAM-NAME` fields.
//! - Anything else after `<PRI>` is RFC 3164 as rsyslog reads it: an
//!   optional `Mmm dd hh:mm:ss` (or RFC 3339) timestamp, then a hostname
//!   (only after a timestamp, and only when the next word is not already a
//!   `TAG:`), then an optional `TAG[PID]:`, then the message.
//! - The whole message must be UTF-8 (RFC 5424's MSG-ANY in another
//!   charset is refused rather than stored garbled).

use std::collections::BTreeMap;

/// A syslog message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// 0 (kern) to 23 (local7).
    pub facility: u8,
    /// 0 (emerg) to 7 (debug).
    pub severity: u8,
    /// Microseconds since the epoch, UTC; `None` when the message has none.
    pub timestamp_us: Option<i64>,
    pub hostname: Option<String>,
    /// RFC 5424's APP-NAME or RFC 3164's TAG.
    pub app_name: Option<String>,
    pub procid: Option<String>,
    /// RFC 5424 only.
    pub msgid: Option<String>,
    /// Structured data as `SD-ID.PARAM-NAME` -> value (RFC 5424 only). A
    /// parameter repeated within its element keeps every value, as a JSON
    /// array's text (as arrays are stored elsewhere).
    pub structured_data: BTreeMap<String, String>,
    /// The free-form message, without RFC 5424's BOM.
    pub message: String,
    /// Which RFC the message follows.
    pub format: Format,
}

/// The two message formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

/// Facility names, by number, as syslog.h and rsyslog name them.
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Severity names, by number.
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// How RFC 3164 timestamps, which carry no zone, are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Now, in microseconds since the epoch: RFC 3164 timestamps carry no
    /// year, so the latest year that puts them at most 31 days after now
    /// is taken (the current one, or last year's for a date ahead).
    pub now_us: i64,
    /// The senders' offset from UTC in seconds (`logs.syslog.rfc3164_utc_offset`).
    pub rfc3164_offset_s: i64,
}

/// Reads one message (one frame or datagram, without framing).
pub fn parse(bytes: &[u8], context: Context) -> Result<Message, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "the message is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    // rsyslog and others end UDP messages with a newline (or a NUL).
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    if text.is_empty() {
        return Err("empty message".to_owned());
    }
    let (pri, rest) = priority(text)?;
    let (facility, severity) = (pri / 8, pri % 8);
    // A version is 1 to 3 digits and a space; a 3164 timestamp or hostname
    // never looks like that (an RFC 3339 date has 4 digits then `-`).
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=3).contains(&digits) && rest.as_bytes().get(digits) == Some(&b' ') {
        let version = &rest[..digits];
        if version != "1" {
            return Err(format!(
                "RFC 5424 version {version} is not supported (only 1)"
            ));
        }
        return rfc5424(facility, severity, &rest[digits + 1..]);
    }
    Ok(rfc3164(facility, severity, rest, context))
}

/// `<PRI>` and what follows it.
fn priority(text: &str) -> Result<(u8, &str), String> {
    let Some(rest) = text.strip_prefix('<') else {
        return Err("the message does not start with <PRI> (e.g. <13>)".to_owned());
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 3 || rest.as_bytes().get(digits) != Some(&b'>') {
        return Err(format!(
            "bad PRI {:?}: expected 1 to 3 digits between < and >",
            prefix(text, 8)
        ));
    }
    if digits > 1 && rest.starts_with('0') {
        return Err(format!(
            "bad PRI {:?}: leading zeros are not allowed",
            &text[..digits + 2]
        ));
    }
    let value: u16 = rest[..digits].parse().unwrap_or(u16::MAX);
    if value > 191 {
        return Err(format!(
            "bad PRI <{value}>: the priority must be 0 to 191 (facility 0-23 x 8 + severity 0-7)"
        ));
    }
    Ok((value as u8, &rest[digits + 1..]))
}

/// At most `n` characters of `text`, for error messages.
fn prefix(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(i, _)| &text[..i])
}

/// The header field before the next space, checked against the RFC's
/// length and character set; `None` for the NILVALUE.
fn header_field<'a>(rest: &mut &'a str, name: &str, max: usize) -> Result<Option<&'a str>, String> {
    let (value, tail) = match rest.split_once(' ') {
        Some(split) => split,
        None => return Err(format!("the message ends in its header, at the {name}")),
    };
    *rest = tail;
    if value.is_empty() {
        return Err(format!("empty {name} (two spaces in the header)"));
    }
    if value.len() > max {
        return Err(format!(
            "the {name} is {} characters long, more than RFC 5424's {max}",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| !matches!(c, '!'..='~')) {
        return Err(format!(
            "the {name} has the character {c:?}, which RFC 5424 does not allow there"
        ));
    }
    Ok((value != "-").then_some(value))
}

fn rfc5424(facility: u8, severity: u8, mut rest: &str) -> Result<Message, String> {
    let timestamp = header_field(&mut rest, "TIMESTAMP", 64)?;
    let timestamp_us = match timestamp {
        None => None,
        Some(text) => Some(
            sextant_model::time::parse_rfc3339_micros(text)
                .filter(|_| text.contains('T') && text.len() > 19)
                .ok_or_else(|| {
                    format!("bad TIMESTAMP {text:?}: expected e.g. 2003-10-11T22:14:15.003Z")
                })?,
        ),
    };
    let hostname = header_field(&mut rest, "HOSTNAME", 255)?;
    let app_name = header_field(&mut rest, "APP-NAME", 48)?;
    let procid = header_field(&mut rest, "PROCID", 128)?;
    // MSGID is followed by a space and STRUCTURED-DATA, which is at least `-`.
    let msgid = header_field(&mut rest, "MSGID", 32).map_err(|e| {
        if e.starts_with("the message ends") {
            "the message ends before its STRUCTURED-DATA (at least `-`)".to_owned()
        } else {
            e
        }
    })?;
    let mut structured_data = BTreeMap::new();
    let message = if let Some(tail) = rest.strip_prefix('-') {
        tail
    } else if rest.starts_with('[') {
        structured(rest, &mut structured_data)?
    } else {
        return Err(format!(
            "STRUCTURED-DATA must be `-` or start with `[`, found {:?}",
            prefix(rest, 16)
        ));
    };
    let message = match message.strip_prefix(' ') {
        Some(message) => message,
        None if message.is_empty() => "",
        None => {
            return Err(format!(
                "expected a space after STRUCTURED-DATA, found {:?}",
                prefix(message, 16)
            ));
        }
    };
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let owned = |s: Option<&str>| s.map(str::to_owned);
    Ok(Message {
        facility,
        severity,
        timestamp_us,
        hostname: owned(hostname),
        app_name: owned(app_name),
        procid: owned(procid),
        msgid: owned(msgid),
        structured_data,
        message: message.to_owned(),
        format: Format::Rfc5424,
    })
}

/// SD-NAME: 1 to 32 printable US-ASCII characters except `=`, space, `]` and `"`.
fn sd_name<'a>(rest: &mut &'a str, what: &str) -> Result<&'a str, String> {
    let len = rest
        .bytes()
        .take_while(|b| matches!(b, b'!'..=b'~') && !matches!(b, b'=' | b']' | b'"'))
        .count();
    if len == 0 {
        return Err(format!(
            "structured data: expected a {what}, found {:?}",
            prefix(rest, 16)
        ));
    }
    if len > 32 {
        return Err(format!(
            "structured data: the {what} {:?} is longer than RFC 5424's 32 characters",
            prefix(rest, 40)
        ));
    }
    let (name, tail) = rest.split_at(len);
    *rest = tail;
    Ok(name)
}

/// Reads one or more SD-ELEMENTs into `out`; returns what follows them.
fn structured<'a>(
    mut rest: &'a str,
    out: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    let mut repeated: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ids: Vec<&str> = Vec::new();
    while let Some(tail) = rest.strip_prefix('[') {
        rest = tail;
        let id = sd_name(&mut rest, "SD-ID")?;
        if ids.contains(&id) {
            return Err(format!(
                "structured data: the SD-ID {id:?} appears twice (RFC 5424 forbids it)"
            ));
        }
        ids.push(id);
        loop {
            if let Some(tail) = rest.strip_prefix(']') {
                rest = tail;
                break;
            }
            let Some(tail) = rest.strip_prefix(' ') else {
                return Err(if rest.is_empty() {
                    format!("structured data: the element [{id} is not closed with ]")
                } else {
                    format!(
                        "structured data: expected a space or ] in [{id}, found {:?}",
                        prefix(rest, 16)
                    )
                });
            };
            rest = tail;
            let name = sd_name(&mut rest, "PARAM-NAME")?;
            let Some(tail) = rest.strip_prefix("=\"") else {
                return Err(format!(
                    "structured data: expected =\" after {id}'s parameter {name}"
                ));
            };
            rest = tail;
            let (value, tail) = param_value(rest).ok_or_else(|| {
                format!(
                    "structured data: the value of {id}'s parameter {name} is not closed with \""
                )
            })?;
            rest = tail;
            repeated
                .entry(format!("{id}.{name}"))
                .or_default()
                .push(value);
        }
    }
    for (key, mut values) in repeated {
        let value = if values.len() == 1 {
            values.pop().unwrap_or_default()
        } else {
            serde_json::Value::from(values).to_string()
        };
        out.insert(key, value);
    }
    Ok(rest)
}

/// A PARAM-VALUE up to its closing `"`, with `\"`, `\\` and `\]` undone (a
/// backslash before anything else stays, as RFC 5424 says); the value and
/// what follows the quote, or `None` when the quote never comes.
fn param_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.clone().next() {
                Some((_, next @ ('"' | '\\' | ']'))) => {
                    chars.next();
                    value.push(next);
                }
                _ => value.push('\\'),
            },
            c => value.push(c),
        }
    }
    None
}

/// How far ahead of now an RFC 3164 timestamp may be placed when its year
/// is chosen: 31 days.
const MAX_AHEAD_US: i64 = 31 * 86_400 * 1_000_000;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn rfc3164(facility: u8, severity: u8, rest: &str, context: Context) -> Message {
    let (timestamp_us, mut rest) = match bsd_timestamp(rest, context) {
        Some((us, tail)) => (Some(us), tail),
        None => match rfc3339_prefix(rest) {
            Some((us, tail)) => (Some(us), tail),
            None => (None, rest),
        },
    };
    // As rsyslog: a hostname only follows a timestamp, and only when the
    // next word is not the TAG itself (`sshd[42]:`, `cron:`).
    let mut hostname = None;
    if timestamp_us.is_some() {
        let word = rest.split(' ').next().unwrap_or("");
        let tag_like = word.ends_with(':') || word.contains('[');
        if !word.is_empty() && !tag_like && word.bytes().all(is_hostname_byte) {
            hostname = Some(word.to_owned());
            rest = rest[word.len()..].strip_prefix(' ').unwrap_or("");
        }
    }
    let (app_name, procid, message) = tag(rest);
    Message {
        facility,
        severity,
        timestamp_us,
        hostname,
        app_name,
        procid,
        msgid: None,
        structured_data: BTreeMap::new(),
        message: message.to_owned(),
        format: Format::Rfc3164,
    }
}

fn is_hostname_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':')
}

/// `TAG[PID]: MSG` or `TAG: MSG`; when the first word is no tag, the
/// whole text is the message.
fn tag(text: &str) -> (Option<String>, Option<String>, &str) {
    let word_end = text.find(' ').unwrap_or(text.len());
    let word = &text[..word_end];
    let Some(tag) = word.strip_suffix(':') else {
        return (None, None, text);
    };
    let message = text[word_end..]
        .strip_prefix(' ')
        .unwrap_or(&text[word_end..]);
    let (name, pid) = match tag.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((name, pid)) => (name, Some(pid)),
        None => (tag, None),
    };
    // A tag is a program name: no brackets left over, not empty, not long.
    let plausible = |s: &str| {
        !s.is_empty() && s.len() <= 128 && !s.contains(['[', ']']) && !s.contains(char::is_control)
    };
    if !plausible(name) || pid.is_some_and(|p| !plausible(p)) {
        return (None, None, text);
    }
    (Some(name.to_owned()), pid.map(str::to_owned), message)
}

/// `Mmm dd hh:mm:ss ` (the day space- or zero-padded) at the start of
/// `text`, in the latest year that puts it at most 31 days after now,
/// shifted by the senders' offset.
fn bsd_timestamp(text: &str, context: Context) -> Option<(i64, &str)> {
    let b = text.as_bytes();
    if b.len() < 15 || b[3] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let month = MONTHS.iter().position(|m| text.get(..3) == Some(*m))? as i64 + 1;
    let two = |i: usize, space_ok: bool| -> Option<i64> {
        let (hi, lo) = (b[i], b[i + 1]);
        let hi = match hi {
            b'0'..=b'9' => i64::from(hi - b'0'),
            b' ' if space_ok => 0,
            _ => return None,
        };
        lo.is_ascii_digit().then(|| hi * 10 + i64::from(lo - b'0'))
    };
    let (day, hour, minute, second) = (
        two(4, true)?,
        two(7, false)?,
        two(10, false)?,
        two(13, false)?,
    );
    if b[6] != b' ' || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let rest = &text[15..];
    // Some senders add milliseconds (`.123`); rsyslog takes them.
    let (micros, rest) = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            let taken = &frac[..digits.min(6)];
            let micros = format!("{taken:0<6}").parse::<i64>().ok()?;
            (micros, &frac[digits..])
        }
        None => (0, rest),
    };
    let rest = match rest.strip_prefix(' ') {
        Some(rest) => rest,
        None if rest.is_empty() => rest,
        None => return None,
    };
    let (now_year, _, _) =
        sextant_model::time::civil_from_days(context.now_us.div_euclid(86_400_000_000));
    let at = |year: i64| {
        let days = sextant_model::time::days_from_civil(year, month, day);
        ((days * 86_400 + hour * 3600 + minute * 60 + second) - context.rfc3164_offset_s)
            * 1_000_000
            + micros
    };
    // The latest year that does not put the message more than a month
    // ahead of now: logs arrive late, rarely early (only a sender's clock
    // a little fast around new year).
    let horizon = context.now_us.saturating_add(MAX_AHEAD_US);
    let best = [now_year + 1, now_year, now_year - 1]
        .into_iter()
        .map(at)
        .find(|us| *us <= horizon)?;
    Some((best, rest))
}

/// An RFC 3339 timestamp and a space at the start of `text` (rsyslog's
/// "high precision" RFC 3164 variant).
fn rfc3339_prefix(text: &str) -> Option<(i64, &str)> {
    let b = text.as_bytes();
    if b.len() < 20 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let end = text.find(' ').unwrap_or(text.len());
    let us = sextant_model::time::parse_rfc3339_micros(&text[..end])?;
    Some((us, text[end..].strip_prefix(' ').unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-15T12:00:00Z.
    const NOW: i64 = 1_773_576_000_000_000;

    fn context() -> Context {
        Context {
            now_us: NOW,
            rfc3164_offset_s: 0,
        }
    }

    fn read(text: &str) -> Message {
        parse(text.as_bytes(), context()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn rfc5424_examples_from_the_rfc() {
        // Section 6.5, example 1 (the BOM before the message is dropped).
        let m = read(
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!((m.facility, m.severity), (4, 2));
        assert_eq!(m.timestamp_us, Some(1_065_910_455_003_000));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app_name.as_deref(), Some("su"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.format, Format::Rfc5424);

        // Example 2: microseconds and a negative offset.
        let m = read(
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        );
        assert_eq!((m.facility, m.severity), (20, 5));
        assert_eq!(m.timestamp_us, Some(1_061_727_255_000_003));
        assert_eq!(m.procid.as_deref(), Some("8710"));
        assert_eq!(m.msgid, None);
        assert_eq!(m.message, "%% It's time to make the do-nuts.");

        // Examples 3 and 4: structured data, with and without a message.
        let m = read(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \u{feff}An application event log entry...",
        );
        assert_eq!(m.structured_data["exampleSDID@32473.iut"], "3");
        assert_eq!(
            m.structured_data["exampleSDID@32473.eventSource"],
            "Application"
        );
        assert_eq!(m.structured_data["exampleSDID@32473.eventID"], "1011");
        assert_eq!(m.message, "An application event log entry...");
        let m = read(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
        );
        assert_eq!(m.structured_data["examplePriority@32473.class"], "high");
        assert_eq!(m.structured_data.len(), 4);
        assert_eq!(m.message, "");
    }

    #[test]
    fn rfc5424_nil_values_escapes_and_repeats() {
        let m = read("<14>1 - - - - - -");
        assert_eq!(
            (m.timestamp_us, m.hostname, m.app_name, m.procid, m.msgid),
            (None, None, None, None, None)
        );
        assert_eq!(m.message, "");
        let m = read(
            r#"<14>1 2026-03-15T12:00:00+01:00 h a - - [x@1 q="say \"hi\"" b="a\\b" c="[x\]" d="\n" ip="1" ip="2"] m"#,
        );
        assert_eq!(m.timestamp_us, Some(NOW - 3_600_000_000));
        assert_eq!(m.structured_data["x@1.q"], "say \"hi\"");
        assert_eq!(m.structured_data["x@1.b"], "a\\b");
        assert_eq!(m.structured_data["x@1.c"], "[x]");
        assert_eq!(m.structured_data["x@1.d"], "\\n");
        assert_eq!(m.structured_data["x@1.ip"], r#"["1","2"]"#);
        assert_eq!(m.message, "m");
        // A trailing newline (UDP senders) is not part of the message.
        assert_eq!(read("<14>1 - - - - - - hello\n").message, "hello");
    }

    #[test]
    fn rfc3164_examples_from_the_rfc_and_rsyslog() {
        let m =
            read("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!((m.facility, m.severity), (4, 2));
        // October is after March: Oct 11 is last year's.
        assert_eq!(m.timestamp_us, Some(1_760_220_855_000_000));
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.app_name.as_deref(), Some("su"));
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.format, Format::Rfc3164);

        let m = read("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!");
        assert_eq!(m.hostname.as_deref(), Some("10.0.0.99"));
        assert_eq!(m.app_name, None);
        assert_eq!(m.message, "Use the BFG!");
        assert_eq!(m.timestamp_us, Some(1_770_312_738_000_000));

        let m = read("<165>Aug 24 05:34:00 mymachine myproc[10]: %% It's time");
        assert_eq!(m.app_name.as_deref(), Some("myproc"));
        assert_eq!(m.procid.as_deref(), Some("10"));
        assert_eq!(m.message, "%% It's time");

        // No hostname (what `logger --rfc3164` sends to a local socket).
        let m = read("<30>Mar 15 11:59:00 cron[7]: job done");
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name.as_deref(), Some("cron"));
        assert_eq!(m.timestamp_us, Some(NOW - 60_000_000));

        // No timestamp: no hostname either, as rsyslog reads it.
        let m = read("<13>sshd: accepted key");
        assert_eq!((m.timestamp_us, m.hostname.as_deref()), (None, None));
        assert_eq!(m.app_name.as_deref(), Some("sshd"));
        assert_eq!(read("<13>just text").message, "just text");

        // rsyslog's high-precision variant.
        let m = read("<13>2026-03-15T13:00:00.5+01:00 web nginx: GET /");
        assert_eq!(m.timestamp_us, Some(NOW + 500_000));
        assert_eq!(m.hostname.as_deref(), Some("web"));
    }

    #[test]
    fn rfc3164_years_are_inferred_and_offsets_apply() {
        // Just after new year, a message from Dec 31 is from last year...
        let new_year = Context {
            now_us: 1_767_225_605_000_000, // 2026-01-01T00:00:05Z
            rfc3164_offset_s: 0,
        };
        let m = parse(b"<13>Dec 31 23:59:59 h t: x", new_year).unwrap();
        assert_eq!(m.timestamp_us, Some(1_767_225_599_000_000));
        // ...and one a sender stamped a little ahead is from this year.
        let m = parse(b"<13>Jan  1 00:00:09 h t: x", new_year).unwrap();
        assert_eq!(m.timestamp_us, Some(1_767_225_609_000_000));
        let east = Context {
            now_us: NOW,
            rfc3164_offset_s: 2 * 3600,
        };
        let m = parse(b"<13>Mar 15 14:00:00 h t: x", east).unwrap();
        assert_eq!(m.timestamp_us, Some(NOW));
        // Nine months ago, not three months ahead.
        let december = Context {
            now_us: 1_796_385_600_000_000, // 2026-12-04T12:00:00Z
            rfc3164_offset_s: 0,
        };
        let m = parse(b"<13>Mar 15 12:00:00 h t: x", december).unwrap();
        assert_eq!(m.timestamp_us, Some(NOW));
        // Three weeks ahead is a fast clock this year.
        let m = parse(b"<13>Dec 25 12:00:00 h t: x", december).unwrap();
        assert_eq!(
            m.timestamp_us,
            Some(1_796_385_600_000_000 + 21 * 86_400_000_000)
        );
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        for (text, reason) in [
            (&b""[..], "empty message"),
            (b"hello", "does not start with <PRI>"),
            (b"<>1 - - - - - -", "bad PRI"),
            (b"<1x>hi", "bad PRI"),
            (b"<1234>hi", "bad PRI"),
            (b"<192>hi", "must be 0 to 191"),
            (b"<013>hi", "leading zeros"),
            (b"<13>2 - - - - - -", "version 2 is not supported"),
            (b"<13>1 -", "ends in its header, at the TIMESTAMP"),
            (b"<13>1 - - - - -", "ends before its STRUCTURED-DATA"),
            (b"<13>1 yesterday - - - - -", "bad TIMESTAMP"),
            (b"<13>1 - h\x01 - - - -", "HOSTNAME has the character"),
            (
                b"<13>1 - h - - 0123456789012345678901234567890123 -",
                "MSGID is 34 characters",
            ),
            (b"<13>1 - - - - - [x@1 a=\"1\"", "not closed with ]"),
            (b"<13>1 - - - - - [x@1 a=\"1]", "not closed with \""),
            (b"<13>1 - - - - - [x@1 a=1]", "expected =\""),
            (b"<13>1 - - - - - [x@1 a=\"1\"] [y@1]", ""),
            (b"<13>1 - - - - - [x@1][x@1]", "appears twice"),
            (
                b"<13>1 - - - - - [x@1]m",
                "expected a space after STRUCTURED-DATA",
            ),
            (b"<13>1 - - - - - nosd", "must be `-` or start with `[`"),
            (b"<13>1 - - - - - [] m", "expected a SD-ID"),
            (b"<13>hi \xff there", "not UTF-8 (invalid byte at offset 7)"),
        ] {
            match parse(text, context()) {
                // `[x@1 a="1"] [y@1]`: the second element is message text.
                Ok(m) if reason.is_empty() => assert_eq!(m.message, "[y@1]"),
                Ok(m) => panic!("{:?} parsed: {m:?}", String::from_utf8_lossy(text)),
                Err(err) => assert!(
                    !reason.is_empty() && err.contains(reason),
                    "{:?}: {err}",
                    String::from_utf8_lossy(text)
                ),
            }
        }
    }
}
