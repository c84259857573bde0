//! `ui`: a full-screen view of the running stack, read from the state directory (no
//! server): the services table, the selected service's log or all of them, the
//! supervisor's last events, and keys that restart, stop and start services through
//! the same commands a user types. It attaches to whatever runs, and quitting it leaves
//! the stack as it was; `start --tui` quits by stopping what it started.

mod actions;
mod app;
mod feed;

use std::time::{Duration, Instant};

use actions::{Actions, Report};
use app::{App, Effect};
use feed::{Events, Feed};

use crate::error::{Error, Result};
use crate::orchestrate::overview;
use crate::orchestrate::overview::{Detail, Overview, ServiceOverview};
use crate::os::ServiceProcess;
use crate::os::interrupts::Interrupts;
use crate::os::signal::EndWatch;
use crate::service::Context;
use crate::service::status::{Health, Status};
use crate::ui;
use crate::ui::tui::{LogPane, Row, Screen, Tone, Tui};

/// How long the loop waits for a key before it looks at the state directory, the logs
/// and the main processes again: state changes show within this, and an idle UI costs
/// a few `stat`s per wake.
const TICK: Duration = Duration::from_millis(150);
/// How often uptime, CPU and memory are read anew when nothing else changed.
const USAGE_EVERY: Duration = Duration::from_secs(2);
/// How often Docker is asked about container services.
const DOCKER_EVERY: Duration = Duration::from_secs(10);

/// What quitting does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quit {
    /// Leave the stack as it is (`ui`).
    LeavesTheStack,
    /// Quitting is the end of a `start --tui`: the caller stops what it started.
    StopsTheStart,
}

/// Shows the UI until `q`, Ctrl+C, SIGTERM or SIGHUP.
pub fn run(ctx: &Context, quit: Quit) -> Result<()> {
    let interrupts = Interrupts::install();
    let mut tui = Tui::enter().map_err(|err| Error::NoTerminal { why: err.to_string() })?;
    let mut view = View::new(ctx, quit);
    let result = view.run(ctx, &mut tui, interrupts);
    drop(tui);
    result
}

/// The loop's state: what was read, what the user did.
struct View {
    quit: Quit,
    app: App,
    rows: Vec<Row>,
    title: String,
    /// The main processes of the running services, to notice one ending at once.
    mains: EndWatch,
    nothing_runs: bool,
    feed: Feed,
    events: Events,
    actions: Actions,
    stamp: Option<std::time::SystemTime>,
    gathered: Option<Instant>,
    asked_docker: Option<Instant>,
    color: bool,
}

