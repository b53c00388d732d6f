#!/bin/sh
# FAKE Disnix tool for the tests (Disnix cannot run here). Installed under the
# names disnix-env, disnix-snapshot, disnix-reconstruct, disnix-delete-state
# and disnix-clean-snapshots. It records its argv (one "arg=" line each) and
# the Disnix environment variables to $FAKE_DISNIX_DIR/<tool>.log, copies every
# .nix file argument to $FAKE_DISNIX_DIR/<tool>-<basename>, and
# - with FAKE_DISNIX_EVAL=1 checks, like disnix-env does first, that the -d
#   distribution function applies to the -i infrastructure (real nix-instantiate);
# - with FAKE_DISNIX_FAIL=msg prints msg to stderr and exits 3;
# - with FAKE_DISNIX_BLOCK=1 waits for SIGINT, records it and exits 130.
set -u
name=$(basename "$0")
dir=${FAKE_DISNIX_DIR:?FAKE_DISNIX_DIR not set}
log="$dir/$name.log"
: > "$log"
infra= dist= prev=
for a in "$@"; do
  printf 'arg=%s\n' "$a" >> "$log"
  case "$prev" in
    -i) infra=$a ;;
    -d) dist=$a ;;
  esac
  case "$a" in
    *.nix) [ -f "$a" ] && cp "$a" "$dir/$name-$(basename "$a")" ;;
  esac
  prev=$a
done
for v in DISNIX_CLIENT_INTERFACE DISNIX_TARGET_PROPERTY DISNIX_PROFILE DISNIX_DEPLOY_STATE DISNIX_DELETE_STATE FAKE_EXTRA; do
  eval "val=\${$v-}"
  [ -n "$val" ] && printf 'env=%s=%s\n' "$v" "$val" >> "$log"
done
echo "[coordinator]: $name started" >&2
if [ "${FAKE_DISNIX_EVAL-}" = 1 ] && [ -n "$infra" ] && [ -n "$dist" ]; then
  nix-instantiate --eval --strict --json -E "builtins.attrNames ((import $dist) { infrastructure = import $infra; })" > "$dir/$name.eval" || exit 4
fi
if [ -n "${FAKE_DISNIX_FAIL-}" ]; then
  echo "[coordinator]: $FAKE_DISNIX_FAIL" >&2
  exit 3
fi
if [ "${FAKE_DISNIX_BLOCK-}" = 1 ]; then
  trap 'echo interrupted > "$dir/$name.signal"; exit 130' INT
  echo ready > "$dir/$name.ready"
  while :; do sleep 0.05; done
fi
echo "[coordinator]: $name finished" >&2
exit 0
