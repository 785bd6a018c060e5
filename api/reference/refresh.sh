#!/usr/bin/env bash
# Replaces the Swagger UI bundle in swagger-ui/ with the given npm release
# (default: the one in swagger-ui/PACKAGE), after checking the tarball
# against the integrity the npm registry publishes for it.
# Usage: api/reference/refresh.sh [swagger-ui-dist@VERSION]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/swagger-ui"
spec="${1:-$(awk '{print $1}' "$dest/PACKAGE")}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Resolve a range or tag to the exact version, so PACKAGE pins one release.
version="$(npm view "$spec" version | tail -n 1 | sed "s/.* '\(.*\)'$/\1/")"
name="${spec%@*}"
integrity="$(npm view "$name@$version" dist.integrity)"
(cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
tarball="$(ls "$tmp"/*.tgz)"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$integrity" ]; then
  echo "integrity mismatch for $name@$version: registry $integrity, tarball $actual" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$tmp"

# Only what the page loads, and the licences that must travel with it.
files=(swagger-ui-bundle.js swagger-ui.css swagger-ui-bundle.js.LICENSE.txt LICENSE NOTICE)
rm -rf "$dest" && mkdir -p "$dest"
for f in "${files[@]}"; do cp "$tmp/package/$f" "$dest/$f"; done
echo "$name@$version $integrity" > "$dest/PACKAGE"
(cd "$dest" && sha256sum "${files[@]}" > SHA256SUMS)
echo "$name@$version: $(du -ch "${files[@]/#/$dest/}" | tail -n 1 | cut -f1) in $dest"
