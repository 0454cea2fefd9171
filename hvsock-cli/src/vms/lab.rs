//! The lab's running guests. From this machine a guest is reached through its hybrid socket;
//! from a guest of the same run, by CID.

use super::{Discovery, FoundVm, Reach};

pub fn find(d: &mut Discovery) {
    // Inside a guest of a run (this machine's --host commands see HVSOCK_LAB_DIR too).
    let own_run = std::env::var_os("HVSOCK_LAB_GUEST")
        .and(std::env::var_os("HVSOCK_LAB_DIR"))
        .map(std::path::PathBuf::from);
    for vm in hvsock_lab::running_vms() {
        let inside = own_run.as_ref() == Some(&vm.run_dir);
        let reach = match (&vm.uds, inside) {
            (_, true) => Reach::Cid(vm.cid),
            (Some(uds), false) => Reach::Hybrid(uds.clone()),
            (None, false) => Reach::NotFromHere,
        };
        d.vms.push(FoundVm {
            name: vm.name,
            reach,
            hypervisor: "hvsock lab (User-Mode Linux)".into(),
            state: Some("running".into()),
            source: format!("lab run {} ({})", vm.pid, vm.run_dir.display()),
        });
    }
}
