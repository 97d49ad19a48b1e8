//! The plugin's state on disk, under the state root (a WASI directory the operator grants at the
//! same path on the host, so the paths written into config.json are the paths runc sees):
//!
//! ```text
//! STATE_ROOT/containers/NAME/container.json   the container as created (+ attached volumes, network)
//! STATE_ROOT/containers/NAME/config.json      the OCI runtime config, regenerated from container.json
//! STATE_ROOT/containers/NAME/meta/log         what the container printed (bind-mounted at /.omni-cpi)
//! STATE_ROOT/volumes/NAME/                    a volume: a plain directory, bind-mounted into containers
//! STATE_ROOT/networks/NAME/                   a network's registration (its namespace is omni-runc-NAME)
//! ```

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use omni_cpi_sdk::prelude::*;
use serde_json::{json, Value};

use crate::{IMAGE_ROOT, STATE_ROOT};

/// The most of a log `logs` returns: the end of the file. The host's default limits are 4 MiB for
/// a returned value and 1 MiB per exec output stream; 1 MiB keeps `logs` like the JSON CPIs' `logs`.
pub const MAX_LOG_BYTES: u64 = 1 << 20;

pub fn containers_dir() -> PathBuf {
    Path::new(STATE_ROOT).join("containers")
}

pub fn bundle_dir(name: &str) -> PathBuf {
    containers_dir().join(name)
}

pub fn meta_dir(name: &str) -> PathBuf {
    bundle_dir(name).join("meta")
}

pub fn volumes_dir() -> PathBuf {
    Path::new(STATE_ROOT).join("volumes")
}

pub fn volume_dir(name: &str) -> PathBuf {
    volumes_dir().join(name)
}

pub fn networks_dir() -> PathBuf {
    Path::new(STATE_ROOT).join("networks")
}

pub fn network_dir(name: &str) -> PathBuf {
    networks_dir().join(name)
}

pub fn image_dir(image: &str) -> PathBuf {
    Path::new(IMAGE_ROOT).join(image)
}

pub use omni_cpi_sdk::state::{claim_dir, create_dir_all, io_error, is_dir, remove_tree, write_atomic};

/// Valid names of the entries of `dir` that are directories, sorted; none when `dir` is missing.
pub fn list_names(dir: &Path) -> CpiResult<Vec<String>> {
    omni_cpi_sdk::state::list_names(dir, |name| crate::validate::name("name", name).is_ok())
}

/// A bind mount of a volume into a container.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    pub volume: String,
    pub target: String,
}

/// What the plugin knows about a container beyond runc's own state (runc forgets a container
/// when it is deleted, which `stop` does so that it can be run again).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub network: Option<String>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Whether it was ever started: tells "stopped" from "created" once runc has forgotten it.
    pub started: bool,
}

impl Record {
    pub fn path(name: &str) -> PathBuf {
        bundle_dir(name).join("container.json")
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "image": self.image,
            "command": self.command,
            "env": self.env.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "volumes": self.mounts.iter().map(|m| json!({"volume": m.volume, "target": m.target})).collect::<Vec<_>>(),
            "network": self.network,
            "created": self.created,
            "started": self.started,
        })
    }

    pub fn from_json(v: &Value) -> Option<Record> {
        let text = |v: &Value| v.as_str().map(str::to_string);
        let texts = |v: &Value| v.as_array()?.iter().map(text).collect::<Option<Vec<_>>>();
        Some(Record {
            name: text(&v["name"])?,
            image: text(&v["image"])?,
            command: texts(&v["command"])?,
            env: v["env"]
                .as_array()?
                .iter()
                .map(|pair| Some((text(&pair[0])?, text(&pair[1])?)))
                .collect::<Option<Vec<_>>>()?,
            mounts: v["volumes"]
                .as_array()?
                .iter()
                .map(|m| Some(Mount { volume: text(&m["volume"])?, target: text(&m["target"])? }))
                .collect::<Option<Vec<_>>>()?,
            network: match &v["network"] {
                Value::Null => None,
                other => Some(text(other)?),
            },
            created: v["created"].as_u64()?,
            started: v["started"].as_bool()?,
        })
    }

    /// The record of container `name`: `not-found` when the container does not exist.
    pub fn load(name: &str) -> CpiResult<Record> {
        let path = Record::path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CpiError::new(ErrorKind::NotFound, format!("runc: no such container: {name}")))
            }
            Err(e) => return Err(io_error("read", &path, e)),
        };
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .as_ref()
            .and_then(Record::from_json)
            .filter(|r| r.name == name)
            .ok_or_else(|| CpiError::new(ErrorKind::Failed, format!("runc: {} is damaged", path.display())))
    }

    pub fn save(&self) -> CpiResult<()> {
        let text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        write_atomic(&Record::path(&self.name), text.as_bytes())
    }

    /// Writes the OCI config runc reads at the next start.
    pub fn write_config(&self) -> CpiResult<()> {
        let config = crate::oci::config(self);
        let text = serde_json::to_string_pretty(&config).unwrap_or_default();
        write_atomic(&bundle_dir(&self.name).join("config.json"), text.as_bytes())
    }
}

/// Every readable container record, for the in-use checks of volumes and networks.
pub fn all_records() -> CpiResult<Vec<Record>> {
    let mut records = Vec::new();
    for name in list_names(&containers_dir())? {
        match Record::load(&name) {
            Ok(record) => records.push(record),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(records)
}

/// The end of the container's log (at most [`MAX_LOG_BYTES`], from a line start); empty before
/// the first start. The log lives in a directory the container can write, so anything but a
/// regular file there is refused rather than followed.
pub fn read_log(name: &str) -> CpiResult<String> {
    let path = meta_dir(name).join("log");
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(CpiError::new(ErrorKind::Failed, format!("runc: {} is not a regular file", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(io_error("read", &path, e)),
    }
    let mut file = fs::File::open(&path).map_err(|e| io_error("read", &path, e))?;
    let len = file.metadata().map_err(|e| io_error("read", &path, e))?.len();
    let skip = len.saturating_sub(MAX_LOG_BYTES);
    file.seek(SeekFrom::Start(skip)).map_err(|e| io_error("read", &path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_LOG_BYTES).read_to_end(&mut bytes).map_err(|e| io_error("read", &path, e))?;
    if skip > 0 {
        if let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            bytes.drain(..=newline);
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let record = Record {
            name: "web".into(),
            image: "busybox".into(),
            command: vec!["sh".into(), "-c".into(), "echo \"$1\"".into()],
            env: vec![("A".into(), "b c".into())],
            mounts: vec![Mount { volume: "v".into(), target: "/data".into() }],
            network: Some("n".into()),
            created: 7,
            started: true,
        };
        assert_eq!(Record::from_json(&record.to_json()), Some(record.clone()));
        let none = Record { network: None, ..record };
        assert_eq!(Record::from_json(&none.to_json()), Some(none));
    }
}
