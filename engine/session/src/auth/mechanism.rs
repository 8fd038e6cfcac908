//! The SASL mechanisms by name, their order of strength, and the identity a client's first
//! message claims (read before the exchange runs, so failures are throttled per identity).

use std::fmt;
use std::str::FromStr;

/// A SASL mechanism hawser speaks. Declared strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    /// `SCRAM-SHA-256-PLUS`: SCRAM bound to the TLS session (`tls-exporter`).
    ScramSha256Plus,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `PLAIN`, over TLS only.
    Plain,
    /// `EXTERNAL`: a local peer's kernel credentials.
    External,
    /// `ANONYMOUS`.
    Anonymous,
}

impl Mechanism {
    /// Every mechanism, strongest first.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha256,
        Mechanism::Plain,
        Mechanism::External,
        Mechanism::Anonymous,
    ];

    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::Plain => "PLAIN",
            Mechanism::External => "EXTERNAL",
            Mechanism::Anonymous => "ANONYMOUS",
        }
    }

    /// Whether the mechanism needs the connection to run TLS.
    pub fn needs_tls(self) -> bool {
        matches!(self, Mechanism::ScramSha256Plus | Mechanism::Plain)
    }

    /// Whether success proves the identity (and so may clear its failure record).
    pub(crate) fn proves_identity(self) -> bool {
        !matches!(self, Mechanism::Anonymous)
    }

    /// Whether `rsasl` runs the exchange (the others are one message, decided here).
    pub(crate) fn is_password(self) -> bool {
        matches!(
            self,
            Mechanism::ScramSha256Plus | Mechanism::ScramSha256 | Mechanism::Plain
        )
    }

    /// The identity the client's initial response claims, for throttling and the
    /// length limit; `None` when the message does not parse.
    pub(crate) fn claimed_identity(self, initial: &[u8]) -> Option<String> {
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
        match self {
            Mechanism::Anonymous | Mechanism::External => text(initial),
            // authzid NUL authcid NUL passwd
            Mechanism::Plain => {
                let mut parts = initial.split(|&b| b == 0);
                let (_authzid, authcid) = (parts.next()?, parts.next()?);
                parts.next()?;
                text(authcid)
            }
            // gs2-cbind-flag "," [authzid] "," "n=" saslname "," ...
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => {
                let text = std::str::from_utf8(initial).ok()?;
                let mut fields = text.splitn(4, ',');
                let (_flag, _authzid) = (fields.next()?, fields.next()?);
                let name = fields.next()?.strip_prefix("n=")?;
                unescape_saslname(name)
            }
        }
    }
}

/// RFC 5802's saslname: `=2C` is a comma, `=3D` an equals sign; any other `=` is an error.
pub(crate) fn unescape_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown SASL mechanism {s:?}: hawser speaks {}",
                    names.join(", ")
                )
            })
    }
}

/// The list a server sends: names separated by spaces.
pub(crate) fn encode_list(mechanisms: &[Mechanism]) -> String {
    let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
    names.join(" ")
}

/// The mechanisms a server's list names that this implementation knows (others are
/// ignored, as SASL clients do).
pub(crate) fn decode_list(list: &[u8]) -> Vec<Mechanism> {
    let Ok(text) = std::str::from_utf8(list) else {
        return Vec::new();
    };
    let mut known: Vec<Mechanism> = text
        .split_ascii_whitespace()
        .filter_map(|name| Mechanism::ALL.into_iter().find(|m| m.name() == name))
        .collect();
    known.sort_unstable();
    known.dedup();
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_claimed_by_first_messages() {
        let scram = Mechanism::ScramSha256;
        assert_eq!(
            scram.claimed_identity(b"n,,n=user,r=abc").as_deref(),
            Some("user")
        );
        assert_eq!(
            Mechanism::ScramSha256Plus
                .claimed_identity(b"p=tls-exporter,,n=a=2Cb=3Dc,r=x")
                .as_deref(),
            Some("a,b=c")
        );
        assert_eq!(scram.claimed_identity(b"n,,n=bad=ZZ,r=x"), None);
        assert_eq!(scram.claimed_identity(b"n,,r=x"), None);
        assert_eq!(
            Mechanism::Plain.claimed_identity(b"\0ann\0pw").as_deref(),
            Some("ann")
        );
        assert_eq!(Mechanism::Plain.claimed_identity(b"ann\0pw"), None);
        assert_eq!(
            Mechanism::Anonymous.claimed_identity(b"guest").as_deref(),
            Some("guest")
        );
    }

    #[test]
    fn lists_round_trip_and_ignore_unknown_names() {
        let all = Mechanism::ALL.to_vec();
        assert_eq!(decode_list(encode_list(&all).as_bytes()), all);
        assert_eq!(
            decode_list(b"GSSAPI PLAIN  SCRAM-SHA-256 PLAIN"),
            vec![Mechanism::ScramSha256, Mechanism::Plain]
        );
        assert_eq!(decode_list(b"\xff"), vec![]);
        assert_eq!("scram-sha-256-plus".parse(), Ok(Mechanism::ScramSha256Plus));
        assert!("CRAM-MD5".parse::<Mechanism>().is_err());
    }
}
