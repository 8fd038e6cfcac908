//! Setting hosts up on their shards and tearing them down (the control plane).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam::channel::{Receiver, Sender};
use hawser_session as session;
use hawser_shards::{Protocol, ShardHandler, Shards};

use super::conn::{RefusedConn, SessionConn};
use super::host::Serving;
use super::host::{
    ClientSide, DriverHandler, HOSTS, HOSTS_BY_ID, Host, ServerSide, Side, host_by_id,
    random_nonce, run_host, shard_task,
};
use super::sniff::SniffConn;
use super::workers::Drain;
use crate::ApiError;
use crate::address::Address;
use crate::command::{Caller, CommandSender, HostCommand, Readiness, Waker};
use crate::service::{HandlerTable, Job};
use crate::transport::{AcceptFactory, Transport};

/// The shards configuration the driver needs (its handler runs host timers).
pub(crate) fn shards_config(
    shards: usize,
    tcp_congestion: Option<String>,
) -> hawser_shards::ShardsConfig {
    hawser_shards::ShardsConfig {
        shards,
        tcp_congestion,
        handler: Some(Arc::new(|_| {
            Box::new(DriverHandler) as Box<dyn ShardHandler>
        })),
        ..hawser_shards::ShardsConfig::default()
    }
}

// ---- setting hosts up and tearing them down (control plane) ------------------------

static NEXT_HOST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A host running on a shard, seen from the thread that set it up.
pub(crate) struct HostHandle {
    pub(crate) id: u64,
    pub(crate) shard: usize,
    pub(crate) commands: CommandSender,
    /// Set by the host when connections closed or nexuses went away: memory to give
    /// back to the system (see [`spawn_workers`]).
    pub(crate) memory_freed: Arc<AtomicBool>,
}

/// The command channel of a host to be installed on `shard`.
fn command_channel(shards: &Arc<Shards>, shard: usize) -> (CommandSender, Receiver<HostCommand>) {
    let (tx, rx) = crossbeam::channel::unbounded();
    let waker = Waker::new(shards, shard, post_host_task);
    (CommandSender { tx, waker }, rx)
}

fn install(
    shards: &Arc<Shards>,
    shard: usize,
    (commands, rx): (CommandSender, Receiver<HostCommand>),
    serving: Serving,
    memory_freed: Arc<AtomicBool>,
    make: impl FnOnce() -> Side + Send + 'static,
) -> Result<HostHandle, hawser_shards::ShardError> {
    let id = NEXT_HOST.fetch_add(1, Ordering::Relaxed);
    let host_waker = commands.waker.clone();
    let freed = Arc::clone(&memory_freed);
    shards.call_on(shard, move |ctx| {
        let mut host = Host::new(id, make(), serving, rx, host_waker);
        host.memory_freed = freed;
        let host = Rc::new(RefCell::new(host));
        HOSTS.with(|h| h.borrow_mut().push((id, host.clone())));
        HOSTS_BY_ID.with(|h| h.borrow_mut().insert(id, host.clone()));
        run_host(ctx, &host, false);
    })?;
    Ok(HostHandle {
        id,
        shard,
        commands,
        memory_freed,
    })
}

/// Installs a client endpoint on `shard`, connecting over `transport`.
pub(crate) fn install_client(
    shards: &Arc<Shards>,
    shard: usize,
    config: session::ClientConfig,
    transport: Arc<dyn Transport>,
    ready: Sender<Readiness>,
    backchannel: Serving,
) -> Result<HostHandle, hawser_shards::ShardError> {
    install(
        shards,
        shard,
        command_channel(shards, shard),
        backchannel,
        Arc::new(AtomicBool::new(false)),
        move || {
            Side::Client(Box::new(ClientSide {
                ep: session::ClientEndpoint::new(config, Instant::now()),
                transport,
                ready: Some(ready),
            }))
        },
    )
}

/// A server's hosts, one per shard it runs on, and the addresses it listens on.
pub(crate) struct InstalledServer {
    /// In the order of the shards given; the first accepts.
    pub(crate) hosts: Vec<HostHandle>,
    /// Each host's caller for backchannel calls (shared with its handlers).
    pub(crate) callers: Vec<Arc<Caller>>,
    pub(crate) bound: Vec<Address>,
}

