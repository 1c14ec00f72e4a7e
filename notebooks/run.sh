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
#   - evcxr_jupyter 0.22.0 with `cargo install --locked` at opt-level 1 (the first time only);
#   - the Jupyter runner from PyPI (notebooks/requirements.txt, pinned) in a virtual environment
#     at $BACKLENS_HOME/jupyter-venv (default ~/.cache/backlens/jupyter-venv);
#   - the `rust` kernelspec (evcxr_jupyter --install) into that environment.
#
# Compiled dependencies are shared between notebooks and runs: every kernel builds in the same
# directory, EVCXR_TMPDIR=$BACKLENS_HOME/evcxr, with the crate versions of the workspace's
# Cargo.lock (vendored into $BACKLENS_HOME/vendor, see step 4). The first notebook pays for
# compiling candle and the workspace crates (minutes); later ones, and later runs, only compile
# what changed and their cells.
#
# Environment: BACKLENS_HOME (default ~/.cache/backlens), NOTEBOOK_TIMEOUT (seconds per cell,
# default 3600), RAYON_NUM_THREADS (default: the number of cores). EVCXR_TMPDIR is always set
# as above.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
nb_dir="$root/notebooks"
backlens_home="${BACKLENS_HOME:-$HOME/.cache/backlens}"
venv="$backlens_home/jupyter-venv"
evcxr_version="0.22.0"
# Per cell. Generous because a notebook's first `:dep` cell compiles every dependency when the
# build directory is cold: over 30 minutes on a busy 2-core machine.
cell_timeout="${NOTEBOOK_TIMEOUT:-3600}"

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
    echo "== installing evcxr_jupyter $evcxr_version (cargo install --locked, opt-level 1)"
    t0=$SECONDS
    # The kernel only drives cargo and rustc (and rust-analyzer's type inference for variables
    # kept between cells): opt-level 1 without debug info builds it in less time than the
    # default opt-level 3 (16 min against ~23 on 2 cores), and the notebooks' time is spent in
    # compiling and running their own code, not in the kernel (README.md, "Continuous
    # integration").
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_LTO=false \
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

# 4. One build directory for every kernel, with the crate versions of the workspace's Cargo.lock.
#    Left alone, the kernel resolves versions afresh (its build directory's lock file is pruned by
#    the empty crate each kernel builds at start), and a fresh resolution can pick a combination
#    that does not compile (it did: `unresolved import base64`). So the locked crates are vendored once
#    (`cargo vendor`, ~500 MB, seconds from cargo's cache) into $BACKLENS_HOME/vendor, and
#    $BACKLENS_HOME/.cargo/config.toml, which cargo reads for builds under $BACKLENS_HOME, makes them
#    the only source of crates.io packages there: the kernel resolves to the locked versions,
#    offline. Re-vendored when Cargo.lock changes.
export EVCXR_TMPDIR="$backlens_home/evcxr"
mkdir -p "$EVCXR_TMPDIR" "$backlens_home/.cargo"
# Kernels sharing EVCXR_TMPDIR (and the vendored crates) must not run at the same time.
if command -v flock >/dev/null; then
    exec 9>"$EVCXR_TMPDIR.lock"
    flock 9
fi
if ! cmp -s "$root/Cargo.lock" "$backlens_home/vendor.Cargo.lock" || [[ ! -d "$backlens_home/vendor" ]]; then
    echo "== vendoring the crates of Cargo.lock into $backlens_home/vendor"
    (cd "$root" && cargo vendor --locked --versioned-dirs --quiet "$backlens_home/vendor" >/dev/null)
    cp "$root/Cargo.lock" "$backlens_home/vendor.Cargo.lock"
fi
cat >"$backlens_home/.cargo/config.toml" <<CONFIG
# Written by notebooks/run.sh: builds under $backlens_home (the notebook kernels') use the
# crate versions of the workspace's Cargo.lock, vendored here.
[source.crates-io]
replace-with = "backlens-vendor"

