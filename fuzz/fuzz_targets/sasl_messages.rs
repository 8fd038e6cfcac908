//! Feeds both sides of SASL authentication what a hostile peer can send, through
//! `hawser_session::auth::fuzzing` (feature `fuzzing`): the exchanges the endpoints run on
//! `Auth`, `AuthResponse`, the list of mechanisms, `AuthChallenge` and `AuthResult`,
//! without the frames, the failure throttle and TLS around them. A TLS session is stood
//! for by its exporter, so PLAIN and SCRAM-SHA-256-PLUS are reached too.
//!
//! The server knows two users by password (SCRAM entries of 4096 iterations) and grants an
//! identity to one local uid by EXTERNAL; the setup says whether it accepts anonymous
//! clients, whether each end runs TLS (and the same session or a relay's) and who the
//! peer is. A real client (`ClientSession`) runs against it with credentials the input
//! picks: the identity's own password, another user's, a near miss, an empty or a long
//! one. Each message a side receives is the other real side's last one, that one
//! changed, bytes of the input, or a message of the right shape made here from chosen
//! parts: SCRAM client-first and client-final (any channel-binding flag, authzid, name,
//! echoed nonce, proof), server-first (the client's nonce echoed or not, any salt,
//! hostile iteration counts), server-final verifiers and errors, PLAIN triples, lists of
//! mechanisms.
//!
//! Nothing may panic, and after every step:
//!
//! - the server grants only what the credentials allow: SCRAM only to an exchange whose
//!   every message came from a real client holding that identity's password (-PLUS only
//!   over the server's own TLS session), PLAIN only over TLS to a message carrying the
//!   password, EXTERNAL only to the mapped local uid, ANONYMOUS only when allowed and
//!   never to an identity with a password or a uid; never under an unknown mechanism,
//!   never an identity longer than 256 bytes;
//! - the client trusts a SCRAM server only on the verifier the real server sent when it
//!   granted this client's exchange; it picks only what the list offers and its
//!   credentials fit, the strongest unless told otherwise (so never a downgrade from
//!   SCRAM-SHA-256-PLUS over TLS), its password leaves it only in PLAIN over TLS, and it
//!   answers a server-first only if its iteration count is within 4096..=10,000,000;
//! - every answer is bounded by the message it answers (plus a constant): nothing grows.
//!
//! The client derives SCRAM keys with the iteration count the server names, up to
//! 10,000,000 (seconds of PBKDF2, by design): challenges naming a count above 4096 are not
//! fed to it, except 10,000,001 (the client must refuse it; should it not, that costs
//! seconds, not the hours of a count near 2^32). Nor are more than a few operations that
//! may run PBKDF2 per input: the fuzzer spends its time on parsing and logic.
//!
//! # Input
//!
//! A setup byte ([`Setup`]), then operations ([`Op`]), each message read as a
//! [`Source`]. `engine/replicate/tests/fuzz_seeds.rs` writes the seeds (whole exchanges of
//! each mechanism). `HAWSER_FUZZ_TRACE=1` prints every step.

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hawser_session::auth::fuzzing::{ClientSession, SaltCache, Server, ServerSession, Step};
use hawser_session::{ClientCredentials, LocalCredentials, Mechanism, Peer, ServerCredentials};
use libfuzzer_sys::fuzz_target;

#[path = "sasl_messages/input.rs"]
mod input;
use input::{Input, OPS, Op, Setup, Source};

