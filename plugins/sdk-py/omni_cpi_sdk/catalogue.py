"""The standard actions of WIT omni:cpi@0.3.0 with the parameter names the host passes.

This is the host's catalogue (`host/src/contract/catalogue.rs`, `cpis/REFERENCE.md` "Standard
actions"). The host checks every `describe()` against its own table at load, and omni-cpi's
tests load the Python plugins, so a drift here fails there. Pure data: no WIT bindings needed.
"""

# (action, ((parameter, required), ...)), in the WIT's order.
CONTAINER_ACTIONS = (
    ("create_container", (("name", True), ("image", True), ("command", False), ("env", False),
                          ("ports", False), ("volumes", False), ("network", False))),
    ("delete_container", (("name", True),)),
    ("start_container", (("name", True),)),
    ("stop_container", (("name", True), ("stop_timeout", False))),
    ("restart_container", (("name", True), ("stop_timeout", False))),
    ("inspect_container", (("name", True),)),
    ("list_containers", ()),
    ("logs", (("name", True),)),
    ("exec", (("name", True), ("cmd", True))),
    ("create_volume", (("name", True),)),
    ("delete_volume", (("name", True),)),
    ("attach_volume", (("name", True), ("container", True), ("target", True))),
    ("detach_volume", (("name", True), ("container", True))),
    ("list_volumes", ()),
    ("create_network", (("name", True),)),
    ("delete_network", (("name", True),)),
    ("connect_network", (("network", True), ("container", True))),
    ("disconnect_network", (("network", True), ("container", True))),
    ("list_networks", ()),
)

DIRECTOR_ACTIONS = (
    ("create_vm", (("name", True), ("image", True), ("cpus", False), ("memory_mb", False), ("metadata", False))),
    ("delete_vm", (("vm", True),)),
    ("start_vm", (("vm", True),)),
    ("stop_vm", (("vm", True),)),
    ("reboot_vm", (("vm", True),)),
    ("has_vm", (("vm", True),)),
    ("inspect_vm", (("vm", True),)),
    ("list_vms", ()),
    ("set_vm_metadata", (("vm", True), ("metadata", True))),
    ("create_disk", (("name", True), ("size_mb", True))),
    ("delete_disk", (("disk", True),)),
    ("attach_disk", (("vm", True), ("disk", True))),
    ("detach_disk", (("vm", True), ("disk", True))),
    ("has_disk", (("disk", True),)),
    ("list_disks", (("vm", False),)),
    ("snapshot_disk", (("disk", True), ("snapshot", True))),
)