impl View {
    fn new(ctx: &Context, quit: Quit) -> View {
        let names: Vec<String> = ctx.config.services.iter().map(|s| s.name.clone()).collect();
        let feed = Feed::load(ctx, &names, &[0]);
        View {
            quit,
            app: App::new(names),
            rows: Vec::new(),
            title: String::new(),
            mains: EndWatch::new(&[]),
            nothing_runs: false,
            feed,
            events: Events::load(ctx),
            actions: Actions::new(),
            stamp: None,
            gathered: None,
            asked_docker: None,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn run(&mut self, ctx: &Context, tui: &mut Tui, interrupts: Interrupts) -> Result<()> {
        let mut dirty = true;
        loop {
            if interrupts.any() {
                return Ok(());
            }
            dirty |= self.refresh(ctx);
            if dirty {
                let drawn = tui
                    .draw(&self.screen())
                    .map_err(|err| Error::io("cannot draw the UI", err))?;
                self.app.page = usize::from(drawn.log_height);
                dirty = false;
            }
            let input = tui
                .next_input(TICK)
                .map_err(|err| Error::io("cannot read the terminal", err))?;
            let Some(input) = input else { continue };
            dirty = true;
            match self.app.on_input(input, &self.feed.lines) {
                Effect::Nothing => {}
                Effect::Quit => return Ok(()),
                Effect::Reload => self.reload(ctx),
                Effect::Act(action) => self.actions.run(ctx, &action),
                Effect::Copy(text) => {
                    let _ = tui.copy(&text);
                }
                Effect::Mouse(on) => {
                    if tui.set_mouse(on).is_ok() {
                        self.app.mouse = tui.mouse();
                    }
                }
            }
        }
    }

    /// Looks at what may have changed; true when the screen must be drawn again.
    fn refresh(&mut self, ctx: &Context) -> bool {
        let (added, dropped) = self.feed.poll();
        self.app.shift(dropped);
        let mut changed = added > 0 || self.events.poll();
        let mut acted = false;
        for report in self.actions.reports() {
            match report {
                Report::Line(line) => self.events.push(line),
                Report::Done(line) => {
                    self.events.push(line);
                    acted = true;
                }
            }
            changed = true;
        }
        let stamp = ctx.registry.run_dir_stamp();
        let ended = self.mains.any_ended();
        let due = self.gathered.is_none_or(|at| at.elapsed() >= USAGE_EVERY);
        if stamp != self.stamp || ended || due || acted {
            self.stamp = stamp;
            self.gather(ctx);
            changed = true;
        }
        changed
    }

    fn gather(&mut self, ctx: &Context) {
        let docker = self.asked_docker.is_none_or(|at| at.elapsed() >= DOCKER_EVERY);
        if docker {
            self.asked_docker = Some(Instant::now());
        }
        let detail = Detail {
            docker,
            log_summary: false,
            leftovers: false,
        };
        self.gathered = Some(Instant::now());
        let Ok(overview) = overview::gather(ctx, &[], detail) else {
            return;
        };
        self.title = title(ctx, &overview, self.quit);
        let mains: Vec<ServiceProcess> = overview
            .services
            .iter()
            .filter(|s| s.state.is_alive())
            .filter_map(|s| s.record.as_ref().map(ServiceProcess::recorded))
            .collect();
        self.mains = EndWatch::new(&mains);
        self.nothing_runs = overview.supervisor.is_none() && overview.services.iter().all(|s| !s.state.is_up());
        let watched = |name: &str| ctx.config.service(name).is_some_and(|s| s.watch.is_some());
        self.rows = overview
            .services
            .iter()
            .map(|s| row(s, watched(&s.service), &self.rows, !docker))
            .collect();
        let names: Vec<String> = self.rows.iter().map(|r| r.name.clone()).collect();
        if names != self.app.names {
            self.app.names = names;
            self.app.selected = self.app.selected.min(self.app.names.len().saturating_sub(1));
            self.reload(ctx);
        }
    }

    /// The log pane shows the selected service's log, or all of them.
    fn reload(&mut self, ctx: &Context) {
        let indexes: Vec<usize> = if self.app.all {
            (0..self.app.names.len()).collect()
        } else {
            vec![self.app.selected]
        };
        self.feed = Feed::load(ctx, &self.app.names, &indexes);
        self.app.follow();
    }

    fn screen(&self) -> Screen<'_> {
        let selected = self.app.selected_name().unwrap_or("");
        let which = if self.app.all { "all services" } else { selected };
        let at = match self.app.bottom {
            None => "following",
            Some(_) => "scrolled back (f follows)",
        };
        let search = match (&self.app.query, self.app.cursor) {
            (Some(query), Some(line)) => format!(
                " · /{query}: line {} of {} (n: older)",
                line.saturating_add(1),
                self.feed.lines.len()
            ),
            (Some(query), None) => format!(" · /{query}"),
            (None, _) => String::new(),
        };
        let place = format!(" {which} · {at}{search} ");
        Screen {
            title: self.title.clone(),
            rows: &self.rows,
            selected: self.app.selected,
            log: LogPane {
                title: place,
                lines: &self.feed.lines,
                names: &self.app.names,
                prefixed: self.app.all,
                bottom: self.app.bottom,
                cursor: self.app.cursor,
                query: self.app.query.as_deref(),
            },
            events: &self.events.lines,
            prompt: self.app.typing.as_deref(),
            notice: self.notice(),
            mouse: self.app.mouse,
            color: self.color,
        }
    }

    fn notice(&self) -> Option<&str> {
        if let Some(said) = &self.app.said {
            return Some(said);
        }
        if self.actions.running() > 0 {
            return Some("working… (its output is in the events)");
        }
        if self.nothing_runs {
            return Some("nothing runs: S starts the selected service with its dependencies, A starts them all");
        }
        None
    }
}

/// The top line: the project, who supervises it, what quitting does.
fn title(ctx: &Context, overview: &Overview, quit: Quit) -> String {
    let supervisor = match &overview.supervisor {
        Some(m) if m.foreground => format!("supervised by a foreground start (pid {})", m.pid),
        Some(m) => format!("monitor pid {}", m.pid),
        None => "no supervisor".to_string(),
    };
    let quitting = match quit {
        Quit::LeavesTheStack => "q leaves it running",
        Quit::StopsTheStart => "q stops it",
    };
    format!(" xtask · {} · {supervisor} · {quitting} ", ctx.config.project.name)
}

/// One row of the table. `keep_docker`: the container's state was not asked this time;
/// the previous row's state text stands.
fn row(service: &ServiceOverview, watched: bool, previous: &[Row], keep_docker: bool) -> Row {
    let usage = service.usage();
    let dash = || "-".to_string();
    let earlier = previous.iter().find(|r| r.name == service.service);
    let state = match earlier {
        Some(r) if keep_docker && service.record.as_ref().is_some_and(|r| r.container.is_some()) => r.state.clone(),
        // As `status` says it: the instance runs an older config until it is restarted.
        _ if service.config_changes.is_some() => {
            format!("{} (config changed: r applies it)", super::status::state_text(service))
        }
        _ => super::status::state_text(service),
    };
    let build = match service.last_build() {
        Some((build, age)) => format!("{} {} ago", if build.ok { "ok" } else { "failed" }, ui::uptime(age)),
        None if watched => dash(),
        None => String::new(),
    };
    Row {
        name: service.service.clone(),
        state,
        health: service.health().to_string(),
        pid: service.pid().map_or_else(dash, |p| p.to_string()),
        uptime: usage.map_or_else(dash, |u| ui::uptime(u.uptime)),
        cpu: usage.map_or_else(dash, |u| format!("{:.1}", u.cpu_percent)),
        rss: usage.map_or_else(dash, |u| ui::bytes(u.rss_bytes)),
        restarts: service.restarts().to_string(),
        ports: if service.ports.is_empty() {
            dash()
        } else {
            service.ports_text().join(",")
        },
        build,
        tone: tone(&service.state),
    }
}

fn tone(state: &Status) -> Tone {
    match state {
        Status::Running(Health::Healthy) | Status::Completed => Tone::Good,
        Status::Running(Health::Starting) | Status::Restarting | Status::Stopping { .. } => Tone::Busy,
        Status::Running(Health::Unhealthy) | Status::Failed | Status::Exited | Status::Stale(_) => Tone::Bad,
        Status::Stopped | Status::Inactive => Tone::Idle,
    }
}
