//! A small blocking ZeroMQ peer: ZMTP 3.1 with the NULL mechanism over TCP and Unix sockets,
//! PUSH, PULL, REQ and REP, one connected peer at a time (see the module docs of
//! [`crate::stream`] for why it is ours and not a crate).
//!
//! Wire format (rfc.zeromq.org/spec/23, /spec/37): a 64-byte greeting each way (signature
//! `FF 00.. 01 7F`, version 3.1, mechanism `NULL`), then a `READY` command carrying the
//! `Socket-Type` property, then frames: a flags byte (`MORE` 1, `LONG` 2, `COMMAND` 4), a size
//! (1 byte, or 8 bytes big-endian with `LONG`) and the body. REQ puts an empty delimiter frame
//! before each request; REP returns the envelope it received in front of its reply. `PING`
//! commands are answered with `PONG` while reading.
//!
//! Every declared size is checked against [`SocketOptions::max_frame`] and
//! [`SocketOptions::max_message`] before any allocation; frame bodies are read straight into
//! reused buffers (large reads bypass the socket's 256 KiB read buffer).

use super::Endpoint;
use super::error::{StreamError, StreamErrorKind as K, StreamResult};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The ZeroMQ socket types implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketType {
    /// Sends messages to one peer (`PULL`).
    Push,
    /// Receives messages from one peer (`PUSH`).
    Pull,
    /// Sends requests and receives replies (`REP`, `ROUTER`).
    Req,
    /// Receives requests and sends replies (`REQ`, `DEALER`).
    Rep,
}

impl SocketType {
    /// The ZMTP name (`"PUSH"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SocketType::Push => "PUSH",
            SocketType::Pull => "PULL",
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
        }
    }

    fn accepts(self, peer: &[u8]) -> bool {
        let ok: &[&[u8]] = match self {
            SocketType::Push => &[b"PULL"],
            SocketType::Pull => &[b"PUSH"],
            SocketType::Req => &[b"REP", b"ROUTER"],
            SocketType::Rep => &[b"REQ", b"DEALER"],
        };
        ok.contains(&peer)
    }
}

/// Limits and timeouts of a [`Socket`].
#[derive(Clone, Debug)]
pub struct SocketOptions {
    /// How long one wait may last: for a peer to connect or accept, for a message to start
    /// arriving or be taken, for the rest of a message once it started. `None`: forever.
    pub timeout: Option<Duration>,
    /// The largest frame accepted (a larger declared size is an error, not an allocation).
    pub max_frame: u64,
    /// The largest message (all its frames) accepted.
    pub max_message: u64,
    /// The most frames in one message.
    pub max_parts: usize,
}

