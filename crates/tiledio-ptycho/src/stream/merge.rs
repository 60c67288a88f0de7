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
            self.fill()?;
            // a start or an end at the head of a queue is taken before any image
            for i in 0..self.inboxes.len() {
                match self.inboxes[i].head.take() {
                    Some((
                        Message::Start {
                            frames,
                            shape,
                            dtype,
                            format,
                        },
                        t,
                    )) => match self.series {
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
                        Some(s) if s == (frames, shape) => {}
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
                    },
                    Some((Message::End, _)) => {
                        self.inboxes[i].ended = true;
                        self.end_seen = true;
                    }
                    other => self.inboxes[i].head = other,
                }
            }
            let open = self.inboxes.iter().filter(|b| !b.ended).count();
            let heads = self.inboxes.iter().filter(|b| b.head.is_some()).count();
            if open == 0 && heads == 0 {
                return if self.end_seen {
                    Ok((Message::End, Instant::now(), 0))
                } else {
                    Err(StreamError::new(
                        &self.endpoint,
                        K::Disconnected,
                        "the receiving threads stopped",
                    ))
                };
            }
            // every open connection has a head (fill waited for them), or has just ended
            let pick = self
                .inboxes
                .iter()
                .enumerate()
                .filter_map(|(i, b)| match &b.head {
                    Some((Message::Image { frame, .. }, _)) => Some((*frame, i)),
                    _ => None,
                })
                .min();
            if let Some((frame, i)) = pick {
                if self.inboxes.iter().any(|b| !b.ended && b.head.is_none()) {
                    continue;
                }
                let Some((m, t)) = self.inboxes[i].head.take() else {
                    continue;
                };
                self.next = self.next.max(frame + 1);
                return Ok((m, t, i));
            }
        }
    }

    /// Waits until every open connection has a message at its head (after an end, each waits
    /// at most `drain`; a connection silent that long counts as ended).
    fn fill(&mut self) -> Result<(), StreamError> {
        let end_seen = self.end_seen;
        let drain = self.drain;
        for b in self.inboxes.iter_mut().filter(|b| !b.ended && b.head.is_none()) {
            let r = if end_seen {
                b.rx.recv_timeout(drain).ok()
            } else {
                b.rx.recv().ok()
            };
            match r {
                Some(Ok(m)) => b.head = Some(m),
                // a connection idle after the series' end is done, not broken
                Some(Err(e)) if end_seen && e.kind == K::Timeout => b.ended = true,
                Some(Err(e)) => return Err(e),
                None => b.ended = true,
            }
        }
        Ok(())
    }
}

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
