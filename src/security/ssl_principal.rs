//! The principal of a mutual-TLS client: its certificate's subject as
//! Kafka writes it (RFC 2253, as Java's `X500Principal.getName()`: the
//! most specific name first, `CN=alice,OU=eng,O=corp`), mapped through
//! `ssl.principal.mapping.rules` (`DEFAULT`, `RULE:pattern/replacement/[LU]`),
//! as Kafka's `SslPrincipalMapper`.
//!
//! Invariant: the certificate given is one rustls already verified against
//! the truststore, but its bytes are still treated as untrusted input: any
//! DER that does not parse yields an error, never a panic.

use regex::Regex;

/// `ssl.principal.mapping.rules` default.
pub const PRINCIPAL_MAPPING_RULES_DEFAULT: &str = "DEFAULT";

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    /// The distinguished name unchanged.
    Default,
    /// A name the pattern matches whole becomes the replacement, optionally
    /// lower- or upper-cased.
    Replace {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Parsed `ssl.principal.mapping.rules`: the first rule that applies wins.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses the rules as Kafka does: separated by commas or new lines; a
    /// rule's pattern and replacement may hold commas and escaped slashes.
    pub fn parse(rules: &str) -> Result<PrincipalMapper, String> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            let (rule, after) = parse_rule(rest)?;
            parsed.push(rule);
            rest = after
                .trim_start()
                .strip_prefix([',', '\n'])
                .map(str::trim_start)
                .unwrap_or(after.trim_start());
        }
        if parsed.is_empty() {
            return Err("ssl.principal.mapping.rules has no rule".to_string());
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name of the subject `dn`; an error when no rule
    /// applies (Kafka then fails the authentication).
    pub fn map(&self, dn: &str) -> Result<String, String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if !pattern.is_match(dn) {
                        continue;
                    }
                    let mapped = pattern.replace_all(dn, replacement.as_str());
                    return Ok(match case {
                        Case::Keep => mapped.into_owned(),
                        Case::Lower => mapped.to_lowercase(),
                        Case::Upper => mapped.to_uppercase(),
                    });
                }
            }
        }
        Err(format!(
            "no ssl.principal.mapping.rules rule applies to {dn}"
        ))
    }
}

/// One rule at the start of `text`, and what follows it.
fn parse_rule(text: &str) -> Result<(Rule, &str), String> {
    if let Some(rest) = text.strip_prefix("DEFAULT") {
        return Ok((Rule::Default, rest));
    }
    let invalid = || format!("Invalid rule: {text}");
    let body = text.strip_prefix("RULE:").ok_or_else(invalid)?;
    let (pattern, rest) = until_slash(body).ok_or_else(invalid)?;
    let (replacement, rest) = until_slash(rest).ok_or_else(invalid)?;
    let (case, rest) = match rest.as_bytes().first() {
        Some(b'L') => (Case::Lower, &rest[1..]),
        Some(b'U') => (Case::Upper, &rest[1..]),
        _ => (Case::Keep, rest),
    };
    // As Kafka's splitter, anything up to the next separator is ignored.
    let end = rest.find([',', '\n']).unwrap_or(rest.len());
    // Kafka matches the whole name (`Matcher.matches`).
    let anchored = format!("^(?:{})$", pattern.replace("\\/", "/"));
    let pattern = Regex::new(&anchored).map_err(|error| format!("{}: {error}", invalid()))?;
    let rule = Rule::Replace {
        pattern,
        replacement: rust_replacement(&replacement),
        case,
    };
    Ok((rule, &rest[end..]))
}

/// The text up to the first slash not escaped by a backslash (escapes
/// kept), and what follows that slash.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut taken = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '/' => return Some((taken, &text[at + 1..])),
            '\\' => {
                taken.push(c);
                taken.push(chars.next()?.1);
            }
            _ => taken.push(c),
        }
    }
    None
}

/// A Java replacement (`$1` a group, `\x` a literal x) in the regex
/// crate's syntax (`${1}`, `$$` a literal dollar).
fn rust_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(escaped) => out.push(escaped),
                None => {}
            },
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                    out.push(digit);
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

