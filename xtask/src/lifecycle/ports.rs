//! Ports chosen at start for `port = "auto"`: before a command starts anything, each
//! such service gets a free port, recorded in the state directory; the config is then
//! read again, so that its `PORT`, every `${port:NAME}` and its health check name the
//! chosen port. A service keeps its recorded port while it runs or while the port is
//! free, so a restart does not move it.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lifecycle::Context;
use crate::lifecycle::processes::records_in;
use crate::os::ports;
use crate::state::Registry;
use crate::state::ports::reserve_free_port;

/// `ctx` with a port for every service with `port = "auto"`: the same context when
/// there is none to choose, or one read again with the new choices.
pub fn settle(ctx: Context) -> Result<Context> {
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
    let chosen = {
        let lock = ctx.registry.lock("choosing ports")?;
        let recorded = ctx.registry.chosen_ports();
        let running = running_services(&ctx.registry);
        let mut chosen: BTreeMap<String, u16> = BTreeMap::new();
        for service in &auto {
            let kept = recorded
                .get(service)
                .copied()
                .filter(|&port| running.contains(service) || ports::busy_ports([port]).is_empty());
            let port = match kept {
                Some(port) => port,
                None => reserve_free_port()
                    .map_err(|err| Error::io(format!("cannot choose a port for `{service}`"), err))?,
            };
            chosen.insert(service.clone(), port);
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

/// The services whose record names a live process: their port is in use by them.
fn running_services(registry: &Registry) -> Vec<String> {
    records_in(&registry.entries())
        .into_iter()
        .filter(|(_, record)| crate::os::ServiceProcess::recorded(record).is_alive())
        .map(|(name, _)| name)
        .collect()
}

/// The `XTASK_PORT_<NAME>` variables `run` gives its command: every service's first
/// port (`api.1` → `XTASK_PORT_API_1`).
pub fn port_variables(config: &Config) -> Vec<(String, String)> {
    config
        .services
        .iter()
        .filter_map(|s| {
            let port = s.ports.first().filter(|&&p| p != 0)?;
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
