#!/usr/bin/env bash
# Builds release binaries with the Swift runtime linked in statically and packs them as a Debian
# package, dist/bursar_VERSION_ARCH.deb (amd64 here):
#   /usr/bin/bursard, /usr/bin/bursarctl, /usr/bin/bursar-bench   (stripped)
#   /lib/systemd/system/bursard.service                           (deploy/systemd, hardened)
#   /etc/bursar/bursard.conf                                      (deploy/debian; a conffile)
#   /usr/share/doc/bursar/{README.md,SPEC.md,redis-production.conf}
#   /usr/share/doc/bursar/docs/{*.md,console/*.png}                (the README's links resolve there)
# VERSION is bursarVersion in Sources/BursarServer/Version.swift, the same string
# `bursard --version` prints (checked below). Depends: the Debian package owning every shared
# library the binaries still load (ldd, then dpkg -S: hiredis, glibc, libstdc++, libgcc),
# with libc6 at least the newest GLIBC_x.y symbol version they use, plus adduser (postinst makes
# the `bursar` system user). Recommends: redis-server (bursard's embedded store).
# The build goes to its own scratch path, .build-package (gitignored), away from the debug .build.
#
#   deploy/package.sh            → dist/bursar_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "package.sh: $*"; }
die() { echo "package.sh: error: $*" >&2; exit 1; }
bash deploy/install-deps.sh   # hiredis headers and pkg-config to build, binutils to strip
for tool in dpkg-deb dpkg ldd strip objdump; do
  command -v "$tool" >/dev/null || die "$tool is missing (dpkg, libc-bin, binutils)"
done

version=$(sed -n 's/^public let bursarVersion = "\(.*\)"$/\1/p' Sources/BursarServer/Version.swift)
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "no usable version in Sources/BursarServer/Version.swift: '$version'"
arch=$(dpkg --print-architecture)
products=(bursard bursarctl bursar-bench)
scratch=.build-package
log=$scratch/package-build.log
mkdir -p "$scratch"

say "building ${products[*]} (release, --static-swift-stdlib) in $scratch; log: $log"
: >"$log"
for product in "${products[@]}"; do
  start=$SECONDS
  swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product "$product" >>"$log" 2>&1 \
    || { tail -n 60 "$log" >&2; die "swift build of $product failed"; }
  say "  $product built ($((SECONDS - start)) s)"
