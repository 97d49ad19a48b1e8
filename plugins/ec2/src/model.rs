//! EC2's answers, read: instances and volumes out of DescribeInstances/DescribeVolumes XML.

use omni_cpi_sdk::{CpiError, CpiResult, ErrorKind};
use roxmltree::{Document, Node};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// pending, running, shutting-down, terminated, stopping, stopped.
    pub state: String,
    pub image: String,
    pub instance_type: String,
    pub tags: Vec<(String, String)>,
    /// Device names in use (`/dev/xvda`, `/dev/sdf`, ...).
    pub devices: Vec<String>,
}

impl Instance {
    /// Terminated instances linger in EC2's answers for a while; to the contract they are gone.
    pub fn exists(&self) -> bool {
        !matches!(self.state.as_str(), "terminated" | "shutting-down")
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub id: String,
    pub size_gib: u64,
    /// The instances it is attached to (attaching or attached).
    pub attached_to: Vec<String>,
    pub tags: Vec<(String, String)>,
}

fn parse(xml: &str) -> CpiResult<Document<'_>> {
    Document::parse(xml)
        .map_err(|e| CpiError::new(ErrorKind::Failed, format!("EC2 answered XML that does not parse: {e}")))
}

fn child<'a>(node: Node<'a, 'a>, name: &str) -> Option<Node<'a, 'a>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn text(node: Node<'_, '_>, name: &str) -> String {
    child(node, name).and_then(|n| n.text()).unwrap_or_default().trim().to_string()
}

/// The `item`s of the child list `name` of `node`.
fn items<'a>(node: Node<'a, 'a>, name: &str) -> Vec<Node<'a, 'a>> {
    child(node, name).map(|list| list.children().filter(|n| n.has_tag_name("item")).collect()).unwrap_or_default()
}

fn tags(node: Node<'_, '_>) -> Vec<(String, String)> {
    items(node, "tagSet").into_iter().map(|tag| (text(tag, "key"), text(tag, "value"))).collect()
}

/// The instances of a DescribeInstances (or RunInstances) answer.
pub fn instances(xml: &str) -> CpiResult<Vec<Instance>> {
    let document = parse(xml)?;
    let mut found = Vec::new();
    for set in document.descendants().filter(|n| n.has_tag_name("instancesSet")) {
        for item in set.children().filter(|n| n.has_tag_name("item")) {
            found.push(Instance {
                id: text(item, "instanceId"),
                state: child(item, "instanceState").map(|s| text(s, "name")).unwrap_or_default(),
                image: text(item, "imageId"),
                instance_type: text(item, "instanceType"),
                tags: tags(item),
                devices: items(item, "blockDeviceMapping").into_iter().map(|d| text(d, "deviceName")).collect(),
            });
        }
    }
    Ok(found)
}

/// The volumes of a DescribeVolumes answer.
pub fn volumes(xml: &str) -> CpiResult<Vec<Volume>> {
    let document = parse(xml)?;
    let Some(set) = document.descendants().find(|n| n.has_tag_name("volumeSet")) else { return Ok(Vec::new()) };
    Ok(set
        .children()
        .filter(|n| n.has_tag_name("item"))
        .map(|item| Volume {
            id: text(item, "volumeId"),
            size_gib: text(item, "size").parse().unwrap_or(0),
            attached_to: items(item, "attachmentSet")
                .into_iter()
                .filter(|a| !matches!(text(*a, "status").as_str(), "detaching" | "detached"))
                .map(|a| text(a, "instanceId"))
                .collect(),
            tags: tags(item),
        })
        .collect())
}

/// The text of the first element `name` anywhere in the answer (`volumeId` of CreateVolume, ...).
pub fn first(xml: &str, name: &str) -> CpiResult<String> {
    let document = parse(xml)?;
    document
        .descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
        .ok_or_else(|| CpiError::new(ErrorKind::Failed, format!("EC2's answer has no {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_instances_and_volumes() {
        let xml = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
          <reservationSet><item><instancesSet><item>
            <instanceId>i-0abc</instanceId><imageId>ami-1</imageId>
            <instanceState><code>16</code><name>running</name></instanceState>
            <instanceType>t3.micro</instanceType>
            <tagSet><item><key>Name</key><value>web</value></item></tagSet>
          </item></instancesSet></item></reservationSet></DescribeInstancesResponse>"#;
        let found = instances(xml).expect("parses");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "i-0abc");
        assert_eq!(found[0].state, "running");
        assert_eq!(found[0].tag("Name"), Some("web"));
        let xml = r#"<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><size>1</size>
          <attachmentSet><item><instanceId>i-0abc</instanceId><status>attached</status></item></attachmentSet>
          <tagSet/></item></volumeSet></DescribeVolumesResponse>"#;
        let found = volumes(xml).expect("parses");
        assert_eq!(found[0].attached_to, vec!["i-0abc".to_string()]);
        assert_eq!(first("<a><b><volumeId> vol-9 </volumeId></b></a>", "volumeId").expect("found"), "vol-9");
    }
}
