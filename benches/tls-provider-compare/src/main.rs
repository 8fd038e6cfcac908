//! rustls 0.23 crypto providers compared on this machine: aws-lc-rs against ring.
//!
//! Everything runs in memory on one thread: a client and a server connection hand TLS records
//! to each other through `write_tls`/`read_tls` on owned buffers, no sockets. Measured, A/B
//! alternated over `--runs` runs, medians reported:
//! - bulk: the client sends `--mib` MiB of application data in 1 MiB `writer().write_all`
//!   calls, the server reads it all with `reader().read` (every byte counted), one TLS 1.3
//!   cipher suite forced per measurement;
//! - seal: the same writes, encrypted and drained with `write_tls` into a buffer that is
//!   thrown away (the sender's cost alone);
//! - handshakes per second: full TLS 1.3 handshakes (X25519, ECDSA P-256 certificate, no
//!   resumption, no session tickets).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, ConnectionCommon, NamedGroup, RootCertStore,
    ServerConfig, ServerConnection, SupportedCipherSuite,
};

const MIB: usize = 1 << 20;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Provider {
    AwsLcRs,
    Ring,
}

impl Provider {
    const ALL: [Provider; 2] = [Provider::AwsLcRs, Provider::Ring];

    fn name(self) -> &'static str {
        match self {
            Provider::AwsLcRs => "aws-lc-rs",
            Provider::Ring => "ring",
        }
    }

    // rustls 0.23.48 deprecates ring's `default_provider` ("no support for post-quantum
    // algorithms"); it is the thing measured here, so the warning is allowed.
    #[allow(deprecated)]
    fn default_provider(self) -> CryptoProvider {
        match self {
            Provider::AwsLcRs => rustls::crypto::aws_lc_rs::default_provider(),
            Provider::Ring => rustls::crypto::ring::default_provider(),
        }
    }

    fn x25519(self) -> &'static dyn SupportedKxGroup {
        match self {
            Provider::AwsLcRs => rustls::crypto::aws_lc_rs::kx_group::X25519,
            Provider::Ring => rustls::crypto::ring::kx_group::X25519,
        }
    }

    /// The provider's default configuration narrowed to one TLS 1.3 suite and X25519.
    fn with_suite(self, suite: CipherSuite) -> Result<CryptoProvider> {
        let base = self.default_provider();
        let chosen: Vec<SupportedCipherSuite> = base
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.suite() == suite)
            .collect();
        if chosen.is_empty() {
            return Err(format!("{} has no {suite:?}", self.name()).into());
        }
        Ok(CryptoProvider {
            cipher_suites: chosen,
            kx_groups: vec![self.x25519()],
            ..base
        })
    }
}

const SUITES: [CipherSuite; 3] = [
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
];

fn suite_name(suite: CipherSuite) -> &'static str {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS13_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS13_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS13_CHACHA20_POLY1305_SHA256",
        _ => "other",
    }
}

/// A self-signed ECDSA P-256 certificate for "localhost" (rcgen's default key type).
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    fn new() -> Result<Self> {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        Ok(Identity {
            cert: ck.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()),
        })
    }
}

/// One client and one server configuration sharing a provider.
struct Pair {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

impl Pair {
    fn new(id: &Identity, provider: CryptoProvider) -> Result<Self> {
        let provider = Arc::new(provider);
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![id.cert.clone()],
                PrivateKeyDer::Pkcs8(id.key.clone_key()),
            )?;
        // Full handshakes only: no tickets to issue, nothing to resume.
        server.send_tls13_tickets = 0;
        let mut roots = RootCertStore::empty();
        roots.add(id.cert.clone())?;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Pair {
            client: Arc::new(client),
            server: Arc::new(server),
        })
    }

    fn connect(&self) -> Result<(ClientConnection, ServerConnection)> {
        let name = ServerName::try_from("localhost")?;
        let mut client = ClientConnection::new(self.client.clone(), name)?;
        let mut server = ServerConnection::new(self.server.clone())?;
        let mut wire = Vec::with_capacity(64 * 1024);
        let mut sink = vec![0u8; 64 * 1024];
        while client.is_handshaking() || server.is_handshaking() {
            let a = pump(&mut client, &mut server, &mut wire, &mut sink)?;
            let b = pump(&mut server, &mut client, &mut wire, &mut sink)?;
            if a.wire == 0 && b.wire == 0 {
                return Err("handshake stalled".into());
            }
        }
        // Flush whatever is left (nothing, with tickets off) so both sides are idle.
        pump(&mut client, &mut server, &mut wire, &mut sink)?;
        pump(&mut server, &mut client, &mut wire, &mut sink)?;
        Ok((client, server))
    }
}

