//! Fuzzing of request decoding with mutated copies of real clients' requests.
//!
//! The corpus (`tests/corpus/*.frames`) holds the request frames that
//! confluent-kafka, kafka-python and aiokafka sent to a broker, captured by
//! `tests/integration/helpers/capture_requests.py`. Each case takes one frame,
//! applies a few mutations (bit flips, byte changes, truncation, insertion,
//! removal, lying length and size fields, another API key or version, bytes
//! of another frame spliced in) and decodes the result the way the
//! connection loop does (`server::handlers::dispatch`: header, then body),
//! then runs a decoded Produce request's record bytes through the checks the
//! produce path makes. It must never panic, even where the decoder's
//! `catch_unwind` would hide it, and never commit memory out of proportion
//! to the frame.
//!
//! The normal test run tries `FUZZ_CASES_DEFAULT` cases; a longer run:
//! `SHOAL_FUZZ_CASES=1000000 cargo test --profile ci --test fuzz_requests -- --nocapture`
//! (the seed is printed; `SHOAL_FUZZ_SEED` replays one).

use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use shoal::protocol::batch::{
    self, BatchError, BatchHeader, BATCH_HEADER_SIZE, BATCH_LENGTH_PREFIX_SIZE,
};
use shoal::protocol::batch_records::{BatchRecords, RecordsError, DECOMPRESSED_BYTES_MAX};
use shoal::protocol::frame::{decode_request, parse_request_header, FrameError, Request};
use shoal::protocol::versions::{self, SUPPORTED_APIS};

/// Cases in the normal test run: a few seconds in the `ci` profile.
const FUZZ_CASES_DEFAULT: u32 = 20_000;
/// Mutations applied to one frame in one case.
const MUTATIONS_PER_CASE_MAX: usize = 4;
/// Bytes one insertion adds.
const INSERTED_BYTES_MAX: usize = 16;
/// Where a batch's CRC-32C sits, and where the bytes it covers begin.
const CRC_AT: usize = 17;
const CRC_COVERS_FROM: usize = 21;
/// Where a batch's length sits, after its base offset.
const BATCH_LENGTH_AT: usize = 8;
/// Kafka's codec id of snappy.
const CODEC_SNAPPY: i16 = 2;
/// Where a batch's record count sits: the last field of its header.
const RECORDS_COUNT_AT: usize = 57;
/// A claimed array length of 2^31 must not commit memory for 2^31 elements.
/// Decoding frames of a few KB commits far less than this; the test
/// process's whole peak resident set must stay under it.
const PEAK_RESIDENT_BYTES_MAX: u64 = 64 << 20;
/// The largest batch the produce-path checks accept here, as
/// `max.message.bytes` would: above every corpus frame.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// The API kinds the corpus must cover: the workloads exercise at least this
/// many of the supported APIs.
const CORPUS_API_KINDS_MIN: usize = 20;

/// Length and size values that lie: empty, null, one past a small field,
/// the edges of each integer width, and the 2^31 claim.
const LYING_INT32: &[i32] = &[
    -1,
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x0100_0000,
    0x4000_0000,
    i32::MAX,
    i32::MIN,
];
const LYING_INT16: &[i16] = &[-1, 0, 1, 0x7f, 0xff, i16::MAX, i16::MIN];
/// Unsigned varint lengths of the flexible versions (value + 1 for a
/// compact array or string; 0 is null).
const LYING_VARINT: &[u32] = &[0, 1, 2, 0x7f, 0x80, 0x3fff, 0x4000, 0x7fff_ffff, u32::MAX];

/// One captured frame, size prefix removed.
#[derive(Debug, Clone)]
struct CorpusFrame {
    client: String,
    bytes: Bytes,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Splits a `.frames` file: each frame is a big-endian int32 size, then the
/// frame, exactly as on the wire.
fn split_frames(client: &str, data: &[u8]) -> Vec<CorpusFrame> {
    let mut frames = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        assert!(rest.len() >= 4, "{client}: a size prefix cut short");
        let size = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let size = usize::try_from(size).expect("corpus frame size is positive");
        assert!(rest.len() >= 4 + size, "{client}: a frame cut short");
        frames.push(CorpusFrame {
            client: client.to_string(),
            bytes: Bytes::copy_from_slice(&rest[4..4 + size]),
        });
        rest = &rest[4 + size..];
    }
    frames
}

fn corpus() -> Vec<CorpusFrame> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus exists")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "frames"))
        .collect();
    paths.sort();
    let mut frames = Vec::new();
    for path in paths {
        let client = path.file_stem().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).expect("corpus file reads");
        frames.extend(split_frames(&client, &data));
    }
    assert!(!frames.is_empty(), "the corpus is empty");
    frames
}

