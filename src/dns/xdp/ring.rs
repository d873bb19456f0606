//! One AF_XDP socket: its frame memory (UMEM) and its four rings, shared with the kernel
//! through mmap. No crate does this without C libraries (libxdp, libbpf), so it is here,
//! on libc's definitions of the kernel's structures.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes of one frame: a query, then its answer in the same place.
pub const FRAME: usize = 4096;
/// Descriptors in each ring.
const RING: u32 = 512;
/// Frames: enough for a full fill ring, a full receive ring and answers on their way.
pub const FRAMES: u32 = 4 * RING;

/// A region shared with the kernel, unmapped on drop.
struct Mapped {
    at: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory; access to it goes through the rings' protocol.
unsafe impl Send for Mapped {}

impl Mapped {
    fn new(fd: Option<RawFd>, len: usize, offset: libc::off_t) -> io::Result<Mapped> {
        let (flags, fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping; nothing else refers to the address it returns.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { at: at.cast(), len })
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used.
        unsafe { libc::munmap(self.at.cast(), self.len) };
    }
}

/// One ring: the kernel produces and this side consumes, or the other way round.
struct Ring<T> {
    _map: Mapped,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    descs: *mut T,
    /// This side's copy of its own index (the producer's or the consumer's).
    local: u32,
}

// SAFETY: the pointers are into `_map`, which moves with the ring.
unsafe impl<T> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    fn new(fd: RawFd, offsets: &libc::xdp_ring_offset, pgoff: u64) -> io::Result<Ring<T>> {
        let len = offsets.desc as usize + RING as usize * std::mem::size_of::<T>();
        let map = Mapped::new(Some(fd), len, pgoff as libc::off_t)?;
        // SAFETY: the kernel's offsets lie inside the mapping it sized.
        unsafe {
            Ok(Ring {
                producer: map.at.add(offsets.producer as usize).cast(),
                consumer: map.at.add(offsets.consumer as usize).cast(),
                descs: map.at.add(offsets.desc as usize).cast(),
                _map: map,
                local: 0,
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: an aligned u32 in the mapping, shared with the kernel as an atomic.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as `producer`.
        unsafe { &*self.consumer }
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: the index is masked to the ring's size.
        unsafe { self.descs.add((index % RING) as usize) }
    }

    /// As consumer: the entries ready to read, then `release` what was read.
    fn ready(&self) -> u32 {
        self.producer()
            .load(Ordering::Acquire)
            .wrapping_sub(self.local)
    }

    fn read(&mut self) -> T {
        // SAFETY: called only for entries `ready` counted: the kernel wrote them.
        let v = unsafe { self.slot(self.local).read() };
        self.local = self.local.wrapping_add(1);
        v
    }

    fn release(&self) {
        self.consumer().store(self.local, Ordering::Release);
    }

    /// As producer: room for more entries, then `submit` what was written.
    fn room(&self) -> u32 {
        RING - self
            .local
            .wrapping_sub(self.consumer().load(Ordering::Acquire))
    }

    fn write(&mut self, v: T) {
        // SAFETY: called only within `room`: the kernel is done with the slot.
        unsafe { self.slot(self.local).write(v) };
        self.local = self.local.wrapping_add(1);
    }

    fn submit(&self) {
        self.producer().store(self.local, Ordering::Release);
    }
}

/// An AF_XDP socket bound to one queue of an interface, in copy mode (which every driver
/// has), with its frames.
pub struct Socket {
    fd: OwnedFd,
    umem: Mapped,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    fill: Ring<u64>,
    done: Ring<u64>,
    /// Frames on none of the rings.
    free: Vec<u64>,
}

impl Socket {
    pub fn open(ifindex: u32, queue: u32) -> io::Result<Socket> {
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor just returned.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        let umem = Mapped::new(None, FRAMES as usize * FRAME, 0)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.at as u64,
            len: umem.len as u64,
            chunk_size: FRAME as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::XDP_UMEM_REG, &reg)?;
        for ring in [
            libc::XDP_UMEM_FILL_RING,
            libc::XDP_UMEM_COMPLETION_RING,
            libc::XDP_RX_RING,
            libc::XDP_TX_RING,
        ] {
            setsockopt(raw, ring, &RING)?;
        }
        // SAFETY: plain data; the kernel fills it in.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of_val(&off) as libc::socklen_t;
        // SAFETY: `off` is as large as `len` says.
        if unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let rx = Ring::new(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64)?;
        let tx = Ring::new(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64)?;
        let fill = Ring::new(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING)?;
        let done = Ring::new(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?;
        // SAFETY: plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
        addr.sxdp_family = libc::AF_XDP as u16;
        addr.sxdp_flags = libc::XDP_COPY;
        addr.sxdp_ifindex = ifindex;
        addr.sxdp_queue_id = queue;
        // SAFETY: `addr` is a sockaddr_xdp of the size given.
        if unsafe {
            libc::bind(
                raw,
                (&addr as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of_val(&addr) as libc::socklen_t,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut socket = Socket {
            fd,
            umem,
            rx,
            tx,
            fill,
            done,
            free: (0..FRAMES).map(|i| u64::from(i) * FRAME as u64).collect(),
        };
        socket.refill();
        Ok(socket)
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Frames whose answers have gone out, and free ones, go back to the fill ring for
    /// the kernel to write queries into.
    pub fn refill(&mut self) {
        for _ in 0..self.done.ready() {
            let frame = self.done.read();
            self.recycle(frame);
        }
        self.done.release();
        let n = self.fill.room().min(self.free.len() as u32);
        for _ in 0..n {
            let frame = self.free.pop().expect("counted above");
            self.fill.write(frame);
        }
        self.fill.submit();
    }

    /// Waits up to `timeout` for a query (poll(2)); false when none came.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        self.kick();
        if self.rx.ready() > 0 {
            return true;
        }
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, as the count says.
        let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
        r > 0
    }

    /// The next received frame: its address in the frame memory, and its length.
    pub fn receive(&mut self) -> Option<(u64, usize)> {
        (self.rx.ready() > 0).then(|| {
            let d = self.rx.read();
            (d.addr, d.len as usize)
        })
    }

    /// The frame from `addr` (as `receive` gave it: the kernel leaves headroom before the
    /// data) to the end of its chunk, to read a query and write its answer in.
    pub fn frame(&mut self, addr: u64) -> &mut [u8] {
        let start = addr as usize;
        let end = (start / FRAME + 1) * FRAME;
        assert!(end <= self.umem.len);
        // SAFETY: in the frame memory, and the chunk is this side's: received and not yet
        // handed back.
        unsafe { std::slice::from_raw_parts_mut(self.umem.at.add(start), end - start) }
    }

    /// Sends the frame at `addr`, `len` bytes long; false, and the frame is dropped,
    /// when the transmit ring is full.
    pub fn send(&mut self, addr: u64, len: usize) -> bool {
        if self.tx.room() == 0 {
            self.recycle(addr);
            return false;
        }
        self.tx.write(libc::xdp_desc {
            addr,
            len: len as u32,
            options: 0,
        });
        true
    }

    /// A received frame that gets no answer through this socket.
    pub fn recycle(&mut self, addr: u64) {
        self.free.push(addr - addr % FRAME as u64);
    }

    /// Hands the batch back: what was read off the receive ring, and the answers written
    /// to the transmit ring, which copy mode sends only when asked (`sendto`).
    pub fn flush(&mut self) {
        self.rx.release();
        self.tx.submit();
        self.kick();
        self.refill();
    }

    /// Asks the kernel to send what waits on the transmit ring. Copy mode sends only when
    /// asked, and at most 32 frames a call ("try again" while more wait); on any other
    /// error the frames stay for the next call.
    fn kick(&self) {
        for _ in 0..RING / 32 + 1 {
            if self.tx.consumer().load(Ordering::Acquire) == self.tx.local {
                return;
            }
            // SAFETY: a zero-length send with no address only kicks the transmit ring.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                return;
            }
        }
    }
}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a T of the size given, as the option expects.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
