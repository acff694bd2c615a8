//! Tests of `connection.rs`: frames read whole however they arrive, the
//! read buffer's allocations, and answers written whole and in order from
//! memory and from files (cached, or evicted and read back).

use super::*;
use futures_lite::AsyncReadExt;

fn chunks(lengths: &[usize]) -> Vec<Chunk> {
    lengths
        .iter()
        .map(|&n| Chunk::Memory(Bytes::from(vec![7u8; n])))
        .collect()
}

#[test]
fn advance_walks_across_pieces_and_skips_empty_ones() {
    let pieces = chunks(&[3, 0, 5, 2]);
    let start = ChunkPosition::default();
    let at = |index, offset| ChunkPosition { index, offset };
    assert_eq!(start.advance(&pieces, 2), at(0, 2));
    assert_eq!(start.advance(&pieces, 3), at(2, 0));
    assert_eq!(start.advance(&pieces, 4), at(2, 1));
    assert_eq!(at(2, 1).advance(&pieces, 4), at(3, 0));
    assert_eq!(at(2, 1).advance(&pieces, 5), at(3, 1));
    assert_eq!(start.advance(&pieces, 10), at(4, 0));
}

/// Runs `reader` against a real socket whose client sends `pieces`
/// (pausing between them) and then stays connected and silent.
fn read_from_client<T: Send + 'static>(
    pieces: Vec<Vec<u8>>,
    reader: impl FnOnce(TcpStream) -> futures_lite::future::BoxedLocal<T> + Send + 'static,
) -> T {
    crate::shard::block_on(move || async move {
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let (done, finished) = futures_channel::oneshot::channel::<()>();
        let client = glommio::spawn_local(async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            for piece in pieces {
                stream.write_all(&piece).await.expect("write");
                glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
            }
            let _ = finished.await;
        });
        let stream = listener.accept().await.expect("accept");
        let result = reader(stream).await;
        drop(done);
        client.await;
        result
    })
}

