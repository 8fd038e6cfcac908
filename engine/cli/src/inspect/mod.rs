//! `hawser inspect`: a dissector for captures of hawser's wire formats.
//!
//! Operators debugging a capture point it at a file (or pipe bytes into it) and get every
//! frame or message decoded, one per line, readable or as JSON lines. With `--reencode` the
//! decoded items are written back in canonical wire form, so canonical input comes back
//! byte-identical: a quick check that a capture (or a peer) is well-formed.
//!
//! Each format has a [`Dissector`] that decodes one item at a time from the front of a
//! buffer; [`dissect`] drives it over any reader without holding the whole capture in
//! memory, and reports malformed input with the absolute byte offset where it went wrong.
//!
//! ```
//! use hawser::inspect::{dissect, Format, Output};
//!
//! // A DDF message: u32 length, then one node per line.
//! let capture = b"\x00\x00\x00\x0ffoo%20bar 2 42\n";
//! let mut out = Vec::new();
//! let summary = dissect(Format::Ddf, &capture[..], Output::Text, &mut out, &Default::default())?;
//! assert_eq!(summary.items, 1);
//! assert!(String::from_utf8(out)?.contains("foo bar"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ddf;
mod dmp;
mod dsp;
mod dtp;
mod fields;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

pub use fields::{Fields, Value};

/// The wire formats hawser speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// DSP trunk frames: the session protocol's framing on a trunk connection (one direction).
    Dsp,
    /// DMP direct messages: preamble, commands/responses, envelopes, heartbeats (one direction).
    Dmp,
    /// DTP capture records: transfer requests/responses, hole reports and data datagrams.
    Dtp,
    /// DDF remoting text: length-prefixed messages of one node per line.
    Ddf,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Dsp => "DSP",
            Format::Dmp => "DMP",
            Format::Dtp => "DTP",
            Format::Ddf => "DDF",
        }
    }
}

/// Arguments of `hawser inspect`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Dissect a capture of hawser wire traffic (DSP, DMP, DTP or DDF) and print every frame",
    after_help = "Exit status: 0 when every byte decoded, 1 on malformed or truncated \
input (the message names the byte offset), 2 on usage errors.\n\n\
Examples:\n  hawser inspect dsp capture.bin\n  hawser inspect ddf --json < message.ddf\n  \
hawser inspect dmp --reencode feed.bin | cmp - feed.bin"
)]
pub struct InspectArgs {
    /// Wire format of the capture.
    #[arg(value_enum)]
    pub format: Format,
    /// Capture to read; standard input when absent or `-`.
    pub file: Option<PathBuf>,
    /// Print one JSON object per item (JSON lines) instead of readable text.
    #[arg(long, conflicts_with = "reencode")]
    pub json: bool,
    /// Write the decoded items back to standard output in canonical wire form, instead of
    /// describing them.
    #[arg(long)]
    pub reencode: bool,
    /// Show whole payloads instead of their first 64 bytes.
    #[arg(long)]
    pub full_payload: bool,
    /// Largest DSP frame payload accepted, in bytes; a frame announcing more is malformed.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub max_payload: u32,
}

/// How decoded items are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One readable line per item.
    Text,
    /// One JSON object per line.
    Json,
    /// The items re-encoded in canonical wire form.
    Reencode,
}

/// Options that change how items are decoded or shown.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whole payloads instead of a preview.
    pub full_payload: bool,
    /// Largest DSP payload accepted.
    pub max_payload: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            full_payload: false,
            max_payload: 64 << 20,
        }
    }
}

/// One decoded item, described for a reader.
#[derive(Debug)]
pub struct Decoded {
    /// Bytes of input the item occupied.
    pub consumed: usize,
    /// What kind of frame or message it is.
    pub kind: &'static str,
    /// Its fields, in wire order.
    pub fields: Fields,
}

/// Input that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Offset from the start of the item being decoded.
    pub offset_in_item: usize,
    /// What was wrong.
    pub message: String,
}

impl Malformed {
    fn new(offset_in_item: usize, message: impl ToString) -> Self {
        Self {
            offset_in_item,
            message: message.to_string(),
        }
    }

    /// `message` at `offset` of a decoder that counts offsets from the start of its
    /// stream, for the item that began there at `item_start`.
    fn in_stream(offset: usize, item_start: usize, message: impl ToString) -> Self {
        Self::new(offset.saturating_sub(item_start), message)
    }

    /// The decoded item could not be encoded again (`--reencode`).
    fn reencode(e: impl std::fmt::Display) -> Self {
        Self::new(0, format!("cannot re-encode: {e}"))
    }
}

/// Decodes one format, one item at a time.
pub trait Dissector {
    /// Decodes the item at the start of `buf`. `Ok(None)` asks for more bytes. When
    /// `canonical` is given, the item's canonical encoding is appended to it.
    fn next_item(
        &mut self,
        buf: &[u8],
        canonical: Option<&mut Vec<u8>>,
    ) -> Result<Option<Decoded>, Malformed>;
}

