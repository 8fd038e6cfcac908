//! `hawser inspect` end to end: the real binary, fed captures on stdin and from files.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use hawser_wire::ddf::{self, Node, RemoteException, Value as DdfValue};
use hawser_wire::dmp::{Command as DmpCommand, Envelope, Message, Preamble, ShortStr};
use hawser_wire::dsp::{
    Capabilities, Channel, Compression, EncodeOptions, Frame, FrameEncoder, GoAway, GoAwayCode,
    Hello, Ping, Request,
};
use hawser_wire::dtp::{ControlMessage, Datagram, HoleReport, IntervalSet, Record};

fn hawser(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hawser");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait for hawser")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Three DSP frames: a digested lz4 request, a ping and a goaway.
fn dsp_capture() -> Vec<u8> {
    let mut wire = Vec::new();
    let mut encoder = FrameEncoder::new(EncodeOptions {
        digest: true,
        compression: Compression::Lz4,
    });
    let body = b"replicate me ".repeat(100);
    let request = Frame::Request(Request {
        channel: Channel::Fore,
        slot: 2,
        sequence: 9,
        request_id: 77,
        exchange: 5,
        order: None,
        body: &body,
    });
    encoder.encode(&request, &mut wire).expect("encode request");
    let mut plain = FrameEncoder::new(EncodeOptions::default());
    plain
        .encode(&Frame::Ping(Ping { token: 0xfeed }), &mut wire)
        .expect("encode ping");
    plain
        .encode(
            &Frame::GoAway(GoAway {
                code: GoAwayCode::CORRUPT_FRAME,
                reason: "test over",
            }),
            &mut wire,
        )
        .expect("encode goaway");
    wire
}

fn dmp_capture() -> Vec<u8> {
    let mut wire = Vec::new();
    Preamble::DMP.encode(&mut wire);
    DmpCommand {
        text: ShortStr::text("lease-1").expect("short"),
    }
    .encode(&mut wire);
    Message::Envelope(Envelope {
        exchange: ShortStr::text("sink").expect("short"),
        body: b"payload",
        ..Envelope::default()
    })
    .encode(&mut wire)
    .expect("encode envelope");
    Message::Null.encode(&mut wire).expect("encode null");
    wire
}

#[test]
fn dsp_frames_are_listed_readably() {
    let out = hawser(&["inspect", "dsp"], &dsp_capture());
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("@0 "), "{text}");
    assert!(lines[0].contains("compressed|digest"), "{text}");
    assert!(lines[0].contains("exchange=5"), "{text}");
    assert!(lines[1].contains("token=65261"), "{text}");
    assert!(lines[2].contains("CORRUPT_FRAME"), "{text}");
}

/// After a Hello that agreed to TLS, a capture holds TLS records: listed by type and
/// length, never misread as frames.
#[test]
fn tls_records_after_a_hello_are_listed_as_encrypted() {
    let mut wire = Vec::new();
    let hello = Frame::Hello(Hello {
        min_version: 1,
        max_version: 1,
        capabilities: Capabilities::TLS | Capabilities::BACKCHANNEL,
        nonce: [7; 16],
    });
    FrameEncoder::new(EncodeOptions::default())
        .encode(&hello, &mut wire)
        .expect("encode hello");
    wire.extend_from_slice(&[22, 3, 1, 0, 4, 1, 0, 0, 0]);
    wire.extend_from_slice(&[23, 3, 3, 0, 3, 0xaa, 0xbb, 0xcc]);
    let out = hawser(&["inspect", "dsp"], &wire);
    let text = stdout(&out);
    assert!(out.status.success(), "{}{}", text, stderr(&out));
    assert!(
        text.contains("TLS handshake") && text.contains("TLS application_data"),
        "{text}"
    );
    assert!(text.contains("encrypted"), "{text}");
}

#[test]
fn dsp_json_lines_carry_offsets_and_fields() {
    let out = hawser(&["inspect", "dsp", "--json"], &dsp_capture());
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let items: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["offset"], 0);
    assert_eq!(items[0]["slot"], 2);
    assert_eq!(items[0]["body"]["len"], 1300);
    assert_eq!(items[1]["kind"], "Ping");
    assert!(items[2]["offset"].as_u64() > items[1]["offset"].as_u64());
}

