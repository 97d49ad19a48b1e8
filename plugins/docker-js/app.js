// docker_js: a container CPI in JavaScript over the docker CLI, run as a WebAssembly component.
//
// The docker CLI talks to the daemon the operator names in the setting `docker_host` (passed as
// `-H ADDRESS`; an operator who wants the grant to pin the daemon writes its address in place
// of `<value>` after "-H" in policy.toml). The CPI manages only what it
// created: everything carries the label `omni.cpi=docker_js`, and the list actions show only
// labelled containers, volumes and networks. Each program it runs is requested in describe()
// with argument patterns and granted in policy.toml; values a caller passes are checked here.

import {
  ContainerBase,
  Describe,
  PluginBase,
  REST,
  VALUE,
  alreadyExists,
  denied,
  dryRun,
  inUse,
  invalidArgument,
  invalidState,
  notFound,
  run,
  setting,
  timeout,
} from "omni-cpi-sdk";

const LABEL = "omni.cpi=docker_js";
// A container, volume or network name as docker accepts it; never an option.
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
// [IP:]HOST:CONTAINER[/tcp|/udp], or CONTAINER alone.
const PORT = /^((\d{1,3}\.){3}\d{1,3}:)?(\d{1,5}:)?\d{1,5}(\/(tcp|udp))?$/;
// NAME:/path[:ro|rw]: a named volume this CPI made. Host paths are refused.
const VOLUME = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(\/[A-Za-z0-9_./@+-]*)(:(ro|rw))?$/;
const STATES = { created: "created", running: "running", paused: "paused", exited: "stopped", stopped: "stopped" };

class Plugin extends PluginBase {
  describe() {
    return Describe.container("docker_js", "0.1.0")
      .implements(
        "create_container", "delete_container", "start_container", "stop_container", "restart_container",
        "inspect_container", "list_containers", "logs", "exec",
        "create_volume", "delete_volume", "list_volumes",
        "create_network", "delete_network", "connect_network", "disconnect_network", "list_networks",
      )
      .otherwiseUnsupported("docker mounts volumes only when a container is created: pass volumes to create_container")
      .param("create_container", "volumes", "NAME:/path[:ro] of volumes made by create_volume; host paths are refused")
      .param("create_container", "network", "a network name; host, container:NAME and ns:PATH are refused")
      .exec("docker", "-H", VALUE, "create", "--pull=never", "--label", LABEL, "--name", VALUE, REST)
      .exec("docker", "-H", VALUE, "container", "inspect", "--", VALUE)
      .exec("docker", "-H", VALUE, "ps", "--all", "--filter", `label=${LABEL}`, "--format", "{{.Names}}")
      .exec("docker", "-H", VALUE, "start", "--", VALUE)
      .exec("docker", "-H", VALUE, "stop", "-t", VALUE, "--", VALUE)
      .exec("docker", "-H", VALUE, "restart", "-t", VALUE, "--", VALUE)
      .exec("docker", "-H", VALUE, "rm", "--", VALUE)
      .exec("docker", "-H", VALUE, "logs", "--", VALUE)
      .exec("docker", "-H", VALUE, "exec", VALUE, REST)
      .exec("docker", "-H", VALUE, "volume", "create", "--label", LABEL, "--", VALUE)
      .exec("docker", "-H", VALUE, "volume", "inspect", "--", VALUE)
      .exec("docker", "-H", VALUE, "volume", "rm", "--", VALUE)
      .exec("docker", "-H", VALUE, "volume", "ls", "--filter", `label=${LABEL}`, "--format", "{{.Name}}")
      .exec("docker", "-H", VALUE, "network", "create", "--label", LABEL, "--", VALUE)
      .exec("docker", "-H", VALUE, "network", "rm", "--", VALUE)
      .exec("docker", "-H", VALUE, "network", "connect", "--", VALUE, VALUE)
      .exec("docker", "-H", VALUE, "network", "disconnect", "--", VALUE, VALUE)
      .exec("docker", "-H", VALUE, "network", "ls", "--filter", `label=${LABEL}`, "--format", "{{.Name}}")
      .setting("docker_host", "unix:///run/docker.sock")
      .setting("stop_timeout", "10")
      .conformanceParam("image", "localhost/busybox:latest")
      .conformanceParam("stop_timeout", "0")
      .build();
  }
}

