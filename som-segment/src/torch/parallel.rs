//! Our CPU kernels' work split over LibTorch's own threads.
//!
//! LibTorch runs its CPU operations on an OpenMP team; between two operations the team's
//! workers keep spinning for a while, waiting for the next one. A kernel of ours that runs
//! between two LibTorch operations on another pool (rayon's) competes with those spinning
//! workers for the same cores: the SAM decoder's attention kernels, split over rayon's two
//! threads, took 0.7–0.96 of their one-thread time here. Handed to the OpenMP team itself
//! (libgomp's `GOMP_parallel`, the entry point LibTorch's own `#pragma omp parallel` compiles
//! to, looked up in the running process), the same split took 0.35–0.55 of it.
//!
//! Where the process has no libgomp (a LibTorch built with another OpenMP, or none), the
//! work goes to rayon instead: the same results, only slower.

use std::any::Any;
use std::os::raw::{c_char, c_uint, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// libgomp's entry points, as the running process provides them.
#[derive(Clone, Copy)]
struct Gomp {
    /// `void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads,
    /// unsigned flags)`: runs `fn(data)` on every thread of a new team and returns when all
    /// are done.
    parallel: unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint),
}

/// libgomp's `GOMP_parallel`, if the process has loaded it (LibTorch's wheels bring their
/// own `libgomp.so.1`).
fn gomp() -> Option<Gomp> {
    static GOMP: OnceLock<Option<Gomp>> = OnceLock::new();
    *GOMP.get_or_init(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
            }
            // SAFETY: dlsym with RTLD_DEFAULT (a null handle in glibc) and a NUL-terminated
            // name only looks the symbol up.
            let parallel = unsafe { dlsym(std::ptr::null_mut(), c"GOMP_parallel".as_ptr()) };
            if parallel.is_null() {
                return None;
            }
            // SAFETY: `GOMP_parallel` has had this signature in every libgomp since GCC 4.9
            // (symbol version GOMP_4.0), and a non-null result is that function.
            Some(Gomp {
                parallel: unsafe {
                    std::mem::transmute::<
                        *mut c_void,
                        unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint),
                    >(parallel)
                },
            })
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            None
        }
    })
}

/// One [`for_each_index`] call, shared by the team's threads.
struct Job<'a> {
    count: usize,
    next: AtomicUsize,
    work: &'a (dyn Fn(usize) + Sync),
    /// The first panic of any thread, resumed on the caller's thread afterwards.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Job<'_> {
    /// Takes indices until none is left (or a thread panicked).
    fn run(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.count {
                return;
            }
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.work)(i))) {
                // No thread takes another index after a panic.
                self.next.store(self.count, Ordering::Relaxed);
                self.panic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(payload);
            }
        }
    }
}

/// What every thread of the team runs: `data` is the caller's [`Job`].
extern "C" fn run_job(data: *mut c_void) {
    // SAFETY: `for_each_index` passes a pointer to its `Job`, which outlives the parallel
    // region (GOMP_parallel returns only after every thread has finished), and threads only
    // share it through `&` (atomics and a mutex). `run` catches every panic, so none
    // unwinds through this C frame.
    let job = unsafe { &*(data as *const Job) };
    job.run();
}

/// Calls `work(i)` for every `i` in `0..count`, each once, spread over LibTorch's
/// intra-op threads ([`tch::get_num_threads`]; rayon's when LibTorch's OpenMP is not
/// there), and returns when all are done. Threads take the next index as they finish one,
/// so uneven pieces balance. A panic in `work` is resumed here after the others stop.
pub(crate) fn for_each_index(count: usize, work: &(dyn Fn(usize) + Sync)) {
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
    if count <= 1 || threads == 1 {
        (0..count).for_each(work);
        return;
    }
    let Some(gomp) = gomp() else {
        use rayon::prelude::*;
        (0..count).into_par_iter().for_each(work);
        return;
    };
    let job = Job {
        count,
        next: AtomicUsize::new(0),
        work,
        panic: Mutex::new(None),
    };
    let team = c_uint::try_from(threads.min(count)).unwrap_or(1);
    // SAFETY: `run_job` is a C-ABI function that reads `job` only through a shared
    // reference; `job` lives until GOMP_parallel returns, after the team has finished.
    unsafe { (gomp.parallel)(run_job, &job as *const Job as *mut c_void, team, 0) };
    if let Some(payload) = job.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        std::panic::resume_unwind(payload);
    }
}

/// Calls `work(i, chunk)` for the `i`-th `len`-element chunk of `data` (the last one may be
/// shorter), the chunks spread over LibTorch's threads as [`for_each_index`] spreads indices.
pub(crate) fn for_each_chunk_mut<T: Send>(data: &mut [T], len: usize, work: impl Fn(usize, &mut [T]) + Sync) {
    if len == 0 || data.is_empty() {
        return;
    }
    let chunks: Vec<Mutex<&mut [T]>> = data.chunks_mut(len).map(Mutex::new).collect();
    for_each_index(chunks.len(), &|i| {
        let mut chunk = chunks[i].lock().unwrap_or_else(|e| e.into_inner());
        work(i, &mut chunk);
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::{for_each_chunk_mut, for_each_index, gomp};

    #[test]
    fn every_index_runs_once() {
        for count in [0usize, 1, 2, 7, 1000] {
            let seen: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
            for_each_index(count, &|i| {
                seen[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                seen.iter().all(|s| s.load(Ordering::Relaxed) == 1),
                "count {count}"
            );
        }
    }

    #[test]
    fn chunks_are_the_slices_chunks() {
        let mut data = vec![0usize; 103];
        for_each_chunk_mut(&mut data, 10, |i, chunk| {
            for (j, v) in chunk.iter_mut().enumerate() {
                *v = i * 10 + j + 1;
            }
        });
        assert_eq!(data, (1..=103).collect::<Vec<_>>());
        let mut empty: Vec<u8> = Vec::new();
        for_each_chunk_mut(&mut empty, 4, |_, _| panic!("no chunk"));
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let ran = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(|| {
            for_each_index(64, &|i| {
                ran.fetch_add(1, Ordering::Relaxed);
                assert_ne!(i, 5, "index five");
            })
        });
        let payload = result.expect_err("the panic comes back");
        let message = payload.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("index five"), "{message}");
        // The team is still usable afterwards.
        every_index_runs_once();
        assert!(ran.load(Ordering::Relaxed) >= 6);
    }

    /// LibTorch's CPU wheels link libgomp; the kernels must find it there (or they would
    /// silently fall back to rayon and lose their speed).
    #[test]
    fn runs_on_libtorchs_openmp_team() {
        assert_eq!(
            gomp().is_some(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
        if gomp().is_none() || tch::get_num_threads() < 2 {
            return;
        }
        // The caller's thread is in the team (as LibTorch's own operations run).
        let me = std::thread::current().id();
        let threads = Mutex::new(Vec::new());
        for_each_index(256, &|_| {
            std::thread::sleep(std::time::Duration::from_micros(200));
            threads.lock().unwrap().push(std::thread::current().id());
        });
        let threads = threads.into_inner().unwrap();
        assert!(threads.contains(&me));
        assert!(threads.iter().any(|t| *t != me), "one thread did all the work");
    }
}
