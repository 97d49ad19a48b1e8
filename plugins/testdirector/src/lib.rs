//! A minimal director CPI for the host's tests of the `director-cpi` world: a VM is a file
//! `/vms/ID` holding its metadata lines (`key=value`), so state survives between calls (each
//! call runs in a fresh instance). Disks and snapshots are declared unsupported.

use omni_cpi_sdk::prelude::*;

struct TestDirector;

const ROOT: &str = "/vms";
/// The images this director "has".
const IMAGES: [&str; 2] = ["debian", "ubuntu"];

fn path(id: &str) -> CpiResult<String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(CpiError::new(ErrorKind::InvalidArgument, format!("bad VM id {id:?}")));
    }
    Ok(format!("{ROOT}/{id}"))
}

fn read(id: &str) -> CpiResult<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path(id)?).map_err(|_| CpiError::new(ErrorKind::NotFound, format!("no VM {id}")))?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn write(id: &str, metadata: &[(String, String)]) -> CpiResult<()> {
    let text: String = metadata.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(path(id)?, text).map_err(|e| CpiError::new(ErrorKind::Failed, e.to_string()))
}

fn info(id: &str) -> CpiResult<VmInfo> {
    Ok(VmInfo {
        id: id.to_string(),
        name: id.to_string(),
        state: VmState::Stopped,
        metadata: read(id)?,
        disks: vec![],
        details: String::new(),
    })
}

impl Plugin for TestDirector {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "testdirector".into(),
            kind: CpiKind::Director,
            version: "0.1.0".into(),
            actions: describe_actions(
                DIRECTOR_ACTIONS,
                &[
                    "create_vm",
                    "delete_vm",
                    "start_vm",
                    "stop_vm",
                    "reboot_vm",
                    "has_vm",
                    "inspect_vm",
                    "list_vms",
                    "set_vm_metadata",
                ],
                "the test director has no disks",
            ),
            // What the conformance kit passes to every call (the host reads `conformance.*`).
            default_settings: vec![("conformance.image".into(), "debian".into())],
            capabilities: Capabilities {
                exec: vec![],
                dirs: vec![DirRequest { guest_path: ROOT.into(), writable: true, description: "VM records".into() }],
                env: vec![],
            },
        }
    }
}

impl Director for TestDirector {
    fn create_vm(spec: VmSpec) -> CpiResult<VmInfo> {
        if !IMAGES.contains(&spec.image.as_str()) {
            return Err(CpiError::new(
                ErrorKind::NotFound,
                format!("no image {:?} (known: {})", spec.image, IMAGES.join(", ")),
            ));
        }
        if std::fs::metadata(path(&spec.name)?).is_ok() {
            return Err(CpiError::new(ErrorKind::AlreadyExists, format!("VM {} exists", spec.name)));
        }
        let mut metadata = spec.metadata;
        metadata.push(("image".into(), spec.image));
        metadata.push(("cpus".into(), spec.cpus.to_string()));
        write(&spec.name, &metadata)?;
        info(&spec.name)
    }
    fn delete_vm(id: String) -> CpiResult<()> {
        read(&id)?;
        std::fs::remove_file(path(&id)?).map_err(|e| CpiError::new(ErrorKind::Failed, e.to_string()))
    }
    fn start_vm(id: String) -> CpiResult<()> {
        read(&id).map(|_| ())
    }
    fn stop_vm(id: String) -> CpiResult<()> {
        read(&id).map(|_| ())
    }
    fn reboot_vm(id: String) -> CpiResult<()> {
        read(&id).map(|_| ())
    }
    fn has_vm(id: String) -> CpiResult<bool> {
        Ok(std::fs::metadata(path(&id)?).is_ok())
    }
    fn inspect_vm(id: String) -> CpiResult<VmInfo> {
        info(&id)
    }
    fn list_vms() -> CpiResult<Vec<String>> {
        let mut ids: Vec<String> = std::fs::read_dir(ROOT)
            .map_err(|e| CpiError::new(ErrorKind::Failed, e.to_string()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }
    fn set_vm_metadata(id: String, metadata: Vec<(String, String)>) -> CpiResult<()> {
        let mut all = read(&id)?;
        all.retain(|(k, _)| !metadata.iter().any(|(m, _)| m == k));
        all.extend(metadata);
        write(&id, &all)
    }
    // Disks and snapshots: the SDK's defaults answer `unsupported`.
}

omni_cpi_sdk::export_director!(TestDirector);