fn frame_bytes(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn frames_split_and_joined_anyhow_come_out_whole_and_in_order() {
    let bodies: Vec<Vec<u8>> = (1..=5u8).map(|n| vec![n; n as usize * 1000]).collect();
    let stream: Vec<u8> = bodies.iter().flat_map(|b| frame_bytes(b)).collect();
    // Cuts inside a size prefix, inside bodies, and several frames at once.
    let cuts = [0, 2, 3, 1500, 1504, 9000, stream.len()];
    let pieces = cuts
        .windows(2)
        .map(|w| stream[w[0]..w[1]].to_vec())
        .collect();
    let frames = read_from_client(pieces, move |stream| {
        Box::pin(async move {
            let mut stream = ReadHalf::Plain(stream);
            let mut reader = FrameReader::default();
            let in_flight = Cell::new(0);
            let mut frames = Vec::new();
            for _ in 0..5 {
                let frame = reader.next(&mut stream, 1 << 20, &in_flight).await;
                frames.push(frame.ok().flatten().expect("a frame").to_vec());
            }
            frames
        })
    });
    assert!(frames == bodies, "frames differ");
}

/// A frame whose size is known before all of it is read lies in an
/// allocation that ends where it ends: the bytes of the next frame, sent
/// with its last piece, go to another (`frame_allocation_bytes_max`).
#[test]
fn a_frame_read_in_pieces_shares_its_allocation_with_no_other() {
    let first = vec![1u8; 3 * READ_CHUNK_BYTES_MAX];
    let second = vec![2u8; 100];
    let mut stream = frame_bytes(&first);
    stream.extend_from_slice(&frame_bytes(&second));
    let cuts = [0, 1000, READ_CHUNK_BYTES_MAX, stream.len()];
    let pieces = cuts
        .windows(2)
        .map(|w| stream[w[0]..w[1]].to_vec())
        .collect();
    let (frames, spare_after_first) = read_from_client(pieces, move |stream| {
        Box::pin(async move {
            let mut stream = ReadHalf::Plain(stream);
            let mut reader = FrameReader::default();
            let in_flight = Cell::new(0);
            let one = reader.next(&mut stream, 1 << 20, &in_flight).await;
            let spare = reader.buffer.capacity();
            let two = reader.next(&mut stream, 1 << 20, &in_flight).await;
            let frames: Vec<Vec<u8>> = [one, two]
                .into_iter()
                .map(|frame| frame.ok().flatten().expect("a frame").to_vec())
                .collect();
            (frames, spare)
        })
    });
    assert!(frames == [first, second], "frames differ");
    assert_eq!(
        spare_after_first, 0,
        "room past the frame in its allocation"
    );
}

#[test]
fn a_big_announced_frame_pins_only_what_arrived() {
    let announced: u32 = 100_000_000;
    let mut piece = announced.to_be_bytes().to_vec();
    piece.extend_from_slice(&[7; 10]);
    let (error, capacity) = read_from_client(vec![piece], |stream| {
        Box::pin(async move {
            stream
                .set_read_timeout(Some(std::time::Duration::from_millis(200)))
                .expect("timeout");
            let mut stream = ReadHalf::Plain(stream);
            let mut reader = FrameReader::default();
            let result = reader.next(&mut stream, 1 << 30, &Cell::new(0)).await;
            (
                result.err().map(|e| e.to_string()),
                reader.buffer.capacity(),
            )
        })
    });
    assert_eq!(error.as_deref(), Some("idle for connections.max.idle.ms"));
    assert!(capacity < 1024, "{capacity} bytes held for 14 received");
}

#[test]
fn a_frame_the_kernel_holds_whole_is_read_without_moving_its_bytes() {
    const FRAME_BYTES: usize = 1 << 20;
    // Room for the whole frame in the socket, set before the connection
    // is made so that the window offered covers it.
    const RECEIVE_BUFFER_BYTES: usize = 4 << 20;
    let body: Vec<u8> = (0..FRAME_BYTES).map(|n| (n % 251) as u8).collect();
    let sent = frame_bytes(&body);
    let (frame, capacity_left) = crate::shard::block_on(move || async move {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .set_recv_buffer_size(RECEIVE_BUFFER_BYTES)
            .expect("SO_RCVBUF");
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
        socket.bind(&any_port.into()).expect("bind");
        socket.listen(1).expect("listen");
        // SAFETY: the listening socket's descriptor, whose ownership
        // passes to the glommio listener.
        let listener = unsafe {
            glommio::net::TcpListener::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(socket))
        };
        let address = listener.local_addr().expect("address");
        let (written, all_written) = futures_channel::oneshot::channel::<()>();
        let client = glommio::spawn_local(async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            stream.write_all(&sent).await.expect("write");
            let _ = written.send(());
            stream
        });
        let mut stream = ReadHalf::Plain(listener.accept().await.expect("accept"));
        all_written.await.expect("the client wrote");
        let mut reader = FrameReader::default();
        let frame = reader.next(&mut stream, 1 << 30, &Cell::new(0)).await;
        drop(client.await);
        (frame.ok().flatten(), reader.buffer.capacity())
    });
    assert!(frame.is_some_and(|f| f == body), "the frame differs");
    // Grown read by read, the buffer would have doubled past the frame
    // (copying it at each step) and kept about as much again.
    assert!(
        capacity_left < READ_CHUNK_BYTES_MAX,
        "{capacity_left} bytes of room left past a frame read whole"
    );
}

#[test]
fn chunks_arrive_whole_and_in_order_through_a_small_socket_buffer() {
    // Pieces much larger than the socket buffer force the WouldBlock
    // path; many small ones force more than one sendmsg.
    let mut pieces = chunks(&[1, 0, 3_000_000, 17]);
    pieces.extend((0..3000).map(|n| Chunk::Memory(Bytes::from(vec![(n % 251) as u8; n % 97]))));
    let expected: Vec<u8> = pieces
        .iter()
        .flat_map(|p| p.memory().expect("in memory").iter().copied())
        .collect();
    let received = send_through_socket(pieces);
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "bytes differ");
}

/// What a reader on the other end of a socket receives when
/// `write_chunks` sends `pieces` on a non-blocking socket.
fn send_through_socket(pieces: Vec<Chunk>) -> Vec<u8> {
    send_counting_copies(pieces).0
}

