//! Syslog over TCP: cutting the byte stream into messages. Pure: bytes in,
//! frames out, memory bounded by the longest message allowed.
//!
//! Each message's framing is detected on its own, as rsyslog's imtcp does:
//! a digit first is RFC 6587 octet counting (`LEN SP MSG`, what RFC 5425
//! mandates over TLS); `<` first is non-transparent framing, the message
//! ending at LF (or NUL, which some devices send; a CR before it is
//! dropped). Blank LF, CR or NUL bytes between messages are skipped.
//!
//! A frame longer than `max` (`limits.max_log_event`) is skipped whole and
//! reported as [`Frame::TooLong`]; the connection stays in step, so the
//! messages after it are read. A frame that cannot be delimited at all (a
//! count that is no count, a message starting with neither a digit nor `<`)
//! is a [`FrameError`]: the stream cannot be trusted past it.

/// The longest octet count accepted, in digits (up to 9,999,999,999 bytes:
/// anything longer is no syslog sender's count).
const MAX_COUNT_DIGITS: usize = 10;

/// What the framer hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One message, without its framing.
    Message(&'a [u8]),
    /// A message longer than the limit was skipped; its length in bytes
    /// (at least this much, for a newline-framed one).
    TooLong(u64),
}

/// Why the stream cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages.
    Start,
    /// Reading an octet count: its value and digits so far.
    Count(u64, usize),
    /// Reading a counted message: bytes still to come.
    Counted(u64),
    /// Skipping a counted message over the limit: its length, bytes still to skip.
    SkipCounted(u64, u64),
    /// Reading a newline-framed message.
    Line,
    /// Skipping a newline-framed message over the limit: bytes skipped so far.
    SkipLine(u64),
}

/// Cuts a TCP stream into syslog messages.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    state: State,
    pending: Vec<u8>,
}

