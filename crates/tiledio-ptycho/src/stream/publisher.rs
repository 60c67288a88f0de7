//! The PtyPy side: [`Publisher`] serves preprocessed frames the way PtyPy's
//! `DiamondZMQLoader` (`ptypy/experiment/diamond_streaming.py`) reads them.

use super::Endpoint;
use super::error::{StreamErrorKind as K, StreamResult};
use super::zmtp::{Socket, SocketOptions, SocketType};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the metadata thread shares with the publisher.
#[derive(Default)]
struct Shared {
    meta: Option<Vec<u8>>,
    starts: u64,
    stopped: bool,
}

type State = Arc<(Mutex<Shared>, Condvar)>;

/// Publishes frames to PtyPy's `DiamondZMQLoader`: a REP socket answers `b"Start"` with a
/// pickled `{"dtype": str, "shape": (N, H, W)}` (and `b"Stop"` with `b"OK"`), and a PUSH socket
/// sends each frame as `[frame bytes, posx as ASCII, posy as ASCII]`. Both sockets bind; the
/// loader connects to them (its `metadata` and `datastream` addresses). The REP socket is
/// served by a thread of its own; a `Start` asked before [`Publisher::begin`] is answered
/// once the series is known.
///
/// ```no_run
/// use tiledio_ptycho::stream::{Publisher, zmtp::SocketOptions};
/// let mut p = Publisher::bind("tcp://*:5553", "tcp://*:5552", SocketOptions::default())?;
/// p.begin(100, (256, 256), "float32");
/// let frame = vec![0u8; 256 * 256 * 4];
/// for i in 0..100 {
///     p.send(&frame, 0.1 * i as f64, 0.0)?;
/// }
/// # Ok::<(), tiledio_ptycho::stream::StreamError>(())
/// ```
pub struct Publisher {
    data: Socket,
    meta_endpoint: String,
    state: State,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("meta", &self.meta_endpoint)
            .field("data", &self.data.endpoint())
            .finish()
    }
}

impl Publisher {
    /// Binds the metadata (REP) and data (PUSH) endpoints (`tcp://HOST:*` picks a port:
    /// [`Publisher::meta_endpoint`], [`Publisher::data_endpoint`]). `opts` bound the data
    /// socket's waits (for the loader to connect, to take a frame).
    ///
    /// # Errors
    /// A bad endpoint or a failed bind.
    pub fn bind(meta: &str, data: &str, opts: SocketOptions) -> StreamResult<Publisher> {
        let mut mopts = opts.clone();
        mopts.timeout = Some(Duration::from_millis(100));
        mopts.max_frame = 1 << 16;
        mopts.max_message = 1 << 16;
        let mut rep = Socket::open(SocketType::Rep, &Endpoint::Listen(meta.into()), mopts)?;
        let data = Socket::open(SocketType::Push, &Endpoint::Listen(data.into()), opts)?;
        let meta_endpoint = rep.endpoint().to_string();
        let state: State = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("tiledio-ptypy-meta".into())
            .spawn(move || serve_meta(&mut rep, &st, &sp))
            .map_err(|e| super::StreamError::new(&meta_endpoint, K::Io, format!("thread: {e}")))?;
        Ok(Publisher {
            data,
            meta_endpoint,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// The metadata (REP) endpoint.
    pub fn meta_endpoint(&self) -> &str {
        &self.meta_endpoint
    }

    /// The data (PUSH) endpoint.
    pub fn data_endpoint(&self) -> &str {
        self.data.endpoint()
    }

    /// Announces a series of `frames` frames of `shape` and NumPy `dtype` ("float32",
    /// "uint16", ...): the answer to the loader's `Start`.
    pub fn begin(&mut self, frames: u64, shape: (usize, usize), dtype: &str) {
        let p = pickle_meta(dtype, &[frames, shape.0 as u64, shape.1 as u64]);
        let (m, cv) = &*self.state;
        let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
        s.meta = Some(p);
        cv.notify_all();
    }

    /// Sends one frame and its position (waits for the loader to connect and take it).
    ///
    /// # Errors
    /// The data socket's errors (`Timeout` when no loader connects or it takes nothing within
    /// the timeout; `Disconnected`).
    pub fn send(&mut self, frame: &[u8], posx: f64, posy: f64) -> StreamResult<()> {
        let (x, y) = (posx.to_string(), posy.to_string());
        self.data.send_multipart(&[frame, x.as_bytes(), y.as_bytes()])
    }

    /// How many `Start` requests were answered.
    pub fn starts_answered(&self) -> u64 {
        self.state.0.lock().map(|s| s.starts).unwrap_or(0)
    }

    /// Whether the loader sent `Stop` (it does after its last frame).
    pub fn stop_received(&self) -> bool {
        self.state.0.lock().map(|s| s.stopped).unwrap_or(false)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_meta(rep: &mut Socket, state: &State, stop: &AtomicBool) {
    let mut parts = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match rep.recv_multipart(&mut parts) {
            Ok(()) => {}
            Err(e) if e.kind == K::Timeout => continue,
            Err(_) => {
                // a loader that went away, or a malformed request: wait for the next one
                rep.disconnect();
                continue;
            }
        }
        let req = parts.first().map(|p| p.as_slice()).unwrap_or(&[]);
        let reply = match req {
            b"Start" => {
                let (m, cv) = &**state;
                let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
                while s.meta.is_none() && !stop.load(Ordering::SeqCst) {
                    s = cv
                        .wait_timeout(s, Duration::from_millis(100))
                        .map(|r| r.0)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                let Some(meta) = s.meta.clone() else { return };
                s.starts += 1;
                meta
            }
            b"Stop" => {
                if let Ok(mut s) = state.0.lock() {
                    s.stopped = true;
                }
                b"OK".to_vec()
            }
            _ => b"Unknown request".to_vec(),
        };
        if rep.send_multipart(&[&reply]).is_err() {
            rep.disconnect();
        }
    }
}

/// A pickle (protocol 2) of `{"dtype": dtype, "shape": shape}` with `shape` a tuple of ints.
///
/// ```
/// let p = tiledio_ptycho::stream::pickle_meta("uint16", &[3, 4, 5]);
/// assert_eq!(&p[..2], b"\x80\x02");
/// assert_eq!(p.last(), Some(&b'.'));
/// ```
pub fn pickle_meta(dtype: &str, shape: &[u64]) -> Vec<u8> {
    let mut p = vec![0x80, 2]; // PROTO 2
    p.push(b'}'); // EMPTY_DICT
    p.push(b'('); // MARK
    pickle_str(&mut p, "dtype");
    pickle_str(&mut p, dtype);
    pickle_str(&mut p, "shape");
    p.push(b'('); // MARK
    for &v in shape {
        if let Ok(i) = i32::try_from(v) {
            p.push(b'J'); // BININT
            p.extend(i.to_le_bytes());
        } else {
            // LONG1: little-endian two's complement, 9 bytes hold any u64 with a sign bit
            p.extend([0x8a, 9]);
            p.extend(v.to_le_bytes());
            p.push(0);
        }
    }
    p.push(b't'); // TUPLE
    p.push(b'u'); // SETITEMS
    p.push(b'.'); // STOP
    p
}

fn pickle_str(p: &mut Vec<u8>, s: &str) {
    p.push(b'X'); // BINUNICODE
    p.extend((s.len() as u32).to_le_bytes());
    p.extend(s.as_bytes());
}
