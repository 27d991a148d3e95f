#!/bin/bash
# Where a BLOCK volume's sequential 1 MiB read goes: qemu-io (QD1, 1 MiB requests, as the guest's dd iflag=direct) through
# LUKS over a local file, over NBD without TLS, over NBD with TLS (AES-256-GCM, AES-128-GCM), over a fifo quorum of three
# TLS exports; and the same MiB as 4 x 256 KiB in flight. Then reads and writes, one at a time and in flight,
# on a quorum of daemons as QEMU 7.2 serves them (Nagle on) beside daemons whose sockets have TCP_NODELAY, as the
# host runtime sets it (DaemonSockets, with pidfd_getfd from python here).
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/kraud-qio.XXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
SEC="--object secret,id=sec0,data=kraudbench"
# qemu-img times PBKDF2 by the thread's cpu clock, which reads 0 now and then on a loaded machine ("Unable to get accurate CPU usage"): tried again.
for t in $(seq 20); do qemu-img create -q -f luks $SEC -o key-secret=sec0,iter-time=200 "$dir/local.luks" 96M 2>/dev/null && break; sleep 0.5; done
[ -f "$dir/local.luks" ] || { echo "qemu-img failed"; exit 1; }
qemu-io $SEC --image-opts "driver=luks,key-secret=sec0,file.driver=file,file.filename=$dir/local.luks" -c "write -q -P 0x5a 0 64M" >/dev/null
for i in 0 1 2; do cp "$dir/local.luks" "$dir/r$i.raw"; done
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$dir/spsk" "$dir/cpsk"; echo "client:$key" > "$dir/spsk/keys.psk"; echo "client:$key" > "$dir/cpsk/keys.psk"; chmod 600 "$dir"/*/keys.psk
AES256="NORMAL:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM"
AES128="NORMAL:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM"
serve() { # file port priority|none
  local tls=() creds=""
  if [ "$3" != none ]; then tls=(--object "tls-creds-psk,id=tls,endpoint=server,dir=$dir/spsk,priority=$3"); creds=",tls-creds=tls"; fi
  qemu-storage-daemon "${tls[@]}" --blockdev "driver=file,node-name=file,filename=$1" --blockdev driver=raw,node-name=replica,file=file \
    --nbd-server "addr.type=inet,addr.host=127.0.0.1,addr.port=$2$creds" --export type=nbd,id=client,node-name=replica,name=client,writable=on &
  pids+=($!)
}
read -r P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 < <(python3 -c "
import socket; s=[socket.socket() for _ in range(10)]; [x.bind(('127.0.0.1',0)) for x in s]; print(*[x.getsockname()[1] for x in s])")
serve "$dir/r0.raw" $P0 none
serve "$dir/r0.raw" $P1 "$AES256"; serve "$dir/r1.raw" $P2 "$AES256"; serve "$dir/r2.raw" $P3 "$AES256"
serve "$dir/r0.raw" $P4 "$AES128"; serve "$dir/r1.raw" $P5 "$AES128"; serve "$dir/r2.raw" $P6 "$AES128"
for i in 0 1 2; do cp "$dir/local.luks" "$dir/n$i.raw"; done
serve "$dir/n0.raw" $P7 "$AES256"; serve "$dir/n1.raw" $P8 "$AES256"; serve "$dir/n2.raw" $P9 "$AES256"
for port in $P0 $P1 $P2 $P3 $P4 $P5 $P6 $P7 $P8 $P9; do
  for t in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done
# TCP_NODELAY on the last three daemons' listeners (connections accepted later inherit it), as the host runtime does.
python3 "$(dirname "$0")/daemon-nodelay.py" "${pids[@]: -3}"
nbd() { echo "$1driver=nbd,$1server.type=inet,$1server.host=127.0.0.1,$1server.port=$2,$1export=client${3:+,$1tls-creds=tls}"; }
reads=(); for i in $(seq 0 ${N:-63}); do reads+=(-c "read -q ${i}M 1M"); done
# The same MiB as four requests of 256 KiB in flight at once (a guest whose max_sectors_kb is 256 splits dd's 1 MiB so).
split=(); for i in $(seq 0 ${N:-63}); do for k in 0 1 2 3; do split+=(-c "aio_read -q $((i * 1024 + k * 256))k 256k"); done; split+=(-c aio_flush); done
one() { # ms of one qemu-io run
  local s=$(date +%s%N)
  qemu-io $SEC "${tls[@]}" --image-opts "$img" "$@" >/dev/null || { echo "qemu-io failed" >&2; echo 999999; return; }
  echo $(( ($(date +%s%N) - s) / 1000000 ))
}
measure() { # name priority|none image-opts: 64 reads minus the run's start (open, TLS handshake, LUKS header), best of 3 each
  tls=(); img=$3
  [ "$2" != none ] && tls=(--object "tls-creds-psk,id=tls,endpoint=client,dir=$dir/cpsk,username=client,priority=$2")
  local best=999999 start=999999
  for run in 1 2 3; do
    local a; if [ "${SPLIT:-}" ]; then a=$(one "${split[@]}"); else a=$(one "${reads[@]}"); fi; [ $a -lt $best ] && best=$a
    local b=$(one -c "read -q 0 4k"); [ $b -lt $start ] && start=$b
  done
  local net=$(( best - start )); [ $net -lt 1 ] && net=1
  printf '%-48s %7.1f MB/s  (64 MiB in %d ms; the run took %d, its start %d)\n' "$1" "$(echo "67.108864 * 1000 / $net" | bc -l)" "$net" "$best" "$start"
}
q() { local s="driver=luks,key-secret=sec0,file.driver=quorum,file.vote-threshold=2,file.read-pattern=fifo"; local i=0
  for port in "$@"; do s="$s,$(nbd file.children.$i. $port t)"; i=$((i+1)); done; echo "$s"; }
echo "load $(cut -d' ' -f1 /proc/loadavg), $(nproc) cores; 64 x 1 MiB reads, QD1, through LUKS (aes-256-xts) unless said"
measure "local LUKS file" none "driver=luks,key-secret=sec0,file.driver=file,file.filename=$dir/local.luks"
measure "raw NBD, no TLS, no LUKS" none "$(nbd '' $P0)"
measure "LUKS over NBD, no TLS" none "driver=luks,key-secret=sec0,$(nbd file. $P0)"
measure "raw NBD over TLS AES-256-GCM, no LUKS" "$AES256" "$(nbd '' $P1 t)"
measure "LUKS over NBD, TLS AES-256-GCM" "$AES256" "driver=luks,key-secret=sec0,$(nbd file. $P1 t)"
measure "LUKS over NBD, TLS AES-128-GCM" "$AES128" "driver=luks,key-secret=sec0,$(nbd file. $P4 t)"
measure "LUKS over fifo quorum of 3, TLS AES-256-GCM" "$AES256" "$(q $P1 $P2 $P3)"
measure "LUKS over fifo quorum of 3, TLS AES-128-GCM" "$AES128" "$(q $P4 $P5 $P6)"
SPLIT=1 measure "local LUKS file, 4 x 256 KiB in flight" none "driver=luks,key-secret=sec0,file.driver=file,file.filename=$dir/local.luks"
SPLIT=1 measure "quorum of 3, AES-256-GCM, 4 x 256 KiB in flight" "$AES256" "$(q $P1 $P2 $P3)"
SPLIT=1 measure "quorum of 3, AES-128-GCM, 4 x 256 KiB in flight" "$AES128" "$(q $P4 $P5 $P6)"
writes=(); for i in $(seq 0 ${N:-63}); do writes+=(-c "write -q ${i}M 1M"); done
wsplit=(); for i in $(seq 0 ${N:-63}); do for k in 0 1 2 3; do wsplit+=(-c "aio_write -q $((i * 1024 + k * 256))k 256k"); done; wsplit+=(-c aio_flush); done
rsplit=("${split[@]}"); rone=("${reads[@]}")
for nagle in "Nagle on:$(q $P1 $P2 $P3)" "TCP_NODELAY:$(q $P7 $P8 $P9)"; do
  name=${nagle%%:*}; img=${nagle#*:}
  measure "quorum of 3, $name, reads one at a time" "$AES256" "$img"
  SPLIT=1 measure "quorum of 3, $name, reads 4 x 256 KiB in flight" "$AES256" "$img"
  reads=("${writes[@]}"); split=("${wsplit[@]}")
  measure "quorum of 3, $name, writes one at a time" "$AES256" "$img"
  SPLIT=1 measure "quorum of 3, $name, writes 4 x 256 KiB in flight" "$AES256" "$img"
  reads=("${rone[@]}"); split=("${rsplit[@]}")
done
echo "load after $(cut -d' ' -f1 /proc/loadavg)"
