//! Bit-level writing and reading for the chunk encoding, and the varints used
//! by the WAL and the block index.

/// Appends bits most-significant first.
///
/// The buffer is a boxed slice with the length beside it (24 bytes, not a
/// `Vec`'s 32): a head keeps one open chunk per series.
#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    /// Room for the bytes; the first `len` are written.
    buf: Box<[u8]>,
    len: u32,
    /// Bits used in the last byte (0 = the last byte is full or there is none).
    used: u8,
}

impl BitWriter {
    /// Writes the low `count` bits of `value` (count <= 64).
    pub fn write(&mut self, value: u64, count: u8) {
        debug_assert!(count <= 64);
        let mut remaining = count;
        while remaining > 0 {
            if self.used == 0 {
                self.push_zero_byte();
            }
            let free = 8 - self.used;
            let take = free.min(remaining);
            // The next `take` bits of value, from the top of what remains.
            let shift = remaining - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            let last = &mut self.buf[self.len as usize - 1];
            *last |= chunk << (free - take);
            self.used = (self.used + take) % 8;
            remaining -= take;
        }
    }

    fn push_zero_byte(&mut self) {
        let len = self.len as usize;
        if len == self.buf.len() {
            // Small steps rather than doubling: a head keeps one open
            // chunk per series, and doubling leaves a third of it empty.
            // Sizes of 16k + 8 bytes fill an allocator's 16-byte-aligned
            // block after its 8-byte header (glibc's, and mimalloc's bins).
            let want = len + (len / 4).max(32);
            let size = (want + 8).next_multiple_of(16) - 8;
            let mut bytes = std::mem::take(&mut self.buf).into_vec();
            bytes.resize(size, 0);
            self.buf = bytes.into_boxed_slice();
        }
        self.buf[len] = 0;
        self.len = u32::try_from(len + 1).expect("a bit writer holds under 4 GiB");
    }

    /// Writes one bit.
    pub fn bit(&mut self, on: bool) {
        self.write(u64::from(on), 1);
    }

    /// The bytes written so far (the last one zero-padded).
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// Reads bits most-significant first; `None` once the input runs out.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// Reads from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Reads `count` bits (<= 64) as the low bits of the result.
    #[inline]
    pub fn read(&mut self, count: u8) -> Option<u64> {
        let count = usize::from(count);
        if count == 0 {
            return Some(0);
        }
        let end = self.pos + count;
        if end > self.bytes.len() * 8 {
            return None;
        }
        // A big-endian window of up to 8 bytes from the current byte: one
        // load where 8 bytes remain, else the rest zero-padded.
        let first = self.pos / 8;
        let offset = self.pos % 8;
        let word = self.word(first);
        let in_word = 64 - offset;
        let value = if count <= in_word {
            (word << offset) >> (64 - count)
        } else {
            // The read spans a ninth byte.
            let high = word & (u64::MAX >> offset);
            let rest = count - in_word;
            let next = u64::from(self.bytes[first + 8]);
            (high << rest) | (next >> (8 - rest))
        };
        self.pos = end;
        Some(value)
    }

    /// A big-endian window of 8 bytes from byte `first`: one load where 8
    /// bytes remain, else the rest zero-padded.
    #[inline]
    fn word(&self, first: usize) -> u64 {
        match self.bytes.get(first..first + 8) {
            Some(eight) => u64::from_be_bytes(eight.try_into().expect("8 bytes")),
            None => {
                let mut window = [0u8; 8];
                let rest = self.bytes.get(first..).unwrap_or_default();
                window[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(window)
            }
        }
    }

    /// Reads a unary count: ones up to the next zero (which is consumed), or
    /// `limit` ones (`limit` <= 56) and no zero.
    #[inline]
    pub fn ones(&mut self, limit: u8) -> Option<u8> {
        debug_assert!(limit <= 56);
        let window = self.word(self.pos / 8) << (self.pos % 8);
        // At least 57 real bits in the window: the count is not cut short by it.
        let ones = ((!window).leading_zeros() as u8).min(limit);
        let used = usize::from(ones) + usize::from(ones < limit);
        if self.pos + used > self.bytes.len() * 8 {
            return None;
        }
        self.pos += used;
        Some(ones)
    }

    /// The next bits, most significant first, without consuming them: at
    /// least 57 of them are the stream's where it has that many left, and
    /// bits past its end read as zeros. With [`BitReader::skip`] and one
    /// check of [`BitReader::overran`] at the end, a hot loop reads a
    /// whole code from one load without a check per field.
    #[inline]
    pub fn peek(&self) -> u64 {
        let first = self.pos / 8;
        let offset = (self.pos % 8) as u32;
        match self.bytes.get(first..first + 8) {
            Some(eight) => u64::from_be_bytes(eight.try_into().expect("8 bytes")) << offset,
            None => self.word(first) << offset,
        }
    }

    /// Consumes `count` bits seen through [`BitReader::peek`]; going past
    /// the end is noticed by [`BitReader::overran`], not here.
    #[inline]
    pub fn skip(&mut self, count: u32) {
        self.pos += count as usize;
    }

    /// Whether more bits were consumed than the stream holds.
    pub fn overran(&self) -> bool {
        self.pos > self.bytes.len() * 8
    }

    /// Reads one bit.
    #[inline]
    pub fn bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit == 1)
    }
}

