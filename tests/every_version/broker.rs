//! The broker process and the client connection: a `shoal serve` on a free
//! port with a fresh data directory, killed and its directory removed on drop;
//! a connection whose every call checks the correlation id and decodes the
//! response at the request's version with nothing left over.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka_protocol::protocol::Request;
use shoal::client::frame;

/// The client id of every request the test sends.
pub const CLIENT_ID: &str = "every-version";
/// How long the broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a refused `serve` may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Socket read timeout: a broker that never answers fails the test instead
/// of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest response frame the test accepts.
pub const RESPONSE_FRAME_MAX_BYTES: usize = 64 << 20;
/// The broker's `node.id` unless told otherwise.
pub const NODE_ID: i32 = 1;

/// A running broker; killed and its data directory removed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    /// Dropped after the child is dead, removing the data directory.
    pub _data_dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker started with `extra_args` after the usual ones (say
    /// `--override KEY=VALUE`).
    pub fn start_with(extra_args: &[&str]) -> Broker {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--shards",
                "2",
            ])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn shoal serve");
        let stdout = child.stdout.take().expect("child stdout");
        // From here on the guard owns the child, so a failed wait kills it.
        let broker = Broker {
            child,
            port,
            _data_dir: data_dir,
        };
        let (lines_tx, lines_rx) = mpsc::channel();
        // Keeps draining stdout for the broker's whole life so it never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more; keep reading to drain.
                }
            }
        });
        let ready = format!("shoal ready on 127.0.0.1:{port}");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.trim() == ready => return broker,
                Ok(_) => continue,
                Err(error) => panic!("broker not ready within {READY_TIMEOUT:?}: {error}"),
            }
        }
    }

    pub fn connect(&self) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to broker");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            next_correlation_id: 1,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// One client connection; every call checks the correlation id and that the
/// response decodes at the request's version with nothing left over.
pub struct Conn {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Conn {
    /// Sends a request that gets no response (Produce with acks=0).
    pub fn send_unanswered<Req: Request>(&mut self, request: &Req, version: i16) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let bytes = frame::encode_request(request, version, correlation_id, CLIENT_ID)
            .unwrap_or_else(|error| panic!("encode v{version}: {error:#}"));
        frame::write_frame(&mut self.stream, &bytes).unwrap();
    }

    pub fn call<Req: Request>(&mut self, request: &Req, version: i16) -> Req::Response {
        let api_key = frame::api_key_of::<Req>().unwrap();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let bytes = frame::encode_request(request, version, correlation_id, CLIENT_ID)
            .unwrap_or_else(|error| panic!("encode {api_key:?} v{version}: {error:#}"));
        frame::write_frame(&mut self.stream, &bytes).unwrap();
        let response = frame::read_frame(&mut self.stream, RESPONSE_FRAME_MAX_BYTES)
            .unwrap_or_else(|error| panic!("{api_key:?} v{version}: no response: {error:#}"));
        let body = frame::split_response::<Req>(response, version, correlation_id)
            .unwrap_or_else(|error| panic!("{api_key:?} v{version}: {error:#}"));
        frame::decode_response::<Req>(body, version)
            .unwrap_or_else(|error| panic!("{api_key:?} v{version}: {error:#}"))
    }
}

/// Runs `shoal serve` with `args` and waits (bounded) for it to exit;
/// returns its status and stderr. Kills it if it does not exit.
pub fn serve_expecting_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal serve");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shoal serve {args:?} still running after {EXIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}
