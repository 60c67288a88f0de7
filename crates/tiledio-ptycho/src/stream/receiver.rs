//! The PULL side: [`Receiver`] yields [`Message`]s of either wire format.

use super::Endpoint;
use super::error::{StreamError, StreamErrorKind as K, StreamResult};
use super::message::{DecodeState, Frame, Message};
use super::zmtp::{Socket, SocketOptions, SocketType};

/// Options of a [`Receiver`].
#[derive(Clone, Debug, Default)]
pub struct ReceiverOptions {
    /// Timeouts and size limits of the socket (a frame larger than `max_frame` is refused).
    pub socket: SocketOptions,
    /// The Stream V2 channel to read (`None`: the first of the start message's `channels`,
    /// else the first in each image's `data` map).
    pub channel: Option<String>,
}

/// A ZeroMQ PULL socket that decodes each message as tiledio JSON or Stream V2 CBOR
/// (recognised per message: a JSON header starts with `{`).
///
/// ```
/// use tiledio_ptycho::stream::{Endpoint, Message, Receiver, ReceiverOptions, Sender, SenderOptions, WireFormat};
/// use tiledio_io::ElementType;
/// let mut rx = Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), ReceiverOptions::default())?;
/// let at = Endpoint::Connect(rx.endpoint().to_string());
/// let t = std::thread::spawn(move || -> Result<(), tiledio_ptycho::stream::StreamError> {
///     let mut tx = Sender::new(&at, SenderOptions::new(WireFormat::StreamV2))?;
///     tx.start(1, (2, 3), ElementType::U16)?;
///     tx.image(0, 1.5, -2.0, &[1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0])?;
///     tx.end()
/// });
/// assert!(matches!(rx.recv()?, Message::Start { frames: 1, shape: (2, 3), .. }));
/// let Message::Image { frame, posx, dtype, data, .. } = rx.recv()? else { panic!() };
/// assert_eq!((frame, posx, dtype, data[2]), (0, 1.5, ElementType::U16, 2));
/// assert_eq!(rx.recv()?, Message::End);
/// t.join().unwrap()?;
/// # Ok::<(), tiledio_ptycho::stream::StreamError>(())
/// ```
#[derive(Debug)]
pub struct Receiver {
    sock: Socket,
    state: DecodeState,
    received: u64,
    parts: Vec<Vec<u8>>,
}

impl Receiver {
    /// Binds or prepares to connect (connecting happens on the first [`Receiver::recv`]).
    ///
    /// # Errors
    /// A bad endpoint or a failed bind.
    pub fn new(endpoint: &Endpoint, opts: ReceiverOptions) -> StreamResult<Receiver> {
        let max_frame = opts.socket.max_frame;
        let sock = Socket::open(SocketType::Pull, endpoint, opts.socket)?;
        Ok(Receiver {
            sock,
            state: DecodeState {
                channel: opts.channel,
                max_frame,
                ..DecodeState::default()
            },
            received: 0,
            parts: Vec::new(),
        })
    }

    /// The endpoint (for `tcp://HOST:*`, the port bound).
    pub fn endpoint(&self) -> &str {
        self.sock.endpoint()
    }

    /// Messages received so far (the index the next error names).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Receives and decodes the next message.
    ///
    /// # Errors
    /// The socket's errors ([`super::zmtp::Socket::recv_multipart`]); `Malformed`, `Limit` or
    /// `Unsupported` for a message that does not decode, naming its index (the socket stays
    /// usable: the next call reads the next message).
    pub fn recv(&mut self) -> StreamResult<Message> {
        let mut parts = std::mem::take(&mut self.parts);
        self.sock.recv_multipart(&mut parts)?;
        let index = self.received;
        self.received += 1;
        let sock = &mut self.sock;
        let r = self.state.decode(&mut parts, &mut |len| sock.take_buffer(len));
        for p in parts.drain(..) {
            sock.give_back(p);
        }
        self.parts = parts;
        r.map_err(|(kind, m)| StreamError::new(self.sock.endpoint(), kind, format!("message {index}: {m}")))
    }

    /// Gives a frame's buffer back for the next messages (saves an allocation per frame).
    pub fn recycle(&mut self, frame: Frame) {
        self.sock.give_back(frame.into_buffer());
    }

    /// Receives the next message, which must be `Start`.
    ///
    /// # Errors
    /// As [`Receiver::recv`]; `Usage` for another message.
    pub fn expect_start(&mut self) -> StreamResult<Message> {
        match self.recv()? {
            m @ Message::Start { .. } => Ok(m),
            other => Err(StreamError::new(
                self.sock.endpoint(),
                K::Usage,
                format!(
                    "message {}: expected start, got {}",
                    self.received - 1,
                    kind_name(&other)
                ),
            )),
        }
    }
}

pub(crate) fn kind_name(m: &Message) -> String {
    match m {
        Message::Start { .. } => "start".into(),
        Message::Image { frame, .. } => format!("image {frame}"),
        Message::End => "end".into(),
    }
}
