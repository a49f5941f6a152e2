#!/usr/bin/env bash
# make demo: examples/cxflow-cluster applied against the bundled AWS stand-in.
#
# Starts moto on a free loopback port, creates the public hosted zone a real
# user would already have, installs the freshly built provider into a local
# filesystem mirror (so `terraform init` runs as it would for a user), applies
# the example with demo secrets passed as ephemeral variables, prints the
# outputs and a summary read back from the AWS API, and destroys everything on
# exit. Exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TF="$ROOT/.tools/bin/terraform"
PY="$ROOT/.tools/venv/bin/python"
BIN="$ROOT/target/debug/terraform-provider-cxflow"
[ -x "$TF" ] && [ -x "$PY" ] || { echo "demo: run scripts/bootstrap.sh first (make demo does)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "demo: build the provider first (make demo does)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/cxflow-demo.XXXXXX)
MOTO_PID=""
APPLIED=0
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
    rc=$?
    set +e
    if [ "$APPLIED" = 1 ]; then
        say "Tearing down (terraform destroy)"
        (cd "$WORK/example" && "$TF" destroy -auto-approve -no-color >"$WORK/destroy.log" 2>&1) \
            && echo "destroyed" || { echo "destroy failed, see below"; tail -30 "$WORK/destroy.log"; rc=1; }
    fi
    [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
    rm -rf "$WORK"
    [ "$rc" = 0 ] && say "Demo finished" || echo "demo FAILED (exit $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting the AWS stand-in (moto) on loopback"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MOTO_IAM_LOAD_MANAGED_POLICIES=true MOTO_ECS_SERVICE_RUNNING=1 MOTO_ACM_VALIDATION_WAIT=0 \
    "$ROOT/.tools/venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
echo "moto listening at $AWS_ENDPOINT_URL"

say "Creating the hosted zone a real user already has (example.com)"
"$PY" "$ROOT/scripts/demo_aws.py" seed

say "Installing the provider into a local mirror"
VERSION=$("$BIN" --version | awk '{print $2}')
MIRROR="$WORK/mirror/registry.terraform.io/cxflow/cxflow/$VERSION/linux_amd64"
mkdir -p "$MIRROR"
cp "$BIN" "$MIRROR/terraform-provider-cxflow_v$VERSION"
cat >"$WORK/cli.tfrc" <<CFG
provider_installation {
  filesystem_mirror {
    path    = "$WORK/mirror"
    include = ["registry.terraform.io/cxflow/cxflow"]
  }
}
CFG
export TF_CLI_CONFIG_FILE="$WORK/cli.tfrc" TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
cp -r "$ROOT/examples/cxflow-cluster" "$WORK/example"
rm -rf "$WORK/example/.terraform" "$WORK/example/.terraform.lock.hcl" "$WORK/example"/*.tfstate*
echo "cxflow/cxflow $VERSION from $WORK/mirror"

# Demo secrets: in real use they come from a vault (ephemeral resource) or CI.
export TF_VAR_cxflow_secrets='{
  "production": {"checkmarx_username": "cxflow-bot", "checkmarx_password": "demo-Pa55word!", "checkmarx_token": "demo-client-secret", "gitlab_token": "glpat-demo-production", "gitlab_webhook_token": "demo-webhook-production"},
  "staging":    {"checkmarx_username": "cxflow-bot", "checkmarx_password": "demo-Pa55word!", "checkmarx_token": "demo-client-secret", "gitlab_token": "glpat-demo-staging",    "gitlab_webhook_token": "demo-webhook-staging"}
}'

cd "$WORK/example"
say "terraform init"
"$TF" init -no-color -input=false | grep -E "Installing|Installed|initialized|Initializing modules" || true

say "terraform apply"
APPLIED=1
start=$(date +%s)
TF_LOG_PROVIDER=${DEMO_LOG:-off} TF_LOG_PATH=${DEMO_LOG_PATH:-/dev/null} "$TF" apply -auto-approve -no-color -input=false | grep -vE "^\s*$|Reading\.\.\.|Still creating" | tail -n 40
echo "apply took $(( $(date +%s) - start ))s"

say "Outputs"
"$TF" output -no-color

say "What now exists (read back from the AWS API)"
"$PY" "$ROOT/scripts/demo_aws.py" summary

say "CI pushes the first image as latest (the container pipeline's job)"
"$PY" "$ROOT/scripts/demo_aws.py" push latest

say "terraform apply: staging (on latest) moves to the pushed digest, production (on stable, not pushed) stays"
"$TF" apply -auto-approve -no-color -input=false | grep -E '^ +~ "staging" += "[^"]*/cxflow[:@]|Apply complete' | head -n 3

say "CI re-pushes latest; the seed's update is one more apply"
"$PY" "$ROOT/scripts/demo_aws.py" push latest
"$TF" apply -auto-approve -no-color -input=false | grep -E '^ +~ "staging" += "[^"]*/cxflow[:@]|Apply complete' | head -n 3
"$PY" "$ROOT/scripts/demo_aws.py" summary | grep -E "service|ECS"

say "A further plan shows no changes"
"$TF" plan -detailed-exitcode -no-color -input=false >/dev/null && echo "no changes"
