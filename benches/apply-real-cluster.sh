#!/usr/bin/env bash
# Benchmark `kpin apply` against `kubectl apply --server-side` on a real cluster: the argo-cd and
# prometheus-operator releases from ../shared/upstream (read in place) plus 500 generated
# ConfigMaps; first apply and unchanged re-apply for each tool, deleting everything in between.
#
#   cargo build --release
#   benches/apply-real-cluster.sh                  # starts the test cluster (tools/test-cluster/up)
#   benches/apply-real-cluster.sh KUBECONFIG       # or any cluster you can throw away
#
# WARNING: it creates and then deletes argo-cd and prometheus-operator (CRDs included) and the
# namespaces argocd and kpin-bench in the cluster the kubeconfig's current context points at.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
upstream=${KPIN_UPSTREAM_DIR:-$repo/../shared/upstream}
kpin=${KPIN:-$repo/target/release/kpin}
argo=$upstream/argo-cd/v3.3.14/install.yaml
prom=$upstream/prometheus-operator/v0.84.1/bundle.yaml
for f in "$argo" "$prom" "$kpin"; do
  [ -e "$f" ] || { echo "missing $f (set KPIN_UPSTREAM_DIR / KPIN, or cargo build --release)" >&2; exit 2; }
done
# The project below runs kpin from its own directory.
kpin=$(cd "$(dirname "$kpin")" && pwd)/$(basename "$kpin")

work=$(mktemp -d)
if [ $# -ge 1 ]; then
  kubeconfig=$1
  trap 'rm -rf "$work"' EXIT
else
  # The real kube-apiserver the tests use, started for this run and stopped after it.
  "$repo/tools/test-cluster/up" "$work/cluster" >&2
  kubeconfig=$work/cluster/admin.kubeconfig
  trap '"$repo/tools/test-cluster/down" "$work/cluster"; rm -rf "$work"' EXIT
fi
k() { kubectl --kubeconfig "$kubeconfig" "$@"; }

# A kpin project whose vendor/ links to the upstream files (never copied).
mkdir -p "$work/vendor/argo-cd/v3.3.14" "$work/vendor/prometheus-operator/v0.84.1" "$work/vendor/bench/1.0.0"
ln -s "$argo" "$work/vendor/argo-cd/v3.3.14/install.yaml"
ln -s "$prom" "$work/vendor/prometheus-operator/v0.84.1/bundle.yaml"
cms=$work/vendor/bench/1.0.0/configmaps.yaml
for i in $(seq -w 0 499); do
  printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-%s\n  namespace: kpin-bench\ndata:\n  index: "%s"\n' "$i" "$i"
done > "$cms"
cat > "$work/kpin.yaml" <<EOF
packages:
  argo-cd:
    version: v3.3.14
    url: https://example.invalid/argo-cd/{version}/install.yaml
    namespace: argocd
  prometheus-operator:
    version: v0.84.1
    url: https://example.invalid/prometheus-operator/{version}/bundle.yaml
    namespace: default
  bench:
    version: 1.0.0
    url: https://example.invalid/bench/{version}/configmaps.yaml
    namespace: kpin-bench
EOF

namespaces() { k create namespace argocd --dry-run=client -o yaml | k apply -f - >/dev/null
               k create namespace kpin-bench --dry-run=client -o yaml | k apply -f - >/dev/null; }
cleanup() {
  k delete -n argocd -f "$argo" --ignore-not-found --wait >/dev/null 2>&1 || true
  k delete -f "$prom" -f "$cms" --ignore-not-found --wait >/dev/null 2>&1 || true
  k delete configmap -n argocd kpin-argo-cd --ignore-not-found >/dev/null
  k delete configmap -n default kpin-prometheus-operator --ignore-not-found >/dev/null
  k delete configmap -n kpin-bench kpin-bench --ignore-not-found >/dev/null
}
ms() { local start=$(date +%s%N); "$@" >/dev/null; echo $(( ($(date +%s%N) - start) / 1000000 )); }

run_kpin() { (cd "$work" && "$kpin" apply --quiet --wait=false --kubeconfig "$kubeconfig"); }
run_kubectl() {
  k apply --server-side --field-manager=kubectl-bench -n argocd -f "$argo"
  k apply --server-side --field-manager=kubectl-bench -f "$prom" -f "$cms"
}

cleanup; namespaces
kpin_first=$(ms run_kpin); kpin_again=$(ms run_kpin)
cleanup; namespaces
kubectl_first=$(ms run_kubectl); kubectl_again=$(ms run_kubectl)
cleanup

printf '%-22s %12s %12s\n' "" "first apply" "re-apply"
printf '%-22s %9s ms %9s ms\n' kpin "$kpin_first" "$kpin_again"
printf '%-22s %9s ms %9s ms\n' "kubectl --server-side" "$kubectl_first" "$kubectl_again"
awk -v a="$kubectl_first" -v b="$kpin_first" -v c="$kubectl_again" -v d="$kpin_again" \
  'BEGIN { printf "%-22s %11.1fx %11.1fx\n", "kubectl / kpin", a / b, c / d }'
