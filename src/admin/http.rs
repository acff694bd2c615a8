//! The little HTTP/1.1 the admin listener speaks (RFC 9112): one request
//! per connection, read whole within bounds, answered with a
//! `Content-Length` and `Connection: close`. No chunked bodies (501), no
//! keep-alive, no upgrade.
//!
//! Invariant: pure; `parse` never reads past the bytes it is given, and
//! refuses a head over `HEAD_BYTES_MAX` or a body over `BODY_BYTES_MAX`
//! before the caller reads more.

/// The longest request line and headers taken: a scraper's or a curl's
/// head is a few hundred bytes.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;
/// The longest body taken: the admin API carries its arguments in the
/// query, the console's actions a JSON object of a few hundred bytes (a
/// topic's name, counts and a handful of configs).
pub const BODY_BYTES_MAX: usize = 4 * 1024;
/// Most header lines taken in one request.
const HEADERS_MAX: usize = 64;

/// A request read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The target after `?`, undecoded (`query_pairs` decodes it).
    pub query: String,
    /// The header fields, names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the first header field `name` (lower case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What the bytes read so far make.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet: read more.
    Partial,
    Complete(Request),
    /// A request to refuse with this status.
    Invalid(u16),
}

/// Parses the request at the start of `buffer`.
pub fn parse(buffer: &[u8]) -> Parsed {
    let Some(head_end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
        return match buffer.len() > HEAD_BYTES_MAX {
            true => Parsed::Invalid(431),
            false => Parsed::Partial,
        };
    };
    if head_end > HEAD_BYTES_MAX {
        return Parsed::Invalid(431);
    }
    let Ok(head) = std::str::from_utf8(&buffer[..head_end]) else {
        return Parsed::Invalid(400);
    };
    let mut lines = head.split("\r\n");
    let (method, target) = match request_line(lines.next().unwrap_or_default()) {
        Ok(line) => line,
        Err(status) => return Parsed::Invalid(status),
    };
    let headers = match header_fields(lines) {
        Ok(headers) => headers,
        Err(status) => return Parsed::Invalid(status),
    };
    let content_length = match content_length(&headers) {
        Ok(length) => length,
        Err(status) => return Parsed::Invalid(status),
    };
    let body_start = head_end + 4;
    let Some(body) = buffer.get(body_start..body_start + content_length) else {
        return Parsed::Partial;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Parsed::Complete(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: body.to_vec(),
    })
}

/// `METHOD /target HTTP/1.x` → (method, target).
fn request_line(line: &str) -> Result<(&str, &str), u16> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(if version.starts_with("HTTP/") {
            505
        } else {
            400
        });
    }
    let token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !token || !target.starts_with('/') {
        return Err(400);
    }
    Ok((method, target))
}

/// The header fields, names in lower case, values trimmed; or the status
/// refusing them.
fn header_fields<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<(String, String)>, u16> {
    let mut headers = Vec::new();
    for (count, line) in lines.enumerate() {
        if count >= HEADERS_MAX {
            return Err(431);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(400);
        };
        // No whitespace between a field name and its colon (RFC 9112 5.1).
        if name.is_empty() || name.trim_end() != name {
            return Err(400);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(headers)
}

/// The body's length the headers give (0 without one), or the status
/// refusing them.
fn content_length(headers: &[(String, String)]) -> Result<usize, u16> {
    let mut length = None;
    for (name, value) in headers {
        if name == "transfer-encoding" {
            return Err(501);
        }
        if name == "content-length" {
            let parsed: usize = value.parse().map_err(|_| 400u16)?;
            if length.is_some_and(|before| before != parsed) {
                return Err(400);
            }
            length = Some(parsed);
        }
    }
    match length.unwrap_or(0) {
        length if length > BODY_BYTES_MAX => Err(413),
        length => Ok(length),
    }
}

/// The `name=value` pairs of a query, percent-decoded; a pair that does
/// not decode to UTF-8 is left out.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                at += 3;
            }
            b'+' => {
                decoded.push(b' ');
                at += 1;
            }
            byte => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The methods a 405 names.
    pub allow: Option<&'static str>,
    /// A 401 asks for HTTP Basic credentials (`WWW-Authenticate`).
    pub basic_challenge: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            allow: None,
            basic_challenge: false,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status, "application/json", format!("{value}\n"))
    }

    /// A plain-text answer for a status, its reason as the body.
    pub fn status(status: u16) -> Response {
        Response::new(
            status,
            "text/plain; charset=utf-8",
            format!("{}\n", reason(status)),
        )
    }

    pub fn method_not_allowed(allow: &'static str) -> Response {
        Response {
            allow: Some(allow),
            ..Response::status(405)
        }
    }

    /// The bytes on the wire; without the body for a HEAD request (its
    /// length is still the body's).
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            head.push_str("Allow: ");
            head.push_str(allow);
            head.push_str("\r\n");
        }
        if self.basic_challenge {
            head.push_str("WWW-Authenticate: Basic realm=\"shoal\", charset=\"UTF-8\"\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_complete_once_its_head_and_body_are_there() {
        let request = b"PUT /v1/log/level?module=shoal%3A%3Aserver&level=debug HTTP/1.1\r\n\
                        Host: x\r\nContent-Length: 2\r\n\r\nok";
        for cut in 0..request.len() {
            assert_eq!(parse(&request[..cut]), Parsed::Partial, "cut at {cut}");
        }
        let Parsed::Complete(parsed) = parse(request) else {
            panic!("complete");
        };
        assert_eq!(parsed.method, "PUT");
        assert_eq!(parsed.path, "/v1/log/level");
        assert_eq!(parsed.body, b"ok");
        assert_eq!(parsed.header("content-length"), Some("2"));
        assert_eq!(parsed.header("host"), Some("x"));
        assert_eq!(
            query_pairs(&parsed.query),
            vec![
                ("module".to_string(), "shoal::server".to_string()),
                ("level".to_string(), "debug".to_string())
            ]
        );
    }

    #[test]
    fn garbage_and_oversized_requests_are_refused() {
        let refused = |bytes: &[u8]| match parse(bytes) {
            Parsed::Invalid(status) => status,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(bytes)),
        };
        assert_eq!(refused(b"\x16\x03\x01 garbage\r\n\r\n"), 400);
        assert_eq!(refused(b"GET /metrics\r\n\r\n"), 400);
        assert_eq!(refused(b"get /metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused(b"GET metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
        assert_eq!(refused(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            refused(b"PUT / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n"),
            413
        );
        assert_eq!(
            refused(b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(refused(&vec![b'a'; HEAD_BYTES_MAX + 1]), 431);
        let many: String = (0..=HEADERS_MAX).map(|n| format!("X-{n}: y\r\n")).collect();
        assert_eq!(
            refused(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
    }

    #[test]
    fn responses_carry_their_length_and_close() {
        let response = Response::new(200, "text/plain", "hello");
        assert_eq!(
            response.encode(false),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
              Connection: close\r\n\r\nhello"
        );
        let head = Response::method_not_allowed("GET, HEAD").encode(true);
        let head = String::from_utf8(head).expect("text");
        assert!(
            head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nAllow: GET, HEAD\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }
}
