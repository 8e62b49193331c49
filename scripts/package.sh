#!/usr/bin/env bash
# Build what a cluster needs to run featuremill, into dist/ (or --out DIR):
#
#   featuremill-<version>-py3-none-any.whl  the package (Databricks python_wheel_task, pip install on EMR/edge nodes)
#   featuremill.zip                          the same pure-Python package for spark-submit --py-files
#   jobs/*.py                                the spark-submit entry points (scripts/submit.sh JOB)
#   featuremill-env.tar.gz                   (--with-venv) a venv-pack archive with featuremill and its
#                                            dependencies, for --archives featuremill-env.tar.gz#environment
#
# --py-files takes pure Python only; featuremill is pure Python and needs only PyYAML, which
# every Spark platform image we target ships. Use --with-venv when the cluster's Python lacks a
# dependency or you add one with native code. Build that archive on the cluster's OS,
# architecture and Python version (e.g. in an amazonlinux container for EMR): venv-pack does not
# carry the interpreter, the target needs the same Python (see docs/deployment.md).
#
# PySpark and delta-spark are never packed: the platform (or spark-submit --packages) provides them.
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
with_venv=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --with-venv) with_venv=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (use --out DIR, --with-venv)" >&2; exit 2 ;;
  esac
done

log() { printf '[package] %s\n' "$*" >&2; }
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=$(command -v python3)
mkdir -p "$out"
out=$(cd "$out" && pwd)
version=$("$py" -c 'import re,sys; print(re.search(r"__version__ = \"(.+?)\"", open("lib/featuremill/__init__.py").read()).group(1))')

log "wheel featuremill $version"
rm -f "$out"/featuremill-*.whl
# No build isolation when setuptools is already there: no network needed, same result.
if "$py" -c 'import setuptools, wheel' >/dev/null 2>&1; then
  "$py" -m pip wheel --quiet --no-deps --no-build-isolation -w "$out" .
else
  "$py" -m pip wheel --quiet --no-deps -w "$out" .
fi
rm -rf build lib/featuremill.egg-info

log "featuremill.zip for --py-files"
"$py" - "$out/featuremill.zip" <<'PY'
import pathlib, sys, zipfile
# Reproducible: sorted entries, fixed timestamps, no bytecode.
target = pathlib.Path(sys.argv[1])
files = sorted(p for p in pathlib.Path("lib/featuremill").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
    for path in files:
        info = zipfile.ZipInfo(str(path.relative_to("lib")), date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, path.read_bytes())
PY

mkdir -p "$out/jobs"
cp jobs/*.py "$out/jobs/"

if [ "$with_venv" = 1 ]; then
  log "venv-pack archive featuremill-env.tar.gz ($("$py" --version))"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$py" -m venv "$work/env"
  "$work/env/bin/python" -m pip install --quiet --upgrade pip
  "$work/env/bin/python" -m pip install --quiet -c constraints.txt "$out"/featuremill-"$version"-py3-none-any.whl venv-pack==0.2.0
  rm -f "$out/featuremill-env.tar.gz"
  "$work/env/bin/venv-pack" --prefix "$work/env" --output "$out/featuremill-env.tar.gz" --quiet
fi

log "done: $(cd "$out" && ls -1 | tr '\n' ' ')"
