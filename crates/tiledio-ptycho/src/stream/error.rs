//! The error of live streams: one line naming the endpoint and, where it applies, the message
//! or frame.

/// What kind of failure a [`StreamError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamErrorKind {
    /// A socket call failed (bind, connect, read, write).
    Io,
    /// Nothing arrived (or could be sent) within the timeout.
    Timeout,
    /// The peer closed the connection.
    Disconnected,
    /// The peer broke the ZMTP protocol (greeting, command, frame flags, socket types).
    Protocol,
    /// A message that is not a valid tiledio or Stream V2 message (JSON, CBOR, sizes).
    Malformed,
    /// A declared size over a limit (a frame, a message, a shape).
    Limit,
    /// Frames missing, repeated or out of order.
    Gap,
    /// A valid message using something not implemented (a data type, a compression).
    Unsupported,
    /// A request that does not fit (an endpoint string, options, the series state).
    Usage,
}

/// A live-stream failure, displayed as `endpoint: message` (the message names the message or
/// frame index where it applies).
///
/// ```
/// use tiledio_ptycho::stream::{StreamError, StreamErrorKind};
/// let e = StreamError::new("tcp://127.0.0.1:5555", StreamErrorKind::Gap, "frame 7 after frame 4");
/// assert_eq!(e.to_string(), "tcp://127.0.0.1:5555: frame 7 after frame 4");
/// assert_eq!(e.kind, StreamErrorKind::Gap);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{endpoint}: {message}")]
pub struct StreamError {
    /// The endpoint (`tcp://host:port`, `ipc:///path`).
    pub endpoint: String,
    /// What kind of failure.
    pub kind: StreamErrorKind,
    /// What went wrong, one line.
    pub message: String,
}

impl StreamError {
    /// An error of `kind` at `endpoint`.
    pub fn new(endpoint: impl Into<String>, kind: StreamErrorKind, message: impl Into<String>) -> StreamError {
        StreamError {
            endpoint: endpoint.into(),
            kind,
            message: message.into(),
        }
    }

    /// The same error with `prefix: ` before its message (a message or frame index).
    pub(crate) fn context(mut self, prefix: impl std::fmt::Display) -> StreamError {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

/// The result type of the stream module.
pub type StreamResult<T> = std::result::Result<T, StreamError>;