export const plugin = new Plugin().exports();

function checkedName(what, value) {
  if (!NAME.test(value)) {
    throw invalidArgument(`${what} ${JSON.stringify(value)}: use letters, digits, \`_\`, \`.\` and \`-\`, starting with a letter or digit`);
  }
  return value;
}

/** The docker CLI against the operator's daemon. */
function docker(...args) {
  return run("docker", "-H", setting("docker_host"), ...args);
}

/** Whether docker's error says so (its messages differ in case between daemons). */
function says(ran, ...needles) {
  const stderr = ran.stderr.toLowerCase();
  return needles.some((needle) => stderr.includes(needle.toLowerCase()));
}

function stopTimeout(timeoutSecs) {
  if (timeoutSecs !== undefined) return String(timeoutSecs);
  const value = setting("stop_timeout") ?? "10";
  if (!/^\d+$/.test(value)) throw invalidArgument(`the setting stop_timeout must be a whole number of seconds, not ${JSON.stringify(value)}`);
  return value;
}

function lines(ran) {
  ran.check();
  return ran.stdout.split("\n").filter((line) => line.trim());
}

/** docker create's options for `spec`, every value checked first. */
function containerArgs(spec) {
  const args = [];
  for (const [key, value] of spec.env) {
    if (!ENV_KEY.test(key)) throw invalidArgument(`env key ${JSON.stringify(key)}: use letters, digits and \`_\`, not starting with a digit`);
    args.push("--env", `${key}=${value}`);
  }
  for (const port of spec.ports) {
    if (!PORT.test(port)) throw invalidArgument(`port ${JSON.stringify(port)}: use [IP:]HOST:CONTAINER[/tcp|/udp]`);
    args.push("-p", port);
  }
  for (const volume of spec.volumes) {
    const matched = VOLUME.exec(volume);
    if (!matched) {
      if (volume.startsWith("/")) throw denied(`volume ${JSON.stringify(volume)}: host paths are not mounted; create_volume a named volume and pass NAME:/path`);
      throw invalidArgument(`volume ${JSON.stringify(volume)}: use NAME:/path[:ro]`);
    }
    // docker would create a missing volume silently; the contract says not_found.
    if (!dryRun() && !docker("volume", "inspect", "--", matched[1]).ok) {
      throw notFound(`no volume ${matched[1]}: make it with create_volume first`);
    }
    args.push("-v", volume);
  }
  if (spec.network !== undefined) {
    if (spec.network.toLowerCase() === "host" || spec.network.includes(":")) {
      throw denied(`network ${JSON.stringify(spec.network)} would share another namespace; pass a network name`);
    }
    args.push("--network", checkedName("network", spec.network));
  }
  return args;
}

class Docker extends ContainerBase {
  createContainer(spec) {
    const name = checkedName("name", spec.name);
    if (!spec.image || spec.image.startsWith("-")) throw invalidArgument(`image ${JSON.stringify(spec.image)} is not an image name`);
    const ran = docker("create", "--pull=never", "--label", LABEL, "--name", name, ...containerArgs(spec), "--", spec.image, ...spec.command);
    if (says(ran, "already in use")) throw alreadyExists(`a container named ${name} exists`);
    if (says(ran, "no such image", "image not known")) throw notFound(`no image ${spec.image} here (nothing is pulled)`);
    ran.check("docker create");
    return { name, id: ran.stdout.trim(), image: spec.image, state: "created", pid: undefined, details: "" };
  }

  deleteContainer(name) {
    checkedName("name", name);
    docker("stop", "-t", stopTimeout(undefined), "--", name);
    const ran = docker("rm", "--", name);
    if (says(ran, "no such container")) throw notFound(`no container ${name}`);
    ran.check("docker rm");
  }

  startContainer(name) {
    this.act(name, "start", "--", name);
  }

  stopContainer(name, timeoutSecs) {
    this.act(name, "stop", "-t", stopTimeout(timeoutSecs), "--", name);
  }

  restartContainer(name, timeoutSecs) {
    this.act(name, "restart", "-t", stopTimeout(timeoutSecs), "--", name);
  }

  act(name, ...args) {
    checkedName("name", name);
    const ran = docker(...args);
    if (says(ran, "no such container")) throw notFound(`no container ${name}`);
    ran.check(`docker ${args[0]}`);
  }

