//! The actions each kind of CPI must provide (or declare unsupported), from the seed CPI guide for
//! containers and from the director interface (BOSH vocabulary) for directors.

use crate::diagnostic::Diagnostic;
use crate::spec::{CpiKind, Spec};

/// The seed's required container actions.
pub const CONTAINER_ACTIONS: &[&str] = &[
    "create_container",
    "delete_container",
    "start_container",
    "stop_container",
    "restart_container",
    "inspect_container",
    "list_containers",
    "logs",
    "exec",
    "create_volume",
    "delete_volume",
    "attach_volume",
    "create_network",
    "delete_network",
    "connect_network",
    "disconnect_network",
];

/// Container actions a spec may add beyond the required ones.
pub const CONTAINER_OPTIONAL_ACTIONS: &[&str] = &["detach_volume", "list_volumes", "list_networks"];

/// The director interface: VM lifecycle, metadata and disks.
pub const DIRECTOR_ACTIONS: &[&str] = &[
    "create_vm",
    "delete_vm",
    "start_vm",
    "stop_vm",
    "reboot_vm",
    "has_vm",
    "inspect_vm",
    "list_vms",
    "set_vm_metadata",
    "create_disk",
    "delete_disk",
    "attach_disk",
    "detach_disk",
    "has_disk",
    "list_disks",
    "snapshot_disk",
];

pub const DIRECTOR_OPTIONAL_ACTIONS: &[&str] = &["delete_snapshot"];

/// OmniCloud's later director vocabulary (`*_worker`, `*_volume`), accepted as aliases of the
/// standard names (seed and BOSH: `*_vm`, `*_disk`).
pub const DIRECTOR_ALIASES: &[(&str, &str)] = &[
    ("create_worker", "create_vm"),
    ("delete_worker", "delete_vm"),
    ("start_worker", "start_vm"),
    ("stop_worker", "stop_vm"),
    ("reboot_worker", "reboot_vm"),
    ("restart_worker", "reboot_vm"),
    ("has_worker", "has_vm"),
    ("inspect_worker", "inspect_vm"),
    ("get_worker", "inspect_vm"),
    ("list_workers", "list_vms"),
    ("set_worker_metadata", "set_vm_metadata"),
    ("create_volume", "create_disk"),
    ("delete_volume", "delete_disk"),
    ("attach_volume", "attach_disk"),
    ("detach_volume", "detach_disk"),
    ("has_volume", "has_disk"),
    ("list_volumes", "list_disks"),
    ("snapshot_volume", "snapshot_disk"),
];

/// The shape of a standard parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One value: a string, or a number or boolean written as one.
    Scalar,
    /// An array of scalars (`command`, `cmd`, `ports`, `volumes`).
    List,
    /// An object of scalars (`env`, `metadata`).
    Map,
}

/// One parameter of a standard action, as callers (omni's Agent and Director) pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardParam {
    pub name: &'static str,
    pub shape: Shape,
    pub required: bool,
}

const fn required(name: &'static str) -> StandardParam {
    StandardParam { name, shape: Shape::Scalar, required: true }
}

const fn optional(name: &'static str, shape: Shape) -> StandardParam {
    StandardParam { name, shape, required: false }
}

/// The parameters of a standard action (by its standard name), as the component interface and the
/// shipped specs take them; empty for an action outside the catalogue.
pub fn standard_params(kind: CpiKind, action: &str) -> &'static [StandardParam] {
    use Shape::{List, Map, Scalar};
    match (kind, canonical_action(kind, action)) {
        (CpiKind::Container, "create_container") => {
            const P: &[StandardParam] = &[
                required("name"),
                required("image"),
                optional("command", List),
                optional("env", Map),
                optional("ports", List),
                optional("volumes", List),
                optional("network", Scalar),
            ];
            P
        }
        (
            CpiKind::Container,
            "delete_container" | "start_container" | "inspect_container" | "logs" | "create_volume" | "delete_volume"
            | "create_network" | "delete_network",
        ) => {
            const P: &[StandardParam] = &[required("name")];
            P
        }
        (CpiKind::Container, "stop_container" | "restart_container") => {
            const P: &[StandardParam] = &[required("name"), optional("stop_timeout", Scalar)];
            P
        }
        (CpiKind::Container, "exec") => {
            const P: &[StandardParam] = &[required("name"), StandardParam { name: "cmd", shape: List, required: true }];
            P
        }
        (CpiKind::Container, "attach_volume") => {
            const P: &[StandardParam] = &[required("name"), required("container"), required("target")];
            P
        }
        (CpiKind::Container, "detach_volume") => {
            const P: &[StandardParam] = &[required("name"), required("container")];
            P
        }
        (CpiKind::Container, "connect_network" | "disconnect_network") => {
            const P: &[StandardParam] = &[required("network"), required("container")];
            P
        }
        (CpiKind::Director, "create_vm") => {
            const P: &[StandardParam] = &[
                required("name"),
                required("image"),
                optional("cpus", Scalar),
                optional("memory_mb", Scalar),
                optional("metadata", Map),
            ];
            P
        }
        (CpiKind::Director, "delete_vm" | "start_vm" | "stop_vm" | "reboot_vm" | "has_vm" | "inspect_vm") => {
            const P: &[StandardParam] = &[required("vm")];
            P
        }
        (CpiKind::Director, "set_vm_metadata") => {
            const P: &[StandardParam] =
                &[required("vm"), StandardParam { name: "metadata", shape: Map, required: true }];
            P
        }
        (CpiKind::Director, "create_disk") => {
            const P: &[StandardParam] = &[required("name"), required("size_mb")];
            P
        }
        (CpiKind::Director, "delete_disk" | "has_disk") => {
            const P: &[StandardParam] = &[required("disk")];
            P
        }
        (CpiKind::Director, "attach_disk" | "detach_disk") => {
            const P: &[StandardParam] = &[required("vm"), required("disk")];
            P
        }
        (CpiKind::Director, "list_disks") => {
            const P: &[StandardParam] = &[optional("vm", Scalar)];
            P
        }
        (CpiKind::Director, "snapshot_disk") => {
            const P: &[StandardParam] = &[required("disk"), required("snapshot")];
            P
        }
        (CpiKind::Director, "delete_snapshot") => {
            const P: &[StandardParam] = &[required("snapshot")];
            P
        }
        _ => &[],
    }
}