/// The seed of the server's dummy entries (as `ServerEndpoint::new` takes it).
const SERVER_SEED: u64 = 7;
/// The users with a password.
const PASSWORDS: [(&str, &[u8]); 2] = [("alice", b"alice-password-1"), ("bob", b"bob-password-22")];
/// The identity EXTERNAL grants, and to which uid.
const EXTERNAL_IDENTITY: &str = "carol";
const EXTERNAL_UID: u32 = 1000;
/// PBKDF2 iterations of the users' entries: RFC 7677's minimum, the cheapest the client
/// accepts.
const ITERATIONS: u32 = 4096;
/// The largest count the client accepts (`hawser_session::auth::ITERATIONS`).
const MAX_ITERATIONS: u32 = 10_000_000;
const MAX_IDENTITY_LEN: usize = 256;
/// Operations that may run a PBKDF2 (Auth: PLAIN checks a password; Challenge: a client
/// derives its key), per input.
const MAX_COSTLY: u32 = 24;
/// Real clients started per input.
const MAX_CLIENTS: usize = 16;
/// The TLS exporter of the server's session, and of another one (a relay's).
const EXPORTER: [u8; 32] = [0x5a; 32];
const OTHER_EXPORTER: [u8; 32] = [0xa5; 32];

/// Identities either side may name: the users, the EXTERNAL one, an unknown one, empty,
/// one with the characters SCRAM escapes, a non-ASCII one and one too long.
fn identity(pick: u8) -> &'static str {
    static LONG: LazyLock<String> = LazyLock::new(|| "x".repeat(MAX_IDENTITY_LEN + 1));
    match pick % 8 {
        0 => "alice",
        1 => "bob",
        2 => EXTERNAL_IDENTITY,
        3 => "mallory",
        4 => "",
        5 => "a,b=c",
        6 => "ålice",
        _ => &LONG,
    }
}

fn password_of(identity: &str) -> Option<&'static [u8]> {
    PASSWORDS
        .iter()
        .find(|(i, _)| *i == identity)
        .map(|(_, p)| *p)
}

/// A password for `identity`: mostly its own, else another user's, a near miss, empty
/// or long.
fn password(identity: &str, pick: u8) -> Vec<u8> {
    let own = password_of(identity).unwrap_or(b"no-such-password");
    match pick % 8 {
        0..=3 => own.to_vec(),
        4 if identity == "alice" => PASSWORDS[1].1.to_vec(),
        4 => PASSWORDS[0].1.to_vec(),
        5 => [own, b"!"].concat(),
        6 => Vec::new(),
        _ => vec![b'p'; 300],
    }
}

/// The server's credentials; the entries are derived once (each costs a PBKDF2).
fn credentials(allow_anonymous: bool) -> ServerCredentials {
    static BASE: OnceLock<ServerCredentials> = OnceLock::new();
    let mut credentials = BASE
        .get_or_init(|| {
            let users = PASSWORDS
                .iter()
                .map(|(identity, password)| (identity.to_string(), password.to_vec()));
            let mut credentials = ServerCredentials::passwords(users, ITERATIONS);
            credentials.allow_plain = true;
            credentials
                .peer_uids
                .insert(EXTERNAL_IDENTITY.to_owned(), EXTERNAL_UID);
            credentials
        })
        .clone();
    credentials.allow_anonymous = allow_anonymous;
    credentials
}

/// Runs `f` with the SCRAM cache of `password`, kept across inputs: a derivation is the
/// same whichever input asked for it, and PBKDF2 is most of the cost of a run.
fn with_cache<R>(password: &[u8], f: impl FnOnce(&SaltCache) -> R) -> R {
    thread_local! {
        static CACHES: RefCell<HashMap<Vec<u8>, SaltCache>> = RefCell::default();
    }
    CACHES.with_borrow_mut(|caches| f(caches.entry(password.to_vec()).or_default()))
}