thread_local! {
    /// Panics on this thread, counted by the hook even when `catch_unwind`
    /// swallows them: the broker logs each one, and it means a decoder
    /// reached a state it did not expect.
    static PANICS: Cell<u64> = const { Cell::new(0) };
}

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|panics| panics.set(panics.get() + 1));
            report(info);
        }));
    });
}

/// What decoding a frame came to, for the run's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Decoded,
    TooShort,
    UnknownApiKey,
    MalformedHeader,
    UnsupportedVersion,
    MalformedBody,
}

/// Decodes a frame as the connection loop does, then runs the record bytes
/// of a Produce request through the produce path's checks. Fails if anything
/// panicked on the way, caught or not.
fn decode_as_the_broker(frame: &Bytes) -> Result<Outcome, TestCaseError> {
    let before = PANICS.with(Cell::get);
    let outcome = match parse_request_header(frame) {
        Err(error) => outcome_of(&error),
        Ok((header, mut body)) => {
            let api_key = ApiKey::try_from(header.request_api_key)
                .map_err(|()| TestCaseError::fail("a parsed header has a known API key"))?;
            match decode_request(api_key, header.request_api_version, &mut body) {
                Err(error) => outcome_of(&error),
                Ok(request) => {
                    if let Request::Produce(produce) = &request {
                        for topic in &produce.topic_data {
                            for partition in &topic.partition_data {
                                if let Some(records) = &partition.records {
                                    check_records(records);
                                }
                            }
                        }
                    }
                    Outcome::Decoded
                }
            }
        }
    };
    let panics = PANICS.with(Cell::get) - before;
    prop_assert_eq!(panics, 0, "decoding panicked on {:02x?}", frame.as_ref());
    Ok(outcome)
}

fn outcome_of(error: &FrameError) -> Outcome {
    match error {
        FrameError::TooShort { .. } => Outcome::TooShort,
        FrameError::UnknownApiKey { .. } => Outcome::UnknownApiKey,
        FrameError::MalformedHeader { .. } => Outcome::MalformedHeader,
        FrameError::UnsupportedVersion { .. } => Outcome::UnsupportedVersion,
        FrameError::MalformedBody { .. } => Outcome::MalformedBody,
        FrameError::InvalidSize { .. } | FrameError::TooLarge { .. } => {
            unreachable!("the size prefix is judged before decoding")
        }
    }
}

/// What the produce path does with a partition's record bytes (framing, CRC,
/// counts), and what it does for a compacted topic (every record's key,
/// decompressing as needed), on every framed batch.
fn check_records(records: &[u8]) {
    let mut position = 0;
    while position < records.len() {
        let Ok(size) = batch::framed_size(&records[position..]) else {
            return;
        };
        check_batch(&records[position..position + size]);
        position += size;
    }
}

/// Every check the broker makes of one batch's bytes, whether its CRC holds
/// or not, so that the record decoding sees mutated bytes too: as produced
/// (`validate`), as read back from a log (`validate_stored`,
/// `verify_stored`), and its records (the produce path's key and timestamp
/// checks, the cleaner's reading).
fn check_batch(one: &[u8]) {
    let _ = batch::validate(one, MAX_BATCH_BYTES);
    let _ = batch::validate_stored(one, MAX_BATCH_BYTES);
    let _ = batch::verify_stored(one);
    if let Ok(records) = BatchRecords::decode(one) {
        let _ = records.records();
    }
}

/// Reseals a batch's CRC-32C (attributes to the end) after a mutation, so
/// that the checks behind the CRC see mutated bytes.
fn reseal(batch: &mut [u8]) {
    if batch.len() >= BATCH_HEADER_SIZE {
        let crc = crc32c::crc32c(&batch[CRC_COVERS_FROM..]);
        batch[CRC_AT..CRC_COVERS_FROM].copy_from_slice(&crc.to_be_bytes());
    }
}

