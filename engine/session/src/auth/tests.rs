//! Whole exchanges between the client and server sides of authentication.

use bytes::Bytes;

use super::client::{ClientExchange, NegotiationError, choose};
use super::server::{Connection, SaslServer, ServerExchange, ServerStep};
use super::{ClientCredentials, Mechanism, Refusal, ServerCredentials};
use crate::peer::{LocalCredentials, Peer};

const ITERATIONS: u32 = 4096;

/// A connection from a peer the server knows nothing of, over TLS when `tls_exporter`.
fn over<'a>(
    credentials: &'a ServerCredentials,
    sasl: &'a SaslServer,
    tls_exporter: Option<[u8; 32]>,
) -> Connection<'a> {
    Connection {
        credentials,
        sasl,
        peer: Peer::Unknown,
        tls_exporter,
        client_pin: None,
    }
}

fn credentials() -> ServerCredentials {
    let mut credentials =
        ServerCredentials::passwords([("ann".to_owned(), b"pencil".to_vec())], ITERATIONS);
    credentials.allow_plain = true;
    credentials
}

/// Runs one exchange; the server's TLS exporter and the client's may differ (a relay).
fn run(
    server_creds: &ServerCredentials,
    mechanism: Mechanism,
    identity: &str,
    client: &ClientCredentials,
    exporters: (Option<[u8; 32]>, Option<[u8; 32]>),
) -> Result<String, String> {
    let sasl = SaslServer::new(server_creds, [9; 32]);
    let connection = over(server_creds, &sasl, exporters.0);
    let offered = server_creds.offered(exporters.0.is_some());
    let (mut c, initial) = ClientExchange::start(
        mechanism,
        &offered,
        identity,
        client,
        exporters.1,
        &Default::default(),
    )
    .map_err(|e| e.to_string())?;
    let (mut s, mut step) = ServerExchange::start(connection, Some(mechanism), &initial);
    loop {
        match step {
            ServerStep::Challenge(challenge) => {
                let response = c.respond(&challenge).map_err(|e| e.to_string())?;
                step = s.as_mut().expect("kept while running").step(&response);
            }
            ServerStep::Done(Ok(granted)) => {
                c.finish(&granted.additional_data)
                    .map_err(|e| e.to_string())?;
                return Ok(granted.identity);
            }
            ServerStep::Done(Err(refusal)) => return Err(refusal.reason().to_owned()),
        }
    }
}

#[test]
fn scram_round_trip_and_wrong_password() {
    let creds = credentials();
    let right = ClientCredentials::password("pencil");
    let wrong = ClientCredentials::password("pen");
    let none = (None, None);
    assert_eq!(
        run(&creds, Mechanism::ScramSha256, "ann", &right, none),
        Ok("ann".into())
    );
    let refused = run(&creds, Mechanism::ScramSha256, "ann", &wrong, none).unwrap_err();
    assert_eq!(refused, Refusal::Failed.reason());
    // An unknown identity: the same refusal.
    let unknown = run(&creds, Mechanism::ScramSha256, "bob", &right, none).unwrap_err();
    assert_eq!(unknown, refused);
}

#[test]
fn scram_plus_binds_the_tls_session() {
    let creds = credentials();
    let right = ClientCredentials::password("pencil");
    let tls = Some([1; 32]);
    assert_eq!(
        run(
            &creds,
            Mechanism::ScramSha256Plus,
            "ann",
            &right,
            (tls, tls)
        ),
        Ok("ann".into())
    );
    // A relay: two TLS sessions, two exporters.
    let relayed = run(
        &creds,
        Mechanism::ScramSha256Plus,
        "ann",
        &right,
        (tls, Some([2; 32])),
    );
    assert_eq!(relayed, Err(Refusal::ChannelBinding.reason().to_owned()));
    // PLUS in the clear is refused before anything runs.
    let sasl = SaslServer::new(&creds, [9; 32]);
    let clear = over(&creds, &sasl, None);
    let (_, step) = ServerExchange::start(
        clear,
        Some(Mechanism::ScramSha256Plus),
        b"p=tls-exporter,,n=ann,r=x",
    );
    assert_eq!(step, ServerStep::Done(Err(Refusal::NeedsTls)));
    // Found by the sasl_messages fuzz target: -PLUS named with an unbound GS2 header (or
    // plain SCRAM with a bound one) is refused, not run as the other mechanism.
    let tls_connection = Connection {
        tls_exporter: tls,
        ..clear
    };
    for (mechanism, first) in [
        (Mechanism::ScramSha256Plus, &b"n,,n=ann,r=abc"[..]),
        (Mechanism::ScramSha256Plus, b"y,,n=ann,r=abc"),
        (Mechanism::ScramSha256, b"p=tls-exporter,,n=ann,r=abc"),
    ] {
        let (_, step) = ServerExchange::start(tls_connection, Some(mechanism), first);
        assert_eq!(
            step,
            ServerStep::Done(Err(Refusal::Malformed)),
            "{mechanism}"
        );
    }
}

