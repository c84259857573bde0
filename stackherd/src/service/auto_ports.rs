//! Ports chosen at start for `port = "auto"`: before a command starts anything, each
//! such service gets a free port, recorded in the state directory; the config is then
//! read again, so that its `PORT`, every `${port:NAME}` and its health check name the
//! chosen port. A service keeps its recorded port while it runs or while the port is
//! free, so a restart does not move it.
//!
//! Choosing is a phase of the start like its build: it holds the state lock under the
//! start's own name, so that a stop preempts it, and it never waits unboundedly.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::error::{Error, Interrupted, Result};
use crate::os::interrupts::Interrupts;
use crate::os::port_holders;
use crate::service::Context;
use crate::service::processes::records_in;
use crate::state::Registry;
use crate::state::reservations::{NotReserved, Reservations, unreserved_free_port};

/// What a start writes after its command in the lock while it chooses ports (`start-bg
/// (choosing ports)`): a stop knows it for a start to preempt.
pub const CHOOSING_PORTS: &str = "(choosing ports)";

/// `ctx` with a port for every service with `port = "auto"`: the same context when
/// there is none to choose, or one read again with the new choices. `command` is the
/// start's, named in the lock. A SIGTERM (a stop preempting the start) or Ctrl+C while
/// it waits ends it, with nothing started.
pub fn settle(ctx: Context, command: &str) -> Result<Context> {
    let auto: Vec<String> = ctx
        .config
        .services
        .iter()
        .filter(|s| s.auto_port)
        .map(|s| s.name.clone())
        .collect();
    if auto.is_empty() || ctx.degraded {
        return Ok(ctx);
    }
    let interrupts = Interrupts::install();
    let chosen = {
        let lock = ctx.registry.lock(&format!("{command} {CHOOSING_PORTS}"))?;
        let recorded = ctx.registry.chosen_ports();
        let running = running_services(&ctx.registry);
        let mut shared = Shared::Unopened;
        let mut chosen: BTreeMap<String, u16> = BTreeMap::new();
        for service in &auto {
            if interrupts.any() {
                return Err(interrupted());
            }
            let kept = recorded
                .get(service)
                .copied()
                .filter(|&port| running.contains(service) || port_holders::busy_ports([port]).is_empty());
            let port = match kept {
                Some(port) => port,
                None => free_port(&ctx, &mut shared, interrupts)
                    .map_err(|err| Error::io(format!("cannot choose a port for `{service}`"), err))?
                    .ok_or_else(interrupted)?,
            };
            chosen.insert(service.clone(), port);
        }
        // Asked to abandon after the last choice: nothing is recorded or started.
        if interrupts.any() {
            return Err(interrupted());
        }
        if chosen != recorded {
            ctx.registry.write_chosen_ports(&chosen, &lock)?;
        }
        chosen
    };
    // Already read with these ports: nothing to read again.
    let unchanged = ctx
        .config
        .services
        .iter()
        .filter(|s| s.auto_port)
        .all(|s| s.ports.first() == chosen.get(&s.name));
    if unchanged {
        return Ok(ctx);
    }
    let mut reread = Context::load(&ctx.config.given, ctx.ui)?;
    reread.profiles = ctx.profiles;
    Ok(reread)
}

/// The machine-wide reservations, as far as this start has got with them.
enum Shared {
    Unopened,
    Open(Reservations),
    /// Refused or failed once, said once: the other ports are chosen without them.
    Unusable,
}

/// A free port: reserved machine-wide where the reservations can be used, else bound
/// and handed over unreserved, after one warning. `None` when interrupted.
fn free_port(ctx: &Context, shared: &mut Shared, interrupts: Interrupts) -> std::io::Result<Option<u16>> {
    if let Shared::Unopened = shared {
        *shared = match Reservations::open() {
            Ok(reservations) => Shared::Open(reservations),
            Err(why) => {
                warn_unreserved(ctx, &why);
                Shared::Unusable
            }
        };
    }
    if let Shared::Open(reservations) = shared {
        match reservations.reserve(&|| interrupts.any()) {
            Ok(port) => return Ok(Some(port)),
            Err(NotReserved::Interrupted) => return Ok(None),
            Err(NotReserved::Unusable(why)) => {
                warn_unreserved(ctx, &why);
                *shared = Shared::Unusable;
            }
        }
    }
    unreserved_free_port().map(Some)
}

fn warn_unreserved(ctx: &Context, why: &impl std::fmt::Display) {
    ctx.ui.warn(format!(
        "ports are chosen without the reservations shared by your checkouts: {why} (a start of another checkout at this moment could be handed the same port)"
    ));
}

fn interrupted() -> Error {
    Error::Interrupted(Interrupted::ChoosingPorts)
}

/// The services whose record names a live process: their port is in use by them.
fn running_services(registry: &Registry) -> Vec<String> {
    records_in(&registry.entries())
        .into_iter()
        .filter(|(_, record)| crate::os::ServiceProcess::recorded(record).is_alive())
        .map(|(name, _)| name)
        .collect()
}

/// The `XTASK_PORT_<NAME>` variables `run` gives its command: every service's first
/// port (`api.1` → `XTASK_PORT_API_1`), as the record of a running service has it
/// (started earlier with another `API_PORT`, say), else as services.toml expands now.
pub fn port_variables(config: &Config, registry: &Registry) -> Vec<(String, String)> {
    let running: BTreeMap<String, Vec<u16>> = records_in(&registry.entries())
        .into_iter()
        .filter(|(_, record)| crate::os::ServiceProcess::recorded(record).is_alive())
        .map(|(name, record)| (name, record.ports))
        .collect();
    config
        .services
        .iter()
        .filter_map(|s| {
            let ports = running.get(&s.name).unwrap_or(&s.ports);
            let port = ports.first().filter(|&&p| p != 0)?;
            let name: String = s
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            Some((format!("XTASK_PORT_{name}"), port.to_string()))
        })
        .collect()
}
