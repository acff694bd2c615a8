use super::*;

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        let len = (content.len() as u32).to_be_bytes();
        let skip = len.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
    der(
        SEQUENCE,
        &[der(OBJECT_IDENTIFIER, oid), der(tag, value)].concat(),
    )
}

/// A certificate-shaped DER whose subject is `rdns` (each a set of
/// attributes), outermost first as certificates store them.
fn certificate(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let subject: Vec<u8> = rdns
        .iter()
        .flat_map(|rdn| der(SET, &rdn.concat()))
        .collect();
    let tbs = [
        der(EXPLICIT_VERSION, &der(INTEGER, &[2])),
        der(INTEGER, &[1, 2, 3]),
        der(SEQUENCE, &der(OBJECT_IDENTIFIER, &[0x2a, 0x86, 0x48])),
        der(SEQUENCE, &der(SET, &attribute(&[0x55, 4, 3], 0x0c, b"ca"))),
        der(SEQUENCE, &[]),
        der(SEQUENCE, &subject),
        der(SEQUENCE, &[0; 200]),
    ]
    .concat();
    der(
        SEQUENCE,
        &[der(SEQUENCE, &tbs), der(SEQUENCE, &[])].concat(),
    )
}

const CN: &[u8] = &[0x55, 4, 3];
const OU: &[u8] = &[0x55, 4, 11];
const O: &[u8] = &[0x55, 4, 10];
const C: &[u8] = &[0x55, 4, 6];
const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];

#[test]
fn the_subject_reads_most_specific_first_as_java_writes_it() {
    let cert = certificate(&[
        vec![attribute(C, 0x13, b"US")],
        vec![attribute(O, 0x0c, b"Corp, Inc.")],
        vec![attribute(OU, 0x0c, b"eng"), attribute(EMAIL, 0x16, b"a@b")],
        vec![attribute(CN, 0x0c, b" alice ")],
    ]);
    assert_eq!(
        subject_dn(&cert).unwrap(),
        "CN=\\ alice\\ ,OU=eng+1.2.840.113549.1.9.1=#1603614062,O=Corp\\, Inc.,C=US"
    );
}

#[test]
fn a_bmp_string_and_an_empty_subject_read_too() {
    let bmp: Vec<u8> = "zoë".encode_utf16().flat_map(u16::to_be_bytes).collect();
    let cert = certificate(&[vec![attribute(CN, 0x1e, &bmp)]]);
    assert_eq!(subject_dn(&cert).unwrap(), "CN=zoë");
    assert_eq!(subject_dn(&certificate(&[])).unwrap(), "");
}

#[test]
fn every_cut_of_a_certificate_is_an_error_not_a_panic() {
    let cert = certificate(&[
        vec![attribute(O, 0x0c, b"corp")],
        vec![attribute(CN, 0x0c, b"bob")],
    ]);
    assert_eq!(subject_dn(&cert).unwrap(), "CN=bob,O=corp");
    for cut in 0..cert.len() {
        assert!(subject_dn(&cert[..cut]).is_err(), "cut at {cut}");
    }
    for at in 0..cert.len() {
        let mut flipped = cert.clone();
        flipped[at] ^= 0xff;
        let _ = subject_dn(&flipped);
    }
}

#[test]
fn default_keeps_the_name() {
    let mapper = PrincipalMapper::parse(PRINCIPAL_MAPPING_RULES_DEFAULT).unwrap();
    assert_eq!(mapper.map("CN=alice,O=corp").unwrap(), "CN=alice,O=corp");
}

#[test]
fn rules_apply_in_order_with_commas_escapes_and_case() {
    let rules =
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n RULE:^CN=([^,]*),O=(.*)$/$1\\/$2@x/U, DEFAULT";
    let mapper = PrincipalMapper::parse(rules).unwrap();
    assert_eq!(
        mapper.map("CN=kafka-svc,OU=ServiceUsers,O=corp").unwrap(),
        "kafka-svc"
    );
    assert_eq!(mapper.map("CN=bob,O=corp").unwrap(), "BOB/CORP@X");
    assert_eq!(mapper.map("OU=x").unwrap(), "OU=x");
    let lower = PrincipalMapper::parse("RULE:^CN=(.*)$/$1x/L").unwrap();
    assert_eq!(lower.map("CN=ALICE").unwrap(), "alicex");
    assert!(lower.map("O=ALICE").is_err(), "no rule applies");
}

#[test]
fn malformed_rules_are_refused() {
    for rules in [
        "",
        "RULE:abc",
        "RULE:a/b",
        "DEFAULTS",
        "RULE:(/x/",
        "nonsense",
    ] {
        assert!(PrincipalMapper::parse(rules).is_err(), "{rules:?}");
    }
}
