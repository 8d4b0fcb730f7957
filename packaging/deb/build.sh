#!/usr/bin/env bash
# npm run deb: builds build/imapproxy-ts_<version>_all.deb with dpkg-deb from the
# checkout (built JavaScript and the production dependencies of package-lock.json,
# copied from node_modules, so no network is needed). Prints the .deb's path last.
#   bash packaging/deb/build.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$PWD
here=$repo/packaging/deb
out=${1:-$repo/build}
version=$(node -p 'require("./package.json").version')
# Maintainer: DEBFULLNAME/DEBEMAIL as for dch, or the project's address.
maintainer="${DEBFULLNAME:-imapproxy-ts developers} <${DEBEMAIL:-imapproxy-ts@users.noreply.github.com}>"
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -b

stage=$(mktemp -d "${TMPDIR:-/tmp}/imapproxy-ts-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
lib=$root/usr/lib/imapproxy-ts
mkdir -p "$lib/bin" "$root/usr/sbin" "$root/etc" "$root/lib/systemd/system" \
  "$root/usr/share/man/man5" "$root/usr/share/man/man8" "$root/usr/share/doc/imapproxy-ts" "$root/DEBIAN"

# The program: the launchers and each workspace package's package.json and built
# JavaScript (no tests, no type declarations), in the checkout's layout.
cp bin/imapproxyd bin/imapproxyctl bin/pimpstat "$lib/bin/"
cp package.json "$lib/"
for ws in shared proxy pimpstat; do
  mkdir -p "$lib/packages/$ws"
  cp "packages/$ws/package.json" "$lib/packages/$ws/"
  (cd "packages/$ws" && find dist -name '*.js' ! -name '*.test.js' ! -path '*/test-helpers/*' -print0 |
    xargs -0 cp --parents -t "$lib/packages/$ws/")
  mkdir -p "$lib/node_modules/@imapproxy"
  ln -s "../../packages/$ws" "$lib/node_modules/@imapproxy/$ws"
done

# Production dependencies exactly as npm ci installed them (hoisted layout kept).
# A directory inside another one on the list comes with it.
mapfile -t deps < <(npm ls --omit=dev --all --parseable 2>/dev/null | sed "s|^$repo/||" | grep '^node_modules/' | grep -v '^node_modules/@imapproxy/' | sort -u)
for d in "${deps[@]}"; do
  parent=$d covered=
  while [[ $parent == */node_modules/* ]]; do
    parent=${parent%/node_modules/*}
    if printf '%s\n' "${deps[@]}" | grep -qxF "$parent"; then covered=1; break; fi
  done
  [ -n "$covered" ] || cp -a --parents "$d" "$lib/"
done
# What a running program does not need: documentation, tests, type declarations, sources maps, examples.
find "$lib/node_modules" \( -iname '*.md' -o -iname '*.markdown' -o -name '*.d.ts' -o -name '*.map' \
  -o -name '.npmignore' -o -name '.travis.yml' -o -name '.eslintrc*' -o -name '.jshintrc' -o -name '.editorconfig' \
  -o -name 'Makefile' -o -name '.gitattributes' -o -name '*.ts' -o -name '.github' -o -name 'AUTHORS' \
  -o -name '*.html' \) -prune -exec rm -rf {} +
find "$lib/node_modules" -type d \( -name test -o -name tests -o -name example -o -name examples -o -name docs -o -name doc \) -prune -exec rm -rf {} +
find "$lib/node_modules" -type d -empty -delete
# Modes: files 0644, except scripts with a #! line (the launchers, the command
# line tools of dependencies), which keep being executable.
find "$lib" -type f -exec chmod 0644 {} +
find "$lib" -type d -exec chmod 0755 {} +
find "$lib" -type f -exec awk 'FNR == 1 { if (/^#!/) print FILENAME; nextfile }' {} + | xargs -r -d '\n' chmod 0755

# Commands where Debian's imapproxy had them; imapproxyctl next to them in
# /usr/sbin: its socket is root's and proc_username's only (mode 0600).
for name in imapproxyd pimpstat imapproxyctl; do
  sed "s/@NAME@/$name/g" "$here/wrapper.in" > "$root/usr/sbin/$name"
  chmod 0755 "$root/usr/sbin/$name"
done

# /etc/imapproxy.conf: the sample config with the package's user and background mode.
sed -e 's/^proc_username nobody$/proc_username imapproxy/' -e 's/^proc_groupname nogroup$/proc_groupname imapproxy/' \
  -e 's/^foreground_mode yes$/foreground_mode no/' imapproxy.conf > "$root/etc/imapproxy.conf"
for want in 'proc_username imapproxy' 'proc_groupname imapproxy' 'foreground_mode no'; do
  grep -qx "$want" "$root/etc/imapproxy.conf" || { echo "build.sh: imapproxy.conf: could not set '$want'" >&2; exit 1; }
done
chmod 0644 "$root/etc/imapproxy.conf"
echo /etc/imapproxy.conf > "$root/DEBIAN/conffiles"

install -m 0644 "$here/imapproxy.service" "$root/lib/systemd/system/imapproxy.service"

# Manual pages, generated from the option table.
node packages/proxy/dist/man-pages.js "$stage/man"
for f in "$stage"/man/*; do
  name=$(basename "$f")
  gzip -9n < "$f" > "$root/usr/share/man/man${name##*.}/$name.gz"
done

doc=$root/usr/share/doc/imapproxy-ts
install -m 0644 "$here/copyright" "$doc/copyright"
{
  echo "imapproxy-ts ($version) unstable; urgency=medium"
  echo
  echo "  * Package built from the imapproxy-ts checkout (npm run deb)."
  echo
  echo " -- $maintainer  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
mkdir -p "$root/usr/share/lintian/overrides"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/imapproxy-ts"

for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
systemd_depends='init-system-helpers (>= 1.52)'
sed -e "s/@VERSION@/$version/" -e "s|@MAINTAINER@|$maintainer|" -e "s/@SIZE@/$size/" -e "s/@SYSTEMD_DEPENDS@/$systemd_depends/" "$here/control.in" > "$root/DEBIAN/control"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/imapproxy-ts_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
