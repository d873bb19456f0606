//! Shared test harness: a real Meridian on 127.0.0.1 with an ephemeral port, a small DNS
//! client over real UDP and TCP sockets, the `meridian` binary, and polling.

pub mod backend;
pub mod daemon;
pub mod netns;
pub mod vault;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use meridian::server::Running;
use meridian::state::Meridian;
use tokio::runtime::Runtime;

pub const TIMEOUT: Duration = Duration::from_secs(3);

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    rt: Runtime,
    running: Option<Running>,
}

/// Writes a server file listening on 127.0.0.1:0 and the given zone files into a fresh
/// directory. Returns the directory and the server file's path.
pub fn write_config(zones: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    write_config_with("", zones)
}

/// Like `write_config`, with more lines for the server file (e.g. `geoip: ...`).
pub fn write_config_with(
    server_extra: &str,
    zones: &[(&str, &str)],
) -> (tempfile::TempDir, PathBuf) {
    write_config_listening("[127.0.0.1:0]", server_extra, zones)
}

/// Like `write_config_with`, listening on `listen` (a YAML list).
pub fn write_config_listening(
    listen: &str,
    server_extra: &str,
    zones: &[(&str, &str)],
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    for (file, text) in zones {
        std::fs::write(dir.path().join("zones").join(file), text).unwrap();
    }
    let server = dir.path().join("meridian.yaml");
    std::fs::write(
        &server,
        format!("listen: {listen}\nzones: zones\n{server_extra}"),
    )
    .unwrap();
    (dir, server)
}

/// Starts a server on the given zone files.
pub fn start(zones: &[(&str, &str)]) -> TestServer {
    let (dir, file) = write_config(zones);
    start_with(dir, &file)
}

