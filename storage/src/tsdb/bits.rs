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
    #[inline]
    pub fn write(&mut self, value: u64, count: u8) {
        debug_assert!(count <= 64);
        if count == 0 {
            return;
        }
        // The byte the bits start in: the last one if it has room.
        let used = u32::from(self.used);
        let start = self.len as usize - usize::from(used != 0);
        // With 16 bytes of room from there, the bits go in one store: the
        // partial byte's bits on top, then the value's, zeros below (past
        // the end, where the next write starts).
        if let Some(room) = self.buf.get_mut(start..start + 16) {
            let count = u32::from(count);
            let value = u128::from(value & (u64::MAX >> (64 - count)));
            // The partial byte's written bits (none when `used` is 0).
            let top = room[0] & !(0xFF >> used);
            let word = (u128::from(top) << 120) | (value << (128 - used - count));
            room.copy_from_slice(&word.to_be_bytes());
            let total = used + count;
            self.len = u32::try_from(start + total.div_ceil(8) as usize)
                .expect("a bit writer holds under 4 GiB");
            self.used = (total % 8) as u8;
            return;
        }
        self.write_bytewise(value, count);
    }

    /// [`BitWriter::write`] a byte at a time, growing the buffer as it goes.
    #[cold]
    fn write_bytewise(&mut self, value: u64, count: u8) {
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
        word_at(self.bytes, first)
    }

    /// The same position read through a [`BitBuffer`], for a decoding loop.
    #[inline]
    pub fn buffered(&self) -> BitBuffer<'a> {
        BitBuffer::at(self.bytes, self.pos)
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

/// A big-endian window of 8 bytes of `bytes` from byte `first`: one load
/// where 8 bytes remain, else the rest zero-padded (all zeros past the end).
#[inline]
fn word_at(bytes: &[u8], first: usize) -> u64 {
    match bytes.get(first..first.saturating_add(8)) {
        Some(eight) => u64::from_be_bytes(eight.try_into().expect("8 bytes")),
        None => last_word(bytes, first),
    }
}

/// [`word_at`] within 8 bytes of the end (or past it), kept out of the
/// loops that call it.
#[cold]
#[inline(never)]
fn last_word(bytes: &[u8], first: usize) -> u64 {
    let Some(from_end) = bytes.len().checked_sub(first).filter(|&n| n > 0) else {
        return 0;
    };
    match bytes.len().checked_sub(8) {
        // The stream's last 8 bytes, moved up past the ones before `first`.
        Some(last) => {
            let word = u64::from_be_bytes(bytes[last..].try_into().expect("8 bytes"));
            word << (8 * (8 - from_end))
        }
        None => bytes[first..]
            .iter()
            .enumerate()
            .fold(0, |word, (i, &b)| word | u64::from(b) << (56 - 8 * i)),
    }
}

/// Reads bits most-significant first out of a register that is topped up
/// after every code, for a loop decoding many short codes.
///
/// A [`BitReader`] loads each code's bits from its position, so the load
/// waits on the code before it: the position, the load and the code's
/// length form one chain from sample to sample. Here the next code's bits
/// are already in the register; the top-up that follows a code loads from
/// a byte fixed by the top-up before, so the load runs beside the decoding
/// of the code instead of after it.
///
/// Past the end of the stream the bits read as zeros: whether more were
/// consumed than the stream holds is asked once at the end ([`BitBuffer::reader`], then
/// [`BitReader::overran`]).
#[derive(Debug, Clone)]
pub struct BitBuffer<'a> {
    bytes: &'a [u8],
    /// The first byte none of whose bits are counted in `avail`.
    next: usize,
    /// The upcoming bits, most significant first. The top `avail` are the
    /// stream's; the bits below them are zeros or the stream's next bits,
    /// so that topping up can OR the next bytes in.
    buf: u64,
    /// How many of `buf`'s top bits are counted: 56 to 63 after a top-up,
    /// never 64 (shifting by it would lose the register).
    avail: u32,
}

impl<'a> BitBuffer<'a> {
    /// Reads `bytes` from bit `pos`.
    #[inline]
    pub fn at(bytes: &'a [u8], pos: usize) -> Self {
        let mut buffer = Self {
            bytes,
            next: pos / 8,
            buf: 0,
            avail: 0,
        };
        buffer.refill();
        buffer.consume((pos % 8) as u32);
        buffer.refill();
        buffer
    }

