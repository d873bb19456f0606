//! systemd's readiness protocol (`Type=notify`, sd_notify(3)): READY=1 once the first
//! health round is done and the sockets answer, RELOADING=1 then READY=1 around every
//! reload, STOPPING=1 on the way out, and a STATUS= line that `systemctl status` shows.
//! Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.

use sd_notify::NotifyState;
use tracing::warn;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!("cannot notify systemd: {e}");
    }
}

pub(super) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub(super) fn reloading() {
    // systemd 253 and later want the time with RELOADING=1 (for Type=notify-reload);
    // older ones ignore it.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub(super) fn stopping() {
    send(&[NotifyState::Stopping]);
}