/// The shape the catalogue gives `param` of `action`, if it names it.
pub fn standard_shape(kind: CpiKind, action: &str, param: &str) -> Option<Shape> {
    standard_params(kind, action).iter().find(|p| p.name == param).map(|p| p.shape)
}

/// The standard name of an action: director aliases map to their `*_vm` / `*_disk` names.
pub fn canonical_action(kind: CpiKind, name: &str) -> &str {
    match kind {
        CpiKind::Director => {
            DIRECTOR_ALIASES.iter().find(|(alias, _)| *alias == name).map_or(name, |(_, standard)| standard)
        }
        CpiKind::Container => name,
    }
}

pub fn required_actions(kind: CpiKind) -> &'static [&'static str] {
    match kind {
        CpiKind::Container => CONTAINER_ACTIONS,
        CpiKind::Director => DIRECTOR_ACTIONS,
    }
}

pub fn known_actions(kind: CpiKind) -> impl Iterator<Item = &'static str> {
    let optional = match kind {
        CpiKind::Container => CONTAINER_OPTIONAL_ACTIONS,
        CpiKind::Director => DIRECTOR_OPTIONAL_ACTIONS,
    };
    required_actions(kind).iter().chain(optional).copied()
}

/// One error per required action that is neither implemented nor declared unsupported.
pub fn check_required_actions(spec: &Spec) -> Vec<Diagnostic> {
    required_actions(spec.kind)
        .iter()
        .filter(|name| spec.action(name).is_none())
        .map(|name| {
            let d = Diagnostic::error(format!(
                "{} CPI `{}` lacks the required action `{name}`",
                spec.kind.as_str(),
                spec.name
            ))
            .help(format!(
                "implement it, or declare it explicitly: \"{name}\": {{\"unsupported\": \"why the runtime cannot do it\"}}"
            ));
            match &spec.actions_location {
                Some(location) => d.at(location.clone()),
                None => d,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_names_the_list_and_map_parameters_of_the_seed() {
        assert_eq!(standard_shape(CpiKind::Container, "create_container", "ports"), Some(Shape::List));
        assert_eq!(standard_shape(CpiKind::Container, "create_container", "env"), Some(Shape::Map));
        assert_eq!(standard_shape(CpiKind::Container, "exec", "cmd"), Some(Shape::List));
        assert_eq!(standard_shape(CpiKind::Director, "create_worker", "metadata"), Some(Shape::Map), "aliases too");
        assert_eq!(standard_shape(CpiKind::Container, "create_container", "nope"), None);
        let listed = |kind| {
            known_actions(kind)
                .filter(move |a| !["list_containers", "list_vms", "list_volumes", "list_networks"].contains(a))
        };
        for kind in [CpiKind::Container, CpiKind::Director] {
            for action in listed(kind) {
                assert!(!standard_params(kind, action).is_empty(), "{action} has no catalogue entry");
            }
        }
    }

    #[test]
    fn director_aliases_map_to_standard_names_only_for_directors() {
        assert_eq!(canonical_action(CpiKind::Director, "create_worker"), "create_vm");
        assert_eq!(canonical_action(CpiKind::Director, "attach_volume"), "attach_disk");
        assert_eq!(canonical_action(CpiKind::Director, "create_vm"), "create_vm");
        assert_eq!(canonical_action(CpiKind::Container, "create_volume"), "create_volume");
        for (alias, standard) in DIRECTOR_ALIASES {
            assert!(DIRECTOR_ACTIONS.contains(standard), "{alias} → {standard}");
        }
    }
}
