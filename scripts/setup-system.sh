#!/usr/bin/env bash
# Installs the Debian packages that the build, the tests and the peers we agree with need.
# Idempotent: installs only what is missing. Run as root (or with sudo available).
set -euo pipefail
pkgs=(
  libsecret-1-dev        # keytar builds from source against it
  gnome-keyring dbus-x11 # a real Secret Service for the keychain tests
  chromium               # Playwright drives Debian's Chromium; we never download a browser
  libvirt-clients-qemu python3-libvirt python3-lxml python3-cryptography  # virt-qemu-sev-validate, the peer we agree with
  ovmf                   # Debian's OVMF.fd, a real generic firmware
  openssh-server openssh-client  # the SSH reverse tunnel and its test sshd
  postgresql             # serve --database: tests start throwaway clusters (test/helpers/pg-cluster.ts)
  haproxy                # docs/scale-out.md's load balancer, checked by its test and the scale bench
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
