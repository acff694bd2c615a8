//! How a catch-up read should move a page-cached segment file to a
//! consumer's socket on this kernel (issue 16): the candidates side by
//! side, each sending the whole file over loopback to a reader thread that
//! drains it. Reported per candidate: GB/s, and the sender's CPU seconds
//! per GB (user + system, `RUSAGE_THREAD`); the reader's CPU is the same
//! for all (one kernel copy into its buffer).
//!
//! - `read+crc+send`: today's copy path before this change: `preadv2` of a
//!   256 KiB window into a fresh buffer, CRC-32C over it (every batch is
//!   checked), `send` of the buffer.
//! - `read+send`: the same without the checksum.
//! - `sendfile`: the kernel sends from the page cache (what shoal keeps).
//! - `splice`: file to a pipe to the socket, two calls per step.
//!
//! io_uring's splice and `SEND_ZC` are not measured: glommio owns the
//! shard's ring and exposes neither, and shoal adds no second ring.
//!
//! Run: `cargo bench --profile ci --bench zerocopy_send` (or plain
//! `cargo bench --bench zerocopy_send`); `ZEROCOPY_BENCH_BYTES` sets the
//! file size (default 1 GiB), `ZEROCOPY_BENCH_DIR` where it is written
//! (default the system temp dir), `ZEROCOPY_BENCH_ROUNDS` the rounds.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{env_or, thread_cpu_s};

/// The file sent: larger than the socket buffers by far, smaller than the
/// page cache of the machine this runs on.
const FILE_BYTES_DEFAULT: u64 = 1 << 30;
/// One call's worth, as the broker's read and send steps.
const STEP_BYTES: usize = 256 << 10;
/// The reader's buffer.
const READ_BUFFER_BYTES: usize = 1 << 20;
/// Rounds per candidate; the best is reported (the others are noise from
/// the rest of the machine).
const ROUNDS_DEFAULT: usize = 3;

#[derive(Clone, Copy, Debug)]
enum Candidate {
    ReadCrcSend,
    ReadSend,
    Sendfile,
    Splice,
}

impl Candidate {
    fn name(self) -> &'static str {
        match self {
            Candidate::ReadCrcSend => "read+crc+send",
            Candidate::ReadSend => "read+send",
            Candidate::Sendfile => "sendfile",
            Candidate::Splice => "splice",
        }
    }
}

fn check(result: isize, what: &str) -> usize {
    assert!(result >= 0, "{what}: {}", std::io::Error::last_os_error());
    result as usize
}