/// The record batches inside the corpus's Produce requests.
fn corpus_batches(corpus: &[CorpusFrame]) -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    for frame in corpus {
        let Ok((header, mut body)) = parse_request_header(&frame.bytes) else {
            continue;
        };
        let version = header.request_api_version;
        let Ok(Request::Produce(produce)) = decode_request(ApiKey::Produce, version, &mut body)
        else {
            continue;
        };
        for topic in &produce.topic_data {
            for partition in &topic.partition_data {
                let mut rest: &[u8] = partition.records.as_deref().unwrap_or_default();
                while let Ok(size) = batch::framed_size(rest) {
                    batches.push(rest[..size].to_vec());
                    rest = &rest[size..];
                }
            }
        }
    }
    batches
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: Index,
        bit: u8,
    },
    SetByte {
        at: Index,
        value: u8,
    },
    Truncate {
        at: Index,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    Remove {
        at: Index,
        len: u8,
    },
    SetInt32 {
        at: Index,
        value: i32,
    },
    SetInt16 {
        at: Index,
        value: i16,
    },
    /// Replaces the varint starting at `at` (or one byte, if none does)
    /// with `value`'s encoding.
    SetVarint {
        at: Index,
        value: u32,
    },
    ApiKey {
        key: i16,
    },
    ApiVersion {
        version: i16,
    },
    /// Bytes of another corpus frame, over this one's.
    Splice {
        from: Index,
        source_at: Index,
        at: Index,
        len: u8,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let api_keys: Vec<i16> = SUPPORTED_APIS.iter().map(|api| api.key as i16).collect();
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<Index>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        (
            any::<Index>(),
            proptest::collection::vec(any::<u8>(), 1..=INSERTED_BYTES_MAX)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<Index>(), 1u8..32).prop_map(|(at, len)| Mutation::Remove { at, len }),
        (any::<Index>(), proptest::sample::select(LYING_INT32))
            .prop_map(|(at, value)| Mutation::SetInt32 { at, value }),
        (any::<Index>(), proptest::sample::select(LYING_INT16))
            .prop_map(|(at, value)| Mutation::SetInt16 { at, value }),
        (any::<Index>(), proptest::sample::select(LYING_VARINT))
            .prop_map(|(at, value)| Mutation::SetVarint { at, value }),
        prop_oneof![proptest::sample::select(api_keys), any::<i16>()]
            .prop_map(|key| Mutation::ApiKey { key }),
        (-1i16..20).prop_map(|version| Mutation::ApiVersion { version }),
        (any::<Index>(), any::<Index>(), any::<Index>(), 1u8..64).prop_map(
            |(from, source_at, at, len)| Mutation::Splice {
                from,
                source_at,
                at,
                len
            }
        ),
    ]
}