/// A client able to bind that was shown a list without PLUS (stripped by a middlebox)
/// says so ('y'), and a server that offers PLUS refuses: the downgrade is detected.
#[test]
fn stripped_plus_is_detected() {
    let creds = credentials();
    let sasl = SaslServer::new(&creds, [9; 32]);
    let tls = Some([1; 32]);
    let stripped = [Mechanism::ScramSha256];
    let right = ClientCredentials::password("pencil");
    let (_, initial) = ClientExchange::start(
        Mechanism::ScramSha256,
        &stripped,
        "ann",
        &right,
        tls,
        &Default::default(),
    )
    .unwrap();
    assert!(initial.starts_with(b"y,"), "{initial:?}");
    let connection = over(&creds, &sasl, tls);
    let (_, step) = ServerExchange::start(connection, Some(Mechanism::ScramSha256), &initial);
    assert_eq!(step, ServerStep::Done(Err(Refusal::ChannelBinding)));
    // Insisting on plain SCRAM while PLUS is offered is 'n', and accepted.
    let offered = creds.offered(true);
    assert_eq!(
        run(&creds, Mechanism::ScramSha256, "ann", &right, (tls, tls)),
        Ok("ann".into())
    );
    let (_, initial) = ClientExchange::start(
        Mechanism::ScramSha256,
        &offered,
        "ann",
        &right,
        tls,
        &Default::default(),
    )
    .unwrap();
    assert!(initial.starts_with(b"n,"), "{initial:?}");
}

/// A client-final message recorded on one connection fails on another: the server's
/// nonce differs each time.
#[test]
fn a_replayed_scram_exchange_fails() {
    let creds = credentials();
    let sasl = SaslServer::new(&creds, [9; 32]);
    let right = ClientCredentials::password("pencil");
    let connection = over(&creds, &sasl, None);
    let (mut c, initial) = ClientExchange::start(
        Mechanism::ScramSha256,
        &[],
        "ann",
        &right,
        None,
        &Default::default(),
    )
    .unwrap();
    let (s, step) = ServerExchange::start(connection, Some(Mechanism::ScramSha256), &initial);
    let ServerStep::Challenge(challenge) = step else {
        panic!("{step:?}")
    };
    let recorded_final = c.respond(&challenge).unwrap();
    let mut s = s.unwrap();
    assert!(matches!(s.step(&recorded_final), ServerStep::Done(Ok(_))));
    // The eavesdropper replays both client messages on a new connection.
    let (s2, step2) = ServerExchange::start(connection, Some(Mechanism::ScramSha256), &initial);
    assert!(matches!(step2, ServerStep::Challenge(_)));
    assert_eq!(
        s2.unwrap().step(&recorded_final),
        ServerStep::Done(Err(Refusal::Failed))
    );
}

#[test]
fn plain_only_over_tls() {
    let creds = credentials();
    let right = ClientCredentials::password("pencil");
    let tls = Some([1; 32]);
    assert_eq!(
        run(&creds, Mechanism::Plain, "ann", &right, (tls, tls)),
        Ok("ann".into())
    );
    assert_eq!(
        run(
            &creds,
            Mechanism::Plain,
            "ann",
            &ClientCredentials::password("x"),
            (tls, tls)
        ),
        Err(Refusal::Failed.reason().to_owned())
    );
    assert_eq!(
        run(&creds, Mechanism::Plain, "ann", &right, (None, None)),
        Err(Refusal::NeedsTls.reason().to_owned())
    );
    assert!(!creds.offered(false).contains(&Mechanism::Plain));
    let err = choose(&creds.offered(false), &right, false, Some(Mechanism::Plain)).unwrap_err();
    assert!(matches!(err, NegotiationError::Insisted { .. }), "{err}");
}

#[test]
fn the_client_picks_the_strongest_offered() {
    let password = ClientCredentials::password("p");
    let all = Mechanism::ALL;
    assert_eq!(
        choose(&all, &password, true, None),
        Ok(Mechanism::ScramSha256Plus)
    );
    assert_eq!(
        choose(&all, &password, false, None),
        Ok(Mechanism::ScramSha256)
    );
    assert_eq!(
        choose(&[Mechanism::Plain], &password, true, None),
        Ok(Mechanism::Plain)
    );
    assert!(choose(&[Mechanism::Plain], &password, false, None).is_err());
    assert_eq!(
        choose(&all, &ClientCredentials::Anonymous, true, None),
        Ok(Mechanism::Anonymous)
    );
    let none = choose(
        &[Mechanism::ScramSha256],
        &ClientCredentials::Anonymous,
        false,
        None,
    )
    .unwrap_err();
    assert!(none.to_string().contains("--identity"), "{none}");
    assert_eq!(
        choose(&all, &password, true, Some(Mechanism::Plain)),
        Ok(Mechanism::Plain)
    );
}

