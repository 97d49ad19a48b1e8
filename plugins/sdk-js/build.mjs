// `omni-cpi build` runs this for a JavaScript plugin project:
//   node build.mjs --app APP.js --wit WIT_DIR --world container-cpi|director-cpi --out OUT.wasm
// esbuild bundles the app with this kit (imported as "omni-cpi-sdk"; the host's interfaces,
// "omni:cpi/...", stay imports), then componentize-js turns the bundle into a component. The
// engine's own fetch() is left out: a plugin gets the network only through wasi:http grants.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { build } from "esbuild";
import { componentize } from "@bytecodealliance/componentize-js";

const kit = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: { app: { type: "string" }, wit: { type: "string" }, world: { type: "string" }, out: { type: "string" } },
});
for (const required of ["app", "wit", "world", "out"]) {
  if (!values[required]) {
    console.error(`build.mjs: --${required} is required`);
    process.exit(2);
  }
}

const work = await mkdtemp(join(tmpdir(), "omni-cpi-js-"));
try {
  const bundle = join(work, "bundle.js");
  await build({
    entryPoints: [values.app],
    bundle: true,
    format: "esm",
    platform: "neutral",
    outfile: bundle,
    alias: { "omni-cpi-sdk": join(kit, "index.js") },
    external: ["omni:cpi/*", "wasi:*"],
    logLevel: "warning",
  });
  const { component } = await componentize({
    sourcePath: bundle,
    witPath: values.wit,
    worldName: values.world,
    disableFeatures: ["http", "fetch-event"],
  });
  await writeFile(values.out, component);
} catch (e) {
  console.error(`build.mjs: ${e.message ?? e}`);
  process.exitCode = 1;
} finally {
  await rm(work, { recursive: true, force: true });
}