pub fn start_with(dir: tempfile::TempDir, server_file: &Path) -> TestServer {
    let mut config = meridian::config::load(server_file).unwrap_or_else(|e| panic!("config: {e}"));
    // As `meridian serve` does: signed zones get their keys.
    meridian::state::create_keys(&mut config).unwrap_or_else(|e| panic!("keys: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = rt
        .block_on(meridian::server::start(config))
        .expect("server starts");
    TestServer {
        addr: running.addrs[0],
        dir,
        rt,
        running: Some(running),
    }
}

/// A running state without sockets or threads of its own, for in-process tests of the
/// decision path and both answer paths.
pub struct InProcess {
    pub state: Meridian,
    pub rt: Runtime,
    _dir: tempfile::TempDir,
}

pub fn in_process(zones: &[(&str, &str)]) -> InProcess {
    let (dir, file) = write_config(zones);
    let mut config = meridian::config::load(&file).unwrap_or_else(|e| panic!("config: {e}"));
    meridian::state::create_keys(&mut config).unwrap_or_else(|e| panic!("keys: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let state = Meridian::new(&config, Vec::new());
    rt.block_on(state.apply(config));
    InProcess {
        state,
        rt,
        _dir: dir,
    }
}

impl InProcess {
    /// The directory of its server file (and `zones/`).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl TestServer {
    /// The admin API's address (the server file must configure `admin:`).
    pub fn admin(&self) -> SocketAddr {
        self.running().admin.expect("admin API configured")
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    /// The running state, to drive its answer paths in-process.
    pub fn state(&self) -> &Meridian {
        &self.running().meridian
    }

    /// Runs a future on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn udp(&self, msg: &Message) -> Message {
        udp_exchange(self.addr, msg)
    }

    pub fn tcp(&self, msg: &Message) -> Message {
        tcp_exchange(self.addr, msg)
    }

    /// A query with EDNS (buffer 1232) over UDP.
    pub fn ask(&self, name: &str, rtype: RecordType) -> Message {
        self.udp(&query(name, rtype))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

/// A query for `name`/`rtype` with RD clear and an EDNS OPT offering 1232 bytes.
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = plain_query(name, rtype);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

/// A query without EDNS.
pub fn plain_query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

pub fn udp_exchange(addr: SocketAddr, msg: &Message) -> Message {
    let bytes = udp_raw(addr, &msg.to_vec().unwrap()).expect("a UDP response");
    let resp = Message::from_vec(&bytes).expect("a parsable response");
    assert_eq!(
        resp.metadata.id, msg.metadata.id,
        "response id matches the query"
    );
    resp
}

/// Sends raw bytes over UDP; the reply bytes, or None after the timeout.
pub fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    udp_raw_from("127.0.0.1".parse().unwrap(), addr, bytes)
}

/// A query sent from a chosen source address (any 127.x works on Linux).
pub fn udp_exchange_from(src: std::net::IpAddr, addr: SocketAddr, msg: &Message) -> Message {
    let bytes = udp_raw_from(src, addr, &msg.to_vec().unwrap()).expect("a UDP response");
    Message::from_vec(&bytes).expect("a parsable response")
}

pub fn udp_raw_from(src: std::net::IpAddr, addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    try_udp_from(src, addr, bytes, TIMEOUT)
}

pub fn tcp_exchange(addr: SocketAddr, msg: &Message) -> Message {
    Message::from_vec(&tcp_raw(addr, &msg.to_vec().unwrap())).unwrap()
}

/// Sends one message over a fresh TCP connection; the reply's bytes.
pub fn tcp_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    tcp_raw_from("127.0.0.1".parse().unwrap(), addr, bytes)
}

/// Like `tcp_raw_from`, but `None` when no reply comes within `wait`.
pub fn try_tcp_from(
    src: std::net::IpAddr,
    addr: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.bind(&SocketAddr::new(src, 0).into()).ok()?;
    socket.connect_timeout(&addr.into(), TIMEOUT).ok()?;
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(wait)).ok()?;
    stream.write_all(&(bytes.len() as u16).to_be_bytes()).ok()?;
    stream.write_all(bytes).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Sends raw bytes over UDP from `src`; the reply, or `None` after `wait`.
pub fn try_udp_from(
    src: std::net::IpAddr,
    addr: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((src, 0)).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(bytes, addr).unwrap();
    let mut buf = [0u8; 65535];
    sock.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| buf[..n].to_vec())
}

/// Like `tcp_raw`, from a chosen source address (any 127.x works on Linux).
pub fn tcp_raw_from(src: std::net::IpAddr, addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(src, 0).into()).unwrap();
    socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).unwrap();
    buf
}

/// The addresses in the answer section, in order.
pub fn addresses(msg: &Message) -> Vec<String> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            RData::AAAA(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

pub fn assert_rcode(msg: &Message, rcode: ResponseCode) {
    assert_eq!(msg.metadata.response_code, rcode, "rcode of {msg:?}");
}

/// A `meridian serve` child process and what it logged so far.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `meridian serve` binary and waits for the log line naming the bound address.
pub fn serve(config: &Path) -> Served {
    spawn_serve(Command::new(env!("CARGO_BIN_EXE_meridian")), config)
}

/// Like `serve`, with the open file limit (soft and hard) set to `files`, as
/// `ulimit -n` would.
pub fn serve_limited(config: &Path, files: u64) -> Served {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meridian"));
    // SAFETY: setrlimit is async-signal-safe and touches nothing but the child's limit.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    spawn_serve(cmd, config)
}

/// Starts `meridian serve --config CONFIG` from a prepared command (environment, working
/// directory).
pub fn serve_command(cmd: Command, config: &Path) -> Served {
    spawn_serve(cmd, config)
}

fn spawn_serve(mut cmd: Command, config: &Path) -> Served {
    cmd.args(["serve", "--config"]).arg(config);
    serve_command_with_args(cmd, &[])
}

/// Starts a prepared `meridian` command with these arguments, and waits for the log line
/// naming the bound address.
pub fn serve_command_with_args(mut cmd: Command, args: &[&str]) -> Served {
    let mut child = cmd.args(args).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on UDP and TCP addr=").nth(1) {
                let _ = tx.send(rest.trim().parse::<SocketAddr>().unwrap());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server listens");
    Served { child, addr, log }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Polls `f` every 10 ms until it returns true, for at most `limit`; returns how long it
/// took.
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// Calls `f` every 20 ms for `span` (it asserts what must hold all along).
pub fn throughout(span: Duration, mut f: impl FnMut()) {
    let until = std::time::Instant::now() + span;
    while std::time::Instant::now() < until {
        f();
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `meridian` binary to completion: (exit code, stdout, stderr).
pub fn run_meridian(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces a file the way editors and deploy tools do: write a temporary file, rename.
pub fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
/// A query with EDNS carrying a Client Subnet option (`81.2.69.142/24`).
pub fn ecs_query(name: &str, rtype: RecordType, subnet: &str) -> Message {
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    let (addr, prefix) = subnet.split_once('/').unwrap();
    let prefix: u8 = prefix.parse().unwrap();
    let net = ipnet::IpNet::new(addr.parse().unwrap(), prefix).unwrap();
    let mut m = query(name, rtype);
    let mut edns = m.edns.take().unwrap();
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            net.network(),
            prefix,
            0,
        )));
    m.set_edns(edns);
    m
}

/// The Client Subnet option of a response: (address, source prefix, scope prefix).
pub fn ecs_of(msg: &Message) -> Option<(std::net::IpAddr, u8, u8)> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match msg.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.addr(), s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

/// A file in the repository's geoip/ directory.
pub fn geoip_file(name: &str) -> PathBuf {
    repo().join("geoip").join(name)
}

/// A member's entry in `/status`, by name and address.
pub fn status_member<'a>(
    status: &'a serde_json::Value,
    name: &str,
    address: &str,
) -> &'a serde_json::Value {
    status["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .and_then(|n| {
            n["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["address"] == address)
        })
        .unwrap_or_else(|| panic!("{name} {address} in {status}"))
}
