//! Whose listener a service's `port` and `http` probes accept: the processes the
//! service owns at the moment its port answers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::os::ServiceProcess;
use crate::os::cgroup::Cgroup;
use crate::os::process::with_descendants;
use crate::probe::Owner;
use crate::service::processes::owned;
use crate::state::{Entry, Registry};

/// A service being started: the members of its cgroup, or else the process it runs
/// now (the one started, or the daemon it forked, once followed into `main`) with its
/// descendants.
pub fn of_start(cgroup: Option<Cgroup>, main: Arc<Mutex<Option<ServiceProcess>>>, started: ServiceProcess) -> Owner {
    Owner::new(move || match &cgroup {
        Some(cgroup) => cgroup.members(),
        None => {
            let now = main.lock().ok().and_then(|m| *m).unwrap_or(started);
            with_descendants(&[now]).iter().map(|p| p.pid).collect()
        }
    })
}

/// A supervised service: what its record, as it is when the port answers, proves the
/// service's (the supervisor rewrites it when it follows a daemon or restarts).
pub fn of_record(root: PathBuf, registry: Registry, service: String) -> Owner {
    Owner::new(move || {
        let record = match registry.entry(&service) {
            Some(Entry::Record(record)) => Some(record),
            _ => None,
        };
        owned(&root, &service, record.as_ref()).iter().map(|p| p.pid).collect()
    })
}