#[test]
fn canonical_captures_reencode_byte_identically() {
    for (format, capture) in [("dsp", dsp_capture()), ("dmp", dmp_capture())] {
        let out = hawser(&["inspect", format, "--reencode"], &capture);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        assert_eq!(out.stdout, capture, "{format} re-encoding differs");
    }
}

#[test]
fn a_corrupted_dsp_payload_names_its_byte_offset() {
    let mut capture = dsp_capture();
    // Flip a payload byte of the first (digested) frame: the digest check must catch it.
    capture[40] ^= 0x01;
    let out = hawser(&["inspect", "dsp"], &capture);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("malformed DSP input at byte"), "{err}");
    assert!(err.contains("digest"), "{err}");
}

#[test]
fn truncated_input_is_an_error_naming_where_the_item_starts() {
    let capture = dsp_capture();
    let out = hawser(&["inspect", "dsp"], &capture[..capture.len() - 3]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("truncated DSP input"), "{err}");
    // The first two frames are still shown.
    assert_eq!(stdout(&out).lines().count(), 2);
}

#[test]
fn dmp_streams_are_dissected_from_a_file() {
    let dir = std::env::temp_dir().join(format!("hawser-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("put.dmp");
    std::fs::write(&path, dmp_capture()).expect("write capture");
    let out = hawser(&["inspect", "dmp", path.to_str().expect("utf-8 path")], b"");
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let kinds: Vec<&str> = text
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["preamble", "command", "message", "null"], "{text}");
    assert!(text.contains("exchange=\"sink\""), "{text}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = hawser(&["inspect", "ddf", "/nonexistent/capture"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot open /nonexistent/capture"));
}

/// Length-prefixes DDF text as the framing of docs/PROTOCOL.md does.
fn ddf_frame(text: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(text.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(text);
    out
}

#[test]
fn ddf_seed_example_is_shown_as_a_tree() {
    // The seed's nested example, one node per line.
    let capture = ddf_frame(b"foo%20bar 4 1\ninfocom 4 1\nzork 5 3\n. 2 1\n. 2 2\n. 2 3\n");
    let out = hawser(&["inspect", "ddf", "--json"], &capture);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let item: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(item["kind"], "message");
    assert_eq!(item["name"], "foo bar");
    assert_eq!(
        item["value"]["infocom"]["zork"],
        serde_json::json!([1, 2, 3])
    );
    let again = hawser(&["inspect", "ddf", "--reencode"], &capture);
    assert_eq!(again.stdout, capture);
}

#[test]
fn ddf_exceptions_show_their_cause_chain() {
    let exception = RemoteException::new("java.io.IOException")
        .with_message("disk full")
        .with_cause(RemoteException::new("java.lang.RuntimeException"));
    let mut capture = Vec::new();
    ddf::encode_frame(&exception.to_node(), &mut capture).expect("encode");
    ddf::encode_frame(&Node::unnamed(DdfValue::Long(-5)), &mut capture).expect("encode");
    let out = hawser(&["inspect", "ddf"], &capture);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "chain=\"java.io.IOException: disk full <- caused by <- java.lang.RuntimeException\""
        ),
        "{text}"
    );
    assert!(
        text.lines().nth(1).is_some_and(|l| l.contains("value=-5")),
        "{text}"
    );
}

#[test]
fn a_bad_ddf_escape_names_its_byte_and_line() {
    // "%G1" is not an escape: the bad byte is on line 2 of the message.
    let capture = ddf_frame(b"root 4 1\nna%G1me 2 7\n");
    let out = hawser(&["inspect", "ddf"], &capture);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("malformed DDF input at byte"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn dtp_captures_reencode_and_show_intervals() {
    let mut capture = Vec::new();
    let mut holes = IntervalSet::new();
    holes.insert(hawser_wire::dtp::Interval::new(4096, 1024).expect("interval"));
    for record in [
        Record::Datagram(Datagram::Basic {
            offset: 8192,
            data: b"offset datagram",
        }),
        Record::Control(ControlMessage::HoleReport(HoleReport {
            session_id: 3,
            stop: false,
            holes,
        })),
    ] {
        record.encode(&mut capture).expect("encode record");
    }
    let out = hawser(&["inspect", "dtp", "--json"], &capture);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let items: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(items[0]["kind"], "datagram");
    assert_eq!(items[0]["offset"], 8192);
    assert_eq!(items[1]["holes"], serde_json::json!([[4096, 1024]]));
    let again = hawser(&["inspect", "dtp", "--reencode"], &capture);
    assert_eq!(again.stdout, capture);
}
