//! Dissecting a DTP capture: records of control messages and data datagrams.

use hawser_wire::dtp::{CaptureDecoder, ControlMessage, Datagram, IntervalSet, Record};
use serde_json::Value as Json;

use super::{Decoded, Dissector, Fields, Malformed, Options, Value};

pub(super) struct DtpDissector {
    decoder: CaptureDecoder,
    full_payload: bool,
}

impl DtpDissector {
    pub(super) fn new(options: &Options) -> Self {
        Self {
            decoder: CaptureDecoder::new(),
            full_payload: options.full_payload,
        }
    }
}

fn intervals(set: &IntervalSet) -> Value {
    Value::Nested(Json::Array(
        set.as_slice()
            .iter()
            .map(|i| serde_json::json!([i.offset(), i.length()]))
            .collect(),
    ))
}

impl Dissector for DtpDissector {
    fn next_item(
        &mut self,
        buf: &[u8],
        canonical: Option<&mut Vec<u8>>,
    ) -> Result<Option<Decoded>, Malformed> {
        let item_start = self.decoder.position();
        let (record, consumed) = match self.decoder.decode(buf) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Malformed::in_stream(e.offset, item_start, e.kind)),
        };
        if let Some(out) = canonical {
            record.encode(out).map_err(Malformed::reencode)?;
        }
        let mut f = Fields::new();
        let kind = match &record {
            Record::Control(ControlMessage::TransferRequest(r)) => {
                f.push(
                    "payload_id",
                    Value::Text(String::from_utf8_lossy(r.payload_id).into_owned()),
                );
                f.push("intervals", intervals(&r.intervals));
                f.push("max_throughput", Value::U64(r.max_throughput));
                f.push("mtu", Value::U64(r.mtu.into()));
                "transfer_request"
            }
            Record::Control(ControlMessage::TransferResponse(r)) => {
                f.push("session_id", Value::U64(r.session_id.into()));
                f.push("total_size", Value::U64(r.total_size));
                f.push("bytes_expected", Value::U64(r.bytes_expected));
                f.push("form", Value::Text(format!("{:?}", r.form).to_lowercase()));
                f.push("datagram_size", Value::U64(r.datagram_size.into()));
                // The key is a session secret: a capture's dissection leaves it out.
                f.push("data_port", Value::U64(r.data_port.into()));
                "transfer_response"
            }
            Record::Control(ControlMessage::HoleReport(r)) => {
                f.push("session_id", Value::U64(r.session_id.into()));
                f.push("stop", Value::Bool(r.stop));
                f.push("holes", intervals(&r.holes));
                "hole_report"
            }
            Record::Control(ControlMessage::PushRequest(r)) => {
                f.push(
                    "payload_id",
                    Value::Text(String::from_utf8_lossy(r.payload_id).into_owned()),
                );
                f.push("total_size", Value::U64(r.total_size));
                f.push("max_throughput", Value::U64(r.max_throughput));
                f.push("mtu", Value::U64(r.mtu.into()));
                f.push("resume", Value::Bool(r.resume));
                "push_request"
            }
            Record::Control(ControlMessage::PushResponse(r)) => {
                f.push("session_id", Value::U64(r.session_id.into()));
                f.push("form", Value::Text(format!("{:?}", r.form).to_lowercase()));
                f.push("datagram_size", Value::U64(r.datagram_size.into()));
                // The key is a session secret: a capture's dissection leaves it out.
                f.push("data_port", Value::U64(r.data_port.into()));
                f.push("wanted", intervals(&r.wanted));
                "push_response"
            }
            Record::Datagram(d) => {
                if let Datagram::Extended { session_id, .. } = d {
                    f.push("session_id", Value::U64((*session_id).into()));
                }
                f.push("offset", Value::U64(d.offset()));
                f.push("data", Value::bytes(d.data(), self.full_payload));
                match d {
                    Datagram::Basic { .. } => "datagram",
                    Datagram::Extended { .. } => "datagram_extended",
                }
            }
        };
        Ok(Some(Decoded {
            consumed,
            kind,
            fields: f,
        }))
    }
}
