"""Write a CPI in Python, compile it to a WebAssembly component, run it in omni-cpi.

Subclass `Plugin` (what the CPI is and needs) and `Container` or `Director` with only the
actions your runtime supports: every other action answers `unsupported`, and `Describe`
declares it so, from the catalogue of standard actions with the parameter names the host passes.
A complete container CPI (`app.py`):

    from omni_cpi_sdk import *

    class Plugin(PluginBase):
        def describe(self):
            return (Describe.container("my_cpi", "0.1.0")
                    .implements("start_container")
                    .exec("runc", "start", VALUE)   # VALUE: one argument that is not an option
                    .build())

    class Container(ContainerBase):
        def start_container(self, name):
            run("runc", "start", name).check("runc start")

Build with `omni-cpi build` (componentize-py with this directory on its path, for the world
`container-cpi` or `director-cpi` of omni-cpi's `wit/`). `omni-cpi new container NAME --lang
python` writes such a project with its policy.

Errors: raise `not_found("no container x")` (or any other kind below): the caller gets that kind
and message. Any other exception becomes an `internal` error naming it, and its traceback goes
to the operator's log; the plugin keeps working.
"""

import functools
import traceback

from componentize_py_types import Err
from wit_world.imports import log as _log
from wit_world.imports import process as _process
from wit_world.imports import settings as _settings
from wit_world.imports import types

from .catalogue import CONTAINER_ACTIONS, DIRECTOR_ACTIONS
from .describe import ANY, REST, VALUE, Describe, DescribeMistake

ErrorKind = types.ErrorKind
CpiKind = types.CpiKind
ContainerInfo = types.ContainerInfo
ContainerState = types.ContainerState
ExecResult = types.ExecResult
VmInfo = types.VmInfo
VmState = types.VmState
DiskInfo = types.DiskInfo
NetworkRequest = types.NetworkRequest
Level = _log.Level

__all__ = [
    "ANY", "REST", "VALUE", "Describe", "DescribeMistake", "ErrorKind", "CpiKind", "ContainerInfo",
    "ContainerState", "ExecResult", "VmInfo", "VmState", "DiskInfo", "NetworkRequest", "Level", "PluginBase",
    "ContainerBase",
    "DirectorBase", "Ran", "run", "dry_run", "setting", "settings", "log", "error", "not_found",
    "already_exists", "invalid_argument", "invalid_state", "in_use", "unsupported", "denied", "timeout",
    "unavailable", "failed", "internal",
]


# --- errors -------------------------------------------------------------------------------------

def error(kind, message):
    """The exception that fails an action with `kind` (an `ErrorKind`): `raise error(...)`."""
    return Err(types.CpiError(kind=kind, message=str(message)))


def not_found(message):
    return error(ErrorKind.NOT_FOUND, message)


def already_exists(message):
    return error(ErrorKind.ALREADY_EXISTS, message)


def invalid_argument(message):
    return error(ErrorKind.INVALID_ARGUMENT, message)


def invalid_state(message):
    return error(ErrorKind.INVALID_STATE, message)


def in_use(message):
    return error(ErrorKind.IN_USE, message)


def unsupported(message):
    return error(ErrorKind.UNSUPPORTED, message)


def denied(message):
    return error(ErrorKind.DENIED, message)


def timeout(message):
    return error(ErrorKind.TIMEOUT, message)


def unavailable(message):
    return error(ErrorKind.UNAVAILABLE, message)


def failed(message):
    return error(ErrorKind.FAILED, message)


def internal(message):
    return error(ErrorKind.INTERNAL, message)


# --- the host's services ------------------------------------------------------------------------

