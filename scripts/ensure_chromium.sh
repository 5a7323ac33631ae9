#!/usr/bin/env bash
# Installs Debian's chromium for the browser end-to-end tests when it is missing. Never fatal: without it
# those tests skip with a message saying so.
if [ -x /usr/bin/chromium ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "ensure_chromium: apt-get install chromium failed; browser tests will skip"
else
  echo "ensure_chromium: /usr/bin/chromium missing and cannot apt-get install it here; browser tests will skip"
fi
exit 0
