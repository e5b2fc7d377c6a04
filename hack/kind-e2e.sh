#!/usr/bin/env bash
# End-to-end check on a real Kubernetes cluster (kind by default, or k3d), no cloud account needed:
#
#   1. builds the image (Dockerfile: operator, worker, Logs Ingestion emulator) and loads it into the cluster;
#   2. `helm install`s the chart from charts/s3-sentinel;
#   3. runs MinIO (as the S3 bucket, seeded with a real CloudTrail sample) and the Logs Ingestion emulator
#      (as Sentinel, with its Entra token endpoint) in namespace `logs`;
#   4. applies a connector pointing at them, waits for Ready, shows `kubectl get connectors`, and checks the
#      emulator received records;
#   5. deletes the connector and checks its objects are garbage-collected; deletes the cluster unless KEEP=1.
#
# Needs: docker, kubectl, helm, curl, and kind (PROVIDER=kind) or k3d (PROVIDER=k3d); network access to pull
# the base images, MinIO and the mc client. It cannot run in the development sandbox (no container runtime).
#
#   hack/kind-e2e.sh                      # kind cluster "s3-sentinel-e2e", deleted afterwards
#   KEEP=1 hack/kind-e2e.sh               # keep the cluster for poking around
#   PROVIDER=k3d CLUSTER=dev hack/kind-e2e.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROVIDER=${PROVIDER:-kind}
CLUSTER=${CLUSTER:-s3-sentinel-e2e}
IMAGE_REPO=${IMAGE_REPO:-s3-sentinel}
IMAGE_TAG=${IMAGE_TAG:-e2e}
OPERATOR_NS=${OPERATOR_NS:-s3-sentinel-system}
NS=logs
KEEP=${KEEP:-0}
TIMEOUT=${TIMEOUT:-300s}
MINIO_IMAGE=${MINIO_IMAGE:-minio/minio:RELEASE.2025-04-22T22-12-26Z}
MC_IMAGE=${MC_IMAGE:-minio/mc:RELEASE.2025-04-16T18-13-26Z}
DCR=dcr-0123456789abcdef0123456789abcdef
STREAM=Custom-CloudTrail_CL

log() { printf '\n==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required" >&2; exit 2; }; }
for tool in docker kubectl helm curl "$PROVIDER"; do need "$tool"; done

cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    log "failed; state for debugging"
    kubectl get connectors,deployments,pods -A -o wide || true
    kubectl -n "$NS" describe s3sentinelconnector e2e || true
    kubectl -n "$OPERATOR_NS" logs -l app.kubernetes.io/name=s3-sentinel-operator --tail=100 || true
    kubectl -n "$NS" logs -l app=s3-sentinel-connector --tail=100 || true
  fi
  [[ -n "${PF_PID:-}" ]] && kill "$PF_PID" 2>/dev/null || true
  if [[ "$KEEP" != 1 ]]; then
    log "deleting cluster $CLUSTER"
    case "$PROVIDER" in
      kind) kind delete cluster --name "$CLUSTER" || true ;;
      k3d) k3d cluster delete "$CLUSTER" || true ;;
    esac
  fi
  exit $status
}
trap cleanup EXIT

log "cluster $CLUSTER ($PROVIDER)"
case "$PROVIDER" in
  kind) kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s ;;
  k3d) k3d cluster list "$CLUSTER" >/dev/null 2>&1 || k3d cluster create "$CLUSTER" --wait ;;
  *) echo "error: PROVIDER must be kind or k3d" >&2; exit 2 ;;
esac

log "building $IMAGE_REPO:$IMAGE_TAG"
docker build -t "$IMAGE_REPO:$IMAGE_TAG" "$ROOT"
case "$PROVIDER" in
  kind) kind load docker-image "$IMAGE_REPO:$IMAGE_TAG" --name "$CLUSTER" ;;
  k3d) k3d image import "$IMAGE_REPO:$IMAGE_TAG" --cluster "$CLUSTER" ;;
esac

log "helm install"
helm upgrade --install s3-sentinel "$ROOT/charts/s3-sentinel" \
  --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository="$IMAGE_REPO" --set image.tag="$IMAGE_TAG" --set image.pullPolicy=Never \
  --set replicaCount=2 --wait --timeout "$TIMEOUT"
kubectl wait --for=condition=Established crd/s3sentinelconnectors.s3sentinel.io --timeout 60s
for _ in $(seq 1 30); do
  kubectl explain s3sentinelconnector.spec.sentinel.dcrImmutableId >/dev/null 2>&1 && break
  sleep 2
done
kubectl explain s3sentinelconnector.spec.sentinel.dcrImmutableId

log "MinIO and the Logs Ingestion emulator in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" create configmap cloudtrail-sample \
  --from-file=sample.json="$ROOT/parse/tests/fixtures/cloudtrail/awsdocs_log-file-examples.json" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" apply -f - <<EOF
