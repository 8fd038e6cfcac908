//! The shape of SCRAM messages (RFC 5802 section 7), checked before `rsasl` reads them:
//! its parser indexes attributes without checking their length, so a message such as
//! `n,,n=alice,x` from an unauthenticated peer would panic it. A message that passes
//! has, after its GS2 header, only `letter=value` attributes, and the ones its kind
//! requires.

/// Whether `attributes` (comma-separated) are each at least `x=`, and begin with the
/// attribute names `required`, in order.
fn attributes(text: &[u8], required: &[u8]) -> bool {
    let mut fields = text.split(|&b| b == b',');
    let mut all = 0;
    for (i, field) in fields.by_ref().enumerate() {
        let well_formed = field.len() >= 2 && field[0].is_ascii_alphabetic() && field[1] == b'=';
        if !well_formed || required.get(i).is_some_and(|&name| field[0] != name) {
            return false;
        }
        all += 1;
    }
    all >= required.len()
}

/// `gs2-cbind-flag "," [authzid] "," client-first-message-bare`.
pub(crate) fn client_first(message: &[u8]) -> bool {
    let mut parts = message.splitn(3, |&b| b == b',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let flag_ok = flag == b"n" || flag == b"y" || (flag.starts_with(b"p=") && flag.len() > 2);
    let authzid_ok = authzid.is_empty() || (authzid.starts_with(b"a=") && authzid.len() > 2);
    flag_ok && authzid_ok && attributes(bare, b"nr")
}

/// `channel-binding "," nonce ["," extensions] "," proof`.
pub(crate) fn client_final(message: &[u8]) -> bool {
    attributes(message, b"cr") && message.split(|&b| b == b',').any(|f| f.starts_with(b"p="))
}

/// `nonce "," salt "," iteration-count`: also the iteration count, when well formed.
pub(crate) fn server_first(message: &[u8]) -> Option<u32> {
    if !attributes(message, b"rsi") {
        return None;
    }
    let count = message.split(|&b| b == b',').nth(2)?.strip_prefix(b"i=")?;
    std::str::from_utf8(count).ok()?.parse().ok()
}

/// `verifier` (`v=`) or `server-error` (`e=`).
pub(crate) fn server_final(message: &[u8]) -> bool {
    attributes(message, b"") && (message.starts_with(b"v=") || message.starts_with(b"e="))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs the `sasl_messages` fuzz target found panicking rsasl 2.3.1, and their
    /// well-formed neighbours.
    #[test]
    fn malformed_scram_messages_are_told_from_well_formed_ones() {
        assert!(client_first(b"n,,n=alice,r=abc"));
        assert!(client_first(b"p=tls-exporter,a=alice,n=alice,r=abc"));
        assert!(client_first(b"y,,n=alice,r=abc,m=ext"));
        for bad in [
            &b"n,a,n=alice,r=x"[..],
            b"n,,n=alice,x",
            b"n,,n=alice",
            b"q,,n=alice,r=x",
            b"p=,,n=alice,r=x",
            b"n,,r=x,n=alice",
            b"",
        ] {
            assert!(!client_first(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(client_final(b"c=biws,r=abcdef,p=cHJvb2Y="));
        for bad in [&b"c=biws,r=x,p"[..], b"", b"c=biws,r=x", b"r=x,c=biws,p=y"] {
            assert!(!client_final(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(server_first(b"r=abc,s=c2FsdA==,i=4096"), Some(4096));
        for bad in [
            &b"r=x,s"[..],
            b"",
            b"r=x,s=y",
            b"r=x,s=y,i=lots",
            b"s=y,r=x,i=1",
        ] {
            assert_eq!(
                server_first(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(server_final(b"v=c2lnbmF0dXJl"));
        assert!(server_final(b"e=invalid-proof"));
        assert!(!server_final(b""));
        assert!(!server_final(b"v"));
    }
}
