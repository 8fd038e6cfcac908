//! Namespace plumbing through iproute2's `ip` (simple and inspectable); the TUN devices
//! themselves are opened by linkem from inside each namespace, so they vanish with its fds.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sys;

/// Socket buffer limits written into each namespace's `/proc/sys/net` (per-namespace on
/// Linux 6.x). A 10 Gbit/s × 50 ms path has a 62.5 MB BDP and TCP's receive autotuning
/// needs about twice that in buffer space, so the autotuning maxima (`tcp_rmem`,
/// `tcp_wmem`, third field) are 512 MiB. The initial receive buffer (second field) is
/// 8 MiB rather than 128 KiB: with a 65000-byte MTU a 128 KiB buffer holds barely one
/// segment, so the receive window cannot grow past ~64 KB and autotuning, which grows
/// the buffer only when more than a window's worth arrives per RTT, stalls there for
/// seconds (seen: 38 Mbit/s for 6 s at 20 ms RTT). A larger initial buffer lets the
/// window grow by two segments per segment received from the start; buffers are limits,
/// not allocations, so idle sockets still cost nothing. These settings are required.
pub const NAMESPACE_SYSCTLS: &[(&str, &str)] = &[
    ("net/ipv4/tcp_rmem", "4096 8388608 536870912"),
    ("net/ipv4/tcp_wmem", "4096 1048576 536870912"),
];

/// Caps on explicit `SO_RCVBUF`/`SO_SNDBUF` (e.g. `iperf3 -w`). Best effort: a child
/// namespace may only read them (this machine's kernel refuses the write with EACCES
/// unless the caller is root in the initial user namespace), and autotuning, which is
/// what TCP uses without `-w`, is bounded by `tcp_rmem`/`tcp_wmem` instead.
pub const OPTIONAL_NAMESPACE_SYSCTLS: &[(&str, &str)] = &[
    // The link carries IPv4 only; without IPv6 the TUNs stay silent (no router
    // solicitations) and linkem's counters count only the traffic under test.
    ("net/ipv6/conf/default/disable_ipv6", "1"),
    ("net/ipv6/conf/all/disable_ipv6", "1"),
    ("net/core/rmem_max", "536870912"),
    ("net/core/wmem_max", "536870912"),
];

/// One side of the emulated link.
#[derive(Debug, Clone)]
pub struct Side {
    /// Namespace name (`ip netns` name).
    pub namespace: String,
    /// Address with prefix length, e.g. `198.18.0.1/30`.
    pub address: String,
}

impl Side {
    /// The address without its prefix length.
    pub fn host(&self) -> Result<Ipv4Addr> {
        let host = self.address.split('/').next().unwrap_or_default();
        host.parse()
            .with_context(|| format!("bad IPv4 address {:?}", self.address))
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (install iproute2)")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Names of the namespaces `ip netns list` shows.
pub fn existing_namespaces() -> Result<Vec<String>> {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("running `ip netns list` (install iproute2)")?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Deletes whichever of `namespaces` exist; returns the ones it removed.
pub fn remove_namespaces(namespaces: &[&str]) -> Result<Vec<String>> {
    let existing = existing_namespaces()?;
    let mut removed = Vec::new();
    for &name in namespaces {
        if existing.iter().any(|e| e == name) {
            ip(&["netns", "del", name])?;
            removed.push(name.to_owned());
        }
    }
    Ok(removed)
}

/// The two namespaces while they exist; dropping it deletes them (also on panic/error).
#[derive(Debug)]
pub struct NamespacePair {
    names: Vec<String>,
}

impl NamespacePair {
    /// Deletes the namespaces now, reporting failures.
    pub fn remove(mut self) -> Result<()> {
        let names = std::mem::take(&mut self.names);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        remove_namespaces(&refs).map(|_| ())
    }
}

impl Drop for NamespacePair {
    fn drop(&mut self) {
        let refs: Vec<&str> = self.names.iter().map(String::as_str).collect();
        if let Err(error) = remove_namespaces(&refs) {
            eprintln!("linkem: removing namespaces {refs:?}: {error:#}");
        }
    }
}

/// Opens a TUN device `interface` inside `namespace` (on a short-lived thread that
/// enters it, so the rest of the process stays in its own namespace) and applies the
/// socket-buffer sysctls there.
fn open_tun_in(namespace: &str, interface: &str, offload: bool) -> Result<OwnedFd> {
    let namespace_owned = namespace.to_owned();
    let interface_owned = interface.to_owned();
    std::thread::spawn(move || -> Result<OwnedFd> {
        sys::enter_netns(&namespace_owned)
            .with_context(|| format!("entering namespace {namespace_owned}"))?;
        for (key, value) in NAMESPACE_SYSCTLS {
            // /proc/sys/net shows the namespace of the thread that opens it.
            std::fs::write(format!("/proc/sys/{key}"), value)
                .with_context(|| format!("setting {key} in {namespace_owned}"))?;
        }
        for (key, value) in OPTIONAL_NAMESPACE_SYSCTLS {
            if let Err(error) = std::fs::write(format!("/proc/sys/{key}"), value) {
                eprintln!("linkem: note: {key} left as is in {namespace_owned}: {error}");
            }
        }
        sys::open_tun(&interface_owned, offload).with_context(|| {
            format!("creating TUN {interface_owned} in {namespace_owned} (root needed)")
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
}

/// Creates both namespaces with a TUN `interface` in each, configured with its address,
/// `mtu` and a host route to the peer (and vnet-header offloads with `offload`); returns the guard and the TUN fds (a, b).
pub fn create(
    side_a: &Side,
    side_b: &Side,
    interface: &str,
    mtu: u32,
    offload: bool,
) -> Result<(NamespacePair, [OwnedFd; 2])> {
    let existing = existing_namespaces()?;
    for side in [side_a, side_b] {
        if existing.contains(&side.namespace) {
            bail!(
                "namespace {} already exists (a linkem running, or leftovers: \
                 `hawser-perf linkem --cleanup`)",
                side.namespace
            );
        }
    }
    let mut pair = NamespacePair { names: Vec::new() };
    let mut fds = Vec::new();
    let mtu_text = mtu.to_string();
    for (side, peer) in [(side_a, side_b), (side_b, side_a)] {
        let ns = side.namespace.as_str();
        ip(&["netns", "add", ns])?;
        pair.names.push(ns.to_owned());
        fds.push(open_tun_in(ns, interface, offload)?);
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        // A longer device queue (packets) than the default 500 absorbs the moments when
        // the forwarder is descheduled on a busy machine instead of dropping in the kernel.
        ip(&[
            "-n",
            ns,
            "link",
            "set",
            interface,
            "mtu",
            &mtu_text,
            "txqueuelen",
            "4096",
            "up",
        ])?;
        ip(&["-n", ns, "addr", "add", &side.address, "dev", interface])?;
        // A host route to the peer makes any pair of addresses work (one /24 per side
        // too), not only two addresses of one subnet.
        let peer_host = format!("{}/32", peer.host()?);
        ip(&["-n", ns, "route", "replace", &peer_host, "dev", interface])?;
    }
    let [a, b]: [OwnedFd; 2] = fds
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected two TUN fds"))?;
    Ok((pair, [a, b]))
}
