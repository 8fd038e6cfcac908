//! The worker threads of blocking handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam::channel::Receiver;

use super::install::HostHandle;
use crate::command::HostCommand;
use crate::service::{Job, to_reply};

/// A handler thread idle this long gives the memory freed by closed connections and
/// expired nexuses back to the system (see [`hawser_shards::release_free_memory`]).
const IDLE_BEFORE_RELEASING_MEMORY: std::time::Duration = std::time::Duration::from_secs(5);

/// A server's drain: once `draining` is set its listeners refuse new connections and its
/// handler threads start no more requests; `running` counts the requests they are in.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    pub(crate) draining: AtomicBool,
    pub(crate) running: AtomicUsize,
}

/// Runs blocking handlers: takes jobs, answers through `host`'s command channel. An
/// idle one also returns freed memory to the system when the host has freed some.
/// Once `drain` is draining, jobs are left unanswered: the process is about to exit and
/// their clients retry or resume elsewhere.
pub(crate) fn spawn_workers(
    count: usize,
    jobs: Receiver<Job>,
    host: &HostHandle,
    drain: &Arc<Drain>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..count)
        .map(|i| {
            let jobs = jobs.clone();
            let commands = host.commands.clone();
            let memory_freed = Arc::clone(&host.memory_freed);
            let drain = Arc::clone(drain);
            std::thread::Builder::new()
                .name(format!("hawser-handler-{i}"))
                .spawn(move || {
                    loop {
                        match jobs.recv_timeout(IDLE_BEFORE_RELEASING_MEMORY) {
                            Ok(job) => {
                                // Counted before the flag is read: a drainer that sees no
                                // running request knows none will start.
                                drain.running.fetch_add(1, Ordering::SeqCst);
                                if !drain.draining.load(Ordering::SeqCst) {
                                    let reply = to_reply((job.handler)(&job.ctx, job.body));
                                    // The host that received the request (a server may
                                    // run one per shard).
                                    let commands =
                                        job.ctx.caller.as_ref().map_or(&commands, |c| &c.commands);
                                    commands.send(HostCommand::Respond {
                                        request: job.ctx.request,
                                        reply,
                                    });
                                }
                                drain.running.fetch_sub(1, Ordering::SeqCst);
                            }
                            Err(crossbeam::channel::RecvTimeoutError::Timeout) => {
                                if memory_freed.swap(false, Ordering::AcqRel) {
                                    hawser_shards::release_free_memory();
                                }
                            }
                            Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
                        }
                    }
                })
                .expect("spawning a handler thread")
        })
        .collect()
}