[source.backlens-vendor]
directory = "$backlens_home/vendor"
CONFIG
# evcxr links each cell's library against the toolchain's libstd-*.so with an rpath computed for
# target/.../debug/deps, then loads the copy one directory up: when EVCXR_TMPDIR and the
# toolchain share a prefix (both under $HOME) the rpath misses by one `..` and the kernel dies
# with "dlopen failed". Putting the toolchain's library directory on the search path fixes it.
host="$(rustc -vV | sed -n 's/^host: //p')"
export LD_LIBRARY_PATH="$(rustc --print sysroot)/lib/rustlib/$host/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# evcxr builds every kernel crate in cargo's dev profile at opt-level 2 with debug assertions and
# overflow checks (its generated Cargo.toml); cargo's environment overrides turn both checks off
# for the notebooks, whose computations (dataset sweeps) then run several times faster. Tests,
# not notebooks, are where the assertions run.
export CARGO_PROFILE_DEV_DEBUG_ASSERTIONS=false CARGO_PROFILE_DEV_OVERFLOW_CHECKS=false
if [[ -z "${RAYON_NUM_THREADS:-}" ]]; then
    RAYON_NUM_THREADS="$(nproc 2>/dev/null || echo 1)"
    export RAYON_NUM_THREADS
fi

# 5. Execute. Every notebook runs into a scratch directory with --allow-errors, so that the
#    executed copy always exists; then its outputs are checked: an error output (compile error,
#    failed :dep) or anything on stderr (evcxr reports panics and errors returned by `?` only as
#    stderr text, not as cell errors) fails the notebook. In place, a passing notebook then
#    replaces the committed one; a failing one leaves it untouched.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
check_outputs() {
    "$venv/bin/python" - "$1" <<'PY'
import json, re, sys

ansi = re.compile(r"\x1b\[[0-9;]*m")
# stderr lines that are not errors: the one-time download of the default model.
benign = re.compile(r"^backlens: fetching the default model ")
nb = json.load(open(sys.argv[1]))
problems = []  # (cell index, cell, what went wrong), one per failing cell
for index, cell in enumerate(nb["cells"]):
    found = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "error":
            text = "\n".join(ansi.sub("", line) for line in out.get("traceback", [])) or out.get("evalue", "")
            found.append("error: " + (text or out.get("ename", "(no message)")))
        elif out["output_type"] == "stream" and out["name"] == "stderr":
            text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
            found += ["stderr: " + l for l in text.splitlines() if l.strip() and not benign.match(l)]
    if found:
        problems.append((index, cell, "\n".join(found[:40])))
for index, cell, message in problems[:3]:
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    print(f"--- cell {index}:\n{source}\n--- output:\n{message}", file=sys.stderr)
if problems:
    print(f"{len(problems)} failing cell(s) in {sys.argv[1]}", file=sys.stderr)
    sys.exit(1)
PY
}

if [[ $check -eq 1 ]]; then
    echo "== checking ${#notebooks[@]} notebook(s) (outputs to a temporary directory)"
else
    echo "== executing ${#notebooks[@]} notebook(s) in place"
fi
failed=()
times=()
total0=$SECONDS
for nb in "${notebooks[@]}"; do
    name="$(basename "$nb")"
    echo "== $name"
    t0=$SECONDS
    status=FAILED
    if "$venv/bin/jupyter-nbconvert" --to notebook --execute --allow-errors \
        --ExecutePreprocessor.kernel_name=rust \
        --ExecutePreprocessor.timeout="$cell_timeout" \
        --ExecutePreprocessor.record_timing=False \
        --output-dir "$work" "$nb" && check_outputs "$work/$name"; then
        status=ok
        if [[ $check -eq 0 ]]; then
            cp "$work/$name" "$nb"
        fi
    fi
    [[ $status == ok ]] || failed+=("$name")
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
