"""podman_py: a container CPI in Python over the podman CLI, run as a WebAssembly component.

The CPI manages only what it created: everything carries the label `omni.cpi=podman_py`, and
the list actions show only labelled containers, volumes and networks. Each program it runs is
requested in `describe()` with argument patterns (`VALUE`: one argument that is not an option),
and granted in policy.toml; values a caller passes are checked here before they reach podman.
"""

import json
import re

from omni_cpi_sdk import *

LABEL = "omni.cpi=podman_py"
# A container, volume or network name as podman accepts it; never an option.
NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}\Z")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# [IP:]HOST:CONTAINER[/tcp|/udp], or CONTAINER alone.
PORT = re.compile(r"((\d{1,3}\.){3}\d{1,3}:)?(\d{1,5}:)?\d{1,5}(/(tcp|udp))?\Z")
# NAME:/path[:options]: a named volume this CPI made. Host paths are refused.
VOLUME = re.compile(r"([a-zA-Z0-9][a-zA-Z0-9_.-]*):(/[A-Za-z0-9_./@+-]*)(:(ro|rw|nocopy|nosuid|nodev|noexec)(,(ro|rw|nocopy|nosuid|nodev|noexec))*)?\Z")
STATES = {
    "created": ContainerState.CREATED,
    "configured": ContainerState.CREATED,
    "running": ContainerState.RUNNING,
    "paused": ContainerState.PAUSED,
    "exited": ContainerState.STOPPED,
    "stopped": ContainerState.STOPPED,
}


class Plugin(PluginBase):
    def describe(self):
        return (
            Describe.container("podman_py", "0.1.0")
            .implements(
                "create_container", "delete_container", "start_container", "stop_container", "restart_container",
                "inspect_container", "list_containers", "logs", "exec",
                "create_volume", "delete_volume", "list_volumes",
                "create_network", "delete_network", "connect_network", "disconnect_network", "list_networks",
            )
            .otherwise_unsupported("podman mounts volumes only when a container is created: pass volumes to create_container")
            .param("create_container", "volumes", "NAME:/path[:options] of volumes made by create_volume; host paths are refused")
            .param("create_container", "network", "a network name; host, container:NAME and ns:PATH are refused")
            .exec("podman", "create", "--pull=never", "--label", LABEL, "--name", VALUE, REST)
            .exec("podman", "container", "inspect", "--", VALUE)
            .exec("podman", "ps", "--all", "--filter", f"label={LABEL}", "--format", "{{.Names}}")
            .exec("podman", "start", "--", VALUE)
            .exec("podman", "stop", "-t", VALUE, "--", VALUE)
            .exec("podman", "restart", "-t", VALUE, "--", VALUE)
            .exec("podman", "rm", "--", VALUE)
            .exec("podman", "logs", "--", VALUE)
            .exec("podman", "exec", VALUE, REST)
            .exec("podman", "volume", "create", "--label", LABEL, "--", VALUE)
            .exec("podman", "volume", "exists", "--", VALUE)
            .exec("podman", "volume", "rm", "--", VALUE)
            .exec("podman", "volume", "ls", "--filter", f"label={LABEL}", "--format", "{{.Name}}")
            .exec("podman", "network", "create", "--label", LABEL, "--", VALUE)
            .exec("podman", "network", "rm", "--", VALUE)
            .exec("podman", "network", "connect", "--", VALUE, VALUE)
            .exec("podman", "network", "disconnect", "--", VALUE, VALUE)
            .exec("podman", "network", "ls", "--filter", f"label={LABEL}", "--format", "{{.Name}}")
            .setting("stop_timeout", "10")
            .conformance_param("image", "localhost/busybox:latest")
            .conformance_param("stop_timeout", "0")
            .build()
        )


def checked_name(what, value):
    if not NAME.match(value):
        raise invalid_argument(f"{what} {value!r}: use letters, digits, `_`, `.` and `-`, starting with a letter or digit")
    return value


