//! The PUSH side: [`Sender`] writes a series in either wire format at a chosen rate.

use super::Endpoint;
use super::error::{StreamError, StreamErrorKind as K, StreamResult};
use super::message::{self, Compression, ImageMeta, WireFormat};
use super::zmtp::{Socket, SocketOptions, SocketType};
use std::time::{Duration, Instant};
use tiledio_io::ElementType;

/// Options of a [`Sender`].
#[derive(Clone, Debug)]
pub struct SenderOptions {
    /// Timeouts of the socket (how long to wait for a peer, or for a slow peer to take a
    /// message).
    pub socket: SocketOptions,
    /// The wire format written.
    pub format: WireFormat,
    /// Compression of Stream V2 images (ignored for tiledio messages).
    pub compression: Compression,
    /// Frames per second (`None`: as fast as the peer takes them).
    pub rate: Option<f64>,
}

impl SenderOptions {
    /// `format`, uncompressed, unlimited rate, default socket options.
    pub fn new(format: WireFormat) -> SenderOptions {
        SenderOptions {
            socket: SocketOptions::default(),
            format,
            compression: Compression::None,
            rate: None,
        }
    }
}

/// A ZeroMQ PUSH socket writing one series after another: [`Sender::start`], one
/// [`Sender::image`] per frame, [`Sender::end`]. A slow peer slows it down (each send waits
/// until the peer's socket takes the message; nothing is queued beyond the socket buffers).
///
/// ```
/// use tiledio_ptycho::stream::{Compression, Endpoint, Message, Receiver, ReceiverOptions, Sender, SenderOptions, WireFormat};
/// use tiledio_io::ElementType;
/// let mut rx = Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), ReceiverOptions::default())?;
/// let mut o = SenderOptions::new(WireFormat::StreamV2);
/// o.compression = Compression::Bslz4;
/// o.rate = Some(1000.0); // frames per second
/// let mut tx = Sender::new(&Endpoint::Connect(rx.endpoint().to_string()), o)?;
/// let frame: Vec<u8> = (0..64 * 64u16).flat_map(|v| (v % 7).to_le_bytes()).collect();
/// let f2 = frame.clone();
/// let t = std::thread::spawn(move || -> Result<(), tiledio_ptycho::stream::StreamError> {
///     tx.start(2, (64, 64), ElementType::U16)?;
///     tx.image(0, 0.0, 0.0, &f2)?;
///     tx.image(1, 0.0, 1.0, &f2)?;
///     tx.end()
/// });
/// rx.expect_start()?;
/// for i in 0..2 {
///     let Message::Image { frame: f, data, .. } = rx.recv()? else { panic!() };
///     assert_eq!((f, data.bytes()), (i, &frame[..]));
/// }
/// assert_eq!(rx.recv()?, Message::End);
/// t.join().unwrap()?;
/// # Ok::<(), tiledio_ptycho::stream::StreamError>(())
/// ```
#[derive(Debug)]
pub struct Sender {
    sock: Socket,
    opts: SenderOptions,
    series: Option<((usize, usize), ElementType)>,
    t0: Instant,
    sent: u64,
}

impl Sender {
    /// Binds or prepares to connect (a listening sender waits for its peer at the first
    /// message).
    ///
    /// # Errors
    /// A bad endpoint or a failed bind.
    pub fn new(endpoint: &Endpoint, opts: SenderOptions) -> StreamResult<Sender> {
        let sock = Socket::open(SocketType::Push, endpoint, opts.socket.clone())?;
        Ok(Sender {
            sock,
            opts,
            series: None,
            t0: Instant::now(),
            sent: 0,
        })
    }

    /// The endpoint (for `tcp://HOST:*`, the port bound).
    pub fn endpoint(&self) -> &str {
        self.sock.endpoint()
    }

    /// Starts a series of `frames` frames of `shape` and `dtype`.
    ///
    /// # Errors
    /// The socket's errors.
    pub fn start(&mut self, frames: u64, shape: (usize, usize), dtype: ElementType) -> StreamResult<()> {
        let m = message::encode_start(self.opts.format, frames, shape, dtype);
        self.sock.send_multipart(&[&m]).map_err(|e| e.context("start"))?;
        self.series = Some((shape, dtype));
        self.t0 = Instant::now();
        self.sent = 0;
        Ok(())
    }

    /// Sends frame `frame` (`H × W` little-endian elements) at scan position `(posx, posy)`,
    /// first waiting for its time slot when a rate is set.
    ///
    /// # Errors
    /// `Usage` before [`Sender::start`] or for data of the wrong size; the socket's errors.
    pub fn image(&mut self, frame: u64, posx: f64, posy: f64, data: &[u8]) -> StreamResult<()> {
        let Some((shape, dtype)) = self.series else {
            return Err(StreamError::new(self.sock.endpoint(), K::Usage, "image before start"));
        };
        if data.len() != shape.0 * shape.1 * dtype.size() {
            return Err(StreamError::new(
                self.sock.endpoint(),
                K::Usage,
                format!("image {frame}: {} bytes for a {shape:?} {dtype} frame", data.len()),
            ));
        }
        if let Some(rate) = self.opts.rate.filter(|r| *r > 0.0) {
            let due = self.t0 + Duration::from_secs_f64(self.sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let e = message::encode_image(
            self.opts.format,
            self.opts.compression,
            &ImageMeta {
                frame,
                posx,
                posy,
                shape,
                dtype,
            },
            data,
        );
        let payload: &[u8] = if self.opts.format == WireFormat::Tiledio || self.opts.compression == Compression::None {
            data
        } else {
            &e.packed
        };
        let r = if e.separate {
            self.sock.send_gather(&[&[&e.head], &[payload]])
        } else {
            self.sock.send_gather(&[&[&e.head, payload]])
        };
        r.map_err(|e| e.context(format!("image {frame}")))?;
        self.sent += 1;
        Ok(())
    }

    /// Ends the series.
    ///
    /// # Errors
    /// The socket's errors.
    pub fn end(&mut self) -> StreamResult<()> {
        let m = message::encode_end(self.opts.format);
        self.sock.send_multipart(&[&m]).map_err(|e| e.context("end"))?;
        self.series = None;
        Ok(())
    }

    /// Sends raw multipart messages (for tests of malformed input and other peers).
    ///
    /// # Errors
    /// The socket's errors.
    pub fn send_raw(&mut self, parts: &[&[u8]]) -> StreamResult<()> {
        self.sock.send_multipart(parts)
    }
}
