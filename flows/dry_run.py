"""What a run may spend on the black box, before it spends anything (nothing is written)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.budget import plan_run
from components.data import split_task
from flows.settings import PARAMS, blackbox_price, load_params, reference_instruction
from tasks.data import load_task


def dry_run(params_path: Path = PARAMS, overrides: Mapping[str, Any] | None = None) -> str:
    params = load_params(params_path, overrides)
    data = load_task.fn(params.data)
    split = split_task(data, params.data.n_exemplars, params.data.n_validation, params.data.n_test, params.data.seed)
    price = blackbox_price(params)
    baselines = ["the empty instruction"] + (["the reference"] if reference_instruction(params) else [])
    plan = plan_run(split.validation, split.test, params.bo.n_instructions, params.eval.top_k + len(baselines),
                    params.blackbox.max_tokens, params.generator.max_new_tokens, price)
    limits = {k: v for k, v in params.budget.model_dump(exclude={"prices"}).items() if v is not None}
    return "\n".join([
        f"Black box: {params.blackbox.base_url or 'local model server'} ({params.blackbox.model or 'embedded model'})",
        f"At most {plan.calls} calls: {plan.validation_calls} validation ({params.bo.n_instructions} distinct "
        f"instructions x {len(split.validation)} examples; repeated instructions and cached answers cost nothing) "
        f"+ {plan.test_calls} test ({params.eval.top_k} best + {' and '.join(baselines)} x {len(split.test)} "
        "examples)",
        f"At most ~{plan.prompt_tokens} prompt + {plan.completion_tokens} completion tokens",
        "Cost: " + ("unknown (no price for this model; see budget.prices)" if plan.cost is None
                    else f"at most ~US${plan.cost:.4f}"),
        "Budget limits: " + (", ".join(f"{k}={v}" for k, v in limits.items()) or "none"),
    ])


if __name__ == "__main__":
    print(dry_run())
