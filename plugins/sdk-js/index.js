// omni-cpi's JavaScript kit: write a CPI in JavaScript, build it into a WebAssembly component
// with componentize-js (`omni-cpi build`), run it in omni-cpi with only what the operator granted.
// The same conveniences as the Rust SDK and the Python kit; see README.md.

import { run as hostRun, dryRun as hostDryRun } from "omni:cpi/process@0.3.0";
import { log as hostLog } from "omni:cpi/log@0.3.0";
import { get as hostSetting, all as hostSettings } from "omni:cpi/settings@0.3.0";

import { CONTAINER_ACTIONS, DIRECTOR_ACTIONS, methodName } from "./catalogue.js";

export { CONTAINER_ACTIONS, DIRECTOR_ACTIONS };

/** Exec argument patterns: one argument that is not an option; any one argument; any rest (last only). */
export const VALUE = "<value>";
export const ANY = "*";
export const REST = "**";
/** The settings key prefix of conformance parameters. */
export const CONFORMANCE_PREFIX = "conformance.";

// --- errors ---------------------------------------------------------------------------------

/** A typed failure: throw one and the caller gets `kind` (`not-found`, ...) and the message. */
export class CpiError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "CpiError";
    // componentize-js returns a thrown value's own `payload` as the result's error.
    this.payload = { kind, message: String(message) };
  }
}

const kinds = {
  notFound: "not-found",
  alreadyExists: "already-exists",
  invalidArgument: "invalid-argument",
  invalidState: "invalid-state",
  inUse: "in-use",
  unsupported: "unsupported",
  denied: "denied",
  timeout: "timeout",
  unavailable: "unavailable",
  failed: "failed",
  internal: "internal",
};

export const notFound = (message) => new CpiError(kinds.notFound, message);
export const alreadyExists = (message) => new CpiError(kinds.alreadyExists, message);
export const invalidArgument = (message) => new CpiError(kinds.invalidArgument, message);
export const invalidState = (message) => new CpiError(kinds.invalidState, message);
export const inUse = (message) => new CpiError(kinds.inUse, message);
export const unsupported = (message) => new CpiError(kinds.unsupported, message);
export const denied = (message) => new CpiError(kinds.denied, message);
export const timeout = (message) => new CpiError(kinds.timeout, message);
export const unavailable = (message) => new CpiError(kinds.unavailable, message);
export const failed = (message) => new CpiError(kinds.failed, message);
export const internal = (message) => new CpiError(kinds.internal, message);

/** Whether `e` is a typed failure: ours, or one the host answered an import with. */
function isTyped(e) {
  return e !== null && typeof e === "object" && e.payload && typeof e.payload.kind === "string";
}

// --- the host's services --------------------------------------------------------------------

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** What a program did: its exit code, its output as text, whether it timed out. */
export class Ran {
  constructor(what, output) {
    this.what = what;
    this.output = output;
  }
  /** `undefined` when a signal ended it. */
  get exitCode() {
    return this.output.exitCode;
  }
  get stdout() {
    return decoder.decode(this.output.stdout);
  }
  get stderr() {
    return decoder.decode(this.output.stderr);
  }
  get timedOut() {
    return this.output.timedOut;
  }
  get ok() {
    return this.output.exitCode === 0 && !this.output.timedOut;
  }
  /** `this` on exit 0; otherwise throws `timeout`, or `failed` naming `what` with the last stderr line. */
  check(what = this.what) {
    if (this.ok) return this;
    if (this.timedOut) throw timeout(`${what} timed out`);
    const lines = this.stderr.split("\n").map((l) => l.trim()).filter((l) => l);
    const status = this.exitCode === undefined ? "a signal" : `status ${this.exitCode}`;
    throw failed(`${what} exited with ${status}: ${lines.length ? lines[lines.length - 1] : ""}`);
  }
}

/**
 * Runs `program ...args` through the host, which checks it against the plugin's grants (an
 * ungranted one throws `denied`). A non-zero exit is a `Ran`, not an error: call `.check()`.
 * The last argument may be options: `{ env: {K: "v"}, cwd, stdin, timeoutMs }`.
 * In a dry run nothing runs: each command is checked, recorded and answered with exit 0.
 */
export function run(program, ...args) {
  let options = {};
  if (args.length && typeof args[args.length - 1] === "object" && !Array.isArray(args[args.length - 1])) {
    options = args.pop();
  }
  const env = Object.entries(options.env ?? {}).map(([k, v]) => [String(k), String(v)]);
  const stdin = typeof options.stdin === "string" ? encoder.encode(options.stdin) : options.stdin;
  const output = hostRun({
    program,
    args: args.map(String),
    env,
    cwd: options.cwd,
    stdin,
    timeoutMs: options.timeoutMs,
  });
  return new Ran(program, output);
}

/** Whether this call only plans (see `run`). */
export const dryRun = () => hostDryRun();

/** A setting's value (the operator's, or the default describe() declared); undefined if undeclared. */
export const setting = (key) => hostSetting(key);

/** Every setting, as an object. */
export const settings = () => Object.fromEntries(hostSettings());

/** A message for the operator's log: log("info", "..."); levels trace, debug, info, warn, error. */
export const log = (level, message) => hostLog(level, String(message));

// --- describe() ------------------------------------------------------------------------------

/** A mistake in a Describe, found at the first load (`omni-cpi validate`). */
export class DescribeMistake extends Error {}

/**
 * describe()'s answer built from the catalogue, so a CPI names only what it implements and what
 * it needs; `build()` throws naming every mistake made while building it.
 */
