#!/usr/bin/env bash
# Benchmark `kpin apply` against `kubectl apply --server-side` on a real cluster, in one run, on
# two sets read in place from ../shared/upstream (never copied):
#
#   argo  argo-cd + prometheus-operator + 500 generated ConfigMaps
#   big   argo, plus argo-cd's 50 namespaced objects in each of 100 more namespaces, one
#         package each (5,000 more objects; workloads scaled to 0 replicas, so no pods load
#         the machine). Each copy is vendored as `kpin render` of the first (argo-cd's
#         cluster-scoped objects and CRDs removed by an overlay), generated in the run's temp
#         directory: 100 parses of argo-cd's 1.9 MB of CRDs would measure the YAML reader,
#         not the apply.
#
# For each set and tool: first apply, unchanged re-apply, re-apply with one object changed; the
# wall time, the requests sent (kpin's own count with -v; kubectl's -v=6 request lines), and
# kpin's peak memory (also for `kpin diff` of the unchanged set). Both tools apply the same
# objects (kubectl gets `kpin render`'s output), everything is deleted between tools, and the
# ratios are kubectl's time over kpin's. After a first apply both wait $settle seconds for the
# cluster's controllers to settle (thousands of new objects keep a 2-core machine busy); kpin's
# re-applies are the median of three runs (kubectl's take minutes each: one). The goals of
# issue 20 are checked at the end.
#
#   cargo build --release
#   benches/apply-real-cluster.sh                  # starts the test cluster (tools/test-cluster/up)
#   benches/apply-real-cluster.sh KUBECONFIG       # or any cluster you can throw away
#   KPIN_BENCH_SETS=argo benches/apply-real-cluster.sh   # one set only
#
# WARNING: it creates and then deletes argo-cd and prometheus-operator (CRDs included) and the
# namespaces argocd, kpin-bench and argocd-000..099 in the cluster the kubeconfig points at.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
upstream=${KPIN_UPSTREAM_DIR:-$repo/../shared/upstream}
kpin=${KPIN:-$repo/target/release/kpin}
sets=${KPIN_BENCH_SETS:-argo big}
copies=100
settle=${KPIN_BENCH_SETTLE:-20}
argo=$upstream/argo-cd/v3.3.14/install.yaml
prom=$upstream/prometheus-operator/v0.84.1/bundle.yaml
for f in "$argo" "$prom" "$kpin"; do
  [ -e "$f" ] || { echo "missing $f (set KPIN_UPSTREAM_DIR / KPIN, or cargo build --release)" >&2; exit 2; }
done
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

# --- The kpin project: vendor/ links to the upstream files --------------------------------------
project=$work/project
mkdir -p "$project/vendor/argo-cd/v3.3.14" "$project/vendor/prometheus-operator/v0.84.1" \
  "$project/vendor/bench/1.0.0" "$project/overlays"
ln -s "$argo" "$project/vendor/argo-cd/v3.3.14/install.yaml"
ln -s "$prom" "$project/vendor/prometheus-operator/v0.84.1/bundle.yaml"
cms=$project/vendor/bench/1.0.0/configmaps.yaml
write_configmaps() { # VALUE_OF_THE_FIRST
  for i in $(seq -w 0 499); do
    local value=$i
    [ "$i" = 000 ] && value=$1
    printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-%s\n  namespace: kpin-bench\ndata:\n  index: "%s"\n' "$i" "$value"
  done > "$cms"
}
cat > "$project/overlays/copy.yaml" <<'EOF'
description: argo-cd's namespaced objects only (the cluster-scoped ones are argo-cd's), no pods
operations:
- remove: {select: {kind: CustomResourceDefinition}}
- remove: {select: {kind: ClusterRole}}
- remove: {select: {kind: ClusterRoleBinding}}
- mergePatch: {select: {kind: Deployment}, patch: {spec: {replicas: 0}}}
- mergePatch: {select: {kind: StatefulSet}, patch: {spec: {replicas: 0}}}
EOF
manifest() { # SET
  cat <<EOF
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
  [ "$1" = big ] || return 0
  for i in $(seq -f '%03g' 0 $((copies - 1))); do
    printf '  copy-%s:\n    version: 1.0.0\n    url: https://example.invalid/copy/{version}/objects.yaml\n    namespace: argocd-%s\n' "$i" "$i"
  done
}
# The copies' vendored files: argo-cd's namespaced objects, rendered once into argocd-000.
write_copies() {
  mkdir -p "$work/template/vendor/argo-cd/v3.3.14" "$work/template/overlays"
  ln -sf "$argo" "$work/template/vendor/argo-cd/v3.3.14/install.yaml"
  cp "$project/overlays/copy.yaml" "$work/template/overlays/"
  printf 'packages:\n  argo-cd:\n    version: v3.3.14\n    url: https://example.invalid/argo-cd/{version}/install.yaml\n    namespace: argocd-000\n    overlays: [overlays/copy.yaml]\n' \
    > "$work/template/kpin.yaml"
  (cd "$work/template" && "$kpin" render) > "$work/copy.yaml"
  for i in $(seq -f '%03g' 0 $((copies - 1))); do
    mkdir -p "$project/vendor/copy-$i/1.0.0"
    sed "s/argocd-000/argocd-$i/g" "$work/copy.yaml" > "$project/vendor/copy-$i/1.0.0/objects.yaml"
  done
}
write_copies
namespaces() { # SET
  local names="argocd kpin-bench"
  [ "$1" = big ] && names="$names $(seq -f 'argocd-%03g' 0 $((copies - 1)) | tr '\n' ' ')"
  for ns in $names; do printf -- '---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$ns"; done \
    | k apply -f - >/dev/null
}
cleanup() { # SET
  k delete -f "$prom" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  k delete -f "$argo" -n argocd --ignore-not-found --wait=false >/dev/null 2>&1 || true
  k delete configmap -n default kpin-prometheus-operator --ignore-not-found >/dev/null
  local names="argocd kpin-bench"
  [ "$1" = big ] && names="$names $(seq -f 'argocd-%03g' 0 $((copies - 1)) | tr '\n' ' ')"
  # shellcheck disable=SC2086
  k delete namespace $names --ignore-not-found --wait=true >/dev/null
}

