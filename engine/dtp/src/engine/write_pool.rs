//! The writer thread's helpers: work (a receiving session's runs) done on up to a few
//! threads at once, so that the disk has several direct writes in flight (one at a time
//! leaves it idle between them, and the shard waiting for free run buffers), and a
//! barrier that holds the writer's ordered work (a hash, a journal) until everything
//! handed over before it is done.
//!
//! Threads start on demand: one while all the running ones are busy, up to the maximum,
//! so that a small transfer starts one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;

/// What the threads share: the queue they take from, and how much is not done yet.
struct Shared<T> {
    queue: Mutex<mpsc::Receiver<T>>,
    pending: Mutex<usize>,
    idle: Condvar,
}

fn lock<G>(mutex: &Mutex<G>) -> MutexGuard<'_, G> {
    // A thread that panicked in `work` leaves nothing half-changed under these locks.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Up to `max_threads` threads doing `work` on what they are handed.
pub(super) struct WritePool<T> {
    queue: Option<mpsc::Sender<T>>,
    shared: Arc<Shared<T>>,
    threads: Vec<JoinHandle<()>>,
    work: Arc<dyn Fn(T) + Send + Sync>,
    max_threads: usize,
}

impl<T: Send + 'static> WritePool<T> {
    pub(super) fn new(max_threads: usize, work: impl Fn(T) + Send + Sync + 'static) -> Self {
        let (queue, taken) = mpsc::channel();
        WritePool {
            queue: Some(queue),
            shared: Arc::new(Shared {
                queue: Mutex::new(taken),
                pending: Mutex::new(0),
                idle: Condvar::new(),
            }),
            threads: Vec::new(),
            work: Arc::new(work),
            max_threads,
        }
    }

    /// Hands `item` to a thread, starting one if all are busy and fewer than the maximum
    /// run. With no thread (none could start), does the work here.
    pub(super) fn run(&mut self, item: T) {
        let busy = *lock(&self.shared.pending);
        if busy >= self.threads.len() && self.threads.len() < self.max_threads {
            self.start_thread();
        }
        let Some(queue) = self.queue.as_ref().filter(|_| !self.threads.is_empty()) else {
            return (self.work)(item);
        };
        *lock(&self.shared.pending) += 1;
        if let Err(mpsc::SendError(item)) = queue.send(item) {
            // Cannot happen while the pool holds the receiving end; done here all the same.
            *lock(&self.shared.pending) -= 1;
            (self.work)(item);
        }
    }

    /// Waits until everything handed over is done.
    pub(super) fn wait_idle(&self) {
        let mut pending = lock(&self.shared.pending);
        while *pending > 0 {
            pending = self
                .shared
                .idle
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn start_thread(&mut self) {
        let shared = Arc::clone(&self.shared);
        let work = Arc::clone(&self.work);
        let spawned = std::thread::Builder::new()
            .name("hawser-dtp-write".into())
            .spawn(move || {
                loop {
                    let Ok(item) = lock(&shared.queue).recv() else {
                        return;
                    };
                    work(item);
                    *lock(&shared.pending) -= 1;
                    shared.idle.notify_all();
                }
            });
        if let Ok(handle) = spawned {
            self.threads.push(handle);
        }
    }
}

impl<T> Drop for WritePool<T> {
    fn drop(&mut self) {
        // Closing the queue ends each thread once the queue is empty.
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn work_runs_on_several_threads_and_the_barrier_waits_for_all_of_it() {
        let done = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let mut pool = {
            let (done, running, most) = (done.clone(), running.clone(), most_at_once.clone());
            WritePool::new(3, move |pause: u64| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(pause));
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            })
        };
        for _ in 0..12 {
            pool.run(20);
        }
        pool.wait_idle();
        assert_eq!(done.load(Ordering::SeqCst), 12);
        assert!(pool.threads.len() <= 3, "{} threads", pool.threads.len());
        assert!(
            most_at_once.load(Ordering::SeqCst) >= 2,
            "the work ran one at a time"
        );
    }

    #[test]
    fn one_item_starts_one_thread_and_dropping_the_pool_finishes_the_queue() {
        let done = Arc::new(AtomicUsize::new(0));
        let mut pool = {
            let done = done.clone();
            WritePool::new(4, move |()| {
                std::thread::sleep(Duration::from_millis(5));
                done.fetch_add(1, Ordering::SeqCst);
            })
        };
        pool.run(());
        assert_eq!(pool.threads.len(), 1);
        pool.run(());
        pool.run(());
        drop(pool);
        assert_eq!(done.load(Ordering::SeqCst), 3);
    }
}
