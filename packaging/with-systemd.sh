#!/usr/bin/env bash
# Runs COMMAND on a machine where a real systemd manages services, so that
# maintainer scripts, `systemctl start/reload/stop` and the unit's sandbox are
# the real thing.
#
# Where systemd is PID 1 already, COMMAND just runs. Otherwise (a container or
# VM whose init is not systemd) this boots /lib/systemd/systemd as PID 1 of a
# new PID and mount namespace (unshare --pid --mount --mount-proc) and runs
# COMMAND inside it with nsenter. That systemd shares the machine's network,
# users and filesystem (the package is installed for real), with these
# differences, each to keep the host unharmed:
#  * a private tmpfs on /run (its own /run/systemd/system, private socket and
#    journal) and on /var/log/journal;
#  * its own cgroup (a child of the current one in every hierarchy), removed
#    afterwards;
#  * it starts only flowfold-sd.target (no dependencies); every unit that the
#    boot targets (sysinit, basic, network-online, ...) would pull in and that
#    would touch the shared machine — systemd-tmpfiles-setup wipes /tmp,
#    systemd-sysctl changes kernel settings, networking, udev, swaps, timers —
#    is masked (runtime masks in the private /run). A service started here
#    (flowfold.service) therefore gets sysinit.target without side effects.
#  * /usr/sbin/policy-rc.d, when present (Debian container images install one
#    that forbids every service action, exit 101), is hidden by one that allows
#    them: this namespace stands for a booted machine, where there is none.
# On exit (COMMAND's status is returned) systemd is killed with its whole PID
# namespace (COMMAND should stop what it started: a SIGKILL is no flush) and its
# cgroups are removed.
#
# Usage: packaging/with-systemd.sh COMMAND [ARG...]     (needs root)
# Exit status 77 (nothing run) when systemd cannot be started here; the reason
# is printed.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: with-systemd.sh COMMAND [ARG...]" >&2; exit 2; }
say() { echo "with-systemd: $*" >&2; }

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && [ -d /run/systemd/system ]; then
  exec "$@"
fi
[ "$(id -u)" -eq 0 ] || { say "needs root"; exit 77; }
[ -x /lib/systemd/systemd ] || { say "no /lib/systemd/systemd"; exit 77; }

name="flowfold-sd-$$"
state=$(mktemp -d /tmp/flowfold-sd.XXXXXX)
ns_init=""
unshare_pid=""

cleanup() {
  local rc=$?
  if [ -n "$ns_init" ] && kill -0 "$ns_init" 2>/dev/null; then
    kill -KILL "$ns_init" 2>/dev/null || true  # the namespace's PID 1: every process in it dies
  fi
  [ -n "$unshare_pid" ] && wait "$unshare_pid" 2>/dev/null || true
  if [ -f "$state/cgroups" ]; then
    local d tries
    while read -r d; do
      for tries in $(seq 50); do
        [ -d "$d" ] || break
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ -d "$d" ] || break
        sleep 0.1
      done
      [ ! -d "$d" ] || say "could not remove cgroup $d"
    done < "$state/cgroups"
  fi
  if [ -s "$state/log" ] && [ "$rc" -ne 0 ]; then
    say "systemd's console output:"; tail -20 "$state/log" >&2
  fi
  rm -rf "$state"
  return "$rc"
}
trap cleanup EXIT

# The inside of the namespace, before systemd takes over as PID 1.
cat > "$state/init.sh" <<'EOF'
#!/bin/sh
set -e
name="$1" state="$2"
# Our own cgroup in every hierarchy, a child of the current one.
while IFS=: read -r _ ctrls path; do
  if [ -z "$ctrls" ]; then
    mnt=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
  else
    mnt=$(awk -v want="$ctrls" '$3 == "cgroup" {
            n = split(want, w, ","); split($4, o, ","); ok = 1
            for (i = 1; i <= n; i++) { f = 0; for (j in o) if (o[j] == w[i]) f = 1; if (!f) ok = 0 }
            if (ok) {print $2; exit} }' /proc/mounts)
  fi
  [ -n "$mnt" ] || continue
  dir="$mnt${path%/}/$name"
  mkdir "$dir"
  echo "$dir" >> "$state/cgroups"
  for f in cpuset.cpus cpuset.mems; do  # a v1 cpuset takes no process until these are set
    [ ! -f "$dir/$f" ] || cat "$dir/../$f" > "$dir/$f"
  done
  echo 0 > "$dir/cgroup.procs"   # 0: this process
done < /proc/self/cgroup
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/lock /run/systemd/system /run/systemd/system.control
[ ! -d /var/log/journal ] || mount -t tmpfs -o mode=2755 tmpfs /var/log/journal
if [ -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# with-systemd.sh: a booted machine has no policy-rc.d\nexit 0\n' > /run/policy-rc.d
  chmod 0755 /run/policy-rc.d
  mount --bind /run/policy-rc.d /usr/sbin/policy-rc.d
fi
cat > /run/systemd/system/flowfold-sd.target <<T
[Unit]
Description=with-systemd.sh: nothing but the manager
DefaultDependencies=no
T
touch "$state/ready"
exec env -i container=flowfold-sd PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system --unit=flowfold-sd.target --show-status=no --log-target=console
EOF
chmod 0755 "$state/init.sh"
unshare --pid --fork --mount --mount-proc --propagation private -- "$state/init.sh" "$name" "$state" \
  > "$state/log" 2>&1 < /dev/null &
unshare_pid=$!
for _ in $(seq 100); do
  ns_init=$(ps -o pid= --ppid "$unshare_pid" 2>/dev/null | tr -d ' ' || true)
  [ -n "$ns_init" ] && [ -e "$state/ready" ] && break
  kill -0 "$unshare_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$ns_init" ] || { say "the namespace did not start: $(cat "$state/log")"; exit 77; }
inside() { nsenter -t "$ns_init" -m -p -- "$@"; }
up=""
for _ in $(seq 150); do
  up=$(inside systemctl is-system-running 2>/dev/null || true)
  case "$up" in running|degraded) break ;; esac
  kill -0 "$ns_init" 2>/dev/null || break
  sleep 0.2
done
case "$up" in
  running|degraded) ;;
  *) say "systemd did not come up (is-system-running: ${up:-no answer}): $(tail -5 "$state/log")"; exit 77 ;;
esac

# Mask what booting would run on the shared machine. Kept: targets, slices,
# the journal (into the private /run; not its /dev/log socket, which links the shared /dev/log) and mount units (they act on this mount
# namespace only).
deps=$(inside systemctl list-dependencies --plain --all --no-legend --no-pager \
         sysinit.target basic.target network.target network-online.target multi-user.target 2>/dev/null \
       | sed 's/^[[:space:]]*//; s/^[^[:alnum:]]* *//' | sort -u)
masked=0
for u in $deps; do
  case "$u" in
    *.target|*.slice|*.device|*.mount|*.scope) continue ;;
    systemd-journald.service|systemd-journald.socket) continue ;;  # not -dev-log: it links /dev/log (shared)
    flowfold.service|flowfold@*) continue ;;
  esac
  inside ln -sf /dev/null "/run/systemd/system.control/$u"
  masked=$((masked + 1))
done
inside systemctl daemon-reload
say "systemd $(inside systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p') is PID 1 of a PID namespace (host PID $ns_init); $masked boot units masked"

set +e
inside env -C "$PWD" "$@"
rc=$?
set -e
exit "$rc"
