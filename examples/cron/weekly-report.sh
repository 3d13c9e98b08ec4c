#!/bin/sh
# The weekly DORA report, for cron: the last six weeks against the six before,
# as one self-contained HTML file (and the same numbers as CSV) per ISO week
# in $OUT_DIR, with latest.html pointing at the newest.
#
#   LEADLINE_DATA  the data directory (required)
#   OUT_DIR        where reports go (default /var/lib/leadline/reports)
#   ENVIRONMENT    default production
#   STALE_AFTER    call the data stale when its newest event is older (default 7d)
#   LEADLINE       the leadline binary (default: leadline on PATH)
#
# Exit status is leadline report's: 0 written, 3 written but the data is empty
# or stale (cron mails what this prints), anything else an error.
set -u
data="${LEADLINE_DATA:?set LEADLINE_DATA to the leadline data directory}"
out_dir="${OUT_DIR:-/var/lib/leadline/reports}"
environment="${ENVIRONMENT:-production}"
stale_after="${STALE_AFTER:-7d}"
leadline="${LEADLINE:-leadline}"
week=$(date -u +%G-W%V)

mkdir -p "$out_dir" || exit 1
"$leadline" report --data "$data" --environment "$environment" --stale-after "$stale_after" \
  --out "$out_dir/dora-$week.html"
status=$?
case $status in
  0) ;;
  3) echo "weekly-report: the report for $week was written, but the data is empty or stale: check the event pipeline" >&2 ;;
  *) echo "weekly-report: leadline report failed with status $status" >&2; exit "$status" ;;
esac
# The same numbers for a spreadsheet; its status is the HTML's.
"$leadline" report --data "$data" --environment "$environment" --format csv --out "$out_dir/dora-$week.csv" 2>/dev/null
ln -sf "dora-$week.html" "$out_dir/latest.html"
exit "$status"