class Ran:
    """What a program did: its exit code, its output as text, whether it timed out."""

    def __init__(self, what, output):
        self.what = what
        self.output = output

    @property
    def exit_code(self):
        """`None` when a signal ended it."""
        return self.output.exit_code

    @property
    def stdout(self):
        return self.output.stdout.decode("utf-8", "replace")

    @property
    def stderr(self):
        return self.output.stderr.decode("utf-8", "replace")

    @property
    def timed_out(self):
        return self.output.timed_out

    @property
    def ok(self):
        return self.output.exit_code == 0 and not self.output.timed_out

    def check(self, what=None):
        """`self` on exit 0; otherwise raises `timeout`, or `failed` naming `what` (default: the
        program) with the last line of stderr."""
        what = what or self.what
        if self.ok:
            return self
        if self.timed_out:
            raise timeout(f"{what} timed out")
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        status = "a signal" if self.exit_code is None else f"status {self.exit_code}"
        raise failed(f"{what} exited with {status}: {lines[-1] if lines else ''}")


def run(program, *args, env=(), cwd=None, stdin=None, timeout_ms=None):
    """Runs `program args...` through the host, which checks it against the plugin's grants (an
    ungranted one raises `denied`). A non-zero exit is a `Ran`, not an error: call `.check()`.

    In a dry run (`omni-cpi call --dry-run`) nothing runs: each command is checked, recorded for
    the plan and answered with exit code 0 and empty output. Plan from what you know then."""
    if isinstance(stdin, str):
        stdin = stdin.encode()
    command = _process.Command(
        program=program,
        args=[str(a) for a in args],
        env=[(str(k), str(v)) for k, v in (env.items() if isinstance(env, dict) else env)],
        cwd=cwd,
        stdin=stdin,
        timeout_ms=timeout_ms,
    )
    return Ran(program, _process.run(command))


def dry_run():
    """Whether this call only plans (see `run`)."""
    return _process.dry_run()


def setting(key):
    """A setting's value: the operator's (`[plugins.NAME.settings]`) or the default `describe()`
    declared; `None` for a key it did not declare."""
    return _settings.get(key)


def settings():
    """Every setting with its value, sorted by key."""
    return dict(_settings.all())


def log(level, message):
    """A message for the operator's log: `log(Level.INFO, "...")`."""
    _log.log(level, str(message))


# --- the exported interfaces --------------------------------------------------------------------

def _typed_errors(method):
    """An action whose unexpected exceptions become `internal` errors instead of a trap."""

    @functools.wraps(method)
    def action(self, *args):
        try:
            return method(self, *args)
        except Err:
            raise
        except Exception as exception:
            log(Level.ERROR, f"{method.__name__}: {traceback.format_exc()}")
            raise internal(f"{method.__name__} raised {type(exception).__name__}: {exception}") from None

    return action


class _Actions:
    _catalogue = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, _ in cls._catalogue:
            if name in cls.__dict__:
                setattr(cls, name, _typed_errors(cls.__dict__[name]))


class PluginBase:
    """Subclass as `Plugin` and return `Describe....build()` from `describe`."""

    def describe(self):
        raise NotImplementedError("a CPI's Plugin must define describe()")

    def network_requests(self):
        """The hosts and ports the CPI's wasi:http requests reach (a list of `NetworkRequest`):
        none. The interface asks every plugin (omni:cpi@0.3.0); this kit sends no HTTP yet, so a
        Python CPI requests nothing."""
        return []


def _unsupported(name):
    def action(self, *args):
        raise unsupported(f"this CPI does not implement {name}")

    action.__name__ = name
    return action


class ContainerBase(_Actions):
    """Subclass as `Container` and define the actions you support, with the WIT's arguments
    (`create_container(self, spec)`, `stop_container(self, name, timeout_secs)`, ...)."""

    _catalogue = CONTAINER_ACTIONS


class DirectorBase(_Actions):
    """Subclass as `Director` and define the actions you support (`create_vm(self, spec)`, ...)."""

    _catalogue = DIRECTOR_ACTIONS


for _name, _ in CONTAINER_ACTIONS:
    setattr(ContainerBase, _name, _unsupported(_name))
for _name, _ in DIRECTOR_ACTIONS:
    setattr(DirectorBase, _name, _unsupported(_name))
