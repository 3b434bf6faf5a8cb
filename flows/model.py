"""Stage `model`: the embedded generator (SmolLM2-135M-Instruct GGUF) as an HF folder."""

from __future__ import annotations

from prefect import flow

from flows.settings import EMBEDDED_MODEL
from tasks.generator import convert_embedded_model


@flow(name="convert-model")
def convert_model() -> None:
    convert_embedded_model(EMBEDDED_MODEL)


if __name__ == "__main__":
    convert_model()