/// The subject of the DER certificate `der`, in RFC 2253 form.
pub fn subject_dn(der: &[u8]) -> Result<String, String> {
    let malformed = || "malformed client certificate".to_string();
    let (_, certificate, _) = tlv(der, SEQUENCE).ok_or_else(malformed)?;
    let (_, mut tbs, _) = tlv(certificate, SEQUENCE).ok_or_else(malformed)?;
    if tbs.first() == Some(&EXPLICIT_VERSION) {
        tbs = tlv(tbs, EXPLICIT_VERSION).ok_or_else(malformed)?.2;
    }
    // serialNumber, signature, issuer, validity, then the subject.
    for tag in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE] {
        tbs = tlv(tbs, tag).ok_or_else(malformed)?.2;
    }
    let (_, subject, _) = tlv(tbs, SEQUENCE).ok_or_else(malformed)?;
    rfc2253(subject).ok_or_else(malformed)
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OBJECT_IDENTIFIER: u8 = 0x06;
/// `[0] EXPLICIT Version` of a TBSCertificate.
const EXPLICIT_VERSION: u8 = 0xa0;
/// Most length bytes of a DER length: 4 GiB is past any certificate.
const LENGTH_BYTES_MAX: usize = 4;

/// The element at the start of `input`, which must have tag `tag`: its
/// whole encoding, its content, and what follows it.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > LENGTH_BYTES_MAX || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((&input[..header + len], &rest[..len], &rest[len..]))
}

/// The element at the start of `input` whatever its tag: tag, whole
/// encoding, content.
fn any_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let (whole, content, _) = tlv(input, tag)?;
    Some((tag, whole, content))
}

/// An RDNSequence as RFC 2253 writes it: last RDN first, `,` between
/// RDNs, `+` between the attributes of one.
fn rfc2253(mut rdns: &[u8]) -> Option<String> {
    let mut names = Vec::new();
    while !rdns.is_empty() {
        let (_, mut set, rest) = tlv(rdns, SET)?;
        rdns = rest;
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let (_, pair, rest) = tlv(set, SEQUENCE)?;
            set = rest;
            let (_, oid, value) = tlv(pair, OBJECT_IDENTIFIER)?;
            attributes.push(attribute(oid, value)?);
        }
        names.push(attributes.join("+"));
    }
    names.reverse();
    Some(names.join(","))
}

/// `KEY=value` of one attribute: a keyword RFC 2253 knows with its string
/// value escaped, else the dotted OID with the value's DER in hex.
fn attribute(oid: &[u8], value: &[u8]) -> Option<String> {
    let (tag, whole, content) = any_tlv(value)?;
    let keyword = KEYWORDS
        .iter()
        .find(|(known, _)| *known == oid)
        .map(|(_, name)| *name);
    match (keyword, string_value(tag, content)) {
        (Some(keyword), Some(text)) => Some(format!("{keyword}={}", escape(&text))),
        _ => {
            let hex: String = whole.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!("{}=#{hex}", dotted(oid)?))
        }
    }
}

/// The attribute types RFC 2253 names by keyword (with Java's choice of
/// them), by their OID's DER content.
const KEYWORDS: &[(&[u8], &str)] = &[
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x09], "STREET"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        "DC",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
        "UID",
    ),
];

/// The text of a directory string, by its ASN.1 string type.
fn string_value(tag: u8, content: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, VisibleString.
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8(content.to_vec()).ok(),
        // TeletexString: Latin-1 in practice.
        0x14 => Some(content.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16, big-endian.
        0x1e if content.len().is_multiple_of(2) => {
            let units: Vec<u16> = content
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 2253's escapes of a value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (at, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (at == 0 && (c == '#' || c == ' '))
            || (at == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An OID's DER content as dotted decimal.
fn dotted(oid: &[u8]) -> Option<String> {
    let (&first, rest) = oid.split_first()?;
    let mut parts = vec![u64::from(first / 40).min(2), 0];
    parts[1] = u64::from(first) - parts[0] * 40;
    let mut value: u64 = 0;
    for &byte in rest {
        value = value.checked_mul(128)? | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            parts.push(value);
            value = 0;
        }
    }
    let dotted: Vec<String> = parts.iter().map(u64::to_string).collect();
    Some(dotted.join("."))
}

#[cfg(test)]
#[path = "ssl_principal_tests.rs"]
mod tests;
