#!/bin/sh
# Usage: disk_usage.sh [--threshold=N] PATH
threshold=90
for arg in "$@"; do
  case "$arg" in
    --threshold=*) threshold="${arg#--threshold=}" ;;
    *) path="$arg" ;;
  esac
done
used=$(df -P "${path:-/}" | awk 'NR == 2 { sub("%", "", $5); print $5 }')
echo "${path:-/} is ${used}% full (threshold ${threshold}%)"
[ "$used" -le "$threshold" ]