/// `send_through_socket`, and the counts of the sending thread.
fn send_counting_copies(pieces: Vec<Chunk>) -> (Vec<u8>, crate::log::CopyCounts, WriteCounts) {
    crate::shard::block_on(move || async move {
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let reader = glommio::spawn_local(async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.expect("read");
            all
        });
        let mut stream = listener.accept().await.expect("accept");
        set_nonblocking(&stream).expect("O_NONBLOCK");
        write_chunks(&mut stream, &pieces).await.expect("write");
        stream.close().await.expect("close");
        (reader.await, crate::log::copy_counts(), write_counts())
    })
}

/// File ranges go out between memory pieces, in order, through a socket
/// that fills (each wait for room sends one byte through glommio), and
/// from a file removed after the ranges were made.
#[test]
fn file_ranges_arrive_whole_and_in_order_between_memory_pieces() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("segment");
    let file_bytes: Vec<u8> = (0..5_000_000u32).map(|n| (n % 241) as u8).collect();
    std::fs::write(&path, &file_bytes).expect("write the file");
    let file = std::sync::Arc::new(std::os::fd::OwnedFd::from(
        std::fs::File::open(&path).expect("open"),
    ));
    std::fs::remove_file(&path).expect("unlink");
    let range = |start: usize, len: usize| {
        Chunk::File(FileRange::new(file.clone(), start as u64, len, 0..1))
    };
    let pieces = vec![
        Chunk::Memory(Bytes::from_static(b"head")),
        range(10, 4_000_000),
        range(4_500_000, 3),
        Chunk::Memory(Bytes::from_static(b"middle")),
        range(0, 1),
        Chunk::Memory(Bytes::from_static(b"tail")),
    ];
    let mut expected = b"head".to_vec();
    expected.extend_from_slice(&file_bytes[10..4_000_010]);
    expected.extend_from_slice(&file_bytes[4_500_000..4_500_003]);
    expected.extend_from_slice(b"middle");
    expected.extend_from_slice(&file_bytes[..1]);
    expected.extend_from_slice(b"tail");
    let received = send_through_socket(pieces);
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "bytes differ");
}

/// Pages evicted between a fetch's read and its send are read back
/// through io_uring, not by `sendfile` on the shard's thread: the bytes
/// arrive whole and in order, and count as copied.
#[test]
fn evicted_pages_of_a_file_range_are_read_back_and_arrive_whole() {
    const RANGE_BYTES: usize = 2_500_000;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("segment");
    let file_bytes: Vec<u8> = (0..3_000_000u32).map(|n| (n % 239) as u8).collect();
    std::fs::write(&path, &file_bytes).expect("write the file");
    let file = std::fs::File::open(&path).expect("open");
    file.sync_all().expect("fsync: clean pages can be dropped");
    // SAFETY: advice on the open file; it touches no memory of ours.
    let advised = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(advised, 0, "posix_fadvise");
    let file = std::sync::Arc::new(std::os::fd::OwnedFd::from(file));
    let range = FileRange::new(file, 10, RANGE_BYTES, 0..1);
    assert!(
        !range.cached(0, RANGE_BYTES),
        "the pages stayed cached (tmpfs?): nothing to read back"
    );
    let pieces = vec![
        Chunk::Memory(Bytes::from_static(b"head")),
        Chunk::File(range),
        Chunk::Memory(Bytes::from_static(b"tail")),
    ];
    let mut expected = b"head".to_vec();
    expected.extend_from_slice(&file_bytes[10..10 + RANGE_BYTES]);
    expected.extend_from_slice(b"tail");
    let (received, counts, written) = send_counting_copies(pieces);
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "bytes differ");
    // The first step at least; readahead may bring the rest back.
    let copied = counts.copied_bytes as usize;
    assert!(
        (SEND_FILE_STEP_BYTES..=RANGE_BYTES).contains(&copied),
        "{copied} bytes read back"
    );
    // Read back or sent by the kernel, every byte once.
    let sent_from_file = written.file_bytes + counts.wait_bytes;
    assert_eq!(copied as u64 + sent_from_file, RANGE_BYTES as u64);
    assert_eq!(
        written.memory_bytes,
        (b"head".len() + b"tail".len() + copied) as u64 + counts.wait_bytes
    );
}