fn encode_varint(mut value: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// Overwrites `bytes` somewhere `at` picks, where they fit whole; a frame
/// shorter than them is left alone.
fn overwrite(frame: &mut [u8], at: &Index, bytes: &[u8]) {
    if frame.len() >= bytes.len() {
        let start = at.index(frame.len() - bytes.len() + 1);
        frame[start..start + bytes.len()].copy_from_slice(bytes);
    }
}

fn apply(frame: &mut Vec<u8>, mutation: &Mutation, corpus: &[CorpusFrame]) {
    let len = frame.len();
    match mutation {
        Mutation::FlipBit { at, bit } if len > 0 => frame[at.index(len)] ^= 1 << bit,
        Mutation::SetByte { at, value } if len > 0 => frame[at.index(len)] = *value,
        Mutation::Truncate { at } => frame.truncate(at.index(len + 1)),
        Mutation::Insert { at, bytes } => {
            let start = at.index(len + 1);
            frame.splice(start..start, bytes.iter().copied());
        }
        Mutation::Remove { at, len: count } if len > 0 => {
            let start = at.index(len);
            frame.drain(start..(start + usize::from(*count)).min(len));
        }
        Mutation::SetInt32 { at, value } => overwrite(frame, at, &value.to_be_bytes()),
        Mutation::SetInt16 { at, value } => overwrite(frame, at, &value.to_be_bytes()),
        Mutation::SetVarint { at, value } if len > 0 => {
            let start = at.index(len);
            let old = frame[start..]
                .iter()
                .position(|byte| byte & 0x80 == 0)
                .map_or(len - start, |last| last + 1);
            frame.splice(start..start + old, encode_varint(*value));
        }
        Mutation::ApiKey { key } if len >= 2 => frame[..2].copy_from_slice(&key.to_be_bytes()),
        Mutation::ApiVersion { version } if len >= 4 => {
            frame[2..4].copy_from_slice(&version.to_be_bytes());
        }
        Mutation::Splice {
            from,
            source_at,
            at,
            len: count,
        } if len > 0 => {
            let source = &from.get(corpus).bytes;
            let source_start = source_at.index(source.len());
            let source_end = (source_start + usize::from(*count)).min(source.len());
            let piece = &source[source_start..source_end];
            let start = at.index(len);
            let end = (start + piece.len()).min(len);
            frame.splice(start..end, piece.iter().copied());
        }
        _ => {}
    }
}

/// The process's peak resident set, from `/proc/self/status`.
fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// Every captured frame of a supported API and version decodes: the corpus
/// is what real clients send, and the broker must take it.
#[test]
fn every_corpus_frame_decodes() {
    count_panics();
    let corpus = corpus();
    let mut kinds = BTreeSet::new();
    for frame in &corpus {
        let (header, mut body) = parse_request_header(&frame.bytes)
            .unwrap_or_else(|error| panic!("{}: {error}", frame.client));
        let api_key = ApiKey::try_from(header.request_api_key).expect("a known API key");
        let version = header.request_api_version;
        let supported = versions::supported(api_key)
            .is_some_and(|api| api.min_version <= version && version <= api.max_version);
        if !supported {
            continue;
        }
        kinds.insert(header.request_api_key);
        // Not checked: that the body was read to its end. librdkafka 2.x
        // sends some Metadata v13 requests with three bytes after the
        // body's tagged fields, and Kafka ignores them, as shoal does.
        let decoded = decode_request(api_key, version, &mut body);
        assert!(
            decoded.is_ok(),
            "{}: {api_key:?} v{version}: {decoded:?}",
            frame.client
        );
        assert_eq!(
            decode_as_the_broker(&frame.bytes).unwrap(),
            Outcome::Decoded
        );
    }
    assert!(
        kinds.len() >= CORPUS_API_KINDS_MIN,
        "the corpus covers {} API kinds: {kinds:?}",
        kinds.len()
    );
}

/// Every 4-byte window and every varint position of every frame, set to a
/// claim of 2^31 elements or bytes: each is refused or decoded, never an
/// abort, and memory stays bounded.
#[test]
fn a_lying_length_anywhere_is_refused_without_allocating_it() {
    count_panics();
    let corpus = corpus();
    let mut cases = 0u64;
    for frame in &corpus {
        for at in 0..frame.bytes.len() {
            let mut int32 = frame.bytes.to_vec();
            if at + 4 <= int32.len() {
                int32[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
                decode_as_the_broker(&Bytes::from(int32)).unwrap();
                cases += 1;
            }
            let mut varint = frame.bytes.to_vec();
            varint.splice(at..at + 1, encode_varint(u32::MAX));
            decode_as_the_broker(&Bytes::from(varint)).unwrap();
            cases += 1;
        }
    }
    let peak = peak_resident_bytes();
    assert!(
        peak < PEAK_RESIDENT_BYTES_MAX,
        "peak resident set {peak} bytes after {cases} lying frames"
    );
}

/// The fuzz run's size and seed: `SHOAL_FUZZ_CASES`, `SHOAL_FUZZ_SEED`.
fn fuzz_runner() -> (TestRunner, u32, u64) {
    let cases = env_number("SHOAL_FUZZ_CASES").map_or(FUZZ_CASES_DEFAULT, |cases| {
        u32::try_from(cases).expect("SHOAL_FUZZ_CASES fits in u32")
    });
    let seed = env_number("SHOAL_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64
    });
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    (TestRunner::new_with_rng(config, rng), cases, seed)
}

/// Mutated corpus frames, decoded as the broker decodes them.
#[test]
fn mutated_client_requests_never_panic() {
    count_panics();
    let corpus = corpus();
    let (mut runner, cases, seed) = fuzz_runner();
    let outcomes = std::cell::RefCell::new(std::collections::BTreeMap::<Outcome, u64>::new());
    let started = Instant::now();
    let strategy = (
        any::<Index>(),
        proptest::collection::vec(mutation(), 1..=MUTATIONS_PER_CASE_MAX),
    );
    let result = runner.run(&strategy, |(which, mutations)| {
        let mut frame = which.get(&corpus).bytes.to_vec();
        for mutation in &mutations {
            apply(&mut frame, mutation, &corpus);
        }
        let outcome = decode_as_the_broker(&Bytes::from(frame))?;
        *outcomes.borrow_mut().entry(outcome).or_default() += 1;
        Ok(())
    });
    println!(
        "requests: SHOAL_FUZZ_SEED={seed} SHOAL_FUZZ_CASES={cases}: {:.1} s, {} corpus frames, outcomes {:?}, peak resident {} MiB",
        started.elapsed().as_secs_f64(),
        corpus.len(),
        outcomes.borrow(),
        peak_resident_bytes() >> 20,
    );
    if let Err(failure) = result {
        panic!("SHOAL_FUZZ_SEED={seed}: {failure}");
    }
    let peak = peak_resident_bytes();
    assert!(
        peak < PEAK_RESIDENT_BYTES_MAX,
        "peak resident set {peak} bytes"
    );
}

/// Mutated record batches from the corpus's Produce requests, half of them
/// with their CRC resealed, through every check the broker makes of a batch.
#[test]
fn mutated_record_batches_never_panic() {
    count_panics();
    let corpus = corpus();
    let batches = corpus_batches(&corpus);
    assert!(!batches.is_empty(), "the corpus holds no record batch");
    let (mut runner, cases, seed) = fuzz_runner();
    let started = Instant::now();
    let strategy = (
        any::<Index>(),
        proptest::collection::vec(mutation(), 1..=MUTATIONS_PER_CASE_MAX),
        any::<bool>(),
    );
    let result = runner.run(&strategy, |(which, mutations, resealed)| {
        let mut one = which.get(&batches).clone();
        for mutation in &mutations {
            apply(&mut one, mutation, &corpus);
        }
        if resealed {
            reseal(&mut one);
        }
        let before = PANICS.with(Cell::get);
        check_batch(&one);
        prop_assert_eq!(PANICS.with(Cell::get), before, "panicked on {:02x?}", one);
        Ok(())
    });
    println!(
        "batches: SHOAL_FUZZ_SEED={seed} SHOAL_FUZZ_CASES={cases}: {:.1} s, {} corpus batches, peak resident {} MiB",
        started.elapsed().as_secs_f64(),
        batches.len(),
        peak_resident_bytes() >> 20,
    );
    if let Err(failure) = result {
        panic!("SHOAL_FUZZ_SEED={seed}: {failure}");
    }
}

/// Found by `mutated_record_batches_never_panic`: a batch with a base
/// offset near i64::MAX made a record's offset overflow while the produce
/// path read its keys (compacted topics), a panic with overflow checks on.
#[test]
fn a_record_offset_past_i64_max_is_malformed() {
    let batches = corpus_batches(&corpus());
    let mut one = batches
        .into_iter()
        .find(|one| BatchHeader::view(one).is_some_and(|h| h.records_count.get() >= 2))
        .expect("a corpus batch of two records or more");
    // The CRC does not cover the base offset.
    one[..8].copy_from_slice(&i64::MAX.to_be_bytes());
    assert_eq!(batch::validate(&one, MAX_BATCH_BYTES), Ok(one.len()));
    assert_eq!(
        BatchRecords::decode(&one).and_then(|r| r.records().map(|v| v.len())),
        Err(RecordsError::Malformed("offset delta"))
    );
}

/// Found by the memory check of `a_lying_length_anywhere_...`: a snappy
/// block whose length preamble claimed 64 MiB made the produce path's key
/// check zero-fill 64 MiB before it found the block empty.
#[test]
fn a_snappy_block_claiming_more_than_it_can_hold_is_refused() {
    let batches = corpus_batches(&corpus());
    let snappy = batches
        .iter()
        .find(|one| BatchHeader::view(one).is_some_and(|h| h.compression() == CODEC_SNAPPY))
        .expect("a snappy batch in the corpus");
    let mut one = snappy[..BATCH_HEADER_SIZE].to_vec();
    one.extend(encode_varint(DECOMPRESSED_BYTES_MAX as u32 - 1));
    let batch_length = i32::try_from(one.len() - BATCH_LENGTH_PREFIX_SIZE).unwrap();
    one[BATCH_LENGTH_AT..BATCH_LENGTH_PREFIX_SIZE].copy_from_slice(&batch_length.to_be_bytes());
    reseal(&mut one);
    assert_eq!(
        BatchRecords::decode(&one).and_then(|r| r.records().map(|v| v.len())),
        Err(RecordsError::Malformed(
            "snappy length past what its block holds"
        ))
    );
}

/// Found by the garbage flood: a batch claiming i32::MIN records made the
/// record count check overflow, and with overflow checks on that panicked
/// the shard's thread.
#[test]
fn a_record_count_of_i32_min_is_refused() {
    let batches = corpus_batches(&corpus());
    let mut one = batches[0].clone();
    one[RECORDS_COUNT_AT..BATCH_HEADER_SIZE].copy_from_slice(&i32::MIN.to_be_bytes());
    reseal(&mut one);
    assert!(BatchHeader::view(&one).is_some());
    assert_eq!(
        batch::validate(&one, MAX_BATCH_BYTES),
        Err(BatchError::InvalidRecordCount)
    );
}
