//! One series received on several connections at once, merged back into frame order.
//!
//! A PUSH socket with several PULL peers hands its messages round-robin to them (a DECTRIS
//! detector's stream does this when several receivers connect); several senders can also each
//! send a share of a series on a connection of their own. Either way one loopback TCP
//! connection moves only about 6 GB/s on the machines we measured, less than a kHz 2048²
//! detector makes, and each connection's thread also decodes (bitshuffle-LZ4) its own frames.
//!
//! Each connection is read on its own thread into a bounded queue of its own. Messages on one
//! connection keep their order, so the next frame of the series is the smallest of the
//! connections' next frames once every connection still open has one: a k-way merge. A slow
//! consumer stops every queue, so the senders are slowed, never dropped.
//!
//! The series is the first start message; a start on another connection must announce the
//! same frames and shape. The series is over when an end message has come and either every
//! frame has, or every connection has ended, or the others stayed silent for
//! `drain` (then the frames still missing are gaps, as the pipeline's [`super::GapPolicy`]
//! says).

use super::error::{StreamError, StreamErrorKind as K};
use super::message::{Frame, Message};
use super::receiver::Receiver;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A message from one connection and when it arrived.
type Item = std::result::Result<(Message, Instant), StreamError>;

/// One connection: its queue, its next message, whether it has ended.
struct Inbox {
    rx: mpsc::Receiver<Item>,
    recycle: mpsc::Sender<Frame>,
    head: Option<(Message, Instant)>,
    ended: bool,
}

/// The receiving threads and the merge of their queues.
pub(crate) struct Merge {
    endpoint: String,
    inboxes: Vec<Inbox>,
    /// Frames and shape of the series, once its start has come.
    series: Option<(u64, (usize, usize))>,
    end_seen: bool,
    /// When the first end message came.
    end_at: Option<Instant>,
    /// One past the largest frame handed out.
    next: u64,
    drain: Duration,
}

