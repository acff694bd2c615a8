//! How shards reach each other: one bounded glommio shared channel for each
//! ordered pair of shards, carrying requests one way and the answers to the
//! other shard's requests the same way.
//!
//! Why not `futures_channel`'s mpsc and oneshot, which shoal used first:
//! with them a task's waker is woken and dropped on the other shard's
//! thread, and glommio 0.9 counts a task's wakers from other threads with
//! an atomic that its owner thread reads without synchronising with them
//! (`task/raw.rs`, `drop_waker` briefly takes the count to zero, then
//! raises it again to send the wake home). When the owner drops the task in
//! that window, it frees it, and the wake that arrives later frees it again:
//! under a flood of admin requests whose connections closed mid-call
//! (requests that wait on the controller shard), the broker died of
//! "double free detected in tcache 2" in `process_foreign_wakes`. glommio's
//! shared channels keep each side's waker on its own thread and signal the
//! other side's reactor instead, so no task waker ever crosses a thread.
//!
//! Invariants: no `Waker` leaves its shard; the task that reads a channel
//! never waits on anything but that channel (it spawns each request's work
//! and completes local replies), so every channel drains whatever its
//! sender waits for, and sends that wait for room cannot deadlock.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::sync::{Semaphore, StaticPermit};

use super::messages::{ShardReply, ShardRequest};

/// Room in each channel. Messages are boxed, so a slot is a few words; a
/// sender finding it full waits for the reader, which never waits itself.
const CHANNEL_MESSAGES_MAX: usize = 256;
/// How often a shard looks again at the ends it is connecting (see
/// `Links::connect`).
const CONNECT_POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// Connecting polls past which the wait is worth a debug line.
const CONNECT_POLLS_LOGGED: u64 = 20;

/// What travels between shards. Boxed, so a channel's slots stay small
/// whatever the largest request.
pub enum Message {
    Request { id: u64, request: Box<ShardRequest> },
    Reply { id: u64, reply: Box<ShardReply> },
}

/// One shard's channel ends before it starts: built on the main thread,
/// moved to the shard, connected there (`Links::connect`).
pub struct Links {
    to: Vec<Option<SharedSender<Message>>>,
    from: Vec<Option<SharedReceiver<Message>>>,
}

/// The links of `count` shards, in shard order: shard `i` sends to `j` on
/// `links[i].to[j]`, which `links[j].from[i]` reads.
pub fn links(count: usize) -> Vec<Links> {
    let mut links: Vec<Links> = (0..count)
        .map(|_| Links {
            to: (0..count).map(|_| None).collect(),
            from: (0..count).map(|_| None).collect(),
        })
        .collect();
    for from in 0..count {
        for to in 0..count {
            if from != to {
                let (sender, receiver) = shared_channel::new_bounded(CHANNEL_MESSAGES_MAX);
                links[from].to[to] = Some(sender);
                links[to].from[from] = Some(receiver);
            }
        }
    }
    links
}

impl Links {
    /// Connects every end; each connection waits for the other shard to
    /// connect its end, so every shard must be connecting at the same time.
    pub async fn connect(self) -> (Mesh, Vec<(usize, ConnectedReceiver<Message>)>) {
        let senders = futures_util::future::join_all(
            self.to
                .into_iter()
                .map(|end| async move { Some(end?.connect().await) }),
        );
        let receivers = futures_util::future::join_all(
            self.from
                .into_iter()
                .enumerate()
                .filter_map(|(peer, end)| end.map(|end| (peer, end)))
                .map(|(peer, end)| async move { (peer, end.connect().await) }),
        );
        // Together: a shard connecting its senders first would wait for
        // peers doing the same.
        let mut connecting = std::pin::pin!(futures_util::future::join(senders, receivers));
        // glommio re-polls a connecting end only when its reactor passes
        // for some other reason; on a loaded machine, one start in ten to
        // twenty had a shard asleep with its peers connected and never
        // woke (both threads parked in io_uring; tests timed out waiting
        // for "shoal ready": 9 of 160 starts with three CPU hogs). Polling
        // the ends again on a timer sees the peers' connections whatever
        // wakes the reactor: 0 of 350 starts under the same load.
        let mut polls = 0u64;
        let (senders, receivers) = loop {
            let tick = std::pin::pin!(glommio::timer::sleep(CONNECT_POLL));
            match futures_util::future::select(connecting.as_mut(), tick).await {
                futures_util::future::Either::Left((connected, _)) => break connected,
                futures_util::future::Either::Right(((), _)) => polls += 1,
            }
        };
        if polls > CONNECT_POLLS_LOGGED {
            log::debug!("mesh connected after {polls} polls");
        }
        (Mesh::new(senders), receivers)
    }
}

