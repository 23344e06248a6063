"""How the command line presents itself: commands in the order people use them, argument
names written one way (CONFIG, [CONFIG], RUN...), flags without a value type, and shell
completion of config files, run and sweep folders, and registered component names.

Commands declare nothing for this: parameters are recognised by name (`config`, `spec` →
YAML files; `run`, `runs`, `resume`, `from_`, `patterns` → run or sweep folders; `set_` →
dotted keys and registered names), so a new command gets it by naming its parameters so.
"""

from __future__ import annotations

from pathlib import Path

from typer.core import TyperArgument, TyperGroup, TyperOption

# The order of `dl2424 --help`; commands not named here follow in the order they were added.
USE_ORDER = ["train", "predict", "report", "runs", "compare", "gradcheck", "lr-range",
             "search", "ensemble", "generate", "config", "data", "convcheck"]


def _paths(incomplete: str, roots: list[Path], keep) -> list[str]:
    """Paths starting with `incomplete` (as typed, or under each root) that `keep` accepts."""
    typed = Path(incomplete or ".")
    folder, stem = (typed, "") if incomplete.endswith("/") or not incomplete else \
        (typed.parent, typed.name)
    out = []
    for base in [folder, *(r / folder for r in roots if not incomplete.startswith(str(r)))]:
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            if p.name.startswith(stem) and not p.name.startswith(".") and keep(p):
                out.append(str(p) + ("/" if p.is_dir() and not _is_run(p) else ""))
    return list(dict.fromkeys(out))


def _is_run(p: Path) -> bool:
    from ..rundir import is_run

    return is_run(p) or (p / "trials.csv").is_file()


def complete_configs(incomplete: str) -> list[str]:
    return _paths(incomplete, [Path("configs")],
                  lambda p: p.is_dir() or p.suffix in (".yaml", ".yml"))


def complete_runs(incomplete: str) -> list[str]:
    from ..settings import read

    s = read()
    roots = [s.runs_dir, s.sweeps_dir]
    return _paths(incomplete, roots, lambda p: p.is_dir())


def complete_set(incomplete: str) -> list[str]:
    """`optimizer=` → the registered optimizers; otherwise the dotted keys of the config."""
    from ..config_docs import KINDS, SECTIONS, describe

    key, eq, _ = incomplete.partition("=")
    kind = key.rpartition(".")[2]
    if eq and kind in KINDS:
        return [f"{key}={n}" for n in KINDS[kind].names()]
    keys = [f"{name}=" if name in KINDS else f"{name}." if name in SECTIONS else f"{name}="
            for name in SECTIONS["experiment"].model_fields]
    keys += [f"train.{k.name}=" for d in describe("train") for k in d.keys]
    keys += [f"{kind}.type=" for kind in ("data", "model", "optimizer", "schedule", "sampler")]
    keys += ["model.loss=", "model.init="]
    return sorted(k for k in set(keys) if k.startswith(incomplete))


COMPLETERS = {"config": complete_configs, "spec": complete_configs, "more": complete_configs,
              "run": complete_runs, "runs": complete_runs, "resume": complete_runs,
              "from_": complete_runs, "patterns": complete_runs, "set_": complete_set}


class _Argument(TyperArgument):
    """CONFIG when required, [CONFIG] when not, CONFIG... when several; a type column only
    for a choice (<cifar10|names|...>)."""

    def _usage_display_name(self) -> str:
        return self.metavar if self.required else f"[{self.metavar}]"

    def display_type_rich(self, ctx):
        return super().display_type_rich(ctx) if self.type_descriptor.is_choice else None


class _Option(TyperOption):
    """A flag takes no value, so its help shows no `<bool>`; a list option shows `<x>...`."""

    def display_type_rich(self, ctx):
        if self.is_flag:
            return None
        shown = super().display_type_rich(ctx)
        if shown and shown.startswith("<list["):
            shown = "<" + shown[6:].split("]")[0].lower() + ">..."
        return shown


def tidy(command, ctx) -> None:
    if type(command) is TyperGroup:  # a sub-app (`data`, ...): its commands get the same
        command.__class__ = Commands
    helper = command.get_help_option(ctx) if hasattr(command, "get_help_option") else None
    for p in [*getattr(command, "params", []), *([helper] if helper else [])]:
        if isinstance(p, TyperArgument) and type(p) is TyperArgument:
            p.__class__ = _Argument
            p.metavar = ((p.metavar or p.name).strip("[]{}.").upper()
                         + ("..." if p.nargs != 1 else ""))
        elif isinstance(p, TyperOption) and type(p) is TyperOption:
            p.__class__ = _Option
        complete = COMPLETERS.get(p.name)
        if complete is not None and getattr(p, "_custom_shell_complete", None) is None:
            p._custom_shell_complete = lambda ctx, param, incomplete, f=complete: f(incomplete)


class Commands(TyperGroup):
    """The dl2424 command group: commands by use, each tidied as it is looked up."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(USE_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            tidy(command, ctx)
        return command

    def get_params(self, ctx):
        tidy(self, ctx)
        return super().get_params(ctx)


class RunsCommands(Commands):
    """`dl2424 runs [RUNS...] [--status ...]` lists (the `ls` subcommand) unless `rm` follows."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["ls", *args]
        return super().parse_args(ctx, args)
