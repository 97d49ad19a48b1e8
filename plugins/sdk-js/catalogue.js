// The standard actions of WIT omni:cpi@0.3.0 with the parameter names the host passes: the
// host's catalogue (host/src/contract/catalogue.rs, cpis/REFERENCE.md "Standard actions"). The
// host checks every describe() against its own table at load, and omni-cpi's tests load the
// JavaScript plugins, so a drift here fails there.

// [action, [[parameter, required], ...]], in the WIT's order.
export const CONTAINER_ACTIONS = [
  ["create_container", [["name", true], ["image", true], ["command", false], ["env", false], ["ports", false], ["volumes", false], ["network", false]]],
  ["delete_container", [["name", true]]],
  ["start_container", [["name", true]]],
  ["stop_container", [["name", true], ["stop_timeout", false]]],
  ["restart_container", [["name", true], ["stop_timeout", false]]],
  ["inspect_container", [["name", true]]],
  ["list_containers", []],
  ["logs", [["name", true]]],
  ["exec", [["name", true], ["cmd", true]]],
  ["create_volume", [["name", true]]],
  ["delete_volume", [["name", true]]],
  ["attach_volume", [["name", true], ["container", true], ["target", true]]],
  ["detach_volume", [["name", true], ["container", true]]],
  ["list_volumes", []],
  ["create_network", [["name", true]]],
  ["delete_network", [["name", true]]],
  ["connect_network", [["network", true], ["container", true]]],
  ["disconnect_network", [["network", true], ["container", true]]],
  ["list_networks", []],
];

export const DIRECTOR_ACTIONS = [
  ["create_vm", [["name", true], ["image", true], ["cpus", false], ["memory_mb", false], ["metadata", false]]],
  ["delete_vm", [["vm", true]]],
  ["start_vm", [["vm", true]]],
  ["stop_vm", [["vm", true]]],
  ["reboot_vm", [["vm", true]]],
  ["has_vm", [["vm", true]]],
  ["inspect_vm", [["vm", true]]],
  ["list_vms", []],
  ["set_vm_metadata", [["vm", true], ["metadata", true]]],
  ["create_disk", [["name", true], ["size_mb", true]]],
  ["delete_disk", [["disk", true]]],
  ["attach_disk", [["vm", true], ["disk", true]]],
  ["detach_disk", [["vm", true], ["disk", true]]],
  ["has_disk", [["disk", true]]],
  ["list_disks", [["vm", false]]],
  ["snapshot_disk", [["disk", true], ["snapshot", true]]],
];

/** `create_container` → `createContainer`: the name componentize-js exports a WIT function as. */
export function methodName(action) {
  return action.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}
