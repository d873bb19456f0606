//! Binding the DNS listeners: per listen address, UDP sockets (one per core,
//! SO_REUSEPORT) and a TCP listener on the same port.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// One listen address: its UDP sockets and TCP listener, bound to the same port.
#[derive(Debug)]
pub struct Bound {
    pub addr: SocketAddr,
    pub(super) udp: Vec<UdpSocket>,
    pub(super) tcp: TcpListener,
}

/// A bind error with the address and a hint at the usual causes.
fn bind_error(proto: &str, a: SocketAddr, e: io::Error) -> io::Error {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied if a.port() < 1024 => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        }
        io::ErrorKind::AddrInUse => " (another process is using it)",
        io::ErrorKind::AddrNotAvailable => " (no interface has this address)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("cannot bind {proto} {a}: {e}{hint}"))
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Every socket of the group sets it, so that a foreign socket on the port still fails.
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Room for bursts; the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(4 << 20);
    never_fragment(&socket, addr)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Every datagram goes out with "don't fragment" (RFC 9715, section 3.1): one larger than
/// the interface's MTU fails with EMSGSIZE and goes out truncated instead (`udp.rs`).
/// PROBE rather than DO: the interface's MTU counts, not a path MTU that a spoofed ICMP
/// "fragmentation needed" could lower. It also spares the kernel picking an IPv4
/// identification per datagram (a shared, hashed counter; some 4 % of the CPU of a busy
/// UDP socket here), as DF packets carry none. Through libc: socket2 has no setter for
/// these options.
fn never_fragment(socket: &socket2::Socket, addr: SocketAddr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (level, name, value) = if addr.is_ipv4() {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    } else {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        )
    };
    // SAFETY: an int option on a socket we own; the kernel reads size_of::<c_int>() bytes.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Connections the kernel queues for accepting: std's 128 overflows when clients reconnect
/// faster than the server closes them, and a dropped SYN costs a well-behaved client a
/// second's retransmission.
const TCP_BACKLOG: i32 = 1024;

fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    Ok(socket.into())
}

/// UDP sockets per listen address: one per core this process may run on.
fn udp_sockets_per_address() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Binds UDP and TCP on `addr`. Port 0 picks a port that is free for both.
pub fn bind(addr: SocketAddr) -> io::Result<Bound> {
    // With port 0 the kernel picks the UDP port; TCP may find it taken, so try again.
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first = udp_socket(addr).map_err(|e| bind_error("UDP", addr, e))?;
        let bound = first.local_addr()?;
        let tcp = match tcp_listener(bound) {
            Ok(tcp) => tcp,
            Err(e) => {
                last = Some(bind_error("TCP", bound, e));
                continue;
            }
        };
        tcp.set_nonblocking(true)?;
        let mut udp = vec![first];
        for _ in 1..udp_sockets_per_address() {
            udp.push(udp_socket(bound).map_err(|e| bind_error("UDP", bound, e))?);
        }
        return Ok(Bound {
            addr: bound,
            udp,
            tcp,
        });
    }
    Err(last.expect("at least one attempt"))
}