/// What went wrong while dissecting.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The input is not valid for the format.
    #[error("malformed {format} input at byte {offset}: {message}")]
    Malformed {
        /// Format being decoded.
        format: &'static str,
        /// Absolute offset of the bad byte (or of the item that holds it).
        offset: u64,
        /// What was wrong.
        message: String,
    },
    /// The input ended in the middle of an item.
    #[error(
        "truncated {format} input: the item starting at byte {offset} needs more than the {left} bytes left"
    )]
    Truncated {
        /// Format being decoded.
        format: &'static str,
        /// Offset where the incomplete item starts.
        offset: u64,
        /// Bytes left over at the end.
        left: usize,
    },
    /// Reading the input or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Totals of one dissection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Items decoded.
    pub items: u64,
    /// Bytes of input consumed.
    pub bytes: u64,
}

fn dissector_for(format: Format, options: &Options) -> Box<dyn Dissector> {
    match format {
        Format::Dsp => Box::new(dsp::DspDissector::new(options)),
        Format::Dmp => Box::new(dmp::DmpDissector::new(options)),
        Format::Dtp => Box::new(dtp::DtpDissector::new(options)),
        Format::Ddf => Box::new(ddf::DdfDissector::new(options)),
    }
}

/// Reads `input` to its end, decoding every item of `format` and writing each to `out`.
pub fn dissect(
    format: Format,
    mut input: impl Read,
    output: Output,
    out: &mut impl Write,
    options: &Options,
) -> Result<Summary, InspectError> {
    const READ_CHUNK: usize = 1 << 20;
    let mut dissector = dissector_for(format, options);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut start = 0usize; // first unconsumed byte of `buf`
    let mut base: u64 = 0; // absolute offset of `buf[0]`
    let mut eof = false;
    let mut summary = Summary::default();
    let mut canonical = Vec::new();
    loop {
        canonical.clear();
        let want_canonical = (output == Output::Reencode).then_some(&mut canonical);
        let item_offset = base + start as u64;
        match dissector.next_item(&buf[start..], want_canonical) {
            Ok(Some(decoded)) => {
                start += decoded.consumed;
                summary.items += 1;
                summary.bytes += decoded.consumed as u64;
                match output {
                    Output::Text => {
                        writeln!(
                            out,
                            "@{item_offset} {} {}",
                            decoded.kind,
                            decoded.fields.to_text()
                        )?;
                    }
                    Output::Json => {
                        let line = decoded.fields.to_json(item_offset, decoded.kind);
                        writeln!(out, "{line}")?;
                    }
                    Output::Reencode => out.write_all(&canonical)?,
                }
            }
            Ok(None) if eof => {
                let left = buf.len() - start;
                if left == 0 {
                    out.flush()?;
                    return Ok(summary);
                }
                return Err(InspectError::Truncated {
                    format: format.name(),
                    offset: item_offset,
                    left,
                });
            }
            Ok(None) => {
                // Keep only the unconsumed tail, then read more behind it.
                buf.drain(..start);
                base += start as u64;
                start = 0;
                let old_len = buf.len();
                buf.resize(old_len + READ_CHUNK, 0);
                let read = read_some(&mut input, &mut buf[old_len..])?;
                buf.truncate(old_len + read);
                eof = read == 0;
            }
            Err(malformed) => {
                return Err(InspectError::Malformed {
                    format: format.name(),
                    offset: item_offset + malformed.offset_in_item as u64,
                    message: malformed.message,
                });
            }
        }
    }
}

fn read_some(input: &mut impl Read, into: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(into) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Runs `hawser inspect` and maps the outcome to the process exit status.
pub fn run_cli(args: &InspectArgs) -> ExitCode {
    let output = if args.reencode {
        Output::Reencode
    } else if args.json {
        Output::Json
    } else {
        Output::Text
    };
    let options = Options {
        full_payload: args.full_payload,
        max_payload: args.max_payload,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match args.file.as_deref() {
        None => dissect(args.format, io::stdin().lock(), output, &mut out, &options),
        Some(path) if path.as_os_str() == "-" => {
            dissect(args.format, io::stdin().lock(), output, &mut out, &options)
        }
        Some(path) => match File::open(path) {
            Ok(file) => dissect(args.format, file, output, &mut out, &options),
            Err(e) => {
                eprintln!("hawser inspect: cannot open {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
    };
    // Whatever was decoded before an error is still shown.
    let flushed = out.flush();
    match result.and_then(|s| {
        flushed?;
        Ok(s)
    }) {
        Ok(_) => ExitCode::SUCCESS,
        Err(InspectError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hawser inspect: {e}");
            ExitCode::FAILURE
        }
    }
}