/// `gs2-cbind-flag` values: the three of RFC 5802, channel-binding types hawser does not
/// use, and malformed ones.
const GS2_FLAGS: [&str; 8] = [
    "n",
    "y",
    "p=tls-exporter",
    "p=tls-unique",
    "p=",
    "p",
    "",
    "p=tls exporter",
];
const AUTHZIDS: [&str; 7] = ["", "a=alice", "a=bob", "a=mallory", "a", "a=", "a=a=2Cb"];
const EXTENSIONS: [&str; 5] = ["", ",e=ext", ",m=mandatory", ",", ",r=again"];
/// Iteration counts a server may name, all cheap: the minimum, below it, zero, signs,
/// padding, just above the client's limit, overflows, not a number.
const ITERATION_COUNTS: [&str; 13] = [
    "4096",
    "4095",
    "0",
    "1",
    "-1",
    "",
    "+4096",
    "04096",
    "4096 ",
    "10000001",
    "4294967296",
    "99999999999999999999",
    "i",
];
const SERVER_ERRORS: [&str; 5] = [
    "invalid-proof",
    "other-error",
    "channel-bindings-dont-match",
    "server-does-support-channel-binding",
    "",
];
/// Names a list may hold: hawser's, one in lower case, others.
const LIST_NAMES: [&str; 8] = [
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-256",
    "PLAIN",
    "EXTERNAL",
    "ANONYMOUS",
    "scram-sha-256",
    "GSSAPI",
    "SCRAM-SHA-256-PLUS-EXTRA",
];
const LIST_SEPARATORS: [&str; 5] = [" ", "  ", "\t", ",", "\n"];

/// The value of the first `name=` attribute of a SCRAM message.
fn attribute(message: &[u8], name: u8) -> &[u8] {
    message
        .split(|&b| b == b',')
        .find_map(|field| field.strip_prefix(&[name, b'=']))
        .unwrap_or_default()
}

