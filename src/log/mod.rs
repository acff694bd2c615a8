//! TEMPORARY in-memory stand-in with the storage API; replaced by the real log.
#![allow(dead_code, clippy::all)]
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use crate::protocol::batch;

#[derive(Debug, Clone)]
pub enum FlushPolicy {
    Sync,
    Interval { flush_ms: u64 },
    None,
}
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub index_interval_bytes: u32,
    pub flush_policy: FlushPolicy,
    pub tail_cache_bytes: usize,
}
impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 604800000,
            index_interval_bytes: 4096,
            flush_policy: FlushPolicy::Sync,
            tail_cache_bytes: 4 << 20,
        }
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendWait {
    Nothing,
    Written,
    Durable,
}
#[derive(Debug, Clone)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
}
#[derive(Debug)]
pub enum LogError {
    OffsetOutOfRange {
        log_start_offset: i64,
        log_end_offset: i64,
    },
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    Io(std::io::Error),
    Closed,
}
impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
pub struct PartitionLog {
    batches: RefCell<Vec<(i64, Bytes)>>,
    leo: Cell<i64>,
    waiters: RefCell<Vec<std::task::Waker>>,
}
impl PartitionLog {
    pub async fn open(_dir: PathBuf, _config: LogConfig) -> Result<Rc<PartitionLog>, LogError> {
        Ok(Rc::new(PartitionLog {
            batches: RefCell::new(vec![]),
            leo: Cell::new(0),
            waiters: RefCell::new(vec![]),
        }))
    }
    pub fn log_start_offset(&self) -> i64 {
        0
    }
    pub fn log_end_offset(&self) -> i64 {
        self.leo.get()
    }
    pub fn high_watermark(&self) -> i64 {
        self.leo.get()
    }
    pub fn leader_epoch(&self) -> i32 {
        0
    }
    pub fn size_bytes(&self) -> u64 {
        0
    }
    pub async fn append(
        self: &Rc<Self>,
        mut batches: BytesMut,
        _wait: AppendWait,
        t: Option<i64>,
    ) -> Result<AppendResult, LogError> {
        let base = self.leo.get();
        while !batches.is_empty() {
            let size = batch::framed_size(&batches).map_err(|e| LogError::Corrupt {
                path: PathBuf::new(),
                position: 0,
                reason: format!("{e:?}"),
            })?;
            let mut one = batches.split_to(size);
            let leo = self.leo.get();
            batch::set_base_offset(&mut one, leo);
            if let Some(t) = t {
                batch::set_log_append_time(&mut one, t);
            }
            let last = batch::BatchHeader::view(&one).unwrap().last_offset();
            self.batches.borrow_mut().push((leo, one.freeze()));
            self.leo.set(last + 1);
        }
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
        Ok(AppendResult {
            base_offset: base,
            last_offset: self.leo.get() - 1,
            log_start_offset: 0,
        })
    }
    pub async fn read(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Vec<Bytes>, LogError> {
        if offset < 0 || offset > self.leo.get() {
            return Err(LogError::OffsetOutOfRange {
                log_start_offset: 0,
                log_end_offset: self.leo.get(),
            });
        }
        let mut out = vec![];
        let mut size = 0;
        for (base, b) in self.batches.borrow().iter() {
            let last = batch::BatchHeader::view(b).unwrap().last_offset();
            if last < offset {
                continue;
            }
            if *base >= max_offset {
                break;
            }
            if size + b.len() > max_bytes && !(min_one_batch && out.is_empty()) {
                break;
            }
            size += b.len();
            out.push(b.clone());
        }
        Ok(out)
    }
    pub fn wait_for_data(&self) -> impl std::future::Future<Output = ()> + '_ {
        let start = self.leo.get();
        std::future::poll_fn(move |cx| {
            if self.leo.get() > start {
                std::task::Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
    }
    pub async fn offset_for_timestamp(&self, _ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        Ok(None)
    }
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        Ok(None)
    }
    pub async fn checkpoint(&self) -> Result<(), LogError> {
        Ok(())
    }
    pub async fn close(&self) -> Result<(), LogError> {
        Ok(())
    }
    pub async fn delete(&self) -> Result<(), LogError> {
        Ok(())
    }
}
