#!/usr/bin/env bash
# Make sure the tools the tests run are here, installing Debian's packages (as root, or
# through sudo) when one is missing: php (php-cli: the page's PHP receivers), faketime (a
# process with a skewed clock, for the rate-window test), docker-compose (validates
# docker-compose.yml; no engine needed), node (the page's Node receiver), and chromium with
# chromium-driver (the dashboard's browser test, driven by selenium).
set -euo pipefail
declare -A PACKAGE=([php]=php-cli [faketime]=faketime [docker-compose]=docker-compose [node]=nodejs [chromium]=chromium [chromedriver]=chromium-driver)
missing=()
for tool in "${!PACKAGE[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${PACKAGE[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "missing ${missing[*]} and there is no apt-get here: install them yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "missing: run 'apt-get install ${missing[*]}' as root" >&2; exit 1; }
    SUDO="sudo"
fi
echo "installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
