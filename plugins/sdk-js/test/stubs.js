// Stand-ins for the host's interfaces (omni:cpi/process, log, settings) in the kit's tests.
export const logged = [];
export const commands = [];
let next;

export function answer(output) {
  next = output;
}

export function run(command) {
  commands.push(command);
  return next;
}
export const dryRun = () => false;
export function log(level, message) {
  logged.push([level, message]);
}
export const get = () => undefined;
export const all = () => [];