def podman(*args):
    return run("podman", *args)


def missing(ran, *needles):
    """Whether podman's error says the thing does not exist."""
    return any(needle in ran.stderr for needle in needles)


def stop_timeout(timeout_secs):
    if timeout_secs is not None:
        return str(timeout_secs)
    value = setting("stop_timeout") or "10"
    if not value.isdigit():
        raise invalid_argument(f"the setting stop_timeout must be a whole number of seconds, not {value!r}")
    return value


def container_args(spec):
    """podman create's options for `spec`, every value checked first."""
    args = []
    for key, value in spec.env:
        if not ENV_KEY.match(key):
            raise invalid_argument(f"env key {key!r}: use letters, digits and `_`, not starting with a digit")
        args += ["--env", f"{key}={value}"]
    for port in spec.ports:
        if not PORT.match(port):
            raise invalid_argument(f"port {port!r}: use [IP:]HOST:CONTAINER[/tcp|/udp]")
        args += ["-p", port]
    for volume in spec.volumes:
        matched = VOLUME.match(volume)
        if not matched:
            if volume.startswith("/"):
                raise denied(f"volume {volume!r}: host paths are not mounted; create_volume a named volume and pass NAME:/path")
            raise invalid_argument(f"volume {volume!r}: use NAME:/path[:ro]")
        name = matched.group(1)
        # podman would create a missing volume silently; the contract says not_found.
        if not dry_run() and not podman("volume", "exists", "--", name).ok:
            raise not_found(f"no volume {name}: make it with create_volume first")
        args += ["-v", volume]
    if spec.network is not None:
        if spec.network.lower() == "host" or ":" in spec.network:
            raise denied(f"network {spec.network!r} would share another namespace; pass a network name")
        args += ["--network", checked_name("network", spec.network)]
    return args


