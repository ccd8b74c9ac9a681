#!/usr/bin/env bash
# Builds the .deb and .rpm from a configured build tree and checks them the way
# an operator meets them: lintian, rpm queries and a scratch-root install, then
# `apt-get install ./flowfold_*.deb` on this machine, the installed binary run
# as the flowfold user and under the unit's sandbox with every exporter type,
# the units verified, a purge that leaves nothing but the kept account; then
# packaging/README.md's walkthrough, with upgrades, under a real systemd.
# Usage: packaging/test-package.sh BUILD_DIR      (needs root)
set -euo pipefail
build="$(cd "${1:?usage: test-package.sh BUILD_DIR}" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

[ "$(id -u)" -eq 0 ] || { echo "test-package: needs root, skipped"; exit 0; }
cd "$build"
rm -f flowfold_*.deb flowfold-*.rpm
step "cpack: .deb and .rpm"
cpack -G "DEB;RPM" >/dev/null 2>cpack.log || { cat cpack.log; fail "cpack"; }
deb=$(ls flowfold_*_amd64.deb) rpmfile=$(ls flowfold-*.rpm)
echo "built $deb $rpmfile"

step "lintian $deb"
# Accepted warnings (see packaging/README.md): initial-upload-closes-no-bugs
# (not an upload to Debian), maintainer-script-calls-systemctl (prerm stops
# template instances flowfold@*.service, which deb-systemd-invoke cannot glob).
lint=$(lintian --suppress-tags initial-upload-closes-no-bugs,maintainer-script-calls-systemctl "$deb" 2>&1 \
       | grep -v 'running with root privileges' || true)
echo "${lint:-lintian: clean}"
if echo "$lint" | grep -q '^E:'; then fail "lintian reports errors"; fi

step "rpm -qpil / -qpR $rpmfile"
rpm -qpil "$rpmfile" | grep -E '^(Name|Version|License|URL)' 
files=$(rpm -qpl "$rpmfile")
for f in /usr/sbin/flowfold /etc/flowfold/flowfold.yaml /lib/systemd/system/flowfold.service \
         /lib/systemd/system/flowfold@.service /usr/share/man/man8/flowfold.8.gz /usr/share/man/man5/flowfold.yaml.5.gz; do
  echo "$files" | grep -qx "$f" || fail "rpm lacks $f"
done
[ "$(rpm -qpc "$rpmfile")" = "/etc/flowfold/flowfold.yaml" ] || fail "rpm: only the configuration is %config"
reqs=$(rpm -qpR "$rpmfile")
for r in 'libpcap.so.0.8()(64bit)' 'libfixbuf.so.9()(64bit)' 'libyaml-cpp.so.0.7()(64bit)'; do
  echo "$reqs" | grep -qF "$r" || fail "rpm requires lacks $r"
done
echo "rpm requires: $(echo "$reqs" | grep -c .) entries, including libpcap, libfixbuf, libyaml-cpp"

step "maintainer scripts and rpm scriptlets: sh -n"
for f in "$here"/debian/postinst "$here"/debian/prerm "$here"/debian/postrm "$here"/rpm/post "$here"/rpm/preun "$here"/rpm/postun; do
  sh -n "$f" || fail "$f: syntax"
done
# The rpm carries them verbatim (their logic is run against a real systemd by test_walkthrough.py).
scripts=$(rpm -qp --scripts "$rpmfile")
grep -q 'systemctl try-restart flowfold.service' <<<"$scripts" || fail "the rpm's %postun does not try-restart"
if grep -Eq 'userdel|groupdel' <<<"$scripts"; then fail "an rpm scriptlet deletes the account"; fi
echo "6 scripts parse; the rpm's %postun try-restarts on upgrade and no scriptlet deletes the account"

step "rpm --root scratch install"
# A scratch root has no RPM-packaged glibc or /bin/sh: dependencies cannot be
# resolved and scriptlets cannot run there, so the install is --nodeps --noscripts.
root=$(mktemp -d)
rpm --root "$root" --initdb
rpm --root "$root" -i --nodeps --noscripts "$rpmfile"
[ -x "$root/usr/sbin/flowfold" ] && [ -f "$root/etc/flowfold/flowfold.yaml" ] || fail "rpm --root install incomplete"
rpm --root "$root" -q flowfold
rm -rf "$root"

step "apt-get install ./$deb"
export DEBIAN_FRONTEND=noninteractive
uid_before=$(id -u flowfold 2>/dev/null || true)
apt-get install -y -qq "./$deb" >/dev/null
dpkg -s flowfold | grep -E '^(Status|Version)'
/usr/sbin/flowfold --version
/usr/sbin/flowfold --check-config /etc/flowfold/flowfold.yaml
id flowfold
if [ -n "$uid_before" ]; then
  [ "$(id -u flowfold)" = "$uid_before" ] || fail "the install did not reuse the kept flowfold account (uid $uid_before)"
  echo "the kept flowfold account (uid $uid_before) was reused"
fi
[ "$(stat -c %U /var/lib/flowfold)" = flowfold ] || fail "/var/lib/flowfold is not owned by flowfold"
conf_mode=$(stat -c '%U:%G %a' /etc/flowfold/flowfold.yaml)
[ "$conf_mode" = "root:flowfold 640" ] || fail "/etc/flowfold/flowfold.yaml is $conf_mode, not root:flowfold 640 (it may hold a password)"
grep -qx /etc/flowfold/flowfold.yaml /var/lib/dpkg/info/flowfold.conffiles || fail "not a conffile"
if systemctl is-enabled flowfold.service >/dev/null 2>&1; then fail "the service was enabled without being asked"; fi

