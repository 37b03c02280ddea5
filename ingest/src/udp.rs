//! Receiving UDP in batches: one `recvmmsg(2)` call takes up to
//! [`BATCH`] datagrams, and the socket's receive buffer is enlarged so a
//! burst waits in the kernel instead of being dropped (StatsD senders never
//! retry). Linux system calls (Sextant runs on Linux).

use std::io;
use std::net::SocketAddr;

/// Datagrams taken per system call.
pub const BATCH: usize = 32;

/// The largest UDP payload.
pub const MAX_DATAGRAM: usize = 65_535;

/// The receive buffer asked for: enough for about a second of 1M lines/s
/// in small datagrams. Root may exceed `net.core.rmem_max` (SO_RCVBUFFORCE);
/// others get what the kernel allows.
pub const RECEIVE_BUFFER: usize = 32 * 1024 * 1024;

/// Enlarges `socket`'s receive buffer; returns the size the kernel granted.
#[allow(unsafe_code)]
pub fn enlarge_receive_buffer(
    socket: &impl std::os::fd::AsRawFd,
    bytes: usize,
) -> io::Result<usize> {
    let fd = socket.as_raw_fd();
    let wanted = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |option| {
        // SAFETY: `wanted` outlives the call and its size is passed along;
        // the fd is a live socket borrowed for the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&raw const wanted).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 && set(libc::SO_RCVBUF) != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut granted: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `granted` and `len` are valid for writes of their sizes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut granted).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Linux reports twice the size asked for (it counts its bookkeeping).
    Ok(usize::try_from(granted).unwrap_or(0) / 2)
}

/// Buffers for one `recvmmsg` call, reused across calls.
pub struct BatchReceiver {
    buffers: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    addresses: Vec<libc::sockaddr_storage>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside point into the struct's own heap buffers,
// which move with it; nothing is shared between threads.
#[allow(unsafe_code)]
unsafe impl Send for BatchReceiver {}

impl std::fmt::Debug for BatchReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchReceiver").finish_non_exhaustive()
    }
}

#[allow(unsafe_code)]
impl BatchReceiver {
    /// Buffers for [`BATCH`] datagrams of up to [`MAX_DATAGRAM`] bytes.
    pub fn new() -> Self {
        let mut buffers = vec![0u8; BATCH * MAX_DATAGRAM];
        // SAFETY: all-zero bytes are a valid `sockaddr_storage` and `mmsghdr`
        // (plain C structs of integers and null pointers).
        let mut addresses: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let iovecs: Vec<libc::iovec> = buffers
            .chunks_mut(MAX_DATAGRAM)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            })
            .collect();
        let mut receiver = Self {
            buffers: Vec::new(),
            iovecs,
            addresses: Vec::new(),
            headers: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
        };
        for (i, header) in receiver.headers.iter_mut().enumerate() {
            header.msg_hdr.msg_iov = (&raw mut receiver.iovecs[i]).cast();
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = (&raw mut addresses[i]).cast();
        }
        // Moving the Vecs moves their headers, not their heap buffers: the
        // pointers set above stay valid.
        std::mem::swap(&mut receiver.buffers, &mut buffers);
        std::mem::swap(&mut receiver.addresses, &mut addresses);
        receiver
    }

    /// Takes the datagrams waiting on `fd` (up to [`BATCH`]) without
    /// blocking; `WouldBlock` when there are none.
    pub fn receive(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
        for header in &mut self.headers {
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: every header points at an iovec over its own MAX_DATAGRAM
        // slice of `buffers` and at its own `sockaddr_storage`, all owned by
        // `self` and alive for the call; the count passed is their number.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(received).unwrap_or(0))
    }

    /// Datagram `i` of the last [`BatchReceiver::receive`]: its bytes, its
    /// sender, and whether the kernel cut it short.
    pub fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>, bool) {
        let header = &self.headers[i];
        let len = (header.msg_len as usize).min(MAX_DATAGRAM);
        let start = i * MAX_DATAGRAM;
        let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        (
            &self.buffers[start..start + len],
            socket_addr(&self.addresses[i]),
            truncated,
        )
    }
}

impl Default for BatchReceiver {
    fn default() -> Self {
        Self::new()
    }
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in, which it is large enough for.
            #[allow(unsafe_code)]
            let v4 = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            #[allow(unsafe_code)]
            let v6 = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    use super::*;

    #[test]
    fn a_batch_takes_every_waiting_datagram_with_its_sender() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let granted = enlarge_receive_buffer(&receiver, 1 << 20).unwrap();
        assert!(granted > 0);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..40 {
            sender
                .send_to(
                    format!("m{i}:1|c").as_bytes(),
                    receiver.local_addr().unwrap(),
                )
                .unwrap();
        }
        let mut batch = BatchReceiver::new();
        let mut got = Vec::new();
        while got.len() < 40 {
            let n = batch.receive(receiver.as_raw_fd()).unwrap();
            assert!(n <= BATCH);
            for i in 0..n {
                let (bytes, peer, truncated) = batch.datagram(i);
                assert_eq!(peer, Some(sender.local_addr().unwrap()));
                assert!(!truncated);
                got.push(String::from_utf8(bytes.to_vec()).unwrap());
            }
        }
        assert_eq!(got.first().map(String::as_str), Some("m0:1|c"));
        assert_eq!(got.last().map(String::as_str), Some("m39:1|c"));
        let empty = batch.receive(receiver.as_raw_fd()).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }
}
