"""The GPU campaign's plan (benchmarks/gpu_campaign.py): every step parses as a planner command and every
measured configuration fits an H100's memory by the backend's own footprint check, so that none of a lent GPU's
minutes goes to a refused run; new-file detection and packing."""
import importlib.util
import sys
import tarfile
from pathlib import Path

import pytest

from planner.catalog import load_model
from planner.cli import build_parser
from planner.measure.footprint import FIT_FRACTION, RUNTIME_BYTES, run_footprint

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gpu_campaign", ROOT / "benchmarks" / "gpu_campaign.py")
gc = importlib.util.module_from_spec(_spec)
sys.modules["gpu_campaign"] = gc
_spec.loader.exec_module(gc)

H100_BYTES = 81559 * 2**20      # nvidia-smi's total on the lent H100 (/work/.library/device/KINDS.md)
H100_FLUSH = 4 * 50 * 2**20     # profiler.flush_bytes: 4x the 50 MB L2 torch reports there


def _all_steps():
    return [s for steps in gc.STAGES.values() for s in steps] + list(gc.SMOKE)


@pytest.mark.parametrize("step", _all_steps(), ids=lambda s: s.name)
def test_every_step_is_a_valid_planner_command(step):
    argv = gc.planner_argv(step, "cuda", Path("/tmp/root"))
    if step.script:                                   # the preflight: a script of this checkout
        assert (ROOT / step.script).is_file() and argv == [sys.executable, str(ROOT / step.script)]
        return
    assert argv[:3] == [sys.executable, "-m", "planner"]
    args = build_parser().parse_args(argv[3:])
    assert args.device == "cuda" and args.out == "/tmp/root"


def _measure_configs():
    for stage, steps in gc.STAGES.items():
        for s in steps:
            if s.script or s.args[0] != "measure":
                continue
            args = build_parser().parse_args(list(gc.planner_argv(s, "cuda", Path("/r"))[3:]))
            for b in (int(x) for x in args.batch.split(",")):
                yield stage, s.name, args, b


@pytest.mark.parametrize("stage,name,args,batch", list(_measure_configs()),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_every_gpu_configuration_fits_an_h100(stage, name, args, batch):
    spec = load_model(args.model)
    parts = run_footprint(spec, args.layers, 2, batch, args.input_len, args.output_len, H100_FLUSH)
    assert sum(parts.values()) <= FIT_FRACTION * H100_BYTES, (name, batch, parts)


def test_footprint_of_the_largest_step_by_hand():
    """Llama-3-70B, 2 layers, batch 64, 2048 + 64 tokens, bf16 (d 8192, d_ff 28672, 8 KV heads of 128, vocab
    128256): weights 2 x (4 x 8192^2 x ... ) come from param_count; KV 2 x 2 x 64 x 2112 x 8 x 128 x 2 B;
    activations 64 x 2048 x (4 x 28672 + 8 x 8192) x 2 B."""
    spec = load_model("llama-3-70b")
    parts = run_footprint(spec, 2, 2, 64, 2048, 64, H100_FLUSH)
    assert parts["kv_cache"] == 2 * 2 * 64 * 2112 * 8 * 128 * 2
    assert parts["activations"] == 64 * 2048 * (4 * 28672 + 8 * 8192) * 2
    assert parts["runtime"] == RUNTIME_BYTES
    assert 45e9 < sum(parts.values()) < 0.9 * H100_BYTES


def test_a_configuration_too_big_for_the_h100_would_be_caught():
    """The check above can fail: Llama-2-7B whole, batch 64 at 2048 + 64 tokens (66 GiB of KV cache beside
    12.6 GiB of weights) is what the plan measures at 8 layers instead."""
    parts = run_footprint(load_model("llama-2-7b"), None, 2, 64, 2048, 64, H100_FLUSH)
    assert sum(parts.values()) > FIT_FRACTION * H100_BYTES


def test_new_files_and_pack(tmp_path):
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    old = root / "dev" / "old.csv"
    old.write_text("a")
    before = gc.files_under(root)
    new = root / "dev" / "m" / "run.csv"
    new.parent.mkdir()
    new.write_text("b")
    assert gc.new_files(before, root) == [new]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "summary.txt").write_text("ok")
    archive = tmp_path / "out" / "campaign-A.tar.gz"
    gc.pack(archive, root, [new], logs)
    with tarfile.open(archive) as t:
        assert sorted(t.getnames()) == ["campaign-logs/campaign-A/summary.txt", "dev/m/run.csv"]
    assert not list(archive.parent.glob("*.tmp"))
