#!/usr/bin/env bash
# Make sure `php` runs: the tests run the help page's PHP receivers with real PHP.
# If it is missing, install Debian's php-cli (as root, or through sudo), quietly.
set -euo pipefail
command -v php >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
    echo "php is missing and there is no apt-get here: install PHP 8 (php-cli) yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "php is missing: run 'apt-get install php-cli' as root" >&2; exit 1; }
    SUDO="sudo"
fi
echo "php is missing: installing php-cli (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends php-cli >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends php-cli >/dev/null; }
php --version | head -n 1 >&2
