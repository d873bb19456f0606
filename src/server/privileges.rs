//! Dropping root: once the listeners are bound and the ICMP sockets open, the process
//! switches to the configured user and group for good, as Knot and NSD do.

use std::io;

use crate::config::RunAs;

/// Switches every thread of the process to `run_as` (glibc applies set*id to all threads),
/// with no supplementary groups. A no-op, with a note, when not running as root.
pub fn drop_to(run_as: &RunAs) -> io::Result<bool> {
    // SAFETY: plain system calls on integers; each result is checked.
    unsafe {
        if libc::geteuid() != 0 {
            return Ok(false);
        }
        let groups = [run_as.gid];
        if libc::setgroups(1, groups.as_ptr()) != 0
            || libc::setgid(run_as.gid) != 0
            || libc::setuid(run_as.uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
        // Had anything been left (a saved set-user-ID of 0), this would succeed.
        if libc::setuid(0) == 0 {
            return Err(io::Error::other("root could be regained after dropping it"));
        }
    }
    Ok(true)
}