/// A shard's sending side, and the calls it waits on.
pub struct Mesh {
    senders: Vec<Option<ConnectedSender<Message>>>,
    next_id: Cell<u64>,
    /// Calls sent and not answered yet: where the answer goes, and the
    /// permit that counts the call against its bound until the answer is
    /// back, even when the caller stopped waiting.
    waiting: RefCell<HashMap<u64, Waiting>>,
}

struct Waiting {
    to: usize,
    answer: oneshot::Sender<ShardReply>,
    _permit: StaticPermit,
}

/// Why a call got no answer: the other shard is gone (shutdown).
pub struct Unreachable;

impl Mesh {
    fn new(senders: Vec<Option<ConnectedSender<Message>>>) -> Mesh {
        Mesh {
            senders,
            next_id: Cell::new(0),
            waiting: RefCell::new(HashMap::new()),
        }
    }

    /// Sends `request` to shard `to` and waits for its answer. `calls`
    /// bounds this shard's unanswered calls to `to`.
    pub async fn call(
        &self,
        to: usize,
        calls: &Rc<Semaphore>,
        request: ShardRequest,
    ) -> Result<ShardReply, Unreachable> {
        let Some(Some(sender)) = self.senders.get(to) else {
            return Err(Unreachable);
        };
        let permit = calls
            .acquire_static_permit(1)
            .await
            .map_err(|_| Unreachable)?;
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let message = Message::Request {
            id,
            request: Box::new(request),
        };
        // Dropped while waiting for room, the call never went: nothing to
        // undo. Once sent it is entered before anything else runs on this
        // shard (the send's last poll puts it in the channel and returns),
        // so the answer, read by another task here, finds it.
        if sender.send(message).await.is_err() {
            return Err(Unreachable);
        }
        let (reply, answer) = oneshot::channel();
        self.waiting.borrow_mut().insert(
            id,
            Waiting {
                to,
                answer: reply,
                _permit: permit,
            },
        );
        answer.await.map_err(|_| Unreachable)
    }

    /// Sends the answer to call `id` back to shard `to`.
    pub async fn reply(&self, to: usize, id: u64, reply: ShardReply) {
        if let Some(Some(sender)) = self.senders.get(to) {
            // Fails only when that shard has stopped reading (shutdown).
            let _ = sender
                .send(Message::Reply {
                    id,
                    reply: Box::new(reply),
                })
                .await;
        }
    }

    /// Hands an answer that came back to the call waiting for it; the
    /// call's permit goes with the entry.
    pub fn answered(&self, id: u64, reply: ShardReply) {
        let entry = self.waiting.borrow_mut().remove(&id);
        if let Some(waiting) = entry {
            // The caller may have stopped waiting: then the answer goes.
            let _ = waiting.answer.send(reply);
        }
    }

    /// Shard `peer` stopped (its channel to this one closed): its callers
    /// here see `Unreachable` rather than wait for answers that cannot come.
    pub fn peer_gone(&self, peer: usize) {
        let gone: Vec<Waiting> = {
            let mut waiting = self.waiting.borrow_mut();
            let ids: Vec<u64> = waiting
                .iter()
                .filter(|(_, call)| call.to == peer)
                .map(|(&id, _)| id)
                .collect();
            ids.iter().filter_map(|id| waiting.remove(id)).collect()
        };
        drop(gone);
    }

