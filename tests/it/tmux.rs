//! A terminal for tests that drive a program as a user does: a tmux server of the test's
//! own (its own socket), keys sent with `send-keys`, the screen read with
//! `capture-pane`. The server and everything in it end when the guard drops.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::harness::wait_for;

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A `width`×`height` terminal running `command` (words, not a shell line) in `dir`,
    /// with `env` added to the tmux server's environment, which the pane inherits.
    pub fn start(dir: &Path, width: u16, height: u16, env: &[(&str, &str)], command: &[&str]) -> Tmux {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "xtask-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let tmux = Tmux { socket };
        let status = Command::new("tmux")
            .args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg("-c")
            .arg(dir)
            .args(command)
            .envs(env.iter().copied())
            .env_remove("TMUX")
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    /// Sends keys as tmux names them (`"Tab"`, `"Enter"`, `"C-u"`) or literal text.
    pub fn send(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .expect("run tmux send-keys");
        assert!(status.success(), "tmux send-keys {keys:?} failed");
    }

    /// The visible screen, one string.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("run tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sets a tmux option for the whole server (`set-clipboard on`).
    pub fn set(&self, option: &str, value: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "set-option", "-g", option, value])
            .status()
            .expect("run tmux set-option");
        assert!(status.success(), "tmux set-option {option} {value} failed");
    }

    /// Resizes the terminal, as a user dragging its window does.
    pub fn resize(&self, width: u16, height: u16) {
        let status = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "resize-window",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .status()
            .expect("run tmux resize-window");
        assert!(status.success(), "tmux resize-window failed");
    }

    /// What a program put on the clipboard through OSC 52 (tmux's newest buffer).
    pub fn clipboard(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "show-buffer"])
            .output()
            .expect("run tmux show-buffer");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible screen with its colours and attributes as escape sequences.
    pub fn screen_with_styles(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-e"])
            .output()
            .expect("run tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tmux format (`#{pane_pid}`) expanded for the pane; empty when tmux cannot say.
    pub fn display(&self, format: &str) -> String {
        Command::new("tmux")
            .args(["-L", &self.socket, "display-message", "-p", format])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// Whether the pane shows the alternate screen (a full-screen program that has not
    /// given the terminal back); `None` when tmux cannot say.
    pub fn alternate_screen(&self) -> Option<bool> {
        match self.display("#{alternate_on}").as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    }

    /// Waits until the screen satisfies `condition`; the panic shows the last screen.
    #[track_caller]
    pub fn wait_for_screen(&self, what: &str, timeout: Duration, condition: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(what, timeout, || {
                last = self.screen();
                condition(&last)
            })
        }));
        if let Err(panic) = waited {
            eprintln!("the screen while waiting for {what}:\n{last}");
            std::panic::resume_unwind(panic);
        }
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let socket = self.display("#{socket_path}");
        let shell = self.display("#{pane_pid}").parse::<i32>().ok();
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
        // The pane's shell ends on the SIGHUP that kill-server sends, after it returns:
        // gone before the test's project checks that nothing works in its directory.
        if let Some(shell) = shell
            && !std::thread::panicking()
        {
            wait_for("the terminal's shell to end", Duration::from_secs(10), || {
                !crate::harness::is_alive(shell)
            });
        }
        // tmux leaves its socket file behind.
        if !socket.is_empty() {
            let _ = std::fs::remove_file(socket);
        }
    }
}
