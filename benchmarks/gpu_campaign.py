"""The GPU measurement campaign (issue 6) as one command per stage, for a lent H100/H200 and its 30 minutes.

A lent machine has torch, CUDA and nvidia-ml-py but not pydantic (and nothing can be fetched there), each command
may run 10 minutes, and the machine goes back 30 s after a command ends. So every stage is self-contained: it
runs its steps (stage A first a CUDA preflight, benchmarks/cuda_preflight.py; then planner microbench and
measure) one after another as subprocesses, starts none that the stage's
budget cannot hold (and stops one that outruns it: run files are written atomically, so a stopped run leaves
nothing half-written), validates every run it made, and packs the new files (profile, runs, traces, logs,
environment) into one archive under --out-dir ($OUT on the device machine; the tool brings back at most 8
files from it, so nothing else is written there). Stage B validates against the profile stage A brought back, so
unpack A's archive into data/measurements/ before calling B, and name the same kind in both calls
(kind="nvidia-h100-x1"): a call that names none may land on an H200, another device with another profile.

Here, before a lease (wheels of the packages the GPU image lacks, into the ignored .whl/):
    make gpu-wheels
On the device machine (the `run` tool; carry .whl):
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && python3 benchmarks/gpu_campaign.py --stage A
Back here:
    tar -xzf <files_at>/campaign-A.tar.gz -C data/measurements/   # then planner validate, commit
A smoke test of the orchestration on this CPU (quick profile, one tiny run per step, into a scratch root):
    .venv/bin/python benchmarks/gpu_campaign.py --smoke --out-dir /tmp/campaign-smoke
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESERVE_S = 45.0        # kept for validation and packing at the end of a stage
VALIDATE_TIMEOUT_S = 30.0
MIN_STEP_S = 30.0       # no step starts with less than this left


@dataclass(frozen=True)
class Step:
    name: str
    args: tuple[str, ...]          # planner's arguments (without the measurements root), or a script's
    script: str | None = None      # a script of this checkout to run instead of the planner (the preflight)


def _measure(model: str, precisions: str, batches: str, *, inp: int | None = None, out: int | None = None,
             layers: int | None = None, trace: bool = False, reps: int | None = None) -> tuple[str, ...]:
    a = ["measure", "--model", model, "--precision", precisions, "--batch", batches, "--device", "{device}"]
    a += ["--input-len", str(inp)] if inp else []
    a += ["--output-len", str(out)] if out else []
    a += ["--layers", str(layers)] if layers else []
    a += ["--reps", str(reps)] if reps else []
    return tuple(a + ([] if trace else ["--no-trace"]))


# Issue 6's list, most valuable first within each stage (a stage that runs short loses its tail). KV cache of
# Llama-2-7B (32 layers, 32 KV heads of 128, bf16): 0.5 MiB per token, so batch 64 at 2048 + 64 tokens needs
# 66 GiB beside 12.6 GiB of weights: at that shape 8 layers are built and scaled. 70B models: 2 layers, scaled.
# Decode: 32 output tokens (31 steps) and 3 repetitions: a profiled eager decode step of the whole 7B model
# records ~2.5k ops, and the profiler's post-processing of 63 steps x 5 repetitions would take minutes per run.
LLM = {"out": 32, "reps": 3}
STAGES: dict[str, tuple[Step, ...]] = {
    "A": (
        Step("cuda preflight", (), script="benchmarks/cuda_preflight.py"),
        Step("microbench", ("microbench", "--device", "{device}")),
        Step("llama-2-7b i512 b1 (traced)", _measure("llama-2-7b", "bf16,fp8,w8a8,w8a8-o1", "1", inp=512,
                                                     trace=True, **LLM)),
        Step("densenet-121 fp16 (traced)", _measure("densenet-121", "fp16", "1,256", trace=True)),
        Step("vit-b16 fp16", _measure("vit-b16", "fp16", "1,256")),
        Step("llama-2-7b i512 b64", _measure("llama-2-7b", "bf16,fp8,w8a8,w8a8-o1", "64", inp=512, **LLM)),
    ),
    "B": (
        Step("llama-2-70b 2 layers i512", _measure("llama-2-70b", "bf16,fp8,w8a8,w8a8-o1", "1,64", inp=512,
                                                   layers=2, **LLM)),
        Step("llama-2-7b i2048 b1", _measure("llama-2-7b", "bf16,fp8,w8a8", "1", inp=2048, **LLM)),
        Step("llama-2-7b i2048 b64, 8 layers", _measure("llama-2-7b", "bf16,fp8,w8a8", "64", inp=2048, layers=8,
                                                        **LLM)),
        Step("llama-3-70b 2 layers i2048", _measure("llama-3-70b", "bf16,fp8,w8a8", "1,64", inp=2048, layers=2,
                                                    **LLM)),
    ),
}

# The same orchestration on this CPU: a quick profile and one small run per kind of step.
SMOKE: tuple[Step, ...] = (
    Step("microbench (quick)", ("microbench", "--device", "{device}", "--quick")),
    Step("llama-2-7b 1 layer", _measure("llama-2-7b", "fp32,w8a8", "1", inp=16, out=4, layers=1, trace=True,
                                        reps=1)),
    Step("densenet-121", _measure("densenet-121", "fp32", "1", reps=1)),
)


def planner_argv(step: Step, device: str, root: Path) -> list[str]:
    """The subprocess command of a step: this interpreter running the planner package of this checkout (or the
    step's script)."""
    if step.script:
        return [sys.executable, str(REPO / step.script), *step.args]
    args = [a.replace("{device}", device) for a in step.args]
    return [sys.executable, "-m", "planner", *args, "--out", str(root)]


def files_under(root: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def new_files(before: dict[Path, float], root: Path) -> list[Path]:
    """Files added or rewritten under root since ``before``."""
    return sorted(p for p, t in files_under(root).items() if before.get(p) != t)


def run_step(step: Step, device: str, root: Path, log: Path, timeout_s: float) -> dict:
    """Run one step, its output into ``log``; a step that outruns ``timeout_s`` is stopped."""
    argv = planner_argv(step, device, root)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (os.environ.get("PYTHONPATH", ""), str(REPO)) if p)}
    t0 = time.monotonic()
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + " ".join(argv) + "\n")
        f.flush()
        try:
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            rc = "stopped at the stage's budget"
    return {"step": step.name, "command": " ".join(argv[2:]), "rc": rc, "seconds": round(time.monotonic() - t0, 1),
            "log": log.name}