/// Appends an unsigned LEB128 varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a zigzag-encoded signed varint.
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Reads little pieces from a byte slice; every read fails cleanly at the end.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    /// Reads from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// An unsigned varint.
    pub fn uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.bytes = &self.bytes[i + 1..];
                return Some(value);
            }
        }
        None
    }

    /// A zigzag signed varint.
    pub fn varint(&mut self) -> Option<i64> {
        let raw = self.uvarint()?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// An unsigned varint that must fit in usize.
    pub fn len(&mut self) -> Option<usize> {
        usize::try_from(self.uvarint()?).ok()
    }

    /// `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    /// A little-endian u64.
    pub fn u64_le(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Option<&'a str> {
        let len = self.len()?;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// Appends a length-prefixed string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 1u8..=64), 0..200)) {
            let mut writer = BitWriter::default();
            for (value, count) in &items {
                writer.write(*value, *count);
            }
            let mut reader = BitReader::new(writer.bytes());
            for (value, count) in &items {
                let mask = if *count == 64 { u64::MAX } else { (1u64 << count) - 1 };
                prop_assert_eq!(reader.read(*count), Some(value & mask));
            }
        }

        #[test]
        fn varints_round_trip(values in proptest::collection::vec(any::<i64>(), 0..100)) {
            let mut out = Vec::new();
            for v in &values {
                put_varint(&mut out, *v);
                put_uvarint(&mut out, *v as u64);
            }
            let mut reader = ByteReader::new(&out);
            for v in &values {
                prop_assert_eq!(reader.varint(), Some(*v));
                prop_assert_eq!(reader.uvarint(), Some(*v as u64));
            }
            prop_assert_eq!(reader.remaining(), 0);
        }
    }

    #[test]
    fn unary_counts_stop_at_a_zero_or_the_limit() {
        let mut writer = BitWriter::default();
        for n in [0u8, 3, 9] {
            writer.write(((1u64 << n) - 1) << 1, n + 1);
        }
        // At the limit no zero follows.
        writer.write((1u64 << 24) - 1, 24);
        writer.write(((1u64 << 30) - 1) << 1, 31);
        writer.write(0b101, 3);
        let mut reader = BitReader::new(writer.bytes());
        for n in [0u8, 3, 9, 24, 24] {
            assert_eq!(reader.ones(24), Some(n));
        }
        // The limit took 24 of the 30 ones; six more and their zero remain.
        assert_eq!(reader.ones(24), Some(6));
        assert_eq!(reader.read(3), Some(0b101));
        // Past the end: no terminating zero to read.
        let mut reader = BitReader::new(&[0xff]);
        assert_eq!(reader.ones(24), None);
        assert_eq!(BitReader::new(&[0xfe]).ones(24), Some(7));
    }

    #[test]
    fn reading_past_the_end_is_none() {
        let mut reader = BitReader::new(&[0xff]);
        assert_eq!(reader.read(8), Some(0xff));
        assert_eq!(reader.read(1), None);
        assert_eq!(ByteReader::new(&[0x80]).uvarint(), None);
        assert_eq!(ByteReader::new(&[3, b'a']).str(), None);
    }
}
