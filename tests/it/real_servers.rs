//! Real servers instead of the fixture: PostgreSQL, redis-server and nginx rewrite their
//! process titles (erasing the cookie from what /proc shows) and fork into the
//! background. Each scenario runs once with cgroups and once with `XTASK_CGROUP=0`
//! (the recorded process tree). `.ci/run` installs redis-server and nginx when missing;
//! a machine without them fails these tests rather than skipping them.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, free_ports, installed, is_alive, wait_for};

/// The containment layers, as `status --json` names them, and the `XTASK_CGROUP` value
/// that selects each.
pub(crate) const MODES: [(&str, &str); 2] = [("cgroup", "1"), ("tree", "0")];
const LONG: Duration = Duration::from_secs(20);

pub(crate) fn status_json(p: &Project) -> serde_json::Value {
    let status = p.xtask(&["status", "--json"]);
    serde_json::from_str(&status.stdout).unwrap_or_else(|_| panic!("status --json: {status}"))
}

/// Starts the stack, checks that `service` is healthy and running with memory in use
/// under the expected layer, then stops it and checks that nothing is left and the port
/// is free.
#[track_caller]
fn serves_and_stops(p: &Project, service: &str, port: u16, mode: &str) {
    p.xtask(&["start-bg"]).assert_ok();
    let json = status_json(p);
    assert_eq!(json["containment"], mode, "{json}");
    let row = &json["services"][0];
    assert_eq!(row["state"], "running", "{json}");
    assert!(
        row["rss_bytes"].as_u64().is_some_and(|rss| rss > 0),
        "RSS of {service}: {json}"
    );
    assert!(!p.leftovers().is_empty(), "{service} runs no process at all");
    p.xtask(&["stop"])
        .assert_ok()
        .assert_contains("no process of this project is left");
    let left = p.leftovers();
    assert!(left.is_empty(), "{service} ({mode}) left processes: {left:?}");
    assert!(
        p.cgroups().is_empty(),
        "{service} ({mode}) left cgroups: {:?}",
        p.cgroups()
    );
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} of {service} still held"
    );
}

fn redis(daemonize: bool) {
    for (mode, switch) in MODES {
        let [port] = free_ports::<1>();
        let p = Project::new("").with_env("XTASK_CGROUP", switch);
        let root = p.root.display().to_string();
        let daemon = if daemonize {
            format!(
                ", \"--daemonize\", \"yes\", \"--pidfile\", \"{root}/redis.pid\", \"--logfile\", \"{root}/redis.log\""
            )
        } else {
            String::new()
        };
        let pid_file = if daemonize { "pid_file = \"redis.pid\"\n" } else { "" };
        p.write(
            "services.toml",
            &format!(
                "[services.redis]\ncommand = [\"{}\", \"--port\", \"{port}\", \"--bind\", \"127.0.0.1\", \"--save\", \"\", \"--appendonly\", \"no\", \"--dir\", \"{root}\"{daemon}]\nport = {port}\n{pid_file}",
                installed("redis-server")
            ),
        );
        serves_and_stops(&p, "redis", port, mode);
    }
}

#[test]
fn redis_in_the_foreground() {
    redis(false);
}

#[test]
fn redis_that_daemonizes() {
    redis(true);
}

/// An nginx project whose server answers on `port`; `daemon off;` when `foreground`.
pub(crate) fn nginx_project(port: u16, foreground: bool, switch: &str) -> Project {
    let p = Project::new("").with_env("XTASK_CGROUP", switch);
    let command = nginx_command(&p, port, foreground);
    let pid_file = if foreground {
        ""
    } else {
        "pid_file = \"nginx/nginx.pid\"\n"
    };
    p.write(
        "services.toml",
        &format!(
            "[services.nginx]\ncommand = {command}\nport = {port}\n\
             health = {{ http = \"http://127.0.0.1:{port}/\", interval = \"100ms\" }}\nrestart = \"on-failure\"\nrestart_delay = \"100ms\"\n{pid_file}"
        ),
    );
    p
}

/// Writes an nginx configuration into `p/nginx` whose server answers on `port`
/// (`daemon off;` when `foreground`) and returns the TOML array that runs it.
pub(crate) fn nginx_command(p: &Project, port: u16, foreground: bool) -> String {
    let dir = p.path("nginx").display().to_string();
    let daemon = if foreground { "daemon off;\n" } else { "" };
    p.write(
        "nginx/nginx.conf",
        &format!(
            "{daemon}worker_processes 2;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/tmp;\n  proxy_temp_path {dir}/tmp;\n  fastcgi_temp_path {dir}/tmp;\n  \
             uwsgi_temp_path {dir}/tmp;\n  scgi_temp_path {dir}/tmp;\n  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n"
        ),
    );
    format!(
        "[\"{}\", \"-p\", \"{dir}\", \"-e\", \"{dir}/error.log\", \"-c\", \"{dir}/nginx.conf\"]",
        installed("nginx")
    )
}