/// Sends `len` bytes of `file` to `socket` the candidate's way.
fn send(candidate: Candidate, file: &std::fs::File, socket: &mut TcpStream, len: u64) {
    let (file_fd, socket_fd) = (file.as_raw_fd(), socket.as_raw_fd());
    let mut at = 0u64;
    let mut pipe = [0i32; 2];
    if let Candidate::Splice = candidate {
        // SAFETY: `pipe` is two live ints.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: fcntl on the pipe just made.
        unsafe { libc::fcntl(pipe[1], libc::F_SETPIPE_SZ, STEP_BYTES as i32) };
    }
    while at < len {
        let step = (len - at).min(STEP_BYTES as u64) as usize;
        match candidate {
            Candidate::ReadCrcSend | Candidate::ReadSend => {
                let mut buf = vec![0u8; step];
                // SAFETY: `buf` holds `step` bytes.
                let read = unsafe {
                    libc::pread(file_fd, buf.as_mut_ptr().cast(), step, at as libc::off_t)
                };
                let read = check(read, "pread");
                if let Candidate::ReadCrcSend = candidate {
                    std::hint::black_box(crc32c::crc32c(&buf[..read]));
                }
                socket.write_all(&buf[..read]).expect("send");
                at += read as u64;
            }
            Candidate::Sendfile => {
                let mut offset = at as libc::off_t;
                // SAFETY: `offset` is a live local; both descriptors open.
                let sent = unsafe { libc::sendfile(socket_fd, file_fd, &mut offset, step) };
                at += check(sent, "sendfile") as u64;
            }
            Candidate::Splice => {
                let mut offset = at as libc::loff_t;
                // SAFETY: `offset` is a live local; the descriptors are open.
                let filled = unsafe {
                    libc::splice(
                        file_fd,
                        &mut offset,
                        pipe[1],
                        std::ptr::null_mut(),
                        step,
                        libc::SPLICE_F_MOVE,
                    )
                };
                let mut left = check(filled, "splice in");
                at += left as u64;
                while left > 0 {
                    // SAFETY: as above.
                    let sent = unsafe {
                        libc::splice(
                            pipe[0],
                            std::ptr::null_mut(),
                            socket_fd,
                            std::ptr::null_mut(),
                            left,
                            libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
                        )
                    };
                    left -= check(sent, "splice out");
                }
            }
        }
    }
    if let Candidate::Splice = candidate {
        // SAFETY: closes the pipe made above.
        unsafe {
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
    }
}

/// One round: (seconds, sender CPU seconds, reader CPU seconds).
fn round(candidate: Candidate, file: &std::fs::File, len: u64) -> (f64, f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let reader = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(address).expect("connect");
        let mut buf = vec![0u8; READ_BUFFER_BYTES];
        let cpu = thread_cpu_s();
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) => panic!("read: {e}"),
            }
        }
        (total, thread_cpu_s() - cpu)
    });
    let (mut socket, _) = listener.accept().expect("accept");
    let started = Instant::now();
    let cpu = thread_cpu_s();
    send(candidate, file, &mut socket, len);
    let sender_cpu = thread_cpu_s() - cpu;
    drop(socket);
    let (received, reader_cpu) = reader.join().expect("reader");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(received, len, "{}: bytes lost", candidate.name());
    (seconds, sender_cpu, reader_cpu)
}

/// Makes the file and brings it whole into the page cache.
fn cached_file(len: u64) -> (tempfile::TempDir, std::fs::File) {
    let dir = match std::env::var("ZEROCOPY_BENCH_DIR") {
        Ok(parent) => tempfile::tempdir_in(parent),
        Err(_) => tempfile::tempdir(),
    }
    .expect("temp dir");
    let path = dir.path().join("00000000000000000000.log");
    let mut file = std::fs::File::create(&path).expect("create");
    let block: Vec<u8> = (0..STEP_BYTES).map(|n| (n % 251) as u8).collect();
    let mut written = 0u64;
    while written < len {
        let n = (len - written).min(block.len() as u64) as usize;
        file.write_all(&block[..n]).expect("write");
        written += n as u64;
    }
    file.sync_all().expect("sync");
    let mut file = std::fs::File::open(&path).expect("open");
    let mut sink = vec![0u8; READ_BUFFER_BYTES];
    while file.read(&mut sink).expect("warm") > 0 {}
    (dir, file)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let len = env_or("ZEROCOPY_BENCH_BYTES", FILE_BYTES_DEFAULT);
    let rounds = env_or("ZEROCOPY_BENCH_ROUNDS", ROUNDS_DEFAULT).max(1);
    let (_dir, file) = cached_file(len);
    println!(
        "file {} MiB, page-cached; {STEP_BYTES} bytes per call; best of {rounds} rounds",
        len >> 20
    );
    println!(
        "{:<14} {:>8} {:>16} {:>16}",
        "candidate", "GB/s", "sender CPU s/GB", "reader CPU s/GB"
    );
    let gb = len as f64 / 1e9;
    for candidate in [
        Candidate::ReadCrcSend,
        Candidate::ReadSend,
        Candidate::Sendfile,
        Candidate::Splice,
    ] {
        let best = (0..rounds)
            .map(|_| round(candidate, &file, len))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("at least one round");
        let (seconds, sender_cpu, reader_cpu) = best;
        println!(
            "{:<14} {:>8.2} {:>16.3} {:>16.3}",
            candidate.name(),
            gb / seconds,
            sender_cpu / gb,
            reader_cpu / gb
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
