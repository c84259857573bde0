//! A service's fingerprint: hashes of what defines a running instance of it, recorded
//! when it starts, so that `status` and `start-bg` can tell a service that runs an older
//! config from one that runs the config as it reads now.

use std::collections::BTreeMap;

use super::Service;

/// The hashes of one service as configured (hexadecimal FNV-1a, 64 bits: the record
/// needs a value that is the same in every build, which std's hasher does not promise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// What its process is: command, working directory, ports, container, terminal,
    /// PID file.
    pub config: String,
    /// The environment it declares: its env_files' values, `env` and `PORT`. Not the
    /// variables it inherits from the xtask that started it, which differ from shell
    /// to shell without changing the service.
    pub env: String,
}

/// What changed between a recorded instance and the config as it reads now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub config: bool,
    pub env: bool,
}

impl Changes {
    pub fn any(self) -> bool {
        self.config || self.env
    }
}

impl Service {
    pub fn fingerprint(&self) -> Fingerprint {
        let config = format!(
            "command={:?}\ncwd={:?}\nports={:?}\ncontainer={:?}\ntty={}\npid_file={:?}\n",
            self.command, self.cwd, self.ports, self.container, self.tty, self.pid_file
        );
        // Later values win, as they do in the environment the service gets.
        let env: BTreeMap<&str, &str> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let env: String = env.iter().map(|(k, v)| format!("{k:?}={v:?}\n")).collect();
        Fingerprint {
            config: fnv1a(&config),
            env: fnv1a(&env),
        }
    }

    /// How the service as configured now differs from an instance that recorded these
    /// hashes. A hash not recorded (a record of an older xtask) tells nothing, so it
    /// counts as unchanged.
    pub fn changes_since(&self, config: Option<&str>, env: Option<&str>) -> Changes {
        let now = self.fingerprint();
        Changes {
            config: config.is_some_and(|h| h != now.config),
            env: env.is_some_and(|h| h != now.env),
        }
    }
}

fn fnv1a(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn the_hash_is_fnv1a() {
        // The published test vectors: the hash must not change between builds.
        assert_eq!(fnv1a(""), "cbf29ce484222325");
        assert_eq!(fnv1a("a"), "af63dc4c8601ec8c");
    }
}
