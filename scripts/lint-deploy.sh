#!/usr/bin/env bash
# Static checks of deploy/: cfn-lint on the CloudFormation template (no errors, no warnings) and
# checkov on the template and the Dockerfile (every skipped check is justified where it is
# skipped, in a `checkov:skip=ID: reason` comment). Both come from PyPI, pinned, into .venv-lint
# (apart from the tests' .venv, whose moto pins other AWS libraries).
set -euo pipefail
cd "$(dirname "$0")/.."
cfn_lint_version=1.58.0
checkov_version=3.3.30
venv=.venv-lint
installed() { "$venv/bin/pip" show "$1" 2>/dev/null | grep -q "^Version: $2$"; }
if ! installed cfn-lint "$cfn_lint_version" || ! installed checkov "$checkov_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$cfn_lint_version" "checkov==$checkov_version"
fi
template=deploy/cloudformation/infrastructure-fargate.yaml
"$venv/bin/cfn-lint" "$template"
echo "cfn-lint: $template clean"
# Every skip must say why.
if grep -nE 'checkov:skip=[A-Z0-9_]+ *(:? *$)' -r deploy; then
  echo "a checkov skip above has no justification" >&2
  exit 1
fi
# --skip-download: no calls to the vendor's platform (these machines may not reach it).
"$venv/bin/checkov" --quiet --compact --skip-download --framework cloudformation dockerfile -d deploy
echo "checkov: deploy/ clean ($(grep -rho 'checkov:skip=[A-Z0-9_]*' deploy | wc -l) skip comments, each with its reason)"
