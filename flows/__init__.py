"""Prefect flows: one per dvc.yaml stage, plus the whole pipeline.

Importing this package sets the runtime defaults every entry point needs (each can be
overridden from the environment): offline model hub, no telemetry, litellm's bundled model list
(MLflow's LLM judges and optimisers call through it) instead of a download, quiet task-run logs,
MLflow's GenAI evaluation logging its traces one at a time (its 10 threads wait on each other
for a SQLite store, minutes for 100 examples), and a start-up timeout for Prefect's temporary
server sized for a slow machine (Prefect's own 20 s is about what a first start with a new
database takes on 2 busy cores).
"""

import os
import warnings

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # (MLflow reads DO_NOT_TRACK as "true" only)
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    "TRANSFORMERS_VERBOSITY": "error",
    "MPLBACKEND": "Agg",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "MLFLOW_GENAI_EVAL_MAX_WORKERS": "1",
}.items():
    os.environ.setdefault(_key, _value)

# Known, harmless noise in the main job's output: Optuna's experimental-API notices, and
# BoTorch's note when every score so far is equal (the GP standardises them anyway).
warnings.filterwarnings("ignore", message=r".*is experimental")
warnings.filterwarnings("ignore", message=r"Data \(outcome observations\) is not standardized")
