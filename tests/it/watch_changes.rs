//! What counts as a change in watch mode: writes, creations, removals and renames, once
//! per quiet period; never a read, a `touch`, the state directory, or a path reached
//! through a symbolic link. The services here do what real ones do: a C program built
//! by gcc that reads its own source, a Python script that rereads itself as a reloader
//! does, a shell loop that reads its data file.
//!
//! "Never" is observed, not slept on: each service reads its watched files in a loop
//! and logs each read, and the tests wait for dozens of reads before they count builds.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Project, wait_for};

const LONG: Duration = Duration::from_secs(30);

/// A C program that reads its own source every 20 ms and logs `read N`.
const APP: &str = r#"#include <stdio.h>
#include <unistd.h>
int main(void) {
    for (long n = 1;; n++) {
        FILE *f = fopen("src/main.c", "r");
        if (f) { while (fgetc(f) != EOF) {} fclose(f); }
        printf("read %ld\n", n);
        fflush(stdout);
        usleep(20000);
    }
}
"#;

fn builds(p: &Project) -> usize {
    std::fs::read_to_string(p.path("builds"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// How many reads the latest instance of `service` logged: the lines after the last
/// start marker that xtask writes into the log before each start.
fn reads(p: &Project, service: &str) -> usize {
    let log = std::fs::read_to_string(p.path(&format!(".xtask/logs/{service}.log"))).unwrap_or_default();
    let latest = log.rsplit_once("── start ").map_or(log.as_str(), |(_, rest)| rest);
    latest.lines().filter(|l| l.starts_with("read ")).count()
}

/// Waits until the current instance of `service` has read its sources `n` more times.
#[track_caller]
fn wait_for_reads(p: &Project, service: &str, n: usize) {
    let from = reads(p, service);
    wait_for(&format!("{n} more reads by {service}"), LONG, || {
        reads(p, service) >= from + n
    });
}

/// Runs a shell script in the project, as a user at a terminal would.
fn shell(p: &Project, script: &str) {
    let status = Command::new("sh")
        .args(["-c", script])
        .current_dir(&p.root)
        .status()
        .expect("run sh");
    assert!(status.success(), "`{script}` failed");
}

/// Saves `text` as `relative` as many editors do: a new file renamed over the old.
fn save(p: &Project, relative: &str, text: &str) {
    p.write("edit.tmp", text);
    std::fs::rename(p.path("edit.tmp"), p.path(relative)).expect("rename the saved file into place");
}

/// The C app, built by gcc from `src/main.c`, which its build also reads and
/// touches; each build is counted in `builds`.
fn c_app() -> Project {
    c_app_with(|_| {})
}

/// The C app, with `before` done to the project before it starts.
fn c_app_with(before: impl Fn(&Project)) -> Project {
    let p = Project::new(
        r#"
[project]
watch_debounce = "100ms"

[services.app]
build = "echo build >> builds; touch src/main.c; cat src/main.c > /dev/null; gcc -o app src/main.c"
command = "exec ./app"
watch = ["src"]
"#,
    );
    p.write("src/main.c", APP);
    before(&p);
    p.xtask(&["start-bg"]).assert_ok();
    assert_eq!(builds(&p), 1, "the build runs once before the start");
    wait_for_reads(&p, "app", 10);
    p
}

#[test]
fn reading_a_watched_file_is_no_change() {
    let p = Project::new(
        r#"
[services.reader]
command = "n=0; while true; do cat data.txt > /dev/null; n=$((n+1)); echo read $n; sleep 0.02; done"
watch = ["data.txt"]

[services.py]
command = ["python3", "app.py"]
watch = ["*.py"]
"#,
    );
    p.write("data.txt", "data");
    // A reloader's loop: it reads its own source, as watchers inside dev servers do.
    p.write(
        "app.py",
        "import time\nn = 0\nwhile True:\n    open(__file__).read()\n    n += 1\n    print('read', n, flush=True)\n    time.sleep(0.02)\n",
    );
    p.xtask(&["start-bg"]).assert_ok();
    let (reader, py) = (p.pid_of("reader"), p.pid_of("py"));
    wait_for_reads(&p, "reader", 50);
    wait_for_reads(&p, "py", 50);
    assert_eq!(
        p.pid_of("reader"),
        reader,
        "reads restarted reader:\n{}",
        p.monitor_log()
    );
    assert_eq!(p.pid_of("py"), py, "reads restarted py:\n{}", p.monitor_log());
    assert!(!p.monitor_log().contains("changed"), "{}", p.monitor_log());
}

#[test]
fn a_build_that_reads_and_touches_its_sources_runs_once_per_edit() {
    let p = c_app();
    let first = p.pid_of("app");
    save(&p, "src/main.c", &APP.replace("read %ld", "read %ld (edited)"));
    p.wait_for_new_pid("app", first);
    wait_for_reads(&p, "app", 50);
    assert_eq!(builds(&p), 2, "one edit, builds:\n{}", p.monitor_log());
    assert!(p.log("app").contains("(edited)"), "the new build does not run");
}

#[test]
fn a_syntax_error_then_a_failing_link_then_a_fix_build_once_each() {
    let p = c_app();
    let first = p.pid_of("app");
    let failures = |p: &Project| p.monitor_log().matches("app: build failed").count();

    // In the middle of an edit: the compiler rejects it; the running instance stays.
    save(&p, "src/main.c", &APP.replace("fflush(stdout);", "fflush(stdout)"));
    wait_for("the failed build", LONG, || failures(&p) == 1);
    wait_for_reads(&p, "app", 50);
    assert_eq!(builds(&p), 2, "one edit, builds:\n{}", p.monitor_log());
    assert!(
        p.log("app").contains("error"),
        "the compiler's output is not in the log"
    );

    save(
        &p,
        "src/main.c",
        &APP.replace("usleep(20000);", "usleep(20000); missing();"),
    );
    wait_for("the second failed build", LONG, || failures(&p) == 2);
    wait_for_reads(&p, "app", 50);
    assert_eq!(builds(&p), 3, "one more edit, builds:\n{}", p.monitor_log());
    assert_eq!(p.pid_of("app"), first, "a failed build restarted the app");

    save(&p, "src/main.c", &APP.replace("read %ld", "read %ld (fixed)"));
    p.wait_for_new_pid("app", first);
    wait_for_reads(&p, "app", 50);
    assert_eq!(builds(&p), 4, "the fix, builds:\n{}", p.monitor_log());
}

#[test]
fn five_files_written_fifty_ms_apart_give_one_build() {
    let p = c_app();
    let first = p.pid_of("app");
    shell(&p, "for n in 1 2 3 4 5; do echo $n > src/note$n.txt; sleep 0.05; done");
    p.wait_for_new_pid("app", first);
    wait_for_reads(&p, "app", 50);
    assert_eq!(builds(&p), 2, "one burst of edits, builds:\n{}", p.monitor_log());
    assert!(
        p.monitor_log()
            .contains("app: src/note5.txt and other files changed; building"),
        "{}",
        p.monitor_log()
    );
}

#[test]
fn a_removed_and_remade_watched_directory_is_watched_again() {
    let p = c_app();
    let first = p.pid_of("app");
    shell(
        &p,
        "cp src/main.c main.keep && rm -rf src && mkdir src && cp main.keep src/main.c",
    );
    let second = p.wait_for_new_pid("app", first);
    wait_for_reads(&p, "app", 10);
    // The proof: an edit in the directory made again still counts.
    save(&p, "src/main.c", &APP.replace("read %ld", "read %ld (again)"));
    p.wait_for_new_pid("app", second);
    wait_for("the edited app", LONG, || p.log("app").contains("(again)"));
}

/// A link to an ancestor (`ln -s .. src/up`) would bring the whole project, the state
/// directory with the logs the app writes included, into the watch if it were followed.
#[test]
fn a_symlink_to_an_ancestor_causes_no_build() {
    let p = c_app_with(|p| shell(p, "ln -s .. src/up"));
    let first = p.pid_of("app");
    wait_for_reads(&p, "app", 100);
    assert_eq!(p.pid_of("app"), first, "app restarted:\n{}", p.monitor_log());
    assert_eq!(builds(&p), 1, "builds:\n{}", p.monitor_log());
}

/// A service that writes into what it watches restarts after each write; a
/// `.gitignore` written while it runs stops that without a restart of the supervisor.
#[test]
fn a_gitignore_written_while_the_stack_runs_counts_at_once() {
    let p = Project::new(
        r#"
[project]
watch_debounce = "20ms"

[services.writer]
command = "n=0; while true; do n=$((n+1)); sleep 0.1; echo $n > src/out.txt; echo read $n; done"
watch = ["src"]
"#,
    );
    p.write("src/main.txt", "main");
    p.xtask(&["start-bg"]).assert_ok();
    let first = p.pid_of("writer");
    p.wait_for_new_pid("writer", first);
    p.write("src/.gitignore", "out.txt\n");
    wait_for("the restart the .gitignore itself causes", LONG, || {
        let log = p.monitor_log();
        log.find("writer: src/.gitignore")
            .is_some_and(|at| log[at..].contains("writer: healthy after"))
    });
    let settled = p.pid_of("writer");
    wait_for_reads(&p, "writer", 20);
    assert_eq!(
        p.pid_of("writer"),
        settled,
        "its own writes still restart it:\n{}",
        p.monitor_log()
    );
}

/// The inotify watches of `pid`: one `inotify wd:` line each in the fdinfo of its
/// inotify descriptors.
fn inotify_watches(pid: i32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    fds.flatten()
        .map(|fd| std::fs::read_to_string(fd.path()).unwrap_or_default())
        .map(|info| info.lines().filter(|l| l.starts_with("inotify wd:")).count())
        .sum()
}

/// `watch = ["."]` in a project with a big ignored tree and a chatty neighbour: the
/// ignored tree and the state directory (where the neighbour's log grows) get no watch,
/// so neither costs the idle monitor anything, and an edit still rebuilds.
#[test]
fn ignored_trees_and_the_state_directory_are_not_watched() {
    let p = Project::new(
        r#"
[project]
watch_debounce = "50ms"

[services.app]
command = "n=0; while true; do n=$((n+1)); echo read $n; sleep 1; done"
watch = ["."]

[services.chatty]
command = "while true; do echo a line of the chatty neighbour; sleep 0.001; done"
"#,
    );
    p.write(".gitignore", "node_modules/\n");
    p.write("src/main.txt", "one");
    for n in 0..300 {
        std::fs::create_dir_all(p.path(&format!("node_modules/pkg{n}/lib"))).expect("a package");
    }
    p.xtask(&["start-bg"]).assert_ok();
    let monitor = p.monitor_pid().expect("a monitor");
    let watches = inotify_watches(monitor);
    assert!(watches < 10, "the monitor holds {watches} inotify watches");
    wait_for("the neighbour's log to grow", LONG, || {
        p.log("chatty").lines().count() > 100
    });
    let used = crate::harness::cpu_used_over(monitor, Duration::from_secs(2));
    assert!(
        used < Duration::from_millis(50),
        "a neighbour's log cost the monitor {used:?} in 2 s"
    );
    let first = p.pid_of("app");
    save(&p, "src/main.txt", "two");
    p.wait_for_new_pid("app", first);
}

/// An edit made while `start-bg` builds is not lost: the monitor watches from before
/// the build, so the stack comes up and is built again with the edit.
#[test]
fn an_edit_during_the_build_of_start_bg_rebuilds_after_the_start() {
    let p = Project::new(
        r#"
[project]
watch_debounce = "50ms"

[services.app]
build = "cp src/version version.built; echo build >> builds; while test -f hold; do sleep 0.01; done"
command = "exec sleep 1000"
watch = ["src"]
"#,
    );
    p.write("src/version", "1");
    p.write("hold", "");
    let mut start = p.spawn_quietly(&["start-bg"]);
    wait_for("the build to start", LONG, || builds(&p) == 1);
    save(&p, "src/version", "2");
    std::fs::remove_file(p.path("hold")).expect("let the build end");
    wait_for("start-bg to return", LONG, || {
        std::fs::read_to_string(p.path("version.built")).is_ok_and(|v| v == "2")
    });
    assert!(start.wait().is_ok_and(|s| s.success()), "start-bg failed");
    assert_eq!(builds(&p), 2, "{}", p.monitor_log());
}
