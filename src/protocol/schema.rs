//! Kafka's versioned-struct encoding, as its message generator writes the
//! records of the coordinators' internal topics (`__consumer_offsets`,
//! `__transaction_state`): every key and value starts with its int16
//! schema version; classic versions carry int16-length strings and
//! int32-length arrays and bytes, flexible ones compact lengths (N+1 as an
//! unsigned varint, 0 for null) and tagged fields. What each record holds is
//! `group::records` and `txn::records`; this is the framing they share.
//!
//! Invariant: reading never panics and never allocates more than the input
//! could hold: every length is checked against what is left.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// Kafka's non-flexible strings carry an int16 length.
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    Truncated,
    NegativeLength,
    NotUtf8,
    UnknownKeyVersion(i16),
    UnknownValueVersion(i16),
    /// An int8 enumeration (`what`) with no such value.
    UnknownEnumValue {
        what: &'static str,
        value: i8,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated => write!(f, "record ends early"),
            RecordError::NegativeLength => write!(f, "negative length for a non-null field"),
            RecordError::NotUtf8 => write!(f, "string is not UTF-8"),
            RecordError::UnknownKeyVersion(version) => write!(f, "unknown key version {version}"),
            RecordError::UnknownValueVersion(version) => {
                write!(f, "unknown value version {version}")
            }
            RecordError::UnknownEnumValue { what, value } => write!(f, "unknown {what} {value}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Cuts a string to what an int16 length can carry, at a character
/// boundary. Strings on the internal topics come from Kafka requests whose
/// handlers bound them well below the limit; the cut only keeps a hostile
/// one from corrupting the record's framing.
fn bounded(text: &str) -> &str {
    if text.len() <= STRING_BYTES_MAX {
        return text;
    }
    let mut end = STRING_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A classic string: int16 length, then the bytes.
pub fn put_string(buf: &mut BytesMut, text: &str) {
    let text = bounded(text);
    buf.put_i16(text.len() as i16);
    buf.put_slice(text.as_bytes());
}

/// A classic nullable string: length -1 for null.
pub fn put_nullable_string(buf: &mut BytesMut, text: Option<&str>) {
    match text {
        Some(text) => put_string(buf, text),
        None => buf.put_i16(-1),
    }
}

/// Flexible (compact) encoding: an unsigned varint.
pub fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Flexible encoding: a length as N+1, 0 for null.
pub fn put_compact_length(buf: &mut BytesMut, length: Option<usize>) {
    let length = length.map_or(0, |length| u32::try_from(length + 1).unwrap_or(u32::MAX));
    put_unsigned_varint(buf, length);
}

pub fn put_compact_string(buf: &mut BytesMut, text: Option<&str>) {
    put_compact_length(buf, text.map(str::len));
    if let Some(text) = text {
        buf.put_slice(text.as_bytes());
    }
}

/// Flexible encoding: an empty tagged-field section.
pub fn put_no_tagged_fields(buf: &mut BytesMut) {
    buf.put_u8(0);
}

/// Reads Kafka's primitive types, classic or flexible (compact) encoding.
pub struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], flexible: bool) -> Reader<'a> {
        Reader { buf, flexible }
    }

    /// A reader past a value's int16 version, which must be from 0 to
    /// `version_max`, set to that version's encoding: flexible from
    /// `first_flexible_version`.
    pub fn value(
        value: &'a [u8],
        first_flexible_version: i16,
        version_max: i16,
    ) -> Result<(Reader<'a>, i16), RecordError> {
        let mut reader = Reader::new(value, false);
        let version = reader.i16()?;
        if !(0..=version_max).contains(&version) {
            return Err(RecordError::UnknownValueVersion(version));
        }
        reader.flexible = version >= first_flexible_version;
        Ok((reader, version))
    }

    /// The bytes not read yet: a whole record read leaves none.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < len {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub fn uuid(&mut self) -> Result<uuid::Uuid, RecordError> {
        Ok(uuid::Uuid::from_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn unsigned_varint(&mut self) -> Result<u32, RecordError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let [byte] = self.array()?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Truncated)
    }

    /// A length, or None for null (-1 classic, 0 compact).
    fn length(&mut self, classic_i32: bool) -> Result<Option<usize>, RecordError> {
        if self.flexible {
            return Ok((self.unsigned_varint()? as usize).checked_sub(1));
        }
        let length = if classic_i32 {
            self.i32()?
        } else {
            i32::from(self.i16()?)
        };
        match length {
            -1 => Ok(None),
            length if length < 0 => Err(RecordError::NegativeLength),
            length => Ok(Some(length as usize)),
        }
    }

    pub fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let Some(length) = self.length(false)? else {
            return Ok(None);
        };
        let bytes = self.take(length)?;
        std::str::from_utf8(bytes)
            .map(|text| Some(text.to_string()))
            .map_err(|_| RecordError::NotUtf8)
    }

    pub fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?.ok_or(RecordError::NegativeLength)
    }

    pub fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let length = self.length(true)?.ok_or(RecordError::NegativeLength)?;
        Ok(Bytes::copy_from_slice(self.take(length)?))
    }

    /// An array's length; None for a null array. Each element takes at
    /// least one byte, so a length beyond what is left is truncation, found
    /// before anything is allocated for it.
    pub fn nullable_array_len(&mut self) -> Result<Option<usize>, RecordError> {
        let length = self.length(true)?;
        if length.is_some_and(|length| length > self.buf.len()) {
            return Err(RecordError::Truncated);
        }
        Ok(length)
    }

    pub fn array_len(&mut self) -> Result<usize, RecordError> {
        self.nullable_array_len()?
            .ok_or(RecordError::NegativeLength)
    }

    /// Skips a flexible structure's tagged fields; nothing in classic versions.
    pub fn tagged_fields(&mut self) -> Result<(), RecordError> {
        self.read_tagged_fields(|_, _| Ok(()))
    }

    /// Hands each of a flexible structure's tagged fields to `read`, with
    /// a reader of its bytes; nothing in classic versions.
    pub fn read_tagged_fields(
        &mut self,
        mut read: impl FnMut(u32, Reader<'a>) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        for _ in 0..self.unsigned_varint()? {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()? as usize;
            read(tag, Reader::new(self.take(size)?, true))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_in_both_encodings() {
        let mut buf = BytesMut::new();
        put_string(&mut buf, "ab");
        put_nullable_string(&mut buf, None);
        put_compact_string(&mut buf, Some("cd"));
        put_compact_string(&mut buf, None);
        let (classic, compact) = buf.split_at(6);
        assert_eq!(classic, &[0, 2, b'a', b'b', 0xff, 0xff]);
        let mut reader = Reader::new(classic, false);
        assert_eq!(reader.string().unwrap(), "ab");
        assert_eq!(reader.nullable_string().unwrap(), None);
        let mut reader = Reader::new(compact, true);
        assert_eq!(reader.string().unwrap(), "cd");
        assert_eq!(reader.string(), Err(RecordError::NegativeLength));
    }

    #[test]
    fn a_string_longer_than_an_int16_length_is_cut_at_a_character() {
        let mut buf = BytesMut::new();
        let text = "é".repeat(STRING_BYTES_MAX);
        put_string(&mut buf, &text);
        let read = Reader::new(&buf, false).string().unwrap();
        assert_eq!(read.len(), STRING_BYTES_MAX - 1);
        assert!(text.starts_with(&read));
    }

    #[test]
    fn an_array_longer_than_the_input_is_truncation() {
        let mut reader = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 1], false);
        assert_eq!(reader.array_len(), Err(RecordError::Truncated));
        let mut reader = Reader::new(&[0xff, 0xff, 0xff, 0xff], false);
        assert_eq!(reader.nullable_array_len(), Ok(None));
    }

    #[test]
    fn versions_outside_the_range_are_unknown() {
        assert_eq!(
            Reader::value(&[0, 2], 1, 1).err(),
            Some(RecordError::UnknownValueVersion(2))
        );
        assert_eq!(
            Reader::value(&[0xff, 0xff], 1, 1).err(),
            Some(RecordError::UnknownValueVersion(-1))
        );
        let (reader, version) = Reader::value(&[0, 1], 1, 1).unwrap();
        assert!(reader.flexible && version == 1);
    }
}