step "the installed binary over a capture, as the flowfold user"
sample=/usr/share/doc/flowfold/examples/captures/sample.pcap
out=$(runuser -u flowfold -- /usr/sbin/flowfold -r "$sample" --json 2>/dev/null)
packets=$(echo "$out" | awk -F'"packets":' 'NF>1 {split($2,a,","); s+=a[1]} END {print s+0}')
want=$(awk -F'\t' '{s+=$7} END {print s}' "$here/../examples/captures/sample.truth.tsv")
[ "$packets" = "$want" ] || fail "flows carry $packets packets, the sample holds $want"
echo "flowfold (uid flowfold) exported $(echo "$out" | wc -l) flows carrying $packets of $want packets"

step "live capture as root: run_as_root keeps root, otherwise flowfold (the account exists now)"
# On loopback for ~1.5 s each; the log says which user it ended as.
live_conf=$(mktemp -d /run/flowfold-live.XXXXXX)
printf 'input:\n  interface: lo\nexporters:\n  - type: json\n    path: /dev/null\nrun_as_root: true\n' > "$live_conf/root.yaml"
printf 'input:\n  interface: lo\nexporters:\n  - type: json\n    path: /dev/null\n' > "$live_conf/drop.yaml"
for c in root drop; do
  /usr/sbin/flowfold -c "$live_conf/$c.yaml" > /dev/null 2> "$live_conf/$c.log" & pid=$!
  for _ in $(seq 50); do grep -Eq 'running as root|now running as' "$live_conf/$c.log" && break; sleep 0.1; done
  uid_running=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo gone)
  kill -TERM "$pid"; wait "$pid" || fail "live $c run exited $?: $(cat "$live_conf/$c.log")"
  echo "$c: uid $uid_running: $(grep -E 'running as root|now running as' "$live_conf/$c.log" | head -1)"
  case "$c" in
    root) grep -q 'running as root (run_as_root: true)' "$live_conf/root.log" \
            && [ "$uid_running" = 0 ] || fail "run_as_root: true did not stay root" ;;
    drop) grep -q 'now running as user flowfold' "$live_conf/drop.log" && [ "$uid_running" = "$(id -u flowfold)" ] \
            || fail "without run_as_root the live run did not become flowfold" ;;
  esac
done
rm -rf "$live_conf"

step "every exporter type as the unit runs it (its user, capabilities and ProtectSystem=strict sandbox)"
# Reads the installed unit file; a mount namespace laid out as its sandbox;
# IPFIX UDP/TCP/file, NetFlow v9, text, JSON and MySQL (default spool) each
# checked against the sample's truth. See packaging/test_unit_sandbox.py.
/usr/bin/python3 "$here/test_unit_sandbox.py" || fail "flowfold under the unit's sandbox"

step "systemd-analyze verify and security"
systemd-analyze verify --man=no /lib/systemd/system/flowfold.service
cp /lib/systemd/system/flowfold@.service /tmp/flowfold@eth1.service
systemd-analyze verify --man=no /tmp/flowfold@eth1.service 2>&1 | grep -v 'sys-subsystem-net-devices' || true
rm -f /tmp/flowfold@eth1.service
systemd-analyze security --offline=true /lib/systemd/system/flowfold.service 2>/dev/null | tail -1 || true

step "an upgrade keeps local edits of the configuration"
echo "# local edit kept by upgrades" >> /etc/flowfold/flowfold.yaml
apt-get install -y -qq --reinstall -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "./$deb" >/dev/null
grep -q "local edit kept by upgrades" /etc/flowfold/flowfold.yaml || fail "reinstall overwrote the edited conffile"
[ "$(stat -c '%U:%G %a' /etc/flowfold/flowfold.yaml)" = "root:flowfold 640" ] || fail "a reinstall changed the configuration's mode"
echo "edited /etc/flowfold/flowfold.yaml survived a reinstall"

step "apt-get purge flowfold"
apt-get purge -y -qq flowfold >/dev/null
for p in /usr/sbin/flowfold /etc/flowfold /var/lib/flowfold /var/spool/flowfold /var/log/flowfold \
         /lib/systemd/system/flowfold.service /usr/share/doc/flowfold /usr/share/man/man8/flowfold.8.gz; do
  [ ! -e "$p" ] || fail "$p is left behind after purge"
done
# Debian practice: a system account is never deleted (files it owned may remain).
getent passwd flowfold >/dev/null && getent group flowfold >/dev/null || fail "purge deleted the flowfold account or group"
echo "the flowfold account is kept: $(id flowfold)"
if dpkg -s flowfold >/dev/null 2>&1; then fail "dpkg still knows flowfold"; fi
ls /var/lib/systemd/deb-systemd-helper-enabled 2>/dev/null | grep -q flowfold && fail "deb-systemd-helper state left behind"

step "README walkthrough under a real systemd, upgrades $(dpkg-deb -f "$deb" Version) -> +1 -> +2"
# Higher releases of the same tree: cpack's release override (packaging/CMakeLists.txt).
release=$(dpkg-deb -f "$deb" Version); release=${release##*-}
next=()
for r in $((release + 1)) $((release + 2)); do
  rm -rf "pkg-release-$r"
  cpack -G DEB -D CPACK_DEBIAN_PACKAGE_RELEASE=$r -B "$build/pkg-release-$r" >/dev/null 2>>cpack.log || { cat cpack.log; fail "cpack release $r"; }
  next+=("$(ls "$build/pkg-release-$r"/flowfold_*-"$r"_amd64.deb)")
done
bash "$here/with-systemd.sh" /usr/bin/python3 "$here/test_walkthrough.py" "$build/$deb" "${next[@]}" \
  || fail "the README walkthrough (exit $?; 77: no systemd could be run here)"
echo "test-package: 1 passed, 0 failed"
