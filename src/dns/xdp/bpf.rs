//! The XDP program that hands UDP queries to the AF_XDP sockets, and its map. The
//! program is 33 instructions, assembled here rather than compiled: building it from C
//! or Rust would need a BPF toolchain (clang, or bpf-linker on nightly) on every machine
//! that builds Meridian, and crates that load programs (aya, libbpf-rs) load compiled
//! objects. The `bpf(2)` calls are plain syscalls; libc has no wrappers for them.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// From linux/bpf.h.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// One instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    /// Destination register in the low nibble, source in the high.
    regs: u8,
    off: i16,
    imm: i32,
}

// Instruction classes and modes used below.
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LDX_H: u8 = 0x69;
const LDX_B: u8 = 0x71;
const LD_DW_IMM: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW, two slots
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K: u8 = 0xb7;
const ADD_K: u8 = 0x07;
const AND_K: u8 = 0x57;
const JGT_X: u8 = 0x2d; // BPF_JMP | BPF_JGT | BPF_X
const JEQ_K: u8 = 0x15;
const JNE_K: u8 = 0x55;
const JA: u8 = 0x05;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | src << 4,
        off,
        imm,
    }
}

/// A 16-bit field as a little-endian load sees the network-order bytes.
fn net16(v: u16) -> i32 {
    i32::from(u16::from_ne_bytes(v.to_be_bytes()))
}