  inspectContainer(name) {
    checkedName("name", name);
    const ran = docker("container", "inspect", "--", name);
    if (says(ran, "no such container", "no such object")) throw notFound(`no container ${name}`);
    ran.check("docker container inspect");
    if (dryRun()) return { name, id: "", image: "", state: "unknown", pid: undefined, details: "" };
    const [found] = JSON.parse(ran.stdout);
    if (!found) throw notFound(`no container ${name}`);
    const state = found.State ?? {};
    return {
      name: (found.Name ?? name).replace(/^\//, ""),
      id: found.Id ?? "",
      image: found.Config?.Image ?? "",
      state: STATES[state.Status] ?? "unknown",
      pid: state.Pid || undefined,
      details: JSON.stringify({ status: state.Status, exit_code: state.ExitCode }),
    };
  }

  listContainers() {
    return lines(docker("ps", "--all", "--filter", `label=${LABEL}`, "--format", "{{.Names}}"));
  }

  logs(name) {
    checkedName("name", name);
    const ran = docker("logs", "--", name);
    if (says(ran, "no such container")) throw notFound(`no container ${name}`);
    ran.check("docker logs");
    return ran.stdout + ran.stderr;
  }

  exec(name, cmd) {
    checkedName("name", name);
    if (!cmd.length) throw invalidArgument("cmd is empty: pass the program and its arguments");
    const ran = docker("exec", name, ...cmd);
    if (ran.timedOut) throw timeout(`exec in ${name} timed out`);
    if (says(ran, "no such container")) throw notFound(`no container ${name}`);
    if (says(ran, "is not running", "container state improper")) throw invalidState(`container ${name} is not running`);
    const exitCode = ran.exitCode ?? 128 + (ran.output.signal ?? 0);
    return { exitCode, stdout: ran.stdout, stderr: ran.stderr };
  }

  createVolume(name) {
    checkedName("volume", name);
    if (docker("volume", "inspect", "--", name).ok) throw alreadyExists(`a volume named ${name} exists`);
    docker("volume", "create", "--label", LABEL, "--", name).check("docker volume create");
  }

  deleteVolume(name) {
    checkedName("volume", name);
    const ran = docker("volume", "rm", "--", name);
    if (says(ran, "no such volume")) throw notFound(`no volume ${name}`);
    if (says(ran, "in use", "being used")) throw inUse(`volume ${name} is used by a container`);
    ran.check("docker volume rm");
  }

  listVolumes() {
    return lines(docker("volume", "ls", "--filter", `label=${LABEL}`, "--format", "{{.Name}}"));
  }

  createNetwork(name) {
    checkedName("network", name);
    const ran = docker("network", "create", "--label", LABEL, "--", name);
    if (says(ran, "already exists")) throw alreadyExists(`a network named ${name} exists`);
    ran.check("docker network create");
  }

  deleteNetwork(name) {
    checkedName("network", name);
    const ran = docker("network", "rm", "--", name);
    if (says(ran, "not found", "no such network")) throw notFound(`no network ${name}`);
    if (says(ran, "in use", "being used", "has active endpoints")) throw inUse(`network ${name} is used by a container`);
    ran.check("docker network rm");
  }

  connectNetwork(network, container) {
    checkedName("network", network);
    checkedName("container", container);
    const ran = docker("network", "connect", "--", network, container);
    if (says(ran, "not found", "no such container", "no such network")) throw notFound(`no network ${network} or no container ${container}`);
    if (says(ran, "already connected", "already exists")) throw alreadyExists(`${container} is connected to ${network}`);
    ran.check("docker network connect");
  }

  disconnectNetwork(network, container) {
    checkedName("network", network);
    checkedName("container", container);
    const ran = docker("network", "disconnect", "--", network, container);
    if (says(ran, "is not connected")) return;
    if (says(ran, "not found", "no such container", "no such network", "unable to find network")) {
      throw notFound(`no network ${network} or no container ${container}`);
    }
    ran.check("docker network disconnect");
  }

  listNetworks() {
    return lines(docker("network", "ls", "--filter", `label=${LABEL}`, "--format", "{{.Name}}"));
  }
}

export const container = new Docker().exports();
