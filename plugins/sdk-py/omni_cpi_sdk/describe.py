"""`Describe`: `describe()`'s answer built from the catalogue, so a CPI names only what it
implements and what it needs. Every action of its kind is listed with the parameter names the
host passes; the ones not implemented are declared unsupported with the reason you give.

Exec requests are argument patterns: a literal matches itself, `VALUE` one argument that is not
an option (a name, a path, a number), `ANY` any one argument (options too), `REST` (last only)
any remaining arguments. Ask for `VALUE` wherever a value goes: the operator's grant then cannot
be widened to `--all` or `--help` by a caller.
"""

from wit_world.imports import types

from .catalogue import CONTAINER_ACTIONS, DIRECTOR_ACTIONS

VALUE = "<value>"
ANY = "*"
REST = "**"

# The settings key prefix of conformance parameters (see `Describe.conformance_param`).
CONFORMANCE_PREFIX = "conformance."


class DescribeMistake(Exception):
    """A mistake in a `Describe`, found at the first load (`omni-cpi validate`)."""


class Describe:
    """A builder of `PluginInfo`. Mistakes are the plugin author's: `build()` raises naming them
    all, and the host reports `describe() failed` with that text."""

    def __init__(self, name, version, kind, catalogue):
        self._name = name
        self._version = version
        self._kind = kind
        self._catalogue = catalogue
        self._implemented = []
        self._why_not = "not implemented by this CPI"
        self._descriptions = {}
        self._exec = []
        self._dirs = []
        self._env = []
        self._settings = []
        self._mistakes = []

    @classmethod
    def container(cls, name, version):
        """A container CPI named `name` (the plugin's own name, shown by `info`)."""
        return cls(name, version, types.CpiKind.CONTAINER, CONTAINER_ACTIONS)

    @classmethod
    def director(cls, name, version):
        """A director CPI named `name`."""
        return cls(name, version, types.CpiKind.DIRECTOR, DIRECTOR_ACTIONS)

    def _params_of(self, action):
        for name, params in self._catalogue:
            if name == action:
                return params
        return None

    def implements(self, *actions):
        """The actions this CPI implements (catalogue names, `create_container` or `create-container`)."""
        for action in actions:
            action = action.replace("-", "_")
            if self._params_of(action) is None:
                kind = "container" if self._kind == types.CpiKind.CONTAINER else "director"
                self._mistakes.append(f"implements(): `{action}` is not an action of a {kind} CPI")
            self._implemented.append(action)
        return self

    def implements_all(self):
        """Every action of the kind."""
        self._implemented = [name for name, _ in self._catalogue]
        return self

    def otherwise_unsupported(self, why):
        """Why the actions not implemented are unsupported (shown by `info`)."""
        self._why_not = why
        return self

    def param(self, action, param, description):
        """What a parameter means for this CPI (shown by `info`)."""
        action = action.replace("-", "_")
        params = self._params_of(action) or ()
        if not any(name == param for name, _ in params):
            self._mistakes.append(f"param(): action `{action}` has no parameter `{param}` the host passes")
        self._descriptions[(action, param)] = description
        return self

    def exec(self, program, *args):
        """A program the CPI runs, with its argument patterns: `exec("podman", "start", VALUE)`."""
        args = list(args)
        if REST in args and args.index(REST) != len(args) - 1:
            self._mistakes.append(f"exec(): `{REST}` must be the last pattern for `{program}`")
        for arg in args:
            if not isinstance(arg, str):
                self._mistakes.append(f"exec(): pattern {arg!r} for `{program}` is not a string")
        self._exec.append(types.ExecRequest(program=program, args=[str(a) for a in args]))
        return self

    def dir(self, guest_path, writable, description):
        """A directory at `guest_path` inside the sandbox; the operator maps it to a host directory."""
        if not guest_path.startswith("/"):
            self._mistakes.append(f"dir(): `{guest_path}` must be an absolute path")
        self._dirs.append(types.DirRequest(guest_path=guest_path, writable=writable, description=description))
        return self

    def env(self, name):
        """An environment variable the CPI reads (the operator grants it by name)."""
        self._env.append(name)
        return self

    def setting(self, key, default):
        """A setting the CPI reads with `setting(key)`, and its default (text)."""
        if any(k == key for k, _ in self._settings):
            self._mistakes.append(f"setting(): `{key}` is declared twice")
        if not isinstance(default, str):
            self._mistakes.append(f"setting(): the default of `{key}` must be text, not {type(default).__name__}")
        self._settings.append((key, str(default)))
        return self

    def conformance_param(self, param, value):
        """What `omni-cpi conformance` passes as parameter `param` to every call (e.g. an `image`
        the runtime has): JSON if `value` parses as JSON, else text."""
        return self.setting(CONFORMANCE_PREFIX + param, value)

    def build(self):
        """The `PluginInfo`; raises `DescribeMistake` naming every mistake made while building it."""
        if self._mistakes:
            raise DescribeMistake(f"describe() of `{self._name}`: " + "; ".join(self._mistakes))
        actions = []
        for name, params in self._catalogue:
            actions.append(types.ActionInfo(
                name=name,
                params=[types.ParamInfo(name=p, required=required, description=self._descriptions.get((name, p), ""))
                        for p, required in params],
                unsupported=None if name in self._implemented else self._why_not,
            ))
        return types.PluginInfo(
            name=self._name,
            kind=self._kind,
            version=self._version,
            actions=actions,
            default_settings=list(self._settings),
            capabilities=types.Capabilities(exec=list(self._exec), dirs=list(self._dirs), env=list(self._env)),
        )