impl Framer {
    /// A framer taking messages of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            state: State::Start,
            pending: Vec::new(),
        }
    }

    /// Feeds the next bytes read, handing each complete frame to `emit`.
    /// Stops at the first framing error, or the first error `emit` returns.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        emit: &mut impl FnMut(Frame<'_>) -> Result<(), String>,
    ) -> Result<(), FrameError> {
        while !data.is_empty() {
            match self.state {
                State::Start => {
                    let skip = data
                        .iter()
                        .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0'))
                        .count();
                    data = &data[skip..];
                    match data.first() {
                        None => {}
                        Some(b'1'..=b'9') => self.state = State::Count(0, 0),
                        Some(b'<') => self.state = State::Line,
                        Some(b'0') => {
                            return Err(FrameError(
                                "bad octet count: a count cannot start with 0".to_owned(),
                            ));
                        }
                        Some(&other) => {
                            return Err(FrameError(format!(
                                "a syslog frame starts with an octet count or <PRI>, found byte {:?}",
                                char::from(other)
                            )));
                        }
                    }
                }
                State::Count(value, digits) => {
                    let b = data[0];
                    data = &data[1..];
                    if b.is_ascii_digit() {
                        if digits == MAX_COUNT_DIGITS {
                            return Err(FrameError(format!(
                                "bad octet count: more than {MAX_COUNT_DIGITS} digits"
                            )));
                        }
                        self.state = State::Count(value * 10 + u64::from(b - b'0'), digits + 1);
                    } else if b == b' ' {
                        self.state = if value > self.max as u64 {
                            State::SkipCounted(value, value)
                        } else {
                            self.pending.clear();
                            State::Counted(value)
                        };
                    } else {
                        return Err(FrameError(format!(
                            "bad octet count: expected a digit or a space after {value}, found byte {:?}",
                            char::from(b)
                        )));
                    }
                }
                State::Counted(remaining) => {
                    let take = data
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    self.pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let remaining = remaining - take as u64;
                    self.state = State::Counted(remaining);
                    if remaining == 0 {
                        self.state = State::Start;
                        let result = emit(Frame::Message(&self.pending));
                        self.pending.clear();
                        result.map_err(FrameError)?;
                    }
                }
                State::SkipCounted(len, remaining) => {
                    let take = data
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    data = &data[take..];
                    let remaining = remaining - take as u64;
                    self.state = State::SkipCounted(len, remaining);
                    if remaining == 0 {
                        self.state = State::Start;
                        emit(Frame::TooLong(len)).map_err(FrameError)?;
                    }
                }
                State::Line => {
                    let end = data.iter().position(|b| matches!(b, b'\n' | b'\0'));
                    let part = &data[..end.unwrap_or(data.len())];
                    if self.pending.len() + part.len() > self.max {
                        // `part` is counted as the skipping reads it.
                        let skipped = self.pending.len() as u64;
                        self.pending.clear();
                        self.state = State::SkipLine(skipped);
                        continue;
                    }
                    self.pending.extend_from_slice(part);
                    match end {
                        Some(end) => {
                            data = &data[end + 1..];
                            self.state = State::Start;
                            let line = self.pending.strip_suffix(b"\r").unwrap_or(&self.pending);
                            let result = emit(Frame::Message(line));
                            self.pending.clear();
                            result.map_err(FrameError)?;
                        }
                        None => data = &[],
                    }
                }
                State::SkipLine(skipped) => {
                    match data.iter().position(|b| matches!(b, b'\n' | b'\0')) {
                        Some(end) => {
                            data = &data[end + 1..];
                            self.state = State::Start;
                            emit(Frame::TooLong(skipped + end as u64)).map_err(FrameError)?;
                        }
                        None => {
                            self.state = State::SkipLine(skipped + data.len() as u64);
                            data = &[];
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: a newline-framed message without its newline is
    /// still a message; a counted one cut short is an error.
    pub fn finish(
        &mut self,
        emit: &mut impl FnMut(Frame<'_>) -> Result<(), String>,
    ) -> Result<(), FrameError> {
        let state = std::mem::replace(&mut self.state, State::Start);
        match state {
            State::Start => Ok(()),
            State::Line => {
                let line = self.pending.strip_suffix(b"\r").unwrap_or(&self.pending);
                let result = emit(Frame::Message(line));
                self.pending.clear();
                result.map_err(FrameError)
            }
            State::SkipLine(skipped) => emit(Frame::TooLong(skipped)).map_err(FrameError),
            State::Count(value, _) => Err(FrameError(format!(
                "the connection closed inside the octet count {value}"
            ))),
            State::Counted(remaining) => Err(FrameError(format!(
                "the connection closed {remaining} bytes short of the counted message's end"
            ))),
            State::SkipCounted(len, remaining) => Err(FrameError(format!(
                "the connection closed {remaining} bytes short of the end of a {len}-byte message"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one; the frames as text (`TooLong(n)` as `!n`)
    /// and the error, if any.
    fn frames(max: usize, chunks: &[&[u8]]) -> (Vec<String>, Option<String>) {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        let mut emit = |frame: Frame<'_>| {
            out.push(match frame {
                Frame::Message(m) => String::from_utf8_lossy(m).into_owned(),
                Frame::TooLong(n) => format!("!{n}"),
            });
            Ok(())
        };
        for chunk in chunks {
            if let Err(err) = framer.feed(chunk, &mut emit) {
                return (out, Some(err.0));
            }
        }
        let err = framer.finish(&mut emit).err().map(|e| e.0);
        (out, err)
    }

    #[test]
    fn octet_counted_and_newline_frames_mix_and_split_anywhere() {
        let stream = b"11 <13>1 - - x\n<14>two\r\n\n\x0011 <13>a\nb\n  c<15>last";
        let expected = ["<13>1 - - x", "<14>two", "<13>a\nb\n  c", "<15>last"];
        // Whole, then cut at every byte.
        assert_eq!(
            frames(100, &[stream]),
            (expected.map(String::from).to_vec(), None)
        );
        for cut in 1..stream.len() {
            let (head, tail) = stream.split_at(cut);
            assert_eq!(
                frames(100, &[head, tail]),
                (expected.map(String::from).to_vec(), None),
                "cut at {cut}"
            );
        }
        // NUL-terminated, as some devices send.
        assert_eq!(frames(100, &[b"<13>a\0<13>b\0"]).0, ["<13>a", "<13>b"]);
    }

    #[test]
    fn over_long_frames_are_skipped_and_the_stream_stays_in_step() {
        let (out, err) = frames(8, &[b"9 <13>abcde<13>ok\n<13>toolong!\n", b"3 <1>"]);
        assert_eq!(out, ["!9", "<13>ok", "!12", "<1>"]);
        assert_eq!(err, None);
        // A line over the limit is skipped across reads.
        let (out, _) = frames(8, &[b"<13>0123", b"45678", b"9\n<1>x\n"]);
        assert_eq!(out, ["!14", "<1>x"]);
    }

    #[test]
    fn broken_frames_say_why() {
        for (stream, reason) in [
            (
                &b"hello\n"[..],
                "starts with an octet count or <PRI>, found byte 'h'",
            ),
            (b"05 <13>x", "cannot start with 0"),
            (b"12345678901 <13>", "more than 10 digits"),
            (b"12x", "expected a digit or a space after 12"),
            (b"12", "closed inside the octet count 12"),
            (b"20 <13>short", "closed 11 bytes short"),
            (
                b"99999999 <13>",
                "bytes short of the end of a 99999999-byte message",
            ),
        ] {
            let (_, err) = frames(1000, &[stream]);
            let err = err.unwrap_or_else(|| panic!("{stream:?} framed"));
            assert!(err.contains(reason), "{stream:?}: {err}");
        }
        // The handler's error stops the framer too.
        let mut framer = Framer::new(100);
        let err = framer
            .feed(b"<13>a\n<13>b\n", &mut |_| Err("bad message".to_owned()))
            .unwrap_err();
        assert_eq!(err.0, "bad message");
    }
}
