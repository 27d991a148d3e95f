#!/bin/bash
# Where a BLOCK volume's 1 MiB write goes, one at a time (the guest's dd oflag=direct, fio iodepth 1): qemu-io writes
# through LUKS over a quorum of three TLS-PSK exports of qemu-storage-daemons with TCP_NODELAY, as the host runtime
# serves them. First three passes of 64 MiB timed (into the replicas' holes, over written blocks, and with a flush at the
# end as dd conv=fsync), then 30 passes for PROFILE_S seconds (default 20) under `perf record` (cpu-clock, call graphs)
# of qemu-io and of one daemon: prints the rate, the cpu time per MiB of qemu-io and of the three daemons (perf's
# sampling adds to it), and each process's top symbols (TOP of them). VARIANT picks a lever to measure beside the plain setup:
#   (none)   as shipped: BlockJobs.TlsPriority, the daemons' file node on threads aio, host page cache
#   aes128   AES-128-GCM first on both ends
#   notls    no TLS (what the crypto costs; not shippable: the exports are reachable beyond the compute host)
#   native   the daemons' file node with cache.direct=on,aio=native
#   falloc   the replicas' files allocated up front (fallocate), not sparse
# Needs QEMU, qemu-utils, python3 and linux-perf; run under the heavy lock for figures, `nice` for a look.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/kraud-wprof.XXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
SEC="--object secret,id=sec0,data=kraudbench"
for t in $(seq 20); do qemu-img create -q -f luks $SEC -o key-secret=sec0,iter-time=10 "$dir/local.luks" 96M 2>/dev/null && break; sleep 0.5; done
[ -f "$dir/local.luks" ] || { echo "qemu-img failed"; exit 1; }
for i in 0 1 2; do cp "$dir/local.luks" "$dir/r$i.raw"; [ "${VARIANT:-}" = falloc ] && fallocate -l 112M "$dir/r$i.raw"; done
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$dir/spsk" "$dir/cpsk"; echo "client:$key" > "$dir/spsk/keys.psk"; echo "client:$key" > "$dir/cpsk/keys.psk"; chmod 600 "$dir"/*/keys.psk
PRIO="NORMAL:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM"
[ "${VARIANT:-}" = aes128 ] && PRIO="NORMAL:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM"
FILEOPTS=""; [ "${VARIANT:-}" = native ] && FILEOPTS=",cache.direct=on,aio=native"
read -r P0 P1 P2 < <(python3 -c "
import socket; s=[socket.socket() for _ in range(3)]; [x.bind(('127.0.0.1',0)) for x in s]; print(*[x.getsockname()[1] for x in s])")
i=0
for port in $P0 $P1 $P2; do
  tls=(); creds=""
  if [ "${VARIANT:-}" != notls ]; then tls=(--object "tls-creds-psk,id=tls,endpoint=server,dir=$dir/spsk,priority=$PRIO"); creds=",tls-creds=tls"; fi
  qemu-storage-daemon "${tls[@]}" --blockdev "driver=file,node-name=file,filename=$dir/r$i.raw$FILEOPTS" --blockdev driver=raw,node-name=replica,file=file \
    --nbd-server "addr.type=inet,addr.host=127.0.0.1,addr.port=$port$creds" --export type=nbd,id=client,node-name=replica,name=client,writable=on &
  pids+=($!); i=$((i+1))
done
for port in $P0 $P1 $P2; do for t in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done; done
python3 "$(dirname "$0")/daemon-nodelay.py" "${pids[@]}"
img="driver=luks,key-secret=sec0,file.driver=quorum,file.vote-threshold=2,file.read-pattern=fifo"
i=0
for port in $P0 $P1 $P2; do
  img="$img,file.children.$i.driver=nbd,file.children.$i.server.type=inet,file.children.$i.server.host=127.0.0.1,file.children.$i.server.port=$port,file.children.$i.export=client"
  [ "${VARIANT:-}" != notls ] && img="$img,file.children.$i.tls-creds=tls"
  i=$((i+1))
done
ctls=(); [ "${VARIANT:-}" != notls ] && ctls=(--object "tls-creds-psk,id=tls,endpoint=client,dir=$dir/cpsk,username=client,priority=$PRIO")
# One pass: 64 x 1 MiB, one at a time, in a qemu-io of its own (its start, the TLS and NBD handshakes, is in the time).
pass=(); for i in $(seq 0 63); do pass+=(-c "write -q ${i}M 1M"); done
timed() { local s=$(date +%s%N); qemu-io $SEC "${ctls[@]}" --image-opts "$img" "$@" >/dev/null; echo $(( ($(date +%s%N) - s) / 1000000 )); }
start=$(timed -c "read -q 0 4k")
first=$(timed "${pass[@]}")
second=$(timed "${pass[@]}")
flushed=$(timed "${pass[@]}" -c flush)
echo "64 x 1 MiB writes: into the replicas' holes (sparse files, as a new volume) $first ms, over written blocks $second ms," \
  "the same and a flush (dd conv=fsync) $flushed ms; a run's start alone $start ms"
# 64 MiB over and over, 1 MiB a request, one at a time; enough rounds to outlast the profile.
writes=(); for r in $(seq 30); do writes+=("${pass[@]}"); done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
d0=0; for p in "${pids[@]}"; do d0=$(( d0 + $(ticks $p) )); done
s=$(date +%s%N)
qemu-io $SEC "${ctls[@]}" --image-opts "$img" "${writes[@]}" >/dev/null &
io=$!
sleep 1
perf record -q -g -e cpu-clock -F 499 -o "$dir/io.data" -p $io -- sleep "${PROFILE_S:-20}" 2>/dev/null &
p1=$!
perf record -q -g -e cpu-clock -F 499 -o "$dir/daemon.data" -p "${pids[0]}" -- sleep "${PROFILE_S:-20}" 2>/dev/null &
p2=$!
last=0; while kill -0 $io 2>/dev/null; do last=$(ticks $io 2>/dev/null || echo $last); sleep 0.2; done
wait $io
e=$(date +%s%N)
d1=0; for p in "${pids[@]}"; do d1=$(( d1 + $(ticks $p) )); done
# cpu time per MiB (load-independent, unlike the rate): qemu-io's own (to its last 0.2 s) and the three daemons' together
echo "cpu per MiB written: qemu-io $(echo "$last * 10 / 1920" | bc -l | cut -c1-5) ms, the three daemons $(echo "($d1 - $d0) * 10 / 1920" | bc -l | cut -c1-5) ms"
wait $p1 $p2
echo "variant ${VARIANT:-shipped}, load $(cut -d' ' -f1 /proc/loadavg): 1920 x 1 MiB writes in $(( (e - s) / 1000000 )) ms:" \
  "$(echo "1920 * 1.048576 * 1000000000 / ($e - $s)" | bc -l | cut -c1-6) MB/s (incl. start)"
for who in io daemon; do
  echo "== $who: top symbols (self), cpu-clock"
  perf report -i "$dir/$who.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -${TOP:-25}
  echo "== $who: samples per thread"
  perf report -i "$dir/$who.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8
done
