//! Checks made before any shard starts, each failing with a message that
//! names the cause and the fix instead of a panic or a hang inside glommio.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::config::BrokerConfig;
use crate::shard::SHARD_IO_MEMORY_BYTES;

/// Locked memory beyond the shards' io_uring buffers: the rings themselves.
pub const LOCKED_MEMORY_HEADROOM_BYTES: u64 = 1 << 20;
const LOCK_FILE: &str = ".lock";
/// How long a port held by a just-killed process may take to be released.
const PORT_RELEASE_WAIT_MS_MAX: u64 = 5_000;
const PORT_RELEASE_POLL_MS: u64 = 50;
/// How long the probe for a listener on the port waits for a connection;
/// anything listening on this host answers far sooner.
const LISTENER_PROBE_TIMEOUT_MS: u64 = 1_000;

/// Holds the data directory's lock for as long as it lives.
pub struct DataDirLock {
    _file: File,
}

/// Takes an exclusive `flock` on `<data_dir>/.lock`, so that a second broker
/// on the same directory refuses to start instead of corrupting it.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = data_dir.join(LOCK_FILE);
    let file = File::create(&path)
        .map_err(|error| anyhow::anyhow!("cannot create lock file {}: {error}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        bail!(
            "data directory {} is in use by another shoal broker (lock file {} is held); stop that broker or choose another --data-dir",
            data_dir.display(),
            path.display()
        );
    }
    Ok(DataDirLock { _file: file })
}

/// The `RLIMIT_MEMLOCK` that `shards` shards need: their io_uring buffers
/// and the rings.
pub fn locked_memory_needed_bytes(shards: usize) -> u64 {
    SHARD_IO_MEMORY_BYTES as u64 * shards as u64 + LOCKED_MEMORY_HEADROOM_BYTES
}

/// Makes sure `RLIMIT_MEMLOCK` covers every shard's io_uring buffers, raising
/// it when allowed (root, or a hard limit high enough).
pub fn ensure_locked_memory(shards: usize) -> anyhow::Result<()> {
    let needed = locked_memory_needed_bytes(shards);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        bail!(
            "cannot read the locked-memory limit: {}",
            std::io::Error::last_os_error()
        );
    }
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= needed {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: needed,
        rlim_max: if limit.rlim_max == libc::RLIM_INFINITY {
            libc::RLIM_INFINITY
        } else {
            limit.rlim_max.max(needed)
        },
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
        log::info!("raised the locked-memory limit to {} KiB", needed / 1024);
        return Ok(());
    }
    bail!(
        "the locked-memory limit (ulimit -l) is {} KiB but {shards} shard(s) need {} KiB for io_uring buffers, and it cannot be raised here. \
         Fix: run `ulimit -l {}` (or LimitMEMLOCK= in a systemd unit, --ulimit memlock= for a container) before starting shoal, or start fewer shards with --shards",
        limit.rlim_cur / 1024,
        needed / 1024,
        needed / 1024
    )
}

/// Creates and closes a tiny io_uring, so that a kernel without io_uring or
/// a seccomp profile that blocks it is reported in words, not as a panic.
pub fn probe_io_uring() -> anyhow::Result<()> {
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup writes at most sizeof(struct io_uring_params)
    // (120 bytes) into the buffer we pass; a returned fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        let fix = match error.raw_os_error() {
            Some(libc::ENOSYS) => "this kernel has no io_uring: shoal needs Linux 5.8 or newer",
            Some(libc::EPERM) | Some(libc::EACCES) => {
                "io_uring is blocked: check the sysctl kernel.io_uring_disabled (set it to 0) or, in a container, a seccomp profile that allows io_uring_setup/io_uring_enter/io_uring_register"
            }
            Some(libc::ENOMEM) => "the locked-memory limit is too small for io_uring: raise `ulimit -l`",
            _ => "io_uring could not be set up",
        };
        bail!("io_uring unavailable ({error}): {fix}");
    }
    // SAFETY: closing the fd io_uring_setup just returned.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Fails early when another process already listens on `listen`. Every shard
/// binds with SO_REUSEPORT, which would otherwise quietly share the port with
/// any other SO_REUSEPORT listener of the same user. A broker killed a moment
/// ago can still hold its port while the kernel tears down its io_uring rings,
/// so "in use" is retried for a bounded time before it is reported.
///
/// The connections a killed broker had open also hold the port, in
/// TIME_WAIT or FIN_WAIT for up to a minute, and the probe's plain bind
/// counts them (they lack SO_REUSEADDR); the shards' SO_REUSEPORT binds do
/// not. So "in use" with nothing accepting connections is no conflict.
pub fn check_port_free(listen: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(PORT_RELEASE_WAIT_MS_MAX);
    loop {
        match std::net::TcpListener::bind(listen) {
            Ok(_) => return Ok(()),
            Err(error) if error.kind() == ErrorKind::AddrInUse && !accepts_connections(listen) => {
                return Ok(())
            }
            Err(error) if error.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(PORT_RELEASE_POLL_MS));
            }
            Err(error) => bail!("cannot listen on {listen}: {error}"),
        }
    }
}

/// Fails early when the client listener's ports are taken: the shared
/// port and, in shard-aware mode, each shard's own. A pure controller
/// (`process.roles=controller`) binds no client listener, so it has none
/// to check (its CONTROLLER listener is checked where it is bound).
pub fn check_client_ports(config: &BrokerConfig) -> anyhow::Result<()> {
    if config.cluster.pure_controller() {
        return Ok(());
    }
    check_port_free(&config.listen)?;
    if config.listener_shard_aware {
        for shard in 0..config.shards {
            check_port_free(&config.shard_listen_address(shard))?;
        }
    }
    Ok(())
}

/// Whether a listener accepts TCP connections on `listen`.
fn accepts_connections(listen: &str) -> bool {
    let timeout = Duration::from_millis(LISTENER_PROBE_TIMEOUT_MS);
    listen
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.any(|addr| TcpStream::connect_timeout(&addr, timeout).is_ok()))
}