/// Installs a server endpoint on each shard of `on` (at least one) and listens on each
/// transport, the first of `on` accepting; once `drain` is draining its listeners close
/// what they accept. On several shards every connection opens on the shard its Hello's
/// route names ([`route::dsp_router`]), so all connections of an identity's nexuses
/// share a shard. If one cannot listen, the hosts are removed again.
#[allow(clippy::too_many_arguments)]
pub(crate) fn install_server(
    shards: &Arc<Shards>,
    on: &[usize],
    mut config: session::ServerConfig,
    handlers: Arc<HandlerTable>,
    jobs: Sender<Job>,
    transports: &[Arc<dyn Transport>],
    drain: Arc<Drain>,
) -> Result<InstalledServer, ApiError> {
    config.requires_route = on.len() > 1;
    let memory_freed = Arc::new(AtomicBool::new(false));
    let mut hosts = Vec::with_capacity(on.len());
    let mut callers = Vec::with_capacity(on.len());
    for &shard in on {
        let seed = u64::from_le_bytes(random_nonce()[..8].try_into().expect("8 bytes"));
        let channel = command_channel(shards, shard);
        let caller = Arc::new(Caller::new(channel.0.clone()));
        let mut serving = Serving::new(Arc::clone(&handlers), Some(jobs.clone()));
        serving.caller = Some(Arc::clone(&caller));
        let config = config.clone();
        let installed = install(
            shards,
            shard,
            channel,
            serving,
            Arc::clone(&memory_freed),
            move || {
                Side::Server(Box::new(ServerSide {
                    ep: session::ServerEndpoint::new(config, seed),
                }))
            },
        );
        match installed {
            Ok(handle) => {
                hosts.push(handle);
                callers.push(caller);
            }
            Err(e) => {
                hosts.iter().for_each(|h| uninstall(shards, h));
                return Err(e.into());
            }
        }
    }
    // The host of each shard, by shard index (a factory runs on the connection's shard).
    let mut by_shard = vec![None; shards.len()];
    for h in &hosts {
        by_shard[h.shard] = Some(h.id);
    }
    let by_shard: Arc<[Option<u64>]> = by_shard.into();
    let direct: Arc<[_]> = handlers.direct.clone().into();
    let accept: AcceptFactory =
        Arc::new(
            move |shard| match by_shard.get(shard).copied().flatten().and_then(host_by_id) {
                // A draining server refuses new connections while its running requests finish.
                Some(_) if drain.draining.load(Ordering::Acquire) => Box::new(RefusedConn),
                Some(host) if direct.is_empty() => {
                    Box::new(SessionConn::new(host)) as Box<dyn Protocol>
                }
                Some(host) => Box::new(SniffConn::new(host, Arc::clone(&direct))),
                None => Box::new(RefusedConn),
            },
        );
    let acceptor = on[0];
    let mut bound = Vec::with_capacity(transports.len());
    for transport in transports {
        let listening = if on.len() > 1 {
            let router = super::route::dsp_router(on.to_vec());
            transport.listen_routed(shards, acceptor, Arc::clone(&accept), router)
        } else {
            transport.listen(shards, acceptor, Arc::clone(&accept))
        };
        match listening {
            Ok(address) => bound.push(address),
            Err(e) => {
                hosts.iter().for_each(|h| uninstall(shards, h));
                return Err(e);
            }
        }
    }
    Ok(InstalledServer {
        hosts,
        callers,
        bound,
    })
}

/// Removes a host from its shard: its connections close, its later callbacks do nothing.
pub(crate) fn uninstall(shards: &Shards, handle: &HostHandle) {
    handle.commands.waker.begin_shutdown();
    let id = handle.id;
    let _ = shards.call_on(handle.shard, move |ctx| {
        let Some(host) = host_by_id(id) else { return };
        HOSTS.with(|h| h.borrow_mut().retain(|x| x.0 != id));
        HOSTS_BY_ID.with(|h| h.borrow_mut().remove(&id));
        let sockets: Vec<_> = {
            let mut h = host.borrow_mut();
            h.dead = true;
            h.links.values().filter_map(|l| l.socket).collect()
        };
        for socket in sockets {
            ctx.close(socket);
        }
    });
}

/// Schedules the hosts' task on `shard` (zero-sized, so posting it allocates nothing).
fn post_host_task(shards: &Shards, shard: usize) {
    let _ = shards.run_on(shard, shard_task);
}
