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
