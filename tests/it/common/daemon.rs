//! A reference DNS server a test starts (knotd, named, nsd): its own directory, its
//! address, and its log; killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `cmd` (configured to use `dir`, serve on `addr` and log to `log`). A program
    /// that only logs to stderr gets it written to `log`. Panics, naming the Debian
    /// package to install, when the program is missing.
    pub fn spawn(
        mut cmd: Command,
        dir: tempfile::TempDir,
        addr: SocketAddr,
        log: PathBuf,
        stderr_to_log: bool,
        package: &str,
    ) -> Daemon {
        let stderr = if stderr_to_log {
            Stdio::from(std::fs::File::create(&log).unwrap())
        } else {
            Stdio::null()
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e} (Debian package {package})"));
        Daemon {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