    /// The upcoming bits, most significant first; the top
    /// [`BitBuffer::available`] of them are the stream's (zeros past its end).
    #[inline]
    pub fn bits(&self) -> u64 {
        self.buf
    }

    /// How many of [`BitBuffer::bits`] may be consumed: at least 56 after
    /// [`BitBuffer::refill`].
    #[inline]
    pub fn available(&self) -> u32 {
        self.avail
    }

    /// Consumes `count` (at most [`BitBuffer::available`]) bits.
    #[inline]
    pub fn consume(&mut self, count: u32) {
        debug_assert!(count <= self.avail);
        self.buf <<= count;
        self.avail -= count;
    }

    /// Tops the register up to 56 or more counted bits with the whole
    /// bytes that fit below the counted ones.
    #[inline]
    pub fn refill(&mut self) {
        // `avail` < 64: the shift keeps some of the word, and the bytes
        // it keeps whole are counted (`avail | 56` is `avail` plus them).
        self.buf |= word_at(self.bytes, self.next) >> self.avail;
        self.next += ((63 - self.avail) / 8) as usize;
        self.avail |= 56;
    }

    /// A reader at the same position: for a code too long for the
    /// register, and for the check of [`BitReader::overran`].
    #[inline]
    pub fn reader(&self) -> BitReader<'a> {
        BitReader {
            bytes: self.bytes,
            pos: self.next * 8 - self.avail as usize,
        }
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
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u8..=64), 0..200)) {
            // Whole stores while there is room, bytes one by one near the
            // end of the buffer: the same bits either way.
            let mut writer = BitWriter::default();
            for (value, count) in &items {
                writer.write(*value, *count);
            }
            let total: usize = items.iter().map(|(_, c)| usize::from(*c)).sum();
            prop_assert_eq!(writer.len(), total.div_ceil(8));
            let mut reader = BitReader::new(writer.bytes());
            for (value, count) in &items {
                let mask = if *count == 64 { u64::MAX } else { (1u64 << count) - 1 };
                if *count > 0 {
                    prop_assert_eq!(reader.read(*count), Some(value & mask));
                }
            }
            // The last byte is padded with zeros.
            let pad = (8 - total % 8) % 8;
            if pad > 0 {
                prop_assert_eq!(reader.read(pad as u8), Some(0));
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

    proptest! {
        #[test]
        fn a_buffer_reads_what_a_reader_reads(
            items in proptest::collection::vec((any::<u64>(), 0u8..=56), 0..100),
            start in 0usize..16,
        ) {
            let mut writer = BitWriter::default();
            writer.write(0, start as u8);
            for (value, count) in &items {
                writer.write(*value, *count);
            }
            let mut buffer = BitReader::new(writer.bytes()).buffered();
            buffer.consume(start as u32);
            buffer.refill();
            let mut reader = BitReader::new(writer.bytes());
            prop_assert_eq!(reader.read(start as u8), Some(0));
            for (_, count) in &items {
                let count = u32::from(*count);
                prop_assert!(buffer.available() >= 56);
                let got = if count == 0 { 0 } else { buffer.bits() >> (64 - count) };
                prop_assert_eq!(Some(got), reader.read(count as u8));
                buffer.consume(count);
                buffer.refill();
                prop_assert_eq!(buffer.reader().pos, reader.pos);
            }
            // Past the end: zeros, and the overrun shows.
            prop_assert!(!buffer.reader().overran());
            let tail = (writer.bytes().len() * 8 - reader.pos) as u32;
            buffer.consume(tail);
            buffer.refill();
            prop_assert_eq!(buffer.bits(), 0);
            buffer.consume(56);
            prop_assert!(buffer.reader().overran());
        }
    }

    #[test]
    fn words_near_the_end_are_zero_padded() {
        for len in 0..12usize {
            let bytes: Vec<u8> = (1..=len as u8).collect();
            for first in 0..len + 10 {
                let mut expected = [0u8; 8];
                for (i, e) in expected.iter_mut().enumerate() {
                    *e = bytes.get(first + i).copied().unwrap_or(0);
                }
                assert_eq!(word_at(&bytes, first), u64::from_be_bytes(expected));
            }
        }
        assert_eq!(word_at(&[1, 2, 3], usize::MAX), 0);
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