/// RFC 5802's saslname: `,` and `=` escaped.
fn saslname(identity: &str) -> String {
    identity.replace('=', "=3D").replace(',', "=2C")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The iteration count of a server-first, read as `rsasl` reads it: the third attribute,
/// `i=`, as a decimal u32.
fn iteration_count(message: &[u8]) -> Option<u32> {
    let count = message.split(|&b| b == b',').nth(2)?.strip_prefix(b"i=")?;
    std::str::from_utf8(count).ok()?.parse().ok()
}

/// Whether a server-first is not fed to the client for the time it could cost: a count
/// above the cheapest, other than the one just past the limit.
fn costly_iterations(message: &[u8]) -> bool {
    iteration_count(message).is_some_and(|n| n > ITERATIONS && n != MAX_ITERATIONS + 1)
}

/// The ServerSignature a server-final carries: its first attribute, `v=`, decoded (what
/// follows a comma is an extension).
fn server_signature(message: &[u8]) -> Option<Vec<u8>> {
    let first = message.split(|&b| b == b',').next()?;
    BASE64.decode(first.strip_prefix(b"v=")?).ok()
}

fn is_scram(mechanism: Mechanism) -> bool {
    matches!(
        mechanism,
        Mechanism::ScramSha256 | Mechanism::ScramSha256Plus
    )
}

/// A real client as it was started.
struct RealClient {
    identity: &'static str,
    /// Its password, if it has password credentials.
    password: Option<Vec<u8>>,
    exporter: Option<[u8; 32]>,
    mechanism: Mechanism,
    /// Its `Auth`'s initial response (a SCRAM client-first holds its nonce).
    initial: Bytes,
}

/// The server's exchange in progress.
struct ServerRun {
    session: ServerSession,
    mechanism: Option<Mechanism>,
    /// The real client whose messages, and only those, it received.
    real: Option<usize>,
}

struct Harness {
    setup: Setup,
    server: Server,
    server_exporter: Option<[u8; 32]>,
    client_exporter: Option<[u8; 32]>,
    peer: Peer,
    clients: Vec<RealClient>,
    /// The newest real client's exchange, while it goes on.
    client: Option<ClientSession>,
    exchange: Option<ServerRun>,
    /// The real client's last message, and which client sent it.
    to_server: Option<(Bytes, usize)>,
    /// The server's last challenge, and its last grant's additional data.
    challenge: Bytes,
    result: Bytes,
    /// The server-final of the server's last SCRAM grant to a real client's exchange.
    verifier: Option<(Bytes, usize)>,
    costly: u32,
}

impl Harness {
    fn new(setup: Setup) -> Harness {
        let server_exporter = setup.server_tls.then_some(EXPORTER);
        let client_exporter = match setup.client_tls {
            0 => None,
            1 => Some(EXPORTER),
            _ => Some(OTHER_EXPORTER),
        };
        let local = |uid| {
            Peer::Local(LocalCredentials {
                pid: 4242,
                uid,
                gid: uid,
            })
        };
        let peer = match setup.peer {
            0 => Peer::Unknown,
            1 => Peer::Inet([192, 0, 2, 1].into()),
            2 => local(EXTERNAL_UID),
            _ => local(EXTERNAL_UID + 1),
        };
        Harness {
            setup,
            server: Server::new(credentials(setup.allow_anonymous), SERVER_SEED),
            server_exporter,
            client_exporter,
            peer,
            clients: Vec::new(),
            client: None,
            exchange: None,
            to_server: None,
            challenge: Bytes::new(),
            result: Bytes::new(),
            verifier: None,
            costly: 0,
        }
    }

    /// Counts an operation that may run a PBKDF2; false past the cap.
    fn costly(&mut self) -> bool {
        self.costly += 1;
        self.costly <= MAX_COSTLY
    }

    fn step(&mut self, op: Op, input: &mut Input<'_>) {
        match op {
            Op::Auth => self.auth(input),
            Op::Response => self.response(input),
            Op::Start => self.start(input),
            Op::Challenge => self.challenge(input),
            Op::Result => self.result(input),
        }
    }

    /// A message for the server: the real client's (and which client), or not.
    fn to_server(&self, source: Source<'_>) -> (Vec<u8>, Option<usize>) {
        match (source, &self.to_server) {
            (Source::Raw(bytes), _) => (bytes.to_vec(), None),
            (_, Some((message, client))) if source.is_real() => {
                (source.apply(message), Some(*client))
            }
            _ => (Vec::new(), None),
        }
    }

    fn auth(&mut self, input: &mut Input<'_>) {
        let pick = input.u8();
        let raw_name = (pick >= 10).then(|| String::from_utf8_lossy(input.short_bytes()));
        let source = Source::read(input);
        let (initial, real) = match source {
            Source::Made => (self.made_initial(input), None),
            _ => self.to_server(source),
        };
        if !self.costly() {
            return;
        }
        let real_name = real.map_or("SCRAM-SHA-256", |c| self.clients[c].mechanism.name());
        let name = match pick {
            0 => real_name,
            1..=5 => Mechanism::ALL[usize::from(pick) - 1].name(),
            6 => "scram-sha-256-plus",
            7 => "HMAC-SHA256",
            8 => "GSSAPI",
            9 => "",
            _ => raw_name.as_deref().unwrap_or_default(),
        };
        let mechanism = name.parse::<Mechanism>().ok();
        let (session, step) = self
            .server
            .start(name, &initial, self.peer, self.server_exporter);
        trace(|| format!("server: Auth {name:?} {:?} -> {step:?}", show(&initial)));
        assert_eq!(
            session.is_some(),
            matches!(step, Step::Challenge(_)),
            "an exchange is kept exactly while it goes on"
        );
        self.check_server_step(mechanism, &initial, real, &step);
        self.exchange = session.map(|session| ServerRun {
            session,
            mechanism,
            real,
        });
    }

    fn response(&mut self, input: &mut Input<'_>) {
        let source = Source::read(input);
        let (message, real) = match source {
            Source::Made => (self.made_client_final(input), None),
            _ => self.to_server(source),
        };
        let Some(mut run) = self.exchange.take() else {
            return;
        };
        // Real only if every message of the exchange came from the same real client.
        let real = run.real.filter(|&c| real == Some(c));
        let step = run.session.step(&message);
        trace(|| format!("server: AuthResponse {:?} -> {step:?}", show(&message)));
        self.check_server_step(run.mechanism, &message, real, &step);
        if matches!(step, Step::Challenge(_)) {
            run.real = real;
            self.exchange = Some(run);
        }
    }

    /// What the server answered `message` with, against what it may do.
    fn check_server_step(
        &mut self,
        mechanism: Option<Mechanism>,
        message: &[u8],
        real: Option<usize>,
        step: &Step,
    ) {
        match step {
            Step::Challenge(data) => {
                assert!(
                    data.len() <= message.len() + 128,
                    "a challenge of {} bytes to a message of {}",
                    data.len(),
                    message.len()
                );
                self.challenge = data.clone();
            }
            Step::Refused(_) => {}
            Step::Granted {
                identity,
                additional_data,
            } => {
                let mechanism = mechanism.expect("granted under an unknown mechanism");
                assert!(identity.len() <= MAX_IDENTITY_LEN, "granted {identity:?}");
                assert!(additional_data.len() <= 128, "{additional_data:?}");
                let protected = password_of(identity).is_some() || identity == EXTERNAL_IDENTITY;
                match mechanism {
                    Mechanism::Anonymous => {
                        assert!(self.setup.allow_anonymous, "ANONYMOUS granted, not allowed");
                        assert!(!protected, "ANONYMOUS granted {identity:?}");
                        assert_eq!(message, identity.as_bytes());
                    }
                    Mechanism::External => {
                        assert_eq!(self.peer.local().map(|c| c.uid), Some(EXTERNAL_UID));
                        assert_eq!(identity, EXTERNAL_IDENTITY);
                    }
                    Mechanism::Plain => {
                        assert!(self.server_exporter.is_some(), "PLAIN granted in clear");
                        let password = password_of(identity)
                            .unwrap_or_else(|| panic!("PLAIN granted {identity:?}"));
                        assert!(
                            contains(message, password),
                            "PLAIN granted {identity:?} without its password: {:?}",
                            show(message)
                        );
                    }
                    Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => {
                        let c = real.unwrap_or_else(|| {
                            panic!("SCRAM granted {identity:?} to messages no real client made")
                        });
                        let client = &self.clients[c];
                        assert_eq!(client.identity, identity, "SCRAM granted another identity");
                        assert_eq!(
                            client.password.as_deref(),
                            password_of(identity),
                            "SCRAM granted {identity:?} to a client without its password"
                        );
                        if mechanism == Mechanism::ScramSha256Plus {
                            assert!(
                                self.server_exporter.is_some()
                                    && client.exporter == self.server_exporter,
                                "SCRAM-SHA-256-PLUS granted across another TLS session"
                            );
                        }
                        self.verifier = Some((additional_data.clone(), c));
                    }
                }
                self.result = additional_data.clone();
            }
        }
    }

    fn start(&mut self, input: &mut Input<'_>) {
        let source = Source::read(input);
        let list = match source {
            Source::Raw(bytes) => bytes.to_vec(),
            Source::Made => self.made_list(input),
            _ => source.apply(self.server.mechanisms(self.setup.server_tls).as_bytes()),
        };
        let (kind, identity) = (input.u8(), identity(input.u8()));
        let password = password(identity, input.u8());
        let insist = input.u8();
        let insist = (insist >= 0xc0).then(|| Mechanism::ALL[usize::from(insist) % 5]);
        if self.clients.len() >= MAX_CLIENTS {
            return;
        }
        let credentials = match kind % 4 {
            0 => ClientCredentials::Anonymous,
            1 => ClientCredentials::External,
            _ => ClientCredentials::password(password.clone()),
        };
        // A new client: what the previous one had is no more.
        self.client = None;
        self.to_server = None;
        self.verifier = None;
        let exporter = self.client_exporter;
        let started = with_cache(&password, |cache| {
            ClientSession::start(&list, &credentials, identity, exporter, insist, cache)
        });
        trace(|| {
            format!(
                "client: list {:?} ({credentials:?}) -> {started:?}",
                show(&list)
            )
        });
        let Ok((session, mechanism, initial)) = started else {
            return;
        };
        self.check_choice(&list, &credentials, insist, mechanism);
        let password = matches!(credentials, ClientCredentials::Password(_)).then_some(password);
        let limit = 3 * identity.len() + password.as_ref().map_or(0, Vec::len) + 128;
        assert!(initial.len() <= limit, "an Auth of {} bytes", initial.len());
        if matches!(mechanism, Mechanism::Anonymous | Mechanism::External) {
            assert_eq!(initial, identity.as_bytes());
        }
        self.clients.push(RealClient {
            identity,
            password,
            exporter,
            mechanism,
            initial: initial.clone(),
        });
        let c = self.clients.len() - 1;
        self.check_client_message(c, &initial, b"");
        self.to_server = Some((initial, c));
        self.client = Some(session);
    }

    /// The client's choice from `list`: offered, fitting its credentials, the strongest.
    fn check_choice(
        &self,
        list: &[u8],
        credentials: &ClientCredentials,
        insist: Option<Mechanism>,
        chosen: Mechanism,
    ) {
        // Names as sent: exact, separated by ASCII white space.
        let offered = |m: Mechanism| {
            std::str::from_utf8(list)
                .is_ok_and(|text| text.split_ascii_whitespace().any(|name| name == m.name()))
        };
        let tls = self.client_exporter.is_some();
        assert!(offered(chosen), "{chosen} chosen from {:?}", show(list));
        assert!(tls || !chosen.needs_tls(), "{chosen} chosen in clear");
        let fitting = match credentials {
            ClientCredentials::Anonymous => vec![Mechanism::Anonymous],
            ClientCredentials::External => vec![Mechanism::External],
            ClientCredentials::Password(_) if tls => vec![
                Mechanism::ScramSha256Plus,
                Mechanism::ScramSha256,
                Mechanism::Plain,
            ],
            ClientCredentials::Password(_) => vec![Mechanism::ScramSha256],
        };
        assert!(fitting.contains(&chosen), "{chosen} with {credentials:?}");
        match insist {
            Some(wanted) => assert_eq!(chosen, wanted, "not the mechanism insisted on"),
            None => {
                let strongest = fitting.into_iter().find(|&m| offered(m));
                assert_eq!(Some(chosen), strongest, "not the strongest offered");
            }
        }
    }

    /// A message the real client sends: its password only in PLAIN, PLAIN only over TLS
    /// (a SCRAM client echoes the server's nonce: what `received` holds is not a leak).
    fn check_client_message(&self, c: usize, message: &[u8], received: &[u8]) {
        let client = &self.clients[c];
        if client.mechanism == Mechanism::Plain {
            assert!(client.exporter.is_some(), "PLAIN sent in clear");
        } else if let Some(password) = client.password.as_deref()
            && password.len() >= 8
            && !contains(received, password)
        {
            assert!(
                !contains(message, password),
                "the password in a {} message",
                client.mechanism
            );
        }
    }

    fn challenge(&mut self, input: &mut Input<'_>) {
        let source = Source::read(input);
        let message = match source {
            Source::Raw(bytes) => bytes.to_vec(),
            Source::Made => self.made_server_first(input),
            _ => source.apply(&self.challenge),
        };
        if costly_iterations(&message) || !self.costly() {
            return;
        }
        let Some(mut session) = self.client.take() else {
            return;
        };
        let c = self.clients.len() - 1;
        let response = session.respond(&message);
        trace(|| format!("client: AuthChallenge {:?} -> {response:?}", show(&message)));
        // On an error the client hangs up: the exchange is not used again.
        let Ok(response) = response else {
            return;
        };
        let mechanism = self.clients[c].mechanism;
        assert!(is_scram(mechanism), "{mechanism} answered a challenge");
        let iterations = iteration_count(&message);
        assert!(
            iterations.is_some_and(|n| (ITERATIONS..=MAX_ITERATIONS).contains(&n)),
            "answered a server-first of {iterations:?} iterations: {:?}",
            show(&message)
        );
        assert!(
            response.len() <= message.len() + 256,
            "a response of {} bytes to a challenge of {}",
            response.len(),
            message.len()
        );
        self.check_client_message(c, &response, &message);
        self.to_server = Some((response, c));
        self.client = Some(session);
    }

    fn result(&mut self, input: &mut Input<'_>) {
        let source = Source::read(input);
        let data = match source {
            Source::Raw(bytes) => bytes.to_vec(),
            Source::Made => self.made_server_final(input),
            _ => source.apply(&self.result),
        };
        // Whatever the outcome the exchange is over.
        let Some(mut session) = self.client.take() else {
            return;
        };
        let c = self.clients.len() - 1;
        let outcome = session.finish(&data);
        trace(|| format!("client: AuthResult OK {:?} -> {outcome:?}", show(&data)));
        if outcome.is_err() {
            return;
        }
        match self.clients[c].mechanism {
            Mechanism::Anonymous | Mechanism::External => {
                assert!(data.is_empty(), "trusted a result with data")
            }
            // PLAIN: the server proves nothing.
            Mechanism::Plain => {}
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => {
                let verifier = self.verifier.as_ref().filter(|(_, granted)| *granted == c);
                let (verifier, _) =
                    verifier.expect("trusted a SCRAM server that granted this client nothing");
                assert_eq!(
                    server_signature(&data),
                    server_signature(verifier),
                    "trusted a verifier the server did not send: {:?}",
                    show(&data)
                );
            }
        }
    }

    /// An `Auth` initial response of one of the shapes: a SCRAM client-first, a PLAIN
    /// triple, an identity.
    fn made_initial(&self, input: &mut Input<'_>) -> Vec<u8> {
        match input.u8() % 3 {
            0 => {
                let (flag, authzid) = (input.pick(&GS2_FLAGS), input.pick(&AUTHZIDS));
                let name = identity(input.u8());
                let name = if input.u8() & 1 == 0 {
                    saslname(name)
                } else {
                    name.to_owned()
                };
                let nonce = input.short_bytes();
                let extension = input.pick(&EXTENSIONS);
                let mut m = format!("{flag},{authzid},n={name},r=").into_bytes();
                m.extend_from_slice(nonce);
                m.extend_from_slice(extension.as_bytes());
                m
            }
            1 => {
                let authzid = input.pick(&["", "alice", "bob", "mallory"]);
                let authcid = identity(input.u8());
                let password = password(authcid, input.u8());
                let trailer = input.pick(&["", "\0", "\0more"]);
                [
                    authzid.as_bytes(),
                    b"\0",
                    authcid.as_bytes(),
                    b"\0",
                    &password,
                    trailer.as_bytes(),
                ]
                .concat()
            }
            _ => identity(input.u8()).as_bytes().to_vec(),
        }
    }

    /// A SCRAM client-final: any channel binding, the server's nonce echoed (or not, or
    /// more), a proof of chosen bytes.
    fn made_client_final(&self, input: &mut Input<'_>) -> Vec<u8> {
        let (flag, authzid) = (input.pick(&GS2_FLAGS), input.pick(&AUTHZIDS));
        let mut binding = format!("{flag},{authzid},").into_bytes();
        match input.u8() % 3 {
            0 => {}
            1 => binding.extend_from_slice(&EXPORTER),
            _ => binding.extend_from_slice(&OTHER_EXPORTER),
        }
        let nonce_kind = input.u8();
        let mut nonce = Vec::new();
        if nonce_kind & 1 == 0 {
            nonce.extend_from_slice(attribute(&self.challenge, b'r'));
        }
        if nonce_kind & 2 != 0 {
            nonce.extend_from_slice(input.short_bytes());
        }
        let extension = input.pick(&EXTENSIONS);
        let proof = match input.u8() % 3 {
            0 => BASE64.encode(input.bytes(32)).into_bytes(),
            1 => BASE64.encode(input.short_bytes()).into_bytes(),
            _ => input.short_bytes().to_vec(),
        };
        let mut m = format!("c={},r=", BASE64.encode(&binding)).into_bytes();
        m.extend_from_slice(&nonce);
        m.extend_from_slice(extension.as_bytes());
        m.extend_from_slice(b",p=");
        m.extend_from_slice(&proof);
        m
    }

    /// A SCRAM server-first: the real client's nonce echoed (or not) and extended (or
    /// not), any salt, a hostile iteration count.
    fn made_server_first(&self, input: &mut Input<'_>) -> Vec<u8> {
        let nonce_kind = input.u8();
        let mut nonce = Vec::new();
        if nonce_kind & 1 == 0
            && let Some(client) = self.clients.last()
        {
            nonce.extend_from_slice(attribute(&client.initial, b'r'));
        }
        match nonce_kind >> 1 & 3 {
            0 => nonce.extend_from_slice(b"server-nonce"),
            1 => nonce.extend_from_slice(input.short_bytes()),
            _ => {}
        }
        let salt = match input.u8() % 4 {
            0 => BASE64.encode(input.short_bytes()),
            // Up to 64 KiB.
            1 => {
                let n = input.u8();
                BASE64.encode(vec![n; usize::from(n) << 8])
            }
            2 => String::from_utf8_lossy(input.short_bytes()).into_owned(),
            _ => String::new(),
        };
        let iterations = input.pick(&ITERATION_COUNTS);
        let extension = input.pick(&EXTENSIONS);
        let mut m = b"r=".to_vec();
        m.extend_from_slice(&nonce);
        m.extend_from_slice(format!(",s={salt},i={iterations}{extension}").as_bytes());
        m
    }

    /// A SCRAM server-final: a verifier of chosen bytes, an error, or neither.
    fn made_server_final(&self, input: &mut Input<'_>) -> Vec<u8> {
        match input.u8() % 4 {
            0 => format!("v={}", BASE64.encode(input.bytes(32))).into_bytes(),
            1 => format!("e={}", input.pick(&SERVER_ERRORS)).into_bytes(),
            2 => [b"v=", input.short_bytes()].concat(),
            _ => format!("v={},ext", BASE64.encode(input.bytes(32))).into_bytes(),
        }
    }

    /// A list of mechanisms: the names a mask picks, separated as chosen.
    fn made_list(&self, input: &mut Input<'_>) -> Vec<u8> {
        let (mask, separator) = (input.u8(), input.pick(&LIST_SEPARATORS));
        let names: Vec<&str> = LIST_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & 1 << i != 0)
            .map(|(_, name)| *name)
            .collect();
        names.join(separator).into_bytes()
    }
}

/// `HAWSER_FUZZ_TRACE=1` prints every step (to read a crash or a seed).
fn trace(line: impl FnOnce() -> String) {
    static TRACE: OnceLock<bool> = OnceLock::new();
    if *TRACE.get_or_init(|| std::env::var_os("HAWSER_FUZZ_TRACE").is_some()) {
        eprintln!("{}", line());
    }
}

fn show(message: &[u8]) -> String {
    String::from_utf8_lossy(message).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let setup = Setup::read(&mut input);
    let mut harness = Harness::new(setup);
    trace(|| format!("setup: {setup:?}"));
    while !input.0.is_empty() {
        let op = OPS[usize::from(input.u8()) % OPS.len()];
        harness.step(op, &mut input);
    }
});
