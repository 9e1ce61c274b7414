#!/usr/bin/env bash
# Fetches Debian's sweethome3d-furniture corpus and unpacks each furniture library into DEST/<library>/.
# Usage: bash training/fetch_corpus.sh [DEST]   (default data/corpus). Needs apt-get, dpkg-deb and unzip.
set -euo pipefail
dest=${1:-data/corpus}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v unzip >/dev/null || { echo "error: unzip is needed (apt-get install unzip)" >&2; exit 2; }
(cd "$work" && apt-get download sweethome3d-furniture >/dev/null)
dpkg-deb -x "$work"/sweethome3d-furniture_*.deb "$work/x"
for f in "$work"/x/usr/share/sweethome3d/furniture/*.sh3f; do
  lib=$(basename "$f" .sh3f | tr '[:upper:]' '[:lower:]')
  mkdir -p "$dest/$lib"
  unzip -q -o "$f" -d "$dest/$lib"
  echo "$lib: $(find "$dest/$lib" -iname '*.obj' | wc -l) OBJ models"
done
echo "corpus in $dest (katorlegaz is the test split: training.prepare excludes it by default)"
