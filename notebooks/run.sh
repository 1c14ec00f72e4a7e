#!/usr/bin/env bash
# Executes the notebooks headlessly with the Rust (evcxr) Jupyter kernel; fails on any cell error.
#
#   notebooks/run.sh [--check] [NOTEBOOK ...]
#
#   (no option)  execute in place: the committed outputs (figures, tables) are regenerated.
#   --check      execute into a temporary directory and leave the tree untouched (CI).
#   NOTEBOOK     run only these (e.g. 02-token-tables or notebooks/02-token-tables.ipynb);
#                default: every notebooks/*.ipynb, in name order.
#
# Installs what is missing, once:
#   - evcxr_jupyter 0.22.0 with `cargo install --locked` (~20 min on 2 cores, the first time only);
#   - the Jupyter runner from PyPI (notebooks/requirements.txt, pinned) in a virtual environment
#     at $BACKLENS_HOME/jupyter-venv (default ~/.cache/backlens/jupyter-venv);
#   - the `rust` kernelspec (evcxr_jupyter --install) into that environment.
#
# Compiled dependencies are shared between notebooks and runs: every kernel builds in the same
# directory, EVCXR_TMPDIR (default $BACKLENS_HOME/evcxr), seeded with the workspace's Cargo.lock
# so that notebooks use the crate versions the tests use. The first notebook pays for compiling
# candle and the workspace crates (minutes); later ones only compile their cells.
#
# Environment: BACKLENS_HOME, EVCXR_TMPDIR, NOTEBOOK_TIMEOUT (seconds per cell, default 1800),
# RAYON_NUM_THREADS (default: the number of cores).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
nb_dir="$root/notebooks"
backlens_home="${BACKLENS_HOME:-$HOME/.cache/backlens}"
venv="$backlens_home/jupyter-venv"
evcxr_version="0.22.0"
cell_timeout="${NOTEBOOK_TIMEOUT:-1800}"

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }

check=0
notebooks=()
for arg in "$@"; do
    case "$arg" in
        --check) check=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "run.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
        *)
            name="$(basename "$arg" .ipynb).ipynb"
            if [[ ! -f "$nb_dir/$name" ]]; then
                echo "run.sh: no notebook $nb_dir/$name" >&2
                exit 2
            fi
            notebooks+=("$nb_dir/$name")
            ;;
    esac
done
if [[ ${#notebooks[@]} -eq 0 ]]; then
    shopt -s nullglob
    notebooks=("$nb_dir"/*.ipynb)
    shopt -u nullglob
fi
if [[ ${#notebooks[@]} -eq 0 ]]; then
    echo "run.sh: no notebook in $nb_dir" >&2
    exit 1
fi

mkdir -p "$backlens_home"

# 1. The Rust kernel. (evcxr_jupyter has no --version; cargo's install list records it.)
cargo_bin="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
if ! cargo install --list | grep -qx "evcxr_jupyter v$evcxr_version:" || [[ ! -x "$cargo_bin/evcxr_jupyter" ]]; then
    echo "== installing evcxr_jupyter $evcxr_version (cargo install --locked; ~20 min on 2 cores)"
    t0=$SECONDS
    cargo install --locked evcxr_jupyter --version "$evcxr_version"
    echo "== evcxr_jupyter installed in $((SECONDS - t0)) s"
fi
evcxr="$cargo_bin/evcxr_jupyter"

# 2. The Jupyter runner, pinned.
requirements="$nb_dir/requirements.txt"
if [[ ! -x "$venv/bin/jupyter-nbconvert" ]] || ! cmp -s "$requirements" "$venv/backlens-requirements.txt"; then
    echo "== creating $venv from notebooks/requirements.txt"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/backlens-requirements.txt"
fi

# 3. The `rust` kernelspec, inside the environment (evcxr_jupyter --install writes to
#    $JUPYTER_PATH/kernels/rust). Rewritten every run: cheap, and it follows a reinstalled binary.
export JUPYTER_PATH="$venv/share/jupyter"
"$evcxr" --install >/dev/null

# 4. One build directory for every kernel, seeded with the workspace's lock file.
export EVCXR_TMPDIR="${EVCXR_TMPDIR:-$backlens_home/evcxr}"
mkdir -p "$EVCXR_TMPDIR"
cp "$root/Cargo.lock" "$EVCXR_TMPDIR/Cargo.lock"
# evcxr links each cell's library against the toolchain's libstd-*.so with an rpath computed for
# target/.../debug/deps, then loads the copy one directory up: when EVCXR_TMPDIR and the
# toolchain share a prefix (both under $HOME) the rpath misses by one `..` and the kernel dies
# with "dlopen failed". Putting the toolchain's library directory on the search path fixes it.
host="$(rustc -vV | sed -n 's/^host: //p')"
export LD_LIBRARY_PATH="$(rustc --print sysroot)/lib/rustlib/$host/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [[ -z "${RAYON_NUM_THREADS:-}" ]]; then
    RAYON_NUM_THREADS="$(nproc 2>/dev/null || echo 1)"
    export RAYON_NUM_THREADS
fi
# Kernels sharing EVCXR_TMPDIR must not run at the same time.
if command -v flock >/dev/null; then
    exec 9>"$EVCXR_TMPDIR.lock"
    flock 9
fi

# 5. Execute.
if [[ $check -eq 1 ]]; then
    out_dir="$(mktemp -d)"
    trap 'rm -rf "$out_dir"' EXIT
    where=(--output-dir "$out_dir")
    echo "== checking ${#notebooks[@]} notebook(s) (outputs to a temporary directory)"
else
    where=(--inplace)
    echo "== executing ${#notebooks[@]} notebook(s) in place"
fi
failed=()
times=()
total0=$SECONDS
for nb in "${notebooks[@]}"; do
    name="$(basename "$nb")"
    echo "== $name"
    t0=$SECONDS
    if "$venv/bin/jupyter-nbconvert" --to notebook --execute \
        --ExecutePreprocessor.kernel_name=rust \
        --ExecutePreprocessor.timeout="$cell_timeout" \
        --ExecutePreprocessor.record_timing=False \
        "${where[@]}" "$nb"; then
        status=ok
    else
        status=FAILED
        failed+=("$name")
    fi
    times+=("$(printf '%-32s %6d s  %s' "$name" $((SECONDS - t0)) "$status")")
    echo "== $name: $status in $((SECONDS - t0)) s"
done

echo "== notebook wall times"
printf '%s\n' "${times[@]}"
echo "total: $((SECONDS - total0)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run.sh: failed: ${failed[*]}" >&2
    exit 1
fi