class Container(ContainerBase):
    def create_container(self, spec):
        name = checked_name("name", spec.name)
        if spec.image.startswith("-") or not spec.image:
            raise invalid_argument(f"image {spec.image!r} is not an image name")
        ran = podman("create", "--pull=never", "--label", LABEL, "--name", name,
                     *container_args(spec), "--", spec.image, *spec.command)
        if "already in use" in ran.stderr:
            raise already_exists(f"a container named {name} exists")
        if "image not known" in ran.stderr:
            raise not_found(f"no image {spec.image} here (nothing is pulled)")
        ran.check("podman create")
        return ContainerInfo(name=name, id=ran.stdout.strip(), image=spec.image,
                             state=ContainerState.CREATED, pid=None, details="")

    def delete_container(self, name):
        name = checked_name("name", name)
        podman("stop", "-t", stop_timeout(None), "--", name)
        ran = podman("rm", "--", name)
        if missing(ran, "no such container"):
            raise not_found(f"no container {name}")
        ran.check("podman rm")

    def start_container(self, name):
        self._act(name, "start", "--", name)

    def stop_container(self, name, timeout_secs):
        self._act(name, "stop", "-t", stop_timeout(timeout_secs), "--", name)

    def restart_container(self, name, timeout_secs):
        self._act(name, "restart", "-t", stop_timeout(timeout_secs), "--", name)

    def _act(self, name, *args):
        checked_name("name", name)
        ran = podman(*args)
        if missing(ran, "no such container"):
            raise not_found(f"no container {name}")
        ran.check(f"podman {args[0]}")

    def inspect_container(self, name):
        name = checked_name("name", name)
        ran = podman("container", "inspect", "--", name)
        if missing(ran, "no such container", "no such object"):
            raise not_found(f"no container {name}")
        ran.check("podman container inspect")
        if dry_run():
            return ContainerInfo(name=name, id="", image="", state=ContainerState.UNKNOWN, pid=None, details="")
        found = json.loads(ran.stdout)
        if not found:
            raise not_found(f"no container {name}")
        found = found[0]
        state = found.get("State", {})
        pid = state.get("Pid") or None
        return ContainerInfo(
            name=found.get("Name", name),
            id=found.get("Id", ""),
            image=found.get("ImageName", ""),
            state=STATES.get(state.get("Status", ""), ContainerState.UNKNOWN),
            pid=pid,
            details=json.dumps({"status": state.get("Status"), "exit_code": state.get("ExitCode")}),
        )

    def list_containers(self):
        return lines(podman("ps", "--all", "--filter", f"label={LABEL}", "--format", "{{.Names}}"))

    def logs(self, name):
        name = checked_name("name", name)
        ran = podman("logs", "--", name)
        if missing(ran, "no such container"):
            raise not_found(f"no container {name}")
        ran.check("podman logs")
        return ran.stdout + ran.stderr

    def exec(self, name, cmd):
        name = checked_name("name", name)
        if not cmd:
            raise invalid_argument("cmd is empty: pass the program and its arguments")
        ran = podman("exec", name, *cmd)
        if ran.exit_code in (125, 255):
            if missing(ran, "no such container"):
                raise not_found(f"no container {name}")
            if "container state improper" in ran.stderr:
                raise invalid_state(f"container {name} is not running")
            ran.check("podman exec")
        if ran.timed_out:
            raise timeout(f"exec in {name} timed out")
        code = ran.exit_code if ran.exit_code is not None else 128 + (ran.output.signal or 0)
        return ExecResult(exit_code=code, stdout=ran.stdout, stderr=ran.stderr)

    def create_volume(self, name):
        name = checked_name("volume", name)
        ran = podman("volume", "create", "--label", LABEL, "--", name)
        if "already exists" in ran.stderr:
            raise already_exists(f"a volume named {name} exists")
        ran.check("podman volume create")

    def delete_volume(self, name):
        name = checked_name("volume", name)
        ran = podman("volume", "rm", "--", name)
        if missing(ran, "no such volume"):
            raise not_found(f"no volume {name}")
        if "being used" in ran.stderr:
            raise in_use(f"volume {name} is used by a container")
        ran.check("podman volume rm")

    def list_volumes(self):
        return lines(podman("volume", "ls", "--filter", f"label={LABEL}", "--format", "{{.Name}}"))

    def create_network(self, name):
        name = checked_name("network", name)
        ran = podman("network", "create", "--label", LABEL, "--", name)
        if "already exists" in ran.stderr:
            raise already_exists(f"a network named {name} exists")
        ran.check("podman network create")

    def delete_network(self, name):
        name = checked_name("network", name)
        ran = podman("network", "rm", "--", name)
        if missing(ran, "network not found"):
            raise not_found(f"no network {name}")
        if "being used" in ran.stderr:
            raise in_use(f"network {name} is used by a container")
        ran.check("podman network rm")

    def connect_network(self, network, container):
        network, container = checked_name("network", network), checked_name("container", container)
        ran = podman("network", "connect", "--", network, container)
        if missing(ran, "network not found", "no such container"):
            raise not_found(f"no network {network} or no container {container}")
        if "already connected" in ran.stderr:
            raise already_exists(f"{container} is connected to {network}")
        ran.check("podman network connect")

    def disconnect_network(self, network, container):
        network, container = checked_name("network", network), checked_name("container", container)
        ran = podman("network", "disconnect", "--", network, container)
        if re.search(r"is not connected to (CNI )?network", ran.stderr):
            return
        if missing(ran, "unable to find network", "network not found", "no such container"):
            raise not_found(f"no network {network} or no container {container}")
        ran.check("podman network disconnect")

    def list_networks(self):
        return lines(podman("network", "ls", "--filter", f"label={LABEL}", "--format", "{{.Name}}"))


def lines(ran):
    ran.check()
    return [line for line in ran.stdout.splitlines() if line.strip()]