/// The program: UDP to `port` in IPv4 without options or fragments, or in IPv6 with no
/// extension header, goes to the AF_XDP socket of the queue it came in on (or on up the
/// stack when that queue has none); every other frame goes on up the stack.
fn program(map: RawFd, port: u16) -> Vec<Insn> {
    const PASS: i16 = 31;
    const REDIRECT: i16 = 25;
    const V6: i16 = 18;
    // Jumps count from the next instruction.
    let to = |at: i16, target: i16| target - at - 1;
    let p = [
        insn(LDX_W, 2, 1, 0, 0), // r2 = ctx->data
        insn(LDX_W, 3, 1, 4, 0), // r3 = ctx->data_end
        insn(MOV_X, 4, 2, 0, 0),
        insn(ADD_K, 4, 0, 0, 42), // Ethernet, IPv4, UDP
        insn(JGT_X, 4, 3, to(4, PASS), 0),
        insn(LDX_H, 5, 2, 12, 0), // ethertype
        insn(JEQ_K, 5, 0, to(6, V6), net16(0x86dd)),
        insn(JNE_K, 5, 0, to(7, PASS), net16(0x0800)),
        insn(LDX_B, 5, 2, 14, 0), // version and header length
        insn(JNE_K, 5, 0, to(9, PASS), 0x45),
        insn(LDX_H, 5, 2, 20, 0), // more fragments, fragment offset
        insn(AND_K, 5, 0, 0, net16(0x3fff)),
        insn(JNE_K, 5, 0, to(12, PASS), 0),
        insn(LDX_B, 5, 2, 23, 0), // protocol
        insn(JNE_K, 5, 0, to(14, PASS), 17),
        insn(LDX_H, 5, 2, 36, 0), // UDP destination port
        insn(JNE_K, 5, 0, to(16, PASS), net16(port)),
        insn(JA, 0, 0, to(17, REDIRECT), 0),
        // V6 (18)
        insn(MOV_X, 4, 2, 0, 0),
        insn(ADD_K, 4, 0, 0, 62), // Ethernet, IPv6, UDP
        insn(JGT_X, 4, 3, to(20, PASS), 0),
        insn(LDX_B, 5, 2, 20, 0), // next header
        insn(JNE_K, 5, 0, to(22, PASS), 17),
        insn(LDX_H, 5, 2, 56, 0), // UDP destination port
        insn(JNE_K, 5, 0, to(24, PASS), net16(port)),
        // REDIRECT (25): bpf_redirect_map(map, ctx->rx_queue_index, XDP_PASS)
        insn(LDX_W, 2, 1, 16, 0),
        insn(LD_DW_IMM, 1, BPF_PSEUDO_MAP_FD, 0, map),
        insn(0, 0, 0, 0, 0),
        insn(MOV_K, 3, 0, 0, XDP_PASS),
        insn(CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(EXIT, 0, 0, 0, 0),
        // PASS (31)
        insn(MOV_K, 0, 0, 0, XDP_PASS),
        insn(EXIT, 0, 0, 0, 0),
    ];
    debug_assert_eq!(p.len(), 33);
    p.to_vec()
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is the `union bpf_attr` member that `cmd` reads, laid out as the
    // kernel's (repr(C)); the kernel checks `size` and that no unknown field is set.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: a file descriptor the kernel just returned, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// The program attached to an interface with its map of sockets. Dropping it detaches
/// the program (the link is gone with its descriptor).
pub struct Program {
    map: OwnedFd,
    _program: OwnedFd,
    _link: OwnedFd,
}

impl Program {
    /// Loads the program for `port` with room for `queues` sockets, and attaches it to
    /// the interface in generic mode, which every driver supports.
    pub fn attach(ifindex: u32, port: u16, queues: u32) -> io::Result<Program> {
        #[repr(C)]
        struct MapCreate {
            map_type: u32,
            key_size: u32,
            value_size: u32,
            max_entries: u32,
        }
        let map = owned(bpf(
            BPF_MAP_CREATE,
            &mut MapCreate {
                map_type: BPF_MAP_TYPE_XSKMAP,
                key_size: 4,
                value_size: 4,
                max_entries: queues,
            },
        )?);
        #[repr(C)]
        struct ProgLoad {
            prog_type: u32,
            insn_cnt: u32,
            insns: u64,
            license: u64,
            log_level: u32,
            log_size: u32,
            log_buf: u64,
        }
        let insns = program(map.as_raw_fd(), port);
        let mut log = vec![0u8; 4096];
        let loaded = bpf(
            BPF_PROG_LOAD,
            &mut ProgLoad {
                prog_type: BPF_PROG_TYPE_XDP,
                insn_cnt: insns.len() as u32,
                insns: insns.as_ptr() as u64,
                license: c"GPL".as_ptr() as u64,
                log_level: 1,
                log_size: log.len() as u32,
                log_buf: log.as_mut_ptr() as u64,
            },
        );
        let program = match loaded {
            Ok(fd) => owned(fd),
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let verifier = String::from_utf8_lossy(&log[..end]);
                return Err(io::Error::new(
                    e.kind(),
                    format!("loading the XDP program: {e}; the verifier said: {verifier}"),
                ));
            }
        };
        #[repr(C)]
        struct LinkCreate {
            prog_fd: u32,
            target_ifindex: u32,
            attach_type: u32,
            flags: u32,
        }
        let link = owned(
            bpf(
                BPF_LINK_CREATE,
                &mut LinkCreate {
                    prog_fd: program.as_raw_fd() as u32,
                    target_ifindex: ifindex,
                    attach_type: BPF_XDP,
                    flags: XDP_FLAGS_SKB_MODE,
                },
            )
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("attaching the XDP program: {e} (is another XDP program attached?)"),
                )
            })?,
        );
        Ok(Program {
            map,
            _program: program,
            _link: link,
        })
    }

    /// Sends what comes in on `queue` to `socket`.
    pub fn insert(&self, queue: u32, socket: RawFd) -> io::Result<()> {
        #[repr(C)]
        struct MapUpdate {
            map_fd: u32,
            _pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        let value = socket as u32;
        bpf(
            BPF_MAP_UPDATE_ELEM,
            &mut MapUpdate {
                map_fd: self.map.as_raw_fd() as u32,
                _pad: 0,
                key: &queue as *const u32 as u64,
                value: &value as *const u32 as u64,
                flags: 0,
            },
        )?;
        Ok(())
    }
}
