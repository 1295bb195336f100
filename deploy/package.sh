#!/usr/bin/env bash
# Builds release binaries with the Swift runtime linked in statically and packs them as a Debian
# package: dist/bursar_VERSION_amd64.deb with bursard, bursarctl and bursar-bench in /usr/bin, the
# hardened systemd unit, a default /etc/bursar/bursard.conf (a conffile), a production redis.conf
# fragment in /usr/share/doc/bursar, and a `bursar` system user made on install.
# Depends on the shared libraries the binaries still link (hiredis, glibc, libstdc++…), found by
# asking dpkg which package owns each; recommends redis-server (the embedded store).
#
#   deploy/package.sh            → dist/bursar_<version>_amd64.deb
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^public let bursarVersion = "\(.*\)"$/\1/p' Sources/BursarServer/Version.swift)
[[ -n "$version" ]] || { echo "package.sh: no version in Sources/BursarServer/Version.swift" >&2; exit 1; }
arch=$(dpkg --print-architecture)
scratch=.build-package
for product in bursard bursarctl bursar-bench; do
  swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product "$product" >/dev/null
done
bin=$scratch/release

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/bursar" "$root/usr/share/doc/bursar"
for product in bursard bursarctl bursar-bench; do install -m 0755 -s "$bin/$product" "$root/usr/bin/$product"; done
install -m 0644 deploy/systemd/bursard.service "$root/lib/systemd/system/bursard.service"
install -m 0644 deploy/debian/bursard.conf "$root/etc/bursar/bursard.conf"
install -m 0644 deploy/redis/production.conf "$root/usr/share/doc/bursar/redis-production.conf"
install -m 0644 README.md "$root/usr/share/doc/bursar/README.md"
install -m 0644 proto/SPEC.md "$root/usr/share/doc/bursar/SPEC.md"

# Depends: the package of every shared library the binaries load.
depends=$(for f in "$root"/usr/bin/*; do ldd "$f"; done | awk '/=> \// {print $3}' | sort -u \
  | while read -r lib; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true; done \
  | cut -d: -f1 | sort -u | paste -sd, - | sed 's/,/, /g')
[[ "$depends" == *libhiredis* ]] || { echo "package.sh: the binaries do not link hiredis? depends: $depends" >&2; exit 1; }

cat >"$root/DEBIAN/control" <<CONTROL
Package: bursar
Version: $version
Architecture: $arch
Maintainer: bursar maintainers <bursar@example.invalid>
Section: net
Priority: optional
Depends: $depends, adduser
Recommends: redis-server
Installed-Size: $(du -sk "$root" | cut -f1)
Description: exact AI model access, rate and spend limits for AI gateways
 bursard answers CHECK/SETTLE/RELEASE frames from AI gateways: whether an API key may use a
 model now, reserving its tokens and cost against every key, project and organization limit in
 one atomic Redis step. bursarctl is the admin CLI; bursar-bench the load-test harness.
CONTROL
echo "/etc/bursar/bursard.conf" >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  getent group bursar >/dev/null || addgroup --system bursar
  getent passwd bursar >/dev/null || adduser --system --ingroup bursar --home /var/lib/bursar --no-create-home --shell /usr/sbin/nologin bursar
  if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
fi
POSTINST
cat >"$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"

mkdir -p dist
deb=dist/bursar_${version}_${arch}.deb
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "package.sh: $deb ($(du -h "$deb" | cut -f1)); Depends: $depends, adduser"
