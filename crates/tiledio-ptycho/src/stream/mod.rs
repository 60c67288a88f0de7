//! Live frame streams over ZeroMQ: receive detector frames as they are taken, preprocess them
//! in batches, write them to Zarr and/or publish them to PtyPy.
//!
//! - [`Receiver`] (PULL, listening or connecting) yields [`Message`]s from either wire format,
//!   recognised per message: tiledio's own (below) or DECTRIS **Stream V2** (CBOR).
//! - [`run_pipeline`] runs one series through a [`crate::BatchPreprocessor`] (GPU when there
//!   is one, else CPU) into [`Sinks`]: a Zarr array and/or a [`Publisher`], and returns a
//!   [`StreamReport`] (frames, gaps, frames/s, latency percentiles). The socket is read on its
//!   own thread into a bounded queue: when the preprocessor or a sink falls behind, the queue
//!   fills, the socket is not read, TCP's window closes and the sender blocks. Nothing is
//!   dropped: frame indices must arrive in order from 0, and a missing, repeated or
//!   out-of-order frame is an error ([`GapPolicy::Record`] lists missing frames instead).
//! - [`Publisher`] serves PtyPy's `DiamondZMQLoader` (`ptypy/experiment/diamond_streaming.py`):
//!   a REP socket answers `b"Start"` with a pickled `{"dtype": "float32", "shape": (N, H, W)}`
//!   ([`pickle_meta`], protocol 2) and a PUSH socket sends `[frame, posx, posy]`, the positions
//!   as ASCII decimal.
//! - [`Sender`] (PUSH) writes a series in either format, Stream V2 optionally compressed
//!   (bitshuffle+LZ4 or LZ4), at a chosen rate: the simulator's and the benchmark's source.
//!
//! ## The tiledio wire format
//!
//! Each message is a ZeroMQ multipart message whose first part is a UTF-8 JSON object with a
//! `"type"`; unknown keys are ignored.
//!
//! | message | parts | header |
//! |---|---|---|
//! | start | 1 | `{"type":"start","frames":N,"shape":[H,W],"dtype":"uint16"}` |
//! | image | 2 | `{"type":"image","frame":i,"posx":x,"posy":y}`, then the frame: `H·W` little-endian elements, row-major |
//! | end | 1 | `{"type":"end"}` |
//!
//! `dtype` is a NumPy name (`uint8` … `uint64`, `int8` … `int64`, `float32`, `float64`);
//! `frame` counts from 0; `posx`/`posy` are numbers (or `null`/absent: NaN). The frame part
//! must be exactly `H·W·size` bytes.
//!
//! ## DECTRIS Stream V2
//!
//! One CBOR message per ZeroMQ message (dectris/documentation `stream_v2/`), optionally
//! wrapped in the self-described tag 55799: `start` gives `number_of_images`,
//! `image_size_y`/`image_size_x` and `channels`; `image` gives `image_id` and `data`, a map
//! of channel name to a tag-40 multi-dimensional array `[[H, W], typed array]`, the typed
//! array an RFC 8746 tag (64 `u8`, 69 `u16` LE, 70 `u32` LE, 85 `f32` LE, …) over a byte
//! string or over the DECTRIS compression tag 56500 `["bslz4", elem_size, bytes]` /
//! `["lz4", 0, bytes]`. The compression tag's document specifies the **HDF5 filter framing**
//! for both (8-byte big-endian size, 4-byte big-endian block size, then blocks with 4-byte
//! big-endian lengths) — exactly what [`crate::decode_bitshuffle_lz4`] and
//! [`crate::decode_lz4`] read, so the payload goes to them unchanged: the 50 sample image
//! messages of dectris/documentation `stream_v2/test_data` (bslz4 8/16/32-bit, lz4 8/16-bit,
//! 514 × 1030) decode to their exact size (checked by hand; the samples are not ours to
//! ship), and the tests decode payloads built independently in Python (NumPy bitshuffle,
//! numcodecs LZ4) by `tests/py/stream_peer.py`. One channel is read
//! ([`ReceiverOptions::channel`]; by default the first). Stream V2 carries no scan position:
//! `posx`/`posy` come from a `user_data` map with those keys when there is one, else NaN.
//! Column-major (tag 1040) and big-endian typed arrays are refused as unsupported.
//!
//! ## Why our own ZMTP, and our own CBOR
//!
//! **ZeroMQ**: [`zmtp`] is a small blocking implementation of ZMTP 3.1 (NULL mechanism;
//! PUSH, PULL, REQ, REP; one peer at a time) over `std::net::TcpStream` and `UnixStream`
//! (`ipc://`). libzmq through the `zmq` crate is out: nothing may be linked at build time that
//! a GPU machine may lack. The pure-Rust `zeromq` crate is async (tokio) and copies each
//! message through `bytes` buffers, and is known to be slow for multi-megabyte messages; our
//! frames are 8 MiB at 1,000 per second. Blocking I/O on a dedicated thread reads each frame
//! body straight into a reused buffer (large reads bypass the read buffer; no zero-fill once
//! a buffer has grown), and sends the payload from the caller's slice without copying it;
//! what ZeroMQ adds beyond that for our peers (many peers per socket, reconnection queues,
//! CURVE security) is not needed: one detector, one consumer.
//!
//! **CBOR**: `cbor` is a bounded decoder of our own (~250 lines) rather than `ciborium` or
//! `minicbor`: we need borrowed byte strings inside nested tags (tag 40 over tag 69 over tag
//! 56500) without copying an 8 MiB payload, hard bounds on depth and declared lengths before
//! any allocation, and only the handful of item kinds Stream V2 uses. Tests check it against
//! Python's `cbor2`.
//!
//! ```
//! use tiledio_ptycho::stream::{Endpoint, Message, Receiver, ReceiverOptions, Sender, SenderOptions, WireFormat};
//! let mut rx = Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), ReceiverOptions::default())?;
//! let mut tx = Sender::new(&Endpoint::Connect(rx.endpoint().to_string()), SenderOptions::new(WireFormat::Tiledio))?;
//! let t = std::thread::spawn(move || -> Result<(), tiledio_ptycho::stream::StreamError> {
//!     tx.start(1, (1, 2), tiledio_io::ElementType::U8)?;
//!     tx.image(0, 0.5, 0.25, &[7, 9])?;
//!     tx.end()
//! });
//! assert!(matches!(rx.recv()?, Message::Start { frames: 1, .. }));
//! let Message::Image { posy, data, .. } = rx.recv()? else { panic!() };
//! assert_eq!((posy, data.bytes()), (0.25, &[7u8, 9][..]));
//! assert_eq!(rx.recv()?, Message::End);
//! t.join().unwrap()?;
//! # Ok::<(), tiledio_ptycho::stream::StreamError>(())
//! ```

