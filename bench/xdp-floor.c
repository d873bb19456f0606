// The floor of an answer through AF_XDP on loopback: what the kernel's part of a DNS
// answer costs when queries come off an AF_XDP ring instead of a UDP socket and answers
// go back through the same ring. An experiment for bench/xdp-floor.sh, not a server: it
// answers every IPv4 UDP query to PORT with one canned A record (no lookup at all), so
// its answers per CPU-second are what the kernel and the rings leave for a server to
// spend, to set beside Meridian's and gdnsd's through their sockets.
//
//   cc -O2 -o xdp-floor xdp-floor.c && ./xdp-floor IFINDEX PORT
//
// Needs root (a BPF program and an AF_XDP socket). The program is attached to the
// interface in generic (skb) mode with a BPF link, so it goes when this process ends.
// On loopback, frames sent through AF_XDP carry no route, so the interface must accept
// local sources: sysctl net.ipv4.conf.lo.accept_local=1 and route_localnet=1 (the script
// sets them inside a network namespace of its own).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FRAMES 2048 // every frame is on the fill ring, or carrying an answer back
#define FRAME 2048
#define RING 2048
#define BATCH 64

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }
static long bpf(int cmd, union bpf_attr *a) { return syscall(__NR_bpf, cmd, a, sizeof *a); }
static void die(const char *what) { perror(what); exit(1); }

struct ring { uint32_t *producer, *consumer; void *desc; };

