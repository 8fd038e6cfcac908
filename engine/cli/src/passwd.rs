//! `hawser passwd IDENTITY`: turns a password into the server's user-database entry —
//! SCRAM-SHA-256's salt, iteration count, StoredKey and ServerKey, never the password —
//! printed as a TOML table to paste into the server's config file.

use std::io::{BufRead, IsTerminal, Read};

use hawser_runtime::ScramEntry;
use hawser_runtime::auth::{DEFAULT_ITERATIONS, ITERATIONS, SALT_LEN};

use crate::error::CliError;
use crate::security::{PASSWORD_VARIABLE, first_line};

/// `hawser passwd`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Print a server user-database entry (SCRAM-SHA-256 keys) for IDENTITY",
    long_about = "Print a server user-database entry for IDENTITY: the password's \
SCRAM-SHA-256 salt, iteration count, StoredKey and ServerKey as a [users.IDENTITY] TOML table \
to paste into the config file of `hawser serve --config`. The password is never stored: \
the server can check it and prove itself with these keys, not recover it. The password \
comes from the HAWSER_PASSWORD environment variable, else the first line of stdin when it \
is not a terminal, else a prompt (typed twice). Clients then connect with --identity \
IDENTITY and --secret-file FILE or HAWSER_PASSWORD."
)]
pub struct PasswdArgs {
    /// The identity clients log in as (--identity).
    pub identity: String,
    /// PBKDF2 iterations: each login costs the client this many HMACs, a guess at a
    /// stolen entry the same (4096 to 10000000).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ITERATIONS)]
    pub iterations: u32,
}

/// Reads the password and prints the entry.
pub fn passwd(args: &PasswdArgs) -> Result<(), CliError> {
    if !ITERATIONS.contains(&args.iterations) {
        return Err(CliError::Usage(format!(
            "--iterations {}: give 4096 to 10000000",
            args.iterations
        )));
    }
    if args.identity.is_empty() || args.identity.len() > 256 {
        return Err(CliError::Usage("IDENTITY must be 1 to 256 bytes".into()));
    }
    let password = read_password(&args.identity)?;
    if password.is_empty() {
        return Err(CliError::Usage("the password is empty".into()));
    }
    let salt = random_salt()?;
    let entry = ScramEntry::derive(&password, &salt, args.iterations);
    print!("{}", entry.to_toml(&args.identity));
    Ok(())
}

fn read_password(identity: &str) -> Result<Vec<u8>, CliError> {
    if let Some(password) = std::env::var_os(PASSWORD_VARIABLE) {
        return Ok(password.into_encoded_bytes());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = Vec::new();
        stdin
            .lock()
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::Usage(format!("cannot read the password from stdin: {e}")))?;
        return Ok(first_line(&line).to_vec());
    }
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .map_err(|e| CliError::Usage(format!("cannot read the password: {e}")))
    };
    let first = ask(format!("new password for {identity}: "))?;
    let again = ask("the same again: ".to_owned())?;
    if first != again {
        return Err(CliError::Usage("the two passwords differ".into()));
    }
    Ok(first.into_bytes())
}

/// A salt from the kernel's random source.
fn random_salt() -> Result<[u8; SALT_LEN], CliError> {
    let mut salt = [0; SALT_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(|e| CliError::Usage(format!("cannot read /dev/urandom: {e}")))?;
    Ok(salt)
}
