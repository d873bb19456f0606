//! The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, ...), read from /proc at scrape time. prometheus-client has no
//! process collector and the crates that do pull in a second metrics library, so these
//! few lines of /proc parsing are ours. Linux only; elsewhere nothing is reported.

/// What one scrape reads of this process.
#[derive(Debug, Default)]
pub(super) struct Process {
    pub(super) cpu_seconds: f64,
    pub(super) resident_bytes: u64,
    pub(super) virtual_bytes: u64,
    pub(super) open_fds: u64,
    pub(super) max_fds: u64,
    pub(super) start_time_seconds: f64,
    pub(super) threads: u64,
}

pub(super) fn read() -> Option<Process> {
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if ticks <= 0 || page <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // proc(5) numbers from 1 with pid and comm as 1 and 2; `after` starts at field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let (utime, stime) = (field(14)?, field(15)?);
    let threads = field(20)?;
    let start_ticks = field(22)?;
    let virtual_bytes = field(23)?;
    let resident_pages = field(24)?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into `limit`, which is ours.
    let max_fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        0
    };
    Some(Process {
        cpu_seconds: (utime + stime) as f64 / ticks as f64,
        resident_bytes: resident_pages * page as u64,
        virtual_bytes,
        open_fds,
        max_fds,
        start_time_seconds: boot as f64 + start_ticks as f64 / ticks as f64,
        threads,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let p = super::read().expect("Linux /proc");
        assert!(p.resident_bytes > 1 << 20, "{p:?}");
        assert!(p.open_fds >= 3 && p.open_fds <= p.max_fds, "{p:?}");
        assert!(p.threads >= 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
