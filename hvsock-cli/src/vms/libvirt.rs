//! libvirt's running domains: the status XML it keeps for each under `/run/libvirt/qemu`
//! (root's), whose `<vsock>` device has the guest's CID (`<cid auto='yes' address='3'/>`).

use super::{FoundVm, Reach};

/// Where libvirtd (qemu:///system) keeps running domains' status.
#[cfg(target_os = "linux")]
const RUN_DIR: &str = "/run/libvirt/qemu";

#[cfg(target_os = "linux")]
pub fn find(d: &mut super::Discovery) {
    let entries = match std::fs::read_dir(RUN_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return, // no libvirt here
        Err(e) => {
            d.unavailable.push((format!("libvirt ({RUN_DIR})"), format!("{e} (root can read it)")));
            return;
        }
    };
    for path in entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "xml")) {
        match std::fs::read_to_string(&path) {
            Ok(xml) => d.vms.extend(parse(&xml, &path.display().to_string())),
            Err(e) => d.unavailable.push((path.display().to_string(), e.to_string())),
        }
    }
}

/// The vsock devices of one domain's XML: a `<domstatus>` file (its state attribute says how
/// it runs) or a bare `<domain>` (as `virsh dumpxml` prints it).
pub fn parse(xml: &str, source: &str) -> Vec<FoundVm> {
    let Ok(doc) = roxmltree::Document::parse(xml) else { return Vec::new() };
    let root = doc.root_element();
    let state = (root.tag_name().name() == "domstatus").then(|| root.attribute("state")).flatten();
    let Some(domain) = root.descendants().find(|n| n.has_tag_name("domain")) else { return Vec::new() };
    let name = domain
        .children()
        .find(|n| n.has_tag_name("name"))
        .and_then(|n| n.text())
        .unwrap_or("(unnamed)")
        .trim()
        .to_string();
    let Some(devices) = domain.children().find(|n| n.has_tag_name("devices")) else { return Vec::new() };
    devices
        .children()
        .filter(|n| n.has_tag_name("vsock"))
        .map(|vsock| {
            let cid = vsock.children().find(|n| n.has_tag_name("cid"));
            let address = cid.and_then(|c| c.attribute("address")).and_then(|a| a.parse().ok());
            FoundVm {
                name: name.clone(),
                reach: address.map_or(Reach::NoCidYet, Reach::Cid),
                hypervisor: format!("libvirt ({})", domain.attribute("type").unwrap_or("qemu")),
                state: state.map(str::to_string),
                source: source.to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_domains_their_cids_and_the_odd_ones() {
        let status = r#"<domstatus state='running' reason='booted' pid='4242'>
  <taint flag='high-privileges'/>
  <domain type='kvm' id='3'>
    <name>web</name>
    <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>
    <devices>
      <disk type='file' device='disk'><source file='/var/lib/libvirt/images/web.qcow2'/></disk>
      <vsock model='virtio'>
        <cid auto='yes' address='3'/>
        <alias name='vsock0'/>
        <address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>
      </vsock>
    </devices>
  </domain>
</domstatus>"#;
        let vms = parse(status, "/run/libvirt/qemu/web.xml");
        assert_eq!(vms.len(), 1);
        assert_eq!(
            (vms[0].name.as_str(), &vms[0].reach, vms[0].state.as_deref()),
            ("web", &Reach::Cid(3), Some("running"))
        );
        assert_eq!(vms[0].hypervisor, "libvirt (kvm)");
        // `virsh dumpxml` of a domain whose automatic CID is not given yet.
        let auto = "<domain type='kvm'><name>new</name><devices><vsock model='virtio'><cid auto='yes'/></vsock></devices></domain>";
        assert_eq!(parse(auto, "virsh")[0].reach, Reach::NoCidYet);
        // No vsock device; not XML at all.
        assert!(parse("<domain><name>x</name><devices><interface type='network'/></devices></domain>", "f")
            .is_empty());
        assert!(parse("not xml", "f").is_empty());
    }
}
