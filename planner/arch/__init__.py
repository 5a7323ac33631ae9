"""Model families that emit ops and count parameters: decoder LLMs, ViT/Swin/CNN vision models, pipelines."""
from planner.arch.params import active_params, kv_bytes_per_token, param_count, weight_params

__all__ = ["param_count", "active_params", "weight_params", "kv_bytes_per_token"]
