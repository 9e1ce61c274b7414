#!/usr/bin/env bash
# Batch decode against single-file decodes: the first 20 meshes of a folder, encoded once, then decoded at 256
# by 20 single commands, by one command, and by one command with --jobs 2. Prints the three wall times.
# Usage: bash benchmarks/decode_batch.sh <corpus>/katorlegaz [N=20]
set -euo pipefail
src=$1; n=${2:-20}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/in" "$work/single"
i=0
while read -r f; do i=$((i + 1)); cp "$f" "$work/in/m$(printf %02d $i).obj"; done < <(find "$src" -iname '*.obj' | sort | head -n "$n")
vatcodec encode "$work"/in/*.obj -o "$work/vat" -j 2 > /dev/null
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "single_x$n $(t bash -c "for v in $work/vat/*.vat; do vatcodec decode \$v -o $work/single/\$(basename \$v .vat).obj; done")"
echo "batch $(t vatcodec decode "$work"/vat/*.vat -o "$work/out1")"
echo "batch_jobs2 $(t vatcodec decode "$work"/vat/*.vat -o "$work/out2" -j 2)"
