#!/usr/bin/env bash
# Checks the Debian package built by build.sh: its contents and conffiles, then (as root,
# on a machine without Meridian installed) installs it with dpkg, checks the user, the
# permissions, the man page and the installed configuration, and purges it again.
set -euo pipefail
cd "$(dirname "$0")/../.."
deb=$(ls target/debian/meridian_*.deb | tail -1)
fail() { echo "package check failed: $*" >&2; exit 1; }

contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/meridian ./etc/meridian/meridian.yaml ./etc/meridian/zones/example.test.yaml \
  ./usr/lib/systemd/system/meridian.service ./usr/share/man/man1/meridian.1.gz \
  ./usr/share/bash-completion/completions/meridian ./usr/share/zsh/vendor-completions/_meridian \
  ./usr/share/fish/vendor_completions.d/meridian.fish; do
  grep -q " $path\$" <<<"$contents" || fail "$path is missing"
done
conffiles=$(dpkg-deb -f "$deb" Package >/dev/null && dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
for f in /etc/meridian/meridian.yaml /etc/meridian/zones/example.test.yaml; do
  grep -qx "$f" <<<"$conffiles" || fail "$f is not a conffile"
done
echo "contents and conffiles: ok"

if [ "$(id -u)" != 0 ] || dpkg -s meridian >/dev/null 2>&1; then
  echo "not root, or Meridian is installed already: skipping the install test"
  exit 0
fi
dpkg -i "$deb" >/dev/null
trap 'dpkg --purge meridian >/dev/null 2>&1 || true' EXIT
id meridian >/dev/null || fail "no meridian user"
[ "$(stat -c %G:%a /etc/meridian/meridian.yaml)" = meridian:640 ] || fail "meridian.yaml permissions"
/usr/bin/meridian --version
# The service user can read its configuration, and it is valid.
runuser -u meridian -- /usr/bin/meridian check --config /etc/meridian/meridian.yaml
# Without --config the installed file is found (from a directory without one).
(cd / && /usr/bin/meridian check) || fail "the installed server file is not found"
[ -n "$(man -w meridian 2>/dev/null)" ] || fail "man meridian finds no page"
# Serve as the unit does: the service user with CAP_NET_BIND_SERVICE as an ambient
# capability, on the installed configuration (127.0.0.1:53), unless port 53 is taken here.
if ! ss -Hlun 'sport = :53' | grep -q .; then
  setpriv --reuid meridian --regid meridian --init-groups \
    --inh-caps +net_bind_service --ambient-caps +net_bind_service \
    /usr/bin/meridian serve --config /etc/meridian/meridian.yaml 2>/tmp/meridian-installed.log &
  pid=$!
  answer=
  for _ in $(seq 50); do
    answer=$(dig @127.0.0.1 +short +time=1 +tries=1 www.example.test A 2>/dev/null || true)
    [ -n "$answer" ] && break
    sleep 0.2
  done
  kill "$pid"; wait "$pid" || true
  [ "$answer" = 192.0.2.10 ] || { cat /tmp/meridian-installed.log; fail "the installed server answered '$answer'"; }
  echo "served www.example.test as the meridian user on 127.0.0.1:53: ok"
fi
dpkg --purge meridian >/dev/null
[ ! -e /usr/bin/meridian ] && [ ! -e /etc/meridian/meridian.yaml ] || fail "purge left files"
echo "install, check as the service user, purge: ok"
