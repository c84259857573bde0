//! The project cookie: two environment variables that every descendant of a service
//! inherits, set in one place for every kind of child.

use std::ffi::OsString;
use std::path::Path;

/// Environment variable naming the canonical project root; inherited by every
/// descendant of a service, it is how `stop` and `cleanup` find leftovers.
pub const COOKIE_PROJECT: &str = "XTASK_PROJECT";
/// Environment variable naming the service a process belongs to.
pub const COOKIE_SERVICE: &str = "XTASK_SERVICE";

/// The `XTASK_SERVICE` of the detached monitor: not a valid service name, so it cannot
/// clash with one.
pub const MONITOR_SERVICE: &str = "@monitor";
/// The cookie's two variables for a process of `service` in the project at `root`.
pub fn vars(root: &Path, service: &str) -> [(OsString, OsString); 2] {
    [
        (COOKIE_PROJECT.into(), root.as_os_str().to_owned()),
        (COOKIE_SERVICE.into(), service.into()),
    ]
}
