//! The project is found at run time, as cargo finds `Cargo.toml`: `--config`,
//! `XTASK_CONFIG`, else the nearest services.toml from the current directory up. One
//! binary (a target directory shared by two checkouts) acts on the checkout it is run
//! in, and `status` and `stop` say which one first.

use crate::harness::{Project, fixture};

fn checkout() -> Project {
    let p = Project::new(&format!("[services.web]\ncommand = [\"{}\"]\n", fixture()));
    p.write("src/deep/.keep", "");
    p
}

#[test]
fn two_checkouts_sharing_one_binary_each_act_on_their_own() {
    let (a, b) = (checkout(), checkout());
    a.xtask_from("src/deep", &["start-bg"]).assert_ok();
    b.xtask_from("src", &["start-bg"]).assert_ok();
    let (a_web, b_web) = (a.pid_of("web"), b.pid_of("web"));

    for (p, other) in [(&a, &b), (&b, &a)] {
        let status = p.xtask_from("src/deep", &["status"]);
        status.assert_ok();
        let first = status.stdout.lines().next().unwrap_or_default();
        assert!(
            first.ends_with(&format!("at {}", p.root.display())),
            "the first line does not name the root {}:\n{status}",
            p.root.display()
        );
        assert!(
            !status.stdout.contains(&other.root.display().to_string()),
            "status names the other checkout:\n{status}"
        );
    }

    let stop = b.xtask_from("src/deep", &["stop"]);
    stop.assert_ok()
        .assert_contains(&format!("at {}", b.root.display()))
        .assert_contains("no process of this project is left");
    assert!(
        crate::harness::is_alive(a_web),
        "stop in one checkout stopped the other's stack"
    );
    assert!(!crate::harness::is_alive(b_web), "stop left its own service running");
    a.xtask_from(".", &["status"]).assert_ok().assert_contains("running");
    a.xtask_from("src", &["stop"]).assert_ok();
    a.assert_nothing_running();
}

#[test]
fn config_and_xtask_config_win_over_the_nearest_file() {
    let (a, b) = (checkout(), checkout());
    a.xtask_from(".", &["start-bg"]).assert_ok();
    // Run in b, told about a: a is the one it reports and stops.
    let config = a.path("services.toml").display().to_string();
    let status = b.xtask_from("src", &["--config", &config, "status"]);
    status.assert_ok().assert_contains(&format!("at {}", a.root.display()));
    let stop = b
        .command(&["stop"])
        .current_dir(b.path("src"))
        .env("XTASK_CONFIG", &config)
        .output()
        .expect("stop");
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stdout));
    a.assert_nothing_running();
}

#[test]
fn no_services_toml_here_or_above_is_a_clear_error_for_a_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(crate::harness::xtask_bin())
        .arg("start-bg")
        .current_dir(dir.path())
        .env_remove("XTASK_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run xtask");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(
        text.contains("services.toml") && text.contains("current directory or above"),
        "the error does not say where it looked:\n{text}"
    );
}
