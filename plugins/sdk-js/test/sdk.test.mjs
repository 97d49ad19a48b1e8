// The JavaScript kit's own tests, on the machine's node (`npm test`; `cargo xtask test` runs
// them). The host's interfaces are stubbed: esbuild bundles the kit with `omni:cpi/...` resolved
// to ./stubs.js, which records what the kit asks of the host. What needs the host itself (grants,
// dry runs) is tested through omni-cpi, in tests/it.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
let sdk;
let stubs;
let work;

before(async () => {
  work = await mkdtemp(join(tmpdir(), "omni-cpi-sdk-js-test-"));
  const stubbed = {
    name: "omni-cpi-stubs",
    setup(b) {
      b.onResolve({ filter: /^omni:cpi\// }, () => ({ path: join(here, "stubs.js") }));
    },
  };
  await build({
    stdin: { contents: 'export * as sdk from "../index.js"; export * as stubs from "./stubs.js";', resolveDir: here },
    bundle: true,
    format: "esm",
    platform: "neutral",
    outfile: join(work, "bundle.mjs"),
    plugins: [stubbed],
    logLevel: "warning",
  });
  ({ sdk, stubs } = await import(pathToFileURL(join(work, "bundle.mjs")).href));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("Describe", () => {
  test("lists every action of the kind and marks the rest unsupported", () => {
    const info = sdk.Describe.container("c", "1")
      .implements("create-container", "list_containers")
      .otherwiseUnsupported("no")
      .param("create_container", "image", "an image")
      .exec("runc", "state", sdk.VALUE)
      .conformanceParam("image", "busybox")
      .build();
    assert.equal(info.actions.length, sdk.CONTAINER_ACTIONS.length);
    const create = info.actions.find((a) => a.name === "create_container");
    assert.equal(create.unsupported, undefined);
    assert.equal(create.params.find((p) => p.name === "image").description, "an image");
    assert.equal(info.actions.find((a) => a.name === "start_container").unsupported, "no");
    assert.deepEqual(info.defaultSettings, [["conformance.image", "busybox"]]);
    assert.deepEqual(info.capabilities.exec, [{ program: "runc", args: ["state", "<value>"] }]);
    assert.equal(info.kind, "container");
  });

  test("a director lists the director actions", () => {
    const info = sdk.Describe.director("d", "1").implementsAll().build();
    assert.deepEqual(info.actions.map((a) => a.name), sdk.DIRECTOR_ACTIONS.map(([name]) => name));
  });

  test("names every mistake", () => {
    const build = () =>
      sdk.Describe.container("c", "1")
        .implements("create_contaner")
        .param("stop_container", "timeout_secs", "x")
        .exec("podman", sdk.REST, "rm")
        .dir("relative", false, "x")
        .setting("k", "a")
        .setting("k", "b")
        .setting("n", 3)
        .build();
    assert.throws(build, (e) => {
      for (const needle of ["`create_contaner` is not an action of a container CPI", "no parameter `timeout_secs`",
        "`**` must be the last", "`relative` must be an absolute path", "`k` is declared twice", "default of `n` must be a string"]) {
        assert.ok(e.message.includes(needle), `${needle} in ${e.message}`);
      }
      return e instanceof sdk.DescribeMistake;
    });
  });
});

describe("network requests", () => {
  test("a plugin requests no host", () => {
    class Plugin extends sdk.PluginBase {
      describe() {
        return sdk.Describe.container("c", "1").build();
      }
    }
    const exported = new Plugin().exports();
    assert.deepEqual(exported.networkRequests(), []);
    assert.equal(exported.describe().name, "c");
  });
});

describe("actions", () => {
  test("an action not defined answers unsupported", () => {
    class Cpi extends sdk.ContainerBase {}
    const exported = new Cpi().exports();
    assert.throws(() => exported.startContainer("x"), (e) => e.payload.kind === "unsupported" && e.payload.message.includes("start_container"));
  });

  test("typed errors pass through; any other exception becomes internal, its stack in the log", () => {
    class Cpi extends sdk.ContainerBase {
      inspectContainer(name) {
        throw sdk.notFound(`no container ${name}`);
      }
      logs(name) {
        return {}[name].text;
      }
    }
    const exported = new Cpi().exports();
    assert.throws(() => exported.inspectContainer("web"), (e) => e.payload.kind === "not-found" && e.payload.message === "no container web");
    stubs.logged.length = 0;
    assert.throws(() => exported.logs("web"), (e) => e.payload.kind === "internal" && e.payload.message.startsWith("logs raised TypeError"));
    assert.equal(stubs.logged.length, 1);
    assert.equal(stubs.logged[0][0], "error");
  });

  test("run passes the command to the host; check names a failure by its last stderr line", () => {
    stubs.answer({ exitCode: 125, signal: undefined, stdout: new Uint8Array(), stderr: new TextEncoder().encode("warn\nError: boom\n"), stdoutTruncated: false, stderrTruncated: false, timedOut: false });
    const ran = sdk.run("podman", "rm", "--", "web", { env: { A: "1" }, timeoutMs: 500 });
    assert.deepEqual(stubs.commands.at(-1), { program: "podman", args: ["rm", "--", "web"], env: [["A", "1"]], cwd: undefined, stdin: undefined, timeoutMs: 500 });
    assert.throws(() => ran.check("podman rm"), (e) => e.payload.kind === "failed" && e.payload.message === "podman rm exited with status 125: Error: boom");
    stubs.answer({ exitCode: undefined, signal: 9, stdout: new Uint8Array(), stderr: new Uint8Array(), stdoutTruncated: false, stderrTruncated: false, timedOut: true });
    assert.throws(() => sdk.run("sleep", "9").check(), (e) => e.payload.kind === "timeout");
    stubs.answer({ exitCode: 0, signal: undefined, stdout: new TextEncoder().encode("ok"), stdout_truncated: false, stderr: new Uint8Array(), timedOut: false });
    const ok = sdk.run("true");
    assert.equal(ok.check(), ok);
    assert.equal(ok.stdout, "ok");
  });
});

// The app.js files `omni-cpi new --lang js` writes, bundled with the kit as build.mjs does:
// describe() builds, and the implemented actions answer (tests/it builds and runs the container
// one as a component).
describe("templates", () => {
  const templates = join(here, "../../../host/src/cli/templates/js");
  const load = async (kind) => {
    const source = (await readFile(join(templates, `${kind}.js.tmpl`), "utf8")).replaceAll("{name}", "tmpl_cpi");
    const app = join(work, `app-${kind}.js`);
    await writeFile(app, source);
    const bundle = join(work, `app-${kind}.bundle.mjs`);
    await build({
      entryPoints: [app],
      bundle: true,
      format: "esm",
      platform: "neutral",
      outfile: bundle,
      alias: { "omni-cpi-sdk": join(here, "../index.js") },
      plugins: [{ name: "stubs", setup: (b) => b.onResolve({ filter: /^omni:cpi\// }, () => ({ path: join(here, "stubs.js") })) }],
      logLevel: "warning",
    });
    return import(pathToFileURL(bundle).href);
  };

  test("the container template describes itself and lists nothing yet", async () => {
    const app = await load("container");
    const info = app.plugin.describe();
    assert.equal(info.name, "tmpl_cpi");
    assert.deepEqual(info.actions.filter((a) => a.unsupported === undefined).map((a) => a.name), ["list_containers"]);
    assert.deepEqual(app.container.listContainers(), []);
    assert.deepEqual(app.plugin.networkRequests(), []);
  });

  test("the director template describes itself and answers", async () => {
    const app = await load("director");
    const info = app.plugin.describe();
    assert.equal(info.kind, "director");
    assert.deepEqual(info.actions.filter((a) => a.unsupported === undefined).map((a) => a.name).sort(), ["has_vm", "list_vms"]);
    assert.equal(app.director.hasVm("nothing"), false);
    assert.deepEqual(app.director.listVms(), []);
  });
});
