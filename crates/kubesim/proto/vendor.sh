#!/usr/bin/env bash
# Copies the protobuf definitions kubesim decodes request bodies with from
# checkouts of k8s.io/api and k8s.io/apimachinery (Apache-2.0, the Kubernetes
# Authors), keeping each file's licence header and dropping the other comments
# (the field documentation, most of each file's size; the API reference has it).
#   proto/vendor.sh ../api ../apimachinery
set -euo pipefail
api=$1 machinery=$2
here=$(cd "$(dirname "$0")" && pwd)
strip() { # keep the licence header (the comment block before `syntax`), drop later comments
  awk 'started && /^[[:space:]]*\/\// {next} /^syntax/ {started=1} {print}' "$1" | cat -s > "$2"
}
for g in core apps events networking rbac coordination policy node storage discovery authentication; do
  mkdir -p "$here/k8s.io/api/$g/v1"
  strip "$api/$g/v1/generated.proto" "$here/k8s.io/api/$g/v1/generated.proto"
done
for p in api/resource apis/meta/v1 runtime runtime/schema util/intstr; do
  mkdir -p "$here/k8s.io/apimachinery/pkg/$p"
  strip "$machinery/pkg/$p/generated.proto" "$here/k8s.io/apimachinery/pkg/$p/generated.proto"
done
