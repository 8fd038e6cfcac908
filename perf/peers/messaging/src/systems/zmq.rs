//! ZeroMQ PUSH/PULL (libzmq, no broker): the consumer's PULL socket binds the URL
//! (`tcp://127.0.0.1:PORT`), each publisher's PUSH socket connects to it. Default high-water
//! marks (1000 messages each side): a full pipe blocks the publisher, so unpaced
//! publishers run at the consumer's pace and nothing is dropped.

use anyhow::{Context as _, Result};

use super::{Connected, Consumer, Publisher};
use crate::measure::{Feed, Recorder};

/// How long a blocked send or receive waits before the window's end is checked again.
const POLL_MS: i32 = 50;

struct ZmqPublisher {
    socket: zmq::Socket,
}

struct ZmqConsumer {
    socket: zmq::Socket,
    size: usize,
}

/// Binds the consumer and connects `publishers` PUSH sockets.
pub fn connect(url: &str, publishers: usize, size: usize) -> Result<Connected> {
    let context = zmq::Context::new();
    let pull = context.socket(zmq::PULL)?;
    pull.set_rcvtimeo(POLL_MS)?;
    pull.set_linger(0)?;
    pull.bind(url)
        .with_context(|| format!("binding the PULL socket to {url}"))?;
    let mut pushes: Vec<Box<dyn Publisher>> = Vec::with_capacity(publishers);
    for _ in 0..publishers {
        let push = context.socket(zmq::PUSH)?;
        push.set_sndtimeo(POLL_MS)?;
        push.set_linger(0)?;
        push.connect(url)
            .with_context(|| format!("connecting a PUSH socket to {url}"))?;
        pushes.push(Box::new(ZmqPublisher { socket: push }));
    }
    Ok(Connected {
        consumer: Box::new(ZmqConsumer { socket: pull, size }),
        publishers: pushes,
    })
}

impl Publisher for ZmqPublisher {
    fn run(&mut self, feed: &mut Feed, size: usize) -> Result<()> {
        let mut body = vec![0u8; size];
        while feed.next(&mut body) {
            loop {
                match self.socket.send(&body[..], 0) {
                    Ok(()) => break,
                    Err(zmq::Error::EAGAIN) if feed.over() => return Ok(()),
                    Err(zmq::Error::EAGAIN) => {}
                    Err(error) => return Err(error).context("zmq send"),
                }
            }
        }
        Ok(())
    }
}

impl Consumer for ZmqConsumer {
    fn run(&mut self, recorder: &mut Recorder) -> Result<()> {
        let mut buffer = vec![0u8; self.size.max(64)];
        loop {
            match self.socket.recv_into(&mut buffer, 0) {
                Ok(length) => {
                    if !recorder.on_message(&buffer[..length.min(buffer.len())]) {
                        return Ok(());
                    }
                }
                Err(zmq::Error::EAGAIN) if recorder.over() => return Ok(()),
                Err(zmq::Error::EAGAIN) => {}
                Err(error) => return Err(error).context("zmq recv"),
            }
        }
    }
}
