//! `shoal bench` against the real broker, at a small size: produce, consume
//! and e2e each finish, count exactly, report no broker errors and ordered
//! latency percentiles. No timing is asserted.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// How long the broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker child process and its data directory, both gone on drop.
struct Broker {
    child: Child,
    data_dir: PathBuf,
    addr: String,
}

impl Broker {
    fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let data_dir = tempfile::tempdir().expect("a temp dir").keep();
        let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["serve", "--listen", &addr, "--shards", "2", "--data-dir"])
            .arg(&data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the broker");
        let mut broker = Broker {
            child,
            data_dir,
            addr,
        };
        broker.wait_ready();
        broker
    }

    /// Waits (bounded) for `shoal ready on ADDR` on the broker's stdout.
    fn wait_ready(&mut self) {
        let stdout = self.child.stdout.take().expect("piped stdout");
        let expected = format!("shoal ready on {}", self.addr);
        let (ready, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.trim() == expected {
                    let _ = ready.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(READY_TIMEOUT)
            .expect("the broker printed its ready line in time");
    }

    /// Runs `shoal bench ARGS --json` and returns its report.
    fn bench(&self, args: &[&str]) -> Value {
        let output = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .arg("bench")
            .args(args)
            .args(["--bootstrap", &self.addr, "--json"])
            .stderr(Stdio::inherit())
            .output()
            .expect("running shoal bench");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "shoal bench {args:?}: {stdout}");
        serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
            panic!("shoal bench {args:?} printed no JSON ({error}): {stdout}")
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Checks the parts of a report every mode shares.
fn assert_report(report: &Value, mode: &str, records: u64, record_size: u64) {
    assert_eq!(report["mode"], mode, "{report}");
    assert_eq!(report["records"].as_u64(), Some(records), "{report}");
    assert_eq!(
        report["bytes"].as_u64(),
        Some(records * record_size),
        "{report}"
    );
    assert_eq!(
        report["errors"].as_object().map(|e| e.len()),
        Some(0),
        "{report}"
    );
    for rate in ["seconds", "records_per_s", "mb_per_s"] {
        assert!(
            report[rate].as_f64().is_some_and(|v| v > 0.0),
            "{rate}: {report}"
        );
    }
    let latency = &report["latency_ms"];
    let ms = |name: &str| {
        latency[name]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_ms.{name} missing: {report}"))
    };
    let (p50, p90, p99, p999, max) = (ms("p50"), ms("p90"), ms("p99"), ms("p999"), ms("max"));
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "percentiles out of order: {report}"
    );
}

#[test]
fn bench_produce_consume_and_e2e_against_the_broker() {
    let broker = Broker::start();

    let produced = broker.bench(&[
        "produce",
        "--records",
        "20000",
        "--record-size",
        "100",
        "--partitions",
        "4",
    ]);
    assert_report(&produced, "produce", 20_000, 100);

    let consumed = broker.bench(&["consume", "--records", "20000"]);
    assert_report(&consumed, "consume", 20_000, 100);

    let e2e = broker.bench(&["e2e", "--records", "2000", "--rate", "2000"]);
    assert_report(&e2e, "e2e", 2000, 100);
}
