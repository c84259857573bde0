//! Ports chosen for services with `port = "auto"`: recorded in the state directory
//! (`ports.json`), so that every command sees the same port and a restart keeps it.
//! (While they are handed out they are also reserved machine-wide: `reservations`.)

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::atomic::write_atomically;
use super::regular::{SMALL_FILE_MAX, read_small};
use super::{Lock, Registry};
use crate::error::{Error, Result};

impl Registry {
    fn ports_path(dir: &Path) -> PathBuf {
        dir.join("ports.json")
    }

    /// The ports chosen so far in the state directory `dir`, by service.
    pub fn chosen_ports_in(dir: &Path) -> BTreeMap<String, u16> {
        read_small(&Self::ports_path(dir), SMALL_FILE_MAX)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn chosen_ports(&self) -> BTreeMap<String, u16> {
        Self::chosen_ports_in(self.dir())
    }

    pub fn write_chosen_ports(&self, ports: &BTreeMap<String, u16>, _lock: &Lock) -> Result<()> {
        let path = Self::ports_path(self.dir());
        let json = serde_json::to_vec_pretty(ports).map_err(|err| Error::state(&path, io::Error::other(err)))?;
        write_atomically(&path, &json).map_err(|err| Error::state(&path, err))
    }
}
