"""Every CLI command runs; --json parses with the DESIGN.md keys; bad input -> exit 2, one line, no traceback."""
import json
import subprocess
import sys

import pytest

from planner.cli import main


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_gpus_json_lists_ids(capsys):
    rc, out, _ = run(capsys, "gpus", "--json")
    ids = {g["id"] for g in json.loads(out)["gpus"]}
    assert rc == 0 and {"h100-sxm", "a100-sxm-80gb", "mi300x", "rtx-3090", "v100-sxm2-16gb"} <= ids
    h100 = next(g for g in json.loads(out)["gpus"] if g["id"] == "h100-sxm")
    assert h100["bf16_tflops"] == 989.5 and h100["fp8_tflops"] == 1979


def test_gpus_table(capsys):
    rc, out, _ = run(capsys, "gpus")
    assert rc == 0 and "h100-sxm" in out and "Dense" in out


def test_models_json(capsys):
    rc, out, _ = run(capsys, "models", "--json")
    models = {m["id"]: m for m in json.loads(out)["models"]}
    assert rc == 0 and {"llama-2-7b", "densenet-121", "r2gengpt"} <= set(models)
    assert models["llama-2-7b"]["params_b"] == pytest.approx(6.74, rel=0.01)


def test_predict_json_keys(capsys):
    rc, out, _ = run(capsys, "predict", "--gpu", "h100-sxm", "--model", "llama-3-70b", "--precision", "fp8",
                     "--batch", "8", "--input-len", "800", "--output-len", "200", "--tp", "1", "--json")
    r = json.loads(out)
    assert rc == 0
    for k in ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "memory_gb_per_gpu", "fits", "avg_power_w", "energy_j"):
        assert k in r


def test_predict_image_model(capsys):
    rc, out, _ = run(capsys, "predict", "--gpu", "l40s", "--model", "densenet-121", "--precision", "fp16", "--batch", "64", "--json")
    r = json.loads(out)
    assert rc == 0 and r["images_per_s"] > 0 and r["latency_s"] > 0


def test_predict_text(capsys):
    rc, out, _ = run(capsys, "predict", "--gpu", "h100-sxm", "--model", "llama-2-7b")
    assert rc == 0 and "TPOT" in out and "memory-bound" in out


def test_roofline_table_and_json(capsys):
    rc, out, _ = run(capsys, "roofline", "--gpu", "h100-sxm", "--model", "llama-2-7b", "--precision", "w8a8", "--batch", "16")
    assert rc == 0 and "attn_qkv" in out and "ridge point" in out
    rc, out, _ = run(capsys, "roofline", "--gpu", "h100-sxm", "--model", "llama-2-7b", "--precision", "w8a8",
                     "--batch", "16", "--json")
    data = json.loads(out)
    assert data["ridge_flop_per_byte"] == pytest.approx(1979e12 / 3.35e12)
    assert {"prefill", "decode"} == {o["phase"] for o in data["ops"]}


def test_precisions_and_summary(capsys):
    assert run(capsys, "precisions", "--json")[0] == 0
    assert run(capsys, "summary")[0] == 0


@pytest.mark.parametrize("args,needle", [
    (["predict", "--gpu", "h100-sxmm", "--model", "llama-2-7b"], "h100-sxm"),
    (["predict", "--gpu", "h100-sxm", "--model", "llama-2-7b", "--batch", "0"], "batch"),
    (["predict", "--gpu", "h100-sxm", "--model", "llama-2-7b", "--output-len", "-5"], "output_len"),
    (["predict", "--gpu", "a100-sxm-80gb", "--model", "llama-2-7b", "--precision", "fp8"], "not supported"),
    (["predict", "--gpu", "h100-sxm", "--model", "llama-2-7b", "--precision", "int3"], "precision"),
    (["predict", "--gpu", "h100-sxm", "--model", "llama-2-7b", "--engine", "turbo"], "engine"),
])
def test_bad_input_exit_2_one_line(capsys, args, needle):
    rc, out, err = run(capsys, *args)
    assert rc == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_malformed_spec_dir_names_file_and_field(capsys, tmp_path):
    (tmp_path / "bad-gpu.yaml").write_text((open("hw_specs/l4.yaml").read()
                                            .replace("id: l4", "id: bad-gpu")
                                            .replace("bandwidth_gb_s: 300", "bandwidth_gb_s: -300")))
    rc, out, err = run(capsys, "--specs-dir", str(tmp_path), "gpus")
    assert rc == 2 and "bad-gpu.yaml" in err and "memory.bandwidth_gb_s" in err and "-300" in err
    from planner import catalog
    catalog._extra_dirs.clear()
    catalog._load_accelerators.cache_clear()


def test_user_spec_dir_adds_accelerator(tmp_path, monkeypatch):
    (tmp_path / "my-l4.yaml").write_text(open("hw_specs/l4.yaml").read().replace("id: l4", "id: my-l4"))
    monkeypatch.setenv("RADPLAN_SPECS_DIR", str(tmp_path))
    import planner
    from planner import catalog
    catalog._load_accelerators.cache_clear()
    assert "my-l4" in planner.list_gpus()
    assert planner.estimate("my-l4", "llama-3-8b", "fp8", 1, 128, 16)["tpot_s"] > 0


def test_console_entry_point_runs():
    p = subprocess.run([sys.executable, "-m", "planner", "predict", "--gpu", "nope", "--model", "llama-2-7b"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "unknown GPU id 'nope'" in p.stderr and "Traceback" not in p.stderr
