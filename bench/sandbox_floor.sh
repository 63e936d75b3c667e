#!/bin/bash
# The OS work of N pod sandboxes as the runtime does it (runtime/daemon/pod_namespaces.py,
# runtime/network/pod_network.py), one after the other, without Python: the least a burst
# of sandboxes costs on this machine. Runs in a private network namespace of its own:
#     unshare -n bash bench/sandbox_floor.sh [N]
# Everything it makes (namespace files, veths, bridge) goes with it.
set -eu
n=${1:-30}
d=$(mktemp -d /tmp/skiff-sandbox-floor-XXXXXX)
cleanup() {
  for f in "$d"/*; do umount "$f" 2>/dev/null || true; done
  rm -rf "$d"
}
trap cleanup EXIT
ip link add brf type bridge && ip addr add 10.98.0.1/24 dev brf && ip link set brf up
now() { date +%s%N; }
a=0 b=0 c=0
for i in $(seq 1 "$n"); do
  for k in net ipc uts; do touch "$d/$k$i"; done
  t0=$(now)
  unshare --net="$d/net$i" --ipc="$d/ipc$i" --uts="$d/uts$i" hostname "h$i"
  t1=$(now)
  printf 'link add vf%s mtu 1500 type veth peer name eth0 mtu 1500 netns %s\nlink set vf%s master brf up\nlink set vf%s type bridge_slave hairpin on\n' \
    "$i" "$d/net$i" "$i" "$i" | ip -batch -
  t2=$(now)
  printf 'link set lo up\naddr replace 10.98.%s.%s/16 dev eth0\nlink set eth0 up\nroute replace default via 10.98.0.1 dev eth0\n' \
    "$((i / 250))" "$((i % 250 + 2))" | nsenter --net="$d/net$i" ip -batch -
  t3=$(now)
  a=$((a + t1 - t0)) b=$((b + t2 - t1)) c=$((c + t3 - t2))
done
echo "$n sandboxes one after the other: $(((a + b + c) / 1000000)) ms;" \
  "per sandbox: namespaces $((a / n / 1000000)) ms, node side $((b / n / 1000000)) ms," \
  "pod side $((c / n / 1000000)) ms"