impl Merge {
    /// Starts a thread per receiver, each with a queue of `queue` messages (at least 1).
    pub(crate) fn start(receivers: Vec<Receiver>, queue: usize, drain: Duration) -> Result<Merge, StreamError> {
        let endpoint = receivers
            .iter()
            .map(|r| r.endpoint().to_string())
            .collect::<Vec<_>>()
            .join(",");
        if receivers.is_empty() {
            return Err(StreamError::new(endpoint, K::Usage, "no connection to receive from"));
        }
        let mut inboxes = Vec::with_capacity(receivers.len());
        for (i, r) in receivers.into_iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel::<Item>(queue.max(1));
            let (recycle_tx, recycle_rx) = mpsc::channel::<Frame>();
            let at = r.endpoint().to_string();
            std::thread::Builder::new()
                .name(format!("tiledio-stream-recv-{i}"))
                .spawn(move || receive_loop(r, &tx, &recycle_rx))
                .map_err(|e| StreamError::new(at, K::Io, format!("thread: {e}")))?;
            inboxes.push(Inbox {
                rx,
                recycle: recycle_tx,
                head: None,
                ended: false,
            });
        }
        Ok(Merge {
            endpoint,
            inboxes,
            series: None,
            end_seen: false,
            end_at: None,
            next: 0,
            drain,
        })
    }

    /// The endpoints, joined by commas (for messages).
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Gives a frame's buffer back to the connection it came from.
    pub(crate) fn recycle(&self, from: usize, frame: Frame) {
        if let Some(i) = self.inboxes.get(from) {
            let _ = i.recycle.send(frame);
        }
    }

    /// The next message of the series in frame order, and the connection it came from.
    pub(crate) fn next(&mut self) -> Merged {
        loop {
            if self.end_seen && self.series.is_some_and(|(n, _)| self.next >= n) {
                return Ok((Message::End, Instant::now(), 0));
            }
            let missing = self.poll()?;
            // a start at the head of a queue is taken before any image; a repeated one leaves
            // its queue without a head, so the queues are looked at again
            let mut repeated = false;
            for i in 0..self.inboxes.len() {
                if let Some((
                    Message::Start {
                        frames,
                        shape,
                        dtype,
                        format,
                    },
                    t,
                )) = &self.inboxes[i].head
                {
                    let (frames, shape, dtype, format, t) = (*frames, *shape, *dtype, *format, *t);
                    self.inboxes[i].head = None;
                    match self.series {
                        None => {
                            self.series = Some((frames, shape));
                            return Ok((
                                Message::Start {
                                    frames,
                                    shape,
                                    dtype,
                                    format,
                                },
                                t,
                                i,
                            ));
                        }
                        Some(s) if s == (frames, shape) => repeated = true,
                        Some((n, sh)) => {
                            return Err(StreamError::new(
                                &self.endpoint,
                                K::Malformed,
                                format!(
                                    "connection {i}: a start of {frames} frames of {shape:?} in a series of {n} \
                                     frames of {sh:?}"
                                ),
                            ));
                        }
                    }
                }
            }
            if repeated {
                continue;
            }
            let heads: Vec<(u64, usize)> = self
                .inboxes
                .iter()
                .enumerate()
                .filter_map(|(i, b)| match &b.head {
                    Some((Message::Image { frame, .. }, _)) => Some((*frame, i)),
                    _ => None,
                })
                .collect();
            // the next frame of the series cannot come smaller from anywhere else; any other
            // frame is taken only once every open connection has shown its next one
            let pick = heads
                .iter()
                .find(|(f, _)| *f == self.next)
                .or_else(|| if missing.is_none() { heads.iter().min() } else { None })
                .copied();
            if let Some((frame, i)) = pick {
                if let Some((m, t)) = self.inboxes[i].head.take() {
                    self.next = self.next.max(frame + 1);
                    return Ok((m, t, i));
                }
                continue;
            }
            let Some(i) = missing else {
                if self.inboxes.iter().any(|b| b.head.is_some()) {
                    continue;
                }
                // every connection has ended
                return if self.end_seen {
                    Ok((Message::End, Instant::now(), 0))
                } else {
                    Err(StreamError::new(
                        &self.endpoint,
                        K::Disconnected,
                        "the receiving threads stopped",
                    ))
                };
            };
            if let Some(t) = self.end_at
                && t.elapsed() >= self.drain
            {
                // silent since the series ended elsewhere: done
                for b in self.inboxes.iter_mut().filter(|b| b.head.is_none()) {
                    b.ended = true;
                }
                continue;
            }
            // a short wait on one silent queue, then every queue again
            if let Ok(m) = self.inboxes[i].rx.recv_timeout(POLL) {
                self.take(i, m)?;
            }
        }
    }

    /// Takes what is waiting in every queue without a head; the first open connection still
    /// without one, if any. A connection that has nothing more to say (a PUSH socket's
    /// round-robin sent the series' last messages elsewhere) must not hide an end waiting on
    /// another, so no queue is waited on here.
    fn poll(&mut self) -> Result<Option<usize>, StreamError> {
        let mut missing = None;
        for i in 0..self.inboxes.len() {
            let b = &self.inboxes[i];
            if b.ended || b.head.is_some() {
                continue;
            }
            match b.rx.try_recv() {
                Ok(m) => self.take(i, m)?,
                Err(mpsc::TryRecvError::Disconnected) => self.inboxes[i].ended = true,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let b = &self.inboxes[i];
            if !b.ended && b.head.is_none() {
                missing.get_or_insert(i);
            }
        }
        Ok(missing)
    }

    /// Puts a message from connection `i` at its head; an end ends the connection (its last
    /// message) and starts the drain; a timeout after an end ends it quietly.
    fn take(&mut self, i: usize, m: Item) -> Result<(), StreamError> {
        match m {
            Ok((Message::End, _)) => {
                self.inboxes[i].ended = true;
                self.end_seen = true;
                self.end_at.get_or_insert_with(Instant::now);
            }
            Ok(m) => self.inboxes[i].head = Some(m),
            Err(e) if e.kind == K::Timeout && self.end_seen => self.inboxes[i].ended = true,
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// How long [`Merge::next`] waits on one silent queue before polling them all again.
const POLL: Duration = Duration::from_micros(200);

/// A message, when it arrived, and the index of the connection it came from.
pub(crate) type Merged = std::result::Result<(Message, Instant, usize), StreamError>;

fn receive_loop(mut r: Receiver, tx: &mpsc::SyncSender<Item>, recycled: &mpsc::Receiver<Frame>) {
    loop {
        while let Ok(f) = recycled.try_recv() {
            r.recycle(f);
        }
        let m = r.recv().map(|m| (m, Instant::now()));
        let stop = !matches!(m, Ok((Message::Start { .. } | Message::Image { .. }, _)));
        if tx.send(m).is_err() || stop {
            return;
        }
    }
}