#[test]
fn external_over_tls_grants_the_identity_a_client_certificate_is_mapped_to() {
    let mut creds = credentials();
    creds.client_certs.insert("replica".into(), [5; 32]);
    let sasl = SaslServer::new(&creds, [9; 32]);
    let decide = |pin: Option<[u8; 32]>, who: &[u8]| {
        let connection = Connection {
            credentials: &creds,
            sasl: &sasl,
            peer: Peer::Unknown,
            tls_exporter: Some([1; 32]),
            client_pin: pin,
        };
        match ServerExchange::start(connection, Some(Mechanism::External), who).1 {
            ServerStep::Done(d) => d.map(|g| g.identity),
            ServerStep::Challenge(c) => panic!("{c:?}"),
        }
    };
    assert_eq!(decide(Some([5; 32]), b"replica"), Ok("replica".into()));
    assert_eq!(decide(Some([6; 32]), b"replica"), Err(Refusal::Failed));
    assert_eq!(decide(Some([5; 32]), b"ann"), Err(Refusal::Failed));
    assert_eq!(decide(None, b"replica"), Err(Refusal::ExternalNotLocal));
    assert!(creds.offered(true).contains(&Mechanism::External));
    assert!(!creds.offered(false).contains(&Mechanism::External));
}

#[test]
fn anonymous_and_external_follow_the_operator() {
    let mut creds = credentials();
    creds.peer_uids.insert("backup".into(), 1000);
    let sasl = SaslServer::new(&creds, [9; 32]);
    let local = |uid| {
        Peer::Local(LocalCredentials {
            pid: 1,
            uid,
            gid: uid,
        })
    };
    let decide = |creds: &ServerCredentials, m, who: &[u8], peer| {
        let connection = Connection {
            credentials: creds,
            sasl: &sasl,
            peer,
            tls_exporter: None,
            client_pin: None,
        };
        match ServerExchange::start(connection, Some(m), who).1 {
            ServerStep::Done(d) => d.map(|g| g.identity),
            ServerStep::Challenge(c) => panic!("{c:?}"),
        }
    };
    assert_eq!(
        decide(&creds, Mechanism::External, b"backup", local(1000)),
        Ok("backup".into())
    );
    assert_eq!(
        decide(&creds, Mechanism::External, b"backup", local(1001)),
        Err(Refusal::Failed)
    );
    assert_eq!(
        decide(&creds, Mechanism::External, b"backup", Peer::Unknown),
        Err(Refusal::ExternalNotLocal)
    );
    assert_eq!(
        decide(&creds, Mechanism::Anonymous, b"guest", Peer::Unknown),
        Err(Refusal::AnonymousRefused)
    );
    let mut open = creds.clone();
    open.allow_anonymous = true;
    assert_eq!(
        decide(&open, Mechanism::Anonymous, b"guest", Peer::Unknown),
        Ok("guest".into())
    );
    // Identities with a password or a user id are never given away anonymously.
    for protected in [&b"ann"[..], b"backup"] {
        assert_eq!(
            decide(&open, Mechanism::Anonymous, protected, Peer::Unknown),
            Err(Refusal::Failed)
        );
    }
    let long = vec![b'x'; super::MAX_IDENTITY_LEN + 1];
    assert_eq!(
        decide(&open, Mechanism::Anonymous, &long, Peer::Unknown),
        Err(Refusal::IdentityTooLong)
    );
    assert_eq!(
        ServerExchange::start(over(&creds, &sasl, None), None, b"").1,
        ServerStep::Done(Err(Refusal::Mechanism))
    );
    let _ = Bytes::new();
}

/// Found in review: rsasl prepares PLAIN's name (SASLprep), so a spelling like
/// "a\u{ad}nn" was throttled as itself and granted as "ann"; and SCRAM's escaped
/// names (`=2C`) were looked up escaped, so "ops,backup" could never log in.
#[test]
fn the_granted_identity_is_the_claimed_one() {
    let mut creds = credentials();
    creds.users.extend(
        ServerCredentials::passwords([("ops,backup".to_owned(), b"pw".to_vec())], ITERATIONS).users,
    );
    let tls = Some([1; 32]);
    let sasl = SaslServer::new(&creds, [9; 32]);
    let connection = over(&creds, &sasl, tls);
    let (_, step) = ServerExchange::start(
        connection,
        Some(Mechanism::Plain),
        "\0a\u{ad}nn\0pencil".as_bytes(),
    );
    assert_eq!(step, ServerStep::Done(Err(Refusal::Malformed)));
    let right = ClientCredentials::password("pw");
    assert_eq!(
        run(
            &creds,
            Mechanism::ScramSha256,
            "ops,backup",
            &right,
            (None, None)
        ),
        Ok("ops,backup".into())
    );
    // PLAIN is off unless the operator turns it on.
    let mut no_plain = creds.clone();
    no_plain.allow_plain = false;
    assert!(!no_plain.offered(true).contains(&Mechanism::Plain));
    assert_eq!(
        run(
            &no_plain,
            Mechanism::Plain,
            "ann",
            &ClientCredentials::password("pencil"),
            (tls, tls)
        ),
        Err(Refusal::Mechanism.reason().to_owned())
    );
}