static struct ring map_ring(int fd, struct xdp_ring_offset o, off_t pgoff, size_t desc_size) {
  char *m = mmap(NULL, o.desc + RING * desc_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
  if (m == MAP_FAILED) die("mmap ring");
  return (struct ring){ (uint32_t *)(m + o.producer), (uint32_t *)(m + o.consumer), m + o.desc };
}

static uint16_t ip_checksum(const uint8_t *h) {
  uint32_t s = 0;
  for (int i = 0; i < 20; i += 2) s += (uint32_t)h[i] << 8 | h[i + 1];
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

// XDP: IPv4 (no options) UDP to `port` goes to the AF_XDP socket of queue 0, the rest on.
static int load_program(int map, uint16_t port) {
  enum { PASS = 18 };
  struct bpf_insn p[] = {
    /* 0 */ { .code = BPF_LDX | BPF_W | BPF_MEM, .dst_reg = 2, .src_reg = 1, .off = 0 },  // data
    /* 1 */ { .code = BPF_LDX | BPF_W | BPF_MEM, .dst_reg = 3, .src_reg = 1, .off = 4 },  // data_end
    /* 2 */ { .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = 4, .src_reg = 2 },
    /* 3 */ { .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = 4, .imm = 42 },
    /* 4 */ { .code = BPF_JMP | BPF_JGT | BPF_X, .dst_reg = 4, .src_reg = 3, .off = PASS - 5 },
    /* 5 */ { .code = BPF_LDX | BPF_H | BPF_MEM, .dst_reg = 5, .src_reg = 2, .off = 12 },  // ethertype
    /* 6 */ { .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = 5, .imm = htons(0x0800), .off = PASS - 7 },
    /* 7 */ { .code = BPF_LDX | BPF_B | BPF_MEM, .dst_reg = 5, .src_reg = 2, .off = 14 },  // version, IHL
    /* 8 */ { .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = 5, .imm = 0x45, .off = PASS - 9 },
    /* 9 */ { .code = BPF_LDX | BPF_B | BPF_MEM, .dst_reg = 5, .src_reg = 2, .off = 23 },  // protocol
    /* 10 */ { .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = 5, .imm = 17, .off = PASS - 11 },
    /* 11 */ { .code = BPF_LDX | BPF_H | BPF_MEM, .dst_reg = 5, .src_reg = 2, .off = 36 }, // UDP dport
    /* 12 */ { .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = 5, .imm = htons(port), .off = PASS - 13 },
    /* 13 */ { .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = 1, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map },
    /* 14 */ { 0 },
    /* 15 */ { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 2, .imm = 0 },
    /* 16 */ { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 3, .imm = XDP_PASS },
    /* 17 */ { .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map },
    /* 18 */ { .code = BPF_JMP | BPF_EXIT },  // reached from 17 with r0 set; PASS jumps to 19
    /* 19 */ { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_PASS },
    /* 20 */ { .code = BPF_JMP | BPF_EXIT },
  };
  // The jumps above name PASS as the exit after the call; aim them one further, at 19.
  for (int i = 0; i < 13; i++)
    if (BPF_CLASS(p[i].code) == BPF_JMP) p[i].off += 1;
  static char log[65536];
  union bpf_attr a = { 0 };
  a.prog_type = BPF_PROG_TYPE_XDP;
  a.insns = (uintptr_t)p;
  a.insn_cnt = sizeof p / sizeof p[0];
  a.license = (uintptr_t)"GPL";
  a.log_buf = (uintptr_t)log;
  a.log_size = sizeof log;
  a.log_level = 1;
  int fd = bpf(BPF_PROG_LOAD, &a);
  if (fd < 0) { fprintf(stderr, "%s\n", log); die("BPF_PROG_LOAD"); }
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: xdp-floor IFINDEX PORT\n"); return 2; }
  int ifindex = atoi(argv[1]), port = atoi(argv[2]);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);

  union bpf_attr a = { 0 };
  a.map_type = BPF_MAP_TYPE_XSKMAP; a.key_size = 4; a.value_size = 4; a.max_entries = 1;
  int map = bpf(BPF_MAP_CREATE, &a);
  if (map < 0) die("BPF_MAP_CREATE");
  int program = load_program(map, (uint16_t)port);

  int fd = socket(AF_XDP, SOCK_RAW, 0);
  if (fd < 0) die("socket(AF_XDP)");
  uint8_t *umem = mmap(NULL, (size_t)FRAMES * FRAME, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (umem == MAP_FAILED) die("mmap umem");
  struct xdp_umem_reg reg = { .addr = (uintptr_t)umem, .len = (uint64_t)FRAMES * FRAME, .chunk_size = FRAME };
  if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg)) die("XDP_UMEM_REG");
  int size = RING;
  int opts[] = { XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING, XDP_TX_RING };
  for (int i = 0; i < 4; i++)
    if (setsockopt(fd, SOL_XDP, opts[i], &size, sizeof size)) die("ring size");
  struct xdp_mmap_offsets off;
  socklen_t len = sizeof off;
  if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len)) die("XDP_MMAP_OFFSETS");
  struct ring rx = map_ring(fd, off.rx, XDP_PGOFF_RX_RING, sizeof(struct xdp_desc));
  struct ring tx = map_ring(fd, off.tx, XDP_PGOFF_TX_RING, sizeof(struct xdp_desc));
  struct ring fill = map_ring(fd, off.fr, XDP_UMEM_PGOFF_FILL_RING, sizeof(uint64_t));
  struct ring done = map_ring(fd, off.cr, XDP_UMEM_PGOFF_COMPLETION_RING, sizeof(uint64_t));
  struct sockaddr_xdp sx = { .sxdp_family = AF_XDP, .sxdp_flags = XDP_COPY, .sxdp_ifindex = ifindex };
  if (bind(fd, (struct sockaddr *)&sx, sizeof sx)) die("bind AF_XDP");
  uint32_t key = 0;
  memset(&a, 0, sizeof a);
  a.map_fd = map; a.key = (uintptr_t)&key; a.value = (uintptr_t)&fd;
  if (bpf(BPF_MAP_UPDATE_ELEM, &a)) die("BPF_MAP_UPDATE_ELEM");
  memset(&a, 0, sizeof a);
  a.link_create.prog_fd = program;
  a.link_create.target_ifindex = ifindex;
  a.link_create.attach_type = BPF_XDP;
  a.link_create.flags = XDP_FLAGS_SKB_MODE;
  if (bpf(BPF_LINK_CREATE, &a) < 0) die("BPF_LINK_CREATE");

  uint64_t *fill_desc = fill.desc, *done_desc = done.desc;
  struct xdp_desc *rx_desc = rx.desc, *tx_desc = tx.desc;
  for (uint32_t i = 0; i < RING; i++) fill_desc[i] = (uint64_t)i * FRAME;
  uint32_t fill_at = RING, rx_at = 0, tx_at = 0, done_at = 0;
  __atomic_store_n(fill.producer, fill_at, __ATOMIC_RELEASE);
  fprintf(stderr, "ready\n");
  static const uint8_t answer[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 1, 1 };
  long answered = 0;
  struct pollfd wait = { .fd = fd, .events = POLLIN };
  while (!stop) {
    // Frames whose answers have gone out go back to the fill ring.
    for (uint32_t end = __atomic_load_n(done.producer, __ATOMIC_ACQUIRE); done_at != end; done_at++, fill_at++)
      fill_desc[fill_at % RING] = done_desc[done_at % RING];
    __atomic_store_n(done.consumer, done_at, __ATOMIC_RELEASE);
    __atomic_store_n(fill.producer, fill_at, __ATOMIC_RELEASE);
    uint32_t end = __atomic_load_n(rx.producer, __ATOMIC_ACQUIRE);
    if (end == rx_at) {
      if (poll(&wait, 1, 200) < 0 && errno != EINTR) die("poll");
      continue;
    }
    for (int n = 0; rx_at != end && n < BATCH; rx_at++, n++) {
      struct xdp_desc d = rx_desc[rx_at % RING];
      uint8_t *f = umem + d.addr, *ip = f + 14, *udp = ip + 20, *dns = udp + 8, t[6];
      int question = (int)d.len - 42;
      // The answer in place: addresses and ports swapped, QR and AA set, one A record.
      memcpy(t, f, 6); memcpy(f, f + 6, 6); memcpy(f + 6, t, 6);
      memcpy(t, ip + 12, 4); memcpy(ip + 12, ip + 16, 4); memcpy(ip + 16, t, 4);
      memcpy(t, udp, 2); memcpy(udp, udp + 2, 2); memcpy(udp + 2, t, 2);
      dns[2] = 0x84; dns[3] = 0; dns[6] = 0; dns[7] = 1;
      memcpy(dns + question, answer, sizeof answer);
      int payload = question + (int)sizeof answer;
      udp[4] = (uint8_t)((8 + payload) >> 8); udp[5] = (uint8_t)(8 + payload); udp[6] = udp[7] = 0;
      ip[2] = (uint8_t)((28 + payload) >> 8); ip[3] = (uint8_t)(28 + payload);
      ip[6] = 0x40; ip[7] = 0; ip[8] = 64; ip[10] = ip[11] = 0;
      uint16_t sum = ip_checksum(ip);
      ip[10] = (uint8_t)(sum >> 8); ip[11] = (uint8_t)sum;
      tx_desc[tx_at++ % RING] = (struct xdp_desc){ .addr = d.addr, .len = (uint32_t)(42 + payload) };
      answered++;
    }
    __atomic_store_n(rx.consumer, rx_at, __ATOMIC_RELEASE);
    __atomic_store_n(tx.producer, tx_at, __ATOMIC_RELEASE);
    // Copy mode sends only when asked.
    if (sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN && errno != ENOBUFS) die("sendto");
  }
  fprintf(stderr, "answered %ld\n", answered);
  return 0;
}