apiVersion: v1
kind: Secret
metadata: {name: aws-credentials}
stringData: {AWS_ACCESS_KEY_ID: minio-e2e, AWS_SECRET_ACCESS_KEY: minio-e2e-secret}
---
apiVersion: v1
kind: Secret
metadata: {name: entra-credentials}
stringData: {AZURE_CLIENT_SECRET: emulator-secret}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: minio}
spec:
  selector: {matchLabels: {app: minio}}
  template:
    metadata: {labels: {app: minio}}
    spec:
      containers:
        - name: minio
          image: $MINIO_IMAGE
          args: [server, /data]
          env:
            - {name: MINIO_ROOT_USER, value: minio-e2e}
            - {name: MINIO_ROOT_PASSWORD, value: minio-e2e-secret}
          ports: [{containerPort: 9000}]
          readinessProbe: {httpGet: {path: /minio/health/ready, port: 9000}}
---
apiVersion: v1
kind: Service
metadata: {name: minio}
spec: {selector: {app: minio}, ports: [{port: 9000}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: emulator}
spec:
  selector: {matchLabels: {app: emulator}}
  template:
    metadata: {labels: {app: emulator}}
    spec:
      containers:
        - name: emulator
          image: $IMAGE_REPO:$IMAGE_TAG
          imagePullPolicy: Never
          command: [logs-ingestion-emulator]
          args: [--listen, "0.0.0.0:8080", --any-tenant, --keep-records, --rule, "$DCR=$STREAM"]
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: emulator}
spec: {selector: {app: emulator}, ports: [{port: 8080}]}
EOF
kubectl -n "$NS" rollout status deployment/minio --timeout "$TIMEOUT"
kubectl -n "$NS" rollout status deployment/emulator --timeout "$TIMEOUT"

log "seeding the bucket"
kubectl -n "$NS" delete job seed --ignore-not-found
kubectl -n "$NS" apply -f - <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: seed}
spec:
  backoffLimit: 4
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: mc
          image: $MC_IMAGE
          command: [sh, -c]
          args:
            - mc alias set e2e http://minio:9000 minio-e2e minio-e2e-secret &&
              mc mb --ignore-existing e2e/e2e-logs &&
              mc cp /sample/sample.json e2e/e2e-logs/AWSLogs/123456789012/CloudTrail/sample.json
          volumeMounts: [{name: sample, mountPath: /sample}]
      volumes: [{name: sample, configMap: {name: cloudtrail-sample}}]
EOF
kubectl -n "$NS" wait --for=condition=complete job/seed --timeout "$TIMEOUT"

log "applying the connector"
kubectl -n "$NS" apply -f - <<EOF
apiVersion: s3sentinel.io/v1alpha1
kind: S3SentinelConnector
metadata: {name: e2e}
spec:
  source:
    bucket: e2e-logs
    region: us-east-1
    prefixes: [AWSLogs/]
    endpoint: http://minio:9000
    forcePathStyle: true
    allowInsecureHttp: true
    credentials: {method: Secret, secretRef: {name: aws-credentials}}
  parser: {format: cloudtrail}
  sentinel:
    endpoint: http://emulator:8080
    dcrImmutableId: $DCR
    streamName: $STREAM
    allowInsecureHttp: true
    auth:
      method: ClientSecret
      tenantId: 00000000-0000-0000-0000-000000000000
      clientId: emulator-client
      authorityHost: http://emulator:8080
      clientSecretRef: {name: entra-credentials}
  batching: {batchTimeout: 2s}
EOF
kubectl -n "$NS" wait --for=condition=Ready s3sentinelconnector/e2e --timeout "$TIMEOUT"
kubectl -n "$NS" get connectors
kubectl -n "$NS" get connectors -o wide

log "checking the emulator received records"
kubectl -n "$NS" port-forward svc/emulator 18080:8080 >/dev/null 2>&1 &
PF_PID=$!
for _ in $(seq 1 60); do
  if records=$(curl -fsS http://127.0.0.1:18080/admin/records 2>/dev/null) && [[ "$records" != "[]" && -n "$records" ]]; then
    break
  fi
  sleep 2
done
curl -fsS http://127.0.0.1:18080/stats; echo
[[ -n "${records:-}" && "$records" != "[]" ]] || { echo "error: the emulator received no records" >&2; exit 1; }

log "deleting the connector: owned objects must be garbage-collected"
kubectl -n "$NS" delete s3sentinelconnector e2e --wait
for _ in $(seq 1 60); do
  left=$(kubectl -n "$NS" get deployments,services,configmaps,serviceaccounts,pdb,hpa -l s3sentinel.io/connector=e2e -o name | wc -l)
  [[ "$left" -eq 0 ]] && break
  sleep 2
done
[[ "$left" -eq 0 ]] || { echo "error: $left owned objects left behind" >&2; exit 1; }

log "e2e passed"
