//! The servers of one place of the `tls` scenario: `hawser serve` without and with TLS
//! (when the build has them) and sshd, with the directories they write into.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::super::hawser_tools::{self, ServeTls};
use super::super::ssh::SshServer;
use super::super::tools::Background;
use super::Plan;
use super::subjects::Place;
use crate::report::{Outcome, Subject};

/// The servers of one place: hawser serve without and with TLS, when they run, and sshd.
pub(super) struct Servers {
    pub(super) plain: Option<(Background, String)>,
    pub(super) tls: Option<(Background, String)>,
    pub(super) ssh: SshServer,
    /// Roots of the two hawser servers and the directory scp and rsync write into.
    pub(super) plain_root: PathBuf,
    pub(super) tls_root: PathBuf,
    pub(super) ssh_target: PathBuf,
}

/// Starts the servers of `place` on `ports` (plain, TLS, ssh). A hawser server that fails
/// marks the rows that need it; sshd failing is an error (a baseline).
pub(super) fn start_servers(
    outcome: &mut Outcome,
    plan: &Plan,
    place: Place,
    (plain_port, tls_port, ssh_port): (u16, u16, u16),
    needs: (&[Subject], &[Subject]),
) -> Result<Servers> {
    let base = plan.dir.join(match place {
        Place::Loopback => "loopback",
        Place::Link => "link",
    });
    let plain_root = base.join("target-plain");
    let tls_root = base.join("target-tls");
    let ssh_target = base.join("target-ssh");
    for dir in [&plain_root, &tls_root, &ssh_target] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let host = place.host();
    let namespace = place.server_namespace();
    let plain = match plan.push_binary() {
        Some(binary) => {
            let listen = format!("{host}:{plain_port}");
            match hawser_tools::start_hawser_serve(binary, namespace, &listen, &plain_root) {
                Ok(server) => Some((server, listen)),
                Err(error) => {
                    let reason = format!("`hawser serve` failed: {error:#}");
                    for subject in needs.0 {
                        outcome.mark_unavailable(subject, &reason);
                    }
                    None
                }
            }
        }
        None => None,
    };
    let tls = match plan.tls_push_binary() {
        Some(binary) => {
            let listen = format!("{host}:{tls_port}");
            let tls = ServeTls {
                cert: &plan.certificate.cert,
                key: &plan.certificate.key,
                require: true,
            };
            match hawser_tools::start_hawser_serve_tls(binary, namespace, &listen, &tls_root, tls) {
                Ok(server) => Some((server, listen)),
                Err(error) => {
                    let reason = format!("`hawser serve --tls-cert` failed: {error:#}");
                    for subject in needs.1 {
                        outcome.mark_unavailable(subject, &reason);
                    }
                    None
                }
            }
        }
        None => None,
    };
    let ssh =
        SshServer::start(&base.join("sshd"), namespace, host, ssh_port).context("starting sshd")?;
    Ok(Servers {
        plain,
        tls,
        ssh,
        plain_root,
        tls_root,
        ssh_target,
    })
}
