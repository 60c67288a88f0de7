//! Network helpers for tests of peers that talk over the loopback.

/// A free TCP port on the loopback, for a peer that must bind the port itself: bound here
/// and released at once (another process could take it in between; tests accept that).
///
/// ```
/// let port = tiledio_test_support::net::free_tcp_port();
/// assert!(port > 0);
/// ```
///
/// # Panics
/// When no loopback port can be bound.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}
