#!/usr/bin/env bash
# Runs the whole test suite with the clock pinned at moments that catch a test depending on
# today's date, weekday, Chinese holiday status or hour (China time, UTC+8):
#
#   saturday          2026-12-05 10:00 +08:00   a weekend day
#   holiday           2026-10-01 10:00 +08:00   National Day, a public holiday
#   working-saturday  2026-02-14 10:00 +08:00   a Saturday made a working day (Spring Festival)
#   late-evening      2026-12-03 23:30 +08:00   a working Thursday, half an hour before midnight
#
#   scripts/any-day.sh               all four, one after another
#   scripts/any-day.sh holiday       one of them, by name
#   scripts/any-day.sh '2027-01-01 08:00 +08:00'   any moment `date -d` reads
#
# PYTEST_ARGS are passed to pytest, as with `make test`. Each run's output is kept in
# var/any-day/NAME.log. The exit status is non-zero if any run failed.
#
# The clock is moved with libfaketime (Debian's faketime) by a relative offset, not pinned to an
# absolute instant: with an instant every process (the tests' fleet serve, gateways, workers)
# would start its own clock there and they would disagree; with an offset they all agree. The
# local PostgreSQL and Redis are started first, outside faketime, so the database's now() is the
# real time: code that mixes the server's clock with Python's fails here, as it should.
# libfaketime fakes the monotonic clock as well, and a small preload of ours
# (scripts/faketime-clockwait.c) keeps Python's timed waits working under it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV="$ROOT/scripts/dev.sh"
LOGS="$ROOT/var/any-day"

say() { printf '\033[1m[any-day]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[any-day] %s\033[0m\n' "$*" >&2; exit 1; }

MOMENTS=(
  "saturday|2026-12-05 10:00 +08:00"
  "holiday|2026-10-01 10:00 +08:00"
  "working-saturday|2026-02-14 10:00 +08:00"
  "late-evening|2026-12-03 23:30 +08:00"
)

# The runs to make, as NAME|MOMENT in RUNS: all of them, the one named, or the moment given.
choose() {
  local wanted=${1:-} entry
  if [ -z "$wanted" ]; then
    RUNS=("${MOMENTS[@]}")
    return
  fi
  for entry in "${MOMENTS[@]}"; do
    if [ "${entry%%|*}" = "$wanted" ]; then
      RUNS=("$entry")
      return
    fi
  done
  date -d "$wanted" +%s >/dev/null 2>&1 ||
    die "neither a known time (${MOMENTS[*]%%|*}) nor a date: $wanted"
  RUNS=("at-$(TZ=Asia/Shanghai date -d "$wanted" +%Y%m%d-%H%M)|$wanted")
}

# The preload that moves sem_clockwait deadlines onto the kernel's clock, built when it changes.
clockwait_shim() {
  local source="$ROOT/scripts/faketime-clockwait.c" built="$LOGS/faketime-clockwait.so"
  if [ ! -f "$built" ] || [ "$source" -nt "$built" ]; then
    command -v cc >/dev/null || die "a C compiler is needed (scripts/dev.sh bootstrap installs gcc)"
    cc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$built" "$source" -ldl ||
      die "could not build $built"
  fi
  printf '%s' "$built"
}

# libfaketime's relative form: "+N" or "-N" seconds from the real clock to the moment.
offset_to() {
  local seconds
  seconds=$(($(date -d "$1" +%s) - $(date +%s)))
  if [ "$seconds" -ge 0 ]; then printf '+%d' "$seconds"; else printf '%d' "$seconds"; fi
}

# pytest's closing line without its rule of '=', or what stood in its place.
summary_of() {
  local log=$1 status=$2 line
  line=$(grep -E ' in [0-9.]+s( \([0-9:]+\))?( =+)?$' "$log" | tail -n 1 |
    sed -E 's/^=+ //; s/ =+$//') || true
  printf '%s' "${line:-no pytest summary (exit $status), see ${log#"$ROOT"/}}"
}

[ $# -le 1 ] || die "usage: scripts/any-day.sh [NAME|MOMENT]"
choose "${1:-}"
"$DEV" bootstrap
"$DEV" services
command -v faketime >/dev/null || die "faketime is not installed (scripts/dev.sh bootstrap installs it)"
mkdir -p "$LOGS"
shim=$(clockwait_shim)

results=()
failed=0
for entry in "${RUNS[@]}"; do
  name=${entry%%|*}
  moment=${entry#*|}
  log="$LOGS/$name.log"
  offset=$(offset_to "$moment")
  shown=$(TZ=Asia/Shanghai date -d "$moment" '+%a %Y-%m-%d %H:%M %Z')
  say "$name: the suite at $shown (faketime -f $offset), log in ${log#"$ROOT"/}"
  started=$SECONDS
  status=0
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words, as in the Makefile
  LD_PRELOAD="$shim${LD_PRELOAD:+:$LD_PRELOAD}" faketime -f "$offset" \
    "$DEV" exec python -m pytest ${PYTEST_ARGS:-} >"$log" 2>&1 || status=$?
  elapsed=$((SECONDS - started))
  summary=$(summary_of "$log" "$status")
  verdict=passed
  if [ "$status" -ne 0 ]; then
    verdict=FAILED
    failed=1
    grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /' >&2 || true
  fi
  say "$name: $summary [$verdict, $((elapsed / 60))m$((elapsed % 60))s]"
  results+=("$(printf '%-17s %-26s %-7s %6s  %s' "$name" "$moment" "$verdict" \
    "$((elapsed / 60))m$((elapsed % 60))s" "$summary")")
done

say "results"
printf '%-17s %-26s %-7s %6s  %s\n' time moment result took summary
printf '%s\n' "${results[@]}"
exit "$failed"