#[test]
fn nginx_with_daemon_off() {
    for (mode, switch) in MODES {
        let [port] = free_ports::<1>();
        serves_and_stops(&nginx_project(port, true, switch), "nginx", port, mode);
    }
}

#[test]
fn nginx_in_its_default_daemon_mode() {
    for (mode, switch) in MODES {
        let [port] = free_ports::<1>();
        serves_and_stops(&nginx_project(port, false, switch), "nginx", port, mode);
    }
}

/// After `kill -9` of nginx's master, its orphaned workers would keep the port; the
/// supervisor ends them before it restarts the service, so the new master binds and is
/// the one that answers.
#[test]
fn nginx_after_kill_9_of_its_master() {
    for (mode, switch) in MODES {
        let [port] = free_ports::<1>();
        let p = nginx_project(port, false, switch);
        p.xtask(&["start-bg"]).assert_ok();
        let master = status_json(&p)["services"][0]["pid"].as_i64().expect("a master pid") as i32;
        let before: Vec<i32> = p
            .leftovers()
            .iter()
            .map(|(pid, _, _)| *pid)
            .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "nginx"))
            .collect();
        assert!(before.len() >= 3, "a master and two workers: {before:?}");
        kill(Pid::from_raw(master), Signal::SIGKILL).expect("kill -9 the master");
        wait_for("a new healthy master", LONG, || {
            let json = status_json(&p);
            let row = &json["services"][0];
            row["health"] == "healthy" && row["pid"].as_i64().is_some_and(|pid| pid as i32 != master)
        });
        let survivors: Vec<&i32> = before.iter().filter(|pid| is_alive(**pid)).collect();
        assert!(
            survivors.is_empty(),
            "({mode}) the old instance's processes live on: {survivors:?}"
        );
        serves_and_stops(&p, "nginx", port, mode);
    }
}

/// A PostgreSQL cluster in the project, owned by the `postgres` user (the server
/// refuses to run as root); the command runs the server as that user.
pub(crate) fn postgres_project(switch: &str) -> (Project, String) {
    let p = Project::new("").with_env("XTASK_CGROUP", switch);
    std::fs::set_permissions(&p.root, std::fs::Permissions::from_mode(0o755)).expect("chmod the project");
    let data = p.path("data").display().to_string();
    std::fs::create_dir(&data).expect("create the data directory");
    let chown = Command::new("chown")
        .args(["postgres:", &data])
        .status()
        .expect("run chown");
    assert!(chown.success(), "chown postgres: {data}");
    let initdb = Command::new("setpriv")
        .args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            &installed("initdb"),
        ])
        .args(["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"])
        .current_dir("/")
        .output()
        .expect("run initdb");
    assert!(
        initdb.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    (p, data)
}

#[test]
fn postgres_in_the_foreground() {
    for (mode, switch) in MODES {
        let [port] = free_ports::<1>();
        let (p, data) = postgres_project(switch);
        p.write(
            "services.toml",
            &format!(
                "[services.db]\ncommand = [\"setpriv\", \"--reuid=postgres\", \"--regid=postgres\", \"--init-groups\", \"{}\", \"-D\", \"{data}\", \"-p\", \"{port}\", \"-k\", \"{data}\", \"-c\", \"listen_addresses=127.0.0.1\"]\n\
                 port = {port}\nstop_signal = \"SIGINT\"\n",
                installed("postgres")
            ),
        );
        serves_and_stops(&p, "db", port, mode);
    }
}

#[test]
fn postgres_through_pg_ctl_start() {
    for (mode, switch) in MODES {
        let [port] = free_ports::<1>();
        let (p, data) = postgres_project(switch);
        p.write(
            "services.toml",
            &format!(
                "[services.db]\ncommand = [\"setpriv\", \"--reuid=postgres\", \"--regid=postgres\", \"--init-groups\", \"{}\", \"start\", \"-w\", \"-D\", \"{data}\", \"-l\", \"{data}/server.log\", \"-o\", \"-p {port} -k {data} -c listen_addresses=127.0.0.1\"]\n\
                 port = {port}\npid_file = \"data/postmaster.pid\"\nstop_signal = \"SIGINT\"\n",
                installed("pg_ctl")
            ),
        );
        serves_and_stops(&p, "db", port, mode);
    }
}
