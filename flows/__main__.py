"""The command line: instructzero (or python -m flows) {run,sweep,evaluate,revalidate,dry-run,tasks,deploy,serve}."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from components.errors import BlackBoxError, BudgetError, ConfigError, TaskDataError, WorkerError
from components.params import Params, override_argument
from flows.settings import PARAMS, Workspace, load_params, run_workspace

OK, FAILED, BAD_INPUT, DROPPED = 0, 1, 2, 3
EPILOG = """exit codes: 0 done; 1 the run failed (black box, budget, other error); 2 bad input
(params, task data, command line); 3 revalidate flagged an instruction whose test score dropped;
130, 143 stopped by Ctrl-C or SIGTERM (run the same command again to resume)"""


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="instructzero", description="Find the best instruction for a black-box "
                                   "LLM (InstructZero) and operate it: run, evaluate, revalidate. (`python -m flows` "
                                   "is the same command.)", epilog=EPILOG)
    main.add_argument("--debug", action="store_true",
                      help="show the traceback of a failure the run explains in one message")
    sub = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, params: bool = True) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help, description=help, epilog=EPILOG)
        if params:
            cmd.add_argument("--params", type=Path, default=PARAMS, help="the parameter file (default: %(default)s)")
        return cmd

    def overrides(cmd: argparse.ArgumentParser, help: str) -> None:
        cmd.add_argument("--set", dest="overrides", action="append", type=override_argument, default=[],
                         metavar="KEY=VALUE", help=help)

    def prefect_file(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--prefect-file", type=Path, default=Path("prefect.yaml"), help="default: %(default)s")

    run = command("run", "Optimise an instruction and score it on the test set (the whole pipeline).")
    overrides(run, "override a parameter, e.g. --set data.task=parity --set bo.n_trials=20; the run then happens "
                   "in its own workspace (runs/<task> unless --workspace)")
    run.add_argument("--workspace", type=Path, help="directory for this run's params, outputs and study")
    sweep = command("sweep", "Run the pipeline for every task x black-box model x seed as flow runs on the work pool "
                    "(scale.work_pool; needs PREFECT_API_URL and workers), each in sweeps/NAME/TASK-MODEL-SEED/, "
                    "and summarise the grid in sweeps/NAME/summary.md.")
    sweep.add_argument("--tasks", nargs="+", required=True, help="task names (of data.source)")
    sweep.add_argument("--models", nargs="+", help="black-box models (default: blackbox.model)")
    sweep.add_argument("--seeds", nargs="+", type=int, default=[0], help="default: 0")
    sweep.add_argument("--name", default="sweep", help="the sweep's folder and MLflow experiment suffix")
    overrides(sweep, "override a parameter for every run, as for run")
    command("evaluate", "Score the last run's best instructions (outputs/candidates.json) on the test set again.")
    reval = command("revalidate", "Re-score every task's production instruction (MLflow Prompt Registry) on its "
                    "test set with today's black box; log the drift and flag drops (exit code 3).")
    reval.add_argument("--task", dest="tasks", action="append", help="only this task (repeatable)")
    reval.add_argument("--base-url", help="another OpenAI-compatible endpoint (key: $OPENAI_API_KEY)")
    reval.add_argument("--model", help="another black-box model (with --base-url: the endpoint's model name)")
    reval.add_argument("--tolerance", type=float, default=0.05,
                       help="flag a drop larger than this (default: %(default)s)")
    dry = command("dry-run", "Print the most a run may spend (calls, tokens, cost) without spending anything.")
    overrides(dry, "override a parameter, as for run")
    tasks = command("tasks", "List the built-in tasks and those found at a location.", params=False)
    tasks.add_argument("location", nargs="?", type=Path,
                       help="an Instruction Induction directory (with raw/) or a BIG-bench directory")
    prefect_file(command("deploy", "Register prefect.yaml's deployments on their work pool (then run "
                         "`prefect worker start --pool instructzero`).", params=False))
    prefect_file(command("serve", "Serve prefect.yaml's scheduled deployments from this process (no work pool "
                         "needed); stop with Ctrl-C.", params=False))
    return main


def list_tasks(location: Path | None) -> list[str]:
    """``source/task`` names: the built-in ones and those under ``location``."""
    from components.builtin_tasks import BUILTIN_TASKS

    names = [f"builtin/{t}" for t in BUILTIN_TASKS]
    if location is not None:
        if not location.is_dir():
            raise TaskDataError(f"{location}: not a directory")
        names += [f"instruction_induction/{p.stem}" for p in sorted((location / "raw" / "induce").glob("*.json"))]
        names += [f"bigbench/{p.parent.name}" for p in sorted(location.glob("*/task.json"))]
    return names


def main(argv: Sequence[str] | None = None) -> int:
    from flows.failures import DATABASE_ERRORS, database_failure, quiet_known_failures

    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    quiet_known_failures(args.debug)
    try:
        return _dispatch(args, shlex.join(["instructzero", *argv]))
    except (ConfigError, TaskDataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    except (BlackBoxError, BudgetError, WorkerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return FAILED
    except DATABASE_ERRORS as err:
        print(f"error: {database_failure(err)}", file=sys.stderr)
        return FAILED


def _check_arguments(args: argparse.Namespace) -> None:
    """What argparse cannot check: files named on the command line, options that go together."""
    if getattr(args, "workspace", None) is not None and args.workspace.exists() and not args.workspace.is_dir():
        raise ConfigError(f"--workspace {args.workspace}: a file, not a directory")
    if getattr(args, "prefect_file", None) is not None and not args.prefect_file.is_file():
        raise ConfigError(f"--prefect-file {args.prefect_file}: no such file")
    if args.command == "revalidate" and args.base_url and not args.model:
        raise ConfigError("revalidate: --base-url needs --model (the endpoint's model name)")


def _dispatch(args: argparse.Namespace, command: str) -> int:
    _check_arguments(args)
    if args.command in ("run", "dry-run", "evaluate"):  # everything checkable offline, before any work (exit 2)
        from flows.preflight import preflight

        params = preflight(args.params, dict(getattr(args, "overrides", ())))
    elif "params" in args:
        params = load_params(args.params)
    if args.command == "sweep":
        from flows.sweep import plan_sweep

        plan_sweep(args.tasks, args.seeds, args.models, args.name, args.params, dict(args.overrides) or None)
    elif args.command == "evaluate":
        from flows.evaluate import require_run_outputs

        require_run_outputs(Workspace(params_file=args.params))
    if args.command in ("run", "sweep", "evaluate", "revalidate"):
        return _run_flows(args, params, command)
    if args.command == "tasks":
        print("\n".join(list_tasks(args.location)))
    elif args.command == "dry-run":
        from flows.dry_run import dry_run

        print(dry_run(args.params, dict(args.overrides)))
    elif args.command == "deploy":
        from flows.deployments import register

        print("\n".join(f"registered {name}" for name in register(args.prefect_file)))
    elif args.command == "serve":
        from flows.deployments import serve_deployments

        serve_deployments(args.prefect_file)
    return OK


def _run_flows(args: argparse.Namespace, params: Params, command: str) -> int:
    """A command that runs flows, on one Prefect API (stopped last); Ctrl-C or SIGTERM stops it
    (:mod:`flows.shutdown`) with a line saying how to resume."""
    from flows.prefect_api import using_shared_api
    from flows.shutdown import STOPS, exit_code, stop_on_signals, stopped_message

    with stop_on_signals():
        try:
            with using_shared_api():
                return _flow_command(args, params)
        except STOPS as stop:
            print(stopped_message(stop, command), file=sys.stderr)
            return exit_code(stop)


def _flow_command(args: argparse.Namespace, params: Params) -> int:
    if args.command == "run":
        from flows.pipeline import pipeline
        from flows.report import report

        overrides = dict(args.overrides) or None
        pipeline(args.params, overrides, args.workspace)
        print(report(run_workspace(params, args.params, overrides, args.workspace)))
    elif args.command == "sweep":
        from flows.sweep import sweep

        sweep(args.tasks, args.seeds, args.models, args.name, args.params, dict(args.overrides) or None)
    elif args.command == "evaluate":
        from flows.evaluate import evaluate_test

        print(json.dumps(evaluate_test(Workspace(params_file=args.params)), indent=2))
    elif args.command == "revalidate":
        from flows.revalidate import revalidate

        rows = revalidate(args.params, args.tasks, args.base_url, args.model, args.tolerance)
        for r in rows:
            print(f"{r['prompt']} v{r['version']}: {r['registered_test_score']:.3f} -> {r['test_score']:.3f} "
                  f"({r['drift']:+.3f}){'  DROPPED' if r['dropped'] else ''}")
        return DROPPED if any(r["dropped"] for r in rows) else OK
    return OK


if __name__ == "__main__":
    sys.exit(main())