mod cbor;
mod error;
mod merge;
mod message;
mod pipeline;
mod publisher;
mod receiver;
mod sender;
pub mod zmtp;

pub use error::{StreamError, StreamErrorKind, StreamResult};
pub use message::{Compression, Frame, Message, WireFormat};
pub use pipeline::{GapPolicy, PipelineOptions, Sinks, StreamReport, run_pipeline, run_pipeline_parallel};
pub use publisher::{Publisher, pickle_meta};
pub use receiver::{Receiver, ReceiverOptions};
pub use sender::{Sender, SenderOptions};

/// Where a socket is: listening (peers connect to it) or connecting to a peer that listens
/// (as DECTRIS detectors do: the detector binds its PUSH socket, clients connect).
///
/// Addresses are `tcp://HOST:PORT` (`tcp://*:PORT` listens on every interface; `PORT` `*`
/// picks a free port) or `ipc:///path/to/socket`.
///
/// ```
/// use tiledio_ptycho::stream::Endpoint;
/// let detector = Endpoint::Connect("tcp://dcu.example:31001".into());
/// let ours = Endpoint::Listen("tcp://*:5555".into());
/// assert_ne!(detector, ours);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Bind and accept connections.
    Listen(String),
    /// Connect (retrying until the timeout while nothing listens yet).
    Connect(String),
}
