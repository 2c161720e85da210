#!/bin/sh
# Installs the Debian packages Ferry's demo, tests and benchmarks use, only
# those that are missing. Needs root (the machines Ferry is developed and
# tested on run as root); without it, prints what is missing and continues.
set -eu
# command -> package
NEEDED="mke2fs:e2fsprogs losetup:mount rsync:rsync openssl:openssl mkfs.xfs:xfsprogs ip:iproute2 iptables:iptables tc:iproute2 fsck.ext4:e2fsprogs initdb:postgresql bpftrace:bpftrace curl:curl wget:wget busybox:busybox shellcheck:shellcheck fio:fio fsfreeze:util-linux qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils debugfs:e2fsprogs"
MISSING=""
for pair in $NEEDED; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  # PostgreSQL's server binaries live off PATH, in /usr/lib/postgresql/<version>/bin.
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] && ! [ -x "/sbin/$cmd" ] &&
    ! ls /usr/lib/postgresql/*/bin/"$cmd" >/dev/null 2>&1; then
    case " $MISSING " in *" $pkg "*) ;; *) MISSING="$MISSING $pkg" ;; esac
  fi
done
[ -z "$MISSING" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-debs: missing Debian packages:$MISSING (run as root to install them)" >&2
  exit 0
fi
echo "install-debs: installing$MISSING" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $MISSING >/dev/null