done
bin=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" --show-bin-path)
built_version=$("$bin/bursard" --version)
[[ "$built_version" == *"$version"* ]] || die "bursard --version says '$built_version', Version.swift says $version"
if ldd "$bin/bursard" | grep -q 'libswift'; then die "bursard still links the Swift runtime dynamically"; fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/bursar" "$root/usr/share/doc/bursar"
for product in "${products[@]}"; do install -m 0755 -s "$bin/$product" "$root/usr/bin/$product"; done
install -m 0644 deploy/systemd/bursard.service "$root/lib/systemd/system/bursard.service"
install -m 0644 deploy/debian/bursard.conf "$root/etc/bursar/bursard.conf"
install -m 0644 deploy/redis/production.conf "$root/usr/share/doc/bursar/redis-production.conf"
install -m 0644 README.md "$root/usr/share/doc/bursar/README.md"
install -d -m 0755 "$root/usr/share/doc/bursar/docs" "$root/usr/share/doc/bursar/docs/console"
install -m 0644 docs/*.md "$root/usr/share/doc/bursar/docs/"
install -m 0644 docs/console/*.png "$root/usr/share/doc/bursar/docs/console/"   # six screenshots, under 1 MB
install -m 0644 proto/SPEC.md "$root/usr/share/doc/bursar/SPEC.md"

# Depends: the package of every shared library the binaries load. A library ldd cannot find,
# or one no package owns, stops the build: the package would not run where it is installed.
libs=$(for f in "$root"/usr/bin/*; do ldd "$f"; done)
if grep -q 'not found' <<<"$libs"; then die "unresolved libraries: $(grep 'not found' <<<"$libs" | sort -u | xargs)"; fi
depends=()
for lib in $(awk '/=> \// {print $3}' <<<"$libs" | sort -u); do
  owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null) || die "no package owns $lib"
  depends+=("${owner%%:*}")
done
mapfile -t depends < <(printf '%s\n' "${depends[@]}" | sort -u)
[[ " ${depends[*]} " == *" libhiredis"* ]] || die "the binaries do not link hiredis? packages: ${depends[*]}"
glibc=$(for f in "$root"/usr/bin/*; do objdump -T "$f"; done | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
depends_line=""
for p in "${depends[@]}"; do
  [[ "$p" == libc6 && -n "$glibc" ]] && p="libc6 (>= $glibc)"
  depends_line+="${depends_line:+, }$p"
done
depends_line+=", adduser"

cat >"$root/DEBIAN/control" <<CONTROL
Package: bursar
Version: $version
Architecture: $arch
Maintainer: bursar maintainers <bursar@example.invalid>
Section: net
Priority: optional
Depends: $depends_line
Recommends: redis-server
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: exact AI model access, rate and spend limits for AI gateways
 bursard answers CHECK/SETTLE/RELEASE frames from AI gateways: whether an
 API key may use a model now, reserving its tokens and cost against every
 key, project and organization limit in one atomic Redis step. bursarctl is
 the admin CLI; bursar-bench the load-test harness.
CONTROL
echo "/etc/bursar/bursard.conf" >"$root/DEBIAN/conffiles"

# Maintainer scripts, in the shape dh_installsystemd writes (deb-systemd-helper tracks whether
# the operator enabled the unit, deb-systemd-invoke honours policy-rc.d).
# postinst: the system user and group the unit runs as (kept on purge, as Debian policy advises:
# files it owned may remain); systemd learns the unit; an upgrade restarts a running bursard. A
# fresh install neither enables nor starts it: the operator edits /etc/bursar/bursard.conf first,
# then `systemctl enable --now bursard`.
cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd bursar >/dev/null; then
    adduser --quiet --system --group --home /var/lib/bursar --no-create-home --shell /usr/sbin/nologin bursar
  fi
  if command -v deb-systemd-helper >/dev/null; then
    # dh_installsystemd --no-enable: keep the operator's choice across upgrades, enable nothing.
    if deb-systemd-helper debian-installed bursard.service; then
      deb-systemd-helper unmask bursard.service >/dev/null || true
      if deb-systemd-helper --quiet was-enabled bursard.service; then
        deb-systemd-helper enable bursard.service >/dev/null || true
      fi
    fi
    deb-systemd-helper update-state bursard.service >/dev/null || true
  fi
  if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
    if [ -n "$2" ] && command -v deb-systemd-invoke >/dev/null; then
      deb-systemd-invoke try-restart bursard.service >/dev/null || true
    fi
  fi
fi
exit 0
POSTINST
# prerm: on removal (not on upgrade) stop bursard.
cat >"$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ] && command -v deb-systemd-invoke >/dev/null; then
  deb-systemd-invoke stop bursard.service >/dev/null || true
fi
exit 0
PRERM
# postrm: systemd forgets the unit; remove masks it (its enablement is remembered for a
# reinstall), purge forgets its enablement and deletes the state directory (the embedded store's
# AOF: every counter and key in it) and the runtime directory. dpkg itself removes the conffile.
cat >"$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl --system daemon-reload >/dev/null || true; fi
if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null; then
  deb-systemd-helper mask bursard.service >/dev/null || true
fi
if [ "$1" = purge ]; then
  if command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper purge bursard.service >/dev/null || true
    deb-systemd-helper unmask bursard.service >/dev/null || true
  fi
  rm -rf /var/lib/bursar /run/bursar
fi
exit 0
POSTRM
# A native package's changelog: one entry for this version, dated by the last commit.
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'bursar (%s) unstable; urgency=medium\n\n  * bursar %s, built from %s. What changed: the git history.\n\n -- bursar maintainers <bursar@example.invalid>  %s\n' \
  "$version" "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')" "$when" \
  | gzip -9n >"$root/usr/share/doc/bursar/changelog.gz"
chmod 0644 "$root/usr/share/doc/bursar/changelog.gz"
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p dist
deb=dist/bursar_${version}_${arch}.deb
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
say "$deb ($(du -h "$deb" | cut -f1)), version $version (Sources/BursarServer/Version.swift)"
say "Depends: $depends_line"
