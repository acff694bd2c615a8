//! TLS for the blocking client. The handshake runs on the caller's thread
//! (so a refused certificate is the caller's error); then one relay
//! thread per connection carries bytes between the TLS socket and one end
//! of a local socket pair, whose other end the `Connection` reads and
//! writes as it would a plain TCP socket. So a TLS connection still splits
//! into a sender and a receiver that two threads drive
//! (`Connection::into_pipeline`), and poll(2) on its descriptor still
//! says when an answer is there, with no lock around the rustls state:
//! the relay thread alone holds it.
//!
//! Invariant: the relay's buffers are bounded (`RELAY_CHUNK_BYTES` taken
//! from the application only when rustls has sent everything before it,
//! at most `PLAINTEXT_PENDING_BYTES_MAX` decrypted and not yet delivered);
//! the thread ends when either side closes or fails, and its end of the
//! pair closing is what the `Connection` sees then.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// Plaintext taken from the application at once: one TLS record's worth.
const RELAY_CHUNK_BYTES: usize = 16 * 1024;
/// Decrypted bytes held for an application that does not read: a few
/// records; past it the relay stops reading the TLS socket.
const PLAINTEXT_PENDING_BYTES_MAX: usize = 256 * 1024;

/// Runs the TLS handshake on `socket` (blocking, within its timeouts) as
/// a client of `name`, then starts the relay; the application's end.
pub fn connect(
    mut socket: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> anyhow::Result<UnixStream> {
    let mut tls = ClientConnection::new(config, name).context("starting TLS")?;
    while tls.is_handshaking() {
        tls.complete_io(&mut socket)
            .context("TLS handshake failed")?;
    }
    let (application, relay_end) = UnixStream::pair().context("making the TLS relay's sockets")?;
    socket.set_nonblocking(true).context("TLS socket")?;
    relay_end
        .set_nonblocking(true)
        .context("TLS relay socket")?;
    std::thread::Builder::new()
        .name("shoal-tls-relay".to_string())
        .spawn(move || Relay::new(tls, socket, relay_end).run())
        .context("starting the TLS relay thread")?;
    Ok(application)
}

struct Relay {
    tls: ClientConnection,
    net: TcpStream,
    application: UnixStream,
    /// Decrypted, not yet written to the application.
    to_application: Vec<u8>,
    chunk: Box<[u8]>,
    /// The server has not closed.
    net_open: bool,
}

fn would_block(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

impl Relay {
    fn new(tls: ClientConnection, net: TcpStream, application: UnixStream) -> Relay {
        Relay {
            tls,
            net,
            application,
            to_application: Vec::new(),
            chunk: vec![0; RELAY_CHUNK_BYTES].into_boxed_slice(),
            net_open: true,
        }
    }

    /// Moves bytes both ways until a side closes or fails.
    fn run(mut self) {
        while self.move_bytes().is_ok() {
            if !self.net_open && self.to_application.is_empty() {
                return;
            }
            let want_net_read = self.net_open
                && self.tls.wants_read()
                && self.to_application.len() < PLAINTEXT_PENDING_BYTES_MAX;
            let want_application_read = !self.tls.wants_write();
            let mut fds = [
                pollfd(&self.net, want_net_read, self.tls.wants_write()),
                pollfd(
                    &self.application,
                    want_application_read,
                    !self.to_application.is_empty(),
                ),
            ];
            // SAFETY: `fds` is a live array of two initialised pollfds
            // whose descriptors this relay owns for its whole life.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if ready < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            let readable = |fd: &libc::pollfd| {
                fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
            };
            if want_net_read && readable(&fds[0]) && self.read_net().is_err() {
                return;
            }
            if want_application_read && readable(&fds[1]) && self.read_application().is_err() {
                return;
            }
        }
    }

    /// Sends pending records, decrypts what rustls holds, and hands the
    /// application what it takes; fails when a side is gone.
    fn move_bytes(&mut self) -> std::io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.net) {
                Ok(_) => {}
                Err(error) if would_block(&error) => break,
                Err(error) => return Err(error),
            }
        }
        while self.to_application.len() < PLAINTEXT_PENDING_BYTES_MAX {
            match self.tls.reader().read(&mut self.chunk) {
                Ok(0) => {
                    self.net_open = false;
                    break;
                }
                Ok(read) => self.to_application.extend_from_slice(&self.chunk[..read]),
                Err(error) if would_block(&error) => break,
                Err(_) => {
                    self.net_open = false;
                    break;
                }
            }
        }
        if !self.to_application.is_empty() {
            match self.application.write(&self.to_application) {
                Ok(written) => {
                    self.to_application.drain(..written);
                }
                Err(error) if would_block(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn read_net(&mut self) -> std::io::Result<()> {
        match self.tls.read_tls(&mut self.net) {
            Ok(0) => self.net_open = false,
            Ok(_) => {
                if let Err(error) = self.tls.process_new_packets() {
                    // The alert that says why, if it can go.
                    let _ = self.tls.write_tls(&mut self.net);
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error));
                }
            }
            Err(error) if would_block(&error) => {}
            Err(error) => return Err(error),
        }
        Ok(())
    }

    fn read_application(&mut self) -> std::io::Result<()> {
        match self.application.read(&mut self.chunk) {
            Ok(0) => {
                self.tls.send_close_notify();
                let _ = self.tls.write_tls(&mut self.net);
                Err(std::io::ErrorKind::UnexpectedEof.into())
            }
            Ok(read) => self.tls.writer().write_all(&self.chunk[..read]),
            Err(error) if would_block(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

fn pollfd(fd: &impl AsRawFd, read: bool, write: bool) -> libc::pollfd {
    let mut events = 0;
    if read {
        events |= libc::POLLIN;
    }
    if write {
        events |= libc::POLLOUT;
    }
    libc::pollfd {
        // A negative descriptor is skipped: a hung-up socket not waited
        // on would otherwise wake poll(2) at once, again and again.
        fd: if events == 0 { -1 } else { fd.as_raw_fd() },
        events,
        revents: 0,
    }
}

#[cfg(test)]
#[path = "tls_relay_tests.rs"]
mod tests;