def validate_runs(csvs: list[Path], log_dir: Path) -> list[dict]:
    """planner validate --json on every new run; a failure is recorded, not raised."""
    out = []
    for csv in csvs:
        argv = [sys.executable, "-m", "planner", "validate", str(csv), "--json"]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=VALIDATE_TIMEOUT_S,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                   q for q in (os.environ.get("PYTHONPATH", ""), str(REPO)) if q)})
            r = json.loads(p.stdout) if p.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError) as e:
            out.append({"run": csv.name, "error": [f"{type(e).__name__}: {e}"]})
            continue
        if r is None:
            out.append({"run": csv.name, "error": (p.stderr or p.stdout).strip().splitlines()[-1:]})
            continue
        out.append({"run": csv.name, "model": r.get("model"), "precision": r.get("precision"),
                    "op_mdape_pct": r.get("op_mdape_pct"), "e2e": {ph: e.get("error_pct") for ph, e in
                                                                 (r.get("e2e") or {}).items()},
                    "speedups": r.get("speedups"), "power": r.get("power")})
    (log_dir / "validate.json").write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    return out


def environment(device: str) -> str:
    """What ran the stage: nvidia-smi, python, torch and the planner's packages."""
    lines = [f"date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}", f"python: {sys.version.split()[0]}"]
    try:
        import torch
        lines.append(f"torch: {torch.__version__} cuda {torch.version.cuda}")
    except ImportError:
        lines.append("torch: not importable")
    for cmd in (["git", "rev-parse", "HEAD"], ["nvidia-smi", "-q"]):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=30)
            lines.append(f"$ {' '.join(cmd)}\n{p.stdout.strip()}")
        except (OSError, subprocess.TimeoutExpired) as e:
            lines.append(f"$ {' '.join(cmd)}: {e}")
    return "\n".join(lines) + "\n"