# --- Measuring ---------------------------------------------------------------------------------
# run_tool TOOL: one apply of the project by TOOL; prints "ms requests peak-kB".
run_tool() {
  local err=$work/stderr start end
  start=$(date +%s%N)
  case $1 in
    kpin) (cd "$project" && /usr/bin/time -f '%M' -o "$work/rss" \
             "$kpin" apply -v --wait=false --kubeconfig "$kubeconfig") >/dev/null 2>"$err" ;;
    kubectl) /usr/bin/time -f '%M' -o "$work/rss" kubectl --kubeconfig "$kubeconfig" apply \
               --server-side --field-manager=kubectl-bench -v=6 -f "$work/rendered.yaml" \
               >/dev/null 2>"$err" ;;
  esac
  end=$(date +%s%N)
  local requests
  case $1 in
    kpin) requests=$(sed -n 's/.*Requests \([0-9]*\) sent.*/\1/p' "$err" | tail -1) ;;
    kubectl) requests=$(grep -cE 'round_trippers.*https://.* in [0-9]+ milliseconds' "$err" || true) ;;
  esac
  echo "$(( (end - start) / 1000000 )) ${requests:-?} $(tail -1 "$work/rss")"
}
# measured TOOL: an unchanged re-apply; for kpin the median of three runs (by time).
measured() {
  if [ "$1" = kpin ]; then
    { run_tool kpin; run_tool kpin; run_tool kpin; } | sort -n | sed -n 2p
  else
    run_tool "$1"
  fi
}
kpin_diff() { # prints "ms requests peak-kB" of `kpin diff`
  local start end
  start=$(date +%s%N)
  (cd "$project" && /usr/bin/time -f '%M' -o "$work/rss" \
     "$kpin" diff -v --kubeconfig "$kubeconfig") >/dev/null 2>"$work/stderr" || true
  end=$(date +%s%N)
  echo "$(( (end - start) / 1000000 )) $(sed -n 's/.*Requests \([0-9]*\) sent.*/\1/p' "$work/stderr" | tail -1) $(tail -1 "$work/rss")"
}

results=$work/results
: > "$results"
for set in $sets; do
  manifest "$set" > "$project/kpin.yaml"
  write_configmaps 000
  objects=$( (cd "$project" && "$kpin" render) | grep -c '^kind:')
  for tool in kpin kubectl; do
    cleanup "$set"; namespaces "$set"; write_configmaps 000
    (cd "$project" && "$kpin" render) > "$work/rendered.yaml"
    first=$(run_tool "$tool")
    sleep "$settle"
    again=$(measured "$tool")
    write_configmaps changed
    (cd "$project" && "$kpin" render) > "$work/rendered.yaml"
    one=$(run_tool "$tool")
    echo "$set $objects $tool first $first" >> "$results"
    echo "$set $objects $tool unchanged $again" >> "$results"
    echo "$set $objects $tool one-changed $one" >> "$results"
    if [ "$tool" = kpin ]; then
      echo "$set $objects kpin diff $(kpin_diff) " >> "$results"
    fi
  done
  cleanup "$set"
done

# --- Report ------------------------------------------------------------------------------------
awk '
  { key = $1 " " $4; set[$1] = $2; t[$3 " " key] = $5; r[$3 " " key] = $6; m[$3 " " key] = $7 }
  END {
    printf "%-4s %7s %-12s %9s %6s %7s   %9s %6s   %8s\n", "set", "objects", "run", "kpin ms", "req", "peak MB", "kubectl", "req", "kubectl/kpin"
    n = split("argo big", sets, " ")
    for (i = 1; i <= n; i++) {
      s = sets[i]; if (!(s in set)) continue
      split("first unchanged one-changed diff", runs, " ")
      for (j = 1; j <= 4; j++) {
        key = s " " runs[j]
        if (!(("kpin " key) in t)) continue
        kc = ("kubectl " key) in t ? sprintf("%9s %6s   %11.1fx", t["kubectl " key] " ms", r["kubectl " key], t["kubectl " key] / t["kpin " key]) : ""
        printf "%-4s %7s %-12s %9s %6s %7.0f   %s\n", s, set[s], runs[j], t["kpin " key] " ms", r["kpin " key], m["kpin " key] / 1024, kc
      }
    }
    print ""
    if ("kubectl argo first" in t) {
      printf "goal: first apply >= 8x kubectl (argo): %.1fx\n", t["kubectl argo first"] / t["kpin argo first"]
      printf "goal: unchanged re-apply >= 25x kubectl (argo): %.1fx\n", t["kubectl argo unchanged"] / t["kpin argo unchanged"]
    }
    if ("kpin big unchanged" in t) {
      printf "goal: unchanged re-apply of %d objects < 3000 ms: %d ms\n", set["big"], t["kpin big unchanged"]
      printf "goal: kpin diff of %d objects < 200 MB: %.0f MB\n", set["big"], m["kpin big diff"] / 1024
    }
  }' "$results"