    /// Ends every call still waiting (shutdown): their callers see
    /// `Unreachable`.
    pub fn close(&self) {
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        drop(waiting);
        for sender in self.senders.iter().flatten() {
            sender.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    /// Runs `shard` on executors of their own, one per link, and waits for all.
    fn run_shards<F, Fut>(shard: F)
    where
        F: Fn(usize, Links) -> Fut + Send + Clone + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let threads: Vec<_> = links(2)
            .into_iter()
            .enumerate()
            .map(|(id, links)| {
                let shard = shard.clone();
                glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                    .io_memory(super::super::SHARD_IO_MEMORY_BYTES)
                    .spawn(move || shard(id, links))
                    .expect("spawn executor")
            })
            .collect();
        for thread in threads {
            thread.join().expect("shard thread");
        }
    }

    /// Answers calls with `Done` until the other shard goes away or `limit`
    /// were answered, and counts them.
    async fn answer(mesh: &Mesh, receiver: ConnectedReceiver<Message>, limit: usize) -> usize {
        let mut calls = 0;
        while calls < limit {
            match receiver.recv().await {
                Some(Message::Request { id, .. }) => {
                    calls += 1;
                    mesh.reply(0, id, ShardReply::Done).await;
                }
                Some(Message::Reply { .. }) => {}
                None => break,
            }
        }
        calls
    }

    #[test]
    fn calls_get_their_answers_and_a_gone_peer_fails_the_rest() {
        run_shards(|id, links| async move {
            let (mesh, mut receivers) = links.connect().await;
            let (peer, receiver) = receivers.pop().expect("one peer");
            if id == 1 {
                // Then this shard stops, with the fourth call unanswered.
                assert_eq!(answer(&mesh, receiver, 3).await, 3);
                return;
            }
            let mesh = Rc::new(mesh);
            let reader = {
                let mesh = mesh.clone();
                glommio::spawn_local(async move {
                    while let Some(message) = receiver.recv().await {
                        if let Message::Reply { id, reply } = message {
                            mesh.answered(id, *reply);
                        }
                    }
                    mesh.peer_gone(peer);
                })
            };
            let calls = Rc::new(Semaphore::new(2));
            for _ in 0..3 {
                let reply = mesh.call(1, &calls, ShardRequest::PartitionSizes).await;
                assert!(matches!(reply, Ok(ShardReply::Done)));
            }
            // Every permit came back with its answer.
            assert_eq!(calls.available(), 2);
            let reply = mesh.call(1, &calls, ShardRequest::PartitionSizes).await;
            assert!(matches!(reply, Err(Unreachable)));
            assert_eq!(calls.available(), 2);
            reader.await;
            mesh.close();
        });
    }

    #[test]
    fn a_call_dropped_before_its_answer_keeps_its_permit_until_the_answer() {
        run_shards(|id, links| async move {
            let (mesh, mut receivers) = links.connect().await;
            let (_, receiver) = receivers.pop().expect("one peer");
            if id == 1 {
                answer(&mesh, receiver, usize::MAX).await;
                return;
            }
            let calls = Rc::new(Semaphore::new(1));
            let call = mesh.call(1, &calls, ShardRequest::PartitionSizes);
            // Polled once: sent, then dropped while it waits for the answer.
            let mut call = Box::pin(call);
            let waker = futures_util::task::noop_waker();
            let pending = call
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker));
            assert!(pending.is_pending());
            drop(call);
            assert_eq!(calls.available(), 0, "the call is still out there");
            match receiver.recv().await {
                Some(Message::Reply { id, reply }) => mesh.answered(id, *reply),
                _ => panic!("expected the answer"),
            }
            assert_eq!(calls.available(), 1, "the answer freed the permit");
            mesh.close();
        });
    }
}
