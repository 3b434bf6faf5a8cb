"""Plain library code for InstructZero: no Prefect, no MLflow, no file paths of its own."""
