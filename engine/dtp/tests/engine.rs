//! Two engines over loopback: a payload sent from one to the other arrives whole, with
//! the digest of its bytes, and a transfer stopped halfway resumes from its journal with
//! only what was missing.

use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hawser_dtp::engine::{DtpEngine, EngineConfig, FirstPass, ReceivePlan, SendPlan};
use hawser_dtp::rate::ControllerKind;
use hawser_dtp::{BlockDigests, TransferState, digest_file};
use hawser_wire::dtp::{DatagramForm, IntervalSet};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn engine() -> DtpEngine {
    DtpEngine::start(EngineConfig {
        bind: SocketAddr::new(LOCAL, 0),
        ..EngineConfig::default()
    })
    .expect("engine starts")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hawser-dtp-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn payload(path: &PathBuf, size: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

fn send_plan(file: File, size: u64, peer: SocketAddr, wanted: IntervalSet, rate: u64) -> SendPlan {
    SendPlan {
        session_id: 77,
        key: [5; 32],
        peer_ip: LOCAL,
        peer: Some(peer),
        file,
        total_size: size,
        wanted,
        form: DatagramForm::Basic,
        datagram_size: 1472,
        max_rate: rate,
        controller: ControllerKind::Probe,
        hash_sent_blocks: true,
    }
}

#[test]
fn a_payload_crosses_loopback_whole_with_its_digest() {
    let (from, to) = (engine(), engine());
    let source = temp("whole-source");
    let target = temp("whole-target");
    let size = 24 * 1024 * 1024 + 333;
    let data = payload(&source, size);
    let out = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&target)
        .unwrap();
    let receiving = to
        .receive(ReceivePlan {
            session_id: 77,
            key: [5; 32],
            peer_ip: LOCAL,
            peer: None,
            file: out,
            direct: None,
            total_size: size as u64,
            form: DatagramForm::Basic,
            received: IntervalSet::new(),
            digests: BlockDigests::new(size as u64),
            journal: None,
        })
        .unwrap();
    let sending = from
        .send(send_plan(
            File::open(&source).unwrap(),
            size as u64,
            to.local_addr(),
            IntervalSet::new(),
            0,
        ))
        .unwrap();
    let got = receiving
        .wait(Duration::from_secs(60))
        .expect("ends")
        .expect("completes");
    // The sender hashed the blocks its first pass sent whole; the file gives the rest.
    let mut hashed = match sending.sent_digests(Duration::from_secs(10)) {
        FirstPass::Hashed(digests) => digests,
        other => panic!("no digests from the first pass: {other:?}"),
    };
    assert!(
        hashed.known().count() as u64 * 2 >= hashed.len(),
        "{} of {} blocks hashed while sent",
        hashed.known().count(),
        hashed.len()
    );
    let sent = sending
        .wait(Duration::from_secs(10))
        .expect("sender ends")
        .expect("sender done");
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let expected = digest_file(&File::open(&source).unwrap(), size as u64).unwrap();
    assert_eq!(got.digest, Some(expected));
    hashed
        .complete_from(&File::open(&source).unwrap(), &mut Vec::new())
        .unwrap();
    assert_eq!(hashed.payload_digest(), Some(expected));
    assert_eq!(got.bytes, size as u64);
    assert!(sent.bytes >= size as u64);
}

#[test]
fn a_stopped_transfer_resumes_from_its_journal_with_only_the_missing_bytes() {
    let (from, to) = (engine(), engine());
    let source = temp("resume-source");
    let target = temp("resume-target");
    let size = 16 * 1024 * 1024;
    let data = payload(&source, size);
    let journal: Arc<Mutex<Vec<u8>>> = Arc::default();
    let open_target = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&target)
            .unwrap()
    };
    let written = Arc::clone(&journal);
    let receiving = to
        .receive(ReceivePlan {
            session_id: 77,
            key: [5; 32],
            peer_ip: LOCAL,
            peer: None,
            file: open_target(),
            direct: None,
            total_size: size as u64,
            form: DatagramForm::Basic,
            received: IntervalSet::new(),
            digests: BlockDigests::new(size as u64),
            journal: Some((
                Box::new(move |bytes: &[u8]| {
                    *written.lock().unwrap() = bytes.to_vec();
                    Ok(())
                }),
                Duration::from_millis(50),
            )),
        })
        .unwrap();
    // 40 MB/s: the transfer takes 0.4 s; stop it after 0.15 s.
    let sending = from
        .send(send_plan(
            File::open(&source).unwrap(),
            size as u64,
            to.local_addr(),
            IntervalSet::new(),
            40_000_000,
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    receiving.stop();
    sending.stop();
    assert!(receiving.wait(Duration::from_secs(5)).unwrap().is_err());
    let _ = sending.wait(Duration::from_secs(5));
    let state = TransferState::decode(&journal.lock().unwrap()).expect("journal loads");
    let had = state.received.covered();
    assert!(had > 0 && had < size as u64, "journaled {had} of {size}");
    let holes = state
        .received
        .missing_within(&IntervalSet::whole(size as u64));

    let (from, to) = (engine(), engine());
    let receiving = to
        .receive(ReceivePlan {
            session_id: 78,
            key: [6; 32],
            peer_ip: LOCAL,
            peer: None,
            file: open_target(),
            direct: None,
            total_size: size as u64,
            form: DatagramForm::Basic,
            received: state.received.clone(),
            digests: state.digests.clone(),
            journal: None,
        })
        .unwrap();
    let mut plan = send_plan(
        File::open(&source).unwrap(),
        size as u64,
        to.local_addr(),
        holes.clone(),
        0,
    );
    plan.session_id = 78;
    plan.key = [6; 32];
    let sending = from.send(plan).unwrap();
    let got = receiving
        .wait(Duration::from_secs(60))
        .expect("ends")
        .expect("completes");
    let _ = sending.wait(Duration::from_secs(5));
    assert_eq!(got.bytes, holes.covered(), "only the holes came again");
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let expected = digest_file(&File::open(&source).unwrap(), size as u64).unwrap();
    assert_eq!(got.digest, Some(expected));
}