impl Default for SocketOptions {
    /// 30 s timeout, 1 GiB frames and messages, 16 frames per message.
    fn default() -> SocketOptions {
        SocketOptions {
            timeout: Some(Duration::from_secs(30)),
            max_frame: 1 << 30,
            max_message: 1 << 30,
            max_parts: 16,
        }
    }
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Conn::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Conn {
    /// Reads until `buf` is full (or the timeout, the end of the stream or an error cuts it
    /// short), in as few system calls as the kernel allows: `recv` with `MSG_WAITALL`. A frame
    /// of megabytes then arrives in a few wake-ups instead of one per socket-buffer's worth.
    fn read_all(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
        };
        // SAFETY: `buf` is valid for writes of its length; `fd` is this connection's socket.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_WAITALL) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

enum Addr {
    Tcp(String),
    Unix(PathBuf),
}

fn parse_addr(ep: &str, listen: bool) -> Result<Addr, String> {
    if let Some(rest) = ep.strip_prefix("tcp://") {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{ep:?}: expected tcp://HOST:PORT"))?;
        let port = if port == "*" && listen { "0" } else { port };
        port.parse::<u16>()
            .map_err(|_| format!("{ep:?}: port {port:?} is not a number"))?;
        let host = match host {
            "*" if listen => "0.0.0.0",
            "*" => return Err(format!("{ep:?}: connect needs a host, not *")),
            h => h.trim_start_matches('[').trim_end_matches(']'),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Addr::Tcp(format!("{host}:{port}")))
    } else if let Some(path) = ep.strip_prefix("ipc://") {
        if path.is_empty() {
            return Err(format!("{ep:?}: empty ipc path"));
        }
        Ok(Addr::Unix(PathBuf::from(path)))
    } else {
        Err(format!("{ep:?}: expected tcp://HOST:PORT or ipc://PATH"))
    }
}

const FLAG_MORE: u8 = 1;
const FLAG_LONG: u8 = 2;
const FLAG_COMMAND: u8 = 4;
/// Commands larger than this are refused (READY with properties is tens of bytes).
const MAX_COMMAND: u64 = 64 << 10;
/// Frames up to this size are copied into the write buffer; larger ones are written directly.
const SMALL_FRAME: usize = 64 << 10;
const READ_BUF: usize = 256 << 10;

/// One connected peer and its buffers.
struct Peer {
    conn: Conn,
    rbuf: Box<[u8]>,
    rpos: usize,
    rend: usize,
    wbuf: Vec<u8>,
}

/// Why a read stopped: an I/O error, or nothing at all arrived before the timeout.
enum ReadErr {
    Idle,
    Io(io::Error),
}

impl From<io::Error> for ReadErr {
    fn from(e: io::Error) -> ReadErr {
        ReadErr::Io(e)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl Peer {
    fn new(conn: Conn) -> Peer {
        Peer {
            conn,
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            rpos: 0,
            rend: 0,
            wbuf: Vec::with_capacity(SMALL_FRAME * 2),
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        }
        loop {
            match self.conn.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.rend += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next byte, or [`ReadErr::Idle`] when nothing arrived before the timeout.
    fn first_byte(&mut self) -> Result<u8, ReadErr> {
        if self.rpos == self.rend {
            match self.fill() {
                Ok(()) => {}
                Err(e) if is_timeout(&e) => return Err(ReadErr::Idle),
                Err(e) => return Err(ReadErr::Io(e)),
            }
        }
        self.rpos += 1;
        Ok(self.rbuf[self.rpos - 1])
    }

    fn read_exact(&mut self, dst: &mut [u8]) -> io::Result<()> {
        let mut done = (self.rend - self.rpos).min(dst.len());
        dst[..done].copy_from_slice(&self.rbuf[self.rpos..self.rpos + done]);
        self.rpos += done;
        while done < dst.len() {
            let left = dst.len() - done;
            if left >= READ_BUF / 2 {
                // large reads go straight into the destination
                match self.conn.read_all(&mut dst[done..]) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            } else {
                self.fill()?;
                let n = (self.rend - self.rpos).min(left);
                dst[done..done + n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
                self.rpos += n;
                done += n;
            }
        }
        Ok(())
    }

    fn write_frame(&mut self, flags: u8, body: &[&[u8]]) -> io::Result<()> {
        let len: usize = body.iter().map(|b| b.len()).sum();
        if len > 255 {
            self.wbuf.push(flags | FLAG_LONG);
            self.wbuf.extend((len as u64).to_be_bytes());
        } else {
            self.wbuf.extend([flags, len as u8]);
        }
        for b in body {
            if b.len() <= SMALL_FRAME {
                self.wbuf.extend_from_slice(b);
            } else {
                self.flush()?;
                self.conn.write_all(b)?;
            }
        }
        if self.wbuf.len() > SMALL_FRAME {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.conn.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        Ok(())
    }
}

/// A ZeroMQ socket of one type, listening or connecting, talking to one peer at a time; a
/// peer that goes away is replaced on the next call (accepted again, or reconnected).
///
/// ```
/// use tiledio_ptycho::stream::{Endpoint, zmtp::{Socket, SocketOptions, SocketType}};
/// let mut pull = Socket::open(SocketType::Pull, &Endpoint::Listen("tcp://127.0.0.1:*".into()), SocketOptions::default())?;
/// let at = pull.endpoint().to_string(); // the port the system chose
/// let t = std::thread::spawn(move || -> Result<(), tiledio_ptycho::stream::StreamError> {
///     let mut push = Socket::open(SocketType::Push, &Endpoint::Connect(at), SocketOptions::default())?;
///     push.send_multipart(&[b"hello", b"world"])
/// });
/// let mut parts = Vec::new();
/// pull.recv_multipart(&mut parts)?;
/// assert_eq!(parts, [b"hello".to_vec(), b"world".to_vec()]);
/// t.join().unwrap()?;
/// # Ok::<(), tiledio_ptycho::stream::StreamError>(())
/// ```
pub struct Socket {
    kind: SocketType,
    endpoint: String,
    listener: Option<Listener>,
    connect: Option<Addr>,
    peer: Option<Peer>,
    opts: SocketOptions,
    pool: Vec<Vec<u8>>,
    envelope: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("connected", &self.peer.is_some())
            .finish()
    }
}

impl Socket {
    /// Binds (and listens) or prepares to connect; a connecting socket connects on first use,
    /// retrying until the timeout while the other side is not listening yet. `tcp://HOST:*`
    /// binds an ephemeral port ([`Socket::endpoint`] tells which).
    ///
    /// # Errors
    /// [`StreamErrorKind::Usage`](super::StreamErrorKind::Usage) for an endpoint that is not
    /// `tcp://HOST:PORT` or `ipc://PATH`; `Io` when binding fails.
    pub fn open(kind: SocketType, endpoint: &Endpoint, opts: SocketOptions) -> StreamResult<Socket> {
        let (ep, listen) = match endpoint {
            Endpoint::Listen(e) => (e.as_str(), true),
            Endpoint::Connect(e) => (e.as_str(), false),
        };
        let addr = parse_addr(ep, listen).map_err(|m| StreamError::new(ep, K::Usage, m))?;
        let mut s = Socket {
            kind,
            endpoint: ep.to_string(),
            listener: None,
            connect: None,
            peer: None,
            opts,
            pool: Vec::new(),
            envelope: Vec::new(),
        };
        if !listen {
            s.connect = Some(addr);
            return Ok(s);
        }
        let io = |e: io::Error| StreamError::new(ep, K::Io, format!("bind: {e}"));
        match addr {
            Addr::Tcp(a) => {
                let l = TcpListener::bind(&a).map_err(io)?;
                l.set_nonblocking(true).map_err(io)?;
                let la = l.local_addr().map_err(io)?;
                s.endpoint = format!("tcp://{la}");
                s.listener = Some(Listener::Tcp(l));
            }
            Addr::Unix(p) => {
                use std::os::unix::fs::FileTypeExt;
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_socket()) {
                    let _ = std::fs::remove_file(&p);
                }
                let l = UnixListener::bind(&p).map_err(io)?;
                l.set_nonblocking(true).map_err(io)?;
                s.listener = Some(Listener::Unix(l, p));
            }
        }
        Ok(s)
    }

    /// The endpoint: as given, or for a TCP listener the address and port bound.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The socket's type.
    pub fn kind(&self) -> SocketType {
        self.kind
    }

    /// Whether a peer is connected now.
    pub fn is_connected(&self) -> bool {
        self.peer.is_some()
    }

    /// Changes the timeout of later calls.
    pub fn set_timeout(&mut self, t: Option<Duration>) {
        self.opts.timeout = t;
        if let Some(p) = &self.peer {
            let _ = p.conn.set_timeouts(t);
        }
    }

    fn err(&self, kind: K, m: impl Into<String>) -> StreamError {
        StreamError::new(&self.endpoint, kind, m)
    }

    fn io_err(&self, what: &str, e: io::Error) -> StreamError {
        let kind = match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => K::Disconnected,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => K::Timeout,
            _ => K::Io,
        };
        let m = match kind {
            K::Disconnected => format!("{what}: the peer disconnected ({e})"),
            K::Timeout => format!("{what}: timed out after {:?}", self.opts.timeout.unwrap_or_default()),
            _ => format!("{what}: {e}"),
        };
        self.err(kind, m)
    }

    /// Waits (up to the timeout) for a peer and completes the ZMTP handshake.
    fn ensure_peer(&mut self) -> StreamResult<()> {
        if self.peer.is_some() {
            return Ok(());
        }
        let deadline = self.opts.timeout.map(|t| Instant::now() + t);
        let timed_out = |s: &Socket, what: &str| {
            s.err(
                K::Timeout,
                format!("{what} within {:?}", s.opts.timeout.unwrap_or_default()),
            )
        };
        let conn = loop {
            let attempt = match (&self.listener, &self.connect) {
                (Some(Listener::Tcp(l)), _) => l.accept().map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    Conn::Tcp(s)
                }),
                (Some(Listener::Unix(l, _)), _) => l.accept().map(|(s, _)| Conn::Unix(s)),
                (None, Some(Addr::Tcp(a))) => connect_tcp(a).map(Conn::Tcp),
                (None, Some(Addr::Unix(p))) => UnixStream::connect(p).map(Conn::Unix),
                (None, None) => return Err(self.err(K::Usage, "socket has no address")),
            };
            match attempt {
                Ok(c) => break c,
                Err(e)
                    if is_timeout(&e)
                        || matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionRefused
                                | io::ErrorKind::ConnectionAborted
                                | io::ErrorKind::NotFound
                                | io::ErrorKind::Interrupted
                        ) =>
                {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        let what = if self.listener.is_some() {
                            "no peer connected"
                        } else {
                            "could not connect"
                        };
                        return Err(timed_out(self, what));
                    }
                    let pause = if self.listener.is_some() { 2 } else { 50 };
                    std::thread::sleep(Duration::from_millis(pause));
                }
                Err(e) => return Err(self.io_err("connect", e)),
            }
        };
        if let Conn::Tcp(s) = &conn {
            // accepted sockets inherit non-blocking mode from the listener on some systems
            s.set_nonblocking(false).map_err(|e| self.io_err("accept", e))?;
        }
        if let Conn::Unix(s) = &conn {
            s.set_nonblocking(false).map_err(|e| self.io_err("accept", e))?;
        }
        conn.set_timeouts(self.opts.timeout.or(Some(Duration::from_secs(30))))
            .map_err(|e| self.io_err("handshake", e))?;
        let mut peer = Peer::new(conn);
        self.handshake(&mut peer)?;
        peer.conn
            .set_timeouts(self.opts.timeout)
            .map_err(|e| self.io_err("handshake", e))?;
        self.peer = Some(peer);
        Ok(())
    }

    fn handshake(&self, p: &mut Peer) -> StreamResult<()> {
        let mut g = [0u8; 64];
        g[0] = 0xff;
        g[8] = 1;
        g[9] = 0x7f;
        g[10] = 3;
        g[11] = 1;
        g[12..16].copy_from_slice(b"NULL");
        p.conn.write_all(&g).map_err(|e| self.io_err("greeting", e))?;
        let mut r = [0u8; 64];
        // the signature first: a peer of ZMTP 1.0 would not send more
        p.read_exact(&mut r[..11]).map_err(|e| self.io_err("greeting", e))?;
        if r[0] != 0xff || r[9] & 1 != 1 {
            return Err(self.err(K::Protocol, "not a ZMTP 3 peer (bad greeting signature)"));
        }
        if r[10] < 3 {
            return Err(self.err(
                K::Protocol,
                format!("peer speaks ZMTP {}.x, 3.0 or later is needed", r[10]),
            ));
        }
        p.read_exact(&mut r[11..]).map_err(|e| self.io_err("greeting", e))?;
        let mech = &r[12..32];
        let end = mech.iter().position(|b| *b == 0).unwrap_or(20);
        if &mech[..end] != b"NULL" {
            return Err(self.err(
                K::Protocol,
                format!(
                    "peer asks for security mechanism {:?}, only NULL is implemented",
                    String::from_utf8_lossy(&mech[..end])
                ),
            ));
        }
        // READY with our socket type
        let mut body = vec![5u8];
        body.extend(b"READY");
        push_property(&mut body, "Socket-Type", self.kind.name().as_bytes());
        if self.kind == SocketType::Req {
            push_property(&mut body, "Identity", b"");
        }
        p.write_frame(FLAG_COMMAND, &[&body])
            .and_then(|()| p.flush())
            .map_err(|e| self.io_err("READY", e))?;
        let (flags, len) = self.frame_head(p, true).map_err(|e| self.map_read(e, "READY"))?;
        if flags & FLAG_COMMAND == 0 || len > MAX_COMMAND {
            return Err(self.err(K::Protocol, "the peer's first frame is not a READY command"));
        }
        let mut cmd = vec![0u8; len as usize];
        p.read_exact(&mut cmd).map_err(|e| self.io_err("READY", e))?;
        let (name, props) = split_command(&cmd).ok_or_else(|| self.err(K::Protocol, "malformed command"))?;
        if name == b"ERROR" {
            return Err(self.err(
                K::Protocol,
                format!(
                    "the peer refused: {}",
                    String::from_utf8_lossy(props.get(1..).unwrap_or(&[]))
                ),
            ));
        }
        if name != b"READY" {
            return Err(self.err(
                K::Protocol,
                format!("expected READY, got {:?}", String::from_utf8_lossy(name)),
            ));
        }
        let st = parse_properties(props)
            .ok_or_else(|| self.err(K::Protocol, "malformed READY properties"))?
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"Socket-Type"))
            .map(|(_, v)| v)
            .ok_or_else(|| self.err(K::Protocol, "READY without Socket-Type"))?;
        if !self.kind.accepts(st) {
            return Err(self.err(
                K::Protocol,
                format!(
                    "a {} socket cannot talk to a {} socket",
                    self.kind.name(),
                    String::from_utf8_lossy(st)
                ),
            ));
        }
        Ok(())
    }

    fn map_read(&self, e: ReadErr, what: &str) -> StreamError {
        match e {
            ReadErr::Idle => self.err(
                K::Timeout,
                format!(
                    "{what}: nothing arrived within {:?}",
                    self.opts.timeout.unwrap_or_default()
                ),
            ),
            ReadErr::Io(e) => self.io_err(what, e),
        }
    }

    /// Reads a frame head; `first`: a timeout before its first byte is [`ReadErr::Idle`].
    fn frame_head(&self, p: &mut Peer, first: bool) -> Result<(u8, u64), ReadErr> {
        let flags = if first {
            p.first_byte()?
        } else {
            let mut b = [0u8];
            p.read_exact(&mut b)?;
            b[0]
        };
        if flags & !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND) != 0 {
            return Err(ReadErr::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame flags {flags:#04x} with reserved bits set"),
            )));
        }
        let len = if flags & FLAG_LONG != 0 {
            let mut b = [0u8; 8];
            p.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        } else {
            let mut b = [0u8];
            p.read_exact(&mut b)?;
            b[0] as u64
        };
        Ok((flags, len))
    }

    /// Receives one message into `parts` (one vector per frame, reusing the buffers of
    /// earlier calls and of [`Socket::give_back`]); REQ/REP envelopes are removed.
    ///
    /// # Errors
    /// `Timeout` when no message starts within the timeout (the socket stays usable);
    /// `Disconnected`, `Protocol`, `Limit` (a frame or message over the limits: nothing is
    /// allocated for it) or `Io` otherwise: the peer is dropped, and the next call waits for a
    /// new one.
    pub fn recv_multipart(&mut self, parts: &mut Vec<Vec<u8>>) -> StreamResult<()> {
        self.pool.append(parts);
        self.ensure_peer()?;
        let mut p = self.peer.take().ok_or_else(|| self.err(K::Usage, "no peer"))?;
        match self.read_message(&mut p, parts) {
            Ok(()) => {
                self.peer = Some(p);
                Ok(())
            }
            Err((e, keep)) => {
                if keep {
                    self.peer = Some(p);
                }
                self.pool.append(parts);
                Err(e)
            }
        }
    }

    /// Reads one message; the error says whether the connection is still usable.
    fn read_message(&mut self, p: &mut Peer, parts: &mut Vec<Vec<u8>>) -> Result<(), (StreamError, bool)> {
        let mut total = 0u64;
        let mut frames = 0usize;
        let mut first = true;
        let mut in_envelope = matches!(self.kind, SocketType::Rep | SocketType::Req);
        if self.kind == SocketType::Rep {
            self.envelope.clear();
        }
        loop {
            let (flags, len) = match self.frame_head(p, first) {
                Ok(h) => h,
                Err(ReadErr::Idle) => return Err((self.map_read(ReadErr::Idle, "receive"), true)),
                Err(ReadErr::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err((self.err(K::Protocol, e.to_string()), false));
                }
                Err(ReadErr::Io(e)) => {
                    let what = if first { "receive" } else { "receive (mid-message)" };
                    return Err((self.io_err(what, e), false));
                }
            };
            first = false;
            if flags & FLAG_COMMAND != 0 {
                if len > MAX_COMMAND {
                    return Err((
                        self.err(K::Limit, format!("a command of {len} bytes (limit {MAX_COMMAND})")),
                        false,
                    ));
                }
                let mut cmd = vec![0u8; len as usize];
                p.read_exact(&mut cmd).map_err(|e| (self.io_err("command", e), false))?;
                self.command(p, &cmd).map_err(|e| (e, false))?;
                first = true;
                continue;
            }
            if len > self.opts.max_frame {
                return Err((
                    self.err(
                        K::Limit,
                        format!(
                            "frame {} declares {len} bytes (limit {})",
                            parts.len(),
                            self.opts.max_frame
                        ),
                    ),
                    false,
                ));
            }
            total += len;
            frames += 1;
            if total > self.opts.max_message || frames > self.opts.max_parts + 1 {
                return Err((
                    self.err(
                        K::Limit,
                        format!(
                            "a message over the limits ({frames} frames, {total} bytes; limits {} frames, {} bytes)",
                            self.opts.max_parts, self.opts.max_message
                        ),
                    ),
                    false,
                ));
            }
            let mut buf = take_buffer(&mut self.pool, len as usize);
            set_len(&mut buf, len as usize);
            p.read_exact(&mut buf)
                .map_err(|e| (self.io_err("receive (mid-message)", e), false))?;
            if in_envelope {
                let empty = buf.is_empty();
                match self.kind {
                    SocketType::Rep => self.envelope.push(buf),
                    _ => self.pool.push(buf),
                }
                if empty {
                    in_envelope = false;
                } else if self.kind == SocketType::Req {
                    return Err((self.err(K::Protocol, "a reply without the empty delimiter"), false));
                }
                if flags & FLAG_MORE == 0 {
                    return Err((self.err(K::Protocol, "a request or reply with no body"), false));
                }
                continue;
            }
            parts.push(buf);
            if parts.len() > self.opts.max_parts {
                return Err((
                    self.err(
                        K::Limit,
                        format!("a message of more than {} frames", self.opts.max_parts),
                    ),
                    false,
                ));
            }
            if flags & FLAG_MORE == 0 {
                return Ok(());
            }
        }
    }

    fn command(&self, p: &mut Peer, cmd: &[u8]) -> StreamResult<()> {
        let (name, body) = split_command(cmd).ok_or_else(|| self.err(K::Protocol, "malformed command"))?;
        match name {
            b"PING" => {
                // PONG echoes the ping context (after the 2-byte TTL)
                let ctx = body.get(2..).unwrap_or(&[]);
                let mut pong = vec![4u8];
                pong.extend(b"PONG");
                pong.extend(ctx);
                p.write_frame(FLAG_COMMAND, &[&pong])
                    .and_then(|()| p.flush())
                    .map_err(|e| self.io_err("PONG", e))
            }
            b"ERROR" => Err(self.err(
                K::Protocol,
                format!(
                    "the peer sent ERROR: {}",
                    String::from_utf8_lossy(body.get(1..).unwrap_or(&[]))
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Sends one message, one frame per part (REQ adds the empty delimiter, REP the envelope
    /// of the last request).
    ///
    /// # Errors
    /// `Timeout` when no peer connects or the peer takes nothing within the timeout;
    /// `Disconnected` or `Io`: the peer is dropped.
    pub fn send_multipart(&mut self, parts: &[&[u8]]) -> StreamResult<()> {
        let frames: Vec<[&[u8]; 1]> = parts.iter().map(|p| [*p]).collect();
        let refs: Vec<&[&[u8]]> = frames.iter().map(|f| &f[..]).collect();
        self.send_gather(&refs)
    }

    /// Sends one message whose frame `i` is the concatenation of the slices `frames[i]`.
    pub(crate) fn send_gather(&mut self, frames: &[&[&[u8]]]) -> StreamResult<()> {
        if frames.is_empty() {
            return Err(self.err(K::Usage, "a message needs at least one frame"));
        }
        self.ensure_peer()?;
        let mut p = self.peer.take().ok_or_else(|| self.err(K::Usage, "no peer"))?;
        let r = (|| -> io::Result<()> {
            match self.kind {
                SocketType::Req => p.write_frame(FLAG_MORE, &[])?,
                SocketType::Rep => {
                    for e in &self.envelope {
                        p.write_frame(FLAG_MORE, &[e])?;
                    }
                }
                _ => {}
            }
            for (i, f) in frames.iter().enumerate() {
                let more = if i + 1 < frames.len() { FLAG_MORE } else { 0 };
                p.write_frame(more, f)?;
            }
            p.flush()
        })();
        match r {
            Ok(()) => {
                self.peer = Some(p);
                Ok(())
            }
            Err(e) => Err(self.io_err("send", e)),
        }
    }

    /// Returns a buffer (from [`Socket::recv_multipart`]) for reuse.
    pub fn give_back(&mut self, buf: Vec<u8>) {
        if self.pool.len() < 64 {
            self.pool.push(buf);
        }
    }

    /// A pooled buffer for `len` bytes (its length is unspecified).
    pub(crate) fn take_buffer(&mut self, len: usize) -> Vec<u8> {
        take_buffer(&mut self.pool, len)
    }

    /// Drops the connected peer (the next call waits for or connects to a new one).
    pub fn disconnect(&mut self) {
        self.peer = None;
    }
}

fn connect_tcp(a: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{a}: no address"));
    for sa in a.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sa, Duration::from_secs(5)) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The smallest pooled buffer holding `len` bytes, else the largest (it will grow).
fn take_buffer(pool: &mut Vec<Vec<u8>>, len: usize) -> Vec<u8> {
    let pick = pool
        .iter()
        .enumerate()
        .filter(|(_, b)| b.capacity() >= len)
        .min_by_key(|(_, b)| b.capacity())
        .or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.capacity()))
        .map(|(i, _)| i);
    match pick {
        Some(i) => pool.swap_remove(i),
        None => Vec::new(),
    }
}

/// Sets the length without zeroing what a reused buffer already holds.
pub(crate) fn set_len(buf: &mut Vec<u8>, len: usize) {
    if buf.len() >= len {
        buf.truncate(len);
    } else {
        buf.resize(len, 0);
    }
}

fn push_property(body: &mut Vec<u8>, name: &str, value: &[u8]) {
    body.push(name.len() as u8);
    body.extend(name.as_bytes());
    body.extend((value.len() as u32).to_be_bytes());
    body.extend(value);
}

fn split_command(cmd: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = *cmd.first()? as usize;
    Some((cmd.get(1..1 + n)?, &cmd[1 + n..]))
}

fn parse_properties(mut b: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = b[0] as usize;
        let name = b.get(1..1 + n)?;
        let vl = u32::from_be_bytes(b.get(1 + n..5 + n)?.try_into().ok()?) as usize;
        let value = b.get(5 + n..(5 + n).checked_add(vl)?)?;
        out.push((name, value));
        b = &b[5 + n + vl..];
    }
    Some(out)
}
