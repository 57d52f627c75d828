//! Name resolution through [`crate::blocking`]: Go's `net.LookupHost`.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `host` to its addresses with the system resolver (`getaddrinfo`). In a
/// goroutine the lookup runs as a [`crate::blocking`] call, so the goroutine's P runs
/// other goroutines meanwhile (Go's cgo resolver does the same); on a plain thread it
/// simply blocks.
///
/// `host` (a `&str` or `String`) is a name or an IP address, with or without a port: `"localhost"`,
/// `"example.com:443"`, `"127.0.0.1"`, `"::1"`, `"[::1]:80"`. Without a port the
/// addresses carry port 0. A name that does not resolve is an error (its kind depends on
/// the resolver); an empty name is `InvalidInput`.
///
/// ```
/// let addrs: Vec<_> = gmp_runtime::net::lookup_host("localhost")?.collect();
/// assert!(addrs.iter().any(|a| a.ip().is_loopback()));
/// let addrs: Vec<_> = gmp_runtime::net::lookup_host("127.0.0.1:80")?.collect();
/// assert_eq!(addrs, ["127.0.0.1:80".parse().unwrap()]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn lookup_host<H: AsRef<str>>(
    host: H,
) -> io::Result<impl Iterator<Item = SocketAddr> + Send + std::fmt::Debug> {
    let host = host.as_ref();
    if host.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "lookup_host: empty host name",
        ));
    }
    let resolve = || -> io::Result<std::vec::IntoIter<SocketAddr>> {
        if let Ok(a) = host.parse::<SocketAddr>() {
            return Ok(vec![a].into_iter());
        }
        // "name:port" (one colon, a numeric port), else a bare name or IPv6 address.
        if let Some((name, port)) = host.rsplit_once(':') {
            if !name.contains(':') {
                if let Ok(port) = port.parse::<u16>() {
                    return (name, port).to_socket_addrs();
                }
            }
        }
        let name = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        (name.unwrap_or(host), 0).to_socket_addrs()
    };
    crate::blocking(resolve)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let one = |h: &str| lookup_host(h).unwrap().collect::<Vec<_>>();
        assert_eq!(one("::1"), ["[::1]:0".parse().unwrap()]);
        assert_eq!(one("[::1]"), ["[::1]:0".parse().unwrap()]);
        assert_eq!(one("[::1]:8"), ["[::1]:8".parse().unwrap()]);
        assert_eq!(one("10.0.0.1"), ["10.0.0.1:0".parse().unwrap()]);
        assert!(one("localhost:9").iter().all(|a| a.port() == 9));
        assert_eq!(
            lookup_host("").err().unwrap().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