struct Moved {
    /// TLS bytes that crossed.
    wire: usize,
    /// Application bytes the receiver read out.
    plain: usize,
}

/// Moves every pending TLS record from `src` to `dst`, processes it, and reads out (and
/// counts) the plaintext `dst` received.
fn pump<A, B>(
    src: &mut ConnectionCommon<A>,
    dst: &mut ConnectionCommon<B>,
    wire: &mut Vec<u8>,
    sink: &mut [u8],
) -> Result<Moved> {
    wire.clear();
    while src.wants_write() {
        src.write_tls(wire)?;
    }
    let mut input = &wire[..];
    let mut plain = 0;
    while !input.is_empty() {
        dst.read_tls(&mut input)?;
        dst.process_new_packets()?;
        loop {
            match dst.reader().read(sink) {
                Ok(0) => break,
                Ok(n) => plain += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Moved {
        wire: wire.len(),
        plain,
    })
}

fn check_negotiated(client: &ClientConnection, suite: CipherSuite) -> Result<()> {
    let got = client.negotiated_cipher_suite().map(|s| s.suite());
    if got != Some(suite) {
        return Err(format!("negotiated {got:?}, wanted {suite:?}").into());
    }
    let group = client.negotiated_key_exchange_group().map(|g| g.name());
    if group != Some(NamedGroup::X25519) {
        return Err(format!("key exchange {group:?}, wanted X25519").into());
    }
    if client.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return Err("not TLS 1.3".into());
    }
    Ok(())
}

/// Client to server, `mib` MiB of application data; returns GB/s (10^9 bytes per second).
fn bulk(pair: &Pair, suite: CipherSuite, mib: usize) -> Result<f64> {
    let (mut client, mut server) = pair.connect()?;
    check_negotiated(&client, suite)?;
    // One 1 MiB write is sealed whole into the outgoing queue.
    client.set_buffer_limit(None);
    let data = vec![0x5au8; MIB];
    let mut wire = Vec::with_capacity(MIB + 64 * 1024);
    let mut sink = vec![0u8; 64 * 1024];
    let mut received = 0usize;
    let start = Instant::now();
    for _ in 0..mib {
        client.writer().write_all(&data)?;
        received += pump(&mut client, &mut server, &mut wire, &mut sink)?.plain;
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = mib * MIB;
    if received != sent {
        return Err(format!("server read {received} bytes of {sent}").into());
    }
    Ok(sent as f64 / secs / 1e9)
}

/// The sender's side alone: seal `mib` MiB and drain the records into a discarded buffer.
fn seal(pair: &Pair, suite: CipherSuite, mib: usize) -> Result<f64> {
    let (mut client, _server) = pair.connect()?;
    check_negotiated(&client, suite)?;
    client.set_buffer_limit(None);
    let data = vec![0x5au8; MIB];
    let mut wire = Vec::with_capacity(MIB + 64 * 1024);
    let mut sealed = 0usize;
    let start = Instant::now();
    for _ in 0..mib {
        client.writer().write_all(&data)?;
        wire.clear();
        while client.wants_write() {
            client.write_tls(&mut wire)?;
        }
        sealed += wire.len();
    }
    let secs = start.elapsed().as_secs_f64();
    // 16 KiB records: 64 per MiB, each at most 5 + 1 + 16 bytes larger.
    if sealed < mib * MIB {
        return Err(format!("sealed {sealed} bytes for {} of data", mib * MIB).into());
    }
    Ok((mib * MIB) as f64 / secs / 1e9)
}

/// Full handshakes per second, `count` of them.
fn handshakes(pair: &Pair, count: usize) -> Result<f64> {
    let start = Instant::now();
    for _ in 0..count {
        let (client, _server) = pair.connect()?;
        if client.is_handshaking() {
            return Err("handshake did not finish".into());
        }
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Args {
    runs: usize,
    mib: usize,
    handshakes: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        runs: 5,
        mib: 1024,
        handshakes: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            Ok(v.parse()?)
        };
        match flag.as_str() {
            "--runs" => args.runs = value()?,
            "--mib" => args.mib = value()?,
            "--handshakes" => args.handshakes = value()?,
            "-h" | "--help" => {
                println!(
                    "tls-provider-compare [--runs R (5)] [--mib N (1024)] [--handshakes H (2000)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.runs == 0 || args.mib == 0 || args.handshakes == 0 {
        return Err("--runs, --mib and --handshakes must be at least 1".into());
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let id = Identity::new()?;
    // Measurements: (label, suite or None for handshakes), per provider a list of samples.
    let mut rows: Vec<(String, Option<CipherSuite>, bool)> = Vec::new();
    for s in SUITES {
        rows.push((format!("bulk {}", suite_name(s)), Some(s), true));
    }
    for s in SUITES {
        rows.push((format!("seal {}", suite_name(s)), Some(s), false));
    }
    rows.push((
        "handshakes/s (X25519, ECDSA P-256)".to_string(),
        None,
        false,
    ));
    let mut samples = vec![[Vec::new(), Vec::new()]; rows.len()];

    let mut pairs = Vec::new();
    for p in Provider::ALL {
        let mut per_suite = Vec::new();
        for s in SUITES {
            per_suite.push(Pair::new(&id, p.with_suite(s)?)?);
        }
        // Handshakes negotiate the provider's preferred suite (AES-256-GCM for both).
        let mut hs = p.default_provider();
        hs.kx_groups = vec![p.x25519()];
        per_suite.push(Pair::new(&id, hs)?);
        pairs.push(per_suite);
    }

    // Warm-up: one short pass of everything, not recorded.
    for (pi, _) in Provider::ALL.iter().enumerate() {
        for (si, s) in SUITES.iter().enumerate() {
            bulk(&pairs[pi][si], *s, 16.min(args.mib))?;
        }
        handshakes(&pairs[pi][3], 50)?;
    }

    for run in 0..args.runs {
        // A/B alternated: aws-lc-rs first on even runs, ring first on odd runs.
        let order: [usize; 2] = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for (ri, (label, suite, is_bulk)) in rows.iter().enumerate() {
            for &pi in &order {
                let v = match suite {
                    Some(s) => {
                        let si = SUITES.iter().position(|x| x == s).unwrap_or(0);
                        if *is_bulk {
                            bulk(&pairs[pi][si], *s, args.mib)?
                        } else {
                            seal(&pairs[pi][si], *s, args.mib)?
                        }
                    }
                    None => handshakes(&pairs[pi][3], args.handshakes)?,
                };
                eprintln!(
                    "run {}/{} {:<10} {label}: {v:.3}",
                    run + 1,
                    args.runs,
                    Provider::ALL[pi].name()
                );
                samples[ri][pi].push(v);
            }
        }
    }

    println!(
        "medians of {} runs, {} MiB per bulk/seal measurement, {} handshakes per measurement",
        args.runs, args.mib, args.handshakes
    );
    println!();
    println!("| measurement | aws-lc-rs | ring | aws-lc-rs / ring |");
    println!("|---|---:|---:|---:|");
    for (ri, (label, suite, _)) in rows.iter().enumerate() {
        let a = median(&mut samples[ri][0]);
        let r = median(&mut samples[ri][1]);
        let unit = if suite.is_some() { " GB/s" } else { "" };
        let (a_s, r_s) = if suite.is_some() {
            (format!("{a:.2}{unit}"), format!("{r:.2}{unit}"))
        } else {
            (format!("{a:.0}"), format!("{r:.0}"))
        };
        println!("| {label} | {a_s} | {r_s} | {:.2}× |", a / r);
    }
    Ok(())
}