export class Describe {
  constructor(name, version, kind, catalogue) {
    Object.assign(this, { name, version, kind, catalogue });
    this.implemented = [];
    this.whyNot = "not implemented by this CPI";
    this.descriptions = new Map();
    this.capabilities = { exec: [], dirs: [], env: [] };
    this.defaults = [];
    this.mistakes = [];
  }
  static container(name, version) {
    return new Describe(name, version, "container", CONTAINER_ACTIONS);
  }
  static director(name, version) {
    return new Describe(name, version, "director", DIRECTOR_ACTIONS);
  }
  paramsOf(action) {
    const entry = this.catalogue.find(([name]) => name === action);
    return entry ? entry[1] : undefined;
  }
  /** The actions this CPI implements (catalogue names: `create_container` or `create-container`). */
  implements(...actions) {
    for (let action of actions) {
      action = action.replaceAll("-", "_");
      if (!this.paramsOf(action)) this.mistakes.push(`implements(): \`${action}\` is not an action of a ${this.kind} CPI`);
      this.implemented.push(action);
    }
    return this;
  }
  implementsAll() {
    this.implemented = this.catalogue.map(([name]) => name);
    return this;
  }
  otherwiseUnsupported(why) {
    this.whyNot = why;
    return this;
  }
  param(action, param, description) {
    action = action.replaceAll("-", "_");
    if (!(this.paramsOf(action) ?? []).some(([p]) => p === param)) {
      this.mistakes.push(`param(): action \`${action}\` has no parameter \`${param}\` the host passes`);
    }
    this.descriptions.set(`${action}/${param}`, description);
    return this;
  }
  /** A program the CPI runs, with its argument patterns: exec("podman", "start", "--", VALUE). */
  exec(program, ...args) {
    const rest = args.indexOf(REST);
    if (rest >= 0 && rest !== args.length - 1) this.mistakes.push(`exec(): \`${REST}\` must be the last pattern for \`${program}\``);
    if (args.some((a) => typeof a !== "string")) this.mistakes.push(`exec(): every pattern for \`${program}\` must be a string`);
    this.capabilities.exec.push({ program, args: args.map(String) });
    return this;
  }
  dir(guestPath, writable, description) {
    if (!guestPath.startsWith("/")) this.mistakes.push(`dir(): \`${guestPath}\` must be an absolute path`);
    this.capabilities.dirs.push({ guestPath, writable, description });
    return this;
  }
  env(name) {
    this.capabilities.env.push(name);
    return this;
  }
  setting(key, value) {
    if (this.defaults.some(([k]) => k === key)) this.mistakes.push(`setting(): \`${key}\` is declared twice`);
    if (typeof value !== "string") this.mistakes.push(`setting(): the default of \`${key}\` must be a string`);
    this.defaults.push([key, String(value)]);
    return this;
  }
  conformanceParam(param, value) {
    return this.setting(CONFORMANCE_PREFIX + param, value);
  }
  build() {
    if (this.mistakes.length) throw new DescribeMistake(`describe() of \`${this.name}\`: ${this.mistakes.join("; ")}`);
    return {
      name: this.name,
      kind: this.kind,
      version: this.version,
      actions: this.catalogue.map(([name, params]) => ({
        name,
        params: params.map(([param, required]) => ({
          name: param,
          required,
          description: this.descriptions.get(`${name}/${param}`) ?? "",
        })),
        unsupported: this.implemented.includes(name) ? undefined : this.whyNot,
      })),
      defaultSettings: this.defaults,
      capabilities: this.capabilities,
    };
  }
}

// --- the exported interfaces -----------------------------------------------------------------

/** Subclass, define `describe()` (return `Describe....build()`); export `new MyPlugin().exports()` as `plugin`. */
export class PluginBase {
  describe() {
    throw new Error("a CPI's plugin must define describe()");
  }
  /**
   * The hosts and ports the CPI's wasi:http requests reach (`[{ host, port, description }]`):
   * none. The interface asks every plugin (omni:cpi@0.3.0); this kit sends no HTTP yet (its
   * build leaves the engine's `fetch` out), so a JavaScript CPI requests nothing.
   */
  networkRequests() {
    return [];
  }
  exports() {
    return { describe: () => this.describe(), networkRequests: () => this.networkRequests() };
  }
}

/** The object componentize-js exports for `catalogue`'s interface, from an implementation. */
function exportsOf(implementation, catalogue) {
  const exported = {};
  for (const [action] of catalogue) {
    const method = methodName(action);
    exported[method] = (...args) => {
      if (typeof implementation[method] !== "function") {
        throw unsupported(`this CPI does not implement ${action}`);
      }
      try {
        return implementation[method](...args);
      } catch (e) {
        if (isTyped(e)) throw e;
        const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        log("error", `${action}: ${e instanceof Error && e.stack ? `${what}\n${e.stack}` : what}`);
        throw internal(`${action} raised ${what}`);
      }
    };
  }
  return exported;
}

/**
 * Subclass and define the actions you support as methods named like the WIT's functions in
 * camelCase (`createContainer(spec)`, `stopContainer(name, timeoutSecs)`, ...); export
 * `new MyCpi().exports()` as `container`. The others answer `unsupported`; any exception that is
 * not a CpiError becomes an `internal` error naming it, with its stack in the operator's log.
 */
export class ContainerBase {
  exports() {
    return exportsOf(this, CONTAINER_ACTIONS);
  }
}

/** The same for a director: export `new MyCpi().exports()` as `director`. */
export class DirectorBase {
  exports() {
    return exportsOf(this, DIRECTOR_ACTIONS);
  }
}
