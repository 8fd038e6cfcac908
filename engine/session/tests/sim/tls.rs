//! TLS on the session's connections, in virtual time: SCRAM-SHA-256-PLUS over a trunk,
//! nothing readable on the wire, a client that asked for TLS never going on in clear
//! text, a server that requires it, and the certificate checks a client makes.

use std::time::Duration;

use bytes::Bytes;
use hawser_session::tls::certificate_pin;
use hawser_session::{
    CallOptions, ClientConfig, ClientCredentials, ClientTls, Event, ExchangeId, LinkCloseReason,
    Mechanism, ProtocolError, Reply, ServerConfig, ServerCredentials, ServerTls, TlsFailure,
};
use rcgen::{CertificateParams, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::net::Net;

const SECRET: &[u8] = b"open sesame";

/// A CA and a server certificate it issued for `localhost`, valid from `days` ago for
/// `valid_days` days.
pub(crate) struct Pki {
    pub(crate) ca: CertificateDer<'static>,
    server: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

pub(crate) fn pki(ca_name: &str, days_ago: i64, valid_days: i64) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    // Ed25519: signatures of one length, so a seed's byte counts replay exactly.
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(days_ago);
    params.not_after = now - time::Duration::days(days_ago) + time::Duration::days(valid_days);
    let server = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca.der().clone(),
        server: server.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

pub(crate) fn server_tls(pki: &Pki) -> ServerTls {
    ServerTls::new(
        vec![pki.server.clone()],
        PrivateKeyDer::Pkcs8(pki.key.clone_key()),
    )
    .unwrap()
}

pub(crate) fn trusting(ca: &CertificateDer<'static>) -> ClientTls {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    ClientTls::with_roots(roots, ServerName::try_from("localhost").unwrap()).unwrap()
}

fn server_config(tls: Option<ServerTls>) -> ServerConfig {
    let mut s = ServerConfig::new(ServerCredentials::passwords(
        [("alice".to_string(), SECRET.to_vec())],
        4096,
    ));
    s.tls = tls;
    s.credentials.allow_plain = true;
    s.grace_period = Duration::from_secs(2);
    s
}

fn client_config(tls: Option<ClientTls>, connections: usize) -> ClientConfig {
    let mut c = ClientConfig::new("alice", ClientCredentials::password(SECRET.to_vec()));
    c.connections = connections;
    c.reconnect_min = Duration::from_millis(5);
    c.reconnect_max = Duration::from_millis(20);
    c.tls = tls;
    c
}

/// Why client `c`'s connections were closed.
fn refusals(net: &Net, c: usize) -> Vec<LinkCloseReason> {
    net.client_events[c]
        .iter()
        .filter_map(|e| match e {
            Event::ConnectionClosed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_trunk_runs_scram_plus_over_tls_and_nothing_is_readable_on_the_wire() {
    let pki = pki("hawser test CA", 1, 30);
    let mut net = Net::new(server_config(Some(server_tls(&pki))));
    net.captured = Some(Vec::new());
    let c = net.add_client(client_config(Some(trusting(&pki.ca)), 8));
    net.run_for(Duration::from_millis(100));
    assert_eq!(
        net.clients[c].bound_connections().len(),
        8,
        "{:?}",
        refusals(&net, c)
    );
    let secret_body = Bytes::from_static(b"the replication data nobody may read");
    let id = net.clients[c]
        .call(
            net.now,
            ExchangeId(7),
            secret_body.clone(),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(10));
    for (r, body) in net.take_server_requests() {
        assert_eq!(body, secret_body);
        net.server.respond(net.now, &r, Reply::Ok(body));
    }
    net.run_for(Duration::from_millis(10));
    assert!(
        net.completions(c)
            .iter()
            .any(|(done, r)| *done == id && r.as_ref().ok() == Some(&secret_body))
    );
    let wire = net.captured.take().unwrap();
    let visible = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
    assert!(
        !visible(b"the replication data"),
        "a body crossed in clear text"
    );
    assert!(
        !visible(b"n=alice"),
        "the SCRAM login crossed in clear text"
    );
    assert!(!visible(Mechanism::ScramSha256Plus.name().as_bytes()));
}

/// A middlebox that strips TLS (or a server without a certificate) answers in clear
/// text: the client refuses to go on, whatever it would have sent.
#[test]
fn a_client_that_asked_for_tls_never_goes_on_in_clear_text() {
    let pki = pki("hawser test CA", 1, 30);
    let mut net = Net::new(server_config(None));
    net.captured = Some(Vec::new());
    let c = net.add_client(client_config(Some(trusting(&pki.ca)), 1));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.clients[c].nexus(), None);
    let reasons = refusals(&net, c);
    assert!(
        reasons.contains(&LinkCloseReason::Protocol(ProtocolError::Tls(
            TlsFailure::NotOffered
        ))),
        "{reasons:?}"
    );
    let wire = net.captured.take().unwrap();
    assert!(
        !wire.windows(7).any(|w| w == b"n=alice"),
        "login sent in clear"
    );
}

#[test]
fn a_server_that_requires_tls_refuses_clear_clients() {
    let pki = pki("hawser test CA", 1, 30);
    let mut tls = server_tls(&pki);
    tls.require = true;
    let mut net = Net::new(server_config(Some(tls)));
    let c = net.add_client(client_config(None, 1));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.clients[c].nexus(), None);
    let reasons = refusals(&net, c);
    assert!(
        reasons
            .iter()
            .any(|r| r.to_string().contains("requires TLS")),
        "{reasons:?}"
    );
    // With TLS the same server lets the client in.
    let d = net.add_client(client_config(Some(trusting(&pki.ca)), 1));
    net.run_for(Duration::from_millis(50));
    assert!(net.clients[d].nexus().is_some(), "{:?}", refusals(&net, d));
}

#[test]
fn wrong_ca_wrong_pin_and_expired_certificates_are_refused_with_their_reason() {
    let good = pki("good CA", 1, 30);
    let other = pki("other CA", 1, 30);
    let expired = pki("expired CA", 60, 30);
    let name = || ServerName::try_from("localhost").unwrap();
    let cases = [
        (&good, trusting(&other.ca), TlsFailure::UnknownIssuer),
        (
            &good,
            ClientTls::with_pin(certificate_pin(&other.server), name()).unwrap(),
            TlsFailure::PinMismatch,
        ),
        (&expired, trusting(&expired.ca), TlsFailure::Expired),
    ];
    for (server_pki, client_tls, failure) in cases {
        let mut net = Net::new(server_config(Some(server_tls(server_pki))));
        let c = net.add_client(client_config(Some(client_tls), 1));
        net.run_for(Duration::from_millis(50));
        assert_eq!(net.clients[c].nexus(), None);
        let reasons = refusals(&net, c);
        assert!(
            reasons.contains(&LinkCloseReason::Protocol(ProtocolError::Tls(failure))),
            "{failure:?}: {reasons:?}"
        );
    }
    // The right pin of a self-signed server is trusted whatever its issuer.
    let mut net = Net::new(server_config(Some(server_tls(&good))));
    let pinned = ClientTls::with_pin(certificate_pin(&good.server), name()).unwrap();
    let c = net.add_client(client_config(Some(pinned), 2));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.clients[c].bound_connections().len(), 2);
}

/// PLAIN is offered over TLS and works there; a client insisting on it in the clear is
/// told why before it sends its password.
#[test]
fn plain_works_over_tls_and_is_refused_in_the_clear() {
    let pki = pki("hawser test CA", 1, 30);
    let mut net = Net::new(server_config(Some(server_tls(&pki))));
    let mut config = client_config(Some(trusting(&pki.ca)), 1);
    config.sasl_mechanism = Some(Mechanism::Plain);
    let c = net.add_client(config);
    let mut clear = client_config(None, 1);
    clear.sasl_mechanism = Some(Mechanism::Plain);
    let d = net.add_client(clear);
    net.captured = Some(Vec::new());
    net.run_for(Duration::from_millis(50));
    assert!(net.clients[c].nexus().is_some(), "{:?}", refusals(&net, c));
    assert_eq!(net.clients[d].nexus(), None);
    let reasons = refusals(&net, d);
    assert!(
        reasons
            .iter()
            .any(|r| r.to_string().contains("over TLS only")),
        "{reasons:?}"
    );
    let wire = net.captured.take().unwrap();
    assert!(
        !wire.windows(SECRET.len()).any(|w| w == SECRET),
        "password on the wire"
    );
}

/// Mutual TLS: a client showing a certificate whose pin the server maps to an identity
/// logs in as it with EXTERNAL; another certificate, or none, does not.
#[test]
fn a_client_certificate_mapped_to_an_identity_logs_in_with_external() {
    let pki = pki("mtls CA", 1, 30);
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&client_key)
        .unwrap();
    let client_der = client_cert.der().clone();
    let client_pkcs8 = PrivatePkcs8KeyDer::from(client_key.serialize_der());
    let server_tls = ServerTls::with_client_certificates(
        vec![pki.server.clone()],
        PrivateKeyDer::Pkcs8(pki.key.clone_key()),
    )
    .unwrap();
    let mut config = server_config(Some(server_tls));
    config
        .credentials
        .client_certs
        .insert("replica".into(), certificate_pin(&client_der));
    let mut net = Net::new(config);
    let external = |tls: ClientTls| {
        let mut c = ClientConfig::new("replica", ClientCredentials::External);
        c.connections = 2;
        c.tls = Some(tls);
        c
    };
    let shown = trusting(&pki.ca)
        .with_client_certificate(vec![client_der], PrivateKeyDer::Pkcs8(client_pkcs8))
        .unwrap();
    let c = net.add_client(external(shown));
    let d = net.add_client(external(trusting(&pki.ca)));
    net.run_for(Duration::from_millis(50));
    assert_eq!(
        net.clients[c].bound_connections().len(),
        2,
        "{:?}",
        refusals(&net, c)
    );
    assert_eq!(net.clients[d].nexus(), None);
    let reasons = refusals(&net, d);
    assert!(
        reasons
            .iter()
            .any(|r| r.to_string().contains("client certificate")),
        "{reasons:?}"
    );
}

/// A nexus created over TLS stays encrypted: a clear-text connection of the same identity
/// (the password known) cannot recover, replace or join it.
#[test]
fn a_nexus_created_over_tls_refuses_clear_text_connections() {
    let pki = pki("sticky CA", 1, 30);
    let mut net = Net::new(server_config(Some(server_tls(&pki))));
    let a = net.add_client(client_config(Some(trusting(&pki.ca)), 2));
    net.run_for(Duration::from_millis(50));
    let nexus = net.clients[a].nexus().expect("the TLS nexus");
    // Used (a pristine nexus is replaced by any create of its identity: nothing to lose).
    net.clients[a]
        .call(
            net.now,
            ExchangeId(7),
            Bytes::from_static(b"x"),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(10));
    for (r, body) in net.take_server_requests() {
        net.server.respond(net.now, &r, Reply::Ok(body));
    }
    net.run_for(Duration::from_millis(10));
    let mut clear = client_config(None, 1);
    clear.replace = Some(nexus);
    let b = net.add_client(clear);
    net.run_for(Duration::from_millis(200));
    // Its recover was refused, so it could not replace the nexus: its create is held.
    assert!(
        net.client_events[b]
            .iter()
            .any(|e| matches!(e, Event::NexusHeld { nexus: held, .. } if *held == nexus)),
        "{:?}",
        net.client_events[b]
    );
    // The TLS nexus is still there and still works.
    assert_eq!(net.clients[a].bound_connections().len(), 2);
    assert!(net.server.nexuses().any(|n| n == nexus));
}
