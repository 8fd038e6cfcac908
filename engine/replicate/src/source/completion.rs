//! Taking the target's answers: each completion matched with the request it answers,
//! and what the answer means for the job.

use super::{InFlight, Source};
use crate::auto_compress::AutoCompress;
use crate::error::{EntryFailure, FailureReason, ReplicateError};
use crate::proto::{BeginAck, CommitAck, CommitStatus, DeleteList, FinishReport, PROTOCOL_VERSION};
use crate::transport::Completion;

impl Source {
    /// Records that the entry `file_id` failed.
    pub(super) fn fail(&mut self, file_id: u32, reason: FailureReason) {
        let path = self
            .entries
            .get(file_id as usize)
            .map(|e| String::from_utf8_lossy(e.sent_path()).into_owned())
            .unwrap_or_default();
        self.failures.push(EntryFailure { path, reason });
    }

    /// Takes the answer to a request.
    pub fn handle_completion(&mut self, completion: Completion) -> Result<(), ReplicateError> {
        let what = self
            .in_flight
            .remove(&completion.token)
            .ok_or(ReplicateError::Unexpected("answer to no request"))?;
        let body = completion.result.map_err(ReplicateError::Remote)?;
        match what {
            InFlight::Begin => {
                if let (Some(auto), Some(sent)) = (&mut self.auto, self.started) {
                    // A small exchange: the path's round trip, before any block loads it.
                    auto.path_round_trip(sent.elapsed());
                }
                let ack = BeginAck::decode(&body)?;
                if ack.version != PROTOCOL_VERSION {
                    return Err(ReplicateError::Unexpected(
                        "target speaks another protocol version",
                    ));
                }
                self.begin_acked = true;
                self.dest_existed = ack.dest_existed;
                if ack.dest_is_file {
                    self.send_as_destination()?;
                }
            }
            InFlight::Manifest { first, end } => {
                self.manifests_in_flight -= 1;
                self.manifest_answer(&body, first, end)?;
            }
            InFlight::Block(sent) => self.block_answer(&body, sent)?,
            InFlight::Commit { file_id, hash } => {
                let ack = CommitAck::decode(&body)?;
                if ack.file_id != file_id {
                    return Err(ReplicateError::Unexpected(
                        "commit acknowledgement for another file",
                    ));
                }
                match ack.status {
                    CommitStatus::Committed => {
                        self.report.files += 1;
                        if self.config.options.verify {
                            self.verify_source(file_id, hash)?;
                        }
                    }
                    status => self.fail(file_id, FailureReason::Commit(status)),
                }
            }
            InFlight::Delete => {
                let list = DeleteList::decode(&body)?;
                self.report.deleted = list.total;
                self.report.deleted_paths = list
                    .paths
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                self.delete_done = true;
            }
            InFlight::Finish => {
                let report: FinishReport = FinishReport::decode(&body)?;
                self.report.target = Some(report);
                self.report.duration = self.started.map(|t| t.elapsed()).unwrap_or_default();
                self.report.buffers_allocated = self.supply.buffers_allocated();
                self.report.auto_compress = self.auto.as_ref().and_then(AutoCompress::outcome);
                self.finished = true;
            }
        }
        Ok(())
    }
}
