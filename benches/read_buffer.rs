//! What zero-filling the connection's read buffer cost (issue 16): the
//! reader of `server::connection` took bytes from the socket through a
//! `&mut [u8]`, so each read first zero-filled the room it was about to
//! fill; it now `recv`s into the buffer's spare capacity. This bench reads
//! the same stream both ways over loopback, as `FrameReader` does: ask
//! the kernel how much it holds (`FIONREAD`), take at most
//! `READ_CHUNK_BYTES` of it per `recv`, into a buffer of one frame's size
//! that is handed out (split off and dropped) when full.
//!
//! Reported per way and frame size: GB/s, and the reader's CPU seconds per
//! GB (user + system, `RUSAGE_THREAD`), best of the rounds. The writer is
//! the same for both.
//!
//! Run: `cargo bench --profile ci --bench read_buffer`;
//! `READ_BUFFER_BENCH_BYTES` sets the bytes per round (default 2 GiB),
//! `READ_BUFFER_BENCH_ROUNDS` the rounds (default 3).

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use bytes::BytesMut;

use common::{env_or, thread_cpu_s};

/// `server::connection`'s `READ_CHUNK_BYTES_MAX`.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Frames read: a produce request of a few small batches, and one of a
/// librdkafka default `message.max.bytes`-sized request.
const FRAME_BYTES: [usize; 2] = [16 * 1024, 1 << 20];
const BYTES_DEFAULT: u64 = 2 << 30;
const ROUNDS_DEFAULT: usize = 3;
/// The writer's buffer per `write`.
const WRITE_BYTES: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Way {
    ZeroFilled,
    SpareCapacity,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::ZeroFilled => "zero-filled",
            Way::SpareCapacity => "spare capacity",
        }
    }
}

fn bytes_waiting(fd: i32) -> usize {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into the live local.
    unsafe { libc::ioctl(fd, libc::FIONREAD, &mut waiting) };
    usize::try_from(waiting).unwrap_or(0)
}

/// One read of at most `room` bytes into `buffer`, the way `way` does it:
/// how many arrived (0 at the end of the stream).
fn read_once(way: Way, fd: i32, buffer: &mut BytesMut, room: usize) -> usize {
    match way {
        Way::ZeroFilled => {
            let filled = buffer.len();
            buffer.resize(filled + room, 0);
            // SAFETY: `room` initialized bytes from `filled`.
            let got = unsafe { libc::recv(fd, buffer[filled..].as_mut_ptr().cast(), room, 0) };
            let got = usize::try_from(got).expect("recv");
            buffer.truncate(filled + got);
            got
        }
        Way::SpareCapacity => {
            let spare = buffer.spare_capacity_mut();
            // SAFETY: the kernel writes at most `room` bytes of the spare
            // capacity, which is at least that long.
            let got = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), room, 0) };
            let got = usize::try_from(got).expect("recv");
            // SAFETY: the kernel wrote `got` bytes after the initialized ones.
            unsafe { buffer.set_len(buffer.len() + got) };
            got
        }
    }
}

/// Reads the whole stream in frames of `frame_bytes`: bytes read, and the
/// reader's CPU seconds.
fn read_stream(way: Way, stream: TcpStream, frame_bytes: usize) -> (u64, f64) {
    let fd = stream.as_raw_fd();
    let cpu = thread_cpu_s();
    let mut total = 0u64;
    let mut buffer = BytesMut::with_capacity(frame_bytes);
    loop {
        if buffer.len() == frame_bytes {
            std::hint::black_box(buffer.split().freeze());
            buffer = BytesMut::with_capacity(frame_bytes);
        }
        // At least one byte: a blocking recv waits for it when none is held.
        let room = bytes_waiting(fd)
            .clamp(1, READ_CHUNK_BYTES)
            .min(frame_bytes - buffer.len());
        match read_once(way, fd, &mut buffer, room) {
            0 => break,
            got => total += got as u64,
        }
    }
    (total, thread_cpu_s() - cpu)
}

/// One round: seconds, and the reader's CPU seconds.
fn round(way: Way, frame_bytes: usize, len: u64) -> (f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let writer = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(address).expect("connect");
        let block: Vec<u8> = (0..WRITE_BYTES).map(|n| (n % 251) as u8).collect();
        let mut written = 0u64;
        while written < len {
            let n = (len - written).min(WRITE_BYTES as u64) as usize;
            stream.write_all(&block[..n]).expect("write");
            written += n as u64;
        }
    });
    let (stream, _) = listener.accept().expect("accept");
    let started = Instant::now();
    let (received, reader_cpu) = read_stream(way, stream, frame_bytes);
    let seconds = started.elapsed().as_secs_f64();
    writer.join().expect("writer");
    assert_eq!(received, len, "{}: bytes lost", way.name());
    (seconds, reader_cpu)
}

fn main() {
    let len = env_or("READ_BUFFER_BENCH_BYTES", BYTES_DEFAULT);
    let rounds = env_or("READ_BUFFER_BENCH_ROUNDS", ROUNDS_DEFAULT).max(1);
    println!(
        "{} MiB per round over loopback, at most {READ_CHUNK_BYTES} bytes per recv; best of {rounds}",
        len >> 20
    );
    println!(
        "{:<16} {:>12} {:>8} {:>16}",
        "way", "frame bytes", "GB/s", "reader CPU s/GB"
    );
    let gb = len as f64 / 1e9;
    for frame_bytes in FRAME_BYTES {
        for way in [Way::ZeroFilled, Way::SpareCapacity] {
            let (seconds, reader_cpu) = (0..rounds)
                .map(|_| round(way, frame_bytes, len))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at least one round");
            println!(
                "{:<16} {:>12} {:>8.2} {:>16.3}",
                way.name(),
                frame_bytes,
                gb / seconds,
                reader_cpu / gb
            );
        }
    }
}
