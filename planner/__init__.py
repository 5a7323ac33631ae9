"""radplan: hardware capacity planner and performance simulator for radiology AI inference.

Public API (the CLI and the dashboard call only these):
    estimate(gpu, model, precision, batch, input_len, output_len, tp, ...) -> dict
    sweep(gpus=[...], models=[...], precisions=[...], batches=[...], input_lens=[...], output_lens=[...], tps=[...])
        -> pandas.DataFrame, one row per configuration
    roofline_table(gpu, model, precision, batch, ...) -> pandas.DataFrame of ops
    list_gpus(), list_models(), load_gpu(id), load_model(id), param_count(spec)
"""
from planner.api import estimate, ridge_point, roofline_table, sweep
from planner.arch.params import active_params, param_count
from planner.catalog import add_specs_dir, list_gpus, list_models, load_gpu, load_model
from planner.errors import PlannerError
from planner.quant import PRECISIONS

__all__ = ["estimate", "sweep", "roofline_table", "ridge_point", "list_gpus", "list_models", "load_gpu",
           "load_model", "param_count", "active_params", "add_specs_dir", "PlannerError", "PRECISIONS"]
__version__ = "0.1.0"
