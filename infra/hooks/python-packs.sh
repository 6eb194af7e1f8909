#!/bin/sh
# azd prepackage hook of the `python` service (functions/ServerlessStorm.PythonHost): puts into the Python app's
# folder what the app runs besides its own code, before azd zips it.
#
# - packs/: the repository's packs, as the .NET app ships them (the Python app runs their code);
# - python/: the wrapper storm_python_host.py and the st2common/st2reactor shim package;
# - packs/<pack>/.python_packages: each pack's requirements.txt installed for Linux x86-64, CPython 3.11, from
#   wheels only. One Function app cannot hold a virtualenv per pack, and the platform's remote build installs only
#   the app's own requirements.txt: so each pack gets a folder of its own here, which the relay puts first on
#   PYTHONPATH for that pack's code only.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
app="$root/functions/ServerlessStorm.PythonHost"
shim="$root/functions/ServerlessStorm.Engine/Python/shim"
python="${PYTHON:-python3}"

[ -f "$shim/storm_python_host.py" ] || { echo "python-packs: $shim/storm_python_host.py is missing: the Python host has no wrapper to run" >&2; exit 1; }
command -v "$python" >/dev/null 2>&1 || { echo "python-packs: $python is needed to install the packs' requirements (set PYTHON to another interpreter)" >&2; exit 1; }

# What an earlier deployment copied is replaced, never merged (a removed pack or file must not linger).
rm -rf "$app/packs" "$app/python"
mkdir -p "$app/packs" "$app/python"
cp -R "$shim/." "$app/python/"
for pack in "$root"/packs/*/; do
  name=$(basename "$pack")
  [ -f "$pack/pack.yaml" ] || continue
  mkdir -p "$app/packs/$name"
  # C# projects' sources and build output stay behind: the Python app runs only Python.
  (cd "$pack" && find . -path ./dotnet -prune -o -name bin -prune -o -name obj -prune -o -type f -print) | while IFS= read -r file; do
    mkdir -p "$app/packs/$name/$(dirname "$file")"
    cp "$pack/$file" "$app/packs/$name/$file"
  done
  if [ -s "$pack/requirements.txt" ]; then
    echo "python-packs: installing $name's requirements for Python 3.11 on Linux x86-64"
    "$python" -m pip install --quiet --disable-pip-version-check --no-compile \
      --target "$app/packs/$name/.python_packages" \
      --platform manylinux2014_x86_64 --implementation cp --python-version 3.11 --only-binary=:all: \
      --requirement "$pack/requirements.txt" \
      || { echo "python-packs: $name's requirements.txt could not be installed from wheels for Python 3.11 on Linux x86-64 (a package without such a wheel cannot be installed at deploy time)" >&2; exit 1; }
  fi
done
echo "python-packs: $(find "$app/packs" -mindepth 1 -maxdepth 1 -type d | wc -l | tr -d ' ') pack(s) and the shim are in $app"
