//! Kafka request/response framing for the blocking client: a 4-byte
//! big-endian size, then a header, then the message body.
//!
//! Invariant: this module turns messages into bytes and bytes into messages;
//! it never opens a socket. Reads refuse a frame whose declared size exceeds
//! the caller's limit before allocating anything for it.

use std::io::{Read, Write};

use anyhow::{bail, ensure, Context};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// Size of the length prefix in front of every request and response.
pub const FRAME_SIZE_PREFIX_BYTES: usize = 4;

/// Encodes `req` at `version` with its request header, prefixed by the frame
/// size, ready to be written to the socket.
pub fn encode_request<Req: Request>(
    req: &Req,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> anyhow::Result<BytesMut> {
    let api_key = api_key_of::<Req>()?;
    let header = RequestHeader::default()
        .with_request_api_key(Req::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let header_version = api_key.request_header_version(version);

    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; FRAME_SIZE_PREFIX_BYTES]);
    header
        .encode(&mut buf, header_version)
        .with_context(|| format!("encoding {api_key:?} v{version} request header"))?;
    req.encode(&mut buf, version)
        .with_context(|| format!("encoding {api_key:?} v{version} request"))?;

    let body_size = buf.len() - FRAME_SIZE_PREFIX_BYTES;
    let body_size = i32::try_from(body_size).context("request frame larger than i32::MAX")?;
    buf[..FRAME_SIZE_PREFIX_BYTES].copy_from_slice(&body_size.to_be_bytes());
    Ok(buf)
}

/// Writes one already-framed request.
pub fn write_frame(writer: &mut impl Write, frame: &[u8]) -> anyhow::Result<()> {
    writer.write_all(frame).context("writing request")?;
    writer.flush().context("flushing request")
}

/// Reads one response frame (without its size prefix), refusing frames larger
/// than `frame_size_max_bytes`.
pub fn read_frame(reader: &mut impl Read, frame_size_max_bytes: usize) -> anyhow::Result<Bytes> {
    let mut prefix = [0u8; FRAME_SIZE_PREFIX_BYTES];
    reader
        .read_exact(&mut prefix)
        .context("reading response size")?;
    let size = i32::from_be_bytes(prefix);
    ensure!(size >= 0, "negative response frame size {size}");
    let size = size as usize;
    ensure!(
        size <= frame_size_max_bytes,
        "response frame of {size} bytes exceeds the {frame_size_max_bytes}-byte limit"
    );
    let mut frame = vec![0u8; size];
    reader
        .read_exact(&mut frame)
        .context("reading response body")?;
    Ok(Bytes::from(frame))
}

/// Strips the response header from `frame`, checking that it answers
/// `correlation_id`, and returns the body.
pub fn split_response<Req: Request>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> anyhow::Result<Bytes> {
    let api_key = api_key_of::<Req>()?;
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version)
        .with_context(|| format!("decoding {api_key:?} v{version} response header"))?;
    if header.correlation_id != correlation_id {
        bail!(
            "correlation id mismatch: sent {correlation_id}, received {}",
            header.correlation_id
        );
    }
    Ok(frame)
}

/// Decodes a response body and checks that nothing is left over, which would
/// mean the two sides disagree on the version.
pub fn decode_response<Req: Request>(
    mut body: Bytes,
    version: i16,
) -> anyhow::Result<Req::Response> {
    let api_key = api_key_of::<Req>()?;
    let response = Req::Response::decode(&mut body, version)
        .with_context(|| format!("decoding {api_key:?} v{version} response"))?;
    ensure!(
        !body.has_remaining(),
        "{} trailing bytes after {api_key:?} v{version} response",
        body.remaining()
    );
    Ok(response)
}

/// The `ApiKey` of a request type.
pub fn api_key_of<Req: Request>() -> anyhow::Result<ApiKey> {
    ApiKey::try_from(Req::KEY).map_err(|()| anyhow::anyhow!("unknown api key {}", Req::KEY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use std::io::Cursor;

    const TEST_FRAME_MAX_BYTES: usize = 1 << 20;

    /// Builds what a broker would send back: size, header, body.
    fn response_frame(response: &MetadataResponse, version: i16, correlation_id: i32) -> Vec<u8> {
        let header_version = ApiKey::Metadata.response_header_version(version);
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, header_version)
            .unwrap();
        response.encode(&mut buf, version).unwrap();
        let mut out = (buf.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&buf);
        out
    }

    #[test]
    fn request_frame_has_size_prefix_and_decodable_header() {
        for version in [0, 9, 12] {
            let frame = encode_request(&MetadataRequest::default(), version, 42, "shoal").unwrap();
            let declared = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
            assert_eq!(declared, frame.len() - 4);

            let mut body = frame.freeze().slice(4..);
            let header_version = ApiKey::Metadata.request_header_version(version);
            let header = RequestHeader::decode(&mut body, header_version).unwrap();
            assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 42);
            assert_eq!(header.client_id.as_deref(), Some("shoal"));
            MetadataRequest::decode(&mut body, version).unwrap();
            assert!(!body.has_remaining());
        }
    }

    #[test]
    fn response_round_trips_through_read_split_decode() {
        for version in [1, 9, 12] {
            let response = MetadataResponse::default().with_controller_id(7.into());
            let wire = response_frame(&response, version, 5);
            let frame = read_frame(&mut Cursor::new(wire), TEST_FRAME_MAX_BYTES).unwrap();
            let body = split_response::<MetadataRequest>(frame, version, 5).unwrap();
            let decoded = decode_response::<MetadataRequest>(body, version).unwrap();
            assert_eq!(decoded.controller_id.0, 7);
        }
    }

    #[test]
    fn correlation_mismatch_is_refused() {
        let wire = response_frame(&MetadataResponse::default(), 9, 5);
        let frame = read_frame(&mut Cursor::new(wire), TEST_FRAME_MAX_BYTES).unwrap();
        let err = split_response::<MetadataRequest>(frame, 9, 6).unwrap_err();
        assert!(err.to_string().contains("correlation id mismatch"), "{err}");
    }

    #[test]
    fn oversized_and_negative_frames_are_refused_before_reading_body() {
        let mut wire = 100i32.to_be_bytes().to_vec();
        wire.extend_from_slice(&[0; 100]);
        let err = read_frame(&mut Cursor::new(&wire), 99).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(read_frame(&mut Cursor::new(&wire), 100).is_ok());

        let wire = (-1i32).to_be_bytes();
        assert!(read_frame(&mut Cursor::new(&wire), 100).is_err());
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let mut wire = 10i32.to_be_bytes().to_vec();
        wire.extend_from_slice(&[0; 3]);
        assert!(read_frame(&mut Cursor::new(wire), 100).is_err());
    }

    #[test]
    fn trailing_bytes_mean_a_version_mismatch() {
        let mut body = BytesMut::new();
        MetadataResponse::default().encode(&mut body, 9).unwrap();
        body.extend_from_slice(&[0, 0]);
        assert!(decode_response::<MetadataRequest>(body.freeze(), 9).is_err());
    }
}