def pack(archive: Path, root: Path, files: list[Path], extra_dir: Path) -> None:
    """A gzipped tar of the new files (paths relative to the measurements root) and the stage's logs under
    campaign-logs/, written atomically."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as t:
        for f in files:
            t.add(f, arcname=str(f.relative_to(root)))
        for f in sorted(extra_dir.iterdir()):
            t.add(f, arcname=f"campaign-logs/{archive.name.split('.')[0]}/{f.name}")
    os.replace(tmp, archive)


def summary_lines(results: list[dict], validated: list[dict]) -> list[str]:
    lines = [f"{r['step']:<34} rc={r['rc']} {r['seconds']:>7.1f} s" for r in results]
    for v in validated:
        if "error" in v:
            lines.append(f"  {v['run']}: validate failed: {v['error']}")
            continue
        e2e = ", ".join(f"{ph} {e:+.1f} %" for ph, e in v["e2e"].items() if e is not None)
        mdape = v["op_mdape_pct"]
        lines.append(f"  {v['run']:<40} {v['precision'] or '?':<10} op MdAPE "
                     f"{'-' if mdape is None else f'{mdape:.1f} %'}; e2e {e2e}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=sorted(STAGES), help="which stage's steps to run")
    ap.add_argument("--smoke", action="store_true", help="the orchestration on this CPU, quick and small")
    ap.add_argument("--device", default=None, help="default: cuda (smoke: cpu)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="wall seconds for the whole stage (default 540)")
    ap.add_argument("--root", default=None, help="measurements root (default data/measurements; smoke: a scratch "
                                                 "root under --out-dir)")
    ap.add_argument("--out-dir", default=os.environ.get("OUT") or "/tmp/campaign", help="where the archive goes "
                    "(default $OUT, the device tool's folder; only the archive is written there)")
    args = ap.parse_args(argv)
    if bool(args.stage) == args.smoke:
        ap.error("give exactly one of --stage or --smoke")
    t_end = time.monotonic() + args.budget_s
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "smoke" if args.smoke else f"campaign-{args.stage}"
    device = args.device or ("cpu" if args.smoke else "cuda")
    root = Path(args.root) if args.root else (out_dir / "smoke-root" if args.smoke else REPO / "data" / "measurements")
    # the device tool brings back at most 8 files from $OUT: only the archive goes there, the logs inside it
    log_dir = Path(tempfile.mkdtemp(prefix=f"{name}-logs-"))
    (log_dir / "environment.txt").write_text(environment(device), encoding="utf-8")
    before = files_under(root)
    results = []
    for i, step in enumerate(SMOKE if args.smoke else STAGES[args.stage]):
        left = t_end - time.monotonic() - RESERVE_S
        if left < MIN_STEP_S:
            results.append({"step": step.name, "rc": "not started: the stage's budget is spent", "seconds": 0.0})
            continue
        results.append(run_step(step, device, root, log_dir / f"{i:02d}.log", left))
        print(f"{step.name}: rc={results[-1]['rc']} in {results[-1]['seconds']} s", flush=True)
    made = new_files(before, root)
    (log_dir / "steps.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    archive = out_dir / f"{name}.tar.gz"
    pack(archive, root, made, log_dir)         # first: whatever validation does, the runs come back
    try:
        validated = validate_runs([p for p in made if p.suffix == ".csv"], log_dir)
        lines = summary_lines(results, validated)
    except Exception as e:  # noqa: BLE001 - the archive above holds the data; say why there is no table
        lines = summary_lines(results, []) + [f"validation failed: {type(e).__name__}: {e}"]
    (log_dir / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pack(archive, root, made, log_dir)         # again, with the validation and the summary
    print("\n".join(lines))
    print(f"{len(made)} new files under {root}; archive {archive} ({archive.stat().st_size / 2**20:.1f} MiB)")
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
