//! Admission control: how many requests are held, how many images are worked
//! on at once, and one request at a time on a segmenter that needs it.
//!
//! A request first takes an *admission* slot without waiting (none free:
//! `503` with `Retry-After`), then waits for a *worker* (and, for an
//! exclusive segmenter, that segmenter's own permit), and runs its CPU stages
//! on tokio's blocking pool. The worker permit travels with the blocking job
//! and is released when the job ends, not when the request gives up: a request
//! that times out cannot leave more CPU work running than there are workers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Failure;
use crate::limits::Limits;

/// The server's admission slots and workers.
#[derive(Debug)]
pub(crate) struct Admission {
    admitted: Arc<Semaphore>,
    capacity: usize,
    workers: Arc<Semaphore>,
    /// Exponentially weighted mean of the CPU jobs' durations, in ms.
    mean_job_ms: AtomicU64,
    max_concurrent: usize,
}

impl Admission {
    pub fn new(limits: &Limits) -> Self {
        Self {
            admitted: Arc::new(Semaphore::new(limits.admitted())),
            capacity: limits.admitted(),
            workers: Arc::new(Semaphore::new(limits.max_concurrent)),
            mean_job_ms: AtomicU64::new(0),
            max_concurrent: limits.max_concurrent,
        }
    }

    /// An admission slot, or `503` with `Retry-After` when every slot is taken.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Failure> {
        self.admitted.clone().try_acquire_owned().map_err(|_| {
            Failure::busy(
                format!(
                    "the server is busy ({} requests in progress); retry later",
                    self.capacity
                ),
                self.retry_after(),
            )
        })
    }

    /// Runs `job` on the blocking pool once a worker (and the `exclusive`
    /// permit, if given) is free.
    pub async fn run<T: Send + 'static>(
        &self,
        exclusive: Option<&Arc<Semaphore>>,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Failure> {
        // The exclusive permit first: a request waiting for a busy model must
        // not hold a worker the other segmenters could use.
        let exclusive = match exclusive {
            Some(s) => Some(s.clone().acquire_owned().await.map_err(closed)?),
            None => None,
        };
        let worker = self.workers.clone().acquire_owned().await.map_err(closed)?;
        let start = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let out = job();
            drop((worker, exclusive));
            out
        })
        .await
        .map_err(|e| {
            Failure::internal(if e.is_panic() {
                "the request failed inside the server (a bug: please report it)"
            } else {
                "the request was cancelled"
            })
        })?;
        self.record(start.elapsed());
        Ok(out)
    }

    /// Requests admitted (working or waiting), and how many are working.
    pub fn load(&self) -> (usize, usize) {
        (
            self.capacity - self.admitted.available_permits(),
            self.max_concurrent - self.workers.available_permits(),
        )
    }

    /// Seconds a refused client should wait: about the time the queue ahead of
    /// it takes to drain, at least one second and at most two minutes.
    pub fn retry_after(&self) -> u64 {
        let per_job = self.mean_job_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        let rounds = self.capacity as f64 / self.max_concurrent.max(1) as f64;
        (per_job * rounds).ceil().clamp(1.0, 120.0) as u64
    }

    fn record(&self, took: Duration) {
        let ms = took.as_millis().min(u128::from(u64::MAX)) as u64;
        // A lost update under contention only skews an estimate.
        let old = self.mean_job_ms.load(Ordering::Relaxed);
        let new = if old == 0 { ms } else { (old * 7 + ms) / 8 };
        self.mean_job_ms.store(new, Ordering::Relaxed);
    }
}

fn closed(_: tokio::sync::AcquireError) -> Failure {
    Failure::internal("the server is shutting down")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrent: usize, queue: usize) -> Limits {
        Limits {
            max_concurrent: concurrent,
            max_queue: queue,
            ..Limits::default()
        }
    }

    #[test]
    fn slots_run_out_and_come_back() {
        let a = Admission::new(&limits(1, 1));
        let first = a.admit().unwrap();
        let _second = a.admit().unwrap();
        let refused = a.admit().unwrap_err();
        assert_eq!(refused.status.as_u16(), 503);
        assert_eq!(refused.retry_after, Some(1));
        assert_eq!(a.load().0, 2);
        drop(first);
        assert!(a.admit().is_ok());
    }

    #[tokio::test]
    async fn jobs_run_on_the_blocking_pool_and_panics_are_answered() {
        let a = Admission::new(&limits(2, 0));
        assert_eq!(a.run(None, || 41 + 1).await.unwrap(), 42);
        let e = a
            .run(None, || -> u32 { panic!("a bug in a stage") })
            .await
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 500);
        // The worker came back after the panic.
        assert_eq!(a.load().1, 0);
    }

    #[tokio::test]
    async fn an_exclusive_segmenter_runs_one_job_at_a_time() {
        let a = Arc::new(Admission::new(&limits(4, 0)));
        let exclusive = Arc::new(Semaphore::new(1));
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (a, exclusive, running, most) = (a.clone(), exclusive.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                a.run(Some(&exclusive), move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn retry_after_follows_the_job_time() {
        let a = Admission::new(&limits(2, 6));
        a.record(Duration::from_millis(1500));
        // Eight admitted on two workers: four rounds of 1.5 s.
        assert_eq!(a.retry_after(), 6);
        a.record(Duration::from_secs(10_000));
        assert_eq!(a.retry_after(), 120);
    }
}
