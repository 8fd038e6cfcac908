//! `hawser completions SHELL` and `hawser man`: shell completion scripts and man pages
//! generated from the same clap definitions that parse the command line, so they never
//! disagree with it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

use crate::error::{CliError, io_err};

/// Arguments of `hawser completions`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Print a shell completion script",
    long_about = "Print the completion script of SHELL on stdout. For bash: \
`hawser completions bash > /etc/bash_completion.d/hawser`; zsh: put the output of \
`hawser completions zsh` in a file `_hawser` on $fpath; fish: \
`hawser completions fish > ~/.config/fish/completions/hawser.fish`."
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of `hawser man`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Write the man pages",
    long_about = "Write the man pages: hawser(1), and one page per subcommand \
(hawser-push(1), hawser-serve(1), ...). Without --out, hawser(1) goes to stdout."
)]
pub struct ManArgs {
    /// Write every page into this directory (made if missing) instead of hawser(1) to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The completion script of `shell` for `cmd`.
pub fn completions(shell: Shell, cmd: &mut clap::Command) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    // Rendered into memory: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, cmd, name, &mut script);
    script
}

/// `hawser completions`.
pub fn run_completions(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<(), CliError> {
    write_stdout(&completions(args.shell, &mut cmd))
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Usage(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// The man page of `cmd`, and its file name (`hawser.1`, `hawser-push.1` for a
/// subcommand of a built command).
pub fn man_page(cmd: clap::Command) -> Result<(String, Vec<u8>), std::io::Error> {
    let man = clap_mangen::Man::new(cmd);
    let mut page = Vec::new();
    man.render(&mut page)?;
    Ok((man.get_filename(), page))
}

/// Writes the man page of `cmd` and one of each of its subcommands (`hawser-push.1`,
/// ...) into `dir`; returns the files written.
pub fn write_man_pages(cmd: &clap::Command, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut cmd = cmd.clone();
    // Building names each subcommand for its page (`hawser-push`).
    cmd.build();
    let mut pages = vec![cmd.clone()];
    pages.extend(
        cmd.get_subcommands()
            .filter(|s| s.get_name() != "help")
            .cloned(),
    );
    let mut written = Vec::new();
    for page_cmd in pages {
        let (name, page) = man_page(page_cmd).map_err(io_err(dir))?;
        let path = dir.join(name);
        std::fs::write(&path, page).map_err(io_err(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// `hawser man`.
pub fn run_man(args: &ManArgs, cmd: clap::Command) -> Result<(), CliError> {
    match &args.out {
        Some(dir) => {
            let mut listing = String::new();
            for path in write_man_pages(&cmd, dir)? {
                listing.push_str(&format!("{}\n", path.display()));
            }
            write_stdout(listing.as_bytes())
        }
        None => {
            let (_, page) = man_page(cmd)
                .map_err(|e| CliError::Usage(format!("cannot render the man page: {e}")))?;
            write_stdout(&page)
        }
    }
}
